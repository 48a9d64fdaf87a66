// HttpClient over tcp > tls against a real HTTPS server (python3 http.server + ssl) on loopback.
#include "protocols/http/http_client.h"

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/builtin.h"
#include "tests/test_util.h"

namespace hublink {
namespace http {
namespace {

std::string FileBytes(size_t size) {
  std::string out;
  for (size_t i = 0; i < size; ++i) out.push_back(static_cast<char>(i % 251));
  return out;
}

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(testing::TempDir(), "/http_client_test");
    ASSERT_TRUE(testing::RunCommand("rm -rf " + dir_ + " && mkdir -p " + dir_).ok());
    absl::StatusOr<testing::TestCertificates> certs =
        testing::MakeTestCertificates(dir_, {"localhost", "127.0.0.1"});
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = *certs;
    const std::string port_file = dir_ + "/port";
    absl::StatusOr<std::unique_ptr<testing::Subprocess>> server = testing::Subprocess::Start(
        {"python3", "protocols/http/test_server.py", certs_.cert_file, certs_.key_file, port_file});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    // The server writes its port once it listens; bounded wait on that condition.
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (absl::Now() < give_up) {
      absl::StatusOr<std::string> text = testing::ReadFile(port_file);
      if (text.ok() && absl::SimpleAtoi(*text, &port_)) break;
      ASSERT_TRUE(server_->Running()) << "test_server.py exited";
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_NE(port_, 0) << "test_server.py did not report its port";
  }

  std::unique_ptr<HttpClient> Client(const std::string& ca_file) {
    absl::StatusOr<Pipeline> config = HttpsPipeline("127.0.0.1", port_, ca_file);
    EXPECT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<HttpClient>> client =
        HttpClient::Create(*config, BuiltinRegistry());
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  FetchOptions Within(absl::Duration d) {
    FetchOptions options;
    options.deadline = absl::Now() + d;
    return options;
  }

  std::string dir_;
  testing::TestCertificates certs_;
  std::unique_ptr<testing::Subprocess> server_;
  int port_ = 0;
};

TEST_F(HttpClientTest, GetsContentLengthAndChunkedBodies) {
  std::unique_ptr<HttpClient> client = Client(certs_.ca_file);
  ASSERT_NE(client, nullptr);
  Request request;
  request.target = "/hello";
  absl::StatusOr<Response> response = client->Fetch(request, Within(absl::Seconds(10)));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 200);
  EXPECT_EQ(response->body, "hello world");

  request.target = "/chunked";
  response = client->Fetch(request, Within(absl::Seconds(10)));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "chunk-one|chunk-two");

  request.target = "/nowhere";
  response = client->Fetch(request, Within(absl::Seconds(10)));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 404);
}

TEST_F(HttpClientTest, PostsABodyWithTheEndpointAsHost) {
  std::unique_ptr<HttpClient> client = Client(certs_.ca_file);
  ASSERT_NE(client, nullptr);
  Request request;
  request.method = "POST";
  request.target = "/echo";
  request.headers = {{"Content-Type", "application/json"}};
  request.body = R"({"ProductId":"P","DeviceName":"D"})";
  absl::StatusOr<Response> response = client->Fetch(request, Within(absl::Seconds(10)));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, request.body);
  ASSERT_NE(response->Find("x-got-host"), nullptr);
  EXPECT_EQ(*response->Find("x-got-host"), absl::StrCat("127.0.0.1:", port_));
}

TEST_F(HttpClientTest, StreamsARangeToASink) {
  std::unique_ptr<HttpClient> client = Client(certs_.ca_file);
  ASSERT_NE(client, nullptr);
  Request request;
  request.target = "/file?size=300000";
  request.headers = {{"Range", "bytes=100000-"}};
  std::string got;
  FetchOptions options = Within(absl::Seconds(20));
  options.body_sink = [&got](absl::string_view piece) {
    got.append(piece.data(), piece.size());
    return absl::OkStatus();
  };
  absl::StatusOr<Response> response = client->Fetch(request, options);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 206);
  EXPECT_TRUE(response->body.empty());
  EXPECT_TRUE(got == FileBytes(300000).substr(100000)) << got.size();
}

TEST_F(HttpClientTest, ACutBodyIsDataLossSayingHowFarItGot) {
  std::unique_ptr<HttpClient> client = Client(certs_.ca_file);
  ASSERT_NE(client, nullptr);
  Request request;
  request.target = "/cut?size=5000&at=1234";
  uint64_t sunk = 0;
  FetchOptions options = Within(absl::Seconds(10));
  options.body_sink = [&sunk](absl::string_view piece) {
    sunk += piece.size();
    return absl::OkStatus();
  };
  absl::StatusOr<Response> response = client->Fetch(request, options);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDataLoss) << response.status();
  EXPECT_EQ(sunk, 1234u);
  EXPECT_NE(response.status().message().find("1234"), std::string::npos) << response.status();
}

TEST_F(HttpClientTest, UnknownCaIsRefusedByTls) {
  ASSERT_TRUE(testing::RunCommand("mkdir -p " + dir_ + "/other").ok());
  absl::StatusOr<testing::TestCertificates> other =
      testing::MakeTestCertificates(dir_ + "/other", {"localhost"});
  ASSERT_TRUE(other.ok()) << other.status();
  std::unique_ptr<HttpClient> client = Client(other->ca_file);
  ASSERT_NE(client, nullptr);
  Request request;
  request.target = "/hello";
  absl::StatusOr<Response> response = client->Fetch(request, Within(absl::Seconds(10)));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnauthenticated) << response.status();
}

TEST_F(HttpClientTest, DeadlineEndsAHangingExchange) {
  std::unique_ptr<HttpClient> client = Client(certs_.ca_file);
  ASSERT_NE(client, nullptr);
  Request request;
  request.target = "/hang";
  const absl::Time start = absl::Now();
  absl::StatusOr<Response> response = client->Fetch(request, Within(absl::Milliseconds(700)));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(HttpClientConfig, NeedsTheHttpProtocol) {
  absl::StatusOr<Pipeline> config = HttpsPipeline("127.0.0.1", 443, "");
  ASSERT_TRUE(config.ok());
  config->mutable_protocol()->set_name("mqtt");
  config->mutable_protocol()->clear_typed_config();
  EXPECT_EQ(HttpClient::Create(*config, BuiltinRegistry()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpsPipeline("", 443, "").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace http
}  // namespace hublink
