// The SOCKS5 client handshake (RFC 1928 CONNECT, RFC 1929 username/password) as pure code: what to
// send, and an incremental parser for each of the proxy's answers. No sockets; the transport feeds
// bytes as they arrive and sends what Feed() asks for.
#ifndef HUBLINK_TRANSPORTS_SOCKS5_SOCKS5_CODEC_H_
#define HUBLINK_TRANSPORTS_SOCKS5_SOCKS5_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hublink {
namespace socks5 {

enum AddressType : uint8_t { kIpv4 = 1, kDomainName = 3, kIpv6 = 4 };

// Where the proxy should connect: an address (4 or 16 bytes, network order) or a domain name.
struct Destination {
  AddressType type = kDomainName;
  std::string address;
  uint16_t port = 0;
};

// An IPv4 or IPv6 literal ("[::1]" too) becomes an address; anything else a domain name (1..255
// bytes, kInvalidArgument otherwise).
absl::StatusOr<Destination> DestinationFor(absl::string_view host, uint16_t port);
// "1.2.3.4:80", "[::1]:80", "name:80".
std::string Describe(const Destination& destination);

// RFC 1928 section 6 reply field names, e.g. "connection refused" for 5.
std::string ReplyName(uint8_t reply);
// A failed CONNECT reply as a status (docs/errors.md): ruleset kPermissionDenied; general failure,
// network or host unreachable, refused kUnavailable; TTL expired kDeadlineExceeded; command or
// address type not supported kInvalidArgument (the config asks what this proxy cannot do);
// unassigned codes kDataLoss.
absl::Status ReplyError(uint8_t reply, absl::string_view target);

// Checks RFC 1929 credentials: username and password 1..255 bytes. Errors never quote the password.
absl::Status ValidateCredentials(absl::string_view username, absl::string_view password);

class ClientHandshake {
 public:
  // With a non-empty `username`, offers username/password (and no authentication); otherwise only
  // no authentication. The password is wiped on destruction.
  ClientHandshake(Destination destination, std::string username, std::string password);
  ~ClientHandshake();
  ClientHandshake(const ClientHandshake&) = delete;
  ClientHandshake& operator=(const ClientHandshake&) = delete;

  // The first bytes to send: the method selection message.
  std::string Greeting() const;
  // Consumes the proxy's bytes across any number of reads, appending what to send next to `out`
  // (the authentication request, the CONNECT request; the caller wipes it once sent). Returns false
  // while more is needed, true once the CONNECT succeeded, or an error.
  absl::StatusOr<bool> Feed(absl::string_view bytes, std::string* out);
  // After true: the bytes that followed the reply (the endpoint's first bytes).
  std::string TakeLeftover() { return std::move(buffer_); }
  size_t bytes_seen() const { return bytes_seen_; }
  // After true: the address the proxy bound for the connection, e.g. "127.0.0.1:40312".
  const std::string& bound() const { return bound_; }
  // "no authentication" or "username/password" once chosen.
  const char* method() const { return method_; }

 private:
  enum class State { kMethod, kAuth, kReply, kDone };
  absl::StatusOr<bool> Step(std::string* out);
  std::string ConnectRequest() const;

  const Destination destination_;
  const std::string target_;
  std::string username_;
  std::string password_;
  State state_ = State::kMethod;
  std::string buffer_;
  size_t bytes_seen_ = 0;
  std::string bound_;
  const char* method_ = "";
};

}  // namespace socks5
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_SOCKS5_SOCKS5_CODEC_H_
