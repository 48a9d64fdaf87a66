#include <iostream>
#include <string>
#include <vector>

#include "tools/cli/hublink_cli.h"

int main(int argc, char** argv) {
  return hublink::cli::RunHublink(std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                  std::cerr);
}
