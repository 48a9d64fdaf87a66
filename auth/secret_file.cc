#include "auth/secret_file.h"

#include <openssl/mem.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "plugins/read_file.h"

namespace hublink {
namespace auth {

absl::StatusOr<std::string> ReadSecretFile(absl::string_view stage, absl::string_view field,
                                           const std::string& path) {
  ReadFileOptions options;
  options.max_bytes = 1 << 20;
  options.secret = true;
  absl::StatusOr<std::string> contents =
      ReadFileWithPrefix(path, absl::StrCat(stage, ": ", field, " ", path), options);
  if (contents.status().code() == absl::StatusCode::kInvalidArgument) {
    // The reader's only kInvalidArgument is the size limit: say what such a file probably is.
    return absl::InvalidArgumentError(
        absl::StrCat(contents.status().message(), "; not a secret or key file"));
  }
  return contents;
}

void Wipe(std::string& secret) {
  if (!secret.empty()) OPENSSL_cleanse(&secret[0], secret.size());
  secret.clear();
}

}  // namespace auth
}  // namespace hublink
