// The main() of the end-to-end tests whose BUILD rule passes the tools they drive (local_hub.sh,
// the hub plugin, hublink) as arguments.
#ifndef HUBLINK_TESTS_E2E_E2E_TEST_MAIN_H_
#define HUBLINK_TESTS_E2E_E2E_TEST_MAIN_H_

#include <initializer_list>
#include <string>

namespace hublink {
namespace testing {

// After InitGoogleTest, stores argv[1], argv[2], ... in *args in order and runs the tests. With too
// few arguments, prints "usage: <usage>" and returns 2.
int RunTestsWithArgs(int argc, char** argv, const char* usage,
                     std::initializer_list<std::string*> args);

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_TESTS_E2E_E2E_TEST_MAIN_H_
