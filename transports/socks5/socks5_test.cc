// socks5 against a real microsocks started on loopback, a scripted fake proxy, mosquitto behind the
// proxy (MQTT over WebSocket through the tunnel), and the conformance suite.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "auth/signer_test_support.h"
#include "gtest/gtest.h"
#include "plugins/pipeline.h"
#include "tests/conformance.h"
#include "tests/test_util.h"
#include "transports/http_connect/proxy_test_util.h"
#include "transports/socks5/socks5_transport.h"
#include "transports/tcp/tcp_transport.h"
#include "transports/websocket/websocket_transport.h"

namespace hublink {
namespace {

using testing::ProxyDaemon;
using testing::RecordingListener;
using testing::RunUntil;
using testing::TransportConformanceTest;

constexpr char kUser[] = "alice";
constexpr char kPassword[] = "pw-3b8f60e1a7-canary";

void RegisterAll(Registry::Builder& builder) {
  RegisterTcpTransport(builder);
  testing::RegisterDialTransport(builder);
  RegisterSocks5Transport(builder);
  RegisterWebSocketTransport(builder);
}

std::string Socks5Layer(absl::string_view fields) {
  return absl::StrCat(
      "transports { name: \"socks5\" typed_config { "
      "[type.googleapis.com/hublink.transports.Socks5Config] { ",
      fields, " } } }\n");
}

std::string Credentials(absl::string_view user, absl::string_view password) {
  return absl::StrFormat("username: \"%s\" password: \"%s\"", user, password);
}

absl::StatusOr<std::unique_ptr<ProxyDaemon>> Microsocks(const std::string& user,
                                                        const std::string& password) {
  ProxyDaemon::MicrosocksOptions options;
  options.user = user;
  options.password = password;
  return ProxyDaemon::StartMicrosocks(options);
}

class Attempt {
 public:
  absl::Status Start(const std::string& host, int target_port, int proxy_port,
                     const std::string& layers) {
    Registry::Builder builder;
    RegisterAll(builder);
    auto registry = std::move(builder).Build();
    if (!registry.ok()) return registry.status();
    registry_ = std::make_unique<Registry>(std::move(registry).value());
    std::string text = absl::StrCat("endpoint { host: \"", host, "\" port: ", target_port, " }\n",
                                    testing::DialLayerText(proxy_port), layers);
    auto config = ParsePipelineText(text, "test");
    if (!config.ok()) return config.status();
    auto pipeline = ResolvedPipeline::Resolve(*config, *registry_, "test");
    if (!pipeline.ok()) return pipeline.status();
    pipeline_ = std::move(pipeline).value();
    auto loop = EventLoop::Create();
    if (!loop.ok()) return loop.status();
    loop_ = std::move(loop).value();
    context_ = std::make_unique<ConnectContext>(*loop_, host, target_port);
    context_->set_stage_observer([this](absl::string_view layer, absl::string_view detail) {
      stages.push_back(absl::StrCat(layer, ": ", detail));
    });
    auto top = pipeline_->CreateStack(*context_);
    if (!top.ok()) return top.status();
    transport_ = std::move(top).value();
    transport_->Open(&listener);
    return absl::OkStatus();
  }
  absl::Status AwaitOpen() {
    if (!RunUntil(
            *loop_, [&] { return listener.opened > 0 || listener.closed.has_value(); },
            absl::Seconds(20))) {
      return absl::DeadlineExceededError("test: neither opened nor closed");
    }
    return listener.closed.has_value() ? *listener.closed : absl::OkStatus();
  }
  bool AwaitData(size_t size) {
    return RunUntil(*loop_, [&] { return listener.data.size() >= size || listener.closed; });
  }
  Transport& transport() { return *transport_; }
  EventLoop& loop() { return *loop_; }

  RecordingListener listener;
  std::vector<std::string> stages;

 private:
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<ResolvedPipeline> pipeline_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<ConnectContext> context_;
  std::unique_ptr<Transport> transport_;
};

struct EchoTarget {
  std::unique_ptr<testing::ConformancePeer> peer;
  int port = 0;
};
EchoTarget StartEchoTarget() {
  EchoTarget target;
  auto peer = testing::StartTcpConformancePeer();
  if (!peer.ok()) return target;
  auto parsed = ParsePipelineText((*peer)->pipeline_text(), "peer");
  target.port = parsed.ok() ? parsed->endpoint().port() : 0;
  target.peer = std::move(peer).value();
  return target;
}

// --- The conformance suite through microsocks ---

INSTANTIATE_TEST_SUITE_P(Socks5, TransportConformanceTest,
                         ::testing::Values(testing::ProxiedConformanceTarget(
                                               "Microsocks", RegisterSocks5Transport,
                                               [] { return Microsocks("", ""); }, Socks5Layer("")),
                                           testing::ProxiedConformanceTarget(
                                               "MicrosocksUserPass", RegisterSocks5Transport,
                                               [] { return Microsocks(kUser, kPassword); },
                                               Socks5Layer(Credentials(kUser, kPassword)))),
                         testing::TargetName);

// --- microsocks: names, refusals ---

TEST(Socks5MicrosocksTest, NameResolvedByTheProxyOrLocally) {
  EchoTarget target = StartEchoTarget();
  ASSERT_NE(target.port, 0);
  auto proxy = Microsocks(kUser, kPassword);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  for (const char* remote_dns : {"true", "false"}) {
    Attempt attempt;
    ASSERT_TRUE(attempt
                    .Start("localhost", target.port, (*proxy)->port(),
                           Socks5Layer(absl::StrCat(Credentials(kUser, kPassword),
                                                    " remote_dns: ", remote_dns)))
                    .ok());
    absl::Status opened = attempt.AwaitOpen();
    ASSERT_TRUE(opened.ok()) << remote_dns << ": " << opened;
    ASSERT_TRUE(attempt.AwaitData(6));
    EXPECT_EQ(attempt.listener.data, "HELLO\n");
    // The stage says what went to the proxy: the name itself, or the address it resolved to here.
    std::string sent = std::string(remote_dns) == "true"
                           ? absl::StrCat("localhost:", target.port)
                           : absl::StrCat(":", target.port, " (username/password, bound ");
    EXPECT_TRUE(std::any_of(
        attempt.stages.begin(), attempt.stages.end(),
        [&](const std::string& s) {
          return absl::StartsWith(s, "socks5: tunnel to ") && absl::StrContains(s, sent) &&
                 (std::string(remote_dns) == "true" || !absl::StrContains(s, "localhost"));
        }))
        << absl::StrJoin(attempt.stages, "\n");
  }
}

struct Refusal {
  std::string name;
  std::string layer;
  bool dead_target;
  absl::StatusCode code;
  std::string message;
};

class Socks5RefusalTest : public ::testing::TestWithParam<Refusal> {};

TEST_P(Socks5RefusalTest, IsReportedWithItsCode) {
  EchoTarget target = StartEchoTarget();
  ASSERT_NE(target.port, 0);
  auto proxy = Microsocks(kUser, kPassword);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  int port = target.port;
  if (GetParam().dead_target) {
    absl::StatusOr<int> free_port = testing::PickFreePort();
    ASSERT_TRUE(free_port.ok());
    port = *free_port;
  }
  Attempt attempt;
  ASSERT_TRUE(attempt.Start("127.0.0.1", port, (*proxy)->port(), GetParam().layer).ok());
  absl::Status status = attempt.AwaitOpen();
  ASSERT_FALSE(status.ok()) << (*proxy)->Log();
  EXPECT_EQ(status.code(), GetParam().code) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), GetParam().message)) << status;
  EXPECT_EQ(attempt.listener.opened, 0);
  EXPECT_EQ(attempt.listener.closed_count, 1);
}

INSTANTIATE_TEST_SUITE_P(
    Microsocks, Socks5RefusalTest,
    ::testing::Values(
        Refusal{"WrongPassword", Socks5Layer(Credentials(kUser, "wrong")), false,
                absl::StatusCode::kUnauthenticated,
                "socks5: the proxy refused username \"alice\" and its password"},
        Refusal{"NoCredentials", Socks5Layer(""), false, absl::StatusCode::kUnauthenticated,
                "socks5: the proxy requires authentication; set username and password"},
        Refusal{"TargetRefused", Socks5Layer(Credentials(kUser, kPassword)), true,
                absl::StatusCode::kUnavailable,
                "socks5: the proxy could not connect to 127.0.0.1:"}),
    [](const ::testing::TestParamInfo<Refusal>& info) { return info.param.name; });

// --- A scripted proxy: reply codes microsocks does not give on demand ---

// Accepts one connection, answers the greeting with "no authentication", reads the CONNECT request
// and answers it with `reply` (or closes when reply is negative), then keeps the connection.
class FakeSocks5 {
 public:
  explicit FakeSocks5(int reply) : reply_(reply) {}
  ~FakeSocks5() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  absl::Status Start() {
    auto listener = testing::ListenOnLoopback();
    if (!listener.ok()) return listener.status();
    fd_ = listener->fd;
    port_ = listener->port;
    thread_ = std::thread([this] { Serve(); });
    return absl::OkStatus();
  }
  int port() const { return port_; }

 private:
  bool ReadAtLeast(int fd, std::string& seen, size_t size) {
    while (seen.size() < size && !stop_.load()) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      char buffer[512];
      ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) return false;
      seen.append(buffer, n);
    }
    return seen.size() >= size;
  }
  void Serve() {
    int conn = -1;
    while (conn < 0 && !stop_.load()) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) > 0) conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    }
    if (conn < 0) return;
    std::string seen;
    if (ReadAtLeast(conn, seen, 3)) {
      (void)!send(conn, "\x05\x00", 2, MSG_NOSIGNAL);
      if (ReadAtLeast(conn, seen, 3 + 10) && reply_ >= 0) {
        const char answer[] = {5, static_cast<char>(reply_), 0, 1, 0, 0, 0, 0, 0, 0};
        (void)!send(conn, answer, sizeof(answer), MSG_NOSIGNAL);
        std::string rest;
        ReadAtLeast(conn, rest, 1 << 20);  // until the client goes or the test ends
      }
    }
    close(conn);
  }

  const int reply_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(Socks5ScriptedTest, ReplyCodesAndAnEarlyCloseMapToTheirCodes) {
  const std::pair<int, absl::StatusCode> cases[] = {
      {1, absl::StatusCode::kUnavailable},      {2, absl::StatusCode::kPermissionDenied},
      {3, absl::StatusCode::kUnavailable},      {4, absl::StatusCode::kUnavailable},
      {6, absl::StatusCode::kDeadlineExceeded}, {7, absl::StatusCode::kInvalidArgument},
      {8, absl::StatusCode::kInvalidArgument},  {-1, absl::StatusCode::kUnavailable},
  };
  for (const auto& [reply, code] : cases) {
    FakeSocks5 proxy(reply);
    ASSERT_TRUE(proxy.Start().ok());
    Attempt attempt;
    ASSERT_TRUE(attempt.Start("10.9.8.7", 1883, proxy.port(), Socks5Layer("")).ok());
    absl::Status status = attempt.AwaitOpen();
    ASSERT_FALSE(status.ok()) << reply;
    EXPECT_EQ(status.code(), code) << status;
    EXPECT_TRUE(absl::StartsWith(status.message(), "socks5: ")) << status;
    EXPECT_TRUE(absl::StrContains(status.message(), "10.9.8.7:1883")) << status;
  }
}

TEST(Socks5ScriptedTest, SilentProxyTimesOut) {
  auto listener = testing::ListenOnLoopback();
  ASSERT_TRUE(listener.ok());
  Attempt attempt;
  ASSERT_TRUE(attempt
                  .Start("10.9.8.7", 1883, listener->port,
                         Socks5Layer("handshake_timeout { nanos: 300000000 }"))
                  .ok());
  absl::Status status = attempt.AwaitOpen();
  close(listener->fd);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_TRUE(absl::StrContains(
      status.message(), "socks5: the proxy did not open the tunnel to 10.9.8.7:1883 in time"))
      << status;
}

// --- Configuration ---

absl::Status Configure(const std::string& fields) {
  Registry::Builder builder;
  RegisterAll(builder);
  auto registry = std::move(builder).Build();
  if (!registry.ok()) return registry.status();
  auto config = ParsePipelineText(absl::StrCat("endpoint { host: \"h\" port: 1 }\n",
                                               testing::DialLayerText(2), Socks5Layer(fields)),
                                  "p.textproto");
  if (!config.ok()) return config.status();
  return ResolvedPipeline::Resolve(*config, *registry, "p.textproto").status();
}

TEST(Socks5ConfigTest, BadFieldsAreNamed) {
  const std::string dir = testing::TempDir();
  EXPECT_EQ(Configure("password: \"x\"").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      Configure(absl::StrCat("username: \"", std::string(256, 'u'), "\" password: \"p\"")).code(),
      absl::StatusCode::kInvalidArgument);
  absl::Status missing =
      Configure(absl::StrCat("username: \"u\" password_file: \"", dir, "/no_such\""));
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_TRUE(absl::StrContains(missing.message(), "socks5: password_file ")) << missing;
  EXPECT_EQ(Configure("handshake_timeout { seconds: -1 }").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Configure(Credentials(kUser, kPassword)).ok());
}

// --- MQTT over WebSocket through the proxy ---

TEST(Socks5MosquittoTest, MqttOverWebSocketThroughMicrosocks) {
  testing::MosquittoBroker::Options options;
  options.websockets = true;
  auto broker = testing::MosquittoBroker::Start(options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto proxy = Microsocks(kUser, kPassword);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  Attempt attempt;
  ASSERT_TRUE(attempt
                  .Start("localhost", (*broker)->ws_port(), (*proxy)->port(),
                         absl::StrCat(Socks5Layer(Credentials(kUser, kPassword)),
                                      "transports { name: \"websocket\" }\n"))
                  .ok());
  absl::Status opened = attempt.AwaitOpen();
  ASSERT_TRUE(opened.ok()) << opened;
  // MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s, client id "hl"; CONNACK accepted.
  ASSERT_TRUE(attempt.transport()
                  .Write(absl::string_view("\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02hl", 16))
                  .ok());
  ASSERT_TRUE(attempt.AwaitData(4));
  EXPECT_EQ(attempt.listener.data, std::string("\x20\x02\x00\x00", 4));
  EXPECT_TRUE(std::any_of(attempt.stages.begin(), attempt.stages.end(), [](const std::string& s) {
    return absl::StartsWith(s, "websocket: upgrade 101");
  })) << absl::StrJoin(attempt.stages, "\n");
  attempt.transport().Close();
  ASSERT_TRUE(RunUntil(attempt.loop(), [&] { return attempt.listener.closed.has_value(); }));
}

// --- Secrets ---

TEST(Socks5SecretTest, PasswordNeverInLogsOrErrors) {
  const std::string password = "S0cks-secret-5e2a77c3";
  const std::string path = testing::TempDir() + "/socks_leak_password";
  ASSERT_TRUE(testing::WriteFile(path, password + "\n").ok());
  EchoTarget target = StartEchoTarget();
  ASSERT_NE(target.port, 0);
  auto proxy = Microsocks(kUser, password);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  std::vector<std::string> errors;
  std::vector<std::string> lines;
  {
    auth::testing::LogCapture capture;
    for (const std::string& fields :
         {Credentials(kUser, password),
          absl::StrCat("username: \"", kUser, "\" password_file: \"", path, "\""),
          Credentials("mallory", password),
          Credentials(kUser, password.substr(0, password.size() - 1))}) {
      Attempt attempt;
      ASSERT_TRUE(attempt
                      .Start("localhost", target.port, (*proxy)->port(),
                             Socks5Layer(absl::StrCat(fields, " remote_dns: false")))
                      .ok());
      absl::Status status = attempt.AwaitOpen();
      if (!status.ok()) errors.emplace_back(status.message());
      if (status.ok()) {
        attempt.transport().Close();
        RunUntil(attempt.loop(), [&] { return attempt.listener.closed.has_value(); });
      }
    }
    errors.emplace_back(Configure(absl::StrCat("password: \"", password, "\"")).message());
    lines = capture.lines();
  }
  ASSERT_GE(errors.size(), 3u) << absl::StrJoin(errors, "\n");
  std::vector<std::string> needles = {password, password.substr(0, password.size() - 1)};
  std::vector<std::string> haystacks = lines;
  haystacks.insert(haystacks.end(), errors.begin(), errors.end());
  EXPECT_TRUE(auth::testing::FindLeaks(haystacks, needles).empty())
      << absl::StrJoin(auth::testing::FindLeaks(haystacks, needles), "\n");
}

}  // namespace
}  // namespace hublink
