// tcp > tls against real TLS peers on 127.0.0.1: `openssl s_server` (verification failures,
// insecure mode, pins, PSK, resumption, ALPN) and mosquitto's TLS listener (MQTT bytes, mutual
// TLS).
#include <signal.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/log.h"
#include "tests/test_util.h"
#include "transports/tls/tls.pb.h"
#include "transports/tls/tls_test_helpers.h"

namespace hublink {
namespace testing {
namespace {

using transports::TlsConfig;

// MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s, client id "tls-test"; and the CONNACK
// "accepted".
const std::string kConnect("\x10\x14\x00\x04MQTT\x04\x02\x00\x3c\x00\x08tls-test", 22);
const std::string kConnackAccepted("\x20\x02\x00\x00", 4);

struct SServer {
  std::unique_ptr<Subprocess> process;
  int port = 0;
};

// openssl s_server on 127.0.0.1 with `args`; its stdin stays an open pipe (it quits when stdin
// closes).
absl::StatusOr<SServer> StartSServer(const std::vector<std::string>& args) {
  absl::StatusOr<int> port = PickFreePort();
  if (!port.ok()) return port.status();
  std::vector<std::string> argv = {"openssl", "s_server", "-accept",
                                   absl::StrCat("127.0.0.1:", *port)};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess::Options options;
  options.stdin_pipe = true;
  options.output_file = NewDir("s_server") + "/s_server.log";
  auto process = Subprocess::Start(argv, options);
  if (!process.ok()) return process.status();
  if (!WaitForPort(*port)) {
    auto log = ReadFile(options.output_file);
    return absl::UnavailableError(absl::StrCat("s_server did not listen: ", log.ok() ? *log : ""));
  }
  SServer server;
  server.process = std::move(process).value();
  server.port = *port;
  return server;
}

class TlsPeersTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Two unrelated CAs: the server's, and one the server has nothing to do with.
    std::string dir = NewDir("tls_peers");
    auto certs = MakeTestCertificates(dir, {"127.0.0.1", "localhost"});
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = new TestCertificates(*certs);
    std::string other_dir = NewDir("tls_peers_other");
    auto other = MakeTestCertificates(other_dir, {"other"});
    ASSERT_TRUE(other.ok()) << other.status();
    other_certs_ = new TestCertificates(*other);
  }
  static void TearDownTestSuite() {
    delete certs_;
    delete other_certs_;
  }

  void SetUp() override {
    auto loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = std::move(loop).value();
    auto tcp = ConfigureTcp();
    ASSERT_TRUE(tcp.ok()) << tcp.status();
    tcp_ = std::move(tcp).value();
  }

  std::unique_ptr<ConfiguredTransport> Tls(const TlsConfig& config) {
    auto tls = ConfigureTls(config);
    EXPECT_TRUE(tls.ok()) << tls.status();
    return tls.ok() ? std::move(tls).value() : nullptr;
  }

  std::unique_ptr<Attempt> Connect(ConfiguredTransport& tls, int port,
                                   const std::string& host = "127.0.0.1") {
    return ConnectTls(*loop_, *tcp_, tls, host, port);
  }

  // Closes an open attempt and waits for OnClosed, so a one-connection-at-a-time s_server is free
  // again.
  void CloseAndWait(Attempt& attempt) {
    attempt.transport->Close();
    ASSERT_TRUE(RunUntil(*loop_, [&] { return attempt.listener.closed.has_value(); }));
    EXPECT_TRUE(attempt.listener.closed->ok()) << *attempt.listener.closed;
  }

  static std::string Describe(const Attempt& attempt) {
    return attempt.listener.closed ? attempt.listener.closed->ToString()
                                   : std::string("(not closed)");
  }

  // The handshake was refused: never opened, closed with kUnauthenticated and a message that
  // starts with `prefix`.
  static void ExpectRefused(const Attempt& attempt, absl::string_view prefix) {
    ASSERT_TRUE(attempt.listener.closed.has_value());
    EXPECT_EQ(attempt.listener.opened, 0);
    EXPECT_EQ(attempt.listener.closed->code(), absl::StatusCode::kUnauthenticated)
        << Describe(attempt);
    EXPECT_TRUE(absl::StartsWith(attempt.listener.closed->message(), prefix)) << Describe(attempt);
  }

  static TestCertificates* certs_;
  static TestCertificates* other_certs_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<ConfiguredTransport> tcp_;
};

TestCertificates* TlsPeersTest::certs_ = nullptr;
TestCertificates* TlsPeersTest::other_certs_ = nullptr;

TEST_F(TlsPeersTest, WrongHostnameIsRefused) {
  auto server = StartSServer({"-cert", other_certs_->cert_file, "-key", other_certs_->key_file});
  ASSERT_TRUE(server.ok()) << server.status();
  TlsConfig config;
  config.set_ca_file(other_certs_->ca_file);
  config.set_server_name("broker.local");
  auto tls = Tls(config);
  ASSERT_NE(tls, nullptr);
  auto attempt = Connect(*tls, server->port);
  ExpectRefused(*attempt,
                "tls: certificate verify failed: hostname mismatch (wanted broker.local, "
                "certificate has CN=other, DNS:other;");
}

TEST_F(TlsPeersTest, WrongIpAddressIsRefused) {
  auto server = StartSServer({"-cert", other_certs_->cert_file, "-key", other_certs_->key_file});
  ASSERT_TRUE(server.ok()) << server.status();
  TlsConfig config;
  config.set_ca_file(other_certs_->ca_file);
  auto tls = Tls(config);
  ASSERT_NE(tls, nullptr);
  auto attempt = Connect(*tls, server->port);
  ExpectRefused(*attempt,
                "tls: certificate verify failed: IP address mismatch (wanted 127.0.0.1, "
                "certificate has CN=other, DNS:other;");
}

TEST_F(TlsPeersTest, UnknownCaIsRefused) {
  auto server = StartSServer({"-cert", certs_->cert_file, "-key", certs_->key_file});
  ASSERT_TRUE(server.ok()) << server.status();
  TlsConfig config;
  config.set_ca_file(other_certs_->ca_file);
  auto tls = Tls(config);
  ASSERT_NE(tls, nullptr);
  auto attempt = Connect(*tls, server->port);
  ExpectRefused(*attempt,
                "tls: certificate verify failed: unknown CA (issuer CN=hublink test CA of "
                "CN=127.0.0.1 is not trusted; add it with ca_file or ca_pem)");
}

TEST_F(TlsPeersTest, ExpiredCertificateIsRefused) {
  std::string dir = NewDir("tls_expired");
  auto expired = MakeExpiredCertificate(*certs_, dir);
  ASSERT_TRUE(expired.ok()) << expired.status();
  auto server = StartSServer({"-cert", *expired, "-key", dir + "/expired.key"});
  ASSERT_TRUE(server.ok()) << server.status();
  TlsConfig config;
  config.set_ca_file(certs_->ca_file);
  auto tls = Tls(config);
  ASSERT_NE(tls, nullptr);
  auto attempt = Connect(*tls, server->port);
  ExpectRefused(*attempt,
                "tls: certificate verify failed: expired (CN=127.0.0.1 notAfter Jan  2 "
                "00:00:00 2020 GMT");
}

TEST_F(TlsPeersTest, InsecureSkipVerifyConnectsAndWarnsEveryTime) {
  auto server = StartSServer({"-cert", certs_->cert_file, "-key", certs_->key_file});
  ASSERT_TRUE(server.ok()) << server.status();
  std::mutex mutex;
  std::vector<std::string> warnings;
  LogSink previous = SetLogSink([&](const LogRecord& record) {
    std::lock_guard<std::mutex> lock(mutex);
    if (record.level == LogLevel::kWarning) warnings.emplace_back(record.message);
  });
  TlsConfig config;
  config.set_insecure_skip_verify(true);  // and no CA that could verify this server
  auto tls = Tls(config);
  ASSERT_NE(tls, nullptr);
  for (int i = 0; i < 2; ++i) {
    auto attempt = Connect(*tls, server->port);
    ASSERT_EQ(attempt->listener.opened, 1) << Describe(*attempt);
    CloseAndWait(*attempt);
  }
  SetLogSink(previous);
  std::lock_guard<std::mutex> lock(mutex);
  ASSERT_EQ(warnings.size(), 2u);
  for (const std::string& warning : warnings) {
    EXPECT_TRUE(absl::StrContains(warning, "insecure_skip_verify is set")) << warning;
    EXPECT_TRUE(absl::StrContains(warning, "127.0.0.1:")) << warning;
  }
}

TEST_F(TlsPeersTest, SpkiPins) {
  auto server = StartSServer({"-cert", certs_->cert_file, "-key", certs_->key_file});
  ASSERT_TRUE(server.ok()) << server.status();
  auto server_pin = SpkiPinOf(certs_->cert_file);
  auto ca_pin = SpkiPinOf(certs_->ca_file);
  auto other_pin = SpkiPinOf(other_certs_->cert_file);
  ASSERT_TRUE(server_pin.ok() && ca_pin.ok() && other_pin.ok());

  struct Case {
    std::string name;
    std::vector<std::string> pins;
    bool pins_only;
    std::string ca_file;
    bool accepted;
  };
  const std::vector<Case> cases = {
      {"leaf pin among others", {*other_pin, *server_pin}, false, certs_->ca_file, true},
      {"CA pin", {*ca_pin}, false, certs_->ca_file, true},
      {"pin mismatch", {*other_pin}, false, certs_->ca_file, false},
      {"pins_only with an untrusted chain", {*server_pin}, true, other_certs_->ca_file, true},
      {"pins_only mismatch", {*other_pin}, true, other_certs_->ca_file, false},
      {"chain still checked with pins", {*server_pin}, false, other_certs_->ca_file, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TlsConfig config;
    config.set_ca_file(c.ca_file);
    config.set_pins_only(c.pins_only);
    for (const std::string& pin : c.pins) config.add_spki_pins(pin);
    auto tls = Tls(config);
    ASSERT_NE(tls, nullptr);
    auto attempt = Connect(*tls, server->port);
    if (c.accepted) {
      ASSERT_EQ(attempt->listener.opened, 1) << Describe(*attempt);
      CloseAndWait(*attempt);
    } else {
      ASSERT_TRUE(attempt->listener.closed.has_value());
      EXPECT_EQ(attempt->listener.opened, 0);
      EXPECT_EQ(attempt->listener.closed->code(), absl::StatusCode::kUnauthenticated)
          << Describe(*attempt);
      if (c.name != "chain still checked with pins") {
        EXPECT_TRUE(absl::StartsWith(
            attempt->listener.closed->message(),
            c.pins_only ? "tls: certificate verify failed: no certificate matches spki_pins "
                          "(pins_only checks the server's own certificate, CN=127.0.0.1, which "
                          "has "
                        : "tls: certificate verify failed: no certificate matches spki_pins "
                          "(the server's chain has "))
            << Describe(*attempt);
        EXPECT_TRUE(absl::StrContains(attempt->listener.closed->message(), *server_pin))
            << Describe(*attempt);
      } else {
        EXPECT_TRUE(absl::StrContains(attempt->listener.closed->message(), "unknown CA"))
            << Describe(*attempt);
      }
    }
  }
}

TEST_F(TlsPeersTest, PinsOnlyMatchesTheLeafNotAnAppendedCopyOfThePinnedCertificate) {
  // Certificates are public: an attacker with a key of its own (other_certs_) sends the pinned
  // certificate after its own leaf. Only the leaf's key is proven by the handshake.
  auto server_pin = SpkiPinOf(certs_->cert_file);
  auto attacker_pin = SpkiPinOf(other_certs_->cert_file);
  ASSERT_TRUE(server_pin.ok() && attacker_pin.ok());
  TlsConfig config;
  config.set_pins_only(true);
  config.add_spki_pins(*server_pin);
  auto tls = Tls(config);
  ASSERT_NE(tls, nullptr);
  {
    SCOPED_TRACE("attacker leaf + the pinned certificate in its chain");
    auto attacker = StartSServer({"-cert", other_certs_->cert_file, "-key", other_certs_->key_file,
                                  "-cert_chain", certs_->cert_file});
    ASSERT_TRUE(attacker.ok()) << attacker.status();
    auto attempt = Connect(*tls, attacker->port);
    ASSERT_NO_FATAL_FAILURE(ExpectRefused(*attempt, "tls: certificate verify failed: "));
    EXPECT_TRUE(absl::StrContains(attempt->listener.closed->message(), *server_pin))
        << "the error names the pin: " << Describe(*attempt);
    EXPECT_TRUE(absl::StrContains(attempt->listener.closed->message(), *attacker_pin))
        << "and what the leaf has: " << Describe(*attempt);
  }
  {
    SCOPED_TRACE("the real server");
    auto real = StartSServer({"-cert", certs_->cert_file, "-key", certs_->key_file});
    ASSERT_TRUE(real.ok()) << real.status();
    auto attempt = Connect(*tls, real->port);
    ASSERT_EQ(attempt->listener.opened, 1) << Describe(*attempt);
    CloseAndWait(*attempt);
  }
}

TEST_F(TlsPeersTest, SpkiPinIsTheHashOfTheCertificatesOwnSpkiBytes) {
  // The pin the openssl CLI computes (tls.proto's recipe) must match, for every key encoding: RSA,
  // EC P-256, and EC P-256 with a compressed point (a re-encoded key would be uncompressed).
  struct KeyType {
    std::string name;
    std::string make_key;  // shell, writes server.key
  };
  const std::vector<KeyType> types = {
      {"RSA 2048", "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server.key"},
      {"EC P-256", "openssl ecparam -name prime256v1 -genkey -noout -out server.key"},
      {"EC P-256 compressed point",
       "openssl ecparam -name prime256v1 -genkey -noout -out plain.key && openssl ec -in "
       "plain.key -conv_form compressed -out server.key"},
  };
  for (const KeyType& type : types) {
    SCOPED_TRACE(type.name);
    std::string dir = NewDir("tls_spki");
    auto made = RunCommand(
        absl::StrCat("set -e; cd '", dir, "'; ", type.make_key,
                     " 2>&1; openssl req -new -x509 -key server.key -out server.pem -days 2 -subj "
                     "'/CN=127.0.0.1' -addext subjectAltName=IP:127.0.0.1 2>&1"));
    ASSERT_TRUE(made.ok()) << made.status();
    auto pin = SpkiPinOf(dir + "/server.pem");
    ASSERT_TRUE(pin.ok()) << pin.status();
    auto server = StartSServer({"-cert", dir + "/server.pem", "-key", dir + "/server.key"});
    ASSERT_TRUE(server.ok()) << server.status();
    for (bool pins_only : {true, false}) {
      SCOPED_TRACE(pins_only ? "pins_only" : "with chain verification");
      TlsConfig config;
      config.set_pins_only(pins_only);
      if (!pins_only) config.set_ca_file(dir + "/server.pem");  // self-signed: its own anchor
      config.add_spki_pins(*pin);
      auto tls = Tls(config);
      ASSERT_NE(tls, nullptr);
      auto attempt = Connect(*tls, server->port);
      ASSERT_EQ(attempt->listener.opened, 1) << Describe(*attempt) << " (pin " << *pin << ")";
      CloseAndWait(*attempt);
    }
  }
}

TEST_F(TlsPeersTest, CloseIsBoundedWhenThePeerStopsReading) {
  auto server = StartSServer({"-cert", certs_->cert_file, "-key", certs_->key_file});
  ASSERT_TRUE(server.ok()) << server.status();
  TlsConfig config;
  config.set_ca_file(certs_->ca_file);
  config.mutable_close_timeout()->set_nanos(200 * 1000 * 1000);
  auto tls = Tls(config);
  ASSERT_NE(tls, nullptr);
  auto attempt = Connect(*tls, server->port);
  ASSERT_EQ(attempt->listener.opened, 1) << Describe(*attempt);

  server->process->Signal(SIGSTOP);  // reads nothing more, for good
  // Fill the kernel's buffers and the queues below until tls holds records it cannot hand down.
  const std::string chunk(64 * 1024, 'x');
  bool full = false;
  ASSERT_TRUE(RunUntil(*loop_, [&] {
    for (int i = 0; i < 4096 && !full; ++i) {
      absl::Status written = attempt->transport->Write(chunk);
      if (absl::IsResourceExhausted(written)) {
        full = true;
      } else if (!written.ok()) {
        ADD_FAILURE() << written;
        return true;
      }
    }
    return full;
  }));
  ASSERT_TRUE(full);
  attempt->transport->Close();
  ASSERT_TRUE(RunUntil(*loop_, [&] { return attempt->listener.closed.has_value(); }))
      << "Close() never completed";
  server->process->Signal(SIGCONT);
  EXPECT_EQ(attempt->listener.closed->code(), absl::StatusCode::kDeadlineExceeded)
      << Describe(*attempt);
  EXPECT_TRUE(
      absl::StartsWith(attempt->listener.closed->message(), "tls: close timed out after 200ms: "))
      << Describe(*attempt);
  EXPECT_EQ(attempt->listener.closed_count, 1);
}

TEST_F(TlsPeersTest, PskWithTheRightKeyAndTheWrongOne) {
  // As a Tencent key device on 8883: identity productId+deviceName, key = the decoded device
  // secret.
  const std::string key =
      "0123456789abcdef";  // the decoded secret of the worked example in the docs
  const std::string key_hex = absl::BytesToHexString(key);
  auto server = StartSServer({"-nocert", "-psk", key_hex, "-psk_identity", "ABCDEFGHIJdev01",
                              "-cipher", "PSK-AES128-CBC-SHA", "-tls1_2"});
  ASSERT_TRUE(server.ok()) << server.status();

  for (bool base64 : {false, true}) {
    SCOPED_TRACE(base64 ? "key_base64" : "key_hex");
    TlsConfig config;
    config.mutable_psk()->set_identity("ABCDEFGHIJdev01");
    config.set_server_name(
        "ABCDEFGHIJ.iotcloud.tencentdevices.com");  // SNI as the device would send it
    if (base64) {
      config.mutable_psk()->set_key_base64("MDEyMzQ1Njc4OWFiY2RlZg==");
    } else {
      config.mutable_psk()->set_key_hex(key_hex);
    }
    auto tls = Tls(config);
    ASSERT_NE(tls, nullptr);
    auto attempt = Connect(*tls, server->port);
    ASSERT_EQ(attempt->listener.opened, 1) << Describe(*attempt);
    EXPECT_TRUE(absl::StrContains(attempt->TlsStage(), "TLSv1.2 TLS_PSK_WITH_AES_128_CBC_SHA"))
        << attempt->TlsStage();
    // Bytes flow: s_server sends what arrives on its stdin.
    ASSERT_TRUE(server->process->WriteStdin("from-server\n").ok());
    ASSERT_TRUE(
        RunUntil(*loop_, [&] { return absl::StrContains(attempt->listener.data, "from-server"); }));
    CloseAndWait(*attempt);
  }

  TlsConfig wrong;
  wrong.mutable_psk()->set_identity("ABCDEFGHIJdev01");
  wrong.mutable_psk()->set_key_hex(absl::BytesToHexString("fedcba9876543210"));
  auto tls = Tls(wrong);
  ASSERT_NE(tls, nullptr);
  auto attempt = Connect(*tls, server->port);
  ExpectRefused(*attempt, "tls: handshake failed: ");
  EXPECT_TRUE(absl::StrContains(attempt->listener.closed->message(), "wrong PSK key"))
      << Describe(*attempt);
}

TEST_F(TlsPeersTest, SessionIsResumedOnReconnect) {
  for (TlsConfig::Version version : {TlsConfig::TLS1_3, TlsConfig::TLS1_2}) {
    SCOPED_TRACE(TlsConfig::Version_Name(version));
    auto server =
        StartSServer({"-cert", certs_->cert_file, "-key", certs_->key_file, "-alpn", "mqtt"});
    ASSERT_TRUE(server.ok()) << server.status();
    TlsConfig config;
    config.set_ca_file(certs_->ca_file);
    config.set_max_version(version);
    config.add_alpn("mqtt");
    auto tls = Tls(config);
    ASSERT_NE(tls, nullptr);
    for (int i = 0; i < 3; ++i) {
      auto attempt = Connect(*tls, server->port);
      ASSERT_EQ(attempt->listener.opened, 1) << Describe(*attempt);
      EXPECT_TRUE(absl::StrContains(attempt->TlsStage(), i == 0 ? "resumed=no" : "resumed=yes"))
          << "connection " << i << ": " << attempt->TlsStage();
      EXPECT_TRUE(absl::StrContains(attempt->TlsStage(), "alpn=mqtt")) << attempt->TlsStage();
      // TLS 1.3 tickets follow the handshake: once these bytes (sent after them) are here, they
      // were read.
      ASSERT_TRUE(server->process->WriteStdin("tick\n").ok());
      ASSERT_TRUE(
          RunUntil(*loop_, [&] { return absl::StrContains(attempt->listener.data, "tick"); }));
      CloseAndWait(*attempt);
    }
  }
}

TEST_F(TlsPeersTest, MqttOverMosquittoTls) {
  MosquittoBroker::Options options;
  options.cert_file = certs_->cert_file;
  options.key_file = certs_->key_file;
  auto broker = MosquittoBroker::Start(options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  TlsConfig config;
  config.set_ca_file(certs_->ca_file);
  auto tls = Tls(config);
  ASSERT_NE(tls, nullptr);
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    SCOPED_TRACE(host);
    auto attempt = Connect(*tls, (*broker)->tls_port(), host);
    ASSERT_EQ(attempt->listener.opened, 1) << Describe(*attempt);
    ASSERT_TRUE(attempt->transport->Write(kConnect).ok());
    ASSERT_TRUE(RunUntil(
        *loop_, [&] { return attempt->listener.data.size() >= 4 || attempt->listener.closed; }));
    EXPECT_EQ(attempt->listener.data, kConnackAccepted);
    CloseAndWait(*attempt);
  }
}

TEST_F(TlsPeersTest, MosquittoRequireCertificate) {
  MosquittoBroker::Options options;
  options.cert_file = certs_->cert_file;
  options.key_file = certs_->key_file;
  options.ca_file = certs_->ca_file;
  options.require_certificate = true;
  auto broker = MosquittoBroker::Start(options);
  ASSERT_TRUE(broker.ok()) << broker.status();

  {
    SCOPED_TRACE("without a client certificate");
    TlsConfig config;
    config.set_ca_file(certs_->ca_file);
    auto tls = Tls(config);
    ASSERT_NE(tls, nullptr);
    auto attempt = Connect(*tls, (*broker)->tls_port());
    // TLS 1.3: the client's handshake ends before the server checks for a certificate, so the
    // refusal may come right after OnOpen, as an alert.
    if (attempt->listener.opened == 1) (void)attempt->transport->Write(kConnect);
    ASSERT_TRUE(RunUntil(*loop_, [&] { return attempt->listener.closed.has_value(); }));
    EXPECT_EQ(attempt->listener.data, "");
    EXPECT_EQ(attempt->listener.closed->code(), absl::StatusCode::kUnauthenticated)
        << Describe(*attempt);
    EXPECT_TRUE(absl::StrContains(attempt->listener.closed->message(), "CERTIFICATE_REQUIRED"))
        << Describe(*attempt);
    EXPECT_TRUE(
        absl::StrContains(attempt->listener.closed->message(), "set cert_file and key_file"))
        << Describe(*attempt);
  }
  {
    SCOPED_TRACE("with a client certificate");
    auto client = MakeClientCertificate(*certs_, NewDir("tls_client"), "device-1");
    ASSERT_TRUE(client.ok()) << client.status();
    TlsConfig config;
    config.set_ca_file(certs_->ca_file);
    config.set_cert_file(client->first);
    config.set_key_file(client->second);
    auto tls = Tls(config);
    ASSERT_NE(tls, nullptr);
    auto attempt = Connect(*tls, (*broker)->tls_port());
    ASSERT_EQ(attempt->listener.opened, 1) << Describe(*attempt);
    ASSERT_TRUE(attempt->transport->Write(kConnect).ok());
    ASSERT_TRUE(RunUntil(
        *loop_, [&] { return attempt->listener.data.size() >= 4 || attempt->listener.closed; }));
    EXPECT_EQ(attempt->listener.data, kConnackAccepted) << Describe(*attempt);
    CloseAndWait(*attempt);
  }
}

TEST_F(TlsPeersTest, PlainTcpPortIsAHandshakeFailure) {
  MosquittoBroker::Options options;
  auto broker = MosquittoBroker::Start(options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  TlsConfig config;
  config.set_ca_file(certs_->ca_file);
  auto tls = Tls(config);
  ASSERT_NE(tls, nullptr);
  auto attempt = Connect(*tls, (*broker)->tcp_port());
  ASSERT_TRUE(attempt->listener.closed.has_value());
  EXPECT_EQ(attempt->listener.opened, 0);
  EXPECT_TRUE(absl::StartsWith(attempt->listener.closed->message(), "tls: handshake failed: "))
      << Describe(*attempt);
}

}  // namespace
}  // namespace testing
}  // namespace hublink
