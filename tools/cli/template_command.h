// `hublink template`: a Tencent IoT Explorer device's data template messages from the command line
// (profiles/tencent/data_template.h), checked against the product's template file first.
//
//   hublink template report --device_info=FILE --template=TEMPLATE.json --params='{"brightness":40}'
//   hublink template event  --device_info=FILE --template=TEMPLATE.json --event=status_report
//                           --params='{"status":0}'
//
// Takes the connection flags of connection_flags.h. Waits for the platform's report_reply /
// event_reply and prints "reported" / "event <id> posted". Exit 0 on success, 1 on failure (a value
// the template does not allow, the platform's refusal, no reply within --timeout), 2 for bad usage.
#ifndef HUBLINK_TOOLS_CLI_TEMPLATE_COMMAND_H_
#define HUBLINK_TOOLS_CLI_TEMPLATE_COMMAND_H_

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "plugins/registry.h"

namespace hublink {
namespace cli {

// `args` excludes "hublink template".
int RunTemplate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                const std::function<void(Registry::Builder&)>& register_plugins);

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_TEMPLATE_COMMAND_H_
