#include "protocols/mqtt/client.h"

#include <stdio.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/types/optional.h"
#include "plugins/duration.h"
#include "plugins/log.h"
#include "plugins/read_file.h"
#include "plugins/status_macros.h"
#include "plugins/weak_guard.h"
#include "protocols/mqtt/file_store/file_store.h"

namespace hublink {
namespace {

absl::Duration DurationOr(bool has, const google::protobuf::Duration& d, absl::Duration fallback) {
  return has ? ToDuration(d) : fallback;
}

absl::Status ClientGone() {
  return absl::CancelledError("client: destroyed before the operation completed");
}

// A completion that runs exactly once: when resolved, or with kCancelled when the last copy is
// dropped unresolved (a task that never ran because the client went away).
class OnceCompletion {
 public:
  explicit OnceCompletion(mqtt::Completion done) : done_(std::move(done)) {}
  ~OnceCompletion() {
    if (done_) done_(ClientGone());
  }
  void Resolve(const absl::Status& status) {
    mqtt::Completion done = std::move(done_);
    done_ = nullptr;
    if (done) done(status);
  }

 private:
  mqtt::Completion done_;
};

mqtt::Completion MakeOnce(mqtt::Completion done) {
  if (!done) return nullptr;
  auto once = std::make_shared<OnceCompletion>(std::move(done));
  return [once](const absl::Status& status) { once->Resolve(status); };
}

// A completion that fulfils a promise; returns the future through `future`.
mqtt::Completion MakePromise(std::future<absl::Status>* future) {
  auto promise = std::make_shared<std::promise<absl::Status>>();
  *future = promise->get_future();
  return MakeOnce([promise](const absl::Status& status) { promise->set_value(status); });
}

}  // namespace

const char* ConnectionEventKindName(ConnectionEvent::Kind kind) {
  switch (kind) {
    case ConnectionEvent::Kind::kConnected:
      return "connected";
    case ConnectionEvent::Kind::kLost:
      return "connection lost";
    case ConnectionEvent::Kind::kReconnecting:
      return "reconnecting";
    case ConnectionEvent::Kind::kReconnected:
      return "reconnected";
    case ConnectionEvent::Kind::kGaveUp:
      return "gave up";
    case ConnectionEvent::Kind::kDisconnected:
      return "disconnected";
    case ConnectionEvent::Kind::kReturning:
      return "returning to the primary stack";
  }
  return "?";
}

std::string DescribeConnectionEvent(const ConnectionEvent& event) {
  std::string text = ConnectionEventKindName(event.kind);
  switch (event.kind) {
    case ConnectionEvent::Kind::kConnected:
    case ConnectionEvent::Kind::kReconnected:
      absl::StrAppend(&text, " (session present: ", event.session_present ? 1 : 0, ")");
      break;
    case ConnectionEvent::Kind::kReconnecting:
      absl::StrAppend(&text, " in ", ReadableDuration(event.delay), " (retry ", event.attempt, ")");
      break;
    default:
      break;
  }
  if (!event.reason.ok()) absl::StrAppend(&text, ": ", event.reason.message());
  return text;
}

std::string DescribeConnectPhases(const std::vector<ConnectPhase>& phases) {
  std::string text;
  for (const ConnectPhase& phase : phases) {
    if (!text.empty()) text += " \u00b7 ";
    absl::StrAppend(&text, phase.name, phase.done ? " " : " failed after ",
                    ReadableDuration(phase.duration));
    if (!phase.detail.empty()) absl::StrAppend(&text, " (", phase.detail, ")");
  }
  return text.empty() ? "no phase timed" : text;
}

class Client::Impl : public mqtt::SessionObserver, public mqtt::FileStoreEventSink {
 public:
  Impl(std::shared_ptr<const ResolvedPipeline> pipeline, Options options, EventLoop& loop,
       std::unique_ptr<Protocol> protocol, mqtt::Session* session)
      : pipeline_(std::move(pipeline)),
        options_(std::move(options)),
        loop_(loop),
        protocol_(std::move(protocol)),
        session_(session),
        loop_clock_(loop),
        clock_(options_.clock != nullptr ? *options_.clock : loop_clock_),
        rng_(options_.seed != 0 ? options_.seed : std::random_device()()) {
    const ConnectionPolicy& policy = pipeline_->config().policy();
    const ReconnectPolicy& r = policy.reconnect();
    handshake_timeout_ =
        DurationOr(policy.has_handshake_timeout(), policy.handshake_timeout(), absl::Seconds(20));
    if (policy.has_connect_timeout()) {
      connect_timeout_ = ToDuration(policy.connect_timeout());
    }
    initial_delay_ = DurationOr(r.has_initial_delay(), r.initial_delay(), absl::Seconds(1));
    max_delay_ = DurationOr(r.has_max_delay(), r.max_delay(), absl::Seconds(60));
    max_delay_ = std::max(max_delay_, initial_delay_);
    multiplier_ = r.multiplier() != 0 ? r.multiplier() : 2.0;
    jitter_ = r.jitter() != 0 ? r.jitter() : 0.2;
    stable_after_ = DurationOr(r.has_stable_after(), r.stable_after(), absl::Seconds(30));
    max_attempts_ = r.max_attempts();
    give_up_after_ = DurationOr(r.has_give_up_after(), r.give_up_after(), absl::ZeroDuration());
    next_delay_ = initial_delay_;
    reprobe_interval_ =
        DurationOr(policy.has_reprobe_interval(), policy.reprobe_interval(), absl::Minutes(15));
    state_file_ = policy.state_file();
    if (pipeline_->stack_count() > 1) LoadRememberedStack();
    handoff_max_messages_ = session_->options().max_queued_messages;
    handoff_max_bytes_ = session_->options().max_queued_bytes;
    session_->set_observer(this);
    if (options_.clock != nullptr) session_->set_clock(*options_.clock);
  }

  ~Impl() override {
    // Teardown() ran already (loop thread); these are only for a loop that never ran.
    FailHandedOff();
    session_->set_observer(nullptr);
    loop_clock_.Cancel(flush_timer_);
  }

  // Opens MqttConfig.store.file and hands it to the session (Create, before the loop runs).
  absl::Status OpenStore() {
    const auto& config = session_->options().file_store;
    if (!config.has_value()) return absl::OkStatus();
    absl::StatusOr<std::unique_ptr<mqtt::FileMessageStore>> store =
        mqtt::FileMessageStore::Open(*config, this);
    if (!store.ok()) return store.status();
    mqtt::FileMessageStore* raw = store->get();
    HUBLINK_RETURN_IF_ERROR(session_->ReplaceStore(std::move(store).value()));
    file_store_ = raw;
    if (raw->size() > 0) {
      HLOG(INFO) << "client: store " << raw->path() << ": " << raw->size()
                 << " messages recovered; they go out after CONNACK";
    }
    return absl::OkStatus();
  }

  // mqtt::FileStoreEventSink: from inside the store's call (loop thread, or Create's thread for
  // recovery events).
  void OnFileStoreEvent(const mqtt::FileStoreEvent& event) override {
    if (event.kind == mqtt::FileStoreEvent::Kind::kCompacted) {
      HLOG(INFO) << "client: " << event.message;
    } else {
      HLOG(WARNING) << "client: " << event.message;
    }
    if (options_.on_store_event) options_.on_store_event(event);
  }

  // BATCH: makes sure Flush() runs at the store's NextFlush(). Loop thread.
  void ArmFlush() {
    if (file_store_ == nullptr || flush_timer_ != 0) return;
    absl::Time next = file_store_->NextFlush();
    if (next == absl::InfiniteFuture()) return;
    flush_timer_ = loop_clock_.RunAt(next, guard_.Wrap([this] {
      flush_timer_ = 0;
      if (file_store_ == nullptr) return;
      absl::Status flushed = file_store_->Flush();  // a failure is also a kSyncFailed event
      if (!flushed.ok()) HLOG(WARNING) << "client: store flush: " << flushed;
      ArmFlush();
    }));
  }

  EventLoop& loop() { return loop_; }
  bool connected() const { return connected_.load(); }
  size_t pending() const { return session_->queued() + session_->inflight(); }

  ClientStats stats() const {
    ClientStats stats = stats_;
    stats.bytes_in = bytes_in_;
    stats.bytes_out = bytes_out_;
    if (attempt_ != nullptr && !attempt_->finished) {
      stats.bytes_in += attempt_->ctx->bytes_in();
      stats.bytes_out += attempt_->ctx->bytes_out();
    }
    stats.messages_in = session_->publishes_received();
    stats.messages_out = session_->publishes_sent();
    stats.queued = session_->queued();
    stats.inflight = session_->inflight();
    stats.connected = connected_.load();
    const Endpoint& current = pipeline_->stack_endpoint(stack_);
    stats.endpoint = absl::StrCat(current.host(), ":", current.port(), " (",
                                  pipeline_->DescribeStack(stack_), ")");
    return stats;
  }

  // Runs `fn` on the loop thread unless the client is gone by then: at once when already there (a
  // handler or completion calling back, or a caller-driven loop); from other threads through the
  // hand-off FIFO, so calls keep their order (a Publish after a Subscribe runs after it).
  template <typename Fn>
  static void Post(const std::shared_ptr<Impl>& self, Fn fn) {
    if (self->loop_.IsLoopThread()) {
      fn(*self);
      return;
    }
    std::lock_guard<std::mutex> lock(self->handoff_mutex_);
    PendingCall& slot = self->NextSlot();
    slot.call = std::move(fn);
    self->CommitSlot(self);
  }

  // Publishes from other threads land in reusable slots of the same FIFO: after warm-up, copying a
  // topic and payload into a slot allocates nothing, and one drain task is posted per batch rather
  // than one task per publish.
  //
  // The FIFO is bounded by the offline queue's limits (MqttConfig.offline_queue): a thread that
  // publishes faster than the loop takes the messages would otherwise grow it without limit in
  // front of the session's own bounded queue. A publish that does not fit fails at once with
  // kResourceExhausted, which is the publisher's backpressure: wait for earlier completions.
  static void PostPublish(const std::shared_ptr<Impl>& self, absl::string_view topic,
                          absl::string_view payload, int qos, bool retain, mqtt::Completion done) {
    const size_t bytes = topic.size() + payload.size();
    size_t waiting = 0, waiting_bytes = 0;
    {
      std::lock_guard<std::mutex> lock(self->handoff_mutex_);
      if (self->handoff_publishes_ + 1 <= self->handoff_max_messages_ &&
          self->handoff_bytes_ + bytes <= self->handoff_max_bytes_) {
        PendingCall& slot = self->NextSlot();
        slot.topic.assign(topic.data(), topic.size());
        slot.payload.assign(payload.data(), payload.size());
        slot.qos = qos;
        slot.retain = retain;
        slot.done = std::move(done);
        ++self->handoff_publishes_;
        self->handoff_bytes_ += bytes;
        self->CommitSlot(self);
        return;
      }
      waiting = self->handoff_publishes_;
      waiting_bytes = self->handoff_bytes_;
    }
    // Outside the lock: the completion is user code.
    if (done) {
      done(absl::ResourceExhaustedError(absl::StrCat(
          "client: publish to \"", topic, "\" rejected: ", waiting, " publishes (", waiting_bytes,
          " bytes) are waiting for the event loop to take them, and one more of ", bytes,
          " bytes would pass the offline_queue limits (", self->handoff_max_messages_,
          " messages, ", self->handoff_max_bytes_,
          " bytes); wait for earlier publishes to complete before publishing more")));
    }
  }

  void SetServerClockOffset(absl::Duration offset) {
    clock_offset_ = offset;
    clock_offset_explicit_ = true;
    if (attempt_ != nullptr) attempt_->ctx->set_server_clock_offset(offset);
  }

  void Connect() {
    want_connected_ = true;
    if (state_ != State::kIdle) return;
    permanent_error_ = absl::OkStatus();
    returning_ = false;
    failures_ = 0;
    next_delay_ = initial_delay_;
    StartAttempt();
  }

  void Disconnect(mqtt::Completion done) {
    want_connected_ = false;
    switch (state_) {
      case State::kIdle:
        if (done) done(absl::OkStatus());
        return;
      case State::kWaiting:
        clock_.Cancel(reconnect_timer_);
        reconnect_timer_ = 0;
        state_ = State::kIdle;
        ++transitions_;
        Emit({ConnectionEvent::Kind::kDisconnected, absl::OkStatus()});
        if (done) done(absl::OkStatus());
        return;
      case State::kConnecting:
        if (done) disconnect_waiters_.push_back(std::move(done));
        FinishAttempt(attempt_.get(), absl::CancelledError("client: disconnect requested"));
        return;
      case State::kUp:
        if (done) disconnect_waiters_.push_back(std::move(done));
        // DISCONNECT, then an orderly close; FinishAttempt runs when the transports report closed.
        session_->Disconnect();
        return;
    }
  }

  // `owned_payload`, when set, holds `payload` and the session may take its buffer.
  void Publish(absl::string_view topic, absl::string_view payload, int qos, bool retain,
               mqtt::Completion done, std::string* owned_payload = nullptr) {
    if (qos < 0 || qos > 2) {
      if (done)
        done(absl::InvalidArgumentError(absl::StrCat("mqtt: QoS ", qos, " is not 0, 1 or 2")));
      return;
    }
    if (owned_payload != nullptr) {
      session_->PublishTaking(topic, *owned_payload, static_cast<uint8_t>(qos), retain,
                              std::move(done));
    } else {
      session_->Publish(topic, payload, static_cast<uint8_t>(qos), retain, std::move(done));
    }
    ArmFlush();
  }

  void Subscribe(std::string filter, int qos, mqtt::MessageHandler handler, mqtt::Completion done) {
    if (qos < 0 || qos > 2) {
      if (done)
        done(absl::InvalidArgumentError(absl::StrCat("mqtt: QoS ", qos, " is not 0, 1 or 2")));
      return;
    }
    session_->Subscribe(filter, static_cast<uint8_t>(qos), std::move(handler), std::move(done));
  }

  void Unsubscribe(std::string filter, mqtt::Completion done) {
    session_->Unsubscribe(filter, std::move(done));
  }

  // Runs what other threads handed off, oldest first; bounded per turn so a flood of publishes
  // cannot starve the loop's sockets and timers.
  void DrainHandedOff(const std::shared_ptr<Impl>& self) {
    for (int ran = 0;; ++ran) {
      {
        std::lock_guard<std::mutex> lock(handoff_mutex_);
        if (handoff_count_ == 0) {
          drain_posted_ = false;
          return;
        }
        if (ran == kMaxDrainPerTurn) {
          PostDrain(self);  // still flagged as posted
          return;
        }
        PendingCall& slot = handoff_[handoff_head_];
        // Swap, not copy: the slot keeps the scratch strings' capacity for its next use, and the
        // data stays valid here even if another thread grows the ring meanwhile.
        if (!slot.call) {
          --handoff_publishes_;
          handoff_bytes_ -= slot.topic.size() + slot.payload.size();
        }
        running_.topic.swap(slot.topic);
        running_.payload.swap(slot.payload);
        running_.qos = slot.qos;
        running_.retain = slot.retain;
        running_.done = std::move(slot.done);
        running_.call = std::move(slot.call);
        slot.done = nullptr;
        slot.call = nullptr;
        handoff_head_ = (handoff_head_ + 1) % handoff_.size();
        --handoff_count_;
      }
      if (running_.call) {
        std::function<void(Impl&)> call = std::move(running_.call);
        running_.call = nullptr;
        call(*this);
      } else {
        // A message that has to wait takes the slot's buffer rather than a second copy; the slot
        // then allocates again on its next use.
        Publish(running_.topic, running_.payload, running_.qos, running_.retain,
                std::move(running_.done), &running_.payload);
        running_.done = nullptr;
      }
    }
  }

  // Resolves what was handed off but will never run: publishes with kCancelled, other calls by
  // dropping them (their completions resolve kCancelled when destroyed). Outside the lock, since
  // completions run user code.
  void FailHandedOff() {
    std::vector<mqtt::Completion> orphans;
    std::vector<std::function<void(Impl&)>> dropped;
    {
      std::lock_guard<std::mutex> lock(handoff_mutex_);
      for (; handoff_count_ > 0; --handoff_count_) {
        PendingCall& slot = handoff_[handoff_head_];
        if (!slot.call) {
          --handoff_publishes_;
          handoff_bytes_ -= slot.topic.size() + slot.payload.size();
        }
        if (slot.done) orphans.push_back(std::move(slot.done));
        if (slot.call) dropped.push_back(std::move(slot.call));
        slot.done = nullptr;
        slot.call = nullptr;
        handoff_head_ = (handoff_head_ + 1) % handoff_.size();
      }
    }
    dropped.clear();
    for (mqtt::Completion& done : orphans) done(ClientGone());
  }

  // ~Client: ends everything without waiting, on the loop thread (posted to the client's own loop;
  // with Options::loop, run at once, on that loop's thread or while it is stopped). The link is
  // abandoned after a best-effort DISCONNECT, timers and the re-probe stop, pending completions
  // fail (a durable store keeps its messages), Disconnect() waiters resolve.
  void Teardown() {
    FailHandedOff();
    want_connected_ = false;
    clock_.Cancel(reconnect_timer_);
    reconnect_timer_ = 0;
    clock_.Cancel(reprobe_timer_);
    reprobe_timer_ = 0;
    probe_.reset();  // not inside its callback: Teardown runs from the client's destructor
    retired_probes_.clear();
    if (attempt_ != nullptr) {
      if (state_ == State::kUp) session_->Disconnect();  // best effort: DISCONNECT is on its way
      attempt_->finished = true;
      if (attempt_->opened) session_->OnLinkClosed(ClientGone());
      attempt_.reset();
    }
    graveyard_.clear();
    connected_ = false;
    state_ = State::kIdle;
    loop_clock_.Cancel(flush_timer_);
    flush_timer_ = 0;
    // A durable store keeps what it holds for the next client on it; the completions still end.
    session_->FailPending(
        file_store_ != nullptr
            ? absl::CancelledError(absl::StrCat(
                  "client: destroyed before the operation completed; the message stays in the "
                  "store ",
                  file_store_->path(), " for the next client on it"))
            : ClientGone(),
        /*keep_stored=*/file_store_ != nullptr);
    auto waiters = std::move(disconnect_waiters_);
    for (auto& done : waiters) done(absl::OkStatus());
  }

  // mqtt::SessionObserver
  void OnSessionUp(bool session_present) override {
    state_ = State::kUp;
    ++transitions_;
    up_since_ = clock_.Now();
    connected_ = true;
    ConnectionEvent event{
        ever_connected_ ? ConnectionEvent::Kind::kReconnected : ConnectionEvent::Kind::kConnected,
        absl::OkStatus()};
    event.session_present = session_present;
    if (attempt_ != nullptr) event.phases = attempt_->ctx->phases();
    if (pipeline_->stack_count() > 1) {
      RememberStack();
      if (stack_ != 0) ArmReprobe();
    }
    ++stats_.connects;
    if (ever_connected_) ++stats_.reconnects;
    stats_.last_connect = event.phases;
    ever_connected_ = true;
    Emit(event);
  }

  void OnSubscriptionLost(absl::string_view filter, const absl::Status& status) override {
    HLOG(WARNING) << "client: subscription to \"" << filter << "\" lost: " << status.message();
  }

  // The link closes with `status` next; HandleFailure gives up instead of reconnecting.
  void OnPermanentError(const absl::Status& status) override { permanent_error_ = status; }

 private:
  enum class State { kIdle, kConnecting, kUp, kWaiting };

  // One connection attempt: its context, its transport stack, and the link the session sees.
  struct Attempt : public TransportListener, public ProtocolLink {
    explicit Attempt(Impl* impl) : impl(impl) {}
    ~Attempt() override {
      // The transports go first: they may reference the context.
      transport.reset();
    }
    // TransportListener
    void OnOpen() override {
      if (finished) return;
      opened = true;
      impl->session_->OnLinkOpen(*this);
    }
    void OnData(absl::string_view bytes) override {
      if (!finished && !closing) {
        Impl* owner = impl;  // the attempt may be retired meanwhile; the Impl stays
        const uint64_t packets_before = owner->session_->packets_received();
        const uint64_t publishes_before = owner->session_->publishes_received();
        const uint64_t sent_before = owner->session_->publishes_sent();
        owner->session_->OnLinkData(bytes);
        owner->ModerateIfStreaming(owner->session_->packets_received() - packets_before,
                                   owner->session_->publishes_received() - publishes_before,
                                   sent_before, owner->session_->inflight());
        owner->ArmFlush();  // acknowledgements are store writes too (BATCH syncs them in time)
      }
    }
    void OnWritable() override {
      if (!finished && opened) impl->session_->OnLinkWritable();
    }
    void OnClosed(const absl::Status& status) override {
      transport_closed = true;
      absl::Status reason = status;
      if (closing) {
        reason = close_reason;  // our own close: OK for a goodbye, else the protocol's reason
      } else if (reason.ok()) {
        reason =
            absl::UnavailableError(opened ? "mqtt: the broker closed the connection"
                                          : "client: the connection closed during its handshake");
      }
      impl->FinishAttempt(this, reason);
    }
    // ProtocolLink
    absl::Status Write(absl::string_view bytes) override {
      if (finished || transport == nullptr)
        return absl::FailedPreconditionError("client: link closed");
      return transport->Write(bytes);
    }
    size_t BufferedBytes() const override { return transport ? transport->BufferedBytes() : 0; }
    bool AboveSoftLimit() const override { return transport && transport->AboveSoftLimit(); }
    void Close(const absl::Status& reason) override {
      if (closing || finished) return;
      closing = true;
      close_reason = reason;
      if (reason.ok()) {
        transport->Close();  // orderly: OnClosed follows
        return;
      }
      // A protocol failure (refused, malformed, dead): no goodbye is owed; abandon the transports,
      // but not from inside their own callback.
      impl->loop_.Post(impl->guard_.Wrap([impl = impl, self = this, reason] {
        if (impl->attempt_.get() == self) impl->FinishAttempt(self, reason);
      }));
    }
    ConnectContext& context() override { return *ctx; }

    Impl* impl;
    std::unique_ptr<ConnectContext> ctx;
    std::unique_ptr<Transport> transport;
    bool opened = false;
    bool closing = false;
    bool finished = false;
    bool transport_closed = false;
    absl::Status close_reason;
  };

  void StartAttempt() {
    reconnect_timer_ = 0;
    state_ = State::kConnecting;
    ++transitions_;
    ++stats_.attempts;
    failed_phases_.clear();
    ack_streams_moderated_ = !pipeline_->StackHasLayer(stack_, "websocket");
    ResetAckStream();  // a new link starts without a pace
    const Endpoint& endpoint = pipeline_->stack_endpoint(stack_);
    auto attempt = std::make_unique<Attempt>(this);
    attempt->ctx = std::make_unique<ConnectContext>(loop_, endpoint.host(),
                                                    static_cast<uint16_t>(endpoint.port()));
    SetBudget(*attempt->ctx, stack_);
    attempt->ctx->set_signer(pipeline_->signer());
    if (clock_offset_) attempt->ctx->set_server_clock_offset(*clock_offset_);
    if (options_.on_stage) attempt->ctx->set_stage_observer(options_.on_stage);
    absl::StatusOr<std::unique_ptr<Transport>> top = pipeline_->CreateStack(*attempt->ctx, stack_);
    if (!top.ok()) {
      attempt_.reset();
      HandleFailure(top.status(), /*was_up=*/false);
      return;
    }
    attempt->transport = std::move(top).value();
    attempt_ = std::move(attempt);
    attempt_->transport->Open(attempt_.get());
  }

  // The attempt is over (failed, lost, or closed on request). Safe inside the attempt's callbacks:
  // the attempt itself is destroyed later.
  void FinishAttempt(Attempt* attempt, absl::Status reason) {
    if (attempt == nullptr || attempt->finished || attempt != attempt_.get()) return;
    attempt->finished = true;
    // A clock learned by a layer (the WebSocket 101 Date) serves the next attempts' signatures,
    // unless the application set a better one (a time-sync reply).
    if (!clock_offset_explicit_ && attempt->ctx->server_clock_offset()) {
      clock_offset_ = attempt->ctx->server_clock_offset();
    }
    if (attempt->opened) session_->OnLinkClosed(reason);
    StopReprobe();
    bytes_in_ += attempt->ctx->bytes_in();
    bytes_out_ += attempt->ctx->bytes_out();
    bool was_up = state_ == State::kUp;
    if (!was_up) failed_phases_ = attempt->ctx->phases();
    graveyard_.push_back(std::move(attempt_));
    loop_.Post(guard_.Wrap([this] { graveyard_.clear(); }));
    connected_ = false;
    HandleFailure(reason, was_up);
  }

  // Every state change first (state, timer, counters, failed completions), then the events: they
  // run user code, which may call Connect() or Disconnect() and must find the client in the state
  // the events describe. An event handler that changes the state ends the list.
  void HandleFailure(const absl::Status& reason, bool was_up) {
    absl::Time now = clock_.Now();
    if (!want_connected_) {
      state_ = State::kIdle;
      ++transitions_;
      auto waiters = std::move(disconnect_waiters_);
      disconnect_waiters_.clear();
      Emit({ConnectionEvent::Kind::kDisconnected,
            reason.code() == absl::StatusCode::kCancelled ? absl::OkStatus() : reason});
      for (auto& done : waiters) done(absl::OkStatus());
      return;
    }
    if (was_up) {
      ++stats_.losses;
    } else {
      ++stats_.failures;
      const ConnectPhase* open_phase = nullptr;
      for (const ConnectPhase& phase : failed_phases_) {
        if (!phase.done) open_phase = &phase;
      }
      ++stats_.failures_by_phase[open_phase != nullptr    ? open_phase->name
                                 : failed_phases_.empty() ? std::string("setup")
                                                          : failed_phases_.back().name];
    }
    std::vector<ConnectionEvent> events;
    if (was_up && returning_ && reason.ok()) {
      // Our own DISCONNECT after a re-probe reached the primary stack: straight there, no backoff.
      returning_ = false;
      --stats_.losses;
      stack_ = 0;
      StartAttempt();
      return;
    }
    returning_ = false;
    if (was_up) {
      events.push_back(Stamp({ConnectionEvent::Kind::kLost, reason}));
      if (now - up_since_ >= stable_after_) {
        failures_ = 0;
        next_delay_ = initial_delay_;
      }
    }
    // An attempt that failed before its session came up moves on to the next alternative stack (a
    // port or protocol the network may let through); a lost connection retries the stack that
    // worked.
    if (!was_up && pipeline_->stack_count() > 1) stack_ = (stack_ + 1) % pipeline_->stack_count();
    ++failures_;
    if (failures_ == 1) first_failure_ = now;
    bool out_of_attempts = max_attempts_ > 0 && failures_ >= static_cast<int>(max_attempts_);
    bool out_of_time =
        give_up_after_ > absl::ZeroDuration() && now - first_failure_ >= give_up_after_;
    absl::Status permanent = std::move(permanent_error_);
    permanent_error_ = absl::OkStatus();
    if (out_of_attempts || out_of_time || !permanent.ok()) {
      state_ = State::kIdle;
      ++transitions_;
      want_connected_ = false;
      // A permanent failure (the session says no reconnect can fix it) is reported as itself.
      absl::Status gave_up =
          !permanent.ok()
              ? permanent
              : absl::UnavailableError(absl::StrCat("client: gave up reconnecting after ",
                                                    failures_, " failed attempts over ",
                                                    absl::FormatDuration(now - first_failure_),
                                                    "; last error: ", reason.message()));
      ConnectionEvent gave_up_event = Stamp({ConnectionEvent::Kind::kGaveUp, gave_up});
      if (!was_up) gave_up_event.phases = failed_phases_;
      events.push_back(std::move(gave_up_event));
      // A durable store keeps its messages: a later Connect() (or the next process) sends them.
      session_->FailPending(gave_up, /*keep_stored=*/file_store_ != nullptr);
      EmitAll(std::move(events));
      return;
    }
    double factor = 1.0;
    if (jitter_ > 0)
      factor = std::uniform_real_distribution<double>(1 - jitter_, 1 + jitter_)(rng_);
    absl::Duration delay = next_delay_ * factor;
    next_delay_ = std::min(max_delay_, next_delay_ * multiplier_);
    state_ = State::kWaiting;
    ++transitions_;
    reconnect_timer_ = clock_.RunAfter(delay, guard_.Wrap([this] {
      reconnect_timer_ = 0;
      if (state_ == State::kWaiting && want_connected_) StartAttempt();
    }));
    ConnectionEvent event = Stamp({ConnectionEvent::Kind::kReconnecting, reason});
    event.delay = delay;
    event.attempt = failures_;
    if (!was_up) event.phases = failed_phases_;
    events.push_back(std::move(event));
    EmitAll(std::move(events));
  }

  // The stack's own budget (Stack.connect_timeout / handshake_timeout), else the policy's.
  void SetBudget(ConnectContext& ctx, int stack) {
    absl::Duration handshake = handshake_timeout_;
    absl::optional<absl::Duration> connect = connect_timeout_;
    if (stack > 0) {
      const Stack& alternative = pipeline_->config().alternatives(stack - 1);
      if (alternative.has_handshake_timeout()) {
        handshake = ToDuration(alternative.handshake_timeout());
      }
      if (alternative.has_connect_timeout()) connect = ToDuration(alternative.connect_timeout());
    }
    ctx.set_deadline(loop_.Now() + handshake);
    if (connect) ctx.set_connect_timeout(*connect);
  }

  // What the state file says about a stack: its place and what it is, so a file written for other
  // stacks (the pipeline was edited) is not applied to the wrong one.
  std::string StackFingerprint(int stack) const {
    const Endpoint& endpoint = pipeline_->stack_endpoint(stack);
    return absl::StrCat(endpoint.host(), ":", endpoint.port(), " (",
                        pipeline_->DescribeStack(stack), ")");
  }

  // Create: start on the stack that last reached CONNACK, as the state file remembers it.
  void LoadRememberedStack() {
    if (state_file_.empty()) return;
    absl::StatusOr<std::string> text = ReadFileContents(state_file_, "client state", 4096);
    if (!text.ok()) {
      if (text.status().code() != absl::StatusCode::kNotFound) {
        HLOG(WARNING) << "client: " << text.status().message() << "; starting on the primary stack";
      }
      return;
    }
    std::vector<std::string> lines = absl::StrSplit(*text, '\n');
    int stack = -1;
    if (lines.size() < 2 || !absl::SimpleAtoi(lines[0], &stack) || stack < 0 ||
        stack >= pipeline_->stack_count() || lines[1] != StackFingerprint(stack)) {
      HLOG(WARNING) << "client: " << state_file_
                    << ": names a stack this pipeline does not have (edited since?); starting on "
                       "the primary stack";
      return;
    }
    stack_ = stack;
    remembered_stack_ = stack;
    if (stack != 0) {
      HLOG(INFO) << "client: starting on " << StackFingerprint(stack)
                 << ", the stack that last reached CONNACK (" << state_file_ << ")";
    }
  }

  // CONNACK: the stack that worked is where the next connection (and, with a state file, the next
  // process) starts.
  void RememberStack() {
    if (remembered_stack_ == stack_) return;
    if (remembered_stack_ >= 0 || stack_ != 0) {
      HLOG(INFO) << "client: now using " << StackFingerprint(stack_)
                 << (stack_ == 0 ? " (the primary stack)" : " (an alternative stack)");
    }
    remembered_stack_ = stack_;
    if (state_file_.empty()) return;
    // Written whole to a temporary file, then renamed over the old one: a crash leaves one or the
    // other, never half of each.
    std::string temporary = absl::StrCat(state_file_, ".tmp");
    std::string text = absl::StrCat(stack_, "\n", StackFingerprint(stack_), "\n");
    FILE* file = fopen(temporary.c_str(), "w");
    bool written = file != nullptr && fwrite(text.data(), 1, text.size(), file) == text.size();
    if (file != nullptr) written = fclose(file) == 0 && written;
    if (!written || rename(temporary.c_str(), state_file_.c_str()) != 0) {
      HLOG(WARNING) << "client: " << state_file_
                    << ": cannot record the stack in use: " << strerror(errno);
      remove(temporary.c_str());
    }
  }

  // A connection attempt of the primary stack's transports only (no MQTT, so the working session
  // is left alone): did the network that refused it come back?
  struct Probe : public TransportListener {
    explicit Probe(Impl* impl) : impl(impl) {}
    ~Probe() override { transport.reset(); }  // before the context it uses
    void OnOpen() override { impl->ProbeDone(this, absl::OkStatus()); }
    void OnData(absl::string_view) override {}
    void OnClosed(const absl::Status& status) override {
      impl->ProbeDone(this,
                      status.ok() ? absl::UnavailableError("closed during the handshake") : status);
    }
    Impl* impl;
    std::unique_ptr<ConnectContext> ctx;
    std::unique_ptr<Transport> transport;
  };

  void ArmReprobe() {
    StopReprobe();
    if (reprobe_interval_ <= absl::ZeroDuration()) return;
    reprobe_timer_ = clock_.RunAfter(reprobe_interval_, guard_.Wrap([this] {
      reprobe_timer_ = 0;
      StartProbe();
    }));
  }

  void StopReprobe() {
    clock_.Cancel(reprobe_timer_);
    reprobe_timer_ = 0;
    if (probe_ != nullptr) RetireProbe();
  }

  // Drops the probe in progress; it is destroyed from a posted task, never inside its own callback
  // (like the attempts' graveyard).
  void RetireProbe() {
    retired_probes_.push_back(std::move(probe_));
    loop_.Post(guard_.Wrap([this] { retired_probes_.clear(); }));
  }

  void StartProbe() {
    if (state_ != State::kUp || stack_ == 0 || probe_ != nullptr) return;
    const Endpoint& endpoint = pipeline_->stack_endpoint(0);
    auto probe = std::make_unique<Probe>(this);
    probe->ctx = std::make_unique<ConnectContext>(loop_, endpoint.host(),
                                                  static_cast<uint16_t>(endpoint.port()));
    SetBudget(*probe->ctx, 0);
    probe->ctx->set_signer(pipeline_->signer());
    if (clock_offset_) probe->ctx->set_server_clock_offset(*clock_offset_);
    absl::StatusOr<std::unique_ptr<Transport>> top = pipeline_->CreateStack(*probe->ctx, 0);
    if (!top.ok()) {
      HLOG(INFO) << "client: re-probe of " << StackFingerprint(0) << ": " << top.status().message();
      ArmReprobe();
      return;
    }
    probe->transport = std::move(top).value();
    probe_ = std::move(probe);
    HLOG(DEBUG) << "client: re-probing " << StackFingerprint(0);
    probe_->transport->Open(probe_.get());
  }

  void ProbeDone(Probe* probe, const absl::Status& status) {
    if (probe != probe_.get()) return;
    RetireProbe();
    if (state_ != State::kUp || stack_ == 0 || !want_connected_) return;
    if (!status.ok()) {
      HLOG(INFO) << "client: re-probe of " << StackFingerprint(0) << " failed, staying on "
                 << StackFingerprint(stack_) << ": " << status.message();
      ArmReprobe();
      return;
    }
    returning_ = true;
    ConnectionEvent event{ConnectionEvent::Kind::kReturning, absl::OkStatus()};
    event.endpoint = StackFingerprint(0);
    HLOG(INFO) << "client: re-probe reached " << StackFingerprint(0) << "; leaving "
               << StackFingerprint(stack_);
    session_->Disconnect();  // FinishAttempt then connects on stack 0 (HandleFailure)
    Emit(std::move(event));
  }

  // Emits `events` in order while nothing changes the client's state; one that does (a handler
  // calling Disconnect() or Connect()) makes the rest stale.
  void EmitAll(std::vector<ConnectionEvent> events) {
    uint64_t transitions = transitions_;
    for (ConnectionEvent& event : events) {
      if (transitions_ != transitions) return;
      Emit(std::move(event));
    }
  }

  // Names where the event happens (for kReconnecting: where the next attempt goes), now, before
  // the state moves on.
  ConnectionEvent Stamp(ConnectionEvent event) {
    const Endpoint& current = pipeline_->stack_endpoint(stack_);
    event.endpoint = absl::StrCat(current.host(), ":", current.port(), " (",
                                  pipeline_->DescribeStack(stack_), ")");
    return event;
  }

  void Emit(ConnectionEvent event) {
    if (event.endpoint.empty()) event = Stamp(std::move(event));
    const std::string& endpoint = event.endpoint;
    if (event.kind == ConnectionEvent::Kind::kReconnecting ||
        event.kind == ConnectionEvent::Kind::kLost ||
        event.kind == ConnectionEvent::Kind::kGaveUp) {
      if (options_.on_event) {
        HLOG(DEBUG) << "client: " << endpoint << ": " << DescribeConnectionEvent(event);
      } else {
        HLOG(WARNING) << "client: " << endpoint << ": " << DescribeConnectionEvent(event);
      }
    } else if (options_.on_event) {
      HLOG(DEBUG) << "client: " << endpoint << ": " << DescribeConnectionEvent(event);
    } else {
      HLOG(INFO) << "client: " << endpoint << ": " << DescribeConnectionEvent(event);
    }
    if (options_.on_event) options_.on_event(event);
  }

  // After a read that decoded `packets`, `publishes` of them PUBLISH, when publishes_sent() was
  // `sent_before` as it began and `awaiting` of our publishes still await their acknowledgement:
  // is the broker streaming at us? Yes if the read held two or more PUBLISH, or if its PUBLISH
  // follows an earlier one with no PUBLISH of ours in between (ours include answers written while
  // that earlier one was handled), so it cannot be an answer to one. A request-response exchange
  // (a command and our reply, a QoS 1 ping, its PUBACK and its pong) brings at most one of each per
  // read and is never moderated, whatever its pace; were it moderated once, its next reads could
  // hold two packets each and keep it so. A read of acknowledgements only is AckStreamWindow's.
  void ModerateIfStreaming(uint64_t packets, uint64_t publishes, uint64_t sent_before,
                           size_t awaiting) {
    if (publishes == 0 && packets > 0) {
      const absl::Duration window = AckStreamWindow(packets, awaiting);
      if (window > absl::ZeroDuration()) loop_.ModerateNextWait(window);
      return;
    }
    bool streaming = publishes >= 2 || packets - publishes >= 2;
    if (publishes > 0) {
      streaming = streaming || (sent_before_last_inbound_publish_.has_value() &&
                                *sent_before_last_inbound_publish_ == sent_before);
      sent_before_last_inbound_publish_ = sent_before;
    }
    if (streaming) loop_.ModerateNextWait(options_.read_moderation);
  }

  // A read of `acks` acknowledgements (or other non-PUBLISH packets) that left `awaiting` of our
  // publishes unacknowledged. While two or more still await theirs, the broker will send more
  // without waiting for us: a stream, even when each read holds one (a broker that acknowledges as
  // it forwards meets a fast publisher one PUBACK at a time, and would wake it inside its write for
  // every one). The window lets them pile up, but only for half the time the broker needs to
  // acknowledge what is still awaited, at the pace measured between loop turns that brought
  // acknowledgements (turns, not reads: a layer such as WebSocket hands each frame on as a read
  // of its own): a longer wait would leave a window-bound publisher with nothing in flight and the
  // broker idle. Zero (no moderation) in the first turn of a stream, which has no pace yet, once
  // fewer than two await, and on a stack with a WebSocket layer: mosquitto's websockets front end
  // holds queued output until its next input or its 100 ms timer, so a publisher that goes quiet
  // while its acknowledgements pile up stalls it (QoS 1 over ws, 64 B, window 64: 68k msgs/s
  // without, 39-55k with, in runs with 100 ms gaps; bench/README.md, eighth round).
  void ResetAckStream() {
    ack_turn_ = 0;
    time_per_ack_ = absl::ZeroDuration();
  }

  absl::Duration AckStreamWindow(uint64_t acks, size_t awaiting) {
    if (awaiting < 2 || !ack_streams_moderated_ ||
        options_.read_moderation <= absl::ZeroDuration()) {
      ResetAckStream();
      return absl::ZeroDuration();
    }
    const uint64_t turn = loop_.turns();
    if (turn != ack_turn_) {  // this turn's first acknowledgements
      const absl::Time now = loop_.Now();
      ack_turn_interval_ = ack_turn_ == 0 ? absl::ZeroDuration() : now - last_ack_turn_time_;
      last_ack_turn_time_ = now;
      ack_turn_ = turn;
      acks_this_turn_ = 0;
      time_per_ack_before_turn_ = time_per_ack_;
    }
    acks_this_turn_ += acks;
    if (ack_turn_interval_ <= absl::ZeroDuration()) return absl::ZeroDuration();
    const absl::Duration per_ack = ack_turn_interval_ / static_cast<int64_t>(acks_this_turn_);
    time_per_ack_ = time_per_ack_before_turn_ == absl::ZeroDuration()
                        ? per_ack
                        : (3 * time_per_ack_before_turn_ + per_ack) / 4;  // smoothed over turns
    return std::min(options_.read_moderation, time_per_ack_ * static_cast<int64_t>(awaiting) / 2);
  }

  std::shared_ptr<const ResolvedPipeline> pipeline_;
  Options options_;
  // publishes_sent() before the read that held the last inbound PUBLISH (ModerateIfStreaming).
  absl::optional<uint64_t> sent_before_last_inbound_publish_;
  // The acknowledgement stream (AckStreamWindow): the loop turn that last brought acknowledgements
  // (0: no stream), when it began, the time since the turn before, the acknowledgements it has
  // brought so far, and the smoothed time per acknowledgement (before that turn, and with it).
  bool ack_streams_moderated_ = true;  // false on a stack with a WebSocket layer
  uint64_t ack_turn_ = 0;
  absl::Time last_ack_turn_time_;
  absl::Duration ack_turn_interval_ = absl::ZeroDuration();
  uint64_t acks_this_turn_ = 0;
  absl::Duration time_per_ack_before_turn_ = absl::ZeroDuration();
  absl::Duration time_per_ack_ = absl::ZeroDuration();
  EventLoop& loop_;
  std::unique_ptr<Protocol> protocol_;
  mqtt::Session* session_;
  mqtt::EventLoopClock loop_clock_;
  mqtt::Clock& clock_;  // the reconnect policy's time: loop_clock_ or Options::clock

  absl::Duration handshake_timeout_;
  absl::optional<absl::Duration> connect_timeout_;  // policy.connect_timeout, when set
  absl::Duration initial_delay_, max_delay_, stable_after_, give_up_after_;
  double multiplier_, jitter_;
  uint32_t max_attempts_;

  State state_ = State::kIdle;
  uint64_t transitions_ = 0;      // counts changes of state_, so user code's changes can be noticed
  absl::Status permanent_error_;  // from the session: give up at the end of this link
  bool want_connected_ = false;
  bool ever_connected_ = false;
  std::atomic<bool> connected_{false};
  std::unique_ptr<Attempt> attempt_;

  // One call handed off by another thread: a publish (topic, payload, ...) or any other call.
  struct PendingCall {
    std::string topic;
    std::string payload;
    int qos = 0;
    bool retain = false;
    mqtt::Completion done;
    std::function<void(Impl&)> call;  // set for calls other than Publish
  };
  static constexpr int kMaxDrainPerTurn = 1024;

  // With handoff_mutex_ held: the slot after the last queued one, growing the ring when full
  // (FIFO order kept, capacity at least doubled).
  PendingCall& NextSlot() {
    if (handoff_count_ == handoff_.size()) {
      std::vector<PendingCall> grown(std::max<size_t>(16, handoff_.size() * 2));
      for (size_t i = 0; i < handoff_count_; ++i) {
        grown[i] = std::move(handoff_[(handoff_head_ + i) % handoff_.size()]);
      }
      handoff_.swap(grown);
      handoff_head_ = 0;
    }
    return handoff_[(handoff_head_ + handoff_count_) % handoff_.size()];
  }
  // With handoff_mutex_ held: makes the slot from NextSlot() visible and makes sure a drain runs.
  void CommitSlot(const std::shared_ptr<Impl>& self) {
    ++handoff_count_;
    if (!drain_posted_) {
      drain_posted_ = true;
      PostDrain(self);
    }
  }
  void PostDrain(const std::shared_ptr<Impl>& self) {
    loop_.Post([weak = std::weak_ptr<Impl>(self)] {
      if (std::shared_ptr<Impl> impl = weak.lock()) impl->DrainHandedOff(impl);
    });
  }

  std::mutex handoff_mutex_;
  std::vector<PendingCall> handoff_;  // a ring: handoff_count_ slots from handoff_head_
  size_t handoff_head_ = 0;
  size_t handoff_count_ = 0;
  bool drain_posted_ = false;     // a DrainHandedOff task is queued or running
  size_t handoff_publishes_ = 0;  // publishes among the handoff_count_ slots
  size_t handoff_bytes_ = 0;      // their topic + payload bytes
  size_t handoff_max_messages_ = 0;
  size_t handoff_max_bytes_ = 0;
  PendingCall running_;  // loop thread: the call being run
  int stack_ = 0;        // the pipeline stack of the current (or next) attempt
  // server clock - local clock, seeded into every attempt's ConnectContext for the signer.
  absl::optional<absl::Duration> clock_offset_;
  bool clock_offset_explicit_ = false;
  std::vector<std::unique_ptr<Attempt>> graveyard_;
  mqtt::Clock::TimerId reconnect_timer_ = 0;
  int failures_ = 0;
  absl::Duration next_delay_;
  absl::Time first_failure_;
  absl::Time up_since_;
  std::mt19937_64 rng_;
  std::vector<mqtt::Completion> disconnect_waiters_;
  mqtt::FileMessageStore* file_store_ = nullptr;  // owned by the session; null: in memory
  mqtt::Clock::TimerId flush_timer_ = 0;          // BATCH flush, on the loop's clock
  ClientStats stats_;       // the counters kept here; stats() adds the session's and the live ones
  std::string state_file_;  // policy.state_file
  absl::Duration reprobe_interval_;  // policy.reprobe_interval
  int remembered_stack_ = -1;        // the stack that last reached CONNACK (-1: none yet)
  mqtt::Clock::TimerId reprobe_timer_ = 0;
  std::unique_ptr<Probe> probe_;  // the re-probe in progress
  std::vector<std::unique_ptr<Probe>> retired_probes_;
  bool returning_ = false;  // our DISCONNECT is moving the connection to the primary stack
  uint64_t bytes_in_ = 0, bytes_out_ = 0;    // of the attempts that are over
  std::vector<ConnectPhase> failed_phases_;  // of the attempt that just failed before CONNACK
  WeakGuard guard_;

 public:
  // Set when the client owns its loop.
  std::unique_ptr<EventLoop> owned_loop;
  std::thread thread;
};

absl::StatusOr<std::unique_ptr<Client>> Client::Create(
    std::shared_ptr<const ResolvedPipeline> pipeline, Options options) {
  if (pipeline == nullptr) return absl::InvalidArgumentError("client: no pipeline");
  if (pipeline->protocol() == nullptr) {
    return absl::InvalidArgumentError(
        "client: the pipeline names no protocol; add protocol { name: \"mqtt\" }");
  }
  if (options.read_moderation < absl::ZeroDuration() ||
      options.spin_before_sleep < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "client: read_moderation and spin_before_sleep must be zero (off) or more");
  }
  std::unique_ptr<EventLoop> owned_loop;
  EventLoop* loop = options.loop;
  if (loop == nullptr) {
    absl::StatusOr<std::unique_ptr<EventLoop>> created = EventLoop::Create();
    if (!created.ok()) return created.status();
    owned_loop = std::move(created).value();
    owned_loop->set_spin_before_sleep(options.spin_before_sleep);
    loop = owned_loop.get();
  }
  absl::StatusOr<std::unique_ptr<Protocol>> protocol = pipeline->protocol()->Create(*loop);
  if (!protocol.ok()) return protocol.status();
  auto* session = (*protocol)->As<mqtt::Session>();
  if (session == nullptr) {
    return absl::InvalidArgumentError(
        "client: the pipeline's protocol is not \"mqtt\"; hublink::Client speaks MQTT only");
  }
  auto impl = std::make_shared<Impl>(std::move(pipeline), std::move(options), *loop,
                                     std::move(protocol).value(), session);
  absl::Status store = impl->OpenStore();
  if (!store.ok()) return store;
  if (owned_loop != nullptr) {
    impl->owned_loop = std::move(owned_loop);
    EventLoop* raw = impl->owned_loop.get();
    impl->thread = std::thread([raw] { raw->Run(); });
  }
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const Pipeline& config,
                                                       const Registry& registry, Options options,
                                                       absl::string_view source) {
  absl::StatusOr<std::unique_ptr<ResolvedPipeline>> resolved =
      ResolvedPipeline::Resolve(config, registry, source);
  if (!resolved.ok()) return resolved.status();
  return Create(std::shared_ptr<const ResolvedPipeline>(std::move(resolved).value()),
                std::move(options));
}

Client::~Client() {
  if (impl_->owned_loop != nullptr) {
    EventLoop* loop = impl_->owned_loop.get();
    Impl* impl = impl_.get();
    loop->Post([impl, loop] {
      impl->Teardown();
      loop->Stop();
    });
    impl_->thread.join();
  } else {
    impl_->Teardown();
  }
  // Keep the loop alive until the impl (and its session's timers) are gone.
  std::unique_ptr<EventLoop> owned_loop = std::move(impl_->owned_loop);
  impl_.reset();
}

void Client::Connect() {
  Impl::Post(impl_, [](Impl& impl) { impl.Connect(); });
}

std::future<absl::Status> Client::Disconnect() {
  std::future<absl::Status> future;
  mqtt::Completion done = MakePromise(&future);
  Impl::Post(impl_,
             [done = std::move(done)](Impl& impl) mutable { impl.Disconnect(std::move(done)); });
  return future;
}

std::future<absl::Status> Client::Publish(absl::string_view topic, absl::string_view payload,
                                          int qos, bool retain) {
  std::future<absl::Status> future;
  Publish(topic, payload, qos, retain, MakePromise(&future));
  return future;
}

void Client::Publish(absl::string_view topic, absl::string_view payload, int qos, bool retain,
                     mqtt::Completion done) {
  if (impl_->loop().IsLoopThread()) {
    impl_->Publish(topic, payload, qos, retain, std::move(done));
    return;
  }
  Impl::PostPublish(impl_, topic, payload, qos, retain, std::move(done));
}

std::future<absl::Status> Client::Subscribe(std::string filter, int qos,
                                            mqtt::MessageHandler handler) {
  std::future<absl::Status> future;
  Subscribe(std::move(filter), qos, std::move(handler), MakePromise(&future));
  return future;
}

void Client::Subscribe(std::string filter, int qos, mqtt::MessageHandler handler,
                       mqtt::Completion done) {
  Impl::Post(impl_, [filter = std::move(filter), qos, handler = std::move(handler),
                     done = MakeOnce(std::move(done))](Impl& impl) mutable {
    impl.Subscribe(std::move(filter), qos, std::move(handler), std::move(done));
  });
}

std::future<absl::Status> Client::Unsubscribe(std::string filter) {
  std::future<absl::Status> future;
  mqtt::Completion done = MakePromise(&future);
  Impl::Post(impl_, [filter = std::move(filter), done = std::move(done)](Impl& impl) mutable {
    impl.Unsubscribe(std::move(filter), std::move(done));
  });
  return future;
}

void Client::SetServerClockOffset(absl::Duration offset) {
  Impl::Post(impl_, [offset](Impl& impl) { impl.SetServerClockOffset(offset); });
}

std::future<size_t> Client::Pending() {
  auto promise = std::make_shared<std::promise<size_t>>();
  std::future<size_t> future = promise->get_future();
  Impl::Post(impl_, [promise](Impl& impl) { promise->set_value(impl.pending()); });
  return future;
}

std::future<ClientStats> Client::Stats() {
  auto promise = std::make_shared<std::promise<ClientStats>>();
  std::future<ClientStats> future = promise->get_future();
  Impl::Post(impl_, [promise](Impl& impl) { promise->set_value(impl.stats()); });
  return future;
}

bool Client::connected() const { return impl_->connected(); }

EventLoop& Client::loop() { return impl_->loop(); }

}  // namespace hublink
