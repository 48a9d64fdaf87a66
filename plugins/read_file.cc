#include "plugins/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hublink {
namespace {

absl::Status ErrnoError(int error, const std::string& path, absl::string_view what) {
  // ErrnoToStatus appends ": <strerror>".
  return absl::ErrnoToStatus(error, absl::StrCat(path, ": cannot read ", what));
}

}  // namespace

absl::StatusOr<std::string> ReadFileContents(const std::string& path, absl::string_view what,
                                             size_t max_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, path, what);
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoError(errno, path, what);
  if (S_ISDIR(st.st_mode)) return ErrnoError(EISDIR, path, what);
  std::string contents;
  char buffer[16384];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, path, what);
    if (n == 0) return contents;
    if (contents.size() + n > max_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": cannot read ", what, ": larger than ", max_bytes, " bytes"));
    }
    contents.append(buffer, n);
  }
}

}  // namespace hublink
