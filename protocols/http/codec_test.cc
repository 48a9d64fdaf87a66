#include "protocols/http/codec.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hublink {
namespace http {
namespace {

// Feeds `bytes` one byte at a time and whole; both must give the same outcome.
absl::StatusOr<Response> ParseAll(absl::string_view bytes, bool bytewise, bool eof = false,
                                  ParserLimits limits = ParserLimits()) {
  ResponseParser parser(limits);
  absl::StatusOr<bool> done = false;
  if (bytewise) {
    for (char c : bytes) {
      done = parser.Feed(absl::string_view(&c, 1));
      if (!done.ok()) return done.status();
    }
  } else {
    done = parser.Feed(bytes);
    if (!done.ok()) return done.status();
  }
  if (!*done && eof) {
    absl::Status status = parser.FinishAtEof();
    if (!status.ok()) return status;
  } else if (!*done) {
    return absl::UnavailableError("incomplete");
  }
  return parser.TakeResponse();
}

TEST(SerializeRequest, PostCarriesHostLengthAndBody) {
  Request request;
  request.method = "POST";
  request.target = "/device/register";
  request.host = "ap-guangzhou.gateway.tencentdevices.com";
  request.headers = {{"Content-Type", "application/json; charset=utf-8"}, {"X-TC-Nonce", "1"}};
  request.body = "{}";
  absl::StatusOr<std::string> bytes = SerializeRequest(request);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes,
            "POST /device/register HTTP/1.1\r\nHost: ap-guangzhou.gateway.tencentdevices.com\r\n"
            "Content-Type: application/json; charset=utf-8\r\nX-TC-Nonce: 1\r\n"
            "Content-Length: 2\r\n\r\n{}");
}

TEST(SerializeRequest, GetWithoutBodyHasNoLength) {
  Request request;
  request.target = "/fw.bin";
  request.host = "localhost:8443";
  request.headers = {{"Range", "bytes=100-"}};
  absl::StatusOr<std::string> bytes = SerializeRequest(request);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "GET /fw.bin HTTP/1.1\r\nHost: localhost:8443\r\nRange: bytes=100-\r\n\r\n");
}

TEST(SerializeRequest, RefusesInjectionAndComputedHeaders) {
  Request request;
  request.host = "h";
  request.headers = {{"X-A", "1\r\nEvil: 2"}};
  EXPECT_EQ(SerializeRequest(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.headers = {{"Content-Length", "5"}};
  EXPECT_EQ(SerializeRequest(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.headers.clear();
  request.target = "/a b";
  EXPECT_EQ(SerializeRequest(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.target = "/";
  request.host = "h\r\nX: y";
  EXPECT_EQ(SerializeRequest(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.host = "h";
  request.method = "GE T";
  EXPECT_EQ(SerializeRequest(request).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResponseParser, ContentLengthBodyInAnySplit) {
  const std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello";
  for (bool bytewise : {false, true}) {
    absl::StatusOr<Response> response = ParseAll(wire, bytewise);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status_code, 200);
    EXPECT_EQ(response->reason, "OK");
    EXPECT_EQ(response->body, "hello");
    ASSERT_NE(response->Find("CONTENT-TYPE"), nullptr);
    EXPECT_EQ(*response->Find("content-type"), "application/json");
  }
}

TEST(ResponseParser, ChunkedBodyWithExtensionsAndTrailers) {
  const std::string wire =
      "HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=x\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n";
  for (bool bytewise : {false, true}) {
    absl::StatusOr<Response> response = ParseAll(wire, bytewise);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status_code, 206);
    EXPECT_EQ(response->body, "helloabcdefghijklmnopqrstuvwxyz");
  }
}

TEST(ResponseParser, BodyUntilCloseNeedsEof) {
  const std::string wire = "HTTP/1.0 200 OK\r\n\r\nall of it";
  EXPECT_EQ(ParseAll(wire, false).status().code(), absl::StatusCode::kUnavailable);
  absl::StatusOr<Response> response = ParseAll(wire, true, /*eof=*/true);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "all of it");
}

TEST(ResponseParser, SkipsInterimResponsesAndKeepsLeftover) {
  ResponseParser parser;
  absl::StatusOr<bool> done = parser.Feed(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX: y\r\n\r\nHTTP/1.1 200");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(*done);
  EXPECT_EQ(parser.response().status_code, 204);
  EXPECT_EQ(parser.TakeLeftover(), "HTTP/1.1 200");
}

TEST(ResponseParser, HeadResponseHasNoBody) {
  ResponseParser parser(ParserLimits(), /*head_request=*/true);
  absl::StatusOr<bool> done = parser.Feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(*done);
}

TEST(ResponseParser, SinkGetsBodyPiecesAfterHeaders) {
  ResponseParser parser;
  std::string got;
  parser.set_body_sink([&](absl::string_view piece) {
    EXPECT_EQ(parser.response().status_code, 206);
    got.append(piece.data(), piece.size());
    return absl::OkStatus();
  });
  ASSERT_TRUE(parser.Feed("HTTP/1.1 206 Partial\r\nContent-Length: 6\r\n\r\nabc").ok());
  absl::StatusOr<bool> done = parser.Feed("def");
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(*done);
  EXPECT_EQ(got, "abcdef");
  EXPECT_EQ(parser.response().body, "");
  EXPECT_EQ(parser.body_bytes(), 6u);
}

TEST(ResponseParser, HeadersCallbackSeesTheFinalResponseOnly) {
  ResponseParser parser;
  std::vector<int> seen;
  parser.set_headers_callback([&](const Response& response) {
    seen.push_back(response.status_code);
    return response.status_code == 206 ? absl::OkStatus()
                                       : absl::FailedPreconditionError("want 206");
  });
  ASSERT_TRUE(
      parser.Feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 206 P\r\nContent-Length: 1\r\n\r\nx")
          .ok());
  EXPECT_EQ(seen, std::vector<int>{206});
  ResponseParser refused;
  refused.set_headers_callback(
      [](const Response&) { return absl::FailedPreconditionError("want 206"); });
  EXPECT_EQ(refused.Feed("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ResponseParser, SinkErrorStopsTheParser) {
  ResponseParser parser;
  parser.set_body_sink([](absl::string_view) { return absl::InternalError("disk full"); });
  absl::StatusOr<bool> done = parser.Feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(done.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(parser.Feed("x").status().code(), absl::StatusCode::kInternal);
}

TEST(ResponseParser, TruncatedBodiesSayWhereTheyWereCut) {
  ResponseParser parser;
  ASSERT_TRUE(parser.Feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1234").ok());
  absl::Status status = parser.FinishAtEof();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("after 4 body bytes, 6 short"), std::string::npos) << status;

  ResponseParser chunked;
  ASSERT_TRUE(chunked.Feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab").ok());
  EXPECT_EQ(chunked.FinishAtEof().code(), absl::StatusCode::kDataLoss);

  ResponseParser nothing;
  status = nothing.FinishAtEof();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("before a response"), std::string::npos) << status;
}

TEST(ResponseParser, MalformedInputIsDataLoss) {
  const char* cases[] = {
      "HTTP/2 200 OK\r\n\r\n",
      "HTTP/1.1 2x0 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
      "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
      "HTTP/1.1 101 Switching Protocols\r\n\r\n",
  };
  for (const char* wire : cases) {
    EXPECT_EQ(ParseAll(wire, false).status().code(), absl::StatusCode::kDataLoss) << wire;
    EXPECT_EQ(ParseAll(wire, true).status().code(), absl::StatusCode::kDataLoss) << wire;
  }
}

TEST(ResponseParser, LimitsAreResourceExhausted) {
  ParserLimits limits;
  limits.max_header_bytes = 64;
  limits.max_headers = 2;
  limits.max_body_bytes = 4;
  EXPECT_EQ(
      ParseAll(std::string("HTTP/1.1 200 OK\r\nX: ") + std::string(100, 'a'), false, false, limits)
          .status()
          .code(),
      absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ParseAll("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", true, false, limits)
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ParseAll("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, false, limits)
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ParseAll("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\nabc",
                     true, false, limits)
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ParseAll("HTTP/1.1 200 OK\r\n\r\nabcdef", false, true, limits).status().code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace http
}  // namespace hublink
