// Bytes written through websocket (an MQTT CONNECT carries the password, a signed upgrade carries
// credentials) must not survive in freed heap memory: not in the coalescing buffer, not in a
// frame's masked copy, not in the upgrade request.
#include <openssl/mem.h>

#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/connect_context.h"
#include "plugins/registry.h"
#include "plugins/signer.h"
#include "plugins/weak_guard.h"
#include "tests/test_util.h"
#include "transports/tcp/freed_memory_watch.h"
#include "transports/websocket/test_frames.h"
#include "transports/websocket/websocket.pb.h"
#include "transports/websocket/websocket_transport.h"

namespace hublink {
namespace {

using testing::FreedMemoryWatchAvailable;
using testing::HoldsSecret;
using testing::RecordingListener;
using testing::RunUntil;
using testing::StartFreedMemoryWatch;
using testing::StopFreedMemoryWatch;
using transports::WebSocketConfig;
using websocket::testing::RequestKey;
using websocket::testing::SwitchingProtocols;

// Not 4-periodic, so its XOR signature cannot match zeroed or patterned memory.
constexpr char kSecret[] = "pw:Zq81-hublink-secret-9xK2mWv7";
absl::string_view Secret() { return absl::string_view(kSecret, sizeof(kSecret) - 1); }

// A layer below that keeps what it is given in storage reserved up front (so it never reallocates)
// and wipes it when done: the only copies left to find are the transport's own.
class SinkLower : public Transport {
 public:
  explicit SinkLower(EventLoop& loop) : loop_(loop) { written_.reserve(1 << 20); }
  ~SinkLower() override { Wipe(); }
  void Open(TransportListener* listener) override {
    listener_ = listener;
    loop_.Post(guard_.Wrap([this] { listener_->OnOpen(); }));
  }
  absl::Status Write(absl::string_view bytes) override {
    if (written_.size() + bytes.size() > written_.capacity()) {
      return absl::ResourceExhaustedError("sink: full");
    }
    if (HoldsSecret(bytes.data(), bytes.size(), Secret())) ++writes_with_secret;
    written_.append(bytes.data(), bytes.size());
    return absl::OkStatus();
  }
  void Close() override {}
  size_t BufferedBytes() const override { return 0; }

  const std::string& written() const { return written_; }
  void Wipe() {
    if (!written_.empty()) OPENSSL_cleanse(&written_[0], written_.size());
    written_.resize(0);
  }
  TransportListener* listener() { return listener_; }
  int writes_with_secret = 0;

 private:
  EventLoop& loop_;
  TransportListener* listener_ = nullptr;
  std::string written_;
  WeakGuard guard_;
};

class SecretSigner : public Signer {
 public:
  absl::StatusOr<Credentials> Sign(const SignRequest&) override {
    Credentials credentials;
    // Built in place: an initializer list would leave an unwiped copy of its own.
    credentials.http_headers.emplace_back("Authorization", absl::StrCat("Bearer ", Secret()));
    return credentials;
  }
};

class WebSocketWipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FreedMemoryWatchAvailable()) GTEST_SKIP() << "the sanitizer owns operator delete";
    loop_ = std::move(EventLoop::Create()).value();
    context_ = std::make_unique<ConnectContext>(*loop_, "h", 80);
  }

  // Opens websocket over a SinkLower and answers the upgrade.
  void Open(const WebSocketConfig& config) {
    Registry::Builder builder;
    RegisterWebSocketTransport(builder);
    registry_ = std::make_unique<Registry>(std::move(builder).Build().value());
    auto configured = (*registry_->FindTransport("websocket"))->Configure(config);
    ASSERT_TRUE(configured.ok()) << configured.status();
    configured_ = std::move(configured).value();
    auto lower = std::make_unique<SinkLower>(*loop_);
    lower_ = lower.get();
    client_ = configured_->Create(*context_, std::move(lower)).value();
    client_->Open(&events_);
    ASSERT_TRUE(RunUntil(*loop_, [&] { return absl::StrContains(lower_->written(), "\r\n\r\n"); }));
    lower_->listener()->OnData(SwitchingProtocols(RequestKey(lower_->written())));
    lower_->Wipe();
    ASSERT_EQ(events_.opened, 1);
  }

  // Writes an MQTT-CONNECT-like packet holding the secret, from the stack.
  void WriteConnect() {
    char connect[64] = {0x10, 0x2a, 0, 4, 'M', 'Q', 'T', 'T', 4, static_cast<char>(0xC2)};
    std::memcpy(connect + 10, kSecret, Secret().size());
    ASSERT_TRUE(client_->Write(absl::string_view(connect, 10 + Secret().size())).ok());
    OPENSSL_cleanse(connect, sizeof(connect));
  }

  void TearDown() override {
    client_.reset();
    configured_.reset();
  }

  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<ConnectContext> context_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<ConfiguredTransport> configured_;
  SinkLower* lower_ = nullptr;
  std::unique_ptr<Transport> client_;
  RecordingListener events_;
};

TEST_F(WebSocketWipeTest, CoalescingBufferIsWipedOnceFramed) {
  ASSERT_NO_FATAL_FAILURE(Open(WebSocketConfig()));
  StartFreedMemoryWatch(Secret());
  ASSERT_NO_FATAL_FAILURE(WriteConnect());
  ASSERT_TRUE(RunUntil(*loop_, [&] { return lower_->writes_with_secret > 0; }));
  client_.reset();  // frees the coalescing buffer
  EXPECT_EQ(StopFreedMemoryWatch(), 0) << "freed memory still held the (masked) password";
}

TEST_F(WebSocketWipeTest, CoalescingBufferGrowthLeavesNoCopy) {
  ASSERT_NO_FATAL_FAILURE(Open(WebSocketConfig()));
  StartFreedMemoryWatch(Secret());
  ASSERT_NO_FATAL_FAILURE(WriteConnect());
  // More bytes in the same turn make the buffer grow: the old block held the CONNECT.
  ASSERT_TRUE(client_->Write(std::string(60000, 'p')).ok());
  ASSERT_TRUE(RunUntil(*loop_, [&] { return lower_->writes_with_secret > 0; }));
  client_.reset();
  EXPECT_EQ(StopFreedMemoryWatch(), 0) << "freed memory still held the (masked) password";
}

TEST_F(WebSocketWipeTest, MaskedFrameCopyIsWiped) {
  WebSocketConfig config;
  config.set_coalesce_writes(false);
  ASSERT_NO_FATAL_FAILURE(Open(config));
  StartFreedMemoryWatch(Secret());
  ASSERT_NO_FATAL_FAILURE(WriteConnect());
  EXPECT_EQ(lower_->writes_with_secret, 1);
  client_.reset();
  EXPECT_EQ(StopFreedMemoryWatch(), 0) << "freed memory still held the (masked) password";
}

TEST_F(WebSocketWipeTest, SignedUpgradeRequestIsWiped) {
  SecretSigner signer;
  context_->set_signer(&signer);
  WebSocketConfig config;
  config.set_signed_upgrade(true);
  StartFreedMemoryWatch(Secret());
  ASSERT_NO_FATAL_FAILURE(Open(config));
  EXPECT_EQ(lower_->writes_with_secret, 1);
  client_.reset();
  EXPECT_EQ(StopFreedMemoryWatch(), 0) << "freed memory still held the upgrade's credentials";
}

}  // namespace
}  // namespace hublink
