// TLS over an in-memory transport pair: no sockets. The server is BoringSSL over a BIO pair,
// wrapped around the pipe's server end here in the test; deliveries may be split down to one byte
// per OnData.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/log.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "tests/memory_pipe.h"
#include "tests/test_util.h"
#include "transports/tcp/tcp_transport.h"
#include "transports/tls/tls.pb.h"
#include "transports/tls/tls_test_helpers.h"
#include "transports/tls/tls_transport.h"

namespace hublink {
namespace testing {
namespace {

using transports::TlsConfig;

// A TLS server over one end of a memory pipe. Sends `greeting` as soon as its handshake is done (in
// the same Write as its last flight) and echoes what it reads when `echo` is set.
class MemoryTlsServer : public TransportListener {
 public:
  MemoryTlsServer(std::unique_ptr<Transport> end, SSL_CTX* ctx, std::string greeting)
      : end_(std::move(end)), greeting_(std::move(greeting)) {
    ssl_.reset(SSL_new(ctx));
    BIO* internal = nullptr;
    BIO* network = nullptr;
    BIO_new_bio_pair(&internal, 0, &network, 0);
    network_.reset(network);
    SSL_set_bio(ssl_.get(), internal, internal);
    SSL_set_accept_state(ssl_.get());
  }

  void Open() { end_->Open(this); }

  // Sends `plaintext` as one record but only its first `keep` bytes of ciphertext, then closes.
  void SendTruncatedRecordAndClose(absl::string_view plaintext, size_t keep) {
    SSL_write(ssl_.get(), plaintext.data(), static_cast<int>(plaintext.size()));
    std::string out(BIO_ctrl_pending(network_.get()), '\0');
    BIO_read(network_.get(), &out[0], static_cast<int>(out.size()));
    (void)end_->Write(absl::string_view(out).substr(0, keep));
    end_->Close();
  }
  void CloseWithoutCloseNotify() { end_->Close(); }
  // Sends `plaintext` as one record with its last byte (inside the authentication tag) flipped.
  void SendCorruptRecord(absl::string_view plaintext) {
    SSL_write(ssl_.get(), plaintext.data(), static_cast<int>(plaintext.size()));
    std::string out(BIO_ctrl_pending(network_.get()), '\0');
    BIO_read(network_.get(), &out[0], static_cast<int>(out.size()));
    out.back() ^= 0x01;
    (void)end_->Write(out);
  }

  void OnOpen() override {}
  void OnData(absl::string_view bytes) override {
    if (drop_after_client_hello) {
      end_->Close();
      return;
    }
    if (!raw_reply.empty()) {
      (void)end_->Write(raw_reply);
      raw_reply.clear();
      return;
    }
    if (silent) return;
    // The pair's buffer is small: feed, let BoringSSL drain, repeat (bounded by the input size).
    for (int rounds = 0; !bytes.empty() && rounds < 1000; ++rounds) {
      int n = BIO_write(network_.get(), bytes.data(), static_cast<int>(bytes.size()));
      if (n > 0) bytes.remove_prefix(static_cast<size_t>(n));
      Pump();
    }
  }
  void OnClosed(const absl::Status& status) override { closed = status; }

  void Pump() {
    if (!handshake_done) {
      int rc = SSL_do_handshake(ssl_.get());
      if (rc == 1) {
        handshake_done = true;
        if (!greeting_.empty())
          SSL_write(ssl_.get(), greeting_.data(), static_cast<int>(greeting_.size()));
      } else if (SSL_get_error(ssl_.get(), rc) != SSL_ERROR_WANT_READ) {
        handshake_error = ERR_reason_error_string(ERR_get_error()) ?: "?";
        ERR_clear_error();
      }
    }
    if (handshake_done) {
      resumed = SSL_session_reused(ssl_.get());
      char buffer[4096];
      while (true) {
        int n = SSL_read(ssl_.get(), buffer, sizeof(buffer));
        if (n > 0) {
          if (on_plaintext) {
            on_plaintext(absl::string_view(buffer, static_cast<size_t>(n)));
            continue;
          }
          received.append(buffer, static_cast<size_t>(n));
          if (echo) SSL_write(ssl_.get(), buffer, n);
          continue;
        }
        if (SSL_get_error(ssl_.get(), n) == SSL_ERROR_ZERO_RETURN) got_close_notify = true;
        ERR_clear_error();
        break;
      }
    }
    FlushOut();
  }

  // Sends application data to the client (for a server nested inside this one).
  void WritePlaintext(absl::string_view bytes) {
    SSL_write(ssl_.get(), bytes.data(), static_cast<int>(bytes.size()));
    FlushOut();
  }

  void FlushOut() {
    std::string out;
    char buffer[4096];
    while (BIO_ctrl_pending(network_.get()) > 0) {
      int n = BIO_read(network_.get(), buffer, sizeof(buffer));
      if (n <= 0) break;
      out.append(buffer, static_cast<size_t>(n));
    }
    if (!out.empty()) (void)end_->Write(out);
  }

  // When set, receives the decrypted stream instead of `received` / echo.
  std::function<void(absl::string_view)> on_plaintext;
  bool echo = true;
  bool silent = false;  // never answers (handshake timeout test)
  bool drop_after_client_hello = false;
  std::string raw_reply;  // answers the first bytes with this instead of TLS
  bool handshake_done = false;
  bool resumed = false;
  bool got_close_notify = false;
  std::string handshake_error;
  std::string received;
  absl::optional<absl::Status> closed;

 private:
  std::unique_ptr<Transport> end_;
  std::string greeting_;
  bssl::UniquePtr<SSL> ssl_;
  bssl::UniquePtr<BIO> network_;
};

// Passes everything through to the memory pipe, except that while `full` is set it refuses writes
// the way a transport over its hard limit does (kResourceExhausted), until Drain() reports
// OnWritable().
class GatedTransport : public Transport, public TransportListener {
 public:
  GatedTransport(EventLoop& loop, std::unique_ptr<Transport> inner, bool* destroyed = nullptr)
      : loop_(loop), inner_(std::move(inner)), destroyed_(destroyed) {}
  ~GatedTransport() override {
    if (destroyed_ != nullptr) *destroyed_ = true;
  }
  void Open(TransportListener* listener) override {
    up_ = listener;
    inner_->Open(this);
  }
  absl::Status Write(absl::string_view bytes) override {
    if (full) return absl::ResourceExhaustedError("gated: full");
    return inner_->Write(bytes);
  }
  void Close() override {
    ++close_calls;
    inner_->Close();
  }
  size_t BufferedBytes() const override { return 0; }
  bool AboveSoftLimit() const override { return above_soft_limit; }
  void OnOpen() override { up_->OnOpen(); }
  void OnData(absl::string_view bytes) override { up_->OnData(bytes); }
  void OnClosed(const absl::Status& status) override { up_->OnClosed(status); }

  void Drain() {
    full = false;
    loop_.Post([this] { up_->OnWritable(); });
  }

  bool full = false;
  bool above_soft_limit = false;
  int close_calls = 0;

 private:
  EventLoop& loop_;
  std::unique_ptr<Transport> inner_;
  bool* destroyed_;
  TransportListener* up_ = nullptr;
};

// A RecordingListener that fails the test when a callback runs while `inside` names a call in
// progress (Open, Write, Close): the contract defers every callback through the loop.
class NoReentryListener : public RecordingListener {
 public:
  void OnOpen() override {
    Check("OnOpen");
    RecordingListener::OnOpen();
  }
  void OnData(absl::string_view bytes) override {
    Check("OnData");
    RecordingListener::OnData(bytes);
  }
  void OnClosed(const absl::Status& status) override {
    Check("OnClosed");
    RecordingListener::OnClosed(status);
  }
  void OnWritable() override {
    Check("OnWritable");
    RecordingListener::OnWritable();
  }
  const char* inside = nullptr;

 private:
  void Check(const char* callback) {
    if (inside != nullptr) ADD_FAILURE() << callback << " ran from inside " << inside << "()";
  }
};

// Runs what is already posted to `loop`, and what that posts in turn (a marker posted now ran,
// twice).
void Settle(EventLoop& loop) {
  for (int round = 0; round < 2; ++round) {
    bool ran = false;
    loop.Post([&] { ran = true; });
    ASSERT_TRUE(RunUntil(loop, [&] { return ran; }));
  }
}

class TlsMemoryTest : public ::testing::TestWithParam<size_t> {
 protected:
  // RSA key generation is the slow part: one set of certificates for the whole suite.
  static void SetUpTestSuite() {
    auto certs = MakeTestCertificates(NewDir("tls_memory"), {"broker.local", "127.0.0.1"});
    ASSERT_TRUE(certs.ok()) << certs.status();
    suite_certs_ = new TestCertificates(*certs);
  }
  static void TearDownTestSuite() { delete suite_certs_; }

  void SetUp() override {
    ASSERT_NE(suite_certs_, nullptr);
    auto loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = std::move(loop).value();
    certs_ = *suite_certs_;
    server_ctx_.reset(SSL_CTX_new(TLS_method()));
    ASSERT_TRUE(SSL_CTX_use_certificate_chain_file(server_ctx_.get(), certs_.cert_file.c_str()));
    ASSERT_TRUE(
        SSL_CTX_use_PrivateKey_file(server_ctx_.get(), certs_.key_file.c_str(), SSL_FILETYPE_PEM));
    config_.set_ca_file(certs_.ca_file);
  }

  struct Link {
    std::unique_ptr<MemoryTlsServer> server;
    std::unique_ptr<Attempt> client;
    GatedTransport* gate = nullptr;  // ConnectGated() only
  };

  // Opens tls over a memory pipe to a fresh MemoryTlsServer and runs until the client opens or
  // closes.
  Link Connect(ConfiguredTransport& tls, const std::string& host = "broker.local",
               const std::string& greeting = "HELLO\n") {
    return Open(tls, host, greeting, /*gated=*/false, nullptr);
  }

  // Connect() with a GatedTransport between tls and the pipe and a server that echoes nothing; runs
  // until the greeting arrived.
  Link ConnectGated(ConfiguredTransport& tls, bool* below_destroyed = nullptr) {
    return Open(tls, "broker.local", "HELLO\n", /*gated=*/true, below_destroyed);
  }

  Link Open(ConfiguredTransport& tls, const std::string& host, const std::string& greeting,
            bool gated, bool* below_destroyed) {
    MemoryPipe pipe = MakeMemoryPipe(*loop_, GetParam());
    Link link;
    link.server =
        std::make_unique<MemoryTlsServer>(std::move(pipe.server), server_ctx_.get(), greeting);
    link.server->echo = !gated;
    std::unique_ptr<Transport> below = std::move(pipe.client);
    if (gated) {
      auto gate = std::make_unique<GatedTransport>(*loop_, std::move(below), below_destroyed);
      link.gate = gate.get();
      below = std::move(gate);
    }
    link.client = std::make_unique<Attempt>(*loop_, host, 8883);
    auto top = tls.Create(link.client->context, std::move(below));
    EXPECT_TRUE(top.ok()) << top.status();
    if (!top.ok()) return link;
    link.client->transport = std::move(top).value();
    link.server->Open();
    link.client->transport->Open(&link.client->listener);
    RecordingListener& l = link.client->listener;
    RunUntil(*loop_, [&] {
      return (gated ? l.data.size() >= greeting.size() : l.opened > 0) || l.closed.has_value();
    });
    return link;
  }

  std::unique_ptr<ConfiguredTransport> Configure(const TlsConfig& config) {
    auto tls = ConfigureTls(config);
    EXPECT_TRUE(tls.ok()) << tls.status();
    return tls.ok() ? std::move(tls).value() : nullptr;
  }

  static TestCertificates* suite_certs_;
  std::unique_ptr<EventLoop> loop_;
  TestCertificates certs_;
  bssl::UniquePtr<SSL_CTX> server_ctx_;
  TlsConfig config_;
};

TestCertificates* TlsMemoryTest::suite_certs_ = nullptr;

TEST_P(TlsMemoryTest, HandshakeEchoAndOrderlyClose) {
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  Link link = Connect(*tls);
  RecordingListener& l = link.client->listener;
  ASSERT_EQ(l.opened, 1) << (l.closed ? l.closed->ToString() : "");
  EXPECT_TRUE(absl::StrContains(link.client->TlsStage(), "handshake done TLSv1.3"))
      << link.client->TlsStage();
  EXPECT_TRUE(absl::StrContains(link.client->TlsStage(), "sni=broker.local"))
      << link.client->TlsStage();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return l.data.size() >= 6; }));
  EXPECT_EQ(l.data, "HELLO\n");

  std::string message;
  for (int i = 0; i < 3000; ++i) message += static_cast<char>('a' + i % 26);
  ASSERT_TRUE(link.client->transport->Write(message).ok());
  ASSERT_TRUE(RunUntil(*loop_, [&] { return l.data.size() >= 6 + message.size(); }));
  EXPECT_EQ(l.data.substr(6), message);
  EXPECT_EQ(link.server->received, message);

  link.client->transport->Close();
  EXPECT_EQ(link.client->transport->Write("late").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return l.closed.has_value(); }));
  EXPECT_TRUE(l.closed->ok()) << *l.closed;
  EXPECT_EQ(l.closed_count, 1);
  EXPECT_TRUE(link.server->got_close_notify)
      << "close_notify did not reach the server before the close";
}

TEST_P(TlsMemoryTest, PlaintextInTheLastHandshakeFlightIsHandedUp) {
  // TLS 1.2: the server's Finished is the last flight, and the greeting rides in the same Write.
  config_.set_max_version(TlsConfig::TLS1_2);
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  Link link = Connect(*tls, "broker.local", "greeting-with-finished");
  RecordingListener& l = link.client->listener;
  ASSERT_EQ(l.opened, 1) << (l.closed ? l.closed->ToString() : "");
  EXPECT_TRUE(absl::StrContains(link.client->TlsStage(), "TLSv1.2")) << link.client->TlsStage();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return l.data.size() >= 22; }));
  EXPECT_EQ(l.data, "greeting-with-finished");
}

TEST_P(TlsMemoryTest, SessionIsResumedOnTheNextConnection) {
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  {
    Link first = Connect(*tls);
    ASSERT_EQ(first.client->listener.opened, 1);
    // The greeting follows the session tickets, so once it is here the tickets were processed.
    ASSERT_TRUE(RunUntil(*loop_, [&] { return first.client->listener.data.size() >= 6; }));
    EXPECT_TRUE(absl::StrContains(first.client->TlsStage(), "resumed=no"));
    EXPECT_FALSE(first.server->resumed);
  }
  Link second = Connect(*tls);
  ASSERT_EQ(second.client->listener.opened, 1);
  EXPECT_TRUE(absl::StrContains(second.client->TlsStage(), "resumed=yes"))
      << second.client->TlsStage();
  // The server's view settles once its side of the handshake is done, before it greets.
  ASSERT_TRUE(RunUntil(*loop_, [&] { return second.client->listener.data.size() >= 6; }));
  EXPECT_TRUE(second.server->resumed);

  // Another host name is another cache entry: no resumption there.
  Link other = Connect(*tls, "127.0.0.1");
  ASSERT_EQ(other.client->listener.opened, 1) << other.client->listener.closed->ToString();
  EXPECT_TRUE(absl::StrContains(other.client->TlsStage(), "resumed=no"));
  EXPECT_TRUE(absl::StrContains(other.client->TlsStage(), "sni=none")) << other.client->TlsStage();
}

TEST_P(TlsMemoryTest, EveryReconnectResumesAndCostsLess) {
  // TLS 1.3 tickets are single-use: each resumed connection must put its fresh ticket back in the
  // cache.
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  constexpr int kConnections = 12;
  absl::Duration full, resumed;
  for (int i = 0; i < kConnections; ++i) {
    absl::Time start = absl::Now();
    Link link = Connect(*tls);
    ASSERT_EQ(link.client->listener.opened, 1);
    (i == 0 ? full : resumed) += absl::Now() - start;
    EXPECT_TRUE(absl::StrContains(link.client->TlsStage(), i == 0 ? "resumed=no" : "resumed=yes"))
        << "connection " << i << ": " << link.client->TlsStage();
    ASSERT_TRUE(RunUntil(*loop_, [&] { return link.client->listener.data.size() >= 6; }));
  }
  resumed /= kConnections - 1;
  RecordProperty("full_handshake_us", static_cast<int>(absl::ToInt64Microseconds(full)));
  RecordProperty("resumed_handshake_us", static_cast<int>(absl::ToInt64Microseconds(resumed)));
  std::printf("max_chunk=%zu: full handshake %s, resumed %s (both ends in this process)\n",
              GetParam(), absl::FormatDuration(full).c_str(),
              absl::FormatDuration(resumed).c_str());
}

TEST_P(TlsMemoryTest, BackpressureBelowHoldsCiphertextAndDelaysTheClose) {
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  Link link = ConnectGated(*tls);
  ASSERT_EQ(link.client->listener.opened, 1);
  GatedTransport* gate = link.gate;
  Transport& top = *link.client->transport;
  RecordingListener& l = link.client->listener;

  gate->full = true;
  const std::string message(3000, 'm');
  ASSERT_TRUE(top.Write(message).ok()) << "the first refused write is held, not lost";
  EXPECT_GT(top.BufferedBytes(), message.size());
  EXPECT_EQ(top.Write("more").code(), absl::StatusCode::kResourceExhausted);
  top.Close();
  EXPECT_EQ(gate->close_calls, 0) << "closed below while records were still held";

  gate->Drain();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return l.closed.has_value(); }));
  EXPECT_TRUE(l.closed->ok()) << *l.closed;
  EXPECT_EQ(gate->close_calls, 1);
  EXPECT_EQ(link.server->received, message);
  EXPECT_TRUE(link.server->got_close_notify);
  EXPECT_EQ(l.writable, 0) << "OnWritable after Close()";
}

// The layer owes OnWritable() while the layer below does, or while it holds records the layer
// below refused; mqtt::Session holds QoS 0 data until then (issue 15, goal 5).
TEST_P(TlsMemoryTest, AboveSoftLimitWhileTheLayerBelowIsOrRecordsAreHeld) {
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  Link link = ConnectGated(*tls);
  ASSERT_EQ(link.client->listener.opened, 1);
  Transport& top = *link.client->transport;
  EXPECT_FALSE(top.AboveSoftLimit());
  link.gate->above_soft_limit = true;
  EXPECT_TRUE(top.AboveSoftLimit());
  link.gate->above_soft_limit = false;
  EXPECT_FALSE(top.AboveSoftLimit());

  link.gate->full = true;
  const std::string message(3000, 'm');
  ASSERT_TRUE(top.Write(message).ok()) << "the first refused write is held, not lost";
  EXPECT_TRUE(top.AboveSoftLimit());
  link.gate->Drain();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return link.client->listener.writable > 0; }));
  EXPECT_FALSE(top.AboveSoftLimit());
  ASSERT_TRUE(RunUntil(*loop_, [&] { return link.server->received == message; }));
}

TEST_P(TlsMemoryTest, PeerCloseWithoutCloseNotify) {
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  {
    SCOPED_TRACE("at a record boundary: a clean end, as brokers that skip close_notify do");
    Link link = Connect(*tls);
    RecordingListener& l = link.client->listener;
    ASSERT_TRUE(RunUntil(*loop_, [&] { return l.data.size() >= 6; }));
    link.server->CloseWithoutCloseNotify();
    ASSERT_TRUE(RunUntil(*loop_, [&] { return l.closed.has_value(); }));
    EXPECT_TRUE(l.closed->ok()) << *l.closed;
  }
  {
    SCOPED_TRACE("in the middle of a record: truncation is an error");
    Link link = Connect(*tls);
    RecordingListener& l = link.client->listener;
    ASSERT_TRUE(RunUntil(*loop_, [&] { return l.data.size() >= 6; }));
    link.server->SendTruncatedRecordAndClose("this record never ends", 10);
    ASSERT_TRUE(RunUntil(*loop_, [&] { return l.closed.has_value(); }));
    EXPECT_EQ(l.closed->code(), absl::StatusCode::kUnavailable) << *l.closed;
    EXPECT_EQ(l.closed->message(), "tls: connection closed in the middle of a TLS record");
    EXPECT_EQ(l.data, "HELLO\n");
  }
}

TEST_P(TlsMemoryTest, CorruptRecordIsDataLoss) {
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  Link link = Connect(*tls);
  RecordingListener& l = link.client->listener;
  ASSERT_TRUE(RunUntil(*loop_, [&] { return l.data.size() >= 6 || l.closed; }));
  link.server->SendCorruptRecord("tampered with on the way");
  ASSERT_TRUE(RunUntil(*loop_, [&] { return l.closed.has_value(); }));
  EXPECT_EQ(l.closed->code(), absl::StatusCode::kDataLoss) << *l.closed;
  EXPECT_TRUE(absl::StartsWith(l.closed->message(), "tls: connection failed: ")) << *l.closed;
  EXPECT_EQ(l.data, "HELLO\n") << "no byte of the corrupt record was handed up";
}

TEST_P(TlsMemoryTest, HostnameMismatchIsRefusedWithTheNames) {
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  Link link = Connect(*tls, "other.local");
  RecordingListener& l = link.client->listener;
  ASSERT_TRUE(l.closed.has_value());
  EXPECT_EQ(l.opened, 0);
  EXPECT_EQ(l.closed->code(), absl::StatusCode::kUnauthenticated) << *l.closed;
  EXPECT_TRUE(
      absl::StartsWith(l.closed->message(),
                       "tls: certificate verify failed: hostname mismatch (wanted other.local, "
                       "certificate has CN=broker.local, DNS:broker.local, IP:127.0.0.1"))
      << *l.closed;
}

TEST_P(TlsMemoryTest, PeerClosingMidHandshakeIsUnavailable) {
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  MemoryPipe pipe = MakeMemoryPipe(*loop_, GetParam());
  MemoryTlsServer server(std::move(pipe.server), server_ctx_.get(), "");
  server.drop_after_client_hello = true;
  Attempt attempt(*loop_, "broker.local", 8883);
  auto top = tls->Create(attempt.context, std::move(pipe.client));
  ASSERT_TRUE(top.ok());
  server.Open();
  (*top)->Open(&attempt.listener);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return attempt.listener.closed.has_value(); }));
  EXPECT_EQ(attempt.listener.opened, 0);
  EXPECT_EQ(attempt.listener.closed->code(), absl::StatusCode::kUnavailable)
      << *attempt.listener.closed;
  EXPECT_TRUE(absl::StartsWith(attempt.listener.closed->message(),
                               "tls: handshake failed: peer closed the connection mid-handshake"))
      << *attempt.listener.closed;
}

TEST_P(TlsMemoryTest, SilentPeerTimesOut) {
  config_.mutable_handshake_timeout()->set_nanos(200 * 1000 * 1000);
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  MemoryPipe pipe = MakeMemoryPipe(*loop_, GetParam());
  MemoryTlsServer server(std::move(pipe.server), server_ctx_.get(), "");
  server.silent = true;
  Attempt attempt(*loop_, "broker.local", 8883);
  auto top = tls->Create(attempt.context, std::move(pipe.client));
  ASSERT_TRUE(top.ok());
  EXPECT_EQ((*top)->Write("early").code(), absl::StatusCode::kFailedPrecondition);
  server.Open();
  (*top)->Open(&attempt.listener);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return attempt.listener.closed.has_value(); }));
  EXPECT_EQ(attempt.listener.closed->code(), absl::StatusCode::kDeadlineExceeded)
      << *attempt.listener.closed;
  EXPECT_TRUE(absl::StrContains(attempt.listener.closed->message(),
                                "tls: handshake with broker.local timed out"))
      << *attempt.listener.closed;
}

TEST_P(TlsMemoryTest, ServerNameBoringSslRefusesFailsClosedAtTheHandshake) {
  // An endpoint host with a NUL byte: SNI (a C string) reads "other.local", and BoringSSL refuses
  // the whole name as a host to check. The certificate (for broker.local) must not pass unchecked.
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  for (const std::string& host :
       {std::string("other.local\0x", 13), std::string("127.0.0.1\0x", 11)}) {
    SCOPED_TRACE(absl::CHexEscape(host));
    Link link = Connect(*tls, host);
    RecordingListener& l = link.client->listener;
    ASSERT_TRUE(l.closed.has_value());
    EXPECT_EQ(l.opened, 0);
    EXPECT_EQ(l.closed->code(), absl::StatusCode::kUnauthenticated) << *l.closed;
    EXPECT_TRUE(absl::StartsWith(l.closed->message(), "tls: certificate verify failed: "))
        << *l.closed;
  }
}

TEST_P(TlsMemoryTest, CloseIsBoundedWhenTheLayerBelowNeverDrains) {
  config_.mutable_close_timeout()->set_nanos(50 * 1000 * 1000);
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  bool below_destroyed = false;
  Link link = ConnectGated(*tls, &below_destroyed);
  RecordingListener& l = link.client->listener;
  ASSERT_EQ(l.opened, 1);
  Transport& top = *link.client->transport;

  link.gate->full = true;  // the peer stopped reading, for good
  ASSERT_TRUE(top.Write(std::string(3000, 'm')).ok());
  top.Close();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return l.closed.has_value(); }))
      << "Close() never completed while the layer below stayed full";
  EXPECT_EQ(l.closed->code(), absl::StatusCode::kDeadlineExceeded) << *l.closed;
  EXPECT_TRUE(absl::StartsWith(l.closed->message(), "tls: close timed out after 50ms"))
      << *l.closed;
  EXPECT_TRUE(below_destroyed) << "the connection below was not abandoned";
  EXPECT_EQ(top.BufferedBytes(), 0u);
  // The abandoned link reaches the peer as a reset.
  ASSERT_TRUE(RunUntil(*loop_, [&] { return link.server->closed.has_value(); }));
  Settle(*loop_);
  EXPECT_EQ(l.closed_count, 1);
}

TEST_P(TlsMemoryTest, SecondOpenIsRefusedAndTheFirstListenerKeepsTheConnection) {
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  Link link = Connect(*tls);
  RecordingListener& first = link.client->listener;
  ASSERT_EQ(first.opened, 1);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return first.data.size() >= 6; }));

  NoReentryListener second;
  second.inside = "Open";
  link.client->transport->Open(&second);
  second.inside = nullptr;
  ASSERT_TRUE(RunUntil(*loop_, [&] { return second.closed.has_value(); }))
      << "the second Open() must be refused through its own listener";
  EXPECT_EQ(second.closed->code(), absl::StatusCode::kFailedPrecondition) << *second.closed;
  EXPECT_EQ(second.closed->message(), "tls: Open() called twice");
  EXPECT_EQ(second.opened, 0);

  // The first listener still owns a working connection.
  EXPECT_FALSE(first.closed.has_value()) << *first.closed;
  ASSERT_TRUE(link.client->transport->Write("still here").ok());
  ASSERT_TRUE(RunUntil(*loop_, [&] { return first.data.size() >= 16 || first.closed; }));
  EXPECT_EQ(first.data, "HELLO\nstill here");
  link.client->transport->Close();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return first.closed.has_value(); }));
  EXPECT_TRUE(first.closed->ok()) << *first.closed;
  EXPECT_EQ(first.closed_count, 1);
  EXPECT_EQ(second.closed_count, 1);
  EXPECT_EQ(second.data, "");
}

TEST_P(TlsMemoryTest, NoCallbackRunsInsideOpenWriteOrClose) {
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  {
    SCOPED_TRACE("a whole connection, with a second Open() and a second Close()");
    MemoryPipe pipe = MakeMemoryPipe(*loop_, GetParam());
    MemoryTlsServer server(std::move(pipe.server), server_ctx_.get(), "HELLO\n");
    Attempt attempt(*loop_, "broker.local", 8883);
    auto top = tls->Create(attempt.context, std::move(pipe.client));
    ASSERT_TRUE(top.ok());
    NoReentryListener l;
    server.Open();
    l.inside = "Open";
    (*top)->Open(&l);
    l.inside = nullptr;
    ASSERT_TRUE(RunUntil(*loop_, [&] { return l.data.size() >= 6 || l.closed; }));
    ASSERT_EQ(l.opened, 1);
    NoReentryListener second;
    second.inside = "Open";
    (*top)->Open(&second);
    second.inside = nullptr;
    l.inside = "Write";
    EXPECT_TRUE((*top)->Write("echo me").ok());
    l.inside = nullptr;
    ASSERT_TRUE(RunUntil(*loop_, [&] { return l.data.size() >= 13 || l.closed; }));
    l.inside = "Close";
    (*top)->Close();
    (*top)->Close();
    EXPECT_EQ((*top)->Write("late").code(), absl::StatusCode::kFailedPrecondition);
    l.inside = nullptr;
    ASSERT_TRUE(RunUntil(*loop_, [&] { return l.closed.has_value() && second.closed; }));
    EXPECT_TRUE(l.closed->ok()) << *l.closed;
    l.inside = "Open";
    (*top)->Open(&l);  // after the end: refused, but OnClosed was already delivered once
    l.inside = nullptr;
    Settle(*loop_);
    EXPECT_EQ(l.closed_count, 1);
  }
  {
    SCOPED_TRACE("Close() before Open(), then Open()");
    MemoryPipe pipe = MakeMemoryPipe(*loop_, GetParam());
    Attempt attempt(*loop_, "broker.local", 8883);
    auto top = tls->Create(attempt.context, std::move(pipe.client));
    ASSERT_TRUE(top.ok());
    NoReentryListener l;
    l.inside = "Close";
    (*top)->Close();
    l.inside = "Open";
    (*top)->Open(&l);
    l.inside = nullptr;
    ASSERT_TRUE(RunUntil(*loop_, [&] { return l.closed.has_value(); }));
    EXPECT_EQ(l.closed->code(), absl::StatusCode::kFailedPrecondition) << *l.closed;
    EXPECT_EQ(l.opened, 0);
  }
}

TEST_P(TlsMemoryTest, APeerThatDoesNotSpeakTlsIsDataLoss) {
  auto tls = Configure(config_);
  ASSERT_NE(tls, nullptr);
  MemoryPipe pipe = MakeMemoryPipe(*loop_, GetParam());
  MemoryTlsServer server(std::move(pipe.server), server_ctx_.get(), "");
  server.raw_reply = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  Attempt attempt(*loop_, "broker.local", 8883);
  auto top = tls->Create(attempt.context, std::move(pipe.client));
  ASSERT_TRUE(top.ok());
  server.Open();
  (*top)->Open(&attempt.listener);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return attempt.listener.closed.has_value(); }));
  EXPECT_EQ(attempt.listener.opened, 0);
  EXPECT_EQ(attempt.listener.closed->code(), absl::StatusCode::kDataLoss)
      << *attempt.listener.closed;
  EXPECT_TRUE(absl::StartsWith(attempt.listener.closed->message(), "tls: handshake failed: "))
      << *attempt.listener.closed;
}

// The server side of a TLS connection nested inside `outer`: a Transport whose bytes travel as the
// outer server's application data.
class NestedServerEnd : public Transport {
 public:
  NestedServerEnd(EventLoop& loop, MemoryTlsServer& outer) : loop_(loop), outer_(outer) {
    outer_.on_plaintext = [this](absl::string_view bytes) {
      if (listener_ != nullptr) listener_->OnData(bytes);
    };
  }
  void Open(TransportListener* listener) override {
    listener_ = listener;
    loop_.Post([this] { listener_->OnOpen(); });
  }
  absl::Status Write(absl::string_view bytes) override {
    outer_.WritePlaintext(bytes);
    return absl::OkStatus();
  }
  void Close() override {}
  size_t BufferedBytes() const override { return 0; }

 private:
  EventLoop& loop_;
  MemoryTlsServer& outer_;
  TransportListener* listener_ = nullptr;
};

TEST_P(TlsMemoryTest, TlsOverTls) {
  // tls > tls over the pipe, against two servers nested the same way: the inner layer's records
  // travel through the outer layer, never to a socket.
  auto outer_tls = Configure(config_);
  auto inner_tls = Configure(config_);
  ASSERT_NE(outer_tls, nullptr);
  ASSERT_NE(inner_tls, nullptr);
  MemoryPipe pipe = MakeMemoryPipe(*loop_, GetParam());
  MemoryTlsServer outer_server(std::move(pipe.server), server_ctx_.get(), "");
  MemoryTlsServer inner_server(std::make_unique<NestedServerEnd>(*loop_, outer_server),
                               server_ctx_.get(), "HELLO\n");
  Attempt attempt(*loop_, "broker.local", 8883);
  auto outer = outer_tls->Create(attempt.context, std::move(pipe.client));
  ASSERT_TRUE(outer.ok());
  auto inner = inner_tls->Create(attempt.context, std::move(outer).value());
  ASSERT_TRUE(inner.ok());
  outer_server.Open();
  inner_server.Open();
  (*inner)->Open(&attempt.listener);
  RecordingListener& l = attempt.listener;
  ASSERT_TRUE(RunUntil(*loop_, [&] { return l.data.size() >= 6 || l.closed; }));
  ASSERT_EQ(l.opened, 1) << (l.closed ? l.closed->ToString() : "");
  EXPECT_EQ(l.data, "HELLO\n");
  int tls_stages = 0;
  for (const std::string& stage : attempt.stages)
    tls_stages += absl::StartsWith(stage, "tls: handshake done");
  EXPECT_EQ(tls_stages, 2);

  ASSERT_TRUE((*inner)->Write("nested").ok());
  ASSERT_TRUE(RunUntil(*loop_, [&] { return l.data.size() >= 12; }));
  EXPECT_EQ(l.data, "HELLO\nnested");
  EXPECT_EQ(inner_server.received, "nested");
  EXPECT_EQ(outer_server.received, "") << "the outer server saw plaintext of the inner connection";
}

INSTANTIATE_TEST_SUITE_P(Chunks, TlsMemoryTest, ::testing::Values(0, 1, 7),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return info.param == 0 ? std::string("Whole")
                                                  : absl::StrCat("MaxChunk", info.param);
                         });

// ---- configuration errors ----

absl::Status ConfigureStatus(const TlsConfig& config) {
  auto tls = ConfigureTls(config);
  return tls.ok() ? absl::OkStatus() : tls.status();
}

TEST(TlsConfigTest, MissingCaFileNamesThePath) {
  TlsConfig config;
  config.set_ca_file("/nonexistent/ca.pem");
  absl::Status status = ConfigureStatus(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "tls: ca_file: /nonexistent/ca.pem: No such file or directory");
}

TEST(TlsConfigTest, BadPemNamesThePath) {
  std::string path = NewDir("tls_config") + "/bad.pem";
  ASSERT_TRUE(WriteFile(path, "this is not PEM\n").ok());
  TlsConfig config;
  config.set_ca_file(path);
  absl::Status status = ConfigureStatus(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(status.message(), absl::StrCat("tls: ca_file: ", path, ": ")))
      << status;
  config.clear_ca_file();
  config.set_ca_pem("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n");
  status = ConfigureStatus(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(status.message(), "tls: ca_pem: bad PEM")) << status;
}

TEST(TlsConfigTest, CertificateWithoutKeyOrWithTheWrongKey) {
  std::string dir = NewDir("tls_config");
  auto certs = MakeTestCertificates(dir, {"localhost"});
  ASSERT_TRUE(certs.ok()) << certs.status();
  TlsConfig config;
  config.set_ca_file(certs->ca_file);
  config.set_cert_file(certs->cert_file);
  absl::Status status = ConfigureStatus(config);
  EXPECT_EQ(status.message(), "tls: cert_file is set but key_file is not");
  config.set_key_file(certs->ca_key_file);
  status = ConfigureStatus(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "does not match the certificate in cert_file"))
      << status;
  config.set_key_file(dir + "/missing.key");
  status = ConfigureStatus(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(),
            absl::StrCat("tls: key_file: ", dir, "/missing.key: No such file or directory"));
  config.set_key_file(certs->key_file);
  EXPECT_TRUE(ConfigureStatus(config).ok()) << ConfigureStatus(config);
}

TEST(TlsConfigTest, ContradictionsAndBadValues) {
  TlsConfig config;
  config.set_insecure_skip_verify(true);
  config.add_spki_pins("sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
  EXPECT_TRUE(absl::StrContains(ConfigureStatus(config).message(), "contradict"));

  config = TlsConfig();
  config.set_pins_only(true);
  EXPECT_EQ(ConfigureStatus(config).message(), "tls: pins_only is set but spki_pins is empty");

  config = TlsConfig();
  config.add_spki_pins("nope");
  EXPECT_TRUE(absl::StartsWith(ConfigureStatus(config).message(), "tls: spki_pins[0]: \"nope\""));

  config = TlsConfig();
  config.mutable_psk()->set_identity("dev");
  config.mutable_psk()->set_key_hex("0g");
  EXPECT_TRUE(absl::StartsWith(ConfigureStatus(config).message(), "tls: psk.key_hex"));
  config.mutable_psk()->set_key_hex("00112233");
  config.set_max_version(TlsConfig::TLS1_3);
  EXPECT_TRUE(absl::StrContains(ConfigureStatus(config).message(), "TLS 1.2 only"));

  config = TlsConfig();
  config.set_insecure_skip_verify(true);
  config.set_cipher_list("NOT-A-CIPHER");
  EXPECT_TRUE(absl::StartsWith(ConfigureStatus(config).message(), "tls: cipher_list:"));

  config = TlsConfig();
  config.set_insecure_skip_verify(true);
  config.add_alpn("");
  EXPECT_TRUE(absl::StartsWith(ConfigureStatus(config).message(), "tls: alpn[0]:"));

  config = TlsConfig();
  config.set_min_version(TlsConfig::TLS1_3);
  config.set_max_version(TlsConfig::TLS1_2);
  config.set_insecure_skip_verify(true);
  EXPECT_EQ(ConfigureStatus(config).message(), "tls: min_version is above max_version");
}

TEST(TlsConfigTest, PipelineErrorsNameTheLayerAndThePath) {
  Registry::Builder builder;
  RegisterTcpTransport(builder);
  RegisterTlsTransport(builder);
  auto registry = std::move(builder).Build();
  ASSERT_TRUE(registry.ok());
  auto config = ParsePipelineText(
      "endpoint { host: \"broker.local\" port: 8883 }\n"
      "transports { name: \"tcp\" }\n"
      "transports { name: \"tls\" typed_config { "
      "[type.googleapis.com/hublink.transports.TlsConfig] {\n"
      "  ca_file: \"/nonexistent/ca.pem\" alpn: \"mqtt\" } } }\n",
      "device.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  auto pipeline = ResolvedPipeline::Resolve(*config, *registry, "device.textproto");
  ASSERT_FALSE(pipeline.ok());
  EXPECT_EQ(pipeline.status().code(), absl::StatusCode::kNotFound);  // docs/errors.md: ENOENT
  EXPECT_TRUE(absl::StrContains(pipeline.status().message(),
                                "tls: ca_file: /nonexistent/ca.pem: No such file or directory"))
      << pipeline.status();
}

TEST(TlsConfigTest, UnreadableFileIsPermissionDenied) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  std::string dir = NewDir("tls_config");
  auto certs = MakeTestCertificates(dir, {"localhost"});
  ASSERT_TRUE(certs.ok()) << certs.status();
  ASSERT_EQ(chmod(certs->key_file.c_str(), 0), 0);
  TlsConfig config;
  config.set_ca_file(certs->ca_file);
  config.set_cert_file(certs->cert_file);
  config.set_key_file(certs->key_file);
  absl::Status status = ConfigureStatus(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_EQ(status.message(),
            absl::StrCat("tls: key_file: ", certs->key_file, ": Permission denied"));
}

TEST(TlsConfigTest, ServerNameBoringSslWouldRefuseIsInvalid) {
  TlsConfig config;
  config.set_insecure_skip_verify(true);  // no CA needed for this test
  for (const std::string& name :
       {std::string("broker.local\0.evil", 18), std::string("\0", 1), std::string(256, 'a')}) {
    SCOPED_TRACE(absl::CHexEscape(name.substr(0, 20)));
    config.set_server_name(name);
    absl::Status status = ConfigureStatus(config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_TRUE(absl::StartsWith(status.message(), "tls: server_name: ")) << status;
  }
  config.set_server_name("broker.local");
  EXPECT_TRUE(ConfigureStatus(config).ok()) << ConfigureStatus(config);
  config.set_server_name("::1");
  EXPECT_TRUE(ConfigureStatus(config).ok()) << ConfigureStatus(config);
}

TEST(TlsConfigTest, CloseTimeoutMustNotBeNegative) {
  TlsConfig config;
  config.set_insecure_skip_verify(true);
  config.mutable_close_timeout()->set_seconds(-1);
  EXPECT_EQ(ConfigureStatus(config).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ConfigureStatus(config).message(), "tls: close_timeout: must not be negative");
  config.mutable_close_timeout()->set_seconds(0);
  EXPECT_TRUE(ConfigureStatus(config).ok()) << ConfigureStatus(config);
}

// ---- secrets leave memory ----

struct WipedBuffer {
  size_t size;
  bool all_zero;
};
std::vector<WipedBuffer>* wiped = nullptr;

void RecordWipe(const uint8_t* data, size_t size) {
  bool zero = true;
  for (size_t i = 0; i < size; ++i) zero = zero && data[i] == 0;
  wiped->push_back({size, zero});
}

class TlsSecretsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    wiped = &records_;
    tls_internal::SetWipeObserverForTesting(RecordWipe);
  }
  void TearDown() override {
    tls_internal::SetWipeObserverForTesting(nullptr);
    wiped = nullptr;
  }
  int Count(size_t size) const {
    int n = 0;
    for (const WipedBuffer& w : records_) n += w.size == size;
    return n;
  }
  void ExpectAllZero() const {
    for (const WipedBuffer& w : records_)
      EXPECT_TRUE(w.all_zero) << "a " << w.size << "-byte buffer";
  }
  std::vector<WipedBuffer> records_;
};

TEST_F(TlsSecretsTest, PskKeyIsWipedWhenThePipelineGoes) {
  const std::string key(32, '\x5a');  // longer than any small-string buffer: lives on the heap
  for (bool base64 : {false, true}) {
    SCOPED_TRACE(base64 ? "key_base64" : "key_hex");
    records_.clear();
    TlsConfig config;
    config.mutable_psk()->set_identity("ABCDEFGHIJdev01");
    std::string text = base64 ? absl::Base64Escape(key) : absl::BytesToHexString(key);
    if (base64) {
      config.mutable_psk()->set_key_base64(text);
    } else {
      config.mutable_psk()->set_key_hex(text);
    }
    auto tls = ConfigureTls(config);
    ASSERT_TRUE(tls.ok()) << tls.status();
    EXPECT_EQ(Count(text.size()), 1) << "the key text in the layer's copy of the config was kept";
    const int before = Count(key.size());  // decoding temporaries
    tls->reset();                          // the pipeline goes
    EXPECT_EQ(Count(key.size()), before + 1) << "the key the pipeline held was not wiped";
    ExpectAllZero();

    // A config refused before the key was decoded (a bad cipher_list) leaves no copy either.
    records_.clear();
    config.set_cipher_list("NOT-A-CIPHER");
    ASSERT_FALSE(ConfigureTls(config).ok());
    EXPECT_EQ(Count(text.size()), 1) << "the key text in the refused config's copy was kept";
    ExpectAllZero();
  }
}

TEST_F(TlsSecretsTest, KeyFileContentsAreWipedOnceLoaded) {
  std::string dir = NewDir("tls_secrets");
  auto certs = MakeTestCertificates(dir, {"localhost"});
  ASSERT_TRUE(certs.ok()) << certs.status();
  auto key_pem = ReadFile(certs->key_file);
  ASSERT_TRUE(key_pem.ok()) << key_pem.status();
  TlsConfig config;
  config.set_ca_file(certs->ca_file);
  config.set_cert_file(certs->cert_file);
  config.set_key_file(certs->key_file);
  auto tls = ConfigureTls(config);
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_GE(Count(key_pem->size()), 1) << "the key_file contents were not wiped";
  ExpectAllZero();

  // Also on the error path.
  records_.clear();
  config.set_key_file(certs->ca_key_file);  // a key, but not the certificate's
  ASSERT_FALSE(ConfigureTls(config).ok());
  auto ca_key_pem = ReadFile(certs->ca_key_file);
  ASSERT_TRUE(ca_key_pem.ok());
  EXPECT_GE(Count(ca_key_pem->size()), 1) << "the key_file contents were not wiped";
  ExpectAllZero();
}

TEST(TlsConfigTest, DefaultsUseTheSystemRoots) {
  // Whether or not this machine has a CA bundle, the default config either works or says why.
  absl::Status status = ConfigureStatus(TlsConfig());
  if (!status.ok()) {
    EXPECT_TRUE(absl::StrContains(status.message(), "/etc/ssl/certs/ca-certificates.crt"))
        << status;
  }
}

}  // namespace
}  // namespace testing
}  // namespace hublink
