// A threaded loopback TLS server (BoringSSL) for tests of stacks that contain "tls": it generates a
// throwaway CA and server certificate, accepts on 127.0.0.1, handshakes, and runs a handler per
// connection on its own thread with a blocking view of the decrypted stream. By default the handler
// speaks the transport conformance protocol (tests/conformance.h); a WebSocket-over-TLS peer passes
// its own handler (upgrade, then frames) and the extra transports its pipeline needs.
#ifndef HUBLINK_TESTS_TLS_CONFORMANCE_PEER_H_
#define HUBLINK_TESTS_TLS_CONFORMANCE_PEER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tests/conformance.h"

namespace hublink {
namespace testing {

// One accepted, handshaken TLS connection, seen from the server. Blocking; used on the connection's
// thread.
class TlsPeerConnection {
 public:
  virtual ~TlsPeerConnection() = default;
  // Bytes read into `buffer`; 0 at the peer's close (close_notify or EOF); -1 on error or server
  // shutdown.
  virtual int Read(char* buffer, int size) = 0;
  // Writes all of `bytes`; false on error.
  virtual bool Write(absl::string_view bytes) = 0;
};

// Serves one connection; when it returns the server sends close_notify and closes the socket, and
// the connection counts in closed_connections().
using TlsPeerHandler = std::function<void(TlsPeerConnection&)>;

// The conformance protocol: "HELLO\n", then echo everything, close after echoing "QUIT\n".
void ServeConformanceProtocol(TlsPeerConnection& connection);

struct TlsConformancePeerOptions {
  TlsPeerHandler handler = ServeConformanceProtocol;
  // Text-format transports appended after the tls one in pipeline_text(), e.g.
  // "transports { name: \"websocket\" }".
  std::string upper_transports;
  // Text-format transports between tcp and tls in pipeline_text(): a plugin under test that the
  // TLS bytes pass through on their way to this server (TlsOverPluginTarget).
  std::string lower_transports;
  // ALPN protocols the server accepts (the first one the client offers wins); empty = no ALPN.
  std::vector<std::string> alpn;
};

// The pipeline reaches it as tcp > lower_transports > tls (ca_file = the throwaway CA; the
// certificate names 127.0.0.1 and localhost) > upper_transports, endpoint 127.0.0.1:<port>.
absl::StatusOr<std::unique_ptr<ConformancePeer>> StartTlsConformancePeer(
    TlsConformancePeerOptions options = TlsConformancePeerOptions());

// tcp > tls against StartTlsConformancePeer(), with RegisterTcpTransport + RegisterTlsTransport.
ConformanceTarget TlsConformanceTarget();

// The conformance cases for a plugin under a wrapping layer: tcp > `plugin_transports` > tls
// against StartTlsConformancePeer(), so that a real state machine above the plugin (TLS: a
// handshake, records split anywhere, close_notify) depends on what the plugin hands up and down.
// `register_plugins` registers the plugin; tcp and tls are added. The TLS bytes must reach this
// peer unchanged, which holds for layers that pass bytes through (a tap, a meter, a shaper); a
// plugin that reframes the stream needs a peer that undoes it. E.g. in a plugin's test:
//   INSTANTIATE_TEST_SUITE_P(
//       Tap, TransportConformanceTest,
//       ::testing::Values(TapTarget(),
//                         TlsOverPluginTarget("TcpTapTls", acme::RegisterTapTransport,
//                                             "transports { name: \"tap\" }")),
//       TargetName);
ConformanceTarget TlsOverPluginTarget(std::string name,
                                      std::function<void(Registry::Builder&)> register_plugins,
                                      std::string plugin_transports);

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_TESTS_TLS_CONFORMANCE_PEER_H_
