#include "plugins/read_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
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

// A file this process may not read, or "" when there is none to be had. Tests run as root, which
// reads any mode-000 file; /proc/sys files are the exception: their permission check applies the
// owner bits to root too, and drop_caches is write-only (--w-------).
std::string UnreadableFile() {
  if (geteuid() != 0) {
    std::string path = TempDir() + "/unreadable.txt";
    std::ofstream(path) << "x";
    if (chmod(path.c_str(), 0) == 0) return path;
    return "";
  }
  const std::string write_only = "/proc/sys/vm/drop_caches";
  return access(write_only.c_str(), F_OK) == 0 ? write_only : "";
}

TEST(ReadFileContentsTest, ReadsTheWholeFile) {
  std::string path = TempDir() + "/whole.txt";
  std::string text(100000, 'x');
  std::ofstream(path, std::ios::binary) << text;
  absl::StatusOr<std::string> read = ReadFileContents(path, "test file");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, text);
}

TEST(ReadFileContentsTest, AnEmptyFileIsEmptyNotAnError) {
  std::string path = TempDir() + "/empty.txt";
  std::ofstream(path, std::ios::binary).flush();
  absl::StatusOr<std::string> read = ReadFileContents(path, "test file");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "");
}

// docs/errors.md: an unreadable file gets its errno's code, and the message names the file and
// ends with strerror's text.
TEST(ReadFileContentsTest, AMissingFileIsNotFound) {
  absl::StatusOr<std::string> missing = ReadFileContents(TempDir() + "/absent.pem", "CA file");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            TempDir() + "/absent.pem: cannot read CA file: No such file or directory")
      << missing.status();
}

TEST(ReadFileContentsTest, AnUnreadableFileIsPermissionDenied) {
  const std::string path = UnreadableFile();
  if (path.empty()) GTEST_SKIP() << "no file this process is refused";
  absl::StatusOr<std::string> read = ReadFileContents(path, "key file");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kPermissionDenied) << read.status();
  EXPECT_EQ(read.status().message(), path + ": cannot read key file: Permission denied");
}

TEST(ReadFileContentsTest, ADirectoryIsFailedPreconditionAndSaysSo) {
  absl::StatusOr<std::string> directory = ReadFileContents(TempDir(), "CA file");
  EXPECT_EQ(directory.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(directory.status().message(),
            TempDir() + ": cannot read CA file: is a directory, not a file");
}

// A path through a regular file: ENOTDIR, whose code absl maps to kFailedPrecondition.
TEST(ReadFileContentsTest, APathThroughAFileCarriesTheErrnoText) {
  std::string file = TempDir() + "/plain.txt";
  std::ofstream(file) << "x";
  absl::StatusOr<std::string> read = ReadFileContents(file + "/ca.pem", "CA file");
  EXPECT_EQ(read.status().code(), absl::ErrnoToStatusCode(ENOTDIR));
  EXPECT_EQ(read.status().message(), file + "/ca.pem: cannot read CA file: Not a directory");
}

TEST(ReadFileContentsTest, AFileOverTheLimitIsRefused) {
  std::string path = TempDir() + "/large.txt";
  std::ofstream(path, std::ios::binary) << std::string(5000, 'x');
  absl::StatusOr<std::string> read = ReadFileContents(path, "pipeline file", 4096);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(read.status().message(), path + ": cannot read pipeline file: larger than 4096 bytes");
  // Exactly at the limit is fine.
  std::ofstream(path, std::ios::binary) << std::string(4096, 'x');
  EXPECT_TRUE(ReadFileContents(path, "pipeline file", 4096).ok());
}

// A directory given as a pipeline file used to parse as an empty pipeline's errors.
TEST(ReadFileContentsTest, APipelinePathThatIsADirectorySaysSo) {
  absl::StatusOr<Pipeline> pipeline = ReadPipelineFile(TempDir());
  EXPECT_EQ(pipeline.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(pipeline.status().message(), "cannot read pipeline file"))
      << pipeline.status();
}

TEST(ReadFileWithPrefixTest, MessagesStartWithThePrefix) {
  const std::string missing = TempDir() + "/no/such/secret";
  absl::StatusOr<std::string> read =
      ReadFileWithPrefix(missing, "hmac: device_secret_file " + missing);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(read.status().message(),
            "hmac: device_secret_file " + missing + ": No such file or directory");
  read = ReadFileWithPrefix(TempDir(), "tls: key_file: " + TempDir());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(read.status().message(),
            "tls: key_file: " + TempDir() + ": is a directory, not a file");
}

// Secret mode reads the same bytes, across many read() calls and past the size fstat gave.
TEST(ReadFileWithPrefixTest, SecretModeReadsTheSameBytes) {
  std::string path = TempDir() + "/key.pem";
  std::string text;
  for (int i = 0; i < 70000; ++i) text.push_back(static_cast<char>('a' + i % 26));
  std::ofstream(path, std::ios::binary) << text;
  ReadFileOptions options;
  options.secret = true;
  options.max_bytes = 1 << 20;
  absl::StatusOr<std::string> read =
      ReadFileWithPrefix(path, "rsa: private_key_file " + path, options);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, text);
  options.max_bytes = 1000;
  read = ReadFileWithPrefix(path, "rsa: private_key_file " + path, options);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(read.status().message(), "rsa: private_key_file " + path + ": larger than 1000 bytes");
}

// A file that reports size 0 but has contents (procfs): the secret-mode reserve cannot rely on
// fstat.
TEST(ReadFileWithPrefixTest, SecretModeReadsFilesWhoseSizeIsUnknown) {
  ReadFileOptions options;
  options.secret = true;
  absl::StatusOr<std::string> read = ReadFileWithPrefix("/proc/self/status", "status", options);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(absl::StrContains(*read, "Pid:")) << *read;
}

}  // namespace
}  // namespace hublink
