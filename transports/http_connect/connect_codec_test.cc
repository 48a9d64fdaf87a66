#include "transports/http_connect/connect_codec.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace hublink {
namespace http_connect {
namespace {

TEST(ConnectRequestTest, PlainRequestNamesTheEndpointTwice) {
  ConnectRequest request;
  request.host = "broker.example";
  request.port = 8883;
  EXPECT_EQ(BuildConnectRequest(request),
            "CONNECT broker.example:8883 HTTP/1.1\r\nHost: broker.example:8883\r\n\r\n");
}

TEST(ConnectRequestTest, Ipv6LiteralIsBracketed) {
  ConnectRequest request;
  request.host = "::1";
  request.port = 1883;
  EXPECT_EQ(BuildConnectRequest(request),
            "CONNECT [::1]:1883 HTTP/1.1\r\nHost: [::1]:1883\r\n\r\n");
  EXPECT_EQ(Authority("[::1]", 5), "[::1]:5");
}

TEST(ConnectRequestTest, BasicCredentialsAndExtraHeaders) {
  ConnectRequest request;
  request.host = "10.0.0.1";
  request.port = 443;
  // RFC 7617 section 2's example.
  request.username = "Aladdin";
  request.password = "open sesame";
  request.headers = {{"User-Agent", "hublink"}, {"X-Device", "dev01"}};
  EXPECT_EQ(BuildConnectRequest(request),
            "CONNECT 10.0.0.1:443 HTTP/1.1\r\nHost: 10.0.0.1:443\r\n"
            "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"
            "User-Agent: hublink\r\nX-Device: dev01\r\n\r\n");
}

TEST(ConnectRequestTest, ValidationRefusesInjectionAndReservedHeaders) {
  EXPECT_TRUE(ValidateHeader("User-Agent", "x", "h").ok());
  EXPECT_EQ(ValidateHeader("Bad Name", "x", "h").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateHeader("X", "a\r\nHost: evil", "h").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateHeader("", "x", "h").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(IsReservedHeader("proxy-authorization"));
  EXPECT_TRUE(IsReservedHeader("HOST"));
  EXPECT_FALSE(IsReservedHeader("User-Agent"));
  EXPECT_TRUE(ValidateCredentials("alice", "pa:ss word").ok());
  EXPECT_EQ(ValidateCredentials("al:ice", "x").code(), absl::StatusCode::kInvalidArgument);
  absl::Status bad_password = ValidateCredentials("alice", "se\ncret-canary");
  EXPECT_EQ(bad_password.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(absl::StrContains(bad_password.message(), "canary")) << bad_password;
}

// Feeds `answer` in two pieces split at `split`; returns the parser's final result.
absl::StatusOr<bool> FeedSplit(ConnectResponseParser& parser, absl::string_view answer,
                               size_t split) {
  absl::StatusOr<bool> first = parser.Feed(answer.substr(0, split));
  if (!first.ok() || *first) {
    if (first.ok()) {
      absl::StatusOr<bool> rest = parser.Feed(answer.substr(split));
      return rest;
    }
    return first;
  }
  return parser.Feed(answer.substr(split));
}

TEST(ConnectResponseParserTest, SuccessSplitAtEveryOffsetHandsUpTheRest) {
  const std::string head =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 200 Connection established\r\nProxy-Agent: test\r\nContent-Length: 5\r\n\r\n";
  const std::string answer = head + "HELLO\n\x01\x02";
  for (size_t split = 0; split <= answer.size(); ++split) {
    ConnectResponseParser parser("h:1", false, 1024);
    absl::StatusOr<bool> done = FeedSplit(parser, answer, split);
    ASSERT_TRUE(done.ok()) << split << ": " << done.status();
    ASSERT_TRUE(*done) << split;
    EXPECT_EQ(parser.status_code(), 200);
    EXPECT_EQ(parser.status_line(), "HTTP/1.1 200 Connection established");
    // A 2xx answer to CONNECT has no body, whatever Content-Length says: all of it is tunnel data.
    EXPECT_EQ(parser.TakeLeftover(), "HELLO\n\x01\x02") << split;
    EXPECT_EQ(parser.bytes_seen(), head.size());
  }
}

TEST(ConnectResponseParserTest, ByteAtATimeWithBareLineFeedsAndHttp10) {
  const std::string answer = "HTTP/1.0 200 OK\n\nabc";
  ConnectResponseParser parser("h:1", false, 1024);
  absl::StatusOr<bool> done = false;
  for (char c : answer) {
    done = parser.Feed(absl::string_view(&c, 1));
    ASSERT_TRUE(done.ok()) << done.status();
  }
  EXPECT_TRUE(*done);
  EXPECT_EQ(parser.TakeLeftover(), "abc");
}

TEST(ConnectResponseParserTest, ReasonPhraseMayBeEmpty) {
  ConnectResponseParser parser("h:1", false, 1024);
  absl::StatusOr<bool> done = parser.Feed("HTTP/1.1 200\r\n\r\n");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(*done);
}

struct Refusal {
  std::string answer;
  absl::StatusCode code;
  std::string must_contain;
};

TEST(ConnectResponseParserTest, RefusalsSplitAtEveryOffsetMapToTheirCodes) {
  const std::vector<Refusal> refusals = {
      {"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic "
       "realm=\"corp\"\r\nContent-Length: 3\r\n\r\nabc",
       absl::StatusCode::kUnauthenticated,
       "proxy authentication required for CONNECT broker:1883: HTTP/1.1 407 Proxy Authentication "
       "Required; set username and password (or password_file) (Proxy-Authenticate: Basic "
       "realm=\"corp\")"},
      {"HTTP/1.0 403 Access violation\r\n\r\n", absl::StatusCode::kPermissionDenied,
       "the proxy refused CONNECT broker:1883: HTTP/1.0 403 Access violation"},
      {"HTTP/1.1 502 Bad Gateway\r\n\r\n", absl::StatusCode::kUnavailable,
       "could not open a tunnel to broker:1883: HTTP/1.1 502 Bad Gateway"},
      {"HTTP/1.1 503 Service Unavailable\r\n\r\n", absl::StatusCode::kUnavailable, "503"},
      {"HTTP/1.1 504 Gateway Timeout\r\n\r\n", absl::StatusCode::kUnavailable, "504"},
      {"HTTP/1.1 500 Unable to connect\r\n\r\n", absl::StatusCode::kUnavailable, "500"},
      {"HTTP/1.1 405 Method Not Allowed\r\n\r\n", absl::StatusCode::kDataLoss,
       "unexpected answer to CONNECT broker:1883: HTTP/1.1 405 Method Not Allowed"},
      {"HTTP/1.1 101 Switching Protocols\r\n\r\n", absl::StatusCode::kDataLoss, "101"},
      {"HTTP/1.1 2x0 Weird\r\n\r\n", absl::StatusCode::kDataLoss, "not an HTTP/1.x status line"},
      {"SSH-2.0-OpenSSH_9.2\r\n", absl::StatusCode::kDataLoss,
       // Said as soon as the first byte shows it, quoting what arrived so far.
       "not HTTP (is this an HTTP proxy?): S"},
      {std::string("\x05\xff", 2), absl::StatusCode::kDataLoss, "not HTTP"},
  };
  for (const Refusal& refusal : refusals) {
    for (size_t split = 0; split <= refusal.answer.size(); ++split) {
      ConnectResponseParser parser("broker:1883", false, 1024);
      absl::StatusOr<bool> done = FeedSplit(parser, refusal.answer, split);
      ASSERT_FALSE(done.ok()) << refusal.answer << " split " << split;
      EXPECT_EQ(done.status().code(), refusal.code) << done.status();
      EXPECT_TRUE(absl::StartsWith(done.status().message(), "http_connect: ")) << done.status();
      EXPECT_TRUE(absl::StrContains(done.status().message(), refusal.must_contain))
          << done.status();
    }
  }
}

TEST(ConnectResponseParserTest, RefusedCredentialsAreNamedAsSuch) {
  ConnectResponseParser parser("b:1", /*sent_credentials=*/true, 1024);
  absl::StatusOr<bool> done = parser.Feed("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(absl::StrContains(done.status().message(),
                                "the proxy refused the configured username and password"))
      << done.status();
}

TEST(ConnectResponseParserTest, OversizeHeadersAreRefused) {
  ConnectResponseParser parser("b:1", false, 64);
  absl::StatusOr<bool> done = parser.Feed("HTTP/1.1 200 OK\r\n");
  ASSERT_TRUE(done.ok());
  EXPECT_FALSE(*done);
  done = parser.Feed("X-Padding: " + std::string(60, 'a'));
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(done.status().message(), "max_response_bytes (64)"))
      << done.status();
  // A complete block over the cap is refused too, even when it arrives in one read.
  ConnectResponseParser whole("b:1", false, 64);
  done = whole.Feed("HTTP/1.1 200 OK\r\nX-Padding: " + std::string(60, 'a') + "\r\n\r\n");
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kDataLoss);
}

TEST(ConnectResponseParserTest, ProxyTextIsSanitized) {
  ConnectResponseParser parser("b:1", false, 1024);
  absl::StatusOr<bool> done = parser.Feed("HTTP/1.1 403 No\x1b[31m\x07 way\r\n\r\n");
  ASSERT_FALSE(done.ok());
  EXPECT_FALSE(absl::StrContains(done.status().message(), "\x1b")) << done.status();
  EXPECT_TRUE(absl::StrContains(done.status().message(), "403 No?[31m? way")) << done.status();
}

}  // namespace
}  // namespace http_connect
}  // namespace hublink
