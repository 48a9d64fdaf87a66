#include "auth/secret_file.h"

#include <fcntl.h>
#include <openssl/mem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hublink {
namespace auth {
namespace {

constexpr size_t kMaxSecretFileBytes = 1 << 20;

absl::Status ErrnoStatus(int error, absl::string_view prefix) {
  const std::string message = absl::StrCat(prefix, ": ", std::strerror(error));
  switch (error) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace

absl::StatusOr<std::string> ReadSecretFile(absl::string_view stage, absl::string_view field,
                                           const std::string& path) {
  const std::string prefix = absl::StrCat(stage, ": ", field, " ", path);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, prefix);
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus(errno, prefix);
  if (S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, ": is a directory, not a file"));
  }
  std::string contents;
  // Sized up front so growth rarely reallocates, which would leave an unwiped copy of the secret
  // behind.
  contents.reserve(
      static_cast<size_t>(std::min<off_t>(std::max<off_t>(st.st_size, 0), kMaxSecretFileBytes)) +
      1);
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      OPENSSL_cleanse(buffer, sizeof(buffer));
      Wipe(contents);
      return ErrnoStatus(error, prefix);
    }
    if (n == 0) break;
    if (contents.size() + n > kMaxSecretFileBytes) {
      OPENSSL_cleanse(buffer, sizeof(buffer));
      Wipe(contents);
      return absl::InvalidArgumentError(absl::StrCat(prefix, ": larger than ", kMaxSecretFileBytes,
                                                     " bytes; not a secret or key file"));
    }
    contents.append(buffer, n);
  }
  OPENSSL_cleanse(buffer, sizeof(buffer));
  return contents;
}

void Wipe(std::string& secret) {
  if (!secret.empty()) OPENSSL_cleanse(&secret[0], secret.size());
  secret.clear();
}

}  // namespace auth
}  // namespace hublink
