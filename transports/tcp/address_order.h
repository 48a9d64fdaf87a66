// The addresses the tcp transport connects to and the order it tries them in (Happy Eyeballs v2,
// RFC 8305 §4). Pure: no sockets, no loop, so the ordering is tested without a resolver that
// answers with both families.
#ifndef HUBLINK_TRANSPORTS_TCP_ADDRESS_ORDER_H_
#define HUBLINK_TRANSPORTS_TCP_ADDRESS_ORDER_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace hublink {

// An IPv4 or IPv6 address with its port, ready for connect().
struct SocketAddress {
  sockaddr_storage storage;
  socklen_t length;

  int family() const { return storage.ss_family; }
};

// `text` as an address when it is an IPv4 or IPv6 literal ("192.0.2.7", "2001:db8::7", or
// bracketed "[2001:db8::7]") of an allowed `family` (AF_INET, AF_INET6, or AF_UNSPEC for either).
absl::optional<SocketAddress> ParseIpLiteral(absl::string_view text, uint16_t port, int family);

// "192.0.2.7" or "[2001:db8::7]": the address alone, without the port.
std::string FormatIp(const SocketAddress& address);
// "192.0.2.7:1883" or "[2001:db8::7]:1883".
std::string FormatIpAndPort(const SocketAddress& address);

// RFC 8305 §4: keeps the resolver's order (getaddrinfo sorts by RFC 6724, which prefers IPv6 where
// it is usable) within each family, and interleaves the families starting with the family of the
// first address: one address of it ("First Address Family Count" 1), then one of the other, and so
// on; what is left of the longer family comes last. A broken family then costs one Connection
// Attempt Delay, not one per address it has.
std::vector<SocketAddress> InterleaveFamilies(std::vector<SocketAddress> sorted);

}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_TCP_ADDRESS_ORDER_H_
