// `hublink shadow`: a Tencent IoT Hub device's shadow document from the command line
// (profiles/tencent/shadow.h), printed as JSON on stdout.
//
//   hublink shadow get    --device_info=FILE [--deltas=N]
//   hublink shadow update --device_info=FILE --state='{"temperature":21}' [--version=N]
//                         [--clear_desired]
//   hublink shadow delete --device_info=FILE
//
// Takes the connection flags of connection_flags.h (--transport, --host/--port, --ca_file, proxies).
// Prints the reply's payload (the document: state, version, metadata). --deltas=N then waits for N
// delta pushes (a desired change from the console) and prints each "delta <state JSON> version <N>".
// Exit 0 on success, 1 on failure (the hub's refusal, a version conflict naming the hub's version,
// no reply within --timeout), 2 for bad usage.
#ifndef HUBLINK_TOOLS_CLI_SHADOW_COMMAND_H_
#define HUBLINK_TOOLS_CLI_SHADOW_COMMAND_H_

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "plugins/registry.h"

namespace hublink {
namespace cli {

// `args` excludes "hublink shadow".
int RunShadow(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
              const std::function<void(Registry::Builder&)>& register_plugins);

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_SHADOW_COMMAND_H_
