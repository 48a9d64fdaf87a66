#include "tests/conformance.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
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

  // Opens a connection and waits for the greeting.
  void Connect() {
    context_ = std::make_unique<ConnectContext>(*loop_, pipeline_->endpoint().host(),
                                                pipeline_->endpoint().port());
    auto top = pipeline_->CreateStack(*context_);
    ASSERT_TRUE(top.ok()) << top.status();
    transport_ = std::move(top).value();
    transport_->Open(&listener_);
    ASSERT_TRUE(RunUntil(*loop_, [&] { return listener_.opened > 0 || listener_.closed; }));
    ASSERT_EQ(listener_.opened, 1) << (listener_.closed ? listener_.closed->ToString() : "");
    ASSERT_TRUE(RunUntil(*loop_, [&] { return listener_.data.size() >= kHello.size(); }));
    ASSERT_EQ(listener_.data.substr(0, kHello.size()), kHello);
    listener_.data.erase(0, kHello.size());
  }

  // Writes `bytes` respecting backpressure and waits for their echo.
  void WriteAndAwaitEcho(absl::string_view bytes) {
    size_t expected = listener_.data.size() + bytes.size();
    absl::Status status = transport_->Write(bytes);
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_TRUE(RunUntil(
        *loop_, [&] { return listener_.data.size() >= expected || listener_.closed; },
        absl::Seconds(30)))
        << "received " << listener_.data.size() << " of " << expected;
  }

  EventLoop& loop() { return *loop_; }
  Transport& transport() { return *transport_; }
  RecordingListener& listener() { return listener_; }
  ConformancePeer& peer() { return *peer_; }

 private:
  const ConformanceTarget& target_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<ConformancePeer> peer_;
  std::unique_ptr<ResolvedPipeline> pipeline_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<ConnectContext> context_;
  RecordingListener listener_;
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
    ASSERT_TRUE(h.transport().Write(absl::string_view(message).substr(0, split)).ok());
    ASSERT_TRUE(h.transport().Write(absl::string_view(message).substr(split)).ok());
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
  h.transport().Close();
  absl::Status after_close = h.transport().Write("late");
  EXPECT_EQ(after_close.code(), absl::StatusCode::kFailedPrecondition) << after_close;
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return h.listener().closed.has_value(); }));
  EXPECT_TRUE(h.listener().closed->ok()) << *h.listener().closed;
  EXPECT_EQ(h.listener().closed_count, 1);
  EXPECT_TRUE(RunUntil(h.loop(), [&] { return h.peer().closed_connections() == 1; }))
      << "the peer never saw the connection end";
  absl::Status after_closed = h.transport().Write("later");
  EXPECT_EQ(after_closed.code(), absl::StatusCode::kFailedPrecondition) << after_closed;
}

TEST_P(TransportConformanceTest, PeerCloseReachesListener) {
  Harness h(GetParam());
  ASSERT_NO_FATAL_FAILURE(h.SetUp());
  ASSERT_NO_FATAL_FAILURE(h.Connect());
  ASSERT_TRUE(h.transport().Write(absl::StrCat("bye", kQuit)).ok());
  ASSERT_TRUE(RunUntil(h.loop(), [&] { return h.listener().closed.has_value(); }));
  EXPECT_EQ(h.listener().data, absl::StrCat("bye", kQuit)) << "bytes before the close were lost";
  EXPECT_EQ(h.listener().closed_count, 1);
  absl::Status after = h.transport().Write("x");
  EXPECT_EQ(after.code(), absl::StatusCode::kFailedPrecondition) << after;
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

}  // namespace testing
}  // namespace hublink
