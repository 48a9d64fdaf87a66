#include "plugins/read_file.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hublink {
namespace {

absl::Status ErrnoError(int error, absl::string_view prefix) {
  // ErrnoToStatus appends ": <strerror>".
  return absl::ErrnoToStatus(error, prefix);
}

// explicit_bzero: a plain memset before free may be optimised away.
void WipeString(std::string& s) {
  if (!s.empty()) explicit_bzero(&s[0], s.size());
  s.clear();
}

}  // namespace

absl::StatusOr<std::string> ReadFileWithPrefix(const std::string& path, absl::string_view prefix,
                                               const ReadFileOptions& options) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, prefix);
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoError(errno, prefix);
  // read() would fail with EISDIR too; this says what to do instead of strerror's "Is a directory".
  if (S_ISDIR(st.st_mode)) {
    return absl::Status(absl::ErrnoToStatusCode(EISDIR),
                        absl::StrCat(prefix, ": is a directory, not a file"));
  }
  std::string contents;
  if (options.secret && st.st_size > 0) {
    // Sized up front so that growing rarely moves the contents (moving leaves a copy behind).
    contents.reserve(std::min<size_t>(static_cast<size_t>(st.st_size), options.max_bytes) + 1);
  }
  char buffer[16384];
  struct BufferWiper {
    char* bytes;
    size_t size;
    bool wipe;
    ~BufferWiper() {
      if (wipe) explicit_bzero(bytes, size);
    }
  } buffer_wiper{buffer, sizeof(buffer), options.secret};
  auto fail = [&](absl::Status status) {
    if (options.secret) WipeString(contents);
    return status;
  };
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(ErrnoError(errno, prefix));
    if (n == 0) return contents;
    const size_t size = contents.size() + static_cast<size_t>(n);
    if (size > options.max_bytes) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat(prefix, ": larger than ", options.max_bytes, " bytes")));
    }
    if (options.secret && size > contents.capacity()) {
      // The file grew since fstat: move to a larger block by hand, wiping the old one.
      std::string larger;
      larger.reserve(std::min(2 * size, options.max_bytes + 1));
      larger.append(contents);
      WipeString(contents);
      contents.swap(larger);
    }
    contents.append(buffer, static_cast<size_t>(n));
  }
}

absl::StatusOr<std::string> ReadFileContents(const std::string& path, absl::string_view what,
                                             size_t max_bytes) {
  ReadFileOptions options;
  options.max_bytes = max_bytes;
  return ReadFileWithPrefix(path, absl::StrCat(path, ": cannot read ", what), options);
}

}  // namespace hublink
