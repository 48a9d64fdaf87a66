#include "examples/tap_plugin/tap_transport.h"

#include "gtest/gtest.h"
#include "tests/conformance.h"
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

INSTANTIATE_TEST_SUITE_P(Tap, TransportConformanceTest, ::testing::Values(TapTarget()), TargetName);

}  // namespace
}  // namespace testing
}  // namespace hublink
