#include "transports/websocket/upgrade.h"

#include <openssl/base64.h>
#include <openssl/sha.h>

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "transports/websocket/frame.h"

namespace hublink {
namespace websocket {
namespace {

constexpr absl::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string Base64(const uint8_t* data, size_t size) {
  size_t encoded_size = 0;
  EVP_EncodedLength(&encoded_size, size);
  std::string out(encoded_size, '\0');
  size_t written = EVP_EncodeBlock(reinterpret_cast<uint8_t*>(&out[0]), data, size);
  out.resize(written);
  return out;
}

using http::IsTokenChar;
using http::Sanitize;

// Whether the comma-separated header value lists `token` (case-insensitive).
bool HasToken(absl::string_view value, absl::string_view token) {
  for (absl::string_view item : absl::StrSplit(value, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(item), token)) return true;
  }
  return false;
}

// Appends `text` percent-encoded (RFC 3986 unreserved characters stay as they are).
void AppendPercentEncoded(std::string* out, absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    }
  }
}

// A refused upgrade: 401 and 403 say who we are is refused or not allowed, 429 and 5xx that the
// server cannot serve now; any other answer is not the handshake the protocol asks for.
absl::Status RefusedError(int code, std::string message) {
  if (code == 401) return absl::UnauthenticatedError(message);
  if (code == 403) return absl::PermissionDeniedError(message);
  if (code == 404) return absl::NotFoundError(message);
  if (code == 429 || code >= 500) return absl::UnavailableError(message);
  return absl::DataLossError(message);
}

}  // namespace

std::string GenerateKey() {
  uint8_t nonce[16];
  FillSecureRandom(nonce, sizeof(nonce));
  return Base64(nonce, sizeof(nonce));
}

std::string ComputeAccept(absl::string_view key) {
  std::string input = absl::StrCat(key, kGuid);
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const uint8_t*>(input.data()), input.size(), digest);
  return Base64(digest, sizeof(digest));
}

bool IsReservedHeader(absl::string_view name) {
  for (absl::string_view reserved :
       {"upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
        "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions",
        "content-length", "transfer-encoding"}) {
    if (absl::EqualsIgnoreCase(name, reserved)) return true;
  }
  return false;
}

std::string BuildUpgradeRequest(const UpgradeRequest& request, absl::string_view key) {
  // Signed upgrades carry credentials in headers and query: the request is built in one buffer
  // sized up front, so no reallocation leaves a partial copy behind in freed memory.
  std::string host = absl::StrContains(request.host, ':') && !absl::StartsWith(request.host, "[")
                         ? absl::StrCat("[", request.host, "]")
                         : request.host;
  std::string computed_host = absl::StrCat(host, ":", request.port);
  absl::string_view host_line = computed_host;
  size_t size = 256 + request.path.size() + computed_host.size() + key.size() +
                request.origin.size() + request.user_agent.size();
  for (const auto& [name, value] : request.query) size += 3 * (name.size() + value.size()) + 2;
  for (const std::string& subprotocol : request.subprotocols) size += subprotocol.size() + 2;
  for (const auto& [name, value] : request.headers) {
    size += name.size() + value.size() + 4;
    if (absl::EqualsIgnoreCase(name, "host")) host_line = value;
  }
  std::string out;
  out.reserve(size);
  absl::StrAppend(&out, "GET ", request.path.empty() ? "/" : request.path);
  char separator = absl::StrContains(request.path, '?') ? '&' : '?';
  for (const auto& [name, value] : request.query) {
    out.push_back(separator);
    AppendPercentEncoded(&out, name);
    out.push_back('=');
    AppendPercentEncoded(&out, value);
    separator = '&';
  }
  absl::StrAppend(&out, " HTTP/1.1\r\nHost: ", host_line,
                  "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ", key,
                  "\r\nSec-WebSocket-Version: 13\r\n");
  if (!request.subprotocols.empty()) {
    absl::StrAppend(&out, "Sec-WebSocket-Protocol: ", absl::StrJoin(request.subprotocols, ", "),
                    "\r\n");
  }
  if (!request.origin.empty()) absl::StrAppend(&out, "Origin: ", request.origin, "\r\n");
  if (!request.user_agent.empty())
    absl::StrAppend(&out, "User-Agent: ", request.user_agent, "\r\n");
  for (const auto& [name, value] : request.headers) {
    if (absl::EqualsIgnoreCase(name, "host")) continue;
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  }
  out += "\r\n";
  return out;
}

absl::optional<absl::Time> ParseHttpDate(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  std::string input(text);
  // IMF-fixdate, then RFC 850, then asctime (RFC 7231 section 7.1.1.1).
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    absl::Time time;
    std::string error;
    if (absl::ParseTime(format, input, absl::UTCTimeZone(), &time, &error)) return time;
  }
  return absl::nullopt;
}

const std::string* UpgradeResponse::Find(absl::string_view name) const {
  for (const auto& header : headers) {
    if (absl::EqualsIgnoreCase(header.first, name)) return &header.second;
  }
  return nullptr;
}

UpgradeResponseParser::UpgradeResponseParser(std::string key, std::vector<std::string> offered,
                                             size_t max_bytes, bool allow_missing_subprotocol)
    : expected_accept_(ComputeAccept(key)),
      offered_(std::move(offered)),
      max_bytes_(max_bytes),
      allow_missing_subprotocol_(allow_missing_subprotocol) {}

absl::StatusOr<bool> UpgradeResponseParser::Feed(absl::string_view bytes) {
  if (done_) {
    leftover_.append(bytes.data(), bytes.size());
    return true;
  }
  buffer_.append(bytes.data(), bytes.size());
  // The header block ends at the first empty line; lines end in LF with an optional CR before it
  // (RFC 7230 section 3.5 lets recipients accept a bare LF).
  size_t end = std::string::npos;
  for (size_t i = scanned_; i < buffer_.size(); ++i) {
    if (buffer_[i] != '\n') continue;
    if ((i >= 1 && buffer_[i - 1] == '\n') ||
        (i >= 2 && buffer_[i - 1] == '\r' && buffer_[i - 2] == '\n')) {
      end = i + 1;
      break;
    }
  }
  scanned_ = buffer_.size();
  if (end == std::string::npos) {
    if (buffer_.size() >= max_bytes_) {
      return absl::DataLossError(absl::StrCat(
          "websocket: upgrade response headers exceed max_response_bytes (", max_bytes_,
          "); first line: ", Sanitize(absl::string_view(buffer_).substr(0, buffer_.find('\n')))));
    }
    return false;
  }
  if (end > max_bytes_) {
    return absl::DataLossError(absl::StrCat("websocket: upgrade response headers are ", end,
                                            " bytes, over max_response_bytes (", max_bytes_, ")"));
  }
  leftover_ = buffer_.substr(end);
  buffer_.resize(end);
  done_ = true;
  absl::Status parsed = Parse(buffer_);
  if (!parsed.ok()) return parsed;
  absl::Status valid = Validate();
  if (!valid.ok()) return valid;
  return true;
}

absl::Status UpgradeResponseParser::Parse(absl::string_view block) {
  std::vector<absl::string_view> lines = absl::StrSplit(block, '\n');
  bool first = true;
  for (absl::string_view line : lines) {
    absl::ConsumeSuffix(&line, "\r");
    if (first) {
      first = false;
      response_.status_line = std::string(line);
      // "HTTP/1.1 101 Switching Protocols"; the reason phrase may be empty.
      absl::string_view rest = line;
      if (!absl::ConsumePrefix(&rest, "HTTP/1.") || rest.size() < 5 || rest[1] != ' ' ||
          !absl::ascii_isdigit(rest[2]) || !absl::ascii_isdigit(rest[3]) ||
          !absl::ascii_isdigit(rest[4]) || (rest.size() > 5 && rest[5] != ' ')) {
        return absl::DataLossError(absl::StrCat(
            "websocket: upgrade response is not HTTP/1.x (is this a WebSocket endpoint?): ",
            Sanitize(line)));
      }
      response_.status_code = (rest[2] - '0') * 100 + (rest[3] - '0') * 10 + (rest[4] - '0');
      continue;
    }
    if (line.empty()) break;
    if (line[0] == ' ' || line[0] == '\t') {
      // Obsolete line folding: a continuation of the previous header's value.
      if (response_.headers.empty()) {
        return absl::DataLossError(
            "websocket: malformed upgrade response: continuation line before any header");
      }
      absl::StrAppend(&response_.headers.back().second, " ", absl::StripAsciiWhitespace(line));
      continue;
    }
    size_t colon = line.find(':');
    absl::string_view name = line.substr(0, colon);
    bool token = colon != absl::string_view::npos && !name.empty();
    for (char c : name) token = token && IsTokenChar(c);
    if (!token) {
      return absl::DataLossError(
          absl::StrCat("websocket: malformed upgrade response header line: ", Sanitize(line)));
    }
    std::string lower = absl::AsciiStrToLower(name);
    std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    bool merged = false;
    for (auto& header : response_.headers) {
      if (header.first == lower) {
        absl::StrAppend(&header.second, ", ", value);
        merged = true;
        break;
      }
    }
    if (!merged) response_.headers.emplace_back(std::move(lower), std::move(value));
  }
  return absl::OkStatus();
}

absl::Status UpgradeResponseParser::Validate() {
  if (response_.status_code != 101) {
    std::string message =
        absl::StrCat("websocket: upgrade refused: ", Sanitize(response_.status_line));
    if (const std::string* location = response_.Find("location")) {
      absl::StrAppend(&message, " (Location: ", Sanitize(*location), ")");
    }
    return RefusedError(response_.status_code, std::move(message));
  }
  const std::string* upgrade = response_.Find("upgrade");
  if (upgrade == nullptr || !HasToken(*upgrade, "websocket")) {
    return absl::DataLossError(
        absl::StrCat("websocket: 101 response lacks \"Upgrade: websocket\" (got: ",
                     upgrade ? Sanitize(*upgrade) : "none", ")"));
  }
  const std::string* connection = response_.Find("connection");
  if (connection == nullptr || !HasToken(*connection, "upgrade")) {
    return absl::DataLossError(
        absl::StrCat("websocket: 101 response lacks \"Connection: Upgrade\" (got: ",
                     connection ? Sanitize(*connection) : "none", ")"));
  }
  const std::string* accept = response_.Find("sec-websocket-accept");
  if (accept == nullptr) {
    return absl::DataLossError("websocket: 101 response lacks Sec-WebSocket-Accept");
  }
  if (*accept != expected_accept_) {
    return absl::DataLossError(absl::StrCat(
        "websocket: Sec-WebSocket-Accept mismatch: expected ", expected_accept_, ", got ",
        Sanitize(*accept), " (a proxy or cache may have answered instead of the server)"));
  }
  const std::string* extensions = response_.Find("sec-websocket-extensions");
  if (extensions != nullptr && !extensions->empty()) {
    return absl::DataLossError(absl::StrCat(
        "websocket: server enabled extensions that were not offered: ", Sanitize(*extensions)));
  }
  const std::string* protocol = response_.Find("sec-websocket-protocol");
  std::string offered = offered_.empty() ? "none" : absl::StrJoin(offered_, ", ");
  if (protocol != nullptr && !protocol->empty()) {
    bool known = false;
    for (const std::string& candidate : offered_) known = known || candidate == *protocol;
    if (!known) {
      return absl::DataLossError(absl::StrCat("websocket: server chose subprotocol \"",
                                              Sanitize(*protocol), "\" (offered: ", offered, ")"));
    }
    response_.subprotocol = *protocol;
  } else if (!offered_.empty() && !allow_missing_subprotocol_) {
    return absl::DataLossError(absl::StrCat(
        "websocket: server accepted none of the offered subprotocols (", offered,
        "); set allow_missing_subprotocol if it is known to speak the protocol anyway"));
  }
  if (const std::string* date = response_.Find("date")) response_.date = ParseHttpDate(*date);
  return absl::OkStatus();
}

}  // namespace websocket
}  // namespace hublink
