// "socks5": a wrapping transport that asks a SOCKS5 proxy (RFC 1928) for a CONNECT to the
// pipeline's endpoint, with username/password authentication (RFC 1929) when configured, then
// passes bytes through. It runs over the connection to the proxy (tcp connected to the proxy's
// address); layers above (tls, websocket, mqtt) see the real endpoint. Endpoint names go to the
// proxy as names (remote_dns, the default) or are resolved here off the loop thread. Every reply
// code becomes a clear error: "socks5: the proxy could not connect to broker:1883: connection
// refused (reply 5)". The password is never logged or put in an error, and wiped once sent.
#ifndef HUBLINK_TRANSPORTS_SOCKS5_SOCKS5_TRANSPORT_H_
#define HUBLINK_TRANSPORTS_SOCKS5_SOCKS5_TRANSPORT_H_

#include "plugins/registry.h"

namespace hublink {

void RegisterSocks5Transport(Registry::Builder& builder);

}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_SOCKS5_SOCKS5_TRANSPORT_H_
