#include "transports/http/http_syntax.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace hublink {
namespace http {

bool IsTokenChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  return absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
}

std::string Sanitize(absl::string_view text, size_t limit) {
  std::string out;
  for (char c : text.substr(0, limit)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (text.size() > limit) out += "...";
  return out;
}

absl::Status ValidateHeader(absl::string_view name, absl::string_view value,
                            absl::string_view what) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": header name is empty"));
  for (char c : name) {
    if (!IsTokenChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": header name \"", Sanitize(name), "\" is not an HTTP token"));
    }
  }
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": value of header ", name, " contains CR, LF or NUL"));
    }
  }
  return absl::OkStatus();
}

}  // namespace http
}  // namespace hublink
