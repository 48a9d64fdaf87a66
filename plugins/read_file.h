// Reading a file a config names (a pipeline, a device_info.json, a CA bundle, a key), with the
// error policy of docs/errors.md: the errno's code (ENOENT -> kNotFound, EACCES -> kPermissionDenied,
// EISDIR -> kFailedPrecondition, ... as absl::ErrnoToStatusCode maps them) and a message that names
// the file and ends with the cause (strerror's text). Plugins use it for their own config files so
// that every layer reports an unreadable file the same way. Secrets go through auth/secret_file.h,
// which reads with `ReadFileOptions::secret` and gives its own helpers for wiping the result.
//
//   HUBLINK_ASSIGN_OR_RETURN(std::string pem, ReadFileContents(config.ca_file(), "CA file"));
//   // error: "/etc/x.pem: cannot read CA file: No such file or directory"
#ifndef HUBLINK_PLUGINS_READ_FILE_H_
#define HUBLINK_PLUGINS_READ_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hublink {

// The whole file at `path`. Errors read "<path>: cannot read <what>: <cause>"; a file over
// `max_bytes` is kInvalidArgument (no config file is that large; a device path or a log file
// named by mistake would be). An empty file is read as "": whether that is fine is the caller's
// call.
absl::StatusOr<std::string> ReadFileContents(const std::string& path, absl::string_view what,
                                             size_t max_bytes = size_t{64} << 20);

struct ReadFileOptions {
  // A larger file is kInvalidArgument "<prefix>: larger than N bytes", the only kInvalidArgument
  // the reader returns.
  size_t max_bytes = size_t{64} << 20;
  // For keys and passwords: no copy of the contents is left behind in freed memory (the read
  // buffer, the block a growing string leaves, what was read before an error are all wiped). The
  // caller wipes the result it gets.
  bool secret = false;
};

// ReadFileContents for callers whose messages have their own shape: errors read
// "<prefix>: <cause>", e.g. prefix "hmac: device_secret_file /run/secret" gives
// "hmac: device_secret_file /run/secret: No such file or directory". `prefix` should name the path.
// Causes: strerror's text, "is a directory, not a file" (kFailedPrecondition, as EISDIR), or
// "larger than N bytes".
absl::StatusOr<std::string> ReadFileWithPrefix(const std::string& path, absl::string_view prefix,
                                               const ReadFileOptions& options = ReadFileOptions());

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_READ_FILE_H_
