// "tcp": the base transport. Resolves the endpoint (IPv4 and IPv6, off the loop thread), or takes
// the addresses pinned in its config, and races connects to them the Happy Eyeballs v2 way (RFC
// 8305): families interleaved, the next attempt started 250 ms (connection_attempt_delay) after
// the last while that one is still pending, or at once when it failed; the first to connect is
// kept and the others closed, all under one deadline. Disables Nagle, and queues writes with
// backpressure. Close() flushes the queue and waits for the peer's FIN within close_timeout
// (default 3 s), then aborts with kDeadlineExceeded if bytes were left undelivered. Queued bytes
// are wiped once the kernel took them. Errors name host:port and the cause: "tcp:
// broker.local:1883: connection refused"; when several addresses were tried, each with its own:
// "tcp: broker.local:1883: every address failed: [2001:db8::7]:1883 network unreachable;
// 192.0.2.7:1883 connection refused". The first failure of a connection is the one reported.
#ifndef HUBLINK_TRANSPORTS_TCP_TCP_TRANSPORT_H_
#define HUBLINK_TRANSPORTS_TCP_TCP_TRANSPORT_H_

#include "plugins/registry.h"

namespace hublink {

void RegisterTcpTransport(Registry::Builder& builder);

}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_TCP_TCP_TRANSPORT_H_
