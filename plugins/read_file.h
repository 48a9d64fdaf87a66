// Reading a file a config names (a pipeline, a device_info.json, a CA bundle), with the error
// policy of docs/errors.md: the errno's code (ENOENT -> kNotFound, EACCES -> kPermissionDenied,
// ...) and a message "<path>: cannot read <what>: <cause>". Plugins use it for their own config
// files so that every layer reports an unreadable file the same way. Secrets go through
// auth/secret_file.h, which also wipes what it read.
#ifndef HUBLINK_PLUGINS_READ_FILE_H_
#define HUBLINK_PLUGINS_READ_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hublink {

// The whole file at `path`; a file over `max_bytes` is kInvalidArgument (no config file is that
// large; a device path or a log file named by mistake would be).
absl::StatusOr<std::string> ReadFileContents(const std::string& path, absl::string_view what,
                                             size_t max_bytes = size_t{64} << 20);

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_READ_FILE_H_
