#include "transports/tls/tls_transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
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
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "plugins/log.h"
#include "plugins/status_macros.h"
#include "plugins/weak_guard.h"
#include "transports/tls/tls.pb.h"
#include "transports/tls/tls_transport.h"

#ifndef OPENSSL_IS_BORINGSSL
#error "transports/tls needs BoringSSL headers (include/android first), not the system OpenSSL"
#endif

namespace hublink {
namespace {

using transports::TlsConfig;

constexpr char kSystemRoots[] = "/etc/ssl/certs/ca-certificates.crt";
constexpr char kDefaultPskCiphers[] = "PSK-AES128-CBC-SHA";
constexpr absl::Duration kDefaultHandshakeTimeout = absl::Seconds(10);
constexpr absl::Duration kDefaultCloseTimeout = absl::Seconds(3);
// Config files larger than this are not certificates or keys.
constexpr size_t kMaxConfigFileBytes = 16 << 20;
// Sessions kept per pipeline; a pipeline talks to one or two servers, so this only bounds misuse.
constexpr size_t kMaxCachedSessions = 64;
constexpr int kMaxPlaintextChunk = 1 << 20;

using Pin = std::array<uint8_t, SHA256_DIGEST_LENGTH>;

// The OpenSSL error queue, drained: its packed codes, oldest first.
std::vector<uint32_t> TakeErrors() {
  std::vector<uint32_t> codes;
  uint32_t err;
  while ((err = ERR_get_error()) != 0) codes.push_back(err);
  return codes;
}

// Packed error codes as "REASON; REASON".
std::string ReasonsOf(const std::vector<uint32_t>& codes) {
  std::vector<std::string> reasons;
  for (uint32_t err : codes) {
    const char* reason = ERR_reason_error_string(err);
    reasons.push_back(reason != nullptr ? reason : absl::StrCat("error ", err));
  }
  return reasons.empty() ? "unknown error" : absl::StrJoin(reasons, "; ");
}

// The OpenSSL error queue, drained, as "REASON; REASON".
std::string DrainErrors() { return ReasonsOf(TakeErrors()); }

tls_internal::WipeObserver wipe_observer = nullptr;

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

// Secret bytes (a PSK key) in one heap block of their own, wiped when replaced or destroyed.
class SecretBytes {
 public:
  SecretBytes() = default;
  ~SecretBytes() { Wipe(); }
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  void Assign(absl::string_view bytes) {
    Wipe();
    if (bytes.empty()) return;
    data_.reset(new uint8_t[bytes.size()]);
    std::memcpy(data_.get(), bytes.data(), bytes.size());
    size_ = bytes.size();
  }
  void Wipe() {
    if (data_ != nullptr) WipeBytes(data_.get(), size_);
    data_.reset();
    size_ = 0;
  }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t size_ = 0;
};

// docs/errors.md: a file named by the config that cannot be read reports its errno's code (ENOENT
// kNotFound, EACCES/EPERM kPermissionDenied, ...).
absl::Status FileError(absl::string_view field, const std::string& path, int err) {
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat("tls: ", field, ": ", path, ": ", std::strerror(err)));
}

// The whole file. With `secret` (a private key) every copy made on the way is wiped; the caller
// wipes the result.
absl::StatusOr<std::string> ReadConfigFile(absl::string_view field, const std::string& path,
                                           bool secret = false) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileError(field, path, errno);
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  std::string contents;
  struct stat st;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    // Sized up front so that growing never leaves an unwiped copy behind.
    contents.reserve(std::min<size_t>(static_cast<size_t>(st.st_size), kMaxConfigFileBytes) + 1);
  }
  char buffer[16384];
  absl::Status error;
  while (true) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = FileError(field, path, errno);
      break;
    }
    if (n == 0) break;
    if (contents.size() + static_cast<size_t>(n) > kMaxConfigFileBytes) {
      error = absl::InvalidArgumentError(absl::StrCat("tls: ", field, ": ", path, ": larger than ",
                                                      kMaxConfigFileBytes, " bytes"));
      break;
    }
    if (secret && contents.size() + static_cast<size_t>(n) > contents.capacity()) {
      // The file grew since fstat: move to a larger block by hand, wiping the old one.
      std::string larger;
      larger.reserve(2 * (contents.size() + static_cast<size_t>(n)));
      larger.append(contents);
      WipeString(contents);
      contents.swap(larger);
    }
    contents.append(buffer, static_cast<size_t>(n));
  }
  if (secret) OPENSSL_cleanse(buffer, sizeof(buffer));
  if (!error.ok()) {
    if (secret) WipeString(contents);
    return error;
  }
  return contents;  // moved: no copy is left behind
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
  // Certificate ::= SEQUENCE { tbsCertificate TBSCertificate, ... }; TBSCertificate ::= SEQUENCE {
  // [0] version OPTIONAL, serialNumber, signature, issuer, validity, subject,
  // subjectPublicKeyInfo, ... }
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

// "CN=x" of a name, or its one-line form when it has no CN.
std::string DescribeName(X509_NAME* name) {
  if (name == nullptr) return "(no name)";
  int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index >= 0) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
    uint8_t* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len >= 0) {
      std::string cn = absl::StrCat("CN=", absl::string_view(reinterpret_cast<char*>(utf8), len));
      OPENSSL_free(utf8);
      return cn;
    }
  }
  char buffer[256];
  X509_NAME_oneline(name, buffer, sizeof(buffer));
  return buffer;
}

// The subjectAltName entries of `cert` as "DNS:a", "IP:1.2.3.4". Parsed from DER: this BoringSSL
// build ships no x509v3.h with GENERAL_NAME.
std::vector<std::string> SubjectAltNames(X509* cert) {
  std::vector<std::string> names;
  int index = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
  if (index < 0) return names;
  ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(X509_get_ext(cert, index));
  CBS der, seq;
  CBS_init(&der, ASN1_STRING_get0_data(value), ASN1_STRING_length(value));
  if (!CBS_get_asn1(&der, &seq, CBS_ASN1_SEQUENCE)) return names;
  while (CBS_len(&seq) > 0) {
    CBS name;
    unsigned tag;
    if (!CBS_get_any_asn1(&seq, &name, &tag)) break;
    absl::string_view bytes(reinterpret_cast<const char*>(CBS_data(&name)), CBS_len(&name));
    if (tag == (CBS_ASN1_CONTEXT_SPECIFIC | 2)) {
      names.push_back(absl::StrCat("DNS:", bytes));
    } else if (tag == (CBS_ASN1_CONTEXT_SPECIFIC | 7)) {
      char text[INET6_ADDRSTRLEN] = "?";
      if (bytes.size() == 4) inet_ntop(AF_INET, bytes.data(), text, sizeof(text));
      if (bytes.size() == 16) inet_ntop(AF_INET6, bytes.data(), text, sizeof(text));
      names.push_back(absl::StrCat("IP:", text));
    }
  }
  return names;
}

std::string TimeToString(const ASN1_TIME* time) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (time == nullptr || !ASN1_TIME_print(bio.get(), time)) return "?";
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

bool IsIpLiteral(absl::string_view host) {
  if (host.find('\0') != absl::string_view::npos) return false;
  std::string h(host);
  in6_addr addr;
  return inet_pton(AF_INET, h.c_str(), &addr) == 1 || inet_pton(AF_INET6, h.c_str(), &addr) == 1;
}

// What a user can do about a verification error, as "reason (details)".
std::string DescribeVerifyError(int err, X509* cert, absl::string_view wanted, X509* leaf) {
  std::string who = cert != nullptr ? DescribeName(X509_get_subject_name(cert)) : "?";
  switch (err) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: {
      std::vector<std::string> has = {DescribeName(X509_get_subject_name(leaf))};
      for (std::string& san : SubjectAltNames(leaf)) has.push_back(std::move(san));
      return absl::StrCat(err == X509_V_ERR_HOSTNAME_MISMATCH ? "hostname" : "IP address",
                          " mismatch (wanted ", wanted, ", certificate has ",
                          absl::StrJoin(has, ", "),
                          "; set server_name if the certificate is right)");
    }
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      return absl::StrCat("unknown CA (issuer ",
                          cert ? DescribeName(X509_get_issuer_name(cert)) : std::string("?"),
                          " of ", who, " is not trusted; add it with ca_file or ca_pem)");
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return absl::StrCat("unknown CA (self-signed ", who,
                          " is not trusted; add it with ca_file or ca_pem, or pin it)");
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return absl::StrCat("expired (", who, " notAfter ", TimeToString(X509_get0_notAfter(cert)),
                          "; if that looks wrong, check this device's clock)");
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return absl::StrCat("not yet valid (", who, " notBefore ",
                          TimeToString(X509_get0_notBefore(cert)), "; check this device's clock)");
    default:
      return absl::StrCat(X509_verify_cert_error_string(err), " (", who, ")");
  }
}

// Wipes the PSK key text (key_hex / key_base64) from a config and clears it.
void WipePskKeyText(TlsConfig& config) {
  if (!config.has_psk()) return;
  TlsConfig::Psk* psk = config.mutable_psk();
  if (psk->key_case() == TlsConfig::Psk::kKeyHex) WipeString(*psk->mutable_key_hex());
  if (psk->key_case() == TlsConfig::Psk::kKeyBase64) WipeString(*psk->mutable_key_base64());
  psk->clear_key();
}

// Everything one pipeline's TLS layer shares across its connections. Transports hold it by
// shared_ptr, so it outlives them whatever the owner does with the ConfiguredTransport.
struct TlsShared {
  ~TlsShared() { WipePskKeyText(config); }  // when Configure() failed before taking the key out

  TlsConfig config;
  bssl::UniquePtr<SSL_CTX> ctx;
  std::vector<Pin> pins;
  std::string alpn_wire;
  SecretBytes psk_key;  // the decoded key; `config` keeps no copy of it

  // A pipeline may be used from several loops. std::mutex: see plugins/event_loop.h.
  std::mutex mutex;
  absl::flat_hash_map<std::string, bssl::UniquePtr<SSL_SESSION>> sessions;  // guarded by mutex

  // A session to offer to `key`, if one is cached. Single-use (TLS 1.3) sessions leave the cache.
  bssl::UniquePtr<SSL_SESSION> TakeSession(const std::string& key) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = sessions.find(key);
    if (it == sessions.end()) return nullptr;
    if (SSL_SESSION_should_be_single_use(it->second.get())) {
      bssl::UniquePtr<SSL_SESSION> session = std::move(it->second);
      sessions.erase(it);
      return session;
    }
    SSL_SESSION_up_ref(it->second.get());
    return bssl::UniquePtr<SSL_SESSION>(it->second.get());
  }

  void PutSession(const std::string& key, bssl::UniquePtr<SSL_SESSION> session) {
    std::lock_guard<std::mutex> lock(mutex);
    if (sessions.size() >= kMaxCachedSessions && !sessions.contains(key)) sessions.clear();
    sessions[key] = std::move(session);
  }
};

class TlsTransport;

TlsTransport* FromSsl(const SSL* ssl) { return static_cast<TlsTransport*>(SSL_get_app_data(ssl)); }

class TlsTransport : public Transport, private TransportListener {
 public:
  TlsTransport(std::shared_ptr<TlsShared> shared, ConnectContext& context,
               std::unique_ptr<Transport> lower)
      : shared_(std::move(shared)),
        config_(shared_->config),
        context_(context),
        loop_(context.loop()),
        lower_(std::move(lower)) {
    absl::string_view host = context.host();
    if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
      host = host.substr(1, host.size() - 2);
    }
    name_ = config_.server_name().empty() ? std::string(host) : config_.server_name();
    name_is_ip_ = IsIpLiteral(name_);
    session_key_ = absl::StrCat(name_, ":", context.port());
  }

  ~TlsTransport() override {
    loop_.Cancel(timer_);
    loop_.Cancel(close_timer_);
    ssl_.reset();  // before the buffers its BIO points into
  }

  void Open(TransportListener* listener) override {
    if (state_ != State::kIdle) {
      RefuseOpen(listener);
      return;
    }
    listener_ = listener;
    state_ = State::kOpeningLower;
    absl::Status setup = SetUpSsl();
    if (!setup.ok()) {
      FailLater(setup);
      return;
    }
    lower_->Open(this);
  }

  absl::Status Write(absl::string_view bytes) override {
    if (state_ != State::kOpen) {
      return absl::FailedPreconditionError(
          absl::StrCat("tls: write on a ", StateName(), " connection"));
    }
    if (!outbox_.empty()) {
      return absl::ResourceExhaustedError(absl::StrCat("tls: the layer below is full (",
                                                       lower_->BufferedBytes() + outbox_.size(),
                                                       " bytes queued); wait for OnWritable()"));
    }
    while (!bytes.empty()) {
      int chunk = static_cast<int>(std::min<size_t>(bytes.size(), kMaxPlaintextChunk));
      int n = SSL_write(ssl_.get(), bytes.data(), chunk);
      if (n <= 0) {
        absl::Status status = ErrorFromSsl(n, "write failed");
        FailLater(status);
        return absl::OkStatus();  // the failure arrives as OnClosed, like any other
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    absl::Status flushed = Flush();
    if (!flushed.ok()) FailLater(flushed);
    return absl::OkStatus();
  }

  void Close() override {
    switch (state_) {
      case State::kIdle:
        state_ = State::kClosed;
        loop_.Post(guard_.Wrap([this] { Deliver(absl::OkStatus()); }));
        return;
      case State::kOpeningLower:
      case State::kHandshaking:
        state_ = State::kClosing;
        loop_.Cancel(timer_);
        timer_ = 0;
        StartCloseTimer();
        lower_->Close();
        return;
      case State::kOpen:
        state_ = State::kClosing;
        StartCloseTimer();
        SSL_shutdown(ssl_.get());  // queues close_notify; the peer's reply is not awaited
        CloseLowerAfterFlush();
        return;
      case State::kClosing:
      case State::kClosed:
        return;
    }
  }

  size_t BufferedBytes() const override {
    return (lower_ != nullptr ? lower_->BufferedBytes() : 0) + outbox_.size();
  }

  // ---- BoringSSL callbacks ----

  static int BioWrite(BIO* bio, const char* data, int len) {
    BIO_clear_retry_flags(bio);
    auto* self = static_cast<TlsTransport*>(BIO_get_data(bio));
    self->outbox_.append(data, static_cast<size_t>(len));
    return len;
  }

  static int BioRead(BIO* bio, char* out, int len) {
    BIO_clear_retry_flags(bio);
    auto* self = static_cast<TlsTransport*>(BIO_get_data(bio));
    size_t available = self->inbox_.size() - self->inbox_offset_;
    if (available == 0) {
      BIO_set_retry_read(bio);
      return -1;
    }
    size_t n = std::min(available, static_cast<size_t>(len));
    std::memcpy(out, self->inbox_.data() + self->inbox_offset_, n);
    self->inbox_offset_ += n;
    if (self->inbox_offset_ == self->inbox_.size()) {
      self->inbox_.clear();
      self->inbox_offset_ = 0;
    }
    return static_cast<int>(n);
  }

  static long BioCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

  static ssl_verify_result_t VerifyCallback(SSL* ssl, uint8_t* out_alert) {
    return FromSsl(ssl)->VerifyPeer(out_alert);
  }

  static int NewSessionCallback(SSL* ssl, SSL_SESSION* session) {
    TlsTransport* self = FromSsl(ssl);
    self->shared_->PutSession(self->session_key_, bssl::UniquePtr<SSL_SESSION>(session));
    return 1;  // we took ownership
  }

 private:
  enum class State { kIdle, kOpeningLower, kHandshaking, kOpen, kClosing, kClosed };

  const char* StateName() const {
    switch (state_) {
      case State::kIdle:
      case State::kOpeningLower:
      case State::kHandshaking:
        return "not yet open";
      case State::kOpen:
        return "open";
      case State::kClosing:
        return "closing";
      case State::kClosed:
        return "closed";
    }
    return "?";
  }

  static BIO_METHOD* Method() {
    static BIO_METHOD* method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "hublink lower transport");
      BIO_meth_set_write(m, BioWrite);
      BIO_meth_set_read(m, BioRead);
      BIO_meth_set_ctrl(m, BioCtrl);
      return m;
    }();
    return method;
  }

  absl::Status SetUpSsl() {
    ssl_.reset(SSL_new(shared_->ctx.get()));
    if (ssl_ == nullptr) return absl::InternalError(absl::StrCat("tls: SSL_new: ", DrainErrors()));
    SSL_set_app_data(ssl_.get(), this);
    SSL_set_connect_state(ssl_.get());
    BIO* bio = BIO_new(Method());
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_.get(), bio, bio);  // one reference, taken by the SSL
    // RFC 6066 forbids IP literals in SNI; send one only when the user asked for it by name.
    if (!config_.server_name().empty() || !name_is_ip_) {
      if (!SSL_set_tlsext_host_name(ssl_.get(), name_.c_str())) {
        return absl::InvalidArgumentError(
            absl::StrCat("tls: server name \"", name_, "\" rejected for SNI: ", DrainErrors()));
      }
    }
    if (!shared_->alpn_wire.empty() &&
        SSL_set_alpn_protos(ssl_.get(), reinterpret_cast<const uint8_t*>(shared_->alpn_wire.data()),
                            shared_->alpn_wire.size()) != 0) {
      return absl::InternalError(absl::StrCat("tls: ALPN: ", DrainErrors()));
    }
    if (!config_.disable_session_resumption()) {
      bssl::UniquePtr<SSL_SESSION> session = shared_->TakeSession(session_key_);
      if (session != nullptr) SSL_set_session(ssl_.get(), session.get());
    }
    return absl::OkStatus();
  }

  // ---- from the layer below ----

  void OnOpen() override {
    if (state_ != State::kOpeningLower) return;
    state_ = State::kHandshaking;
    context_.BeginPhase("tls");
    absl::Duration timeout = config_.has_handshake_timeout()
                                 ? absl::Seconds(config_.handshake_timeout().seconds()) +
                                       absl::Nanoseconds(config_.handshake_timeout().nanos())
                                 : kDefaultHandshakeTimeout;
    absl::Time deadline = loop_.Now() + timeout;
    if (!config_.has_handshake_timeout() && context_.deadline() != absl::InfiniteFuture()) {
      deadline = context_.deadline();
    }
    deadline = std::min(deadline, context_.deadline());
    timer_ = loop_.RunAt(deadline, guard_.Wrap([this, deadline, start = loop_.Now()] {
      timer_ = 0;
      if (state_ == State::kHandshaking) {
        Fail(absl::DeadlineExceededError(absl::StrCat("tls: handshake with ", name_,
                                                      " timed out after ",
                                                      absl::FormatDuration(deadline - start))));
      }
    }));
    if (config_.insecure_skip_verify() && config_.psk().identity().empty()) {
      HLOG(WARNING) << "tls: insecure_skip_verify is set: the certificate of " << name_ << ":"
                    << context_.port()
                    << " is NOT verified; anyone on the network path can impersonate the server";
    }
    Drive();
  }

  void OnData(absl::string_view bytes) override {
    if (state_ == State::kClosed || state_ == State::kIdle || state_ == State::kOpeningLower)
      return;
    if (inbox_offset_ > 0 && inbox_offset_ >= inbox_.size() / 2) {
      inbox_.erase(0, inbox_offset_);
      inbox_offset_ = 0;
    }
    inbox_.append(bytes.data(), bytes.size());
    TrackRecords(bytes);
    Drive();
  }

  void OnClosed(const absl::Status& status) override {
    switch (state_) {
      case State::kIdle:
      case State::kClosed:
        return;
      case State::kOpeningLower:
        Finish(status.ok() ? absl::UnavailableError("tls: the layer below closed before it opened")
                           : status);
        return;
      case State::kHandshaking:
        if (status.ok()) {
          Finish(absl::UnavailableError(
              absl::StrCat("tls: handshake failed: peer closed the connection mid-handshake (is ",
                           context_.host(), ":", context_.port(),
                           " a TLS port? does it accept this version, cipher or identity?)")));
        } else {
          Finish(absl::Status(status.code(),
                              absl::StrCat("tls: handshake failed: ", status.message())));
        }
        return;
      case State::kOpen:
        if (status.ok() && TruncatedRecord()) {
          Finish(absl::UnavailableError("tls: connection closed in the middle of a TLS record"));
          return;
        }
        // A close without close_notify at a record boundary: most MQTT brokers end connections this
        // way.
        Finish(status);
        return;
      case State::kClosing:
        Finish(pending_error_);
        return;
    }
  }

  void OnWritable() override {
    if (state_ == State::kClosed) return;
    absl::Status flushed = Flush();
    if (!flushed.ok()) {
      Fail(flushed);
      return;
    }
    if (outbox_.empty() && state_ == State::kOpen) listener_->OnWritable();
  }

  // ---- the engine ----

  // Feeds what arrived to BoringSSL: finishes the handshake, then hands plaintext up.
  void Drive() {
    if (state_ == State::kHandshaking) {
      ERR_clear_error();
      int rc = SSL_do_handshake(ssl_.get());
      absl::Status flushed = Flush();  // our next flight, or an alert
      if (rc != 1) {
        int err = SSL_get_error(ssl_.get(), rc);
        if (err == SSL_ERROR_WANT_READ) {
          if (!flushed.ok()) Fail(flushed);
          return;
        }
        Fail(ErrorFromSsl(rc, "handshake failed"));
        return;
      }
      if (!flushed.ok()) {
        Fail(flushed);
        return;
      }
      HandshakeDone();
      if (state_ != State::kOpen) return;
    }
    if (handshake_done_) ReadPlaintext();
  }

  void HandshakeDone() {
    loop_.Cancel(timer_);
    timer_ = 0;
    state_ = State::kOpen;
    handshake_done_ = true;
    const uint8_t* alpn = nullptr;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl_.get(), &alpn, &alpn_len);
    const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_.get());
    std::string detail = absl::StrCat(
        "handshake done ", SSL_get_version(ssl_.get()), " ",
        cipher != nullptr ? SSL_CIPHER_standard_name(cipher) : "?", " sni=",
        SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name) ? name_ : std::string("none"),
        alpn_len ? absl::StrCat(" alpn=",
                                absl::string_view(reinterpret_cast<const char*>(alpn), alpn_len))
                 : "",
        " resumed=", SSL_session_reused(ssl_.get()) ? "yes" : "no");
    HLOG(DEBUG) << "tls: " << name_ << ": " << detail;
    context_.EndPhase("tls", SSL_session_reused(ssl_.get()) ? "resumed" : "");
    context_.ReportStage("tls", detail);
    listener_->OnOpen();
  }

  void ReadPlaintext() {
    // Decrypted bytes leave no copy here once handed up.
    struct PlaintextBuffer {
      char bytes[16384];
      size_t used = 0;
      ~PlaintextBuffer() { OPENSSL_cleanse(bytes, used); }
    } buffer;
    while (state_ == State::kOpen || state_ == State::kClosing) {
      ERR_clear_error();
      int n = SSL_read(ssl_.get(), buffer.bytes, sizeof(buffer.bytes));
      if (n > 0) {
        buffer.used = std::max(buffer.used, static_cast<size_t>(n));
        listener_->OnData(absl::string_view(buffer.bytes, static_cast<size_t>(n)));
        continue;
      }
      int err = SSL_get_error(ssl_.get(), n);
      // Post-handshake messages (tickets, key updates) may have produced output.
      absl::Status flushed = Flush();
      if (err == SSL_ERROR_WANT_READ) {
        if (!flushed.ok()) Fail(flushed);
        return;
      }
      if (err == SSL_ERROR_ZERO_RETURN) {
        PeerClosed();
        return;
      }
      if (state_ == State::kClosing) {
        // Our close is already under way; an error in the peer's last words changes nothing.
        ERR_clear_error();
        return;
      }
      Fail(ErrorFromSsl(n, "connection failed"));
      return;
    }
  }

  // Follows TLS record framing in the ciphertext from below, so that an end of stream can be told
  // apart: between records (a clean end) or inside one (truncation). BoringSSL reports both the
  // same way.
  void TrackRecords(absl::string_view bytes) {
    while (!bytes.empty()) {
      if (record_left_ == 0) {
        size_t take = std::min(sizeof(header_) - header_len_, bytes.size());
        std::memcpy(header_ + header_len_, bytes.data(), take);
        header_len_ += take;
        bytes.remove_prefix(take);
        if (header_len_ == sizeof(header_)) {
          record_left_ = (static_cast<size_t>(header_[3]) << 8) | header_[4];
          header_len_ = 0;
        }
      } else {
        size_t take = std::min(record_left_, bytes.size());
        record_left_ -= take;
        bytes.remove_prefix(take);
      }
    }
  }
  bool TruncatedRecord() const { return header_len_ != 0 || record_left_ != 0; }

  // The peer sent close_notify: answer it and close below; OnClosed(OK) follows from there.
  void PeerClosed() {
    if (state_ == State::kOpen) {
      state_ = State::kClosing;
      StartCloseTimer();
      SSL_shutdown(ssl_.get());
      CloseLowerAfterFlush();
    }
  }

  // Closing below with ciphertext still held here (the layer below was full) would lose the last
  // records and the close_notify: hold the close until OnWritable() drains them.
  void CloseLowerAfterFlush() {
    absl::Status flushed = Flush();
    if (flushed.ok() && !outbox_.empty()) {
      close_after_flush_ = true;
      return;
    }
    lower_->Close();
  }

  absl::Status Flush() {
    if (outbox_.empty() || lower_ == nullptr) return absl::OkStatus();
    absl::Status status = lower_->Write(outbox_);
    if (status.ok()) {
      outbox_.clear();
      if (close_after_flush_) {
        close_after_flush_ = false;
        lower_->Close();
      }
      return status;
    }
    if (absl::IsResourceExhausted(status)) {
      // Held until the layer below calls OnWritable(); meanwhile Write() refuses more, so this
      // holds at most one Write()'s worth.
      return absl::OkStatus();
    }
    return status;
  }

  ssl_verify_result_t VerifyPeer(uint8_t* out_alert) {
    if (config_.insecure_skip_verify()) return ssl_verify_ok;
    STACK_OF(X509)* chain = SSL_get_peer_full_cert_chain(ssl_.get());
    if (chain == nullptr || sk_X509_num(chain) == 0) {
      verify_error_ = absl::UnauthenticatedError(
          "tls: certificate verify failed: the server sent no certificate");
      *out_alert = SSL_AD_CERTIFICATE_REQUIRED;
      return ssl_verify_invalid;
    }
    X509* leaf = sk_X509_value(chain, 0);
    bssl::UniquePtr<STACK_OF(X509)> verified;
    if (!config_.pins_only()) {
      bssl::UniquePtr<X509_STORE_CTX> store_ctx(X509_STORE_CTX_new());
      if (!store_ctx ||
          !X509_STORE_CTX_init(store_ctx.get(), SSL_CTX_get_cert_store(shared_->ctx.get()), leaf,
                               chain)) {
        verify_error_ =
            absl::InternalError(absl::StrCat("tls: X509_STORE_CTX_init: ", DrainErrors()));
        *out_alert = SSL_AD_INTERNAL_ERROR;
        return ssl_verify_invalid;
      }
      X509_STORE_CTX_set_default(store_ctx.get(), "ssl_server");
      X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(store_ctx.get());
      // A name BoringSSL refuses would leave the name unchecked: fail closed instead.
      const int name_set = name_is_ip_
                               ? X509_VERIFY_PARAM_set1_ip_asc(param, name_.c_str())
                               : X509_VERIFY_PARAM_set1_host(param, name_.data(), name_.size());
      if (name_set != 1) {
        ERR_clear_error();
        verify_error_ = absl::UnauthenticatedError(absl::StrCat(
            "tls: certificate verify failed: the server name \"", absl::CHexEscape(name_),
            "\" cannot be checked against a certificate (BoringSSL refuses it as a ",
            name_is_ip_ ? "IP address" : "host name", "); set server_name"));
        *out_alert = SSL_AD_INTERNAL_ERROR;
        return ssl_verify_invalid;
      }
      if (X509_verify_cert(store_ctx.get()) != 1) {
        int err = X509_STORE_CTX_get_error(store_ctx.get());
        X509* at = X509_STORE_CTX_get_current_cert(store_ctx.get());
        verify_error_ = absl::UnauthenticatedError(
            absl::StrCat("tls: certificate verify failed: ",
                         DescribeVerifyError(err, at ? at : leaf, name_, leaf)));
        ERR_clear_error();
        switch (err) {
          case X509_V_ERR_CERT_HAS_EXPIRED:
          case X509_V_ERR_CERT_NOT_YET_VALID:
            *out_alert = SSL_AD_CERTIFICATE_EXPIRED;
            break;
          case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
          case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
          case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
          case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
            *out_alert = SSL_AD_UNKNOWN_CA;
            break;
          default:
            *out_alert = SSL_AD_BAD_CERTIFICATE;
        }
        return ssl_verify_invalid;
      }
      verified.reset(X509_STORE_CTX_get1_chain(store_ctx.get()));
    }
    if (!shared_->pins.empty()) {
      // With a verified chain, any certificate of it may carry the pin (a CA pin). Without one
      // (pins_only), only the leaf counts: its key is the one the handshake proves; anything
      // after it in the server's list is public and could be anyone's copy.
      const size_t candidates = verified != nullptr ? sk_X509_num(verified.get()) : 1;
      std::vector<std::string> seen;
      for (size_t i = 0; i < candidates; ++i) {
        X509* cert = verified != nullptr ? sk_X509_value(verified.get(), i) : leaf;
        absl::StatusOr<Pin> pin = SpkiSha256(cert);
        if (!pin.ok()) {
          seen.push_back(absl::StrCat("(", DescribeName(X509_get_subject_name(cert)), ": ",
                                      pin.status().message(), ")"));
          continue;
        }
        for (const Pin& want : shared_->pins) {
          if (want == *pin) return ssl_verify_ok;
        }
        seen.push_back(PinToString(*pin));
      }
      std::vector<std::string> wanted;
      for (const Pin& want : shared_->pins) wanted.push_back(PinToString(want));
      verify_error_ = absl::UnauthenticatedError(absl::StrCat(
          "tls: certificate verify failed: no certificate matches spki_pins (",
          verified != nullptr ? absl::StrCat("the server's chain has ", absl::StrJoin(seen, ", "))
                              : absl::StrCat("pins_only checks the server's own certificate, ",
                                             DescribeName(X509_get_subject_name(leaf)),
                                             ", which has ", absl::StrJoin(seen, ", ")),
          "; spki_pins: ", absl::StrJoin(wanted, ", "), ")"));
      *out_alert = SSL_AD_BAD_CERTIFICATE;
      return ssl_verify_invalid;
    }
    return ssl_verify_ok;
  }

  // Turns a failed SSL_* call into a status a user can act on, coded as docs/errors.md says: the
  // peer went away kUnavailable; the peer refused who we are (or could not prove who it is)
  // kUnauthenticated; the peer broke the protocol (bytes that are not TLS, a malformed or
  // unexpected message, a corrupt record) kDataLoss; no version or cipher in common kUnavailable.
  absl::Status ErrorFromSsl(int rc, absl::string_view what) {
    if (!verify_error_.ok()) {
      ERR_clear_error();
      return verify_error_;
    }
    int err = SSL_get_error(ssl_.get(), rc);
    const std::vector<uint32_t> codes = TakeErrors();
    const uint32_t packed = codes.empty() ? 0 : codes.front();
    bool bad_signature = false;  // anywhere in the queue: the server's key did not sign
    for (uint32_t e : codes) {
      if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_BAD_SIGNATURE) {
        bad_signature = true;
      }
    }
    const std::string reasons = ReasonsOf(codes);
    if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN || packed == 0) {
      return absl::UnavailableError(absl::StrCat("tls: ", what, ": peer closed the connection"));
    }
    bool psk = !config_.psk().identity().empty();
    std::string hint;
    const int lib = ERR_GET_LIB(packed);
    const int reason = ERR_GET_REASON(packed);
    // An alert the peer sent (it ended the connection) vs. something wrong we found in its bytes.
    const bool peer_alert = lib == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET;
    absl::StatusCode code =
        peer_alert ? absl::StatusCode::kUnavailable : absl::StatusCode::kDataLoss;
    if (reason == ERR_R_MALLOC_FAILURE || (lib == ERR_LIB_SSL && reason == ERR_R_INTERNAL_ERROR)) {
      code = absl::StatusCode::kInternal;
    }
    if (bad_signature) {
      hint = " (the server could not prove it holds the key of its certificate)";
      code = absl::StatusCode::kUnauthenticated;
    }
    if (lib == ERR_LIB_SSL) {
      switch (reason) {
        case SSL_R_TLSV1_ALERT_CERTIFICATE_REQUIRED:
        case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
          if (config_.cert_file().empty() && !psk) {
            hint = " (the server may require a client certificate: set cert_file and key_file)";
          }
          code = reason == SSL_R_TLSV1_ALERT_CERTIFICATE_REQUIRED
                     ? absl::StatusCode::kUnauthenticated
                     : absl::StatusCode::kUnavailable;
          break;
        case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
        case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
          hint = " (the server rejected our client certificate)";
          code = absl::StatusCode::kUnauthenticated;
          break;
        case SSL_R_TLSV1_ALERT_UNKNOWN_PSK_IDENTITY:
          hint = " (the server does not know this PSK identity)";
          code = absl::StatusCode::kUnauthenticated;
          break;
        case SSL_R_SSLV3_ALERT_BAD_RECORD_MAC:
        case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
        case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
          if (psk) {
            hint = " (wrong PSK key for this identity?)";
            code = absl::StatusCode::kUnauthenticated;
          }
          break;
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        case SSL_R_UNSUPPORTED_PROTOCOL:
          hint = " (no TLS version in common: check min_version / max_version)";
          code = absl::StatusCode::kUnavailable;
          break;
        case SSL_R_NO_SHARED_CIPHER:
        case SSL_R_TLSV1_ALERT_INSUFFICIENT_SECURITY:
          hint = " (no cipher in common: check cipher_list)";
          code = absl::StatusCode::kUnavailable;
          break;
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_HTTP_REQUEST:
        case SSL_R_HTTPS_PROXY_REQUEST:
          hint = " (the server does not speak TLS on this port?)";
          code = absl::StatusCode::kDataLoss;
          break;
        default:
          break;
      }
    }
    return absl::Status(code, absl::StrCat("tls: ", what, ": ", reasons, hint));
  }

  // A second Open() (or an Open() after Close()): the connection and its listener are left alone;
  // a different listener hears of the refusal, later, through its own OnClosed. The listener that
  // already owns the connection hears of its end once, as ever, so it is not told twice.
  void RefuseOpen(TransportListener* listener) {
    absl::Status status = absl::FailedPreconditionError(
        listener_ == nullptr ? "tls: Open() after Close()" : "tls: Open() called twice");
    if (listener == nullptr || listener == listener_) {
      HLOG(ERROR) << status.message() << " (ignored: the connection keeps its listener)";
      return;
    }
    loop_.Post(guard_.Wrap([listener, status] { listener->OnClosed(status); }));
  }

  // Bounds an orderly close (ours, or our answer to the peer's): if the last records, the
  // close_notify and the close of the layer below are not done within close_timeout (the peer
  // stopped reading, say), the connection is abandoned and OnClosed reports kDeadlineExceeded.
  void StartCloseTimer() {
    if (close_timer_ != 0) return;
    const absl::Duration linger = config_.has_close_timeout()
                                      ? absl::Seconds(config_.close_timeout().seconds()) +
                                            absl::Nanoseconds(config_.close_timeout().nanos())
                                      : kDefaultCloseTimeout;
    close_timer_ = loop_.RunAfter(linger, guard_.Wrap([this, linger] {
      close_timer_ = 0;
      if (state_ != State::kClosing) return;
      const size_t held = BufferedBytes();
      Abandon();
      Finish(absl::DeadlineExceededError(absl::StrCat(
          "tls: close timed out after ", absl::FormatDuration(linger), ": ",
          held > 0 ? absl::StrCat(held, " bytes were still queued (the peer stopped reading?)")
                   : std::string("the layer below did not finish closing"),
          "; connection abandoned")));
    }));
  }

  // Drops the layer below at once (its socket closes with no goodbye) and what was queued for it.
  void Abandon() {
    lower_.reset();
    outbox_.clear();
    close_after_flush_ = false;
  }

  // A failure found while running on the loop (from a callback of the layer below).
  void Fail(const absl::Status& status) {
    if (state_ == State::kClosed) return;
    (void)Flush();  // our alert, if BoringSSL queued one
    lower_->Close();
    Finish(status);
  }

  // A failure found inside Open() or Write(): callbacks must not run from there. Whichever comes
  // first, the lower layer's OnClosed or the posted task, reports `status`.
  void FailLater(const absl::Status& status) {
    if (state_ == State::kClosed) return;
    state_ = State::kClosing;
    pending_error_ = status;
    lower_->Close();
    loop_.Post(guard_.Wrap([this] { Finish(pending_error_); }));
  }

  void Finish(const absl::Status& status) {
    if (state_ == State::kClosed && delivered_) return;
    state_ = State::kClosed;
    loop_.Cancel(timer_);
    timer_ = 0;
    loop_.Cancel(close_timer_);
    close_timer_ = 0;
    Deliver(status);
  }

  void Deliver(const absl::Status& status) {
    if (delivered_) return;
    delivered_ = true;
    if (listener_ != nullptr) listener_->OnClosed(status);
  }

  std::shared_ptr<TlsShared> shared_;
  const TlsConfig& config_;
  ConnectContext& context_;
  EventLoop& loop_;
  std::unique_ptr<Transport> lower_;
  std::string name_;
  bool name_is_ip_ = false;
  std::string session_key_;

  TransportListener* listener_ = nullptr;
  State state_ = State::kIdle;
  EventLoop::TimerId timer_ = 0;        // the handshake deadline
  EventLoop::TimerId close_timer_ = 0;  // the orderly-close linger
  bool delivered_ = false;
  bool handshake_done_ = false;
  bool close_after_flush_ = false;
  uint8_t header_[5];  // a TLS record header being received
  size_t header_len_ = 0;
  size_t record_left_ = 0;  // bytes of the current record's body still to come
  absl::Status verify_error_;
  absl::Status pending_error_;  // what OnClosed reports once the layer below confirms the close

  std::string inbox_;  // ciphertext from below not yet read by BoringSSL
  size_t inbox_offset_ = 0;
  std::string outbox_;  // ciphertext BoringSSL wrote that the layer below has not accepted yet
  bssl::UniquePtr<SSL> ssl_;
  WeakGuard guard_;
};

class ConfiguredTls : public ConfiguredTransport {
 public:
  explicit ConfiguredTls(std::shared_ptr<TlsShared> shared) : shared_(std::move(shared)) {}
  absl::StatusOr<std::unique_ptr<Transport>> Create(ConnectContext& context,
                                                    std::unique_ptr<Transport> lower) override {
    if (lower == nullptr) {
      return absl::InvalidArgumentError(
          "tls: is a wrapping transport and needs a transport below it");
    }
    return std::unique_ptr<Transport>(new TlsTransport(shared_, context, std::move(lower)));
  }

 private:
  std::shared_ptr<TlsShared> shared_;
};

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

absl::StatusOr<std::shared_ptr<TlsShared>> BuildShared(const TlsConfig& config) {
  auto shared = std::make_shared<TlsShared>();
  shared->config = config;
  const bool psk = config.has_psk();

  if (config.insecure_skip_verify() && config.spki_pins_size() > 0) {
    return absl::InvalidArgumentError(
        "tls: insecure_skip_verify and spki_pins contradict each other; to check only the pins, "
        "set "
        "pins_only instead of insecure_skip_verify");
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
        "max_version "
        "to TLS1_2 or leave it unset");
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

  SSL_CTX_set_custom_verify(ctx, SSL_VERIFY_PEER, TlsTransport::VerifyCallback);
  if (!config.disable_session_resumption()) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_sess_set_new_cb(ctx, TlsTransport::NewSessionCallback);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  if (config.handshake_timeout().seconds() < 0 || config.handshake_timeout().nanos() < 0) {
    return absl::InvalidArgumentError("tls: handshake_timeout: must not be negative");
  }
  if (config.close_timeout().seconds() < 0 || config.close_timeout().nanos() < 0) {
    return absl::InvalidArgumentError("tls: close_timeout: must not be negative");
  }
  return shared;
}

class TlsFactory : public TransportFactory {
 public:
  absl::string_view name() const override { return "tls"; }
  const google::protobuf::Descriptor* config_type() const override {
    return TlsConfig::descriptor();
  }
  Kind kind() const override { return Kind::kWrapping; }
  absl::StatusOr<std::unique_ptr<ConfiguredTransport>> Configure(
      const google::protobuf::Message& message) const override {
    absl::StatusOr<std::shared_ptr<TlsShared>> shared =
        BuildShared(static_cast<const TlsConfig&>(message));
    if (!shared.ok()) return shared.status();
    return std::unique_ptr<ConfiguredTransport>(new ConfiguredTls(std::move(shared).value()));
  }
};

}  // namespace

namespace tls_internal {
void SetWipeObserverForTesting(WipeObserver observer) { wipe_observer = observer; }
}  // namespace tls_internal

void RegisterTlsTransport(Registry::Builder& builder) {
  builder.AddTransport(std::make_unique<TlsFactory>());
}

}  // namespace hublink
