// What one pipeline's tls layer builds once and shares across its connections: the SSL_CTX (trust
// anchors from PEM, the client certificate, the PSK, versions and ciphers), the parsed SPKI pins,
// the ALPN list and the session cache; and the handling of the secrets that go into it, wiped
// from memory once no longer needed. Internal to transports/tls; the engine is tls_transport.cc.
#ifndef HUBLINK_TRANSPORTS_TLS_TLS_CONTEXT_H_
#define HUBLINK_TRANSPORTS_TLS_TLS_CONTEXT_H_

#include <openssl/sha.h>
#include <openssl/ssl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "transports/tls/tls.pb.h"

namespace hublink {
namespace tls_internal {

// The SHA-256 of a certificate's SubjectPublicKeyInfo.
using Pin = std::array<uint8_t, SHA256_DIGEST_LENGTH>;

// Overwrites `size` bytes at `data` with zeros, in a way the compiler keeps (and tells the test
// seam of tls_transport.h).
void WipeBytes(void* data, size_t size);
void WipeString(std::string& secret);

// Secret bytes (a PSK key) in one heap block of their own, wiped when replaced or destroyed.
class SecretBytes {
 public:
  SecretBytes() = default;
  ~SecretBytes() { Wipe(); }
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  void Assign(absl::string_view bytes);
  void Wipe();
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t size_ = 0;
};

// True for an IPv4 or IPv6 literal (no brackets).
bool IsIpLiteral(absl::string_view host);

// SHA-256 of the certificate's SubjectPublicKeyInfo, the DER bytes exactly as the certificate
// carries them (what `openssl x509 -pubkey | openssl pkey -pubin -outform DER` hashes).
absl::StatusOr<Pin> SpkiSha256(X509* cert);
// "sha256/<base64>", the form spki_pins accepts.
std::string PinToString(const Pin& pin);

// Everything one pipeline's TLS layer shares across its connections. Transports hold it by
// shared_ptr, so it outlives them whatever the owner does with the ConfiguredTransport.
struct TlsShared {
  ~TlsShared();

  transports::TlsConfig config;  // with the PSK key text wiped out
  bssl::UniquePtr<SSL_CTX> ctx;
  std::vector<Pin> pins;
  std::string alpn_wire;
  SecretBytes psk_key;  // the decoded key; `config` keeps no copy of it

  // A session to offer to `key`, if one is cached. Single-use (TLS 1.3) sessions leave the cache.
  bssl::UniquePtr<SSL_SESSION> TakeSession(const std::string& key);
  void PutSession(const std::string& key, bssl::UniquePtr<SSL_SESSION> session);

 private:
  // A pipeline may be used from several loops. std::mutex: see plugins/event_loop.h.
  std::mutex mutex_;
  absl::flat_hash_map<std::string, bssl::UniquePtr<SSL_SESSION>> sessions_;  // guarded by mutex_
};

// The engine's BoringSSL callbacks, installed on the SSL_CTX.
struct EngineCallbacks {
  ssl_verify_result_t (*verify)(SSL* ssl, uint8_t* out_alert);
  int (*new_session)(SSL* ssl, SSL_SESSION* session);
};

// Checks `config` and builds what its connections share. Errors are kInvalidArgument naming the
// field, or the errno-mapped code of a file that cannot be read (docs/errors.md).
absl::StatusOr<std::shared_ptr<TlsShared>> BuildTlsShared(const transports::TlsConfig& config,
                                                          const EngineCallbacks& callbacks);

}  // namespace tls_internal
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_TLS_TLS_CONTEXT_H_
