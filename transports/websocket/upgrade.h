// The WebSocket opening handshake (RFC 6455 section 4) as pure code: the client's HTTP/1.1 upgrade
// request and an incremental parser for the server's response. No sockets; the transport feeds
// bytes as they arrive.
#ifndef HUBLINK_TRANSPORTS_WEBSOCKET_UPGRADE_H_
#define HUBLINK_TRANSPORTS_WEBSOCKET_UPGRADE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "transports/http/http_syntax.h"

namespace hublink {
namespace websocket {

struct UpgradeRequest {
  std::string host;
  uint16_t port = 0;
  std::string path = "/";
  // Query parameters appended to path, percent-encoded here (e.g. from a signer).
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::string> subprotocols;
  std::string origin;
  std::string user_agent;
  // Extra headers, in order. A "Host" entry replaces the computed one.
  std::vector<std::pair<std::string, std::string>> headers;
};

// A fresh Sec-WebSocket-Key: base64 of 16 bytes from BoringSSL's CSPRNG.
std::string GenerateKey();
// base64(SHA-1(key + the RFC 6455 GUID)): what the server must answer in Sec-WebSocket-Accept.
std::string ComputeAccept(absl::string_view key);

// Checks a header name and value (see http/http_syntax.h). Errors name `what`.
using http::ValidateHeader;
// True for headers the handshake computes itself and users may not set.
bool IsReservedHeader(absl::string_view name);

// The complete request, ending with the blank line.
std::string BuildUpgradeRequest(const UpgradeRequest& request, absl::string_view key);

// Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), also the obsolete RFC 850 and asctime
// forms that RFC 7231 says recipients must accept.
absl::optional<absl::Time> ParseHttpDate(absl::string_view text);

struct UpgradeResponse {
  std::string status_line;  // "HTTP/1.1 101 Switching Protocols"
  int status_code = 0;
  // Names lower-cased; repeated headers joined with ", " as HTTP allows.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string subprotocol;  // empty when the server chose none
  absl::optional<absl::Time> date;

  // The value of header `name` (any case), or null.
  const std::string* Find(absl::string_view name) const;
};

// Consumes the server's response across any number of reads. Feed() returns false while the header
// block is incomplete, true once it validated, or an error; after true, TakeLeftover() returns the
// bytes that followed the header block (the first frames).
class UpgradeResponseParser {
 public:
  // `offered` are the subprotocols the request named; empty means none were.
  UpgradeResponseParser(std::string key, std::vector<std::string> offered, size_t max_bytes,
                        bool allow_missing_subprotocol = false);

  absl::StatusOr<bool> Feed(absl::string_view bytes);
  const UpgradeResponse& response() const { return response_; }
  std::string TakeLeftover() { return std::move(leftover_); }
  size_t bytes_seen() const { return buffer_.size(); }

 private:
  absl::Status Parse(absl::string_view block);
  absl::Status Validate();

  const std::string expected_accept_;
  const std::vector<std::string> offered_;
  const size_t max_bytes_;
  const bool allow_missing_subprotocol_;
  std::string buffer_;
  size_t scanned_ = 0;  // where the search for the blank line resumes
  bool done_ = false;
  UpgradeResponse response_;
  std::string leftover_;
};

}  // namespace websocket
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_WEBSOCKET_UPGRADE_H_
