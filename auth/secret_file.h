// Reading secrets (device secrets, private keys) from files, with errors that name the file and
// never its contents, and wiping secret bytes from memory once they are no longer needed.
#ifndef HUBLINK_AUTH_SECRET_FILE_H_
#define HUBLINK_AUTH_SECRET_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hublink {
namespace auth {

// The whole file at `path` (at most 1 MiB: anything larger is not a key), read with
// plugins/read_file.h's ReadFileWithPrefix in secret mode (no copy left in freed memory; wipe the
// result with Wipe or WipeOnExit). Errors read "<stage>: <field> <path>: <cause>", with the codes
// of docs/errors.md: the errno's (ENOENT kNotFound, EACCES kPermissionDenied, a directory
// kFailedPrecondition "is a directory, not a file", ...), kInvalidArgument for a file too large.
absl::StatusOr<std::string> ReadSecretFile(absl::string_view stage, absl::string_view field,
                                           const std::string& path);

// Overwrites `secret` with zeros (in a way the compiler keeps) and empties it.
void Wipe(std::string& secret);

// Wipes a string when it goes out of scope, on every return path.
class WipeOnExit {
 public:
  explicit WipeOnExit(std::string& secret) : secret_(secret) {}
  ~WipeOnExit() { Wipe(secret_); }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;

 private:
  std::string& secret_;
};

}  // namespace auth
}  // namespace hublink

#endif  // HUBLINK_AUTH_SECRET_FILE_H_
