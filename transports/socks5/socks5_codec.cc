#include "transports/socks5/socks5_codec.h"

#include <arpa/inet.h>
#include <openssl/mem.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace hublink {
namespace socks5 {
namespace {

constexpr uint8_t kVersion = 5;
constexpr uint8_t kMethodNone = 0x00;
constexpr uint8_t kMethodUserPass = 0x02;
constexpr uint8_t kNoAcceptableMethod = 0xff;
constexpr uint8_t kCommandConnect = 1;

void Wipe(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(&s[0], s.size());
  s.clear();
}

// Printable ASCII only and bounded: proxy or config text going into messages.
std::string Printable(absl::string_view text, size_t limit = 64) {
  std::string out;
  for (char c : text.substr(0, limit)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (text.size() > limit) out += "...";
  return out;
}

std::string AddressText(AddressType type, absl::string_view address, uint16_t port) {
  char text[INET6_ADDRSTRLEN] = "";
  if (type == kIpv4 && address.size() == 4) {
    inet_ntop(AF_INET, address.data(), text, sizeof(text));
    return absl::StrCat(text, ":", port);
  }
  if (type == kIpv6 && address.size() == 16) {
    inet_ntop(AF_INET6, address.data(), text, sizeof(text));
    return absl::StrCat("[", text, "]:", port);
  }
  return absl::StrCat(Printable(address, 255), ":", port);
}

}  // namespace

absl::StatusOr<Destination> DestinationFor(absl::string_view host, uint16_t port) {
  Destination destination;
  destination.port = port;
  std::string literal(host);
  if (absl::StartsWith(literal, "[") && absl::EndsWith(literal, "]")) {
    literal = literal.substr(1, literal.size() - 2);
  }
  unsigned char bytes[16];
  if (inet_pton(AF_INET, literal.c_str(), bytes) == 1) {
    destination.type = kIpv4;
    destination.address.assign(reinterpret_cast<char*>(bytes), 4);
    return destination;
  }
  if (inet_pton(AF_INET6, literal.c_str(), bytes) == 1) {
    destination.type = kIpv6;
    destination.address.assign(reinterpret_cast<char*>(bytes), 16);
    return destination;
  }
  if (host.empty() || host.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("socks5: endpoint host \"", host.substr(0, 64), host.size() > 64 ? "..." : "",
                     "\" cannot be sent as a SOCKS5 domain name (1..255 bytes)"));
  }
  destination.type = kDomainName;
  destination.address = std::string(host);
  return destination;
}

std::string Describe(const Destination& destination) {
  return AddressText(destination.type, destination.address, destination.port);
}

std::string ReplyName(uint8_t reply) {
  switch (reply) {
    case 0:
      return "succeeded";
    case 1:
      return "general SOCKS server failure";
    case 2:
      return "connection not allowed by ruleset";
    case 3:
      return "network unreachable";
    case 4:
      return "host unreachable";
    case 5:
      return "connection refused";
    case 6:
      return "TTL expired";
    case 7:
      return "command not supported";
    case 8:
      return "address type not supported";
    default:
      return absl::StrFormat("unassigned reply code 0x%02x", reply);
  }
}

absl::Status ReplyError(uint8_t reply, absl::string_view target) {
  std::string message = absl::StrCat("socks5: the proxy could not connect to ", target, ": ",
                                     ReplyName(reply), " (reply ", reply, ")");
  switch (reply) {
    case 2:
      return absl::PermissionDeniedError(message);
    case 1:
    case 3:
    case 4:
    case 5:
      return absl::UnavailableError(message);
    case 6:
      return absl::DeadlineExceededError(message);
    case 7:
      return absl::InvalidArgumentError(message);
    case 8:
      return absl::InvalidArgumentError(
          absl::StrCat(message, "; with a DNS name, remote_dns: false sends an address instead"));
    default:
      return absl::DataLossError(message);
  }
}

absl::Status ValidateCredentials(absl::string_view username, absl::string_view password) {
  if (username.empty() && !password.empty()) {
    return absl::InvalidArgumentError(
        "socks5: a password is set but username is empty (RFC 1929 needs both)");
  }
  if (username.empty()) return absl::OkStatus();
  if (username.size() > 255) {
    return absl::InvalidArgumentError("socks5: username: at most 255 bytes (RFC 1929)");
  }
  if (password.empty()) {
    return absl::InvalidArgumentError(
        "socks5: username is set but the password is empty (RFC 1929 needs 1..255 bytes)");
  }
  if (password.size() > 255) {
    return absl::InvalidArgumentError("socks5: password: at most 255 bytes (RFC 1929)");
  }
  return absl::OkStatus();
}

ClientHandshake::ClientHandshake(Destination destination, std::string username,
                                 std::string password)
    : destination_(std::move(destination)),
      target_(Describe(destination_)),
      username_(std::move(username)),
      password_(std::move(password)) {}

ClientHandshake::~ClientHandshake() {
  Wipe(password_);
  Wipe(buffer_);
}

std::string ClientHandshake::Greeting() const {
  if (username_.empty()) return std::string({char(kVersion), 1, char(kMethodNone)});
  return std::string({char(kVersion), 2, char(kMethodNone), char(kMethodUserPass)});
}

std::string ClientHandshake::ConnectRequest() const {
  std::string request = {char(kVersion), char(kCommandConnect), 0, char(destination_.type)};
  if (destination_.type == kDomainName) {
    request.push_back(static_cast<char>(destination_.address.size()));
  }
  request += destination_.address;
  request.push_back(static_cast<char>(destination_.port >> 8));
  request.push_back(static_cast<char>(destination_.port & 0xff));
  return request;
}

absl::StatusOr<bool> ClientHandshake::Feed(absl::string_view bytes, std::string* out) {
  if (state_ == State::kDone) {
    buffer_.append(bytes.data(), bytes.size());
    return true;
  }
  buffer_.append(bytes.data(), bytes.size());
  for (;;) {
    State before = state_;
    absl::StatusOr<bool> step = Step(out);
    if (!step.ok() || *step) return step;
    if (state_ == before) return false;  // needs more bytes
  }
}

absl::StatusOr<bool> ClientHandshake::Step(std::string* out) {
  const auto byte = [this](size_t i) { return static_cast<uint8_t>(buffer_[i]); };
  switch (state_) {
    case State::kMethod: {
      if (buffer_.empty()) return false;
      if (byte(0) != kVersion) {
        return absl::DataLossError(absl::StrFormat(
            "socks5: the proxy's answer is not SOCKS5 (version byte 0x%02x%s; is this a SOCKS5 "
            "proxy?)",
            byte(0), byte(0) == 'H' ? ", which looks like HTTP" : ""));
      }
      if (buffer_.size() < 2) return false;
      uint8_t method = byte(1);
      buffer_.erase(0, 2);
      bytes_seen_ += 2;
      if (method == kNoAcceptableMethod) {
        return absl::UnauthenticatedError(
            username_.empty()
                ? "socks5: the proxy requires authentication; set username and password"
                : "socks5: the proxy accepts none of the offered authentication methods "
                  "(username/password, none)");
      }
      if (method == kMethodNone) {
        method_ = "no authentication";
        state_ = State::kReply;
        *out += ConnectRequest();
        return false;
      }
      if (method == kMethodUserPass && !username_.empty()) {
        method_ = "username/password";
        state_ = State::kAuth;
        // RFC 1929: VER 1, ULEN, UNAME, PLEN, PASSWD. Sized up front: no partial copies.
        out->reserve(out->size() + 3 + username_.size() + password_.size());
        out->push_back(1);
        out->push_back(static_cast<char>(username_.size()));
        out->append(username_);
        out->push_back(static_cast<char>(password_.size()));
        out->append(password_);
        return false;
      }
      return absl::DataLossError(
          absl::StrFormat("socks5: the proxy chose authentication method 0x%02x, which was not "
                          "offered",
                          method));
    }
    case State::kAuth: {
      if (buffer_.size() < 2) return false;
      // RFC 1929 says version 1; some servers answer 5. Either is taken.
      if (byte(0) != 1 && byte(0) != kVersion) {
        return absl::DataLossError(absl::StrFormat(
            "socks5: malformed username/password answer (version byte 0x%02x)", byte(0)));
      }
      uint8_t status = byte(1);
      buffer_.erase(0, 2);
      bytes_seen_ += 2;
      if (status != 0) {
        return absl::UnauthenticatedError(
            absl::StrCat("socks5: the proxy refused username \"", Printable(username_),
                         "\" and its password (RFC 1929 status ", status, ")"));
      }
      state_ = State::kReply;
      *out += ConnectRequest();
      return false;
    }
    case State::kReply: {
      if (buffer_.empty()) return false;
      if (byte(0) != kVersion) {
        return absl::DataLossError(
            absl::StrFormat("socks5: malformed CONNECT reply (version byte 0x%02x)", byte(0)));
      }
      if (buffer_.size() < 2) return false;
      if (byte(1) != 0) return ReplyError(byte(1), target_);
      if (buffer_.size() < 5) return false;
      size_t address_size;
      switch (byte(3)) {
        case kIpv4:
          address_size = 4;
          break;
        case kIpv6:
          address_size = 16;
          break;
        case kDomainName:
          address_size = 1 + byte(4);
          break;
        default:
          return absl::DataLossError(
              absl::StrFormat("socks5: CONNECT reply with unknown address type 0x%02x", byte(3)));
      }
      size_t size = 4 + address_size + 2;
      if (buffer_.size() < size) return false;
      absl::string_view address = absl::string_view(buffer_).substr(4, address_size);
      if (byte(3) == kDomainName) address.remove_prefix(1);
      uint16_t port = static_cast<uint16_t>((byte(size - 2) << 8) | byte(size - 1));
      bound_ = AddressText(static_cast<AddressType>(byte(3)), address, port);
      buffer_.erase(0, size);
      bytes_seen_ += size;
      state_ = State::kDone;
      return true;
    }
    case State::kDone:
      return true;
  }
  return false;
}

}  // namespace socks5
}  // namespace hublink
