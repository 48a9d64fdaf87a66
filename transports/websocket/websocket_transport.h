// "websocket": the RFC 6455 client transport, wrapping tcp (ws://) or tls (wss://).
//
// Opens the layer below, sends the HTTP/1.1 upgrade (fresh random key, subprotocol "mqtt" by
// default, custom and optionally signed headers), verifies the 101 response, then presents the
// binary messages' payloads upward as one byte stream: MQTT packets may span frames and one frame
// may hold several. PINGs are answered at once, control payloads never reach the data stream, a
// server CLOSE is echoed and reported with its code and reason, and protocol violations close with
// 1002 (1009 for oversized messages) and report kDataLoss. Control frames (PONG, PING, CLOSE) are
// never dropped under backpressure: they wait for OnWritable() and go out ahead of further data.
// Close() sends the data written before it, then CLOSE, bounded by close_timeout. Written bytes are
// wiped from every buffer that held them (coalescing buffer, masked frame copies, the upgrade).
// Writes of one loop turn go out as one masked frame unless coalesce_writes is false. The 101's
// Date header lands in ConnectContext::set_server_clock_offset (a free server clock for signers).
#ifndef HUBLINK_TRANSPORTS_WEBSOCKET_WEBSOCKET_TRANSPORT_H_
#define HUBLINK_TRANSPORTS_WEBSOCKET_WEBSOCKET_TRANSPORT_H_

#include "plugins/registry.h"

namespace hublink {

void RegisterWebSocketTransport(Registry::Builder& builder);

}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_WEBSOCKET_WEBSOCKET_TRANSPORT_H_
