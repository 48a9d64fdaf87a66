// HTTP/1.1 syntax shared by every layer that writes a request or reads a response (the WebSocket
// upgrade, the proxy CONNECT): pure functions, no sockets.
#ifndef HUBLINK_TRANSPORTS_HTTP_HTTP_SYNTAX_H_
#define HUBLINK_TRANSPORTS_HTTP_HTTP_SYNTAX_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace hublink {
namespace http {

// A tchar of RFC 9110 §5.6.2.
bool IsTokenChar(char c);

// Printable ASCII only and bounded: peer-provided text goes into error messages and logs.
std::string Sanitize(absl::string_view text, size_t limit = 160);

// Checks a header name (an HTTP token) and value (no CR, LF or NUL) so that config or signer input
// cannot inject lines into a request. Errors name `what`, and never quote the value (it may be a
// secret, such as a signed header).
absl::Status ValidateHeader(absl::string_view name, absl::string_view value,
                            absl::string_view what);

}  // namespace http
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_HTTP_HTTP_SYNTAX_H_
