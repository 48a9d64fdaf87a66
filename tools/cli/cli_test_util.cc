#include "tools/cli/cli_test_util.h"

#include <sstream>

#include "tools/cli/hublink_cli.h"

namespace hublink {
namespace cli {

CliRun Hublink(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  int code = RunHublink(args, out, err);
  return {code, out.str(), err.str()};
}

}  // namespace cli
}  // namespace hublink
