#include "plugins/builtin.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "plugins/pipeline.h"

namespace hublink {
namespace {

TEST(BuiltinTest, EveryBuiltinPluginIsRegisteredOnce) {
  Registry::Builder builder;
  RegisterBuiltinPlugins(builder);
  absl::StatusOr<Registry> registry = std::move(builder).Build();
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_EQ(registry->TransportNames(),
            (std::vector<std::string>{"http_connect", "socks5", "tcp", "tls", "websocket"}));
  EXPECT_EQ(registry->ProtocolNames(), (std::vector<std::string>{"http", "mqtt"}));
  EXPECT_EQ(registry->SignerNames(), (std::vector<std::string>{"hmac", "rsa"}));
  EXPECT_EQ((*registry->FindTransport("tcp"))->kind(), TransportFactory::Kind::kBase);
  EXPECT_EQ((*registry->FindTransport("tls"))->kind(), TransportFactory::Kind::kWrapping);
  EXPECT_EQ((*registry->FindTransport("websocket"))->kind(), TransportFactory::Kind::kWrapping);
  EXPECT_EQ((*registry->FindTransport("http_connect"))->kind(), TransportFactory::Kind::kWrapping);
  EXPECT_EQ((*registry->FindTransport("socks5"))->kind(), TransportFactory::Kind::kWrapping);
}

}  // namespace
}  // namespace hublink

namespace hublink {
namespace {

TEST(BuiltinRegistryTest, IsBuiltOnceAndHoldsEveryBuiltIn) {
  const Registry& registry = BuiltinRegistry();
  EXPECT_EQ(&registry, &BuiltinRegistry());
  EXPECT_TRUE(registry.FindTransport("tcp").ok());
  EXPECT_TRUE(registry.FindProtocol("mqtt").ok());
  EXPECT_TRUE(registry.FindSigner("hmac").ok());
}

}  // namespace
}  // namespace hublink

namespace hublink {
namespace {

// The slips a newcomer makes with the built-in plugins, as the issue reported them.
TEST(BuiltinRegistryTest, PipelineSlipsGetTheBuiltInNames) {
  auto type = ParsePipelineText(
      "transports { typed_config { [type.googleapis.com/hublink.transports.WebsocketConfig] {} } }",
      "p.textproto", &BuiltinRegistry());
  ASSERT_FALSE(type.ok());
  EXPECT_TRUE(absl::EndsWith(type.status().message(),
                             "; did you mean [type.googleapis.com/hublink.transports."
                             "WebSocketConfig], the config of transport \"websocket\"?"))
      << type.status();
  auto field = ParsePipelineText(
      "transports { typed_config { [type.googleapis.com/hublink.transports.WebSocketConfig] { "
      "subprotocol: \"mqtt\" } } }",
      "p.textproto", &BuiltinRegistry());
  ASSERT_FALSE(field.ok());
  EXPECT_TRUE(absl::EndsWith(field.status().message(),
                             "has no field named \"subprotocol\"; did you mean \"subprotocols\"? "
                             "(hublink.transports.WebSocketConfig is the config of transport "
                             "\"websocket\")"))
      << field.status();
  auto name = BuiltinRegistry().FindTransport("websockt");
  ASSERT_FALSE(name.ok());
  EXPECT_TRUE(absl::EndsWith(name.status().message(), "; did you mean \"websocket\"?"))
      << name.status();
}

}  // namespace
}  // namespace hublink
