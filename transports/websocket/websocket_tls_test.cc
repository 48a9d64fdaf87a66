// WebSocket over TLS (wss://) against real servers: the Node.js `ws` peer on an https server, and
// mosquitto's TLS websockets listener; plus the transport conformance suite for tcp > tls >
// websocket.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/conformance.h"
#include "tests/test_util.h"
#include "transports/tcp/tcp_transport.h"
#include "transports/tls/tls_transport.h"
#include "transports/websocket/websocket_transport.h"
#include "transports/websocket/ws_test_peers.h"

namespace hublink {
namespace {

using testing::TransportConformanceTest;
using websocket::testing::Connection;
using websocket::testing::MqttConnect;
using websocket::testing::NodeConformancePeer;
using websocket::testing::NodeWsPeer;
using websocket::testing::WsPipeline;

void RegisterStack(Registry::Builder& builder) {
  RegisterTcpTransport(builder);
  RegisterTlsTransport(builder);
  RegisterWebSocketTransport(builder);
}

// One throwaway CA and server certificate (for 127.0.0.1) per test binary.
const testing::TestCertificates& Certificates() {
  static const testing::TestCertificates* certificates = [] {
    std::string dir = absl::StrCat(testing::TempDir(), "/wss_certs");
    (void)testing::RunCommand(absl::StrCat("mkdir -p '", dir, "'"));
    absl::StatusOr<testing::TestCertificates> made =
        testing::MakeTestCertificates(dir, {"127.0.0.1", "localhost"});
    EXPECT_TRUE(made.ok()) << made.status();
    return new testing::TestCertificates(made.ok() ? *made : testing::TestCertificates());
  }();
  return *certificates;
}

std::string TlsLower() {
  return absl::StrFormat(
      "transports { name: \"tcp\" }\n"
      "transports { name: \"tls\" typed_config { "
      "[type.googleapis.com/hublink.transports.TlsConfig] { "
      "ca_file: \"%s\" } } }\n",
      Certificates().ca_file);
}

TEST(WssTest, ServerCloseOverTls) {
  auto peer = NodeWsPeer::Start("close", Certificates().cert_file, Certificates().key_file);
  ASSERT_TRUE(peer.ok()) << peer.status();
  Connection c(RegisterStack);
  ASSERT_NO_FATAL_FAILURE(c.Open(WsPipeline((*peer)->port(), "", TlsLower())));
  ASSERT_TRUE(c.AwaitClosed());
  EXPECT_EQ(c.events.opened, 1);
  EXPECT_EQ(c.events.data, "HELLO\n");
  EXPECT_EQ(c.events.closed->message(),
            "websocket: server closed the connection: 4001 \"maintenance window\"");
  EXPECT_TRUE(testing::RunUntil(c.loop(), [&] { return !(*peer)->Events().empty(); }));
  EXPECT_EQ((*peer)->Events(), std::vector<std::string>{"closed 4001"});
}

TEST(WssTest, MosquittoTlsWebsocketsListener) {
  testing::MosquittoBroker::Options options;
  options.websockets = true;
  options.cert_file = Certificates().cert_file;
  options.key_file = Certificates().key_file;
  auto broker = testing::MosquittoBroker::Start(options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  ASSERT_NE((*broker)->wss_port(), 0);
  Connection c(RegisterStack);
  ASSERT_NO_FATAL_FAILURE(c.Open(WsPipeline((*broker)->wss_port(), "path: \"/mqtt\"", TlsLower())));
  ASSERT_TRUE(c.AwaitOpenOrClose());
  ASSERT_EQ(c.events.opened, 1) << *c.events.closed;
  ASSERT_TRUE(c.transport().Write(MqttConnect("hublink-wss")).ok());
  ASSERT_TRUE(c.AwaitData(4));
  EXPECT_EQ(c.events.data, std::string("\x20\x02\x00\x00", 4));
  ASSERT_TRUE(c.transport().Write(std::string("\xE0\x00", 2)).ok());
  c.transport().Close();
  ASSERT_TRUE(c.AwaitClosed());
  EXPECT_TRUE(c.events.closed->ok()) << *c.events.closed;
}

testing::ConformanceTarget WebSocketOverTlsTarget() {
  return {"WebSocketOverTls", RegisterStack,
          []() -> absl::StatusOr<std::unique_ptr<testing::ConformancePeer>> {
            auto peer =
                NodeWsPeer::Start("conformance", Certificates().cert_file, Certificates().key_file);
            if (!peer.ok()) return peer.status();
            return std::unique_ptr<testing::ConformancePeer>(
                new NodeConformancePeer(std::move(peer).value(), TlsLower()));
          }};
}

INSTANTIATE_TEST_SUITE_P(WebSocket, TransportConformanceTest,
                         ::testing::Values(WebSocketOverTlsTarget()), testing::TargetName);

}  // namespace
}  // namespace hublink
