#include "tests/conformance.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "plugins/pipeline.h"
#include "tests/test_util.h"
#include "transports/tcp/tcp_transport.h"

namespace hublink {
namespace testing {
namespace {

constexpr absl::string_view kHello = "HELLO\n";
constexpr absl::string_view kQuit = "QUIT\n";

class TcpConformancePeer : public ConformancePeer {
 public:
  ~TcpConformancePeer() override {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }

  absl::Status Start() {
    absl::StatusOr<LoopbackListener> listener = ListenOnLoopback();
    if (!listener.ok()) return listener.status();
    listen_fd_ = listener->fd;
    port_ = listener->port;
    thread_ = std::thread([this] { Serve(); });
    return absl::OkStatus();
  }

  std::string pipeline_text() const override {
    return absl::StrFormat(
        "endpoint { host: \"127.0.0.1\" port: %d }\ntransports { name: \"tcp\" }\n", port_);
  }
  int closed_connections() override { return closed_.load(); }

 private:
  struct Connection {
    int fd;
    std::string seen;  // tail of the received stream, for finding QUIT across reads
  };

  void Serve() {
    std::vector<Connection> connections;
    while (!stop_.load()) {
      std::vector<pollfd> fds;
      fds.push_back({listen_fd_, POLLIN, 0});
      for (const Connection& c : connections) fds.push_back({c.fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 50) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          SendAll(fd, kHello);
          connections.push_back({fd, ""});
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Connection& c = connections[i - 1];
        char buffer[65536];
        ssize_t n = recv(c.fd, buffer, sizeof(buffer), 0);
        bool end = n <= 0;
        if (n > 0) {
          SendAll(c.fd, absl::string_view(buffer, n));
          c.seen.append(buffer, n);
          if (absl::StrContains(c.seen, kQuit)) end = true;
          if (c.seen.size() > 16) c.seen.erase(0, c.seen.size() - 16);
        }
        if (end) {
          close(c.fd);
          c.fd = -1;
          closed_.fetch_add(1);
        }
      }
      connections.erase(std::remove_if(connections.begin(), connections.end(),
                                       [](const Connection& c) { return c.fd < 0; }),
                        connections.end());
    }
    for (Connection& c : connections) close(c.fd);
  }

  static void SendAll(int fd, absl::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        if (errno == EAGAIN) {
          pollfd p{fd, POLLOUT, 0};
          poll(&p, 1, 100);
          continue;
        }
        return;
      }
      bytes.remove_prefix(n);
    }
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> closed_{0};
  std::thread thread_;
};

// A listener that enforces the TransportListener contract (plugins/transport.h) as it goes:
// no callback from inside Open(), Write() or Close() (the harness marks those calls), OnClosed()
// at most once, OnOpen() at most once, and nothing after OnClosed().
class ContractListener : public RecordingListener {
 public:
  explicit ContractListener(std::string name = "listener") : name_(std::move(name)) {}

  // Runs `call`, a call into the transport named `what`, with callbacks forbidden.
  void Call(const char* what, const std::function<void()>& call) {
    const char* outer = inside_;
    inside_ = what;
    call();
    inside_ = outer;
  }

  void OnOpen() override {
    Check("OnOpen");
    if (opened > 0) ADD_FAILURE() << name_ << ": OnOpen() reported twice";
    RecordingListener::OnOpen();
  }
  void OnData(absl::string_view bytes) override {
    Check("OnData");
    RecordingListener::OnData(bytes);
  }
  void OnClosed(const absl::Status& status) override {
    if (inside_ != nullptr) {
      ADD_FAILURE() << name_ << ": OnClosed(" << status << ") called from inside " << inside_
                    << "(); the contract defers callbacks through the loop";
    }
    if (closed_count > 0) {
      ADD_FAILURE() << name_ << ": OnClosed() reported twice: first " << *closed << ", then "
                    << status;
    }
    RecordingListener::OnClosed(status);
  }
  void OnWritable() override {
    Check("OnWritable");
    RecordingListener::OnWritable();
  }

 private:
  void Check(const char* callback) {
    if (inside_ != nullptr) {
      ADD_FAILURE() << name_ << ": " << callback << "() called from inside " << inside_
                    << "(); the contract defers callbacks through the loop";
    }
    if (closed_count > 0) {
      ADD_FAILURE() << name_ << ": " << callback << "() after OnClosed(" << *closed << ")";
    }
  }

  std::string name_;
  const char* inside_ = nullptr;
};

// Runs `loop` until everything already posted to it has run (a marker task posted now ran, twice
// over, so callbacks those tasks posted ran too). Bounded; no fixed sleep.
void Settle(EventLoop& loop) {
  for (int round = 0; round < 2; ++round) {
    bool ran = false;
    loop.Post([&ran] { ran = true; });
    ASSERT_TRUE(RunUntil(
        loop, [&] { return ran; }, absl::Seconds(5)));
  }
}

// One connection through the stack under test, driven on a private loop.
class Harness {
 public:
  explicit Harness(const ConformanceTarget& target) : target_(target) {}

  void SetUp() {
    Registry::Builder builder;
    target_.register_plugins(builder);
    auto registry = std::move(builder).Build();
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = std::make_unique<Registry>(std::move(registry).value());
    auto peer = target_.start_peer();
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = std::move(peer).value();
    auto config = ParsePipelineText(peer_->pipeline_text(), target_.name);
    ASSERT_TRUE(config.ok()) << config.status();
    auto pipeline = ResolvedPipeline::Resolve(*config, *registry_, target_.name);
    ASSERT_TRUE(pipeline.ok()) << pipeline.status();
    pipeline_ = std::move(pipeline).value();
    auto loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = std::move(loop).value();
  }

  // Builds the stack for the peer's endpoint, or for `port` on the peer's host when given, without
  // opening it. `configure` may adjust the context (deadlines) first.
  void Create(int port = 0, const std::function<void(ConnectContext&)>& configure = nullptr) {
    context_ = std::make_unique<ConnectContext>(*loop_, pipeline_->endpoint().host(),
                                                port != 0 ? port : pipeline_->endpoint().port());
    if (configure) configure(*context_);
    auto top = pipeline_->CreateStack(*context_);
    ASSERT_TRUE(top.ok()) << top.status();
    transport_ = std::move(top).value();
  }

  // Calls into the transport with callbacks into `listener` (default: the harness's) forbidden.
  void Open(ContractListener* listener = nullptr) {
    ContractListener* to = listener != nullptr ? listener : &listener_;
    to->Call("Open", [&] { transport_->Open(to); });
  }
  absl::Status Write(absl::string_view bytes) {
    absl::Status status;
    listener_.Call("Write", [&] { status = transport_->Write(bytes); });
    return status;
  }
  void Close() {
    listener_.Call("Close", [&] { transport_->Close(); });
  }

  // Opens a connection and waits for the greeting.
  void Connect() {
    ASSERT_NO_FATAL_FAILURE(Create());
    Open();
    ASSERT_TRUE(RunUntil(*loop_, [&] { return listener_.opened > 0 || listener_.closed; }));
    ASSERT_EQ(listener_.opened, 1) << (listener_.closed ? listener_.closed->ToString() : "");
    ASSERT_TRUE(RunUntil(*loop_, [&] { return listener_.data.size() >= kHello.size(); }));
    ASSERT_EQ(listener_.data.substr(0, kHello.size()), kHello);
    listener_.data.erase(0, kHello.size());
  }

  // Writes `bytes` respecting backpressure and waits for their echo.
  void WriteAndAwaitEcho(absl::string_view bytes) {
    size_t expected = listener_.data.size() + bytes.size();
    absl::Status status = Write(bytes);
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_TRUE(RunUntil(
        *loop_, [&] { return listener_.data.size() >= expected || listener_.closed; },
        absl::Seconds(30)))
        << "received " << listener_.data.size() << " of " << expected;
  }

  EventLoop& loop() { return *loop_; }
  Transport& transport() { return *transport_; }
  void DestroyTransport() { transport_.reset(); }
  ContractListener& listener() { return listener_; }
  ConformancePeer& peer() { return *peer_; }

 private:
  const ConformanceTarget& target_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<ConformancePeer> peer_;
  std::unique_ptr<ResolvedPipeline> pipeline_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<ConnectContext> context_;
  ContractListener listener_;
  std::unique_ptr<Transport> transport_;
};

std::string Pattern(size_t size, int seed) {
  std::string bytes(size, '\0');
  uint32_t x = 2166136261u ^ static_cast<uint32_t>(seed);
  for (size_t i = 0; i < size; ++i) {
    x = x * 16777619u + 12345u;
    char c = static_cast<char>(x >> 24);
    // Keep "QUIT\n" from appearing by chance: no '\n' in patterns.
    bytes[i] = c == '\n' ? 'n' : c;
  }
  return bytes;
}

TEST_P(TransportConformanceTest, BytesPastHandshakeAreHandedUp) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  // Connect() already checks that the greeting, sent by the peer right after its handshake, arrived
  // intact.
  ASSERT_NO_FATAL_FAILURE(h.Connect());
  EXPECT_TRUE(h.listener().data.empty());
}

TEST_P(TransportConformanceTest, DataSplitAtEveryOffsetArrivesIntact) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  ASSERT_NO_FATAL_FAILURE(h.Connect());
  const std::string message = Pattern(97, 1);
  std::string expected;
  for (size_t split = 0; split <= message.size(); ++split) {
    ASSERT_TRUE(h.Write(absl::string_view(message).substr(0, split)).ok());
    ASSERT_TRUE(h.Write(absl::string_view(message).substr(split)).ok());
    expected += message;
  }
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return h.listener().data.size() >= expected.size(); }));
  EXPECT_EQ(h.listener().data, expected);
}

TEST_P(TransportConformanceTest, LargeTransferArrivesIntact) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  ASSERT_NO_FATAL_FAILURE(h.Connect());
  const std::string message = Pattern(1 << 20, 2);
  // Uneven chunk sizes so no layer sees only aligned writes.
  size_t offset = 0;
  for (size_t chunk = 1; offset < message.size(); chunk = chunk * 3 + 7) {
    size_t size = std::min(chunk % 70000 + 1, message.size() - offset);
    ASSERT_NO_FATAL_FAILURE(h.WriteAndAwaitEcho(absl::string_view(message).substr(offset, size)));
    offset += size;
  }
  ASSERT_FALSE(h.listener().closed.has_value());
  EXPECT_TRUE(h.listener().data == message) << "echo differs from what was sent";
}

TEST_P(TransportConformanceTest, CloseReachesPeerAndWritesThenFail) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  ASSERT_NO_FATAL_FAILURE(h.Connect());
  ASSERT_NO_FATAL_FAILURE(h.WriteAndAwaitEcho("ping"));
  h.Close();
  absl::Status after_close = h.Write("late");
  EXPECT_EQ(after_close.code(), absl::StatusCode::kFailedPrecondition) << after_close;
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return h.listener().closed.has_value(); }));
  EXPECT_TRUE(h.listener().closed->ok()) << *h.listener().closed;
  EXPECT_EQ(h.listener().closed_count, 1);
  EXPECT_TRUE(RunUntil(h.loop(), [&] { return h.peer().closed_connections() == 1; }))
      << "the peer never saw the connection end";
  absl::Status after_closed = h.Write("later");
  EXPECT_EQ(after_closed.code(), absl::StatusCode::kFailedPrecondition) << after_closed;
}

TEST_P(TransportConformanceTest, PeerCloseReachesListener) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  ASSERT_NO_FATAL_FAILURE(h.Connect());
  ASSERT_TRUE(h.Write(absl::StrCat("bye", kQuit)).ok());
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return h.listener().closed.has_value(); }));
  EXPECT_EQ(h.listener().data, absl::StrCat("bye", kQuit)) << "bytes before the close were lost";
  EXPECT_EQ(h.listener().closed_count, 1);
  absl::Status after = h.Write("x");
  EXPECT_EQ(after.code(), absl::StatusCode::kFailedPrecondition) << after;
}

// --- Failure paths: each reports exactly one OnClosed, never from inside a call ---

TEST_P(TransportConformanceTest, RefusedConnectionIsReportedOnce) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  absl::StatusOr<int> free_port = PickFreePort();  // bound, then released: nothing listens there
  ASSERT_TRUE(free_port.ok()) << free_port.status();
  ASSERT_NO_FATAL_FAILURE(h.Create(*free_port));
  h.Open();
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return h.listener().closed.has_value(); }));
  ASSERT_NO_FATAL_FAILURE(Settle(h.loop()));
  EXPECT_EQ(h.listener().opened, 0);
  EXPECT_EQ(h.listener().closed_count, 1);
  EXPECT_EQ(h.listener().closed->code(), absl::StatusCode::kUnavailable) << *h.listener().closed;
  EXPECT_EQ(h.Write("x").code(), absl::StatusCode::kFailedPrecondition);
  h.Close();
  ASSERT_NO_FATAL_FAILURE(Settle(h.loop()));
  EXPECT_EQ(h.listener().closed_count, 1) << "Close() after OnClosed reported again";
}

TEST_P(TransportConformanceTest, ConnectTimeoutIsReportedOnce) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  absl::StatusOr<LoopbackListener> full = ListenOnLoopback(/*backlog=*/0);
  ASSERT_TRUE(full.ok()) << full.status();
  BacklogFillers fillers(full->port);
  ASSERT_NO_FATAL_FAILURE(h.Create(full->port, [&](ConnectContext& context) {
    context.set_connect_timeout(absl::Milliseconds(200));
    context.set_deadline(h.loop().Now() + absl::Milliseconds(200));
  }));
  h.Open();
  ASSERT_TRUE(RunUntil(
      h.loop(), [&] { return h.listener().closed.has_value(); }, absl::Seconds(10)));
  ASSERT_NO_FATAL_FAILURE(Settle(h.loop()));
  close(full->fd);
  EXPECT_EQ(h.listener().opened, 0);
  EXPECT_EQ(h.listener().closed_count, 1);
  EXPECT_EQ(h.listener().closed->code(), absl::StatusCode::kDeadlineExceeded)
      << *h.listener().closed;
}

TEST_P(TransportConformanceTest, ResetByPeerIsReportedOnce) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  // A raw peer that accepts, then resets the connection (SO_LINGER 0) whatever the stack sent.
  absl::StatusOr<LoopbackListener> raw = ListenOnLoopback();
  ASSERT_TRUE(raw.ok()) << raw.status();
  fcntl(raw->fd, F_SETFL, O_NONBLOCK);  // accepted while the loop runs
  ASSERT_NO_FATAL_FAILURE(h.Create(raw->port));
  h.Open();
  int accepted = -1;
  ASSERT_TRUE(RunUntil(h.loop(), [&] {
    if (accepted < 0) accepted = accept4(raw->fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    return accepted >= 0;
  }));
  linger hard{1, 0};
  setsockopt(accepted, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
  close(accepted);
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return h.listener().closed.has_value(); }));
  ASSERT_NO_FATAL_FAILURE(Settle(h.loop()));
  close(raw->fd);
  EXPECT_EQ(h.listener().closed_count, 1);
  EXPECT_EQ(h.listener().closed->code(), absl::StatusCode::kUnavailable) << *h.listener().closed;
}

TEST_P(TransportConformanceTest, OpenTwiceIsReportedOnce) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  ASSERT_NO_FATAL_FAILURE(h.Create());
  h.Open();
  h.Open();
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return h.listener().opened > 0 || h.listener().closed; }));
  // Whether the misuse ends the connection or not, the listener hears of its end once.
  h.Close();
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return h.listener().closed.has_value(); }));
  ASSERT_NO_FATAL_FAILURE(Settle(h.loop()));
  EXPECT_EQ(h.listener().closed_count, 1);
  if (!h.listener().closed->ok()) {
    EXPECT_EQ(h.listener().closed->code(), absl::StatusCode::kFailedPrecondition)
        << *h.listener().closed;
  }
}

TEST_P(TransportConformanceTest, OpenTwiceWithAnotherListenerReportsToBoth) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  ContractListener second("second listener");
  ASSERT_NO_FATAL_FAILURE(h.Create());
  h.Open();
  h.Open(&second);
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return second.closed.has_value(); }))
      << "the second Open() must be refused through its listener";
  EXPECT_EQ(second.closed->code(), absl::StatusCode::kFailedPrecondition) << *second.closed;
  EXPECT_EQ(second.opened, 0);
  // The first listener still owns the connection: it hears of its end, once.
  h.Close();
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return h.listener().closed.has_value(); }))
      << "the first listener never got OnClosed: the second Open() stole it";
  ASSERT_NO_FATAL_FAILURE(Settle(h.loop()));
  EXPECT_EQ(h.listener().closed_count, 1);
  EXPECT_EQ(second.closed_count, 1);
  h.DestroyTransport();  // before `second` goes
}

TEST_P(TransportConformanceTest, CloseTwiceIsReportedOnce) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  ASSERT_NO_FATAL_FAILURE(h.Connect());
  h.Close();
  h.Close();
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return h.listener().closed.has_value(); }));
  h.Close();
  ASSERT_NO_FATAL_FAILURE(Settle(h.loop()));
  EXPECT_EQ(h.listener().closed_count, 1);
  EXPECT_TRUE(h.listener().closed->ok()) << *h.listener().closed;
}

TEST_P(TransportConformanceTest, CloseWhileOpeningIsReportedOnce) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  ASSERT_NO_FATAL_FAILURE(h.Create());
  h.Open();
  h.Close();
  h.Close();
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return h.listener().closed.has_value(); }));
  ASSERT_NO_FATAL_FAILURE(Settle(h.loop()));
  EXPECT_EQ(h.listener().closed_count, 1);
  EXPECT_EQ(h.Write("x").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(TransportConformanceTest, WriteBeforeOpenFails) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  auto loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok());
  // A fresh, unopened stack.
  Registry::Builder builder;
  GetParam().register_plugins(builder);
  auto registry = std::move(builder).Build();
  ASSERT_TRUE(registry.ok());
  auto config = ParsePipelineText(h.peer().pipeline_text(), "t");
  ASSERT_TRUE(config.ok());
  auto pipeline = ResolvedPipeline::Resolve(*config, *registry);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  ConnectContext context(**loop, "127.0.0.1", 1);
  auto top = (*pipeline)->CreateStack(context);
  ASSERT_TRUE(top.ok());
  EXPECT_EQ((*top)->Write("x").code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ConformancePeer>> StartTcpConformancePeer() {
  auto peer = std::make_unique<TcpConformancePeer>();
  absl::Status started = peer->Start();
  if (!started.ok()) return started;
  return std::unique_ptr<ConformancePeer>(std::move(peer));
}

ConformanceTarget TcpConformanceTarget() {
  return {"Tcp", [](Registry::Builder& builder) { RegisterTcpTransport(builder); },
          StartTcpConformancePeer};
}

namespace {

// The TCP peer, reached through tcp > the plugin's transports.
class PluginOverTcpPeer : public ConformancePeer {
 public:
  PluginOverTcpPeer(std::unique_ptr<ConformancePeer> tcp, std::string plugin_transports)
      : tcp_(std::move(tcp)), plugin_transports_(std::move(plugin_transports)) {}
  std::string pipeline_text() const override {
    return absl::StrCat(tcp_->pipeline_text(), plugin_transports_, "\n");
  }
  int closed_connections() override { return tcp_->closed_connections(); }

 private:
  std::unique_ptr<ConformancePeer> tcp_;
  std::string plugin_transports_;
};

}  // namespace

ConformanceTarget PluginOverTcpTarget(std::string name,
                                      std::function<void(Registry::Builder&)> register_plugins,
                                      std::string plugin_transports) {
  return {std::move(name),
          [register_plugins = std::move(register_plugins)](Registry::Builder& builder) {
            RegisterTcpTransport(builder);
            register_plugins(builder);
          },
          [plugin_transports =
               std::move(plugin_transports)]() -> absl::StatusOr<std::unique_ptr<ConformancePeer>> {
            absl::StatusOr<std::unique_ptr<ConformancePeer>> tcp = StartTcpConformancePeer();
            if (!tcp.ok()) return tcp.status();
            return std::unique_ptr<ConformancePeer>(
                new PluginOverTcpPeer(*std::move(tcp), plugin_transports));
          }};
}

}  // namespace testing
}  // namespace hublink
