#include "transports/http_connect/tunnel_transport.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "auth/secret_file.h"
#include "plugins/duration.h"
#include "plugins/status_macros.h"

namespace hublink {
namespace {

constexpr absl::Duration kDefaultHandshakeTimeout = absl::Seconds(10);

}  // namespace

TunnelTransport::TunnelTransport(std::string layer, ConnectContext& context,
                                 std::unique_ptr<Transport> lower,
                                 absl::optional<absl::Duration> handshake_timeout)
    : layer_(std::move(layer)),
      context_(context),
      loop_(context.loop()),
      lower_(std::move(lower)),
      handshake_timeout_(handshake_timeout) {}

TunnelTransport::~TunnelTransport() { CancelTimer(); }

std::string TunnelTransport::Target() const {
  const std::string& host = context_.host();
  return absl::StrContains(host, ':') ? absl::StrCat("[", host, "]:", context_.port())
                                      : absl::StrCat(host, ":", context_.port());
}

void TunnelTransport::Open(TransportListener* listener) {
  if (opened_) {
    // API misuse: the connection ends with kFailedPrecondition. The first listener hears it (the
    // second Open() does not take it over), and so does a different second listener; both from
    // the loop, never from here.
    absl::Status misuse =
        absl::FailedPreconditionError(absl::StrCat(layer_, ": Open() called twice"));
    if (listener != nullptr && listener != listener_) {
      loop_.Post(guard_.Wrap([listener, misuse] { listener->OnClosed(misuse); }));
    }
    loop_.Post(guard_.Wrap([this, misuse] { Fail(misuse); }));
    return;
  }
  opened_ = true;
  listener_ = listener;
  if (state_ != State::kIdle) {
    // Closed before it was opened: report that end now that there is someone to tell.
    loop_.Post(guard_.Wrap([this] {
      Deliver(absl::FailedPreconditionError(absl::StrCat(layer_, ": Open() after Close()")));
    }));
    return;
  }
  state_ = State::kPreparing;
  if (Prepare()) {
    OpenBelow();
    return;
  }
  timer_ = loop_.RunAt(HandshakeDeadline(), guard_.Wrap([this] {
    timer_ = 0;
    Fail(absl::DeadlineExceededError(absl::StrCat(layer_, ": preparing the tunnel to ", Target(),
                                                  " timed out (", HandshakeProgress(), ")")));
  }));
}

void TunnelTransport::PrepareDone(const absl::Status& status) {
  if (state_ != State::kPreparing) return;
  CancelTimer();
  if (!status.ok()) {
    Fail(status);
    return;
  }
  OpenBelow();
}

void TunnelTransport::OpenBelow() {
  state_ = State::kOpening;
  lower_->Open(this);
}

absl::Time TunnelTransport::HandshakeDeadline() const {
  if (handshake_timeout_.has_value()) {
    return std::min(loop_.Now() + *handshake_timeout_, context_.deadline());
  }
  return context_.deadline() == absl::InfiniteFuture() ? loop_.Now() + kDefaultHandshakeTimeout
                                                       : context_.deadline();
}

absl::Status TunnelTransport::Write(absl::string_view bytes) {
  if (state_ != State::kOpen) {
    const char* what = state_ == State::kClosing  ? "closing"
                       : state_ == State::kClosed ? "closed"
                                                  : "not yet open";
    return absl::FailedPreconditionError(
        absl::StrCat(layer_, ": write on a ", what, " connection"));
  }
  return lower_->Write(bytes);
}

void TunnelTransport::Close() {
  switch (state_) {
    case State::kIdle:
    case State::kPreparing:
    case State::kOpening:
    case State::kHandshaking:
      if (state_ == State::kOpening || state_ == State::kHandshaking) lower_->Close();
      state_ = State::kClosed;
      CancelTimer();
      loop_.Post(guard_.Wrap([this] { Deliver(absl::OkStatus()); }));
      return;
    case State::kOpen:
      // Nothing of our own to say goodbye with: the tunnel ends when the connection below does.
      state_ = State::kClosing;
      lower_->Close();
      return;
    case State::kClosing:
    case State::kClosed:
      return;
  }
}

void TunnelTransport::SendHandshake(std::string& bytes) {
  absl::Status sent = lower_->Write(bytes);
  auth::Wipe(bytes);
  if (!sent.ok()) Fail(Annotate(sent, absl::StrCat(layer_, ": sending the handshake")));
}

void TunnelTransport::HandshakeDone(std::string leftover, absl::string_view stage) {
  if (state_ != State::kHandshaking) return;
  CancelTimer();
  state_ = State::kOpen;
  context_.EndPhase("proxy");
  context_.ReportStage(layer_, stage);
  listener_->OnOpen();
  // Bytes that came with the proxy's answer are the endpoint's (a greeting, a TLS ServerHello).
  if (!leftover.empty() && (state_ == State::kOpen || state_ == State::kClosing)) {
    listener_->OnData(leftover);
  }
}

void TunnelTransport::Fail(const absl::Status& status) {
  if (state_ == State::kClosed) return;
  if (state_ != State::kIdle && state_ != State::kPreparing) lower_->Close();
  state_ = State::kClosed;
  CancelTimer();
  Deliver(status);
}

void TunnelTransport::OnOpen() {
  if (state_ != State::kOpening) return;
  state_ = State::kHandshaking;
  // Both proxy layers (http_connect, socks5) time as "proxy": what a user compares across them.
  context_.BeginPhase("proxy");
  timer_ = loop_.RunAt(HandshakeDeadline(), guard_.Wrap([this] {
    timer_ = 0;
    Fail(absl::DeadlineExceededError(absl::StrCat(layer_, ": the proxy did not open the tunnel to ",
                                                  Target(), " in time (", HandshakeProgress(),
                                                  ")")));
  }));
  StartHandshake();
}

void TunnelTransport::OnData(absl::string_view bytes) {
  if (state_ == State::kHandshaking) {
    OnHandshakeData(bytes);
  } else if (state_ == State::kOpen || state_ == State::kClosing) {
    listener_->OnData(bytes);
  }
}

void TunnelTransport::OnClosed(const absl::Status& status) {
  switch (state_) {
    case State::kIdle:
    case State::kPreparing:
    case State::kClosed:
      return;
    case State::kHandshaking:
      state_ = State::kClosed;
      CancelTimer();
      Deliver(status.ok() ? absl::UnavailableError(absl::StrCat(
                                layer_, ": the proxy closed the connection before the tunnel to ",
                                Target(), " was open (", HandshakeProgress(), ")"))
                          : Annotate(status, absl::StrCat(layer_, ": during the handshake")));
      return;
    case State::kOpening:
    case State::kOpen:
    case State::kClosing:
      // The connection to the proxy failed, or the tunnel ended (the proxy passes the endpoint's
      // close on as its own): reported as the layer below saw it.
      state_ = State::kClosed;
      CancelTimer();
      Deliver(status);
      return;
  }
}

void TunnelTransport::OnWritable() {
  if (state_ == State::kOpen) listener_->OnWritable();
}

void TunnelTransport::Deliver(const absl::Status& status) {
  state_ = State::kClosed;
  // With no listener yet (Close() before Open()), Open() reports the end later.
  if (delivered_ || listener_ == nullptr) return;
  delivered_ = true;
  listener_->OnClosed(status);
}

void TunnelTransport::CancelTimer() {
  if (timer_ != 0) loop_.Cancel(timer_);
  timer_ = 0;
}

absl::StatusOr<std::string> LoadProxyPassword(absl::string_view layer, bool from_file,
                                              const std::string& value) {
  if (!from_file) {
    std::string password;
    password.reserve(value.size());  // one block, so that wiping it leaves no other copy
    password.append(value);
    return password;
  }
  absl::StatusOr<std::string> read = auth::ReadSecretFile(layer, "password_file", value);
  if (!read.ok()) return read.status();
  std::string password = *std::move(read);
  for (char strip : {'\n', '\r'}) {
    if (!password.empty() && password.back() == strip) {
      password.back() = '\0';
      password.pop_back();
    }
  }
  if (password.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(layer, ": password_file ", value, ": the password is empty"));
  }
  return password;
}

absl::StatusOr<absl::optional<absl::Duration>> ProxyHandshakeTimeout(
    absl::string_view layer, bool has_timeout, const google::protobuf::Duration& timeout) {
  if (!has_timeout) return absl::optional<absl::Duration>();
  if (timeout.seconds() < 0 || timeout.nanos() < 0 ||
      (timeout.seconds() == 0 && timeout.nanos() == 0)) {
    return absl::InvalidArgumentError(absl::StrCat(layer, ": handshake_timeout: must be positive"));
  }
  return absl::optional<absl::Duration>(ToDuration(timeout));
}

}  // namespace hublink
