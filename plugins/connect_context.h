// What every layer of one connection attempt shares: the loop, the endpoint, the deadline, the
// signer, and facts a layer learns for the layers above (the server's clock from a WebSocket 101
// `Date` header).
//
// The owner of the attempt (a Client, a test, an example) creates one ConnectContext per attempt
// and keeps it alive until every transport of that attempt is destroyed.
#ifndef HUBLINK_PLUGINS_CONNECT_CONTEXT_H_
#define HUBLINK_PLUGINS_CONNECT_CONTEXT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "plugins/event_loop.h"

namespace hublink {

class Signer;

class ConnectContext {
 public:
  // Called at each handshake milestone, e.g. ("tcp", "connected 127.0.0.1:443") or ("websocket",
  // "upgrade 101"). Examples log these the way the Tencent SDK's sample shows its transport stages.
  using StageObserver = std::function<void(absl::string_view layer, absl::string_view detail)>;

  ConnectContext(EventLoop& loop, std::string host, uint16_t port)
      : loop_(loop), host_(std::move(host)), port_(port) {}

  EventLoop& loop() const { return loop_; }
  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }

  // When the whole stack must be open (all handshakes done). InfiniteFuture() means no deadline.
  absl::Time deadline() const { return deadline_; }
  void set_deadline(absl::Time deadline) { deadline_ = deadline; }

  // How long the base transport may take to establish its connection (the pipeline's
  // policy.connect_timeout); unset: the transport's own default. The deadline above still caps it.
  absl::optional<absl::Duration> connect_timeout() const { return connect_timeout_; }
  void set_connect_timeout(absl::Duration timeout) { connect_timeout_ = timeout; }

  // The pipeline's signer, or null. Layers that sign their own handshake (e.g. WebSocket headers
  // for clouds that authenticate the upgrade) ask it here; MQTT asks it for CONNECT credentials.
  Signer* signer() const { return signer_; }
  void set_signer(Signer* signer) { signer_ = signer; }

  // server clock - local clock, when some layer has learned it (WebSocket `Date`, a time-sync
  // reply).
  absl::optional<absl::Duration> server_clock_offset() const { return server_clock_offset_; }
  void set_server_clock_offset(absl::Duration offset) { server_clock_offset_ = offset; }
  // The best known estimate of the server's current time.
  absl::Time ServerNow() const {
    return loop_.Now() + server_clock_offset_.value_or(absl::ZeroDuration());
  }

  void set_stage_observer(StageObserver observer) { stage_observer_ = std::move(observer); }
  void ReportStage(absl::string_view layer, absl::string_view detail) const {
    if (stage_observer_) stage_observer_(layer, detail);
  }

 private:
  EventLoop& loop_;
  std::string host_;
  uint16_t port_;
  absl::Time deadline_ = absl::InfiniteFuture();
  absl::optional<absl::Duration> connect_timeout_;
  Signer* signer_ = nullptr;
  absl::optional<absl::Duration> server_clock_offset_;
  StageObserver stage_observer_;
};

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_CONNECT_CONTEXT_H_
