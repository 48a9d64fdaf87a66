// The WebSocket transport over an in-memory pipe: the test plays the server byte by byte, so every
// timing and every frame the client sends can be checked without sockets.
#include "transports/websocket/websocket_transport.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/connect_context.h"
#include "plugins/registry.h"
#include "plugins/signer.h"
#include "plugins/weak_guard.h"
#include "tests/memory_pipe.h"
#include "tests/test_util.h"
#include "transports/websocket/test_frames.h"
#include "transports/websocket/websocket.pb.h"

namespace hublink {
namespace {

using testing::MakeMemoryPipe;
using testing::RecordingListener;
using testing::RunUntil;
using transports::WebSocketConfig;
using websocket::testing::ClientFrame;
using websocket::testing::CloseFrame;
using websocket::testing::RequestKey;
using websocket::testing::ServerFrame;
using websocket::testing::SwitchingProtocols;
using websocket::testing::TakeClientFrames;

absl::StatusOr<std::unique_ptr<ConfiguredTransport>> Configure(const WebSocketConfig& config) {
  Registry::Builder builder;
  RegisterWebSocketTransport(builder);
  auto registry = std::move(builder).Build();
  if (!registry.ok()) return registry.status();
  auto factory = registry->FindTransport("websocket");
  if (!factory.ok()) return factory.status();
  EXPECT_EQ((*factory)->kind(), TransportFactory::Kind::kWrapping);
  return (*factory)->Configure(config);
}

class FakeSigner : public Signer {
 public:
  absl::StatusOr<Credentials> Sign(const SignRequest& request) override {
    Credentials credentials;
    credentials.http_headers = {{"Authorization", absl::StrCat("Sig host=", request.host)}};
    credentials.http_query = {{"token", "a/b"}};
    return credentials;
  }
};

// One client WebSocket over a memory pipe whose other end the test drives as the server.
class PipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = std::move(loop).value();
    context_ = std::make_unique<ConnectContext>(*loop_, "broker.test", 8080);
    context_->set_stage_observer([this](absl::string_view layer, absl::string_view detail) {
      stages_.push_back(absl::StrCat(layer, ": ", detail));
    });
  }

  // Opens the client and waits for its complete upgrade request.
  void Start(const WebSocketConfig& config, size_t max_chunk = 0) {
    auto configured = Configure(config);
    ASSERT_TRUE(configured.ok()) << configured.status();
    configured_ = std::move(configured).value();
    testing::MemoryPipe pipe = MakeMemoryPipe(*loop_, max_chunk);
    server_ = std::move(pipe.server);
    auto client = configured_->Create(*context_, std::move(pipe.client));
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(client).value();
    client_->Open(&client_events_);
    server_->Open(&server_events_);
    ASSERT_TRUE(
        RunUntil(*loop_, [&] { return absl::StrContains(server_events_.data, "\r\n\r\n"); }));
    request_ = server_events_.data;
    server_events_.data.clear();
    EXPECT_EQ(client_events_.opened, 0) << "OnOpen before the 101";
    EXPECT_EQ(client_->Write("early").code(), absl::StatusCode::kFailedPrecondition);
  }

  void Accept(absl::string_view extra_headers = "", absl::string_view frames = "") {
    ASSERT_TRUE(
        server_
            ->Write(SwitchingProtocols(RequestKey(request_), extra_headers) + std::string(frames))
            .ok());
    ASSERT_TRUE(
        RunUntil(*loop_, [&] { return client_events_.opened > 0 || client_events_.closed; }));
    ASSERT_EQ(client_events_.opened, 1) << client_events_.closed->ToString();
  }

  // Waits until the server has received `count` complete frames in total, and returns them.
  std::vector<ClientFrame> AwaitFrames(size_t count) {
    RunUntil(
        *loop_,
        [&] {
          for (ClientFrame& f : TakeClientFrames(server_events_.data))
            frames_.push_back(std::move(f));
          return frames_.size() >= count;
        },
        absl::Seconds(5));
    return frames_;
  }

  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<ConnectContext> context_;
  std::unique_ptr<ConfiguredTransport> configured_;
  std::unique_ptr<Transport> server_;
  std::unique_ptr<Transport> client_;
  RecordingListener client_events_;
  RecordingListener server_events_;
  std::string request_;
  std::vector<ClientFrame> frames_;
  std::vector<std::string> stages_;
};

TEST_F(PipeTest, UpgradeRequestAndOpen) {
  WebSocketConfig config;
  config.set_path("/mqtt");
  config.set_origin("https://o.test");
  auto* header = config.add_headers();
  header->set_name("X-Custom");
  header->set_value("1");
  ASSERT_NO_FATAL_FAILURE(Start(config));
  EXPECT_TRUE(absl::StartsWith(request_, "GET /mqtt HTTP/1.1\r\nHost: broker.test:8080\r\n"))
      << request_;
  for (absl::string_view line :
       {"Upgrade: websocket\r\n", "Connection: Upgrade\r\n", "Sec-WebSocket-Version: 13\r\n",
        "Sec-WebSocket-Protocol: mqtt\r\n", "Origin: https://o.test\r\n", "X-Custom: 1\r\n"}) {
    EXPECT_TRUE(absl::StrContains(request_, line)) << line;
  }
  EXPECT_EQ(RequestKey(request_).size(), 24u);
  ASSERT_NO_FATAL_FAILURE(Accept("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
  ASSERT_TRUE(context_->server_clock_offset().has_value());
  absl::Duration expected = absl::FromUnixSeconds(784111777) - absl::Now();
  EXPECT_LT(absl::AbsDuration(*context_->server_clock_offset() - expected), absl::Seconds(2));
  ASSERT_EQ(stages_.size(), 1u);
  EXPECT_EQ(stages_[0], "websocket: upgrade 101 GET /mqtt subprotocol mqtt");
}

TEST_F(PipeTest, EveryConnectionHasAFreshKey) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  std::string first = RequestKey(request_);
  client_.reset();
  server_.reset();
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  EXPECT_NE(RequestKey(request_), first);
}

TEST_F(PipeTest, FramesAfterThe101AreHandedUpAfterOpen) {
  // One byte per delivery: the 101, and frames in its last read, split everywhere.
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig(), /*max_chunk=*/1));
  ASSERT_NO_FATAL_FAILURE(Accept("", ServerFrame(0x82, "HELLO\n") + ServerFrame(0x02, "par") +
                                         ServerFrame(0x89, "ping-data") +
                                         ServerFrame(0x80, "tial")));
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.data.size() >= 13; }));
  EXPECT_EQ(client_events_.data, "HELLO\npartial") << "control payloads must never leak into data";
  std::vector<ClientFrame> frames = AwaitFrames(1);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode(), websocket::kPong);
  EXPECT_EQ(frames[0].payload, "ping-data");
  EXPECT_TRUE(frames[0].masked);
}

TEST_F(PipeTest, PingIsAnsweredAtOnceWithoutAnyWrite) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  ASSERT_NO_FATAL_FAILURE(Accept());
  for (int i = 0; i < 3; ++i) {
    std::string payload = absl::StrCat("p", i);
    ASSERT_TRUE(server_->Write(ServerFrame(0x89, payload)).ok());
    std::vector<ClientFrame> frames = AwaitFrames(i + 1);
    ASSERT_EQ(frames.size(), i + 1u);
    EXPECT_EQ(frames[i].opcode(), websocket::kPong);
    EXPECT_EQ(frames[i].payload, payload);
  }
  EXPECT_TRUE(client_events_.data.empty());
}

TEST_F(PipeTest, WritesOfOneTurnAreCoalescedIntoOneFrame) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  ASSERT_NO_FATAL_FAILURE(Accept());
  ASSERT_TRUE(client_->Write("\x10\x0c").ok());
  ASSERT_TRUE(client_->Write("abc").ok());
  ASSERT_TRUE(client_->Write("def").ok());
  EXPECT_EQ(client_->BufferedBytes(), 8u) << "coalesced bytes count as buffered";
  std::vector<ClientFrame> frames = AwaitFrames(1);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].first_byte, 0x82);
  EXPECT_TRUE(frames[0].masked);
  EXPECT_EQ(frames[0].payload,
            "\x10\x0c"
            "abcdef");
  EXPECT_EQ(client_->BufferedBytes(), 0u);
}

TEST_F(PipeTest, WithoutCoalescingEveryWriteIsAFrameWithItsOwnKey) {
  WebSocketConfig config;
  config.set_coalesce_writes(false);
  ASSERT_NO_FATAL_FAILURE(Start(config));
  ASSERT_NO_FATAL_FAILURE(Accept());
  std::string big(70000, 'x');
  ASSERT_TRUE(client_->Write("one").ok());
  ASSERT_TRUE(client_->Write("two").ok());
  ASSERT_TRUE(client_->Write(big).ok());
  std::vector<ClientFrame> frames = AwaitFrames(3);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].payload, "one");
  EXPECT_EQ(frames[1].payload, "two");
  EXPECT_TRUE(frames[2].payload == big);
  EXPECT_NE(std::string(reinterpret_cast<char*>(frames[0].key), 4),
            std::string(reinterpret_cast<char*>(frames[1].key), 4));
}

TEST_F(PipeTest, LargeCoalescedWritesKeepTheirOrder) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  ASSERT_NO_FATAL_FAILURE(Accept());
  std::string expected;
  for (size_t size : {10u, 50000u, 30000u, 100000u, 5u}) {
    std::string chunk(size, static_cast<char>('a' + expected.size() % 26));
    ASSERT_TRUE(client_->Write(chunk).ok());
    expected += chunk;
  }
  std::string received;
  RunUntil(*loop_, [&] {
    for (ClientFrame& f : TakeClientFrames(server_events_.data)) received += f.payload;
    return received.size() >= expected.size();
  });
  EXPECT_TRUE(received == expected);
}

TEST_F(PipeTest, ServerCloseIsEchoedAndReportedWithCodeAndReason) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  ASSERT_NO_FATAL_FAILURE(Accept());
  ASSERT_TRUE(server_
                  ->Write(ServerFrame(0x82, "last") + CloseFrame(4001, "maintenance window") +
                          ServerFrame(0x82, "ignored"))
                  .ok());
  std::vector<ClientFrame> frames = AwaitFrames(1);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode(), websocket::kClose);
  EXPECT_EQ(frames[0].payload, std::string("\x0F\xA1", 2));
  server_->Close();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  EXPECT_EQ(client_events_.data, "last");
  EXPECT_EQ(client_events_.closed->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client_events_.closed->message(),
            "websocket: server closed the connection: 4001 \"maintenance window\"");
  EXPECT_EQ(client_->Write("x").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(PipeTest, ServerCloseReasonIsSanitized) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  ASSERT_NO_FATAL_FAILURE(Accept());
  ASSERT_TRUE(server_->Write(CloseFrame(1001, "going\r\nFAKE LOG LINE \xC3\xA9")).ok());
  AwaitFrames(1);
  server_->Close();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  EXPECT_EQ(client_events_.closed->message(),
            "websocket: server closed the connection: 1001 (going away) \"going??FAKE LOG LINE "
            "\xC3\xA9\"");
}

TEST_F(PipeTest, NormalServerCloseIsACleanEnd) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  ASSERT_NO_FATAL_FAILURE(Accept());
  ASSERT_TRUE(server_->Write(CloseFrame(1000, "bye")).ok());
  AwaitFrames(1);
  server_->Close();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  EXPECT_TRUE(client_events_.closed->ok()) << *client_events_.closed;
}

TEST_F(PipeTest, CloseSendsCloseFrameAndWaitsForTheEcho) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  ASSERT_NO_FATAL_FAILURE(Accept());
  ASSERT_TRUE(client_->Write("pending").ok());
  client_->Close();
  EXPECT_EQ(client_->Write("late").code(), absl::StatusCode::kFailedPrecondition);
  std::vector<ClientFrame> frames = AwaitFrames(2);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].payload, "pending") << "data written before Close() goes first";
  EXPECT_EQ(frames[1].opcode(), websocket::kClose);
  EXPECT_EQ(frames[1].payload, std::string("\x03\xE8", 2));
  // The client still reads until the echo.
  ASSERT_TRUE(server_->Write(ServerFrame(0x82, "tail") + CloseFrame(1000, "")).ok());
  ASSERT_TRUE(RunUntil(*loop_, [&] { return server_events_.closed.has_value(); }))
      << "the client must close below once the echo arrived";
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  EXPECT_TRUE(client_events_.closed->ok()) << *client_events_.closed;
  EXPECT_EQ(client_events_.data, "tail");
  EXPECT_EQ(client_events_.closed_count, 1);
}

TEST_F(PipeTest, CloseWithoutEchoGivesUpAfterCloseTimeout) {
  WebSocketConfig config;
  config.mutable_close_timeout()->set_nanos(100'000'000);
  ASSERT_NO_FATAL_FAILURE(Start(config));
  ASSERT_NO_FATAL_FAILURE(Accept());
  absl::Time start = absl::Now();
  client_->Close();
  ASSERT_TRUE(RunUntil(
      *loop_, [&] { return server_events_.closed.has_value(); }, absl::Seconds(5)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(90));
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  EXPECT_TRUE(client_events_.closed->ok()) << *client_events_.closed;
}

TEST_F(PipeTest, ClientPingsAndDetectsADeadLink) {
  WebSocketConfig config;
  config.mutable_ping_interval()->set_nanos(50'000'000);
  config.mutable_pong_timeout()->set_nanos(100'000'000);
  ASSERT_NO_FATAL_FAILURE(Start(config));
  ASSERT_NO_FATAL_FAILURE(Accept());
  // Answer three pings: the link stays up.
  for (size_t i = 0; i < 3; ++i) {
    std::vector<ClientFrame> frames = AwaitFrames(i + 1);
    ASSERT_EQ(frames.size(), i + 1);
    ASSERT_EQ(frames[i].opcode(), websocket::kPing);
    ASSERT_TRUE(server_->Write(ServerFrame(0x8A, frames[i].payload)).ok());
  }
  EXPECT_FALSE(client_events_.closed.has_value());
  // Then go silent: the next unanswered ping ends the connection.
  absl::Time start = absl::Now();
  ASSERT_TRUE(RunUntil(
      *loop_, [&] { return client_events_.closed.has_value(); }, absl::Seconds(5)));
  EXPECT_EQ(client_events_.closed->code(), absl::StatusCode::kDeadlineExceeded)
      << *client_events_.closed;
  EXPECT_TRUE(absl::StrContains(client_events_.closed->message(), "no PONG"))
      << *client_events_.closed;
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_TRUE(client_events_.data.empty());
}

TEST_F(PipeTest, ProtocolViolationClosesWith1002) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  ASSERT_NO_FATAL_FAILURE(Accept());
  ASSERT_TRUE(server_->Write(ServerFrame(0x82, "ok") + ServerFrame(0xC2, "compressed?")).ok());
  std::vector<ClientFrame> frames = AwaitFrames(1);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode(), websocket::kClose);
  EXPECT_EQ(frames[0].payload.substr(0, 2), std::string("\x03\xEA", 2));
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  EXPECT_EQ(client_events_.data, "ok");
  EXPECT_TRUE(absl::StrContains(client_events_.closed->message(), "reserved bits set (RSV1)"))
      << *client_events_.closed;
}

TEST_F(PipeTest, TextFrameClosesWith1003) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  ASSERT_NO_FATAL_FAILURE(Accept());
  ASSERT_TRUE(server_->Write(ServerFrame(0x81, "{}")).ok());
  std::vector<ClientFrame> frames = AwaitFrames(1);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload.substr(0, 2), std::string("\x03\xEB", 2));
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  EXPECT_TRUE(client_events_.data.empty());
  EXPECT_TRUE(absl::StrContains(client_events_.closed->message(), "text frame"))
      << *client_events_.closed;
  EXPECT_EQ(client_events_.closed->code(), absl::StatusCode::kDataLoss) << *client_events_.closed;
}

TEST_F(PipeTest, ProtocolViolationIsDataLoss) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  ASSERT_NO_FATAL_FAILURE(Accept());
  ASSERT_TRUE(server_->Write(ServerFrame(0x83, "x")).ok());  // unknown opcode
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  EXPECT_EQ(client_events_.closed->code(), absl::StatusCode::kDataLoss) << *client_events_.closed;
}

TEST_F(PipeTest, ServerClosingForAProtocolErrorIsDataLoss) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  ASSERT_NO_FATAL_FAILURE(Accept());
  ASSERT_TRUE(server_->Write(CloseFrame(1002, "bad frame")).ok());
  AwaitFrames(1);
  server_->Close();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  EXPECT_EQ(client_events_.closed->code(), absl::StatusCode::kDataLoss) << *client_events_.closed;
}

TEST_F(PipeTest, UpgradeTimeout) {
  WebSocketConfig config;
  config.mutable_upgrade_timeout()->set_nanos(100'000'000);
  ASSERT_NO_FATAL_FAILURE(Start(config));
  ASSERT_TRUE(server_->Write("HTTP/1.1 101 Switching").ok());
  ASSERT_TRUE(RunUntil(
      *loop_, [&] { return client_events_.closed.has_value(); }, absl::Seconds(5)));
  EXPECT_EQ(client_events_.closed->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(client_events_.closed->message(),
            "websocket: no upgrade response from broker.test:8080 in time (22 bytes received)");
  EXPECT_EQ(client_events_.opened, 0);
}

TEST_F(PipeTest, RefusedUpgradeCarriesStatusLine) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig(), /*max_chunk=*/3));
  ASSERT_TRUE(server_->Write("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n").ok());
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  EXPECT_EQ(client_events_.closed->code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(client_events_.closed->message(),
            "websocket: upgrade refused: HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(client_events_.opened, 0);
  EXPECT_EQ(client_events_.closed_count, 1);
}

TEST_F(PipeTest, PeerVanishingDuringUpgradeIsReported) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  server_->Close();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  EXPECT_EQ(client_events_.closed->code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(client_events_.closed->message(), "during the upgrade"))
      << *client_events_.closed;
}

TEST_F(PipeTest, SignedUpgradeAsksTheSigner) {
  FakeSigner signer;
  context_->set_signer(&signer);
  WebSocketConfig config;
  config.set_signed_upgrade(true);
  ASSERT_NO_FATAL_FAILURE(Start(config));
  EXPECT_TRUE(absl::StartsWith(request_, "GET /?token=a%2Fb HTTP/1.1\r\n")) << request_;
  EXPECT_TRUE(absl::StrContains(request_, "\r\nAuthorization: Sig host=broker.test\r\n"))
      << request_;
}

TEST_F(PipeTest, SignedUpgradeWithoutSignerFails) {
  WebSocketConfig config;
  config.set_signed_upgrade(true);
  auto configured = Configure(config);
  ASSERT_TRUE(configured.ok());
  testing::MemoryPipe pipe = MakeMemoryPipe(*loop_);
  auto client = (*configured)->Create(*context_, std::move(pipe.client));
  ASSERT_TRUE(client.ok());
  (*client)->Open(&client_events_);
  pipe.server->Open(&server_events_);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  // A contradictory configuration, not API misuse (docs/errors.md).
  EXPECT_EQ(client_events_.closed->code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_events_.closed->message(),
            "websocket: signed_upgrade is set but the pipeline has no signer");
}

TEST_F(PipeTest, CloseBeforeOpenReportsOnceAndLater) {
  ASSERT_NO_FATAL_FAILURE(Start(WebSocketConfig()));
  client_->Close();
  EXPECT_FALSE(client_events_.closed.has_value()) << "callbacks never run inside Close()";
  ASSERT_TRUE(RunUntil(*loop_, [&] { return client_events_.closed.has_value(); }));
  EXPECT_TRUE(client_events_.closed->ok());
  loop_->RunOnce(absl::Milliseconds(50));
  EXPECT_EQ(client_events_.closed_count, 1);
  EXPECT_EQ(client_events_.opened, 0);
}

// A layer below that the test controls: it refuses writes while `full`, reports `buffered` as
// queued, and lets the test raise OnWritable(), so backpressure can be checked exactly.
class ThrottledLower : public Transport {
 public:
  explicit ThrottledLower(EventLoop& loop) : loop_(loop) {}
  void Open(TransportListener* listener) override {
    listener_ = listener;
    loop_.Post(guard_.Wrap([this] { listener_->OnOpen(); }));
  }
  absl::Status Write(absl::string_view bytes) override {
    if (full) return absl::ResourceExhaustedError("lower: write queue full");
    written.append(bytes.data(), bytes.size());
    return absl::OkStatus();
  }
  void Close() override { ++closes; }
  size_t BufferedBytes() const override { return buffered; }
  bool AboveSoftLimit() const override { return above_soft_limit; }
  TransportListener* listener() { return listener_; }

  std::string written;
  bool full = false;
  bool above_soft_limit = false;
  size_t buffered = 0;
  int closes = 0;

 private:
  EventLoop& loop_;
  TransportListener* listener_ = nullptr;
  WeakGuard guard_;
};

class BackpressureTest : public ::testing::Test {
 protected:
  void Open(const WebSocketConfig& config) {
    auto loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = std::move(loop).value();
    context_ = std::make_unique<ConnectContext>(*loop_, "h", 80);
    auto configured = Configure(config);
    ASSERT_TRUE(configured.ok()) << configured.status();
    configured_ = std::move(configured).value();
    auto lower = std::make_unique<ThrottledLower>(*loop_);
    lower_ = lower.get();
    auto client = configured_->Create(*context_, std::move(lower));
    ASSERT_TRUE(client.ok());
    client_ = std::move(client).value();
    client_->Open(&events_);
    ASSERT_TRUE(RunUntil(*loop_, [&] { return absl::StrContains(lower_->written, "\r\n\r\n"); }));
    lower_->listener()->OnData(SwitchingProtocols(RequestKey(lower_->written)));
    lower_->written.clear();
    ASSERT_EQ(events_.opened, 1);
  }

  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<ConnectContext> context_;
  std::unique_ptr<ConfiguredTransport> configured_;
  ThrottledLower* lower_ = nullptr;
  std::unique_ptr<Transport> client_;
  RecordingListener events_;
};

TEST_F(BackpressureTest, CoalescedBytesWaitForOnWritableAndNothingIsLost) {
  ASSERT_NO_FATAL_FAILURE(Open(WebSocketConfig()));
  lower_->buffered = 1000;
  lower_->full = true;
  ASSERT_TRUE(client_->Write("abc").ok());
  EXPECT_EQ(client_->BufferedBytes(), 1003u) << "pending bytes plus what the layer below holds";
  loop_->RunOnce(absl::Milliseconds(10));  // the posted flush meets a full layer below
  EXPECT_TRUE(lower_->written.empty());
  ASSERT_TRUE(client_->Write("def").ok());
  // A write that would push the pending bytes past the coalescing limit needs the layer below now.
  absl::Status refused = client_->Write(std::string(70000, 'z'));
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_EQ(client_->BufferedBytes(), 1006u) << "a refused write queues nothing";
  lower_->full = false;
  lower_->buffered = 0;
  lower_->listener()->OnWritable();
  EXPECT_EQ(events_.writable, 1) << "OnWritable is passed up once the pending bytes went down";
  std::vector<ClientFrame> frames = TakeClientFrames(lower_->written);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload, "abcdef")
      << "the frame refused earlier was unmasked and kept intact";
  EXPECT_EQ(client_->BufferedBytes(), 0u);
}

// The layer owes OnWritable() while the layer below does, or while it holds a frame the layer
// below refused; mqtt::Session holds QoS 0 data until then (issue 15, goal 5).
TEST_F(BackpressureTest, AboveSoftLimitWhileTheLayerBelowIsOrAWriteWasRefused) {
  ASSERT_NO_FATAL_FAILURE(Open(WebSocketConfig()));
  EXPECT_FALSE(client_->AboveSoftLimit());
  lower_->above_soft_limit = true;
  EXPECT_TRUE(client_->AboveSoftLimit());
  lower_->above_soft_limit = false;
  EXPECT_FALSE(client_->AboveSoftLimit());
  lower_->full = true;
  ASSERT_TRUE(client_->Write("abc").ok());
  loop_->RunOnce(absl::Milliseconds(10));  // the posted flush meets a full layer below
  ASSERT_TRUE(lower_->written.empty());
  EXPECT_TRUE(client_->AboveSoftLimit());
  lower_->full = false;
  lower_->listener()->OnWritable();
  EXPECT_EQ(events_.writable, 1);
  EXPECT_FALSE(client_->AboveSoftLimit());
}

// A PING that arrives while the layer below refuses writes is still answered: the PONG waits for
// OnWritable() and goes out ahead of the data that was waiting.
TEST_F(BackpressureTest, PongIsNotLostWhenTheLayerBelowIsFull) {
  ASSERT_NO_FATAL_FAILURE(Open(WebSocketConfig()));
  lower_->full = true;
  ASSERT_TRUE(client_->Write("abc").ok());
  loop_->RunOnce(absl::Milliseconds(10));  // the posted flush meets a full layer below
  lower_->listener()->OnData(ServerFrame(0x89, "ping-1"));
  EXPECT_TRUE(lower_->written.empty());
  lower_->full = false;
  lower_->listener()->OnWritable();
  std::vector<ClientFrame> frames = TakeClientFrames(lower_->written);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].opcode(), websocket::kPong);
  EXPECT_EQ(frames[0].payload, "ping-1");
  EXPECT_EQ(frames[1].opcode(), websocket::kBinary);
  EXPECT_EQ(frames[1].payload, "abc");
  EXPECT_EQ(events_.writable, 1);
}

// Close() while the layer below is full: the data written before it and then the CLOSE frame go
// out once it drains; neither is dropped.
TEST_F(BackpressureTest, CloseFrameIsNotLostWhenTheLayerBelowIsFull) {
  ASSERT_NO_FATAL_FAILURE(Open(WebSocketConfig()));
  lower_->full = true;
  ASSERT_TRUE(client_->Write("last words").ok());
  client_->Close();
  EXPECT_TRUE(lower_->written.empty());
  EXPECT_EQ(lower_->closes, 0) << "the layer below is closed only after the CLOSE frame went";
  lower_->full = false;
  lower_->listener()->OnWritable();
  std::vector<ClientFrame> frames = TakeClientFrames(lower_->written);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].payload, "last words");
  EXPECT_EQ(frames[1].opcode(), websocket::kClose);
  EXPECT_EQ(frames[1].payload, std::string("\x03\xE8", 2));
  EXPECT_EQ(events_.writable, 0) << "no OnWritable once closing";
}

// The echo of a server's CLOSE waits for room below too, and only then is the layer below closed.
TEST_F(BackpressureTest, CloseEchoIsNotLostWhenTheLayerBelowIsFull) {
  ASSERT_NO_FATAL_FAILURE(Open(WebSocketConfig()));
  lower_->full = true;
  lower_->listener()->OnData(CloseFrame(4001, "bye"));
  EXPECT_EQ(lower_->closes, 0);
  lower_->full = false;
  lower_->listener()->OnWritable();
  std::vector<ClientFrame> frames = TakeClientFrames(lower_->written);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode(), websocket::kClose);
  EXPECT_EQ(frames[0].payload, std::string("\x0F\xA1", 2));
  EXPECT_EQ(lower_->closes, 1);
}

// When the layer below never makes room, close_timeout still ends the connection.
TEST_F(BackpressureTest, CloseIsBoundedWhenTheLayerBelowStaysFull) {
  WebSocketConfig config;
  config.mutable_close_timeout()->set_nanos(100'000'000);
  ASSERT_NO_FATAL_FAILURE(Open(config));
  lower_->full = true;
  client_->Close();
  ASSERT_TRUE(RunUntil(
      *loop_, [&] { return events_.closed.has_value(); }, absl::Seconds(5)));
  EXPECT_EQ(events_.closed->code(), absl::StatusCode::kDeadlineExceeded) << *events_.closed;
  EXPECT_EQ(events_.closed_count, 1);
}

TEST_F(BackpressureTest, UncoalescedWriteIsRefusedWhole) {
  WebSocketConfig config;
  config.set_coalesce_writes(false);
  ASSERT_NO_FATAL_FAILURE(Open(config));
  lower_->full = true;
  EXPECT_EQ(client_->Write("abc").code(), absl::StatusCode::kResourceExhausted);
  lower_->full = false;
  ASSERT_TRUE(client_->Write("def").ok());
  std::vector<ClientFrame> frames = TakeClientFrames(lower_->written);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload, "def");
}

TEST(WebSocketConfigTest, InvalidConfigsNameTheField) {
  struct Case {
    std::function<void(WebSocketConfig&)> edit;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {[](WebSocketConfig& c) { c.set_path("mqtt"); }, "path: must start with '/'"},
      {[](WebSocketConfig& c) { c.set_path("/a b"); }, "path: must not contain spaces"},
      {[](WebSocketConfig& c) {
         auto* h = c.add_headers();
         h->set_name("Sec-WebSocket-Key");
         h->set_value("x");
       },
       "headers[0]: Sec-WebSocket-Key is computed by the transport"},
      {[](WebSocketConfig& c) {
         auto* h = c.add_headers();
         h->set_name("X-Ok");
         h->set_value("a\r\nInjected: 1");
       },
       "headers[0]: value of header X-Ok contains CR, LF or NUL"},
      {[](WebSocketConfig& c) {
         c.set_no_subprotocol(true);
         c.add_subprotocols("mqtt");
       },
       "no_subprotocol is set but subprotocols lists some"},
      {[](WebSocketConfig& c) { c.add_subprotocols("mq tt"); }, "subprotocols[0]"},
      {[](WebSocketConfig& c) { c.mutable_ping_interval()->set_seconds(-1); },
       "ping_interval: must not be negative"},
      {[](WebSocketConfig& c) { c.mutable_pong_timeout()->set_seconds(1); },
       "pong_timeout is set but ping_interval is not"},
      {[](WebSocketConfig& c) { c.set_max_response_bytes(10); }, "max_response_bytes"},
  };
  for (const Case& c : cases) {
    WebSocketConfig config;
    c.edit(config);
    auto configured = Configure(config);
    ASSERT_FALSE(configured.ok()) << c.message_part;
    EXPECT_EQ(configured.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(configured.status().message(), c.message_part))
        << configured.status();
  }
  auto ok = Configure(WebSocketConfig());
  ASSERT_TRUE(ok.ok()) << ok.status();
  auto loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok());
  ConnectContext context(**loop, "h", 1);
  auto unwrapped = (*ok)->Create(context, nullptr);
  EXPECT_EQ(unwrapped.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hublink
