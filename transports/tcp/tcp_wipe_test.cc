// Bytes written through tcp (an MQTT CONNECT carries the password) must not survive in freed heap
// memory: the write queue wipes each piece before releasing it.
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/pipeline.h"
#include "tests/test_util.h"
#include "transports/tcp/freed_memory_watch.h"
#include "transports/tcp/tcp_transport.h"

namespace hublink {
namespace testing {
namespace {

// Not 4-periodic, so its XOR signature cannot match zeroed or patterned memory.
constexpr char kSecret[] = "pw:Zq81-hublink-secret-9xK2mWv7";

// An MQTT 3.1.1 CONNECT with user "u" and password kSecret, in `out` (no heap copy).
size_t EncodeConnect(char* out) {
  const size_t pw = sizeof(kSecret) - 1;
  const char variable[] = {0, 4, 'M', 'Q', 'T', 'T', 4, static_cast<char>(0xC2), 0, 60};
  size_t remaining = sizeof(variable) + (2 + 1) + (2 + 1) + (2 + pw);
  size_t n = 0;
  out[n++] = 0x10;
  out[n++] = static_cast<char>(remaining);
  std::memcpy(out + n, variable, sizeof(variable));
  n += sizeof(variable);
  for (char c : {'c', 'u'}) {  // client id "c", user name "u"
    out[n++] = 0;
    out[n++] = 1;
    out[n++] = c;
  }
  out[n++] = 0;
  out[n++] = static_cast<char>(pw);
  std::memcpy(out + n, kSecret, pw);
  return n + pw;
}

TEST(FreedMemoryWatchTest, SeesPlainAndMaskedCopies) {
  if (!FreedMemoryWatchAvailable()) GTEST_SKIP() << "the sanitizer owns operator delete";
  absl::string_view secret(kSecret, sizeof(kSecret) - 1);
  StartFreedMemoryWatch(secret);
  { std::unique_ptr<std::string> plain(new std::string(absl::StrCat("xx", secret, "yy"))); }
  EXPECT_EQ(StopFreedMemoryWatch(), 1);
  StartFreedMemoryWatch(secret);
  {
    std::unique_ptr<std::string> masked(new std::string(absl::StrCat("x", secret)));
    const char key[4] = {0x5a, 0x13, static_cast<char>(0xe7), 0x42};
    for (size_t i = 0; i < masked->size(); ++i) (*masked)[i] ^= key[(i + 3) & 3];
  }
  EXPECT_EQ(StopFreedMemoryWatch(), 1);
  StartFreedMemoryWatch(secret);
  { std::unique_ptr<std::string> other(new std::string(200, 'a')); }
  EXPECT_EQ(StopFreedMemoryWatch(), 0);
}

class TcpWipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FreedMemoryWatchAvailable()) GTEST_SKIP() << "the sanitizer owns operator delete";
    Registry::Builder builder;
    RegisterTcpTransport(builder);
    registry_ = std::make_unique<Registry>(std::move(builder).Build().value());
    loop_ = std::move(EventLoop::Create()).value();
    auto listener = ListenOnLoopback();
    ASSERT_TRUE(listener.ok()) << listener.status();
    listen_fd_ = listener->fd;
    auto parsed =
        ParsePipelineText(absl::StrCat("endpoint { host: \"127.0.0.1\" port: ", listener->port,
                                       " } transports { name: \"tcp\" }"),
                          "t");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    pipeline_ = ResolvedPipeline::Resolve(*parsed, *registry_).value();
    context_ = std::make_unique<ConnectContext>(*loop_, "127.0.0.1", listener->port);
    transport_ = pipeline_->CreateStack(*context_).value();
    transport_->Open(&events_);
    ASSERT_TRUE(RunUntil(*loop_, [&] { return events_.opened > 0 || events_.closed; }));
    ASSERT_EQ(events_.opened, 1);
    peer_ = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(peer_, 0);
  }
  void TearDown() override {
    transport_.reset();
    if (peer_ >= 0) close(peer_);
    if (listen_fd_ >= 0) close(listen_fd_);
  }

  // Writes until the kernel buffers are full and tcp queues what it is given; returns the bytes
  // written.
  size_t FillKernelBuffers() {
    std::string chunk(64 * 1024, 'f');
    size_t written = 0;
    while (transport_->BufferedBytes() == 0) {
      EXPECT_TRUE(transport_->Write(chunk).ok());
      written += chunk.size();
    }
    return written;
  }

  // Reads `size` bytes on the peer side while running the loop.
  void Drain(size_t size) {
    size_t received = 0;
    char buffer[65536];
    ASSERT_TRUE(RunUntil(
        *loop_,
        [&] {
          ssize_t n;
          while ((n = recv(peer_, buffer, sizeof(buffer), MSG_DONTWAIT)) > 0) {
            received += static_cast<size_t>(n);
          }
          return received >= size && transport_->BufferedBytes() == 0;
        },
        absl::Seconds(20)));
    explicit_bzero(buffer, sizeof(buffer));
  }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<ResolvedPipeline> pipeline_;
  std::unique_ptr<ConnectContext> context_;
  RecordingListener events_;
  std::unique_ptr<Transport> transport_;
  int listen_fd_ = -1;
  int peer_ = -1;
};

TEST_F(TcpWipeTest, QueuedConnectIsWipedOnceSent) {
  size_t filler = FillKernelBuffers();
  char connect[128];
  size_t size = EncodeConnect(connect);
  StartFreedMemoryWatch(absl::string_view(kSecret, sizeof(kSecret) - 1));
  ASSERT_TRUE(transport_->Write(absl::string_view(connect, size)).ok());
  ASSERT_GT(transport_->BufferedBytes(), size) << "the CONNECT must have been queued";
  ASSERT_NO_FATAL_FAILURE(Drain(filler + size));
  transport_->Close();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return events_.closed.has_value(); }));
  transport_.reset();
  EXPECT_EQ(StopFreedMemoryWatch(), 0) << "freed memory still held the password";
  explicit_bzero(connect, sizeof(connect));
}

TEST_F(TcpWipeTest, QueuedConnectIsWipedWhenTheConnectionIsAbandoned) {
  FillKernelBuffers();
  char connect[128];
  size_t size = EncodeConnect(connect);
  StartFreedMemoryWatch(absl::string_view(kSecret, sizeof(kSecret) - 1));
  ASSERT_TRUE(transport_->Write(absl::string_view(connect, size)).ok());
  transport_.reset();  // never sent
  EXPECT_EQ(StopFreedMemoryWatch(), 0) << "freed memory still held the password";
  explicit_bzero(connect, sizeof(connect));
}

}  // namespace
}  // namespace testing
}  // namespace hublink
