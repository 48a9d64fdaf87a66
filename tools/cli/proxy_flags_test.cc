#include "tools/cli/proxy_flags.h"

#include <map>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "transports/http_connect/http_connect.pb.h"
#include "transports/socks5/socks5.pb.h"
#include "transports/tcp/tcp.pb.h"

namespace hublink {
namespace cli {
namespace {

TEST(ProxyUrlTest, ParsesTheThreeSchemesWithCredentials) {
  absl::StatusOr<ProxyUrl> http = ParseProxyUrl("http://al%40ice:p%3Ass@proxy.example:3128/");
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->kind, ProxyUrl::Kind::kHttp);
  EXPECT_EQ(http->host, "proxy.example");
  EXPECT_EQ(http->port, 3128);
  EXPECT_EQ(http->username, "al@ice");
  EXPECT_EQ(http->password, "p:ss");
  absl::StatusOr<ProxyUrl> socks = ParseProxyUrl("socks5h://[::1]:1080");
  ASSERT_TRUE(socks.ok()) << socks.status();
  EXPECT_EQ(socks->kind, ProxyUrl::Kind::kSocks5h);
  EXPECT_EQ(socks->host, "::1");
  EXPECT_EQ(socks->port, 1080);
  absl::StatusOr<ProxyUrl> local = ParseProxyUrl("SOCKS5://10.0.0.1");
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->kind, ProxyUrl::Kind::kSocks5);
  EXPECT_EQ(local->port, 1080);
  absl::StatusOr<ProxyUrl> bare = ParseProxyUrl("127.0.0.1:8888");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(bare->kind, ProxyUrl::Kind::kHttp);
}

TEST(ProxyUrlTest, ErrorsNeverShowThePassword) {
  for (const char* url : {"ftp://u:hunter2@h:1", "http://u:hunter2@h:99999", "http://u:hunter2@:80",
                          "http://u:hunter2%zz@h:1"}) {
    absl::StatusOr<ProxyUrl> proxy = ParseProxyUrl(url);
    ASSERT_FALSE(proxy.ok()) << url;
    EXPECT_EQ(proxy.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(absl::StrContains(proxy.status().message(), "hunter2")) << proxy.status();
    EXPECT_TRUE(absl::StartsWith(proxy.status().message(), "--proxy: ")) << proxy.status();
  }
}

TEST(NoProxyTest, NamesSuffixesAddressesCidrsAndStar) {
  EXPECT_TRUE(NoProxyMatches("localhost,.internal", "localhost"));
  EXPECT_TRUE(NoProxyMatches("localhost,.internal", "hub.internal"));
  EXPECT_TRUE(NoProxyMatches("internal", "hub.internal"));
  EXPECT_FALSE(NoProxyMatches("internal", "hubinternal"));
  EXPECT_TRUE(NoProxyMatches("example.com", "EXAMPLE.com."));
  EXPECT_TRUE(NoProxyMatches("127.0.0.1", "127.0.0.1"));
  EXPECT_FALSE(NoProxyMatches("127.0.0.1", "127.0.0.2"));
  EXPECT_TRUE(NoProxyMatches("10.0.0.0/8 192.168.1.0/24", "10.20.30.40"));
  EXPECT_FALSE(NoProxyMatches("10.0.0.0/8", "11.0.0.1"));
  EXPECT_TRUE(NoProxyMatches("::1", "[::1]"));
  EXPECT_TRUE(NoProxyMatches("fd00::/8", "fd12::1"));
  EXPECT_TRUE(NoProxyMatches("*", "anything"));
  EXPECT_FALSE(NoProxyMatches("", "anything"));
}

GetEnv Env(std::map<std::string, std::string> values) {
  return [values](const char* name) -> absl::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return absl::nullopt;
    return it->second;
  };
}

TEST(ChooseProxyTest, FlagBeatsEnvironmentAndEmptyOrNoProxyTurnItOff) {
  GetEnv env = Env({{"HTTPS_PROXY", "http://env:1"},
                    {"HTTP_PROXY", "http://plain:2"},
                    {"ALL_PROXY", "socks5h://all:3"}});
  auto from_flag = ChooseProxy(std::string("socks5://flag:9"), false, true, "h", env);
  ASSERT_TRUE(from_flag.ok() && from_flag->has_value());
  EXPECT_EQ((*from_flag)->host, "flag");
  auto secure = ChooseProxy(absl::nullopt, false, true, "h", env);
  ASSERT_TRUE(secure.ok() && secure->has_value());
  EXPECT_EQ((*secure)->host, "env");
  auto plain = ChooseProxy(absl::nullopt, false, false, "h", env);
  ASSERT_TRUE(plain.ok() && plain->has_value());
  EXPECT_EQ((*plain)->host, "plain");
  auto fallback =
      ChooseProxy(absl::nullopt, false, true, "h", Env({{"ALL_PROXY", "socks5h://all:3"}}));
  ASSERT_TRUE(fallback.ok() && fallback->has_value());
  EXPECT_EQ((*fallback)->kind, ProxyUrl::Kind::kSocks5h);
  auto off = ChooseProxy(std::string(""), false, true, "h", env);
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->has_value());
  auto no_proxy_flag = ChooseProxy(std::string("http://flag:1"), true, true, "h", env);
  ASSERT_TRUE(no_proxy_flag.ok());
  EXPECT_FALSE(no_proxy_flag->has_value());
  auto listed = ChooseProxy(absl::nullopt, false, true, "hub.lan",
                            Env({{"HTTPS_PROXY", "http://env:1"}, {"NO_PROXY", ".lan"}}));
  ASSERT_TRUE(listed.ok());
  EXPECT_FALSE(listed->has_value());
  auto lower_case =
      ChooseProxy(absl::nullopt, false, true, "h",
                  Env({{"https_proxy", "http://lower:1"}, {"HTTPS_PROXY", "http://u:2"}}));
  ASSERT_TRUE(lower_case.ok() && lower_case->has_value());
  EXPECT_EQ((*lower_case)->host, "lower");
  auto bad = ChooseProxy(absl::nullopt, false, true, "h", Env({{"HTTPS_PROXY", "gopher://x:1"}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StartsWith(bad.status().message(), "HTTPS_PROXY: ")) << bad.status();
}

TEST(InsertProxyTest, TcpConnectsToTheProxyAndTheTunnelSitsAboveIt) {
  Pipeline pipeline;
  pipeline.mutable_endpoint()->set_host("broker");
  pipeline.mutable_endpoint()->set_port(443);
  pipeline.add_transports()->set_name("tcp");
  pipeline.add_transports()->set_name("tls");
  pipeline.add_transports()->set_name("websocket");
  Stack* alternative = pipeline.add_alternatives();
  alternative->add_transports()->set_name("tcp");
  alternative->add_transports()->set_name("tls");
  absl::StatusOr<ProxyUrl> proxy = ParseProxyUrl("http://u:secret@127.0.0.1:3128");
  ASSERT_TRUE(proxy.ok());
  ASSERT_TRUE(InsertProxy(*proxy, pipeline).ok());
  ASSERT_EQ(pipeline.transports_size(), 4);
  EXPECT_EQ(pipeline.transports(1).name(), "http_connect");
  EXPECT_EQ(pipeline.transports(2).name(), "tls");
  EXPECT_EQ(pipeline.transports(3).name(), "websocket");
  transports::TcpConfig tcp;
  ASSERT_TRUE(pipeline.transports(0).typed_config().UnpackTo(&tcp));
  EXPECT_EQ(tcp.host(), "127.0.0.1");
  EXPECT_EQ(tcp.port(), 3128);
  EXPECT_EQ(pipeline.endpoint().host(), "broker");
  ASSERT_EQ(pipeline.alternatives(0).transports_size(), 3);
  EXPECT_EQ(pipeline.alternatives(0).transports(1).name(), "http_connect");
  transports::HttpConnectConfig http;
  ASSERT_TRUE(pipeline.transports(1).typed_config().UnpackTo(&http));
  EXPECT_EQ(http.username(), "u");
  EXPECT_EQ(http.password(), "secret");
  Pipeline masked = MaskProxyPassword(pipeline, *proxy);
  ASSERT_TRUE(masked.transports(1).typed_config().UnpackTo(&http));
  EXPECT_EQ(http.password(), "***");
  ASSERT_TRUE(masked.alternatives(0).transports(1).typed_config().UnpackTo(&http));
  EXPECT_EQ(http.password(), "***");

  Pipeline socks;
  socks.add_transports()->set_name("tcp");
  ASSERT_TRUE(InsertProxy(*ParseProxyUrl("socks5://127.0.0.1:1080"), socks).ok());
  transports::Socks5Config socks5;
  ASSERT_TRUE(socks.transports(1).typed_config().UnpackTo(&socks5));
  EXPECT_EQ(socks.transports(1).name(), "socks5");
  EXPECT_FALSE(socks5.remote_dns());
}

}  // namespace
}  // namespace cli
}  // namespace hublink
