#include "transports/tls/tls_context.h"

#include <arpa/inet.h>
#include <openssl/base64.h>
#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "plugins/duration.h"
#include "plugins/read_file.h"
#include "plugins/status_macros.h"
#include "transports/tls/tls_diagnostics.h"
#include "transports/tls/tls_transport.h"

namespace hublink {
namespace tls_internal {
namespace {

using transports::TlsConfig;

constexpr char kSystemRoots[] = "/etc/ssl/certs/ca-certificates.crt";
constexpr char kDefaultPskCiphers[] = "PSK-AES128-CBC-SHA";
// Config files larger than this are not certificates or keys.
constexpr size_t kMaxConfigFileBytes = 16 << 20;
// Sessions kept per pipeline; a pipeline talks to one or two servers, so this only bounds misuse.
constexpr size_t kMaxCachedSessions = 64;

WipeObserver wipe_observer = nullptr;

// Wipes a string on every return path.
class WipeOnExit {
 public:
  explicit WipeOnExit(std::string& secret) : secret_(secret) {}
  ~WipeOnExit() { WipeString(secret_); }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;

 private:
  std::string& secret_;
};

// The whole file, read by the core's reader (plugins/read_file.h) so that errors have the words
// and the errno-mapped codes of docs/errors.md: "tls: ca_file: /etc/x.pem: No such file or
// directory" (kNotFound). With `secret` (a private key) every copy made on the way is wiped; the
// caller wipes the result.
absl::StatusOr<std::string> ReadConfigFile(absl::string_view field, const std::string& path,
                                           bool secret = false) {
  ReadFileOptions options;
  options.max_bytes = kMaxConfigFileBytes;
  options.secret = secret;
  return ReadFileWithPrefix(path, absl::StrCat("tls: ", field, ": ", path), options);
}

// Adds every certificate in PEM `text` to `store`; `what` names the source in errors.
absl::Status AddPemCertificates(X509_STORE* store, absl::string_view text, absl::string_view what) {
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  ERR_clear_error();
  STACK_OF(X509_INFO)* infos = PEM_X509_INFO_read_bio(bio.get(), nullptr, nullptr, nullptr);
  if (infos == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls: ", what, ": bad PEM (", DrainErrors(), ")"));
  }
  int added = 0;
  for (size_t i = 0; i < sk_X509_INFO_num(infos); ++i) {
    X509_INFO* info = sk_X509_INFO_value(infos, i);
    if (info->x509 != nullptr && X509_STORE_add_cert(store, info->x509)) ++added;
  }
  sk_X509_INFO_pop_free(infos, X509_INFO_free);
  ERR_clear_error();  // duplicates are not errors
  if (added == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tls: ", what, ": no PEM certificate found (expected -----BEGIN CERTIFICATE-----)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Pin> ParsePin(absl::string_view text, int index) {
  absl::string_view pin = absl::StripAsciiWhitespace(text);
  absl::ConsumePrefix(&pin, "sha256/");
  std::string bytes;
  if (pin.size() == 2 * SHA256_DIGEST_LENGTH &&
      pin.find_first_not_of("0123456789abcdefABCDEF") == absl::string_view::npos) {
    bytes = absl::HexStringToBytes(pin);
  } else if (!absl::Base64Unescape(pin, &bytes)) {
    bytes.clear();
  }
  if (bytes.size() != SHA256_DIGEST_LENGTH) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls: spki_pins[", index, "]: \"", text,
                     "\" is not a SHA-256 (base64 of 32 bytes, optionally after \"sha256/\", or 64 "
                     "hex digits)"));
  }
  Pin out;
  std::memcpy(out.data(), bytes.data(), out.size());
  return out;
}

// Wipes the PSK key text (key_hex / key_base64) from a config and clears it.
void WipePskKeyText(TlsConfig& config) {
  if (!config.has_psk()) return;
  TlsConfig::Psk* psk = config.mutable_psk();
  if (psk->key_case() == TlsConfig::Psk::kKeyHex) WipeString(*psk->mutable_key_hex());
  if (psk->key_case() == TlsConfig::Psk::kKeyBase64) WipeString(*psk->mutable_key_base64());
  psk->clear_key();
}

uint16_t ToProtocolVersion(TlsConfig::Version version, uint16_t fallback) {
  switch (version) {
    case TlsConfig::TLS1_2:
      return TLS1_2_VERSION;
    case TlsConfig::TLS1_3:
      return TLS1_3_VERSION;
    default:
      return fallback;
  }
}

unsigned PskClientCallback(SSL* ssl, const char* /*hint*/, char* identity,
                           unsigned max_identity_len, uint8_t* psk, unsigned max_psk_len) {
  auto* shared = static_cast<TlsShared*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  const std::string& id = shared->config.psk().identity();
  const SecretBytes& key = shared->psk_key;
  if (id.size() + 1 > max_identity_len || key.size() > max_psk_len) return 0;
  std::memcpy(identity, id.c_str(), id.size() + 1);
  std::memcpy(psk, key.data(), key.size());  // BoringSSL wipes its copy
  return static_cast<unsigned>(key.size());
}

// A server_name is both sent as SNI and checked against the certificate: refuse one that either
// would not carry whole (a NUL byte, more than 255 bytes) or that BoringSSL would refuse to check.
absl::Status CheckServerName(const std::string& name) {
  if (name.empty()) return absl::OkStatus();  // the endpoint host
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls: server_name: \"", absl::CHexEscape(name), "\" ", why));
  };
  if (name.find('\0') != std::string::npos) return invalid("contains a NUL byte");
  bssl::UniquePtr<X509_VERIFY_PARAM> param(X509_VERIFY_PARAM_new());
  if (param == nullptr) return absl::InternalError("tls: X509_VERIFY_PARAM_new failed");
  const bool ip = IsIpLiteral(name);
  const int accepted = ip ? X509_VERIFY_PARAM_set1_ip_asc(param.get(), name.c_str())
                          : X509_VERIFY_PARAM_set1_host(param.get(), name.data(), name.size());
  ERR_clear_error();
  if (!accepted)
    return invalid("is not a host name or IP address a certificate can be checked for");
  if (!ip && name.size() > 255) return invalid("is longer than 255 bytes, the SNI limit");
  return absl::OkStatus();
}

}  // namespace

// Overwrites `size` bytes at `data` with zeros, in a way the compiler keeps.
void WipeBytes(void* data, size_t size) {
  if (size == 0) return;
  OPENSSL_cleanse(data, size);
  if (wipe_observer != nullptr) wipe_observer(static_cast<const uint8_t*>(data), size);
}

void WipeString(std::string& secret) {
  if (!secret.empty()) WipeBytes(&secret[0], secret.size());
  secret.clear();
}

void SecretBytes::Assign(absl::string_view bytes) {
  Wipe();
  if (bytes.empty()) return;
  data_.reset(new uint8_t[bytes.size()]);
  std::memcpy(data_.get(), bytes.data(), bytes.size());
  size_ = bytes.size();
}

void SecretBytes::Wipe() {
  if (data_ != nullptr) WipeBytes(data_.get(), size_);
  data_.reset();
  size_ = 0;
}

bool IsIpLiteral(absl::string_view host) {
  if (host.find('\0') != absl::string_view::npos) return false;
  std::string h(host);
  in6_addr addr;
  return inet_pton(AF_INET, h.c_str(), &addr) == 1 || inet_pton(AF_INET6, h.c_str(), &addr) == 1;
}

// SHA-256 of the certificate's SubjectPublicKeyInfo, the DER bytes exactly as the certificate
// carries them (what `openssl x509 -pubkey | openssl pkey -pubin -outform DER` hashes); no key is
// parsed or re-encoded, so any key type and any point encoding pins alike.
absl::StatusOr<Pin> SpkiSha256(X509* cert) {
  uint8_t* der = nullptr;
  int der_len = i2d_X509(cert, &der);
  if (der_len <= 0) {
    ERR_clear_error();
    return absl::InternalError("cannot encode the certificate");
  }
  bssl::UniquePtr<uint8_t> der_owner(der);
  CBS input, certificate, tbs, skipped, spki;
  CBS_init(&input, der, static_cast<size_t>(der_len));
  // RFC 5280:
  //   Certificate    ::= SEQUENCE { tbsCertificate TBSCertificate, ... }
  //   TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
  //                                 validity, subject, subjectPublicKeyInfo, ... }
  if (!CBS_get_asn1(&input, &certificate, CBS_ASN1_SEQUENCE) ||
      !CBS_get_asn1(&certificate, &tbs, CBS_ASN1_SEQUENCE) ||
      !CBS_get_optional_asn1(&tbs, &skipped, nullptr,
                             CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 0) ||
      !CBS_get_asn1(&tbs, &skipped, CBS_ASN1_INTEGER) ||
      !CBS_get_asn1(&tbs, &skipped, CBS_ASN1_SEQUENCE) ||
      !CBS_get_asn1(&tbs, &skipped, CBS_ASN1_SEQUENCE) ||
      !CBS_get_asn1(&tbs, &skipped, CBS_ASN1_SEQUENCE) ||
      !CBS_get_asn1(&tbs, &skipped, CBS_ASN1_SEQUENCE) ||
      !CBS_get_asn1_element(&tbs, &spki, CBS_ASN1_SEQUENCE)) {
    return absl::InternalError("cannot find the SubjectPublicKeyInfo in the certificate");
  }
  Pin pin;
  SHA256(CBS_data(&spki), CBS_len(&spki), pin.data());
  return pin;
}

std::string PinToString(const Pin& pin) {
  return absl::StrCat("sha256/", absl::Base64Escape(absl::string_view(
                                     reinterpret_cast<const char*>(pin.data()), pin.size())));
}

// When Configure() failed before taking the key out.
TlsShared::~TlsShared() { WipePskKeyText(config); }

bssl::UniquePtr<SSL_SESSION> TlsShared::TakeSession(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return nullptr;
  if (SSL_SESSION_should_be_single_use(it->second.get())) {
    bssl::UniquePtr<SSL_SESSION> session = std::move(it->second);
    sessions_.erase(it);
    return session;
  }
  SSL_SESSION_up_ref(it->second.get());
  return bssl::UniquePtr<SSL_SESSION>(it->second.get());
}

void TlsShared::PutSession(const std::string& key, bssl::UniquePtr<SSL_SESSION> session) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (sessions_.size() >= kMaxCachedSessions && !sessions_.contains(key)) sessions_.clear();
  sessions_[key] = std::move(session);
}

absl::StatusOr<std::shared_ptr<TlsShared>> BuildTlsShared(const TlsConfig& config,
                                                          const EngineCallbacks& callbacks) {
  auto shared = std::make_shared<TlsShared>();
  shared->config = config;
  const bool psk = config.has_psk();

  if (config.insecure_skip_verify() && config.spki_pins_size() > 0) {
    return absl::InvalidArgumentError(
        "tls: insecure_skip_verify and spki_pins contradict each other; to check only the pins, "
        "set pins_only instead of insecure_skip_verify");
  }
  if (config.pins_only() && config.spki_pins_size() == 0) {
    return absl::InvalidArgumentError("tls: pins_only is set but spki_pins is empty");
  }
  if (config.cert_file().empty() != config.key_file().empty()) {
    return absl::InvalidArgumentError(config.cert_file().empty()
                                          ? "tls: key_file is set but cert_file is not"
                                          : "tls: cert_file is set but key_file is not");
  }
  HUBLINK_RETURN_IF_ERROR(CheckServerName(config.server_name()));
  for (int i = 0; i < config.spki_pins_size(); ++i) {
    HUBLINK_ASSIGN_OR_RETURN(Pin pin, ParsePin(config.spki_pins(i), i));
    shared->pins.push_back(pin);
  }
  for (int i = 0; i < config.alpn_size(); ++i) {
    const std::string& proto = config.alpn(i);
    if (proto.empty() || proto.size() > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("tls: alpn[", i, "]: must be 1..255 bytes, got ", proto.size()));
    }
    shared->alpn_wire.push_back(static_cast<char>(proto.size()));
    shared->alpn_wire += proto;
  }

  shared->ctx.reset(SSL_CTX_new(TLS_method()));
  SSL_CTX* ctx = shared->ctx.get();
  if (ctx == nullptr) return absl::InternalError(absl::StrCat("tls: SSL_CTX_new: ", DrainErrors()));
  SSL_CTX_set_app_data(ctx, shared.get());

  uint16_t min_version = ToProtocolVersion(config.min_version(), TLS1_2_VERSION);
  uint16_t max_version =
      ToProtocolVersion(config.max_version(), psk ? TLS1_2_VERSION : TLS1_3_VERSION);
  if (psk && max_version > TLS1_2_VERSION) {
    return absl::InvalidArgumentError(
        "tls: psk works with TLS 1.2 only (this BoringSSL has no TLS 1.3 external PSK); set "
        "max_version to TLS1_2 or leave it unset");
  }
  if (min_version > max_version) {
    return absl::InvalidArgumentError("tls: min_version is above max_version");
  }
  SSL_CTX_set_min_proto_version(ctx, min_version);
  SSL_CTX_set_max_proto_version(ctx, max_version);

  std::string ciphers = !config.cipher_list().empty() ? config.cipher_list()
                        : psk                         ? kDefaultPskCiphers
                                                      : "";
  if (!ciphers.empty() && !SSL_CTX_set_strict_cipher_list(ctx, ciphers.c_str())) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls: cipher_list: \"", ciphers, "\" is not valid: ", DrainErrors()));
  }

  if (psk) {
    const TlsConfig::Psk& p = config.psk();
    if (p.identity().empty() || p.identity().size() > PSK_MAX_IDENTITY_LEN) {
      return absl::InvalidArgumentError(
          absl::StrCat("tls: psk.identity: must be 1..", PSK_MAX_IDENTITY_LEN, " bytes"));
    }
    std::string decoded;
    WipeOnExit wipe_decoded(decoded);
    if (p.key_case() == TlsConfig::Psk::kKeyHex) {
      absl::string_view hex = p.key_hex();
      if (hex.size() % 2 != 0 ||
          hex.find_first_not_of("0123456789abcdefABCDEF") != absl::string_view::npos) {
        return absl::InvalidArgumentError("tls: psk.key_hex: not an even number of hex digits");
      }
      decoded = absl::HexStringToBytes(hex);
    } else if (p.key_case() == TlsConfig::Psk::kKeyBase64) {
      if (!absl::Base64Unescape(p.key_base64(), &decoded)) {
        return absl::InvalidArgumentError("tls: psk.key_base64: not valid base64");
      }
    }
    shared->psk_key.Assign(decoded);
    // The layer's copy of the config keeps the identity only; the caller owns its own config.
    WipePskKeyText(shared->config);
    if (shared->psk_key.empty() || shared->psk_key.size() > PSK_MAX_PSK_LEN) {
      return absl::InvalidArgumentError(absl::StrCat("tls: psk: set key_hex or key_base64 (1..",
                                                     PSK_MAX_PSK_LEN, " bytes once decoded)"));
    }
    if (!shared->pins.empty()) {
      return absl::InvalidArgumentError(
          "tls: spki_pins cannot apply with psk: PSK cipher suites carry no certificate");
    }
    SSL_CTX_set_psk_client_callback(ctx, PskClientCallback);
  }

  // Trust anchors: only needed when a chain will be verified.
  const bool verify_chain = !config.insecure_skip_verify() && !config.pins_only() && !psk;
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  if (!config.ca_file().empty()) {
    HUBLINK_ASSIGN_OR_RETURN(std::string pem, ReadConfigFile("ca_file", config.ca_file()));
    HUBLINK_RETURN_IF_ERROR(
        AddPemCertificates(store, pem, absl::StrCat("ca_file: ", config.ca_file())));
  }
  if (!config.ca_pem().empty()) {
    HUBLINK_RETURN_IF_ERROR(AddPemCertificates(store, config.ca_pem(), "ca_pem"));
  }
  if (verify_chain && config.ca_file().empty() && config.ca_pem().empty()) {
    absl::StatusOr<std::string> pem = ReadConfigFile("system roots", kSystemRoots);
    if (!pem.ok()) {
      return absl::Status(
          pem.status().code(),
          absl::StrCat(pem.status().message(),
                       " (install ca-certificates, or set ca_file / ca_pem; insecure_skip_verify "
                       "turns checks off)"));
    }
    HUBLINK_RETURN_IF_ERROR(
        AddPemCertificates(store, *pem, absl::StrCat("system roots ", kSystemRoots)));
  }

  if (!config.cert_file().empty()) {
    HUBLINK_ASSIGN_OR_RETURN(std::string cert_pem, ReadConfigFile("cert_file", config.cert_file()));
    std::string key_pem;
    WipeOnExit wipe_key_pem(key_pem);
    HUBLINK_ASSIGN_OR_RETURN(key_pem, ReadConfigFile("key_file", config.key_file(),
                                                     /*secret=*/true));
    bssl::UniquePtr<BIO> cert_bio(
        BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
    bssl::UniquePtr<X509> leaf(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
    if (leaf == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("tls: cert_file: ", config.cert_file(),
                                                     ": no PEM certificate found (", DrainErrors(),
                                                     ")"));
    }
    if (!SSL_CTX_use_certificate(ctx, leaf.get())) {
      return absl::InvalidArgumentError(
          absl::StrCat("tls: cert_file: ", config.cert_file(), ": ", DrainErrors()));
    }
    while (true) {
      bssl::UniquePtr<X509> extra(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
      if (extra == nullptr) break;
      SSL_CTX_add1_chain_cert(ctx, extra.get());
    }
    ERR_clear_error();  // the end of the file reads as an error
    bssl::UniquePtr<BIO> key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
    bssl::UniquePtr<EVP_PKEY> key(
        PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
    if (key == nullptr) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat("tls: key_file: ", config.key_file(),
                       ": no PEM private key found (encrypted keys are not supported)"));
    }
    if (!SSL_CTX_use_PrivateKey(ctx, key.get()) || !SSL_CTX_check_private_key(ctx)) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat("tls: key_file: ", config.key_file(),
                       ": does not match the certificate in cert_file ", config.cert_file()));
    }
  }

  SSL_CTX_set_custom_verify(ctx, SSL_VERIFY_PEER, callbacks.verify);
  if (!config.disable_session_resumption()) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_sess_set_new_cb(ctx, callbacks.new_session);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(config.handshake_timeout(), "tls: handshake_timeout"));
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(config.close_timeout(), "tls: close_timeout"));
  return shared;
}

void SetWipeObserverForTesting(WipeObserver observer) { wipe_observer = observer; }

}  // namespace tls_internal
}  // namespace hublink
