// http_connect against real proxies (tinyproxy, squid) started on loopback, scripted fake proxies
// for answers real ones do not give on demand, mosquitto behind a proxy, and the conformance suite.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "auth/signer_test_support.h"
#include "gtest/gtest.h"
#include "plugins/log.h"
#include "plugins/pipeline.h"
#include "tests/conformance.h"
#include "tests/test_util.h"
#include "transports/http_connect/http_connect_transport.h"
#include "transports/http_connect/proxy_test_util.h"
#include "transports/tcp/tcp_transport.h"
#include "transports/tls/tls_transport.h"

namespace hublink {
namespace {

using testing::ProxyDaemon;
using testing::RecordingListener;
using testing::RunUntil;
using testing::TransportConformanceTest;

constexpr char kUser[] = "alice";
constexpr char kPassword[] = "pw-7c1e9b04d2-canary";

void RegisterAll(Registry::Builder& builder) {
  RegisterTcpTransport(builder);
  testing::RegisterDialTransport(builder);
  RegisterHttpConnectTransport(builder);
  RegisterTlsTransport(builder);
}

std::string ConnectLayer(absl::string_view fields) {
  return absl::StrCat(
      "transports { name: \"http_connect\" typed_config { "
      "[type.googleapis.com/hublink.transports.HttpConnectConfig] { ",
      fields, " } } }\n");
}

std::string Credentials(absl::string_view user, absl::string_view password) {
  return absl::StrFormat("username: \"%s\" password: \"%s\"", user, password);
}

// One attempt through dial(proxy) > http_connect (> more layers) to 127.0.0.1:target_port.
class Attempt {
 public:
  absl::Status Start(int target_port, int proxy_port, const std::string& layers,
                     const std::string& host = "127.0.0.1") {
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
  // Waits for the stack to open or end; returns the end's status, or OK when open.
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

// A scripted proxy: accepts one connection, reads the request up to its blank line, answers
// `reply`, then closes (close_after) or keeps the connection until destroyed.
class FakeProxy {
 public:
  FakeProxy(std::string reply, bool close_after) : reply_(std::move(reply)), close_(close_after) {}
  ~FakeProxy() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  absl::Status Start() {
    absl::StatusOr<testing::LoopbackListener> listener = testing::ListenOnLoopback();
    if (!listener.ok()) return listener.status();
    fd_ = listener->fd;
    port_ = listener->port;
    thread_ = std::thread([this] { Serve(); });
    return absl::OkStatus();
  }
  int port() const { return port_; }
  std::string request() {
    std::lock_guard<std::mutex> lock(mutex_);
    return request_;
  }

 private:
  bool Wait(int fd) {
    while (!stop_.load()) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 20) > 0) return true;
    }
    return false;
  }
  void Serve() {
    if (!Wait(fd_)) return;
    int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return;
    std::string seen;
    while (!absl::StrContains(seen, "\r\n\r\n") && Wait(conn)) {
      char buffer[4096];
      ssize_t n = recv(conn, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      seen.append(buffer, n);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      request_ = seen;
    }
    if (!reply_.empty()) (void)!send(conn, reply_.data(), reply_.size(), MSG_NOSIGNAL);
    if (!close_) {
      while (Wait(conn)) {
        char buffer[4096];
        if (recv(conn, buffer, sizeof(buffer), 0) <= 0) break;
      }
    }
    close(conn);
  }

  const std::string reply_;
  const bool close_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::string request_;
};

// --- The conformance suite through real proxies ---

std::function<absl::StatusOr<std::unique_ptr<ProxyDaemon>>()> Tinyproxy(std::string user,
                                                                        std::string password) {
  return [user, password] {
    ProxyDaemon::TinyproxyOptions options;
    options.user = user;
    options.password = password;
    return ProxyDaemon::StartTinyproxy(options);
  };
}

std::function<absl::StatusOr<std::unique_ptr<ProxyDaemon>>()> Squid(std::string user,
                                                                    std::string password) {
  return [user, password] {
    ProxyDaemon::SquidOptions options;
    options.user = user;
    options.password = password;
    return ProxyDaemon::StartSquid(options);
  };
}

INSTANTIATE_TEST_SUITE_P(
    HttpConnect, TransportConformanceTest,
    ::testing::Values(
        testing::ProxiedConformanceTarget("Tinyproxy", RegisterHttpConnectTransport,
                                          Tinyproxy("", ""), ConnectLayer("")),
        testing::ProxiedConformanceTarget("TinyproxyBasicAuth", RegisterHttpConnectTransport,
                                          Tinyproxy(kUser, kPassword),
                                          ConnectLayer(Credentials(kUser, kPassword))),
        testing::ProxiedConformanceTarget("Squid", RegisterHttpConnectTransport, Squid("", ""),
                                          ConnectLayer("")),
        testing::ProxiedConformanceTarget("SquidBasicAuth", RegisterHttpConnectTransport,
                                          Squid(kUser, kPassword),
                                          ConnectLayer(Credentials(kUser, kPassword)))),
    testing::TargetName);

// --- Real proxies: refusals ---

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

TEST(HttpConnectTinyproxyTest, TunnelWithBasicAuthCarriesBytesAndReportsTheStage) {
  EchoTarget target = StartEchoTarget();
  ASSERT_NE(target.port, 0);
  ProxyDaemon::TinyproxyOptions options;
  options.user = kUser;
  options.password = kPassword;
  options.connect_ports = {target.port};
  auto proxy = ProxyDaemon::StartTinyproxy(options);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  Attempt attempt;
  ASSERT_TRUE(attempt
                  .Start(target.port, (*proxy)->port(),
                         ConnectLayer(absl::StrCat(Credentials(kUser, kPassword),
                                                   " headers { name: \"User-Agent\" value: "
                                                   "\"hublink-test\" }")))
                  .ok());
  absl::Status opened = attempt.AwaitOpen();
  ASSERT_TRUE(opened.ok()) << opened << "\n" << (*proxy)->Log();
  ASSERT_TRUE(attempt.AwaitData(6));
  EXPECT_EQ(attempt.listener.data, "HELLO\n");
  ASSERT_TRUE(attempt.transport().Write("ping").ok());
  ASSERT_TRUE(attempt.AwaitData(10));
  EXPECT_EQ(attempt.listener.data, "HELLO\nping");
  EXPECT_TRUE(std::any_of(attempt.stages.begin(), attempt.stages.end(), [&](const std::string& s) {
    return absl::StartsWith(
               s, absl::StrCat("http_connect: tunnel to 127.0.0.1:", target.port, ": HTTP/1.")) &&
           absl::StrContains(s, " 200 ");
  })) << absl::StrJoin(attempt.stages, "\n");
}

struct ProxyRefusal {
  std::string name;
  std::function<absl::StatusOr<std::unique_ptr<ProxyDaemon>>(int target_port)> start;
  std::string layer;
  absl::StatusCode code;
  std::vector<std::string> must_contain;
  bool dead_target = false;  // tunnel to a port where nothing listens
};

void PrintTo(const ProxyRefusal& refusal, std::ostream* os) { *os << refusal.name; }

class HttpConnectRefusalTest : public ::testing::TestWithParam<ProxyRefusal> {};

TEST_P(HttpConnectRefusalTest, RefusalIsReportedWithTheProxysStatusLine) {
  EchoTarget target = StartEchoTarget();
  ASSERT_NE(target.port, 0);
  auto proxy = GetParam().start(target.port);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  Attempt attempt;
  int port = target.port;
  if (GetParam().dead_target) {
    absl::StatusOr<int> free_port = testing::PickFreePort();
    ASSERT_TRUE(free_port.ok());
    port = *free_port;
  }
  ASSERT_TRUE(attempt.Start(port, (*proxy)->port(), GetParam().layer).ok());
  absl::Status status = attempt.AwaitOpen();
  ASSERT_FALSE(status.ok()) << (*proxy)->Log();
  EXPECT_EQ(status.code(), GetParam().code) << status;
  EXPECT_TRUE(absl::StartsWith(status.message(), "http_connect: ")) << status;
  for (const std::string& part : GetParam().must_contain) {
    EXPECT_TRUE(absl::StrContains(status.message(), part)) << status << "\nlacks: " << part;
  }
  EXPECT_EQ(attempt.listener.opened, 0);
  EXPECT_EQ(attempt.listener.closed_count, 1);
}

ProxyDaemon::TinyproxyOptions TinyAuth(std::vector<int> ports) {
  ProxyDaemon::TinyproxyOptions options;
  options.user = kUser;
  options.password = kPassword;
  options.connect_ports = std::move(ports);
  return options;
}
ProxyDaemon::SquidOptions SquidAuth(std::vector<int> ports) {
  ProxyDaemon::SquidOptions options;
  options.user = kUser;
  options.password = kPassword;
  options.allowed_ports = std::move(ports);
  return options;
}

INSTANTIATE_TEST_SUITE_P(
    RealProxies, HttpConnectRefusalTest,
    ::testing::Values(
        ProxyRefusal{"TinyproxyWrongPassword",
                     [](int port) { return ProxyDaemon::StartTinyproxy(TinyAuth({port})); },
                     ConnectLayer(Credentials(kUser, "wrong-password")),
                     absl::StatusCode::kUnauthenticated,
                     // tinyproxy answers a wrong password with 401, a missing one with 407.
                     {"proxy authentication required", "401 Unauthorized",
                      "refused the configured username and password"}},
        ProxyRefusal{"TinyproxyNoCredentials",
                     [](int port) { return ProxyDaemon::StartTinyproxy(TinyAuth({port})); },
                     ConnectLayer(""),
                     absl::StatusCode::kUnauthenticated,
                     {"407", "set username and password", "Proxy-Authenticate: Basic"}},
        ProxyRefusal{"TinyproxyPortNotAllowed",
                     [](int port) { return ProxyDaemon::StartTinyproxy(TinyAuth({port + 1})); },
                     ConnectLayer(Credentials(kUser, kPassword)),
                     absl::StatusCode::kPermissionDenied,
                     {"the proxy refused CONNECT 127.0.0.1:", "403 Access violation"}},
        ProxyRefusal{"TinyproxyTargetRefused",
                     [](int port) { return ProxyDaemon::StartTinyproxy(TinyAuth({})); },
                     ConnectLayer(Credentials(kUser, kPassword)),
                     absl::StatusCode::kUnavailable,
                     {"could not open a tunnel", "500"},
                     /*dead_target=*/true},
        ProxyRefusal{
            "SquidWrongPassword",
            [](int port) { return ProxyDaemon::StartSquid(SquidAuth({port})); },
            ConnectLayer(Credentials(kUser, "wrong-password")),
            absl::StatusCode::kUnauthenticated,
            {"407 Proxy Authentication Required", "refused the configured username and password"}},
        ProxyRefusal{"SquidAclRefuses",
                     [](int port) { return ProxyDaemon::StartSquid(SquidAuth({port + 1})); },
                     ConnectLayer(Credentials(kUser, kPassword)),
                     absl::StatusCode::kPermissionDenied,
                     {"403 Forbidden"}}),
    [](const ::testing::TestParamInfo<ProxyRefusal>& info) { return info.param.name; });

// --- Scripted proxies: answers on demand ---

struct Scripted {
  std::string name;
  std::string reply;
  bool close_after;
  absl::StatusCode code;
  std::string must_contain;
};

class HttpConnectScriptedTest : public ::testing::TestWithParam<Scripted> {};

TEST_P(HttpConnectScriptedTest, AnswerMapsToItsCode) {
  FakeProxy proxy(GetParam().reply, GetParam().close_after);
  ASSERT_TRUE(proxy.Start().ok());
  Attempt attempt;
  ASSERT_TRUE(attempt
                  .Start(1883, proxy.port(),
                         ConnectLayer("handshake_timeout { nanos: 300000000 } "
                                      "max_response_bytes: 256"),
                         "broker.example")
                  .ok());
  absl::Status status = attempt.AwaitOpen();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), GetParam().code) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), GetParam().must_contain)) << status;
  EXPECT_EQ(attempt.listener.closed_count, 1);
  EXPECT_TRUE(absl::StartsWith(
      proxy.request(), "CONNECT broker.example:1883 HTTP/1.1\r\nHost: broker.example:1883\r\n"))
      << proxy.request();
}

INSTANTIATE_TEST_SUITE_P(
    Answers, HttpConnectScriptedTest,
    ::testing::Values(
        Scripted{"ClosesWithoutAnswer", "", true, absl::StatusCode::kUnavailable,
                 "http_connect: the proxy closed the connection before the tunnel to "
                 "broker.example:1883 was open (0 bytes of the proxy's answer received)"},
        Scripted{"ClosesMidAnswer", "HTTP/1.1 200 Conn", true, absl::StatusCode::kUnavailable,
                 "(17 bytes of the proxy's answer received)"},
        Scripted{"NotHttp", "SSH-2.0-OpenSSH_9.2\r\n", false, absl::StatusCode::kDataLoss,
                 "not HTTP (is this an HTTP proxy?)"},
        Scripted{"BadGateway", "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", false,
                 absl::StatusCode::kUnavailable,
                 "could not open a tunnel to broker.example:1883: HTTP/1.1 502 Bad Gateway"},
        Scripted{"GatewayTimeout", "HTTP/1.1 504 Gateway Timeout\r\n\r\n", true,
                 absl::StatusCode::kUnavailable, "504 Gateway Timeout"},
        Scripted{"Forbidden", "HTTP/1.1 403 Forbidden\r\n\r\n", true,
                 absl::StatusCode::kPermissionDenied, "403 Forbidden"},
        Scripted{"AuthRequired",
                 "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic "
                 "realm=\"x\"\r\n\r\n",
                 true, absl::StatusCode::kUnauthenticated, "proxy authentication required"},
        Scripted{"OversizeHeaders", "HTTP/1.1 200 OK\r\nX: " + std::string(400, 'a'), false,
                 absl::StatusCode::kDataLoss, "max_response_bytes (256)"},
        Scripted{"Silent", "", false, absl::StatusCode::kDeadlineExceeded,
                 "http_connect: the proxy did not open the tunnel to broker.example:1883 in time"},
        Scripted{"SilentAfterPartialAnswer", "HTTP/1.1 200", false,
                 absl::StatusCode::kDeadlineExceeded, "(12 bytes of the proxy's answer received)"}),
    [](const ::testing::TestParamInfo<Scripted>& info) { return info.param.name; });

TEST(HttpConnectScriptedTest, BytesAfterThe200GoUpAfterOnOpen) {
  FakeProxy proxy("HTTP/1.1 200 Connection established\r\n\r\nHELLO\nfirst bytes", false);
  ASSERT_TRUE(proxy.Start().ok());
  Attempt attempt;
  ASSERT_TRUE(attempt.Start(8883, proxy.port(), ConnectLayer("")).ok());
  ASSERT_TRUE(attempt.AwaitOpen().ok());
  ASSERT_TRUE(attempt.AwaitData(17));
  EXPECT_EQ(attempt.listener.data, "HELLO\nfirst bytes");
}

TEST(HttpConnectScriptedTest, RequestCarriesBasicCredentialsFromPasswordFileAndHeaders) {
  const std::string path = testing::TempDir() + "/proxy_password";
  ASSERT_TRUE(testing::WriteFile(path, "from-file-secret\r\n").ok());
  FakeProxy proxy("HTTP/1.0 200 OK\r\n\r\n", false);
  ASSERT_TRUE(proxy.Start().ok());
  Attempt attempt;
  ASSERT_TRUE(attempt
                  .Start(443, proxy.port(),
                         ConnectLayer(absl::StrCat(
                             "username: \"bob\" password_file: \"", path,
                             "\" headers { name: \"User-Agent\" value: \"hublink/1\" }")),
                         "::1")
                  .ok());
  ASSERT_TRUE(attempt.AwaitOpen().ok());
  EXPECT_EQ(proxy.request(), absl::StrCat("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n"
                                          "Proxy-Authorization: Basic ",
                                          absl::Base64Escape("bob:from-file-secret"),
                                          "\r\nUser-Agent: hublink/1\r\n\r\n"));
}

TEST(HttpConnectTest, WriteBeforeTheTunnelIsOpenFails) {
  FakeProxy proxy("", false);
  ASSERT_TRUE(proxy.Start().ok());
  Attempt attempt;
  ASSERT_TRUE(attempt.Start(1, proxy.port(), ConnectLayer("")).ok());
  absl::Status early = attempt.transport().Write("x");
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition) << early;
  EXPECT_TRUE(absl::StartsWith(early.message(), "http_connect: write on a not yet open")) << early;
}

// --- Configuration ---

absl::Status Configure(const std::string& fields) {
  Registry::Builder builder;
  RegisterAll(builder);
  auto registry = std::move(builder).Build();
  if (!registry.ok()) return registry.status();
  auto config = ParsePipelineText(absl::StrCat("endpoint { host: \"h\" port: 1 }\n",
                                               testing::DialLayerText(2), ConnectLayer(fields)),
                                  "p.textproto");
  if (!config.ok()) return config.status();
  return ResolvedPipeline::Resolve(*config, *registry, "p.textproto").status();
}

TEST(HttpConnectConfigTest, BadFieldsAreNamed) {
  const std::string dir = testing::TempDir();
  ASSERT_TRUE(testing::WriteFile(dir + "/empty_password", "\n").ok());
  struct Case {
    std::string fields;
    absl::StatusCode code;
    std::string message;
  } cases[] = {
      {"password: \"x\"", absl::StatusCode::kInvalidArgument,
       "http_connect: a password is set but username is empty"},
      {"username: \"a:b\" password: \"x\"", absl::StatusCode::kInvalidArgument,
       "http_connect: username: must not contain ':'"},
      {"username: \"a\" password_file: \"" + dir + "/no_such_file\"", absl::StatusCode::kNotFound,
       "http_connect: password_file " + dir + "/no_such_file: No such file or directory"},
      {"username: \"a\" password_file: \"" + dir + "/empty_password\"",
       absl::StatusCode::kInvalidArgument, "the password is empty"},
      {"headers { name: \"Host\" value: \"x\" }", absl::StatusCode::kInvalidArgument,
       "http_connect: headers[0]: Host is computed by the transport"},
      {"headers { name: \"X\" value: \"a\\r\\nb\" }", absl::StatusCode::kInvalidArgument,
       "contains CR, LF or NUL"},
      {"max_response_bytes: 10", absl::StatusCode::kInvalidArgument,
       "http_connect: max_response_bytes: at least 64"},
      {"handshake_timeout { seconds: -1 }", absl::StatusCode::kInvalidArgument,
       "http_connect: handshake_timeout: must be positive"},
  };
  for (const Case& c : cases) {
    absl::Status status = Configure(c.fields);
    EXPECT_EQ(status.code(), c.code) << c.fields << ": " << status;
    EXPECT_TRUE(absl::StrContains(status.message(), c.message)) << status;
    EXPECT_TRUE(
        absl::StrContains(status.message(), "p.textproto: transports[1] (\"http_connect\")"))
        << status;
  }
  EXPECT_TRUE(Configure(Credentials(kUser, kPassword)).ok());
}

// --- MQTT behind the proxy ---

// MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s, client id "hl".
const char kMqttConnect[] = "\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02hl";
const char kMqttConnackAccepted[] = "\x20\x02\x00\x00";

void ExpectMqttConnack(int broker_port, ProxyDaemon& proxy) {
  Attempt attempt;
  ASSERT_TRUE(
      attempt.Start(broker_port, proxy.port(), ConnectLayer(Credentials(kUser, kPassword))).ok());
  absl::Status opened = attempt.AwaitOpen();
  ASSERT_TRUE(opened.ok()) << opened << "\n" << proxy.Log();
  ASSERT_TRUE(attempt.transport().Write(absl::string_view(kMqttConnect, 16)).ok());
  ASSERT_TRUE(attempt.AwaitData(4));
  EXPECT_EQ(attempt.listener.data, std::string(kMqttConnackAccepted, 4));
  attempt.transport().Close();
  ASSERT_TRUE(RunUntil(attempt.loop(), [&] { return attempt.listener.closed.has_value(); }));
  EXPECT_TRUE(attempt.listener.closed->ok()) << *attempt.listener.closed;
}

TEST(HttpConnectMosquittoTest, MqttConnectThroughTinyproxy) {
  auto broker = testing::MosquittoBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto proxy = ProxyDaemon::StartTinyproxy(TinyAuth({(*broker)->tcp_port()}));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  ExpectMqttConnack((*broker)->tcp_port(), **proxy);
}

TEST(HttpConnectMosquittoTest, MqttConnectThroughSquid) {
  auto broker = testing::MosquittoBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto proxy = ProxyDaemon::StartSquid(SquidAuth({(*broker)->tcp_port()}));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  ExpectMqttConnack((*broker)->tcp_port(), **proxy);
}

// TLS above the tunnel talks to the endpoint, not the proxy: the certificate is verified for the
// endpoint's name ("localhost", sent as SNI) although tcp connected to the proxy.
TEST(HttpConnectMosquittoTest, MqttOverTlsThroughTinyproxyVerifiesTheEndpointsName) {
  const std::string dir = absl::StrCat(testing::TempDir(), "/tls_through_proxy");
  ASSERT_TRUE(testing::RunCommand(absl::StrCat("mkdir -p '", dir, "'")).ok());
  auto certificates = testing::MakeTestCertificates(dir, {"localhost"});
  ASSERT_TRUE(certificates.ok()) << certificates.status();
  testing::MosquittoBroker::Options options;
  options.cert_file = certificates->cert_file;
  options.key_file = certificates->key_file;
  auto broker = testing::MosquittoBroker::Start(options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto proxy = ProxyDaemon::StartTinyproxy(TinyAuth({(*broker)->tls_port()}));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  Attempt attempt;
  ASSERT_TRUE(attempt
                  .Start((*broker)->tls_port(), (*proxy)->port(),
                         absl::StrCat(ConnectLayer(Credentials(kUser, kPassword)),
                                      "transports { name: \"tls\" typed_config { "
                                      "[type.googleapis.com/hublink.transports.TlsConfig] { "
                                      "ca_file: \"",
                                      certificates->ca_file, "\" } } }\n"),
                         "localhost")
                  .ok());
  absl::Status opened = attempt.AwaitOpen();
  ASSERT_TRUE(opened.ok()) << opened << "\n" << (*proxy)->Log();
  ASSERT_TRUE(attempt.transport().Write(absl::string_view(kMqttConnect, 16)).ok());
  ASSERT_TRUE(attempt.AwaitData(4));
  EXPECT_EQ(attempt.listener.data, std::string(kMqttConnackAccepted, 4));
  EXPECT_TRUE(std::any_of(attempt.stages.begin(), attempt.stages.end(), [&](const std::string& s) {
    return absl::StartsWith(s, "http_connect: tunnel to localhost:");
  })) << absl::StrJoin(attempt.stages, "\n");
}

// --- Secrets ---

// Secrets never reach a log line (debug included) or an error: the password, the Basic token, on
// success, refusal and configuration errors.
void ExpectNoPasswordLeak(bool squid) {
  const std::string password = "Sup3r-secret-d41d8cd9";
  const std::string path = testing::TempDir() + "/leak_password";
  ASSERT_TRUE(testing::WriteFile(path, password + "\n").ok());
  EchoTarget target = StartEchoTarget();
  ASSERT_NE(target.port, 0);
  absl::StatusOr<std::unique_ptr<ProxyDaemon>> proxy;
  if (squid) {
    ProxyDaemon::SquidOptions options;
    options.user = kUser;
    options.password = password;
    proxy = ProxyDaemon::StartSquid(options);
  } else {
    ProxyDaemon::TinyproxyOptions options;
    options.user = kUser;
    options.password = password;
    options.connect_ports = {target.port};
    proxy = ProxyDaemon::StartTinyproxy(options);
  }
  ASSERT_TRUE(proxy.ok()) << proxy.status();

  std::vector<std::string> errors;
  std::vector<std::string> lines;
  {
    auth::testing::LogCapture capture;
    for (int port : {(*proxy)->port()}) {
      for (const std::string& fields :
           {Credentials(kUser, password),
            absl::StrCat("username: \"", kUser, "\" password_file: \"", path, "\""),
            // Refused: a different user with the same password, and the right one with the
            // password's prefix.
            Credentials("mallory", password),
            Credentials(kUser, password.substr(0, password.size() - 1))}) {
        Attempt attempt;
        ASSERT_TRUE(attempt.Start(target.port, port, ConnectLayer(fields)).ok());
        absl::Status status = attempt.AwaitOpen();
        if (!status.ok()) errors.emplace_back(status.message());
        if (status.ok()) {
          attempt.transport().Close();
          RunUntil(attempt.loop(), [&] { return attempt.listener.closed.has_value(); });
        }
      }
    }
    for (const std::string& fields :
         {absl::StrCat("username: \"a:b\" password: \"", password, "\""),
          absl::StrCat("password: \"", password, "\""),
          absl::StrCat("username: \"a\" password: \"", password, "\\n\"")}) {
      errors.emplace_back(Configure(fields).message());
    }
    lines = capture.lines();
  }
  ASSERT_GE(errors.size(), 5u) << absl::StrJoin(errors, "\n");
  std::vector<std::string> needles = {password,
                                      absl::Base64Escape(absl::StrCat(kUser, ":", password)),
                                      absl::Base64Escape(absl::StrCat("mallory:", password)),
                                      password.substr(0, password.size() - 1)};
  std::vector<std::string> haystacks = lines;
  haystacks.insert(haystacks.end(), errors.begin(), errors.end());
  EXPECT_TRUE(auth::testing::FindLeaks(haystacks, needles).empty())
      << absl::StrJoin(auth::testing::FindLeaks(haystacks, needles), "\n");
}

TEST(HttpConnectSecretTest, PasswordNeverInLogsOrErrorsWithTinyproxy) {
  ExpectNoPasswordLeak(/*squid=*/false);
}

TEST(HttpConnectSecretTest, PasswordNeverInLogsOrErrorsWithSquid) {
  ExpectNoPasswordLeak(/*squid=*/true);
}

}  // namespace
}  // namespace hublink
