// Helpers shared by the TLS tests: configuring tcp/tls directly (no pipeline text), one connection
// attempt with everything it needs, and certificate variants made with the openssl CLI.
#ifndef HUBLINK_TRANSPORTS_TLS_TLS_TEST_HELPERS_H_
#define HUBLINK_TRANSPORTS_TLS_TLS_TEST_HELPERS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "plugins/connect_context.h"
#include "plugins/event_loop.h"
#include "plugins/transport.h"
#include "tests/test_util.h"
#include "transports/tls/tls.pb.h"

namespace hublink {
namespace testing {

absl::StatusOr<std::unique_ptr<ConfiguredTransport>> ConfigureTls(
    const transports::TlsConfig& config);
absl::StatusOr<std::unique_ptr<ConfiguredTransport>> ConfigureTcp();

// One attempt: context, listener, the top transport, and the stages reported.
struct Attempt {
  Attempt(EventLoop& loop, const std::string& host, int port)
      : context(loop, host, static_cast<uint16_t>(port)) {
    context.set_stage_observer([this](absl::string_view layer, absl::string_view detail) {
      stages.push_back(absl::StrCat(layer, ": ", detail));
    });
  }
  ConnectContext context;
  RecordingListener listener;
  std::unique_ptr<Transport> transport;
  std::vector<std::string> stages;

  // The "tls: ..." stage line, or "".
  std::string TlsStage() const;
};

// tcp > tls to host:port, opened and driven until open or closed (or `timeout`).
std::unique_ptr<Attempt> ConnectTls(EventLoop& loop, ConfiguredTransport& tcp,
                                    ConfiguredTransport& tls, const std::string& host, int port,
                                    absl::Duration timeout = absl::Seconds(10));

// A fresh directory under TempDir().
std::string NewDir(const std::string& name);

// A client certificate for `cn` signed by the CA in `certs`: returns {cert, key} paths in `dir`.
absl::StatusOr<std::pair<std::string, std::string>> MakeClientCertificate(
    const TestCertificates& certs, const std::string& dir, const std::string& cn);
// A server certificate for 127.0.0.1 from the CA in `certs`, valid only during January 1, 2020.
// Returns its path; its key is <dir>/expired.key.
absl::StatusOr<std::string> MakeExpiredCertificate(const TestCertificates& certs,
                                                   const std::string& dir);
// "sha256/<base64>" of the certificate's SubjectPublicKeyInfo, computed by the openssl CLI.
absl::StatusOr<std::string> SpkiPinOf(const std::string& cert_file);

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_TLS_TLS_TEST_HELPERS_H_
