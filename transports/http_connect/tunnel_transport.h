// The common shape of a proxy tunnel (http_connect, socks5): a wrapping transport that opens the
// connection to the proxy below it, runs a handshake asking the proxy for a tunnel to the
// endpoint, then passes bytes through unchanged in both directions.
//
// A subclass supplies the handshake: StartHandshake() when the layer below opened (send the first
// request with SendHandshake()), OnHandshakeData() for each read from the proxy, and finally
// HandshakeDone() with the bytes that followed the proxy's answer (they are the endpoint's first
// bytes and go up after OnOpen()) or Fail() with the reason. Before the layer below is opened, a
// subclass may do asynchronous preparation (socks5 resolving the endpoint locally): Prepare()
// returns false and calls PrepareDone() later from the loop.
#ifndef HUBLINK_TRANSPORTS_HTTP_CONNECT_TUNNEL_TRANSPORT_H_
#define HUBLINK_TRANSPORTS_HTTP_CONNECT_TUNNEL_TRANSPORT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "google/protobuf/duration.pb.h"
#include "plugins/connect_context.h"
#include "plugins/event_loop.h"
#include "plugins/transport.h"
#include "plugins/weak_guard.h"

namespace hublink {

class TunnelTransport : public Transport, private TransportListener {
 public:
  // `layer` prefixes every message ("http_connect"). `handshake_timeout` unset: the attempt's
  // deadline, else 10 s.
  TunnelTransport(std::string layer, ConnectContext& context, std::unique_ptr<Transport> lower,
                  absl::optional<absl::Duration> handshake_timeout);
  ~TunnelTransport() override;

  void Open(TransportListener* listener) final;
  absl::Status Write(absl::string_view bytes) final;
  void Close() final;
  size_t BufferedBytes() const final { return lower_->BufferedBytes(); }
  bool AboveSoftLimit() const final { return state_ == State::kOpen && lower_->AboveSoftLimit(); }

 protected:
  // Runs inside Open(), before the layer below is opened. Return true when ready at once; false
  // to open later: then call PrepareDone() from the loop (never from inside Prepare()).
  virtual bool Prepare() { return true; }
  void PrepareDone(const absl::Status& status);

  // The layer below opened: send the first request.
  virtual void StartHandshake() = 0;
  // Bytes from the proxy while the handshake runs.
  virtual void OnHandshakeData(absl::string_view bytes) = 0;
  // For the timeout and early-close messages, e.g. "12 bytes of the proxy's answer received".
  virtual std::string HandshakeProgress() const = 0;

  // Sends handshake bytes to the proxy and wipes them (they may hold credentials). A failure ends
  // the connection.
  void SendHandshake(std::string& bytes);
  // The tunnel is up: reports `stage` to the context, OnOpen() upward, then `leftover` as data.
  void HandshakeDone(std::string leftover, absl::string_view stage);
  // Ends the connection with `status` (its message starts with the layer's name).
  void Fail(const absl::Status& status);

  const std::string& layer() const { return layer_; }
  ConnectContext& context() const { return context_; }
  EventLoop& loop() const { return loop_; }
  // The endpoint host:port the tunnel leads to (IPv6 literals bracketed).
  std::string Target() const;
  bool handshaking() const { return state_ == State::kHandshaking; }
  const WeakGuard& guard() const { return guard_; }

 private:
  enum class State { kIdle, kPreparing, kOpening, kHandshaking, kOpen, kClosing, kClosed };

  void OnOpen() override;
  void OnData(absl::string_view bytes) override;
  void OnClosed(const absl::Status& status) override;
  void OnWritable() override;

  void OpenBelow();
  absl::Time HandshakeDeadline() const;
  void Deliver(const absl::Status& status);
  void CancelTimer();

  const std::string layer_;
  ConnectContext& context_;
  EventLoop& loop_;
  std::unique_ptr<Transport> lower_;
  const absl::optional<absl::Duration> handshake_timeout_;
  TransportListener* listener_ = nullptr;
  State state_ = State::kIdle;
  bool opened_ = false;
  bool delivered_ = false;
  EventLoop::TimerId timer_ = 0;
  WeakGuard guard_;
};

// Config helpers every proxy layer shares. `layer` ("http_connect", "socks5") starts each error.
//
// The password given inline (`from_file` false) or read from the file named by `value`, wiped like
// every secret; one trailing newline (LF or CRLF), as editors and `echo` leave it, is dropped, and
// an empty file is an error.
absl::StatusOr<std::string> LoadProxyPassword(absl::string_view layer, bool from_file,
                                              const std::string& value);
// handshake_timeout when set (it must be positive), else nullopt.
absl::StatusOr<absl::optional<absl::Duration>> ProxyHandshakeTimeout(
    absl::string_view layer, bool has_timeout, const google::protobuf::Duration& timeout);

}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_HTTP_CONNECT_TUNNEL_TRANSPORT_H_
