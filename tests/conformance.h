// The transport conformance suite: the behaviour every transport stack must show against a real
// peer, as a library a plugin author links into their own test (docs/plugin-authoring.md, "Test
// your plugin with the conformance suite"). hublink's own transports (tcp, tls, websocket, socks5,
// http_connect) and the out-of-tree example //examples/tap_plugin run it the same way.
//
// Link it. In Bazel the suite is //tests:conformance (testonly; alwayslink, so that its TEST_Ps
// reach your test binary although nothing calls them); your cc_test adds gtest's main:
//
//   cc_test(
//       name = "tap_transport_test",
//       srcs = ["tap_transport_test.cc"],
//       deps = [
//           ":tap",
//           "//tests:conformance",
//           "//tests:tls_conformance_peer",
//           "@system_libs//:gtest_main",
//       ],
//   )
//
// Instantiate it. Your test file needs no TEST of its own, only the targets to run the suite's
// cases against. INSTANTIATE_TEST_SUITE_P pastes the suite's name into identifiers, so name it
// unqualified, through a using-declaration (examples/tap_plugin/tap_transport_test.cc):
//
//   using ::hublink::testing::PluginOverTcpTarget;
//   using ::hublink::testing::TargetName;
//   using ::hublink::testing::TransportConformanceTest;
//
//   INSTANTIATE_TEST_SUITE_P(
//       Tap, TransportConformanceTest,
//       ::testing::Values(PluginOverTcpTarget("TcpTap", RegisterTapTransport, kTapTransport)),
//       TargetName);
//
// A ConformanceTarget says how to register the plugins its pipeline names and how to start a peer
// that speaks the *conformance protocol* at the top of the stack (after all handshakes):
//   - on every new connection the peer first sends "HELLO\n" (so the client receives application
//     bytes that may arrive in the same read as the end of a handshake);
//   - it echoes every byte it receives, in order;
//   - when the received stream contains "QUIT\n" it echoes up to and including it, then closes;
//   - it counts connections that ended (client close or its own) for closed_connections().
// Ready-made targets:
//   TcpConformanceTarget()              tcp alone, against StartTcpConformancePeer()
//   PluginOverTcpTarget(name, r, text)  tcp > your transports, against StartTcpConformancePeer()
//   TlsOverPluginTarget(name, r, text)  tcp > your transports > tls (tests/tls_conformance_peer.h)
// The TCP and TLS peers see the bytes your layer hands down: a layer that passes bytes through (a
// tap, a meter, a shaper) works with them as they are; a layer that reframes the stream (a proxy
// handshake, a WebSocket) needs a ConformancePeer of your own that undoes it, as the tests of
// transports/websocket, transports/socks5 and transports/http_connect have.
//
// What it checks, for each target: bytes past a handshake are handed up; data split at every offset
// and a 1 MiB transfer in uneven chunks arrive intact; Close() reaches the peer and later writes
// fail with kFailedPrecondition; the peer's close reaches the listener after the bytes before it.
// Every case holds the stack to the TransportListener contract of plugins/transport.h: a callback
// made from inside Open(), Write() or Close() fails the test, as do a second OnClosed(), a second
// OnOpen() and any callback after OnClosed(). The failure paths must each end in exactly one
// OnClosed() with the code docs/errors.md gives:
//   connection refused                      kUnavailable
//   connect timeout (peer's backlog full)   kDeadlineExceeded
//   reset by the peer                       kUnavailable
//   Open() twice, same listener             one OnClosed: OK, or kFailedPrecondition
//   Open() again with another listener      kFailedPrecondition to that one; the first listener
//                                           still gets its own OnClosed
//   Close() twice, Close() while opening    one OnClosed
//   Write() before Open()                   returns kFailedPrecondition
//
// How it runs: each case builds a Registry with the target's register_plugins (on the test's
// thread; a case may call it twice), starts the target's peer once and destroys it at the end of the
// case, resolves the peer's pipeline_text(), and drives one stack on a private EventLoop that the
// test's thread runs until a condition holds (every wait bounded, at most 30 s; no fixed
// sleeps). The peer serves on its own thread, so closed_connections() must be thread-safe. Peers
// listen on 127.0.0.1 on a port the kernel picks.
#ifndef HUBLINK_TESTS_CONFORMANCE_H_
#define HUBLINK_TESTS_CONFORMANCE_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "plugins/registry.h"

namespace hublink {
namespace testing {

// A running peer, owned by the test case that started it; destroying it stops it.
class ConformancePeer {
 public:
  virtual ~ConformancePeer() = default;
  // A text-format Pipeline (endpoint + transports) that reaches this peer.
  virtual std::string pipeline_text() const = 0;
  // Connections that have ended so far, as the peer saw them.
  virtual int closed_connections() = 0;
};

struct ConformanceTarget {
  std::string name;  // the instantiation's name in test names (TargetName)
  std::function<void(Registry::Builder&)> register_plugins;
  std::function<absl::StatusOr<std::unique_ptr<ConformancePeer>>()> start_peer;
};

inline std::string TargetName(const ::testing::TestParamInfo<ConformanceTarget>& info) {
  return info.param.name;
}
inline void PrintTo(const ConformanceTarget& target, std::ostream* os) { *os << target.name; }

// A threaded loopback TCP peer speaking the conformance protocol. Its pipeline_text() is the
// endpoint and `transports { name: "tcp" }`.
absl::StatusOr<std::unique_ptr<ConformancePeer>> StartTcpConformancePeer();
// Plain TCP against StartTcpConformancePeer(), with RegisterTcpTransport.
ConformanceTarget TcpConformanceTarget();

// tcp > `plugin_transports` against StartTcpConformancePeer(): the target of a transport plugin
// that wraps TCP and hands the bytes through (see above for one that reframes them).
// `plugin_transports` is text-format Pipeline `transports { ... }` entries, appended after tcp's;
// `register_plugins` registers them (tcp is added). `name` names the instantiation in test names
// (letters, digits and '_' only, as gtest requires).
ConformanceTarget PluginOverTcpTarget(std::string name,
                                      std::function<void(Registry::Builder&)> register_plugins,
                                      std::string plugin_transports);

class TransportConformanceTest : public ::testing::TestWithParam<ConformanceTarget> {};

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_TESTS_CONFORMANCE_H_
