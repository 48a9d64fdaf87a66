// "tls": a TLS client (BoringSSL) over whatever transport is below it. The ciphertext goes through
// a custom BIO to the lower Transport, never to a socket, so tcp > tls, tcp > proxy > tls and tcp >
// tls > tls all work.
//
// Secure by default: the server chain is verified against the system roots (or ca_file / ca_pem)
// and the endpoint's host name or IP; SPKI pins can be added. Sessions are resumed across
// reconnects through a cache held per pipeline. Mutual TLS (cert_file/key_file) and TLS-PSK
// (Tencent key devices on 8883) are supported. Config: hublink.transports.TlsConfig
// (transports/tls/tls.proto).
//
// pins_only compares the pins with the server's own (leaf) certificate only. Secrets (the PSK key,
// key_file's contents) are wiped from memory once no longer needed. An orderly close is bounded
// by close_timeout (default 3 s), after which the connection is abandoned.
//
// Errors say what to fix, and carry the codes of docs/errors.md, e.g.
//   tls: certificate verify failed: hostname mismatch (wanted broker.local, ...)  kUnauthenticated
//   tls: certificate verify failed: no certificate matches spki_pins (...)        kUnauthenticated
//   tls: handshake failed: peer closed the connection mid-handshake (...)         kUnavailable
//   tls: handshake failed: WRONG_VERSION_NUMBER (the server does not speak TLS)   kDataLoss
//   tls: ca_file: /etc/x.pem: No such file or directory                           kNotFound
//   tls: close timed out after 3s: ...                                            kDeadlineExceeded
#ifndef HUBLINK_TRANSPORTS_TLS_TLS_TRANSPORT_H_
#define HUBLINK_TRANSPORTS_TLS_TLS_TRANSPORT_H_

#include <cstddef>
#include <cstdint>

#include "plugins/registry.h"

namespace hublink {

void RegisterTlsTransport(Registry::Builder& builder);

namespace tls_internal {
// Test seam: when set, called right after the tls layer wipes a buffer that held secret bytes (a
// PSK key, the contents of key_file, the key fields of its config copy), with that buffer, before
// the memory is released. Null (the default) outside tests. Not thread-safe: set it while no
// pipeline is being configured or destroyed.
using WipeObserver = void (*)(const uint8_t* data, size_t size);
void SetWipeObserverForTesting(WipeObserver observer);
}  // namespace tls_internal

}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_TLS_TLS_TRANSPORT_H_
