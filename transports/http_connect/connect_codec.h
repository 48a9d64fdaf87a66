// The HTTP/1.1 CONNECT exchange (RFC 9110 section 9.3.6) as pure code: the request asking a proxy
// for a tunnel, and an incremental parser for the proxy's answer. No sockets; the transport feeds
// bytes as they arrive.
#ifndef HUBLINK_TRANSPORTS_HTTP_CONNECT_CONNECT_CODEC_H_
#define HUBLINK_TRANSPORTS_HTTP_CONNECT_CONNECT_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "transports/http/http_syntax.h"

namespace hublink {
namespace http_connect {

struct ConnectRequest {
  std::string host;  // the endpoint: DNS name, IPv4 or IPv6 literal (bracketed here)
  uint16_t port = 0;
  // Basic proxy authentication when `username` is set.
  std::string username;
  std::string password;
  // Extra headers, in order.
  std::vector<std::pair<std::string, std::string>> headers;
};

// Checks a header name and value (see http/http_syntax.h). Errors name `what`.
using http::ValidateHeader;
// True for headers the request computes itself (Host, Proxy-Authorization, Connection, ...).
bool IsReservedHeader(absl::string_view name);
// Checks Basic credentials (RFC 7617): no ':' in the user name, no control characters in either.
// Errors never quote the password.
absl::Status ValidateCredentials(absl::string_view username, absl::string_view password);

// "host:port" in authority form, IPv6 literals bracketed.
std::string Authority(absl::string_view host, uint16_t port);

// The complete request, ending with the blank line. Built in one buffer sized up front, so no
// reallocation leaves a copy of the credentials in freed memory; the caller wipes it once sent.
std::string BuildConnectRequest(const ConnectRequest& request);

// Printable ASCII only and bounded: proxy-provided text goes into error messages and logs.
using http::Sanitize;

// Consumes the proxy's answer across any number of reads. Interim 1xx responses are skipped.
// Feed() returns false while the final response's header block is incomplete, true once a 2xx
// arrived, or an error naming the status line (codes per docs/errors.md: 407/401
// kUnauthenticated, 403 kPermissionDenied, 408/429/5xx kUnavailable, anything else and non-HTTP
// answers kDataLoss). After true, TakeLeftover() returns the bytes that followed the header block:
// the first bytes of the tunnel (a 2xx CONNECT answer has no body, whatever Content-Length says).
class ConnectResponseParser {
 public:
  // `target` ("host:port") and `sent_credentials` only shape error messages.
  ConnectResponseParser(std::string target, bool sent_credentials, size_t max_bytes);

  absl::StatusOr<bool> Feed(absl::string_view bytes);
  std::string TakeLeftover() { return std::move(leftover_); }
  // Bytes of the answer seen so far (all responses, interim ones included).
  size_t bytes_seen() const { return total_seen_ + buffer_.size(); }
  const std::string& status_line() const { return status_line_; }
  int status_code() const { return status_code_; }

 private:
  // Parses one complete header block; true when it was a final 2xx.
  absl::StatusOr<bool> ParseBlock(absl::string_view block);

  const std::string target_;
  const bool sent_credentials_;
  const size_t max_bytes_;
  std::string buffer_;
  size_t scanned_ = 0;  // where the search for the blank line resumes
  size_t total_seen_ = 0;
  bool done_ = false;
  std::string status_line_;
  int status_code_ = 0;
  std::string leftover_;
};

}  // namespace http_connect
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_HTTP_CONNECT_CONNECT_CODEC_H_
