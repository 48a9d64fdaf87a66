// What the CLI says about configuration without connecting anywhere:
//
//   hublink plugins --describe=NAME   the plugin's family, config message, and every field with its
//                                     type, default and comment
//   hublink check FILE                loads and validates a pipeline file (text or JSON): one line
//                                     of summary, or every problem at FILE:LINE:COLUMN
//
// Comments come from the config protos' source info, which generated .pb.cc files drop: a genrule
// compiles the built-in plugins' protos into a FileDescriptorSet with source info and embeds it
// (tools/cli/BUILD, config_descriptors_gen). A plugin library adds its own with
// HUBLINK_PLUGIN_CONFIG_DESCRIPTORS (plugins/plugin_abi.h). A plugin with neither (a program's own
// registration, a library without them) is described from its descriptor alone, and the output
// says its comments are not available.
#ifndef HUBLINK_TOOLS_CLI_CONFIG_INFO_H_
#define HUBLINK_TOOLS_CLI_CONFIG_INFO_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "plugins/registry.h"

namespace hublink {
namespace cli {

// Every plugin of `registry` named `name` (a name may be used by one plugin of each family).
// kNotFound, with the closest name, when there is none.
absl::Status DescribePlugin(const Registry& registry, absl::string_view name, std::ostream& out);

// `hublink check`: returns the exit code. On success one line on `out`:
//   "device.textproto: ok: 127.0.0.1:1883 tcp > tls, protocol mqtt, signer hmac"
// Otherwise every problem on `err`, one a line, "FILE:LINE:COLUMN: FIELD (\"PLUGIN\"): message",
// the position being that of the field at fault, or of the closest enclosing one that is in the
// file (a missing field). JSON files carry no positions in protobuf's parser; their problems are
// placed by a scan of the JSON text for the field path.
int CheckPipelineFile(const std::string& path, const Registry& registry, std::ostream& out,
                      std::ostream& err);

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_CONFIG_INFO_H_
