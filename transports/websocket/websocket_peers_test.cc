// The WebSocket transport over real TCP against real servers on 127.0.0.1: a Node.js peer on the
// npm `ws` package, a raw C++ peer for what `ws` will not produce, mosquitto's websockets listener,
// and the transport conformance suite.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "tests/conformance.h"
#include "tests/test_util.h"
#include "transports/tcp/tcp_transport.h"
#include "transports/websocket/test_frames.h"
#include "transports/websocket/websocket_transport.h"
#include "transports/websocket/ws_test_peers.h"

namespace hublink {
namespace {

using testing::RecordingListener;
using testing::RunUntil;
using testing::TransportConformanceTest;
using websocket::testing::ClientFrame;
using websocket::testing::Connection;
using websocket::testing::MqttConnect;
using websocket::testing::NodeWsPeer;
using websocket::testing::RequestKey;
using websocket::testing::ServerFrame;
using websocket::testing::SwitchingProtocols;
using websocket::testing::TakeClientFrames;
using websocket::testing::WsPipeline;

// --- Node.js `ws` peer ---

TEST(NodeWsTest, EchoThroughARealServer) {
  auto peer = NodeWsPeer::Start("conformance");
  ASSERT_TRUE(peer.ok()) << peer.status();
  Connection c;
  ASSERT_NO_FATAL_FAILURE(c.Open(WsPipeline((*peer)->port(), "path: \"/mqtt\"")));
  ASSERT_TRUE(c.AwaitOpenOrClose());
  ASSERT_EQ(c.events.opened, 1) << *c.events.closed;
  ASSERT_TRUE(c.AwaitData(6));
  EXPECT_EQ(c.events.data, "HELLO\n");
  ASSERT_TRUE(std::find_if(c.stages.begin(), c.stages.end(), [](const std::string& s) {
                return s == "websocket: upgrade 101 GET /mqtt subprotocol mqtt";
              }) != c.stages.end());
  EXPECT_TRUE(c.context().server_clock_offset().has_value())
      << "ws sends no Date? then drop this check";
  ASSERT_TRUE(c.transport().Write("\x10\x02").ok());
  ASSERT_TRUE(c.transport().Write("ab").ok());
  ASSERT_TRUE(c.AwaitData(10));
  EXPECT_EQ(c.events.data,
            "HELLO\n\x10\x02"
            "ab");
}

TEST(NodeWsTest, FragmentedMessageWithInterleavedPings) {
  auto peer = NodeWsPeer::Start("fragments");
  ASSERT_TRUE(peer.ok()) << peer.status();
  Connection c;
  ASSERT_NO_FATAL_FAILURE(c.Open(WsPipeline((*peer)->port())));
  ASSERT_TRUE(c.AwaitOpenOrClose());
  ASSERT_EQ(c.events.opened, 1) << *c.events.closed;
  // The server reports the PONGs it got, so this also proves they went out without any write of
  // ours.
  const std::string expected = "frag-1|frag-2|frag-3\npongs:p1,p2\n";
  ASSERT_TRUE(c.AwaitData(expected.size()));
  EXPECT_EQ(c.events.data, expected);
  EXPECT_FALSE(c.events.closed.has_value());
}

TEST(NodeWsTest, ServerCloseWithCodeAndReason) {
  auto peer = NodeWsPeer::Start("close");
  ASSERT_TRUE(peer.ok()) << peer.status();
  Connection c;
  ASSERT_NO_FATAL_FAILURE(c.Open(WsPipeline((*peer)->port())));
  ASSERT_TRUE(c.AwaitClosed());
  EXPECT_EQ(c.events.opened, 1);
  EXPECT_EQ(c.events.data, "HELLO\n");
  EXPECT_EQ(c.events.closed->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(c.events.closed->message(),
            "websocket: server closed the connection: 4001 \"maintenance window\"");
  // ws reports the code of our echo.
  EXPECT_TRUE(RunUntil(c.loop(), [&] { return !(*peer)->Events().empty(); }));
  EXPECT_EQ((*peer)->Events(), std::vector<std::string>{"closed 4001"});
}

TEST(NodeWsTest, UnauthorizedUpgrade) {
  auto peer = NodeWsPeer::Start("unauthorized");
  ASSERT_TRUE(peer.ok()) << peer.status();
  Connection c;
  ASSERT_NO_FATAL_FAILURE(c.Open(WsPipeline((*peer)->port())));
  ASSERT_TRUE(c.AwaitClosed());
  EXPECT_EQ(c.events.opened, 0);
  EXPECT_EQ(c.events.closed->code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(c.events.closed->message(), "websocket: upgrade refused: HTTP/1.1 401 Unauthorized");
}

TEST(NodeWsTest, SubprotocolMismatch) {
  auto peer = NodeWsPeer::Start("subprotocol");
  ASSERT_TRUE(peer.ok()) << peer.status();
  Connection c;
  ASSERT_NO_FATAL_FAILURE(c.Open(WsPipeline((*peer)->port())));
  ASSERT_TRUE(c.AwaitClosed());
  EXPECT_EQ(c.events.opened, 0);
  EXPECT_EQ(c.events.closed->code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(c.events.closed->message(),
            "websocket: server chose subprotocol \"chat\" (offered: mqtt)");
}

TEST(NodeWsTest, OversizedMessageClosesWith1009) {
  auto peer = NodeWsPeer::Start("oversized");
  ASSERT_TRUE(peer.ok()) << peer.status();
  Connection c;
  ASSERT_NO_FATAL_FAILURE(c.Open(WsPipeline((*peer)->port(), "max_message_bytes: 1024")));
  ASSERT_TRUE(c.AwaitClosed());
  EXPECT_EQ(c.events.opened, 1);
  EXPECT_TRUE(c.events.data.empty());
  EXPECT_EQ(c.events.closed->code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(c.events.closed->message(),
                                "message of at least 4096 bytes exceeds max_message_bytes (1024)"))
      << *c.events.closed;
  EXPECT_TRUE(RunUntil(c.loop(), [&] { return !(*peer)->Events().empty(); }));
  EXPECT_EQ((*peer)->Events(), std::vector<std::string>{"closed 1009"});
}

// --- A raw TCP peer: one scripted connection, recording what the client sent after its request ---

class RawPeer {
 public:
  // `script` runs on the peer's thread with the connected socket and the client's complete request.
  using Script = std::function<void(int fd, const std::string& request)>;

  explicit RawPeer(Script script) : script_(std::move(script)) {
    absl::StatusOr<::hublink::testing::LoopbackListener> listener =
        ::hublink::testing::ListenOnLoopback(4);
    EXPECT_TRUE(listener.ok()) << listener.status();
    listen_fd_ = listener.ok() ? listener->fd : -1;
    port_ = listener.ok() ? listener->port : 0;
    thread_ = std::thread([this] { Serve(); });
  }
  ~RawPeer() {
    stop_.store(true);
    thread_.join();
    close(listen_fd_);
  }

  int port() const { return port_; }
  bool done() const { return done_.load(); }
  // Everything the client sent after its upgrade request, up to its FIN.
  std::string received() {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }

  static void SendAll(int fd, absl::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      bytes.remove_prefix(n);
    }
  }

 private:
  // Waits (bounded, and giving up when the test ends) until `fd` is readable.
  bool WaitReadable(int fd) {
    for (int i = 0; i < 200 && !stop_.load(); ++i) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) > 0) return true;
    }
    return false;
  }

  void Serve() {
    if (!WaitReadable(listen_fd_)) return;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::string request;
    char buffer[4096];
    while (!absl::StrContains(request, "\r\n\r\n") && WaitReadable(fd)) {
      ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      request.append(buffer, n);
    }
    size_t end = request.find("\r\n\r\n");
    std::string rest = end == std::string::npos ? "" : request.substr(end + 4);
    script_(fd, request.substr(0, end == std::string::npos ? request.size() : end + 4));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      received_ = rest;
    }
    while (WaitReadable(fd)) {
      ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      std::lock_guard<std::mutex> lock(mutex_);
      received_.append(buffer, n);
    }
    close(fd);
    done_.store(true);
  }

  Script script_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::mutex mutex_;
  std::string received_;  // guarded by mutex_
};

TEST(RawPeerTest, LargeResponseInManySmallSegments) {
  RawPeer peer([](int fd, const std::string& request) {
    std::string filler;
    for (int i = 0; filler.size() < 6000; ++i)
      absl::StrAppend(&filler, "X-Filler-", i, ": ", std::string(50, 'f'), "\r\n");
    std::string response =
        SwitchingProtocols(RequestKey(request), filler) + ServerFrame(0x82, "HELLO\n");
    for (size_t i = 0; i < response.size(); i += 13) {
      RawPeer::SendAll(fd, absl::string_view(response).substr(i, 13));
      usleep(100);  // separate segments, so the client sees many reads
    }
  });
  Connection c;
  ASSERT_NO_FATAL_FAILURE(c.Open(WsPipeline(peer.port())));
  ASSERT_TRUE(c.AwaitOpenOrClose());
  ASSERT_EQ(c.events.opened, 1) << *c.events.closed;
  ASSERT_TRUE(c.AwaitData(6));
  EXPECT_EQ(c.events.data, "HELLO\n");
}

TEST(RawPeerTest, FramesInTheSameSegmentAsThe101) {
  RawPeer peer([](int fd, const std::string& request) {
    RawPeer::SendAll(fd, SwitchingProtocols(RequestKey(request)) +
                             ServerFrame(0x82, std::string("\x20\x02\x00\x00", 4)) +
                             ServerFrame(0x82, "more"));
  });
  Connection c;
  ASSERT_NO_FATAL_FAILURE(c.Open(WsPipeline(peer.port())));
  ASSERT_TRUE(c.AwaitOpenOrClose());
  ASSERT_EQ(c.events.opened, 1) << *c.events.closed;
  ASSERT_TRUE(c.AwaitData(8));
  EXPECT_EQ(c.events.data, std::string("\x20\x02\x00\x00"
                                       "more",
                                       8));
}

// The client must close with 1002 and say why; the peer checks the CLOSE frame it got.
void ExpectProtocolErrorClose(absl::string_view bad_frame, absl::string_view reason) {
  RawPeer peer([bad = std::string(bad_frame)](int fd, const std::string& request) {
    RawPeer::SendAll(fd, SwitchingProtocols(RequestKey(request)) + ServerFrame(0x82, "ok") + bad);
  });
  Connection c;
  ASSERT_NO_FATAL_FAILURE(c.Open(WsPipeline(peer.port())));
  ASSERT_TRUE(c.AwaitClosed());
  EXPECT_EQ(c.events.opened, 1);
  EXPECT_EQ(c.events.data, "ok");
  EXPECT_EQ(c.events.closed->code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(c.events.closed->message(), reason)) << *c.events.closed;
  ASSERT_TRUE(RunUntil(c.loop(), [&] { return peer.done(); }));
  std::string received = peer.received();
  std::vector<ClientFrame> frames = TakeClientFrames(received);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode(), websocket::kClose);
  EXPECT_TRUE(frames[0].masked);
  EXPECT_EQ(frames[0].payload.substr(0, 2), std::string("\x03\xEA", 2))
      << "expected close code 1002";
}

TEST(RawPeerTest, MaskedServerFrameIsAProtocolError) {
  ExpectProtocolErrorClose(std::string("\x82\x84\x01\x02\x03\x04"
                                       "abcd",
                                       10),
                           "server frame is masked");
}

TEST(RawPeerTest, ReservedBitsAreAProtocolError) {
  ExpectProtocolErrorClose(ServerFrame(0xA2, "x"), "reserved bits set (RSV2)");
}

// --- mosquitto's websockets listener ---

TEST(MosquittoWsTest, MqttConnectAndPingThroughTheTransport) {
  testing::MosquittoBroker::Options options;
  options.websockets = true;
  auto broker = testing::MosquittoBroker::Start(options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  Connection c;
  ASSERT_NO_FATAL_FAILURE(c.Open(WsPipeline((*broker)->ws_port(), "path: \"/mqtt\"")));
  ASSERT_TRUE(c.AwaitOpenOrClose());
  ASSERT_EQ(c.events.opened, 1) << *c.events.closed;
  const std::string connect = MqttConnect("hublink-ws");
  // Written in two pieces, as a codec writing header and body would.
  ASSERT_TRUE(c.transport().Write(absl::string_view(connect).substr(0, 2)).ok());
  ASSERT_TRUE(c.transport().Write(absl::string_view(connect).substr(2)).ok());
  ASSERT_TRUE(c.AwaitData(4));
  ASSERT_EQ(c.events.data, std::string("\x20\x02\x00\x00", 4))
      << "CONNACK, session not present, accepted";
  c.events.data.clear();
  ASSERT_TRUE(c.transport().Write(std::string("\xC0\x00", 2)).ok());  // PINGREQ
  ASSERT_TRUE(c.AwaitData(2));
  EXPECT_EQ(c.events.data, std::string("\xD0\x00", 2));               // PINGRESP
  ASSERT_TRUE(c.transport().Write(std::string("\xE0\x00", 2)).ok());  // DISCONNECT
  c.transport().Close();
  ASSERT_TRUE(c.AwaitClosed());
  EXPECT_TRUE(c.events.closed->ok()) << *c.events.closed;
}

// --- Conformance ---

testing::ConformanceTarget WebSocketOverTcpTarget() {
  return {"WebSocketOverTcp",
          [](Registry::Builder& builder) {
            RegisterTcpTransport(builder);
            RegisterWebSocketTransport(builder);
          },
          []() -> absl::StatusOr<std::unique_ptr<testing::ConformancePeer>> {
            auto peer = NodeWsPeer::Start("conformance");
            if (!peer.ok()) return peer.status();
            return std::unique_ptr<testing::ConformancePeer>(
                new websocket::testing::NodeConformancePeer(std::move(peer).value(),
                                                            "transports { name: \"tcp\" }\n"));
          }};
}

INSTANTIATE_TEST_SUITE_P(WebSocket, TransportConformanceTest,
                         ::testing::Values(WebSocketOverTcpTarget()), testing::TargetName);

}  // namespace
}  // namespace hublink
