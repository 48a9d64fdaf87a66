// The transport conformance suite: behaviour every transport stack must show against a real peer.
//
// A transport's test instantiates it with one or more targets:
//
//   INSTANTIATE_TEST_SUITE_P(Tcp, TransportConformanceTest,
//                            ::testing::Values(hublink::testing::TcpConformanceTarget()),
//                            hublink::testing::TargetName);
//
// A target says how to register its plugins and how to start a peer that speaks the *conformance
// protocol* at the top of the stack (after all handshakes):
//   - on every new connection the peer first sends "HELLO\n" (so the client receives application
//   bytes that
//     may arrive in the same read as the end of a handshake);
//   - it echoes every byte it receives, in order;
//   - when the received stream contains "QUIT\n" it echoes up to and including it, then closes;
//   - it counts connections that ended (client close or its own) for closed_connections().
//
// Every test holds the stack to the TransportListener contract of plugins/transport.h: a callback
// made from inside Open(), Write() or Close() fails the test, as do a second OnClosed(), a second
// OnOpen() and any callback after OnClosed(). Besides the happy paths, the suite drives the failure
// paths (connection refused, connect timeout, reset by the peer, Open() twice with the same or
// another listener, Close() twice, Close() while opening) and requires exactly one OnClosed on
// each, with the code docs/errors.md gives.
//
// A wrapping plugin should also run under a wrapping layer, so that a real state machine above it
// depends on what it hands up and down: TlsOverPluginTarget (tests/tls_conformance_peer.h) runs the
// same cases over tcp > plugin > tls.
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

class ConformancePeer {
 public:
  virtual ~ConformancePeer() = default;
  // A text-format Pipeline (endpoint + transports) that reaches this peer.
  virtual std::string pipeline_text() const = 0;
  // Connections that have ended so far, as the peer saw them.
  virtual int closed_connections() = 0;
};

struct ConformanceTarget {
  std::string name;
  std::function<void(Registry::Builder&)> register_plugins;
  std::function<absl::StatusOr<std::unique_ptr<ConformancePeer>>()> start_peer;
};

inline std::string TargetName(const ::testing::TestParamInfo<ConformanceTarget>& info) {
  return info.param.name;
}
inline void PrintTo(const ConformanceTarget& target, std::ostream* os) { *os << target.name; }

// A threaded loopback TCP peer speaking the conformance protocol.
absl::StatusOr<std::unique_ptr<ConformancePeer>> StartTcpConformancePeer();
// Plain TCP against StartTcpConformancePeer().
ConformanceTarget TcpConformanceTarget();

class TransportConformanceTest : public ::testing::TestWithParam<ConformanceTarget> {};

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_TESTS_CONFORMANCE_H_
