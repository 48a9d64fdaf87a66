#include "transports/tls/tls_transport.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "plugins/duration.h"
#include "plugins/log.h"
#include "plugins/transport_end.h"
#include "transports/tls/tls.pb.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_diagnostics.h"

#ifndef OPENSSL_IS_BORINGSSL
#error "transports/tls needs BoringSSL headers (include/android first), not the system OpenSSL"
#endif

// The engine: one connection's handshake, records and close over the layer below, through a
// custom BIO. What a pipeline shares (the SSL_CTX, pins, sessions) is tls_context.cc; error text
// is tls_diagnostics.cc.

namespace hublink {
namespace {

using tls_internal::DescribeName;
using tls_internal::DescribeVerifyError;
using tls_internal::DrainErrors;
using tls_internal::Pin;
using tls_internal::PinToString;
using tls_internal::SpkiSha256;
using tls_internal::TlsShared;
using transports::TlsConfig;

constexpr absl::Duration kDefaultHandshakeTimeout = absl::Seconds(10);
constexpr absl::Duration kDefaultCloseTimeout = absl::Seconds(3);
constexpr int kMaxPlaintextChunk = 1 << 20;

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
    name_is_ip_ = tls_internal::IsIpLiteral(name_);
    session_key_ = absl::StrCat(name_, ":", context.port());
  }

  ~TlsTransport() override {
    ssl_.reset();  // before the buffers its BIO points into
  }

  void Open(TransportListener* listener) override {
    if (state_ != State::kIdle) {
      RefuseOpen(listener);
      return;
    }
    end_.set_listener(listener);
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
        end_.DeliverLater(absl::OkStatus());
        return;
      case State::kOpeningLower:
      case State::kHandshaking:
        state_ = State::kClosing;
        end_.Cancel(timer_);
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
  // Records held in outbox_ wait for the layer below's OnWritable(), which this layer passes up.
  bool AboveSoftLimit() const override {
    return state_ == State::kOpen &&
           (!outbox_.empty() || (lower_ != nullptr && lower_->AboveSoftLimit()));
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
                                 ? ToDuration(config_.handshake_timeout())
                                 : kDefaultHandshakeTimeout;
    absl::Time deadline = loop_.Now() + timeout;
    if (!config_.has_handshake_timeout() && context_.deadline() != absl::InfiniteFuture()) {
      deadline = context_.deadline();
    }
    deadline = std::min(deadline, context_.deadline());
    end_.RunAt(timer_, deadline, [this, deadline, start = loop_.Now()] {
      if (state_ == State::kHandshaking) {
        Fail(absl::DeadlineExceededError(absl::StrCat("tls: handshake with ", name_,
                                                      " timed out after ",
                                                      absl::FormatDuration(deadline - start))));
      }
    });
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
    if (outbox_.empty() && state_ == State::kOpen) end_.listener()->OnWritable();
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
    end_.Cancel(timer_);
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
    end_.listener()->OnOpen();
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
        end_.listener()->OnData(absl::string_view(buffer.bytes, static_cast<size_t>(n)));
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

  // A failed SSL_* call (return value `rc`) as a status a user can act on (tls_diagnostics.h); a
  // verification failure found by VerifyPeer wins, as it says more.
  absl::Status ErrorFromSsl(int rc, absl::string_view what) {
    if (!verify_error_.ok()) {
      ERR_clear_error();
      return verify_error_;
    }
    const int err = SSL_get_error(ssl_.get(), rc);
    return tls_internal::StatusFromSslError(err, what, !config_.psk().identity().empty(),
                                            !config_.cert_file().empty());
  }

  // A second Open() (or an Open() after Close()): the connection and its listener are left alone;
  // a different listener hears of the refusal, later, through its own OnClosed. The listener that
  // already owns the connection hears of its end once, as ever, so it is not told twice.
  void RefuseOpen(TransportListener* listener) {
    absl::Status status = absl::FailedPreconditionError(
        end_.listener() == nullptr ? "tls: Open() after Close()" : "tls: Open() called twice");
    if (listener == nullptr || listener == end_.listener()) {
      HLOG(ERROR) << status.message() << " (ignored: the connection keeps its listener)";
      return;
    }
    end_.Post([listener, status] { listener->OnClosed(status); });
  }

  // Bounds an orderly close (ours, or our answer to the peer's): if the last records, the
  // close_notify and the close of the layer below are not done within close_timeout (the peer
  // stopped reading, say), the connection is abandoned and OnClosed reports kDeadlineExceeded.
  void StartCloseTimer() {
    if (close_timer_ != 0) return;
    const absl::Duration linger =
        config_.has_close_timeout() ? ToDuration(config_.close_timeout()) : kDefaultCloseTimeout;
    end_.RunAfter(close_timer_, linger, [this, linger] {
      if (state_ != State::kClosing) return;
      const size_t held = BufferedBytes();
      Abandon();
      Finish(absl::DeadlineExceededError(absl::StrCat(
          "tls: close timed out after ", absl::FormatDuration(linger), ": ",
          held > 0 ? absl::StrCat(held, " bytes were still queued (the peer stopped reading?)")
                   : std::string("the layer below did not finish closing"),
          "; connection abandoned")));
    });
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
    end_.Post([this] { Finish(pending_error_); });
  }

  void Finish(const absl::Status& status) {
    if (state_ == State::kClosed && end_.delivered()) return;
    state_ = State::kClosed;
    end_.Finish(status);  // cancels the handshake and close timers, tells the listener once
  }

  std::shared_ptr<TlsShared> shared_;
  const TlsConfig& config_;
  ConnectContext& context_;
  EventLoop& loop_;
  std::unique_ptr<Transport> lower_;
  std::string name_;
  bool name_is_ip_ = false;
  std::string session_key_;

  State state_ = State::kIdle;
  EventLoop::TimerId timer_ = 0;        // the handshake deadline
  EventLoop::TimerId close_timer_ = 0;  // the orderly-close linger
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
  // The listener, OnClosed once, the timers above, deferred work; last, so that it is destroyed
  // first and no task or timer of this transport runs during or after its destruction.
  TransportEnd end_{loop_};
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

class TlsFactory : public TransportFactory {
 public:
  absl::string_view name() const override { return "tls"; }
  const google::protobuf::Descriptor* config_type() const override {
    return TlsConfig::descriptor();
  }
  Kind kind() const override { return Kind::kWrapping; }
  absl::StatusOr<std::unique_ptr<ConfiguredTransport>> Configure(
      const google::protobuf::Message& message) const override {
    absl::StatusOr<std::shared_ptr<TlsShared>> shared = tls_internal::BuildTlsShared(
        static_cast<const TlsConfig&>(message),
        {TlsTransport::VerifyCallback, TlsTransport::NewSessionCallback});
    if (!shared.ok()) return shared.status();
    return std::unique_ptr<ConfiguredTransport>(new ConfiguredTls(std::move(shared).value()));
  }
};

}  // namespace

void RegisterTlsTransport(Registry::Builder& builder) {
  builder.AddTransport(std::make_unique<TlsFactory>());
}

}  // namespace hublink
