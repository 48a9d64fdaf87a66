#include "plugins/did_you_mean.h"

#include "gtest/gtest.h"

namespace hublink {
namespace {

TEST(EditDistanceTest, CountsSlipsIgnoringCase) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("abc", ""), 3u);
  EXPECT_EQ(EditDistance("WebsocketConfig", "WebSocketConfig"), 0u);
  EXPECT_EQ(EditDistance("websockt", "websocket"), 1u);  // a letter left out
  EXPECT_EQ(EditDistance("subprotocol", "subprotocols"), 1u);
  EXPECT_EQ(EditDistance("nmae", "name"), 1u);  // two neighbours swapped
  EXPECT_EQ(EditDistance("tcp", "tls"), 2u);
}

TEST(ClosestMatchTest, SuggestsOnlyWhatLooksLikeASlip) {
  const std::vector<std::string> names = {"http_connect", "socks5", "tcp", "tls", "websocket"};
  EXPECT_EQ(ClosestMatch("websockt", names), "websocket");
  EXPECT_EQ(ClosestMatch("TLS", names), "tls");
  EXPECT_EQ(ClosestMatch("tcpp", names), "tcp");
  EXPECT_EQ(ClosestMatch("quic", names), "");  // 4 letters allow one edit; quic is far from all
  EXPECT_EQ(ClosestMatch("tcp", names), "");   // the word itself is no suggestion
  EXPECT_EQ(ClosestMatch("x", {}), "");
}

}  // namespace
}  // namespace hublink
