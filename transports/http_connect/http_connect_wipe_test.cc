// The proxy password must not survive in freed heap memory: not in the configured transport, not in
// the request being built, not in the Basic token, not in the bytes handed to the layer below.
#include <openssl/mem.h>

#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/connect_context.h"
#include "plugins/registry.h"
#include "plugins/weak_guard.h"
#include "tests/test_util.h"
#include "transports/http_connect/http_connect.pb.h"
#include "transports/http_connect/http_connect_transport.h"
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

// One tunnel from configuration to destruction with the watch on `watched`.
void RunTunnelWatching(absl::string_view watched) {
  Registry::Builder builder;
  RegisterHttpConnectTransport(builder);
  absl::StatusOr<Registry> registry = std::move(builder).Build();
  ASSERT_TRUE(registry.ok());
  const TransportFactory* factory = *registry->FindTransport("http_connect");
  auto loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok());
  std::unique_ptr<ConnectContext> context =
      std::make_unique<ConnectContext>(**loop, "broker.example", 8883);
  std::unique_ptr<ConfiguredTransport> configured;
  {
    // The config message is the caller's (the pipeline's) to wipe: configured outside the watch.
    transports::HttpConnectConfig config;
    config.set_username("alice");
    config.set_password(kPassword);
    auto made = factory->Configure(config);
    ASSERT_TRUE(made.ok()) << made.status();
    configured = std::move(made).value();
    OPENSSL_cleanse(&(*config.mutable_password())[0], config.password().size());
  }
  // Made before the watch and wiped after it: the test's own copy is not the transport's.
  std::string token = absl::Base64Escape(absl::StrCat("alice:", kPassword));
  testing::StartFreedMemoryWatch(watched);
  {
    auto lower = std::make_unique<SinkLower>(**loop);
    SinkLower* sink = lower.get();
    auto transport = configured->Create(*context, std::move(lower));
    ASSERT_TRUE(transport.ok());
    RecordingListener listener;
    (*transport)->Open(&listener);
    ASSERT_TRUE(RunUntil(**loop, [&] { return !sink->written().empty(); }));
    EXPECT_TRUE(HoldsSecret(sink->written().data(), sink->written().size(), token));
    sink->listener()->OnData("HTTP/1.1 200 Connection established\r\n\r\n");
    ASSERT_EQ(listener.opened, 1);
    transport->reset();
    configured.reset();
  }
  int found = testing::StopFreedMemoryWatch();
  OPENSSL_cleanse(&token[0], token.size());
  EXPECT_EQ(found, 0) << "a freed block still held " << watched << ": a copy was not wiped";
}

TEST(HttpConnectWipeTest, NeitherThePasswordNorTheBasicTokenSurviveInFreedMemory) {
  if (!FreedMemoryWatchAvailable()) GTEST_SKIP() << "the sanitizer owns the allocator";
  RunTunnelWatching(kPassword);
  RunTunnelWatching(absl::Base64Escape(absl::StrCat("alice:", kPassword)));
}

}  // namespace
}  // namespace hublink
