#include "transports/http_connect/connect_codec.h"

#include <openssl/base64.h>
#include <openssl/mem.h>

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace hublink {
namespace http_connect {
namespace {

constexpr absl::string_view kHttpPrefix = "HTTP/1.";

}  // namespace

bool IsReservedHeader(absl::string_view name) {
  for (absl::string_view reserved : {"host", "proxy-authorization", "connection", "content-length",
                                     "transfer-encoding", "upgrade"}) {
    if (absl::EqualsIgnoreCase(name, reserved)) return true;
  }
  return false;
}

absl::Status ValidateCredentials(absl::string_view username, absl::string_view password) {
  for (char c : username) {
    if (c == ':') {
      return absl::InvalidArgumentError(
          "http_connect: username: must not contain ':' (Basic authentication, RFC 7617)");
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("http_connect: username: contains a control character");
    }
  }
  for (char c : password) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      // Never quote the password, nor where in it the character is.
      return absl::InvalidArgumentError("http_connect: password: contains a control character");
    }
  }
  return absl::OkStatus();
}

std::string Authority(absl::string_view host, uint16_t port) {
  return absl::StrContains(host, ':') && !absl::StartsWith(host, "[")
             ? absl::StrCat("[", host, "]:", port)
             : absl::StrCat(host, ":", port);
}

std::string BuildConnectRequest(const ConnectRequest& request) {
  const std::string authority = Authority(request.host, request.port);
  size_t credentials_size = request.username.size() + 1 + request.password.size();
  size_t encoded_size = 0;
  EVP_EncodedLength(&encoded_size, credentials_size);
  size_t size = 96 + 2 * authority.size() + encoded_size;
  for (const auto& [name, value] : request.headers) size += name.size() + value.size() + 4;
  std::string out;
  out.reserve(size);
  absl::StrAppend(&out, "CONNECT ", authority, " HTTP/1.1\r\nHost: ", authority, "\r\n");
  if (!request.username.empty()) {
    std::string credentials;
    credentials.reserve(credentials_size);
    absl::StrAppend(&credentials, request.username, ":", request.password);
    std::string encoded(encoded_size, '\0');
    size_t written =
        EVP_EncodeBlock(reinterpret_cast<uint8_t*>(&encoded[0]),
                        reinterpret_cast<const uint8_t*>(credentials.data()), credentials.size());
    absl::StrAppend(&out, "Proxy-Authorization: Basic ", absl::string_view(encoded.data(), written),
                    "\r\n");
    OPENSSL_cleanse(&credentials[0], credentials.size());
    OPENSSL_cleanse(&encoded[0], encoded.size());
  }
  for (const auto& [name, value] : request.headers)
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  out += "\r\n";
  return out;
}

ConnectResponseParser::ConnectResponseParser(std::string target, bool sent_credentials,
                                             size_t max_bytes)
    : target_(std::move(target)), sent_credentials_(sent_credentials), max_bytes_(max_bytes) {}

absl::StatusOr<bool> ConnectResponseParser::Feed(absl::string_view bytes) {
  if (done_) {
    leftover_.append(bytes.data(), bytes.size());
    return true;
  }
  buffer_.append(bytes.data(), bytes.size());
  for (;;) {
    // Not HTTP at all (a SOCKS server, TLS, a banner): say so at once rather than wait for a blank
    // line that never comes.
    absl::string_view head = absl::string_view(buffer_).substr(0, kHttpPrefix.size());
    if (head != kHttpPrefix.substr(0, head.size())) {
      return absl::DataLossError(
          absl::StrCat("http_connect: the proxy's answer is not HTTP (is this an HTTP proxy?): ",
                       Sanitize(absl::string_view(buffer_).substr(0, buffer_.find('\n')), 80)));
    }
    // The header block ends at the first empty line; lines end in LF with an optional CR before it
    // (RFC 9112 section 2.2 lets recipients accept a bare LF).
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
    if (end == std::string::npos ? total_seen_ + buffer_.size() >= max_bytes_
                                 : total_seen_ + end > max_bytes_) {
      return absl::DataLossError(absl::StrCat(
          "http_connect: the proxy's answer to CONNECT ", target_,
          " has headers over max_response_bytes (", max_bytes_,
          "); first line: ", Sanitize(absl::string_view(buffer_).substr(0, buffer_.find('\n')))));
    }
    if (end == std::string::npos) return false;
    absl::StatusOr<bool> final_2xx = ParseBlock(absl::string_view(buffer_).substr(0, end));
    if (!final_2xx.ok()) return final_2xx.status();
    if (*final_2xx) {
      leftover_ = buffer_.substr(end);
      total_seen_ += end;
      buffer_.clear();
      done_ = true;
      return true;
    }
    // An interim 1xx: the final answer follows.
    total_seen_ += end;
    buffer_.erase(0, end);
    scanned_ = 0;
    if (buffer_.empty()) return false;
  }
}

absl::StatusOr<bool> ConnectResponseParser::ParseBlock(absl::string_view block) {
  std::vector<absl::string_view> lines = absl::StrSplit(block, '\n');
  absl::string_view line = lines[0];
  absl::ConsumeSuffix(&line, "\r");
  // "HTTP/1.1 200 Connection established"; the reason phrase may be empty.
  absl::string_view rest = line;
  if (!absl::ConsumePrefix(&rest, kHttpPrefix) || rest.size() < 5 ||
      !absl::ascii_isdigit(rest[0]) || rest[1] != ' ' || !absl::ascii_isdigit(rest[2]) ||
      !absl::ascii_isdigit(rest[3]) || !absl::ascii_isdigit(rest[4]) ||
      (rest.size() > 5 && rest[5] != ' ')) {
    return absl::DataLossError(
        absl::StrCat("http_connect: the proxy's answer is not an HTTP/1.x status line (is this an "
                     "HTTP proxy?): ",
                     Sanitize(line)));
  }
  status_line_ = Sanitize(line);
  status_code_ = (rest[2] - '0') * 100 + (rest[3] - '0') * 10 + (rest[4] - '0');
  if (status_code_ >= 200 && status_code_ < 300) return true;
  if (status_code_ >= 100 && status_code_ < 200 && status_code_ != 101) return false;

  std::string challenge;
  for (size_t i = 1; i < lines.size(); ++i) {
    absl::string_view header = lines[i];
    absl::ConsumeSuffix(&header, "\r");
    constexpr absl::string_view kChallenge = "proxy-authenticate:";
    if (absl::StartsWithIgnoreCase(header, kChallenge)) {
      header.remove_prefix(kChallenge.size());
      if (!challenge.empty()) challenge += ", ";
      challenge += Sanitize(absl::StripAsciiWhitespace(header), 80);
    }
  }
  if (status_code_ == 407 || status_code_ == 401) {
    return absl::UnauthenticatedError(absl::StrCat(
        "http_connect: proxy authentication required for CONNECT ", target_, ": ", status_line_,
        sent_credentials_ ? "; the proxy refused the configured username and password"
                          : "; set username and password (or password_file)",
        challenge.empty() ? "" : absl::StrCat(" (Proxy-Authenticate: ", challenge, ")")));
  }
  if (status_code_ == 403) {
    return absl::PermissionDeniedError(
        absl::StrCat("http_connect: the proxy refused CONNECT ", target_, ": ", status_line_,
                     " (its rules do not allow this destination or port)"));
  }
  if (status_code_ == 408 || status_code_ == 429 || status_code_ >= 500) {
    return absl::UnavailableError(absl::StrCat(
        "http_connect: the proxy could not open a tunnel to ", target_, ": ", status_line_));
  }
  return absl::DataLossError(
      absl::StrCat("http_connect: unexpected answer to CONNECT ", target_, ": ", status_line_));
}

}  // namespace http_connect
}  // namespace hublink
