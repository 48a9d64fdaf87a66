// `hublink`: a command-line MQTT client shaped like mosquitto_pub / mosquitto_sub, on hublink
// pipelines.
//
//   hublink pub  --device_info=FILE --topic=T --message=M [--qos=1] [--count=N]
//   hublink sub  --device_info=FILE --topic=T [--topic=U ...] [--qos=0] [--count=N] [--timeout=S]
//   hublink sign --device_info=FILE [--connid=a1B2c] [--expiry=1700000000]
//   hublink plugins [--describe=NAME]
//   hublink check FILE
// pub, sub and sign take the connection flags of connection_flags.h and --dump_pipeline=FILE|-
// (write the pipeline they would use, then exit); `hublink check` accepts whatever they dump.
// `plugins --describe=NAME` prints a plugin's config message field by field; `check FILE` validates
// a pipeline file without connecting (every problem at FILE:LINE:COLUMN; tools/cli/config_info.h).
// Every command takes --plugin=PATH (repeatable): a shared object of plugins, loaded with a
// pipeline file's plugin_libraries before the registry is built (plugins/plugin_library.h); a
// dumped pipeline lists it in plugin_libraries. Exit code 0 on success, 1 on any failure (message
// on stderr), 2 for bad usage.
#ifndef HUBLINK_TOOLS_CLI_HUBLINK_CLI_H_
#define HUBLINK_TOOLS_CLI_HUBLINK_CLI_H_

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "plugins/registry.h"

namespace hublink {
namespace cli {

// `args` excludes the program name. Output goes to `out`; errors and events to `err`.
int RunHublink(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The same CLI with plugins of one's own next to the built-in ones: `register_plugins` adds them
// to the registry every command uses (`hublink plugins` lists them, pipelines name them). A main()
// of three lines makes one's own `hublink` binary (docs/plugin-authoring.md):
//
//   int main(int argc, char** argv) {
//     return hublink::cli::RunHublink({argv + 1, argv + argc}, std::cout, std::cerr,
//                                     [](hublink::Registry::Builder& b) { RegisterMyPlugins(b); });
//   }
int RunHublink(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
               const std::function<void(Registry::Builder&)>& register_plugins);

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_HUBLINK_CLI_H_
