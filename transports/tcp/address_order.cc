#include "transports/tcp/address_order.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace hublink {

absl::optional<SocketAddress> ParseIpLiteral(absl::string_view text, uint16_t port, int family) {
  // inet_pton reads a C string: a NUL inside would cut the text short and pass what precedes it.
  if (text.find('\0') != absl::string_view::npos) return absl::nullopt;
  SocketAddress address{};
  if (family != AF_INET6) {
    auto& v4 = reinterpret_cast<sockaddr_in&>(address.storage);
    if (inet_pton(AF_INET, std::string(text).c_str(), &v4.sin_addr) == 1) {
      v4.sin_family = AF_INET;
      v4.sin_port = htons(port);
      address.length = sizeof(v4);
      return address;
    }
  }
  if (family != AF_INET) {
    absl::string_view bare = text;
    if (absl::ConsumePrefix(&bare, "[") && !absl::ConsumeSuffix(&bare, "]")) return absl::nullopt;
    auto& v6 = reinterpret_cast<sockaddr_in6&>(address.storage);
    if (inet_pton(AF_INET6, std::string(bare).c_str(), &v6.sin6_addr) == 1) {
      v6.sin6_family = AF_INET6;
      v6.sin6_port = htons(port);
      address.length = sizeof(v6);
      return address;
    }
  }
  return absl::nullopt;
}

std::string FormatIp(const SocketAddress& address) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (address.family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(address.storage).sin_addr, buf,
              sizeof(buf));
    return buf;
  }
  inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(address.storage).sin6_addr, buf,
            sizeof(buf));
  return absl::StrCat("[", buf, "]");
}

std::string FormatIpAndPort(const SocketAddress& address) {
  // sin_port and sin6_port sit at the same offset, but say which one is read.
  uint16_t port = address.family() == AF_INET
                      ? reinterpret_cast<const sockaddr_in&>(address.storage).sin_port
                      : reinterpret_cast<const sockaddr_in6&>(address.storage).sin6_port;
  return absl::StrCat(FormatIp(address), ":", ntohs(port));
}

std::vector<SocketAddress> InterleaveFamilies(std::vector<SocketAddress> sorted) {
  if (sorted.empty()) return sorted;
  const int first_family = sorted.front().family();
  std::vector<SocketAddress> first;
  std::vector<SocketAddress> other;
  for (const SocketAddress& address : sorted) {
    (address.family() == first_family ? first : other).push_back(address);
  }
  std::vector<SocketAddress> interleaved;
  interleaved.reserve(sorted.size());
  for (size_t i = 0; i < first.size() || i < other.size(); ++i) {
    if (i < first.size()) interleaved.push_back(first[i]);
    if (i < other.size()) interleaved.push_back(other[i]);
  }
  return interleaved;
}

}  // namespace hublink
