#include "tests/e2e/e2e_test_main.h"

#include <cstdio>

#include "gtest/gtest.h"

namespace hublink {
namespace testing {

int RunTestsWithArgs(int argc, char** argv, const char* usage,
                     std::initializer_list<std::string*> args) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc < static_cast<int>(args.size()) + 1) {
    std::fprintf(stderr, "usage: %s\n", usage);
    return 2;
  }
  int i = 1;
  for (std::string* arg : args) *arg = argv[i++];
  return RUN_ALL_TESTS();
}

}  // namespace testing
}  // namespace hublink
