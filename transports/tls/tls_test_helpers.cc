#include "transports/tls/tls_test_helpers.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "plugins/registry.h"
#include "transports/tcp/tcp.pb.h"
#include "transports/tcp/tcp_transport.h"
#include "transports/tls/tls_transport.h"

namespace hublink {
namespace testing {
namespace {

absl::StatusOr<std::unique_ptr<ConfiguredTransport>> Configure(
    absl::string_view name, const google::protobuf::Message& config) {
  Registry::Builder builder;
  RegisterTcpTransport(builder);
  RegisterTlsTransport(builder);
  absl::StatusOr<Registry> registry = std::move(builder).Build();
  if (!registry.ok()) return registry.status();
  absl::StatusOr<const TransportFactory*> factory = registry->FindTransport(name);
  if (!factory.ok()) return factory.status();
  return (*factory)->Configure(config);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ConfiguredTransport>> ConfigureTls(
    const transports::TlsConfig& config) {
  return Configure("tls", config);
}

absl::StatusOr<std::unique_ptr<ConfiguredTransport>> ConfigureTcp() {
  return Configure("tcp", transports::TcpConfig());
}

std::string Attempt::TlsStage() const {
  for (const std::string& stage : stages) {
    if (absl::StartsWith(stage, "tls: ")) return stage;
  }
  return "";
}

std::unique_ptr<Attempt> ConnectTls(EventLoop& loop, ConfiguredTransport& tcp,
                                    ConfiguredTransport& tls, const std::string& host, int port,
                                    absl::Duration timeout) {
  auto attempt = std::make_unique<Attempt>(loop, host, port);
  absl::StatusOr<std::unique_ptr<Transport>> lower = tcp.Create(attempt->context, nullptr);
  if (!lower.ok()) {
    attempt->listener.closed = lower.status();
    return attempt;
  }
  absl::StatusOr<std::unique_ptr<Transport>> top =
      tls.Create(attempt->context, std::move(lower).value());
  if (!top.ok()) {
    attempt->listener.closed = top.status();
    return attempt;
  }
  attempt->transport = std::move(top).value();
  attempt->transport->Open(&attempt->listener);
  RecordingListener& l = attempt->listener;
  RunUntil(
      loop, [&] { return l.opened > 0 || l.closed.has_value(); }, timeout);
  return attempt;
}

std::string NewDir(const std::string& name) {
  static std::atomic<int> counter{0};
  std::string dir = absl::StrCat(TempDir(), "/", name, "_", getpid(), "_", counter.fetch_add(1));
  mkdir(dir.c_str(), 0755);
  return dir;
}

absl::StatusOr<std::pair<std::string, std::string>> MakeClientCertificate(
    const TestCertificates& certs, const std::string& dir, const std::string& cn) {
  std::string cert = dir + "/client.pem";
  std::string key = dir + "/client.key";
  absl::StatusOr<std::string> ran = RunCommand(absl::StrCat(
      "set -e; cd '", dir,
      "'; openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj '/CN=", cn,
      "' 2>&1; openssl x509 -req -in client.csr -CA '", certs.ca_file, "' -CAkey '",
      certs.ca_key_file, "' -CAcreateserial -out client.pem -days 2 2>&1"));
  if (!ran.ok()) return ran.status();
  return std::make_pair(cert, key);
}

absl::StatusOr<std::string> MakeExpiredCertificate(const TestCertificates& certs,
                                                   const std::string& dir) {
  // `openssl x509` (3.0) cannot set a past notBefore; `openssl ca` can, with a minimal config.
  absl::StatusOr<std::string> ran = RunCommand(absl::StrCat(
      "set -e; cd '", dir, "'; printf 'subjectAltName=IP:127.0.0.1\\n' > expired.ext;",
      "printf '[ca]\\ndefault_ca = d\\n[d]\\ndatabase = index.txt\\nnew_certs_dir = .\\nserial = "
      "serial\\n"
      "default_md = sha256\\npolicy = p\\nunique_subject = no\\n[p]\\ncommonName = supplied\\n' > "
      "ca.cnf;",
      ": > index.txt; echo 01 > serial;",
      "openssl req -newkey rsa:2048 -nodes -keyout expired.key -out expired.csr -subj "
      "'/CN=127.0.0.1' 2>&1;",
      "openssl ca -batch -config ca.cnf -cert '", certs.ca_file, "' -keyfile '", certs.ca_key_file,
      "' -in expired.csr -out expired.pem -startdate 20200101000000Z -enddate 20200102000000Z "
      "-extfile expired.ext -notext 2>&1"));
  if (!ran.ok()) return ran.status();
  return dir + "/expired.pem";
}

absl::StatusOr<std::string> SpkiPinOf(const std::string& cert_file) {
  absl::StatusOr<std::string> pin =
      RunCommand(absl::StrCat("openssl x509 -in '", cert_file,
                              "' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst "
                              "-sha256 -binary | base64"));
  if (!pin.ok()) return pin.status();
  return absl::StrCat("sha256/", absl::StripAsciiWhitespace(*pin));
}

}  // namespace testing
}  // namespace hublink
