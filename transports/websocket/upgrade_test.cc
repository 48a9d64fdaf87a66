#include "transports/websocket/upgrade.h"

#include <openssl/base64.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace hublink {
namespace websocket {
namespace {

// RFC 6455 section 1.3's worked example.
constexpr absl::string_view kRfcKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr absl::string_view kRfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::string Response(absl::string_view extra_headers = "", absl::string_view accept = kRfcAccept) {
  return absl::StrCat(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
      "Sec-WebSocket-Accept: ", accept, "\r\nSec-WebSocket-Protocol: mqtt\r\n", extra_headers,
      "\r\n");
}

UpgradeResponseParser MakeParser(size_t max_bytes = 16384) {
  return UpgradeResponseParser(std::string(kRfcKey), {"mqtt"}, max_bytes);
}

// Feeds `input` in the given pieces; returns the first error, or the leftover once complete.
absl::StatusOr<std::string> FeedPieces(UpgradeResponseParser& parser,
                                       const std::vector<std::string>& pieces) {
  bool done = false;
  for (const std::string& piece : pieces) {
    absl::StatusOr<bool> fed = parser.Feed(piece);
    if (!fed.ok()) return fed.status();
    done = *fed;
  }
  if (!done) return absl::UnavailableError("incomplete");
  return parser.TakeLeftover();
}

TEST(UpgradeTest, AcceptMatchesRfcExample) { EXPECT_EQ(ComputeAccept(kRfcKey), kRfcAccept); }

TEST(UpgradeTest, KeysAreFreshSixteenByteNonces) {
  std::string a = GenerateKey();
  std::string b = GenerateKey();
  EXPECT_NE(a, b);
  for (const std::string& key : {a, b}) {
    ASSERT_EQ(key.size(), 24u) << key;
    uint8_t decoded[32];
    size_t size = 0;
    ASSERT_TRUE(EVP_DecodeBase64(decoded, &size, sizeof(decoded),
                                 reinterpret_cast<const uint8_t*>(key.data()), key.size()));
    EXPECT_EQ(size, 16u);
  }
}

TEST(UpgradeTest, RequestCarriesEveryHeader) {
  UpgradeRequest request;
  request.host = "broker.example";
  request.port = 443;
  request.path = "/mqtt";
  request.query = {{"sig", "a b/c="}};
  request.subprotocols = {"mqtt", "mqttv3.1"};
  request.origin = "https://device.example";
  request.user_agent = "hublink/1";
  request.headers = {{"X-Device", "d1"}};
  EXPECT_EQ(BuildUpgradeRequest(request, "KEY"),
            "GET /mqtt?sig=a%20b%2Fc%3D HTTP/1.1\r\n"
            "Host: broker.example:443\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Key: KEY\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: mqtt, mqttv3.1\r\n"
            "Origin: https://device.example\r\n"
            "User-Agent: hublink/1\r\n"
            "X-Device: d1\r\n"
            "\r\n");
}

TEST(UpgradeTest, RequestDefaultsAndHostForms) {
  UpgradeRequest request;
  request.host = "::1";
  request.port = 8080;
  request.path = "";
  std::string text = BuildUpgradeRequest(request, "K");
  EXPECT_TRUE(absl::StartsWith(text, "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n")) << text;
  EXPECT_FALSE(absl::StrContains(text, "Sec-WebSocket-Protocol")) << text;
  EXPECT_FALSE(absl::StrContains(text, "Origin")) << text;

  request.headers = {{"host", "front.example"}};
  text = BuildUpgradeRequest(request, "K");
  EXPECT_TRUE(absl::StrContains(text, "\r\nHost: front.example\r\n")) << text;
  EXPECT_FALSE(absl::StrContains(text, "[::1]")) << text;
}

TEST(UpgradeTest, HeaderValidationRejectsInjection) {
  EXPECT_TRUE(ValidateHeader("X-Ok", "value", "headers[0]").ok());
  EXPECT_EQ(ValidateHeader("X Bad", "v", "headers[0]").code(), absl::StatusCode::kInvalidArgument);
  absl::Status injected = ValidateHeader("X-Sig", "secret\r\nEvil: 1", "headers[1]");
  EXPECT_EQ(injected.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(absl::StrContains(injected.message(), "secret")) << injected;
  EXPECT_TRUE(IsReservedHeader("sec-websocket-KEY"));
  EXPECT_FALSE(IsReservedHeader("Authorization"));
}

TEST(UpgradeTest, ResponseSplitAtEveryOffset) {
  const std::string leftover(
      "\x82\x03"
      "abc",
      5);
  const std::string input = Response("date: Sun, 06 Nov 1994 08:49:37 GMT\r\n") + leftover;
  for (size_t split = 0; split <= input.size(); ++split) {
    UpgradeResponseParser parser = MakeParser();
    absl::StatusOr<std::string> rest =
        FeedPieces(parser, {input.substr(0, split), input.substr(split)});
    ASSERT_TRUE(rest.ok()) << "split " << split << ": " << rest.status();
    EXPECT_EQ(*rest, leftover) << "split " << split;
    EXPECT_EQ(parser.response().status_code, 101);
    EXPECT_EQ(parser.response().subprotocol, "mqtt");
    ASSERT_TRUE(parser.response().date.has_value());
    EXPECT_EQ(*parser.response().date, absl::FromUnixSeconds(784111777));
  }
  // And one byte per read.
  UpgradeResponseParser parser = MakeParser();
  std::vector<std::string> bytes;
  for (char c : input) bytes.emplace_back(1, c);
  absl::StatusOr<std::string> rest = FeedPieces(parser, bytes);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, leftover);
}

TEST(UpgradeTest, RefusalCarriesStatusLineAtEverySplit) {
  const std::string input =
      "HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\nConnection: close\r\n\r\nunauthorized";
  for (size_t split = 0; split <= input.size(); ++split) {
    UpgradeResponseParser parser = MakeParser();
    absl::StatusOr<std::string> rest =
        FeedPieces(parser, {input.substr(0, split), input.substr(split)});
    ASSERT_FALSE(rest.ok()) << "split " << split;
    EXPECT_EQ(rest.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(rest.status().message(), "websocket: upgrade refused: HTTP/1.1 401 Unauthorized");
  }
}

TEST(UpgradeTest, RedirectNamesLocation) {
  UpgradeResponseParser parser = MakeParser();
  absl::StatusOr<bool> fed =
      parser.Feed("HTTP/1.1 301 Moved Permanently\r\nLocation: /mqtt\r\n\r\n");
  ASSERT_FALSE(fed.ok());
  EXPECT_EQ(fed.status().message(),
            "websocket: upgrade refused: HTTP/1.1 301 Moved Permanently (Location: /mqtt)");
}

TEST(UpgradeTest, HeadersAreCaseInsensitiveAndLfOnlyLinesWork) {
  UpgradeResponseParser parser = MakeParser();
  absl::StatusOr<bool> fed =
      parser.Feed(absl::StrCat("HTTP/1.1 101 OK\nUPGRADE: WebSocket\nconnection: keep-alive, "
                               "upgrade\nsec-websocket-accept: ",
                               kRfcAccept, "\nSEC-WEBSOCKET-PROTOCOL: mqtt\nX-Folded: a\n  b\n\n"));
  ASSERT_TRUE(fed.ok()) << fed.status();
  EXPECT_TRUE(*fed);
  ASSERT_NE(parser.response().Find("x-folded"), nullptr);
  EXPECT_EQ(*parser.response().Find("X-FOLDED"), "a b");
}

TEST(UpgradeTest, RepeatedHeadersAreJoined) {
  UpgradeResponseParser parser = MakeParser();
  absl::StatusOr<bool> fed = parser.Feed(
      absl::StrCat("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: x\r\n",
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: ", kRfcAccept,
                   "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"));
  ASSERT_TRUE(fed.ok()) << fed.status();
  EXPECT_EQ(*parser.response().Find("connection"), "x, Upgrade");
}

struct BadCase {
  std::string name;
  std::string response;
  absl::StatusCode code;
  std::string message_part;
};

TEST(UpgradeTest, InvalidResponsesFailClearly) {
  const std::vector<BadCase> cases = {
      {"not http", "SSH-2.0-OpenSSH_9.2\r\n\r\n", absl::StatusCode::kDataLoss, "not HTTP/1.x"},
      {"bad accept", Response("", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="), absl::StatusCode::kDataLoss,
       "Sec-WebSocket-Accept mismatch"},
      {"no accept",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
       absl::StatusCode::kDataLoss, "lacks Sec-WebSocket-Accept"},
      {"no upgrade",
       absl::StrCat(
           "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
           kRfcAccept, "\r\n\r\n"),
       absl::StatusCode::kDataLoss, "Upgrade: websocket"},
      {"no connection",
       absl::StrCat(
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: ",
           kRfcAccept, "\r\n\r\n"),
       absl::StatusCode::kDataLoss, "Connection: Upgrade"},
      {"other subprotocol",
       absl::StrCat(
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
           "Sec-WebSocket-Accept: ", kRfcAccept, "\r\nSec-WebSocket-Protocol: chat\r\n\r\n"),
       absl::StatusCode::kDataLoss, "server chose subprotocol \"chat\" (offered: mqtt)"},
      {"no subprotocol",
       absl::StrCat(
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
           "Sec-WebSocket-Accept: ", kRfcAccept, "\r\n\r\n"),
       absl::StatusCode::kDataLoss, "accepted none of the offered subprotocols (mqtt)"},
      {"extension", Response("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
       absl::StatusCode::kDataLoss, "extensions that were not offered: permessage-deflate"},
      {"bad header line", Response("no colon here\r\n"), absl::StatusCode::kDataLoss,
       "malformed upgrade response header line: no colon here"},
      {"server error", "HTTP/1.1 503 Service Unavailable\r\n\r\n", absl::StatusCode::kUnavailable,
       "upgrade refused: HTTP/1.1 503 Service Unavailable"},
      {"forbidden", "HTTP/1.1 403 Forbidden\r\n\r\n", absl::StatusCode::kPermissionDenied,
       "upgrade refused: HTTP/1.1 403 Forbidden"},
      {"bad request", "HTTP/1.1 400 Bad Request\r\n\r\n", absl::StatusCode::kDataLoss,
       "upgrade refused: HTTP/1.1 400 Bad Request"},
  };
  for (const BadCase& c : cases) {
    UpgradeResponseParser parser = MakeParser();
    absl::StatusOr<bool> fed = parser.Feed(c.response);
    ASSERT_FALSE(fed.ok()) << c.name;
    EXPECT_EQ(fed.status().code(), c.code) << c.name << ": " << fed.status();
    EXPECT_TRUE(absl::StrContains(fed.status().message(), c.message_part))
        << c.name << ": " << fed.status();
    EXPECT_TRUE(absl::StartsWith(fed.status().message(), "websocket: ")) << fed.status();
  }
}

TEST(UpgradeTest, MissingSubprotocolAllowedWhenConfigured) {
  UpgradeResponseParser parser(std::string(kRfcKey), {"mqtt"}, 16384,
                               /*allow_missing_subprotocol=*/true);
  absl::StatusOr<bool> fed = parser.Feed(
      absl::StrCat("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: ", kRfcAccept, "\r\n\r\n"));
  ASSERT_TRUE(fed.ok()) << fed.status();
  EXPECT_EQ(parser.response().subprotocol, "");
}

TEST(UpgradeTest, LargeResponseInManySmallReadsWithinCap) {
  std::string filler;
  for (int i = 0; filler.size() < 8000; ++i)
    absl::StrAppend(&filler, "X-Filler-", i, ": ", std::string(60, 'f'), "\r\n");
  const std::string input = Response(filler) + "tail";
  UpgradeResponseParser parser = MakeParser();
  std::vector<std::string> pieces;
  for (size_t i = 0; i < input.size(); i += 7) pieces.push_back(input.substr(i, 7));
  absl::StatusOr<std::string> rest = FeedPieces(parser, pieces);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, "tail");
}

TEST(UpgradeTest, OversizedResponseIsRejected) {
  std::string filler;
  for (int i = 0; filler.size() < 20000; ++i)
    absl::StrAppend(&filler, "X-Filler-", i, ": ", std::string(60, 'f'), "\r\n");
  // Without an end in sight: fails once the cap is reached, whatever the read sizes.
  for (size_t piece_size : {size_t{1} << 20, size_t{1000}, size_t{1}}) {
    const std::string input = absl::StrCat("HTTP/1.1 101 Switching Protocols\r\n", filler);
    UpgradeResponseParser parser = MakeParser();
    absl::Status status;
    for (size_t i = 0; i < input.size() && status.ok(); i += piece_size) {
      status = parser.Feed(input.substr(i, piece_size)).status();
    }
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
    EXPECT_TRUE(absl::StrContains(status.message(), "max_response_bytes (16384)")) << status;
    EXPECT_LE(parser.bytes_seen(), 16384 + piece_size);
  }
  // Complete in one read but over the cap.
  UpgradeResponseParser parser = MakeParser(1000);
  absl::StatusOr<bool> fed = parser.Feed(Response(filler.substr(0, 2000)));
  EXPECT_EQ(fed.status().code(), absl::StatusCode::kDataLoss) << fed.status();
  // Frame bytes after a small header block do not count against the cap.
  UpgradeResponseParser small = MakeParser(Response().size());
  fed = small.Feed(Response() + std::string(5000, 'z'));
  ASSERT_TRUE(fed.ok()) << fed.status();
  EXPECT_EQ(small.TakeLeftover().size(), 5000u);
}

TEST(UpgradeTest, HttpDateForms) {
  const absl::Time expected = absl::FromUnixSeconds(784111777);
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994"), expected);
  EXPECT_EQ(ParseHttpDate("yesterday"), absl::nullopt);
  EXPECT_EQ(ParseHttpDate(""), absl::nullopt);
}

}  // namespace
}  // namespace websocket
}  // namespace hublink
