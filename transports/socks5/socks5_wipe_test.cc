// The SOCKS5 password must not survive in freed heap memory: not in the configured transport, not
// in the handshake, not in the RFC 1929 request handed to the layer below.
#include <openssl/mem.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/connect_context.h"
#include "plugins/registry.h"
#include "plugins/weak_guard.h"
#include "tests/test_util.h"
#include "transports/socks5/socks5.pb.h"
#include "transports/socks5/socks5_transport.h"
#include "transports/tcp/freed_memory_watch.h"

namespace hublink {
namespace {

using testing::FreedMemoryWatchAvailable;
using testing::HoldsSecret;
using testing::RecordingListener;
using testing::RunUntil;

// Not 4-periodic, so its XOR signature cannot match zeroed or patterned memory.
constexpr char kPassword[] = "Zq81-proxy-secret-9xK2mWv7";

// A layer below that keeps what it is given in storage reserved up front and wipes it when done:
// the only copies left to find are the transport's own.
class SinkLower : public Transport {
 public:
  explicit SinkLower(EventLoop& loop) : loop_(loop) { written_.reserve(1 << 16); }
  ~SinkLower() override {
    if (!written_.empty()) OPENSSL_cleanse(&written_[0], written_.size());
  }
  void Open(TransportListener* listener) override {
    listener_ = listener;
    loop_.Post(guard_.Wrap([this] { listener_->OnOpen(); }));
  }
  absl::Status Write(absl::string_view bytes) override {
    if (written_.size() + bytes.size() > written_.capacity()) {
      return absl::ResourceExhaustedError("sink: full");
    }
    written_.append(bytes.data(), bytes.size());
    return absl::OkStatus();
  }
  void Close() override {}
  size_t BufferedBytes() const override { return 0; }
  const std::string& written() const { return written_; }
  TransportListener* listener() { return listener_; }

 private:
  EventLoop& loop_;
  TransportListener* listener_ = nullptr;
  std::string written_;
  WeakGuard guard_;
};

TEST(Socks5WipeTest, ThePasswordDoesNotSurviveInFreedMemory) {
  if (!FreedMemoryWatchAvailable()) GTEST_SKIP() << "the sanitizer owns the allocator";
  Registry::Builder builder;
  RegisterSocks5Transport(builder);
  absl::StatusOr<Registry> registry = std::move(builder).Build();
  ASSERT_TRUE(registry.ok());
  const TransportFactory* factory = *registry->FindTransport("socks5");
  auto loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok());
  ConnectContext context(**loop, "broker.example", 8883);
  std::unique_ptr<ConfiguredTransport> configured;
  {
    // The config message is the caller's (the pipeline's) to wipe: configured outside the watch.
    transports::Socks5Config config;
    config.set_username("alice");
    config.set_password(kPassword);
    auto made = factory->Configure(config);
    ASSERT_TRUE(made.ok()) << made.status();
    configured = std::move(made).value();
    OPENSSL_cleanse(&(*config.mutable_password())[0], config.password().size());
  }
  testing::StartFreedMemoryWatch(kPassword);
  {
    auto lower = std::make_unique<SinkLower>(**loop);
    SinkLower* sink = lower.get();
    auto transport = configured->Create(context, std::move(lower));
    ASSERT_TRUE(transport.ok());
    RecordingListener listener;
    (*transport)->Open(&listener);
    ASSERT_TRUE(RunUntil(**loop, [&] { return sink->written().size() == 4; }));  // greeting
    sink->listener()->OnData(absl::string_view("\x05\x02", 2));
    EXPECT_TRUE(HoldsSecret(sink->written().data(), sink->written().size(), kPassword));
    sink->listener()->OnData(absl::string_view("\x01\x00", 2));
    sink->listener()->OnData(absl::string_view("\x05\x00\x00\x01\x7f\x00\x00\x01\x12\x34", 10));
    ASSERT_EQ(listener.opened, 1);
    transport->reset();
    configured.reset();
  }
  EXPECT_EQ(testing::StopFreedMemoryWatch(), 0)
      << "a freed block still held the password: a copy was not wiped";
}

}  // namespace
}  // namespace hublink
