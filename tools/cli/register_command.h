// `hublink register`: Tencent IoT Hub dynamic registration from the command line
// (profiles/tencent/dynreg.h). A device that knows its product's id and secret gets its own
// credentials and writes them as the C SDK's device_info.json.
//
//   hublink register --product_id=P --product_secret=S --device_name=D [--region=R]
//                    [--host=H --port=N --ca_file=F] --out=device_info.json
//
// Over HTTPS (verified: the system roots, or --ca_file) with the "http" protocol plugin, through
// --proxy or HTTPS_PROXY when set. Refuses to overwrite --out (the hub hands out a device's secret
// once) unless --force. Exit 0 registered, 1 failed (the hub's refusal, unreachable, timeout), 2
// bad usage.
#ifndef HUBLINK_TOOLS_CLI_REGISTER_COMMAND_H_
#define HUBLINK_TOOLS_CLI_REGISTER_COMMAND_H_

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "plugins/registry.h"

namespace hublink {
namespace cli {

// `args` excludes "hublink register".
int RunRegister(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                const std::function<void(Registry::Builder&)>& register_plugins);

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_REGISTER_COMMAND_H_
