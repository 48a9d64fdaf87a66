// Shared by the tests of documented examples (//examples:*_header_example_test and the plugin
// guide's //examples/tap_plugin:tap_mqtt_example_test): keeping the example a header or a document
// shows identical to the program that compiles it, and running that program.
#ifndef HUBLINK_EXAMPLES_HEADER_EXAMPLE_TEST_UTIL_H_
#define HUBLINK_EXAMPLES_HEADER_EXAMPLE_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace hublink {
namespace testing {

// The lines of `program` between "// [<name> example begins]" and "// [<name> example ends]", as
// a header comment shows them ("// " + line, "//" for an empty line), joined with newlines.
absl::StatusOr<std::string> ExampleAsComment(absl::string_view program, absl::string_view name);
// The same lines as a Markdown code block shows them: one level (2 spaces) of indentation less.
absl::StatusOr<std::string> ExampleAsMarkdown(absl::string_view program, absl::string_view name);

// Success when `header` contains the example of `program` (see ExampleAsComment) as one block of
// whole lines; otherwise says which line differs first, so an edit to either is easy to mirror.
::testing::AssertionResult HeaderShowsExample(const std::string& header_path,
                                              const std::string& program_path,
                                              absl::string_view name);

// The same check for a Markdown document (ExampleAsMarkdown).
::testing::AssertionResult DocShowsExample(const std::string& doc_path,
                                           const std::string& program_path, absl::string_view name);

struct ExampleRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved
};
// Runs `binary` with `args` (no shell quoting needed for paths without single quotes).
ExampleRun RunExample(const std::string& binary, const std::vector<std::string>& args);

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_EXAMPLES_HEADER_EXAMPLE_TEST_UTIL_H_
