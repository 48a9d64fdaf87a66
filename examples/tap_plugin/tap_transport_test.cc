#include "examples/tap_plugin/tap_transport.h"

#include "gtest/gtest.h"
#include "tests/conformance.h"
#include "tests/tls_conformance_peer.h"
#include "transports/tcp/tcp_transport.h"

namespace hublink {
namespace testing {
namespace {

// The TCP conformance peer, reached through tcp > tap.
class TapPeer : public ConformancePeer {
 public:
  explicit TapPeer(std::unique_ptr<ConformancePeer> tcp) : tcp_(std::move(tcp)) {}
  std::string pipeline_text() const override {
    return tcp_->pipeline_text() +
           "transports { typed_config { [type.googleapis.com/acme.tap.TapConfig] { label: \"t\" } "
           "} }\n";
  }
  int closed_connections() override { return tcp_->closed_connections(); }

 private:
  std::unique_ptr<ConformancePeer> tcp_;
};

ConformanceTarget TapTarget() {
  return {"TcpTap",
          [](Registry::Builder& builder) {
            RegisterTcpTransport(builder);
            acme::RegisterTapTransport(builder);
          },
          []() -> absl::StatusOr<std::unique_ptr<ConformancePeer>> {
            auto tcp = StartTcpConformancePeer();
            if (!tcp.ok()) return tcp.status();
            return std::unique_ptr<ConformancePeer>(new TapPeer(std::move(tcp).value()));
          }};
}

// tcp > tap, and tcp > tap > tls: the same cases with TLS over the tap, which must then hand the
// handshake, records split anywhere and close_notify through unchanged, both ways.
INSTANTIATE_TEST_SUITE_P(
    Tap, TransportConformanceTest,
    ::testing::Values(TapTarget(), TlsOverPluginTarget("TcpTapTls", acme::RegisterTapTransport,
                                                       "transports { typed_config { "
                                                       "[type.googleapis.com/acme.tap."
                                                       "TapConfig] { label: \"t\" } } }")),
    TargetName);

}  // namespace
}  // namespace testing
}  // namespace hublink
