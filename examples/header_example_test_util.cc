#include "examples/header_example_test_util.h"

#include <sys/wait.h>

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/test_util.h"

namespace hublink {
namespace testing {

namespace {

enum class Shown { kComment, kMarkdown };

absl::StatusOr<std::string> ExampleLines(absl::string_view program, absl::string_view name,
                                         Shown shown_as) {
  const std::string begin = absl::StrCat("// [", name, " example begins]");
  const std::string end = absl::StrCat("// [", name, " example ends]");
  std::vector<std::string> shown;
  bool inside = false, ended = false;
  for (absl::string_view line : absl::StrSplit(program, '\n')) {
    absl::string_view code = line;
    while (!code.empty() && code.front() == ' ') code.remove_prefix(1);
    if (code == begin) {
      inside = true;
      continue;
    }
    if (code == end) {
      ended = inside;
      break;
    }
    if (!inside) continue;
    if (shown_as == Shown::kComment) {
      shown.push_back(line.empty() ? "//" : absl::StrCat("// ", line));
    } else {
      shown.push_back(std::string(absl::StartsWith(line, "  ") ? line.substr(2) : line));
    }
  }
  if (!ended || shown.empty()) {
    return absl::NotFoundError(absl::StrCat("no lines between \"", begin, "\" and \"", end, "\""));
  }
  return absl::StrJoin(shown, "\n");
}

::testing::AssertionResult ShowsExample(const std::string& header_path,
                                        const std::string& program_path, absl::string_view name,
                                        Shown shown_as) {
  absl::StatusOr<std::string> header = ReadFile(header_path);
  if (!header.ok()) return ::testing::AssertionFailure() << header.status();
  absl::StatusOr<std::string> program = ReadFile(program_path);
  if (!program.ok()) return ::testing::AssertionFailure() << program.status();
  absl::StatusOr<std::string> shown = ExampleLines(*program, name, shown_as);
  if (!shown.ok()) return ::testing::AssertionFailure() << program_path << ": " << shown.status();
  if (absl::StrContains(absl::StrCat("\n", *header), absl::StrCat("\n", *shown, "\n"))) {
    return ::testing::AssertionSuccess();
  }
  // Point at the first line of the example the header does not show where the block would be.
  std::vector<std::string> lines = absl::StrSplit(*shown, '\n');
  std::vector<std::string> header_lines = absl::StrSplit(*header, '\n');
  size_t start = 0;
  while (start < header_lines.size() && header_lines[start] != lines[0]) ++start;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (start + i >= header_lines.size() || header_lines[start + i] != lines[i]) {
      return ::testing::AssertionFailure()
             << header_path << " does not show the example of " << program_path
             << " line for line; first difference at example line " << i + 1
             << ":\n  program: " << lines[i] << "\n  header:  "
             << (start + i < header_lines.size() ? header_lines[start + i] : "(end of file)");
    }
  }
  return ::testing::AssertionFailure() << header_path << " does not show " << program_path;
}

}  // namespace

absl::StatusOr<std::string> ExampleAsComment(absl::string_view program, absl::string_view name) {
  return ExampleLines(program, name, Shown::kComment);
}

absl::StatusOr<std::string> ExampleAsMarkdown(absl::string_view program, absl::string_view name) {
  return ExampleLines(program, name, Shown::kMarkdown);
}

::testing::AssertionResult HeaderShowsExample(const std::string& header_path,
                                              const std::string& program_path,
                                              absl::string_view name) {
  return ShowsExample(header_path, program_path, name, Shown::kComment);
}

::testing::AssertionResult DocShowsExample(const std::string& doc_path,
                                           const std::string& program_path,
                                           absl::string_view name) {
  return ShowsExample(doc_path, program_path, name, Shown::kMarkdown);
}

ExampleRun RunExample(const std::string& binary, const std::vector<std::string>& args) {
  std::string command = absl::StrCat("'", binary, "'");
  for (const std::string& arg : args) absl::StrAppend(&command, " '", arg, "'");
  absl::StrAppend(&command, " 2>&1");
  ExampleRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    run.output = absl::StrCat("popen failed for: ", command);
    return run;
  }
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) run.output.append(buffer, n);
  int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

}  // namespace testing
}  // namespace hublink
