// "tcp": the base transport. Resolves the endpoint (IPv4 and IPv6, off the loop thread), connects
// non-blockingly with a deadline trying each address in turn, disables Nagle, and queues writes
// with backpressure. Close() flushes the queue and waits for the peer's FIN within close_timeout
// (default 3 s), then aborts with kDeadlineExceeded if bytes were left undelivered. Queued bytes
// are wiped once the kernel took them. Errors name host:port and the cause: "tcp:
// broker.local:1883: connection refused"; the first failure of a connection is the one reported.
#ifndef HUBLINK_TRANSPORTS_TCP_TCP_TRANSPORT_H_
#define HUBLINK_TRANSPORTS_TCP_TCP_TRANSPORT_H_

#include "plugins/registry.h"

namespace hublink {

void RegisterTcpTransport(Registry::Builder& builder);

}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_TCP_TCP_TRANSPORT_H_
