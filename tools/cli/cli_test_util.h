// What the CLI's tests share: one `hublink` run in-process, as a user types it, with its exit code
// and both output streams captured.
#ifndef HUBLINK_TOOLS_CLI_CLI_TEST_UTIL_H_
#define HUBLINK_TOOLS_CLI_CLI_TEST_UTIL_H_

#include <string>
#include <vector>

namespace hublink {
namespace cli {

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

// RunHublink(args) (args without the program name).
CliRun Hublink(const std::vector<std::string>& args);

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_CLI_TEST_UTIL_H_
