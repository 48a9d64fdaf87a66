// "http_connect": a wrapping transport that asks an HTTP proxy for a CONNECT tunnel (RFC 9110
// section 9.3.6) to the pipeline's endpoint, with optional Basic proxy authentication, then passes
// bytes through. It runs over the connection to the proxy (tcp connected to the proxy's address);
// layers above (tls, websocket, mqtt) see the real endpoint. Errors name the proxy's status line:
// "http_connect: the proxy refused CONNECT broker:8883: HTTP/1.1 403 Forbidden (...)". The password
// is never logged or put in an error; request bytes holding it are wiped once sent.
#ifndef HUBLINK_TRANSPORTS_HTTP_CONNECT_HTTP_CONNECT_TRANSPORT_H_
#define HUBLINK_TRANSPORTS_HTTP_CONNECT_HTTP_CONNECT_TRANSPORT_H_

#include "plugins/registry.h"

namespace hublink {

void RegisterHttpConnectTransport(Registry::Builder& builder);

}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_HTTP_CONNECT_HTTP_CONNECT_TRANSPORT_H_
