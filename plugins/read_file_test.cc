#include "plugins/read_file.h"

#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "plugins/pipeline.h"

namespace hublink {
namespace {

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir == nullptr ? "/tmp" : dir;
}

TEST(ReadFileContentsTest, ReadsTheWholeFile) {
  std::string path = TempDir() + "/whole.txt";
  std::string text(100000, 'x');
  std::ofstream(path, std::ios::binary) << text;
  absl::StatusOr<std::string> read = ReadFileContents(path, "test file");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, text);
}

// docs/errors.md: an unreadable file gets its errno's code, and the message names the file.
TEST(ReadFileContentsTest, ErrnoDecidesTheCode) {
  absl::StatusOr<std::string> missing = ReadFileContents(TempDir() + "/absent.pem", "CA file");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            TempDir() + "/absent.pem: cannot read CA file: No such file or directory")
      << missing.status();
  absl::StatusOr<std::string> directory = ReadFileContents(TempDir(), "CA file");
  EXPECT_EQ(directory.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(directory.status().message(), "Is a directory"))
      << directory.status();
}

TEST(ReadFileContentsTest, AFileOverTheLimitIsRefused) {
  std::string path = TempDir() + "/large.txt";
  std::ofstream(path, std::ios::binary) << std::string(5000, 'x');
  absl::StatusOr<std::string> read = ReadFileContents(path, "pipeline file", 4096);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(read.status().message(), "larger than 4096 bytes"))
      << read.status();
}

// A directory given as a pipeline file used to parse as an empty pipeline's errors.
TEST(ReadFileContentsTest, APipelinePathThatIsADirectorySaysSo) {
  absl::StatusOr<Pipeline> pipeline = ReadPipelineFile(TempDir());
  EXPECT_EQ(pipeline.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(pipeline.status().message(), "cannot read pipeline file"))
      << pipeline.status();
}

}  // namespace
}  // namespace hublink
