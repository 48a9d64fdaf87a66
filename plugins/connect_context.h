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
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "plugins/event_loop.h"

namespace hublink {

class Signer;

// One handshake phase of an attempt, as a layer reported it: "dns", "tcp", "proxy", "tls", "ws",
// "connack", or a custom plugin's own name.
struct ConnectPhase {
  std::string name;
  absl::Duration duration = absl::ZeroDuration();  // so far, while !done
  std::string detail;                              // e.g. "resumed" for a TLS session resumption
  bool done = false;                               // false: the attempt ended inside this phase
};

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

  // Phase timings, so the owner can show where an attempt spent its time and in which phase it
  // failed. A layer brackets each phase of its own handshake: BeginPhase when it starts waiting on
  // the network, EndPhase when that wait is over. Phases are kept in the order they began.
  void BeginPhase(absl::string_view name) {
    phases_.push_back(ConnectPhase{std::string(name)});
    phase_started_.push_back(loop_.Now());
  }
  void EndPhase(absl::string_view name, absl::string_view detail = absl::string_view()) {
    for (size_t i = phases_.size(); i-- > 0;) {
      if (phases_[i].name != name || phases_[i].done) continue;
      phases_[i].done = true;
      phases_[i].duration = loop_.Now() - phase_started_[i];
      phases_[i].detail = std::string(detail);
      return;
    }
  }
  // Every phase so far; one still open has its duration up to now.
  std::vector<ConnectPhase> phases() const {
    std::vector<ConnectPhase> phases = phases_;
    absl::Time now = loop_.Now();
    for (size_t i = 0; i < phases.size(); ++i) {
      if (!phases[i].done) phases[i].duration = now - phase_started_[i];
    }
    return phases;
  }

  // Bytes the base transport moved on the wire for this attempt (what a metered link bills).
  void CountBytesIn(size_t n) { bytes_in_ += n; }
  void CountBytesOut(size_t n) { bytes_out_ += n; }
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }

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
  std::vector<ConnectPhase> phases_;
  std::vector<absl::Time> phase_started_;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
};

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_CONNECT_CONTEXT_H_
