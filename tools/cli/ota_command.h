// `hublink ota`: a Tencent IoT Hub device's firmware update, as the C SDK's ota_mqtt_sample does it
// (profiles/tencent/ota.h): report the running version on $ota/report/<pid>/<dn>, wait for an
// update_firmware on $ota/update/<pid>/<dn>, download it over HTTPS (resumed with Range after a
// cut, MD5 checked), report progress ("downloading" with percent, then "done", or "fail" with the
// SDK's result code), and print the downloaded file's path.
//
//   hublink ota --device_info=FILE --version=1.0.0 --download_dir=DIR [--wait=SECONDS]
//               [--firmware_ca_file=F] [connection flags]
//
// Exit 0 downloaded and verified, 1 failed (no update within --wait, download or MD5 failure), 2
// bad usage.
#ifndef HUBLINK_TOOLS_CLI_OTA_COMMAND_H_
#define HUBLINK_TOOLS_CLI_OTA_COMMAND_H_

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "plugins/registry.h"

namespace hublink {
namespace cli {

// `args` excludes "hublink ota".
int RunOta(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
           const std::function<void(Registry::Builder&)>& register_plugins);

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_OTA_COMMAND_H_
