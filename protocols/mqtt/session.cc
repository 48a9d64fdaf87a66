#include "protocols/mqtt/session.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "plugins/connect_context.h"
#include "plugins/duration.h"
#include "plugins/log.h"
#include "plugins/signer.h"
#include "plugins/status_macros.h"

namespace hublink {
namespace mqtt {
namespace {

absl::Status Stopped() { return absl::CancelledError("mqtt: link closing"); }

}  // namespace

absl::StatusOr<SessionOptions> SessionOptionsFromConfig(const protocols::MqttConfig& config) {
  auto invalid = [](absl::string_view field, absl::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat("mqtt: ", field, ": ", problem));
  };
  SessionOptions o;
  HUBLINK_RETURN_IF_ERROR(ValidateUtf8String(config.client_id(), "client_id"));
  HUBLINK_RETURN_IF_ERROR(ValidateUtf8String(config.username(), "username"));
  if (config.password().size() > 65535) return invalid("password", "above 65535 bytes");
  o.client_id = config.client_id();
  o.username = config.username();
  o.password = config.password();
  o.clean_session = config.has_clean_session() ? config.clean_session() : true;
  if (config.has_keep_alive()) {
    HUBLINK_RETURN_IF_ERROR(ValidateNonNegativeDuration(config.keep_alive(), "mqtt: keep_alive"));
    absl::Duration k = ToDuration(config.keep_alive());
    if (k > absl::Seconds(65535)) {
      return invalid("keep_alive",
                     absl::StrCat(absl::FormatDuration(k), " is above MQTT's 65535 s"));
    }
    if (k != absl::Seconds(absl::ToInt64Seconds(k))) {
      return invalid("keep_alive", "MQTT keep-alive is whole seconds");
    }
    o.keep_alive = k;
  }
  o.ping_timeout = o.keep_alive / 2;
  if (config.has_ping_timeout()) {
    absl::Duration t = ToDuration(config.ping_timeout());
    if (t <= absl::ZeroDuration()) return invalid("ping_timeout", "must be positive");
    if (o.keep_alive > absl::ZeroDuration() && t >= o.keep_alive) {
      return invalid("ping_timeout",
                     absl::StrCat(absl::FormatDuration(t), " must be shorter than keep_alive (",
                                  absl::FormatDuration(o.keep_alive), ")"));
    }
    o.ping_timeout = t;
  }
  if (config.max_packet_size() != 0) {
    if (config.max_packet_size() < 128) {
      return invalid("max_packet_size",
                     absl::StrCat(config.max_packet_size(), " is below 128 bytes"));
    }
    o.max_packet_size = config.max_packet_size();
  }
  if (config.max_inflight() > 65535) {
    return invalid("max_inflight",
                   absl::StrCat(config.max_inflight(), " is above 65535 packet ids"));
  }
  if (config.max_inflight() != 0) o.max_inflight = config.max_inflight();
  const auto& queue = config.offline_queue();
  if (queue.max_messages() != 0) o.max_queued_messages = queue.max_messages();
  if (queue.max_bytes() != 0) o.max_queued_bytes = queue.max_bytes();
  o.overflow = queue.overflow() == protocols::MqttConfig::OfflineQueue::REJECT_NEW
                   ? QueueOverflow::kRejectNew
                   : QueueOverflow::kDropOldest;
  const auto& broker = config.broker();
  if (!broker.name().empty()) o.broker = absl::StrCat("the broker (", broker.name(), ")");
  if (broker.has_max_qos()) {
    if (broker.max_qos() > 2)
      return invalid("broker.max_qos", absl::StrCat(broker.max_qos(), " is not 0..2"));
    o.max_qos = static_cast<uint8_t>(broker.max_qos());
  }
  o.retain_available = !broker.has_retain_available() || broker.retain_available();
  if (config.has_will() && broker.has_will_available() && !broker.will_available()) {
    return invalid("will", absl::StrCat(o.broker, " does not support will messages; remove it"));
  }
  if (config.has_will()) {
    absl::Status topic = ValidateTopicName(config.will().topic());
    if (!topic.ok()) return invalid("will.topic", topic.message());
    if (config.will().qos() > 2)
      return invalid("will.qos", absl::StrCat(config.will().qos(), " is not 0..2"));
    if (config.will().payload().size() > 65535) return invalid("will.payload", "above 65535 bytes");
    o.will = Will{config.will().topic(), config.will().payload(),
                  static_cast<uint8_t>(config.will().qos()), config.will().retain()};
  }
  if (config.has_store() && config.store().has_file()) {
    if (config.store().file().path().empty()) return invalid("store.file.path", "required");
    o.file_store = config.store().file();
  }
  return o;
}

absl::Status ConnackError(uint8_t return_code, absl::string_view client_id) {
  switch (return_code) {
    case 1:
      return absl::FailedPreconditionError(
          "mqtt: broker refused the connection: unacceptable protocol version (CONNACK 1); it does "
          "not "
          "accept MQTT 3.1.1");
    case 2:
      return absl::InvalidArgumentError(
          absl::StrCat("mqtt: broker rejected client id \"", client_id,
                       "\" (CONNACK 2); check the configured or signed client id"));
    case 3:
      return absl::UnavailableError(
          "mqtt: broker unavailable (CONNACK 3): the MQTT service refuses connections for now");
    case 4:
      return absl::UnauthenticatedError(
          absl::StrCat("mqtt: broker refused credentials (CONNACK 4): bad user name or password "
                       "for client id \"",
                       client_id, "\"; check the device secret, key or signer configuration"));
    case 5:
      return absl::PermissionDeniedError(absl::StrCat(
          "mqtt: broker refused the connection: not authorized (CONNACK 5) for client id \"",
          client_id,
          "\"; the broker does not accept these credentials or this client id (mosquitto answers a "
          "bad password this way)"));
    default:
      return absl::DataLossError(
          absl::StrCat("mqtt: CONNACK with unknown return code ", return_code));
  }
}

// Entry points that may run user code hold one; the outermost runs the deferred completions when
// it ends. The session may be gone by then (a completion destroyed it): the token tells.
class Session::Scope {
 public:
  explicit Scope(Session& session) : session_(session), alive_(session.alive_) {
    ++session_.depth_;
  }
  ~Scope() {
    if (alive_.expired()) return;
    if (--session_.depth_ == 0 && !session_.deferred_.empty()) session_.RunDeferred();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  Session& session_;
  std::weak_ptr<char> alive_;
};

Session::Session(EventLoop& loop, SessionOptions options, std::unique_ptr<MessageStore> store)
    : owned_clock_(std::make_unique<EventLoopClock>(loop)),
      clock_(owned_clock_.get()),
      options_(std::move(options)),
      store_(std::move(store)),
      decoder_(options_.max_packet_size, Decoder::Role::kClient) {
  Recover();
}

Session::Session(Clock& clock, SessionOptions options, std::unique_ptr<MessageStore> store)
    : clock_(&clock),
      options_(std::move(options)),
      store_(std::move(store)),
      decoder_(options_.max_packet_size, Decoder::Role::kClient) {
  Recover();
}

Session::~Session() {
  clock_->Cancel(keep_alive_timer_);
  clock_->Cancel(connack_timer_);
}

void Session::Recover() {
  for (uint64_t seq : store_->Sequences()) {
    const StoredMessage* m = store_->Find(seq);
    if (m == nullptr) continue;
    next_seq_ = std::max(next_seq_, seq + 1);
    if (m->phase == StoredMessage::Phase::kQueued || m->packet_id == 0) {
      queued_.push_back({seq, m->bytes()});
      queued_bytes_ += m->bytes();
    } else {
      inflight_[seq] = m->packet_id;
      outgoing_ids_[m->packet_id] = seq;
      if (m->phase == StoredMessage::Phase::kAwaitingComp) released_.insert(seq);
    }
  }
}

absl::Status Session::ReplaceStore(std::unique_ptr<MessageStore> store) {
  if (link_ != nullptr || link_generation_ != 0 || !completions_.empty() || !queued_.empty() ||
      !inflight_.empty() || store_->size() != 0) {
    return absl::FailedPreconditionError(
        "mqtt: the store can only be replaced before the session was used");
  }
  store_ = std::move(store);
  next_seq_ = 1;
  Recover();
  return absl::OkStatus();
}

void Session::ReapDropped() {
  size_t tracked = queued_.size() + inflight_.size();
  size_t held = store_->size();
  if (held >= tracked) return;
  size_t missing = tracked - held;
  for (auto it = queued_.begin(); it != queued_.end() && missing > 0;) {
    if (store_->Find(it->seq) != nullptr) {
      ++it;
      continue;
    }
    queued_bytes_ -= it->bytes;
    uint64_t seq = it->seq;
    it = queued_.erase(it);
    --missing;
    Complete(seq, absl::ResourceExhaustedError(
                      "mqtt: message dropped by the store's overflow policy (the oldest queued) to "
                      "make room"));
  }
}

void Session::Defer(Completion done, absl::Status status) {
  if (done) deferred_.emplace_back(std::move(done), std::move(status));
}

void Session::RunDeferred() {
  std::weak_ptr<char> alive = alive_;
  ++depth_;  // completions calling back in add to deferred_; this loop runs them
  while (!deferred_.empty()) {
    // Swap rather than move, so both buffers keep their capacity (no allocation in steady state).
    std::vector<std::pair<Completion, absl::Status>> batch;
    batch.swap(deferred_spare_);
    batch.swap(deferred_);
    // Every completion of the batch runs, even if one of them destroyed the session: they belong
    // to the caller, not to us.
    for (auto& call : batch) call.first(call.second);
    if (alive.expired()) return;
    batch.clear();
    if (deferred_spare_.capacity() < batch.capacity()) deferred_spare_.swap(batch);
  }
  --depth_;
}

void Session::OnLinkOpen(ProtocolLink& link) {
  Scope scope(*this);
  link_ = &link;
  ++link_generation_;
  closing_ = false;
  connack_seen_ = false;
  state_ = State::kAwaitingConnack;
  decoder_.Reset();
  control_.clear();
  control_bytes_ = 0;
  ConnectContext& context = link.context();
  absl::Time now = clock_->Now();
  last_sent_ = last_received_ = now;
  // The context's deadline is on the loop's clock (the transports' timers); the CONNACK timer runs
  // on ours, so carry over what is left of it.
  absl::Time deadline =
      context.deadline() == absl::InfiniteFuture()
          ? now + options_.connack_timeout
          : now + std::max(absl::ZeroDuration(), context.deadline() - context.loop().Now());
  connack_timer_ = clock_->RunAt(deadline, guard_.Wrap([this, deadline, now] {
    connack_timer_ = 0;
    if (state_ != State::kAwaitingConnack) return;
    Fail(absl::DeadlineExceededError(absl::StrCat("mqtt: no CONNACK from the broker within ",
                                                  absl::FormatDuration(deadline - now))));
  }));

  std::string client_id = options_.client_id;
  std::string username = options_.username;
  std::string password = options_.password;
  if (Signer* signer = context.signer()) {
    SignRequest request;
    request.now = context.ServerNow();
    request.host = context.host();
    absl::StatusOr<Credentials> credentials = signer->Sign(request);
    if (!credentials.ok()) {
      Fail(Annotate(credentials.status(), "mqtt: signer"));
      return;
    }
    if (!credentials->client_id.empty()) client_id = std::move(credentials->client_id);
    username = std::move(credentials->username);
    password = std::move(credentials->password);
  }
  ConnectPacket connect;
  connect.client_id = client_id;
  connect.clean_session = options_.clean_session;
  connect.keep_alive_seconds = static_cast<uint16_t>(absl::ToInt64Seconds(options_.keep_alive));
  // MQTT 3.1.1 carries a password only with a user name; an empty one is allowed.
  if (!username.empty() || !password.empty()) connect.username = username;
  if (!password.empty()) connect.password = password;
  if (options_.will.has_value()) connect.will = &*options_.will;
  out_.clear();
  absl::Status encoded = AppendConnect(connect, &out_);
  if (!encoded.ok()) {
    Fail(encoded);
    return;
  }
  // Straight to the link, never through the batch: the buffer holding the password is wiped below.
  bool written = WriteNow(out_);
  // The buffer held the password; do not leave it lying in reused memory.
  std::fill(out_.begin(), out_.end(), '\0');
  std::fill(password.begin(), password.end(), '\0');
  if (!written) {
    Fail(absl::UnavailableError("mqtt: could not write CONNECT"));
    return;
  }
  connected_client_id_ = client_id;
  context.BeginPhase("connack");
  context.ReportStage("mqtt", absl::StrCat("CONNECT client id \"", client_id, "\""));
}

bool Session::Write(absl::string_view bytes) {
  if (link_ == nullptr || closing_) return false;
  if (!options_.coalesce_writes) return WriteNow(bytes);
  // The link asked us to wait for OnLinkWritable: nothing more joins the batch until then, so what
  // the session holds beyond the link stays under kMaxBatch plus one packet.
  if (batch_stuck_) return false;
  if (batch_.size() + bytes.size() > kMaxBatch) {
    if (!FlushBatch()) return false;
    // A big packet goes as it is: copying it into the batch would buy nothing.
    if (bytes.size() >= kMaxBatch) return WriteNow(bytes);
  }
  if (!flush_posted_) {
    // Flushed after the rest of this loop turn's events: every packet they produce (a drained
    // batch of publishes, the PUBACKs for one read) goes down as one write, one TLS record, one
    // WebSocket frame, one send(). Nothing waits for a later event.
    flush_posted_ = true;
    link_->context().loop().Post(guard_.Wrap([this] {
      flush_posted_ = false;
      if (link_ != nullptr && !closing_) FlushBatch();
    }));
  }
  batch_.append(bytes.data(), bytes.size());
  last_sent_ = clock_->Now();
  return true;
}

bool Session::FlushBatch() {
  if (batch_.empty()) return true;
  if (link_ == nullptr || closing_) {
    DropBatch();
    return false;
  }
  absl::Status status = link_->Write(batch_);
  if (status.ok()) {
    batch_stuck_ = false;
    if (batch_has_ping_) NotePingWritten();
    batch_has_ping_ = false;
    batch_.clear();
    return true;
  }
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    // Kept whole (the transport queued none of it) until OnLinkWritable.
    batch_stuck_ = true;
    return false;
  }
  // The link is failing; its close follows. QoS 1/2 messages in the batch are still in flight and
  // go out again on the next link.
  HLOG(DEBUG) << "mqtt: write failed: " << status;
  DropBatch();
  return false;
}

void Session::DropBatch() {
  batch_.clear();
  batch_stuck_ = false;
  batch_has_ping_ = false;
}

void Session::NotePingWritten() {
  ping_written_ = true;
  ping_written_at_ = clock_->Now();
}

bool Session::WriteNow(absl::string_view bytes) {
  if (link_ == nullptr || closing_) return false;
  // Whatever the batch holds was produced first.
  if (!FlushBatch()) return false;
  return LinkWrite(bytes);
}

bool Session::LinkWrite(absl::string_view bytes) {
  if (link_ == nullptr || closing_) return false;
  absl::Status status = link_->Write(bytes);
  if (status.ok()) {
    last_sent_ = clock_->Now();
    return true;
  }
  if (status.code() != absl::StatusCode::kResourceExhausted) {
    HLOG(DEBUG) << "mqtt: write failed: " << status;
  }
  return false;
}

namespace {
constexpr char kPingreqByte = '\xC0';
}  // namespace

void Session::SendControl(absl::string_view bytes) {
  if (link_ == nullptr || closing_) return;
  if (control_.empty() && WriteControl(bytes)) return;
  control_.emplace_back(bytes);
  control_bytes_ += bytes.size();
  // Acknowledgements are bounded by the broker's window and SUBSCRIBEs by the application; this
  // only trips when the broker stopped reading for good while sending on.
  size_t limit = std::max<size_t>(1 << 20, 2 * options_.max_packet_size);
  if (control_bytes_ > limit) {
    Fail(absl::ResourceExhaustedError(
        absl::StrCat("mqtt: ", control_.size(), " control packets (", control_bytes_,
                     " bytes) waiting for the link to take bytes; the broker is not reading")));
  }
}

bool Session::WriteControl(absl::string_view bytes) {
  bool ping = !bytes.empty() && bytes[0] == kPingreqByte;
  if (batch_stuck_) {
    // Control packets go ahead of data (see control_): past a batch the link refused, straight to
    // the link, as they pass queued publishes. A PINGREQ then shows whether the link takes bytes.
    if (!LinkWrite(bytes)) return false;
    if (ping) NotePingWritten();
    return true;
  }
  if (!Write(bytes)) return false;
  if (ping) {
    // A PINGREQ in the batch reaches the link when the batch does.
    if (!batch_.empty()) {
      batch_has_ping_ = true;
    } else {
      NotePingWritten();
    }
  }
  return true;
}

bool Session::FlushControl() {
  while (!control_.empty()) {
    if (!WriteControl(control_.front())) return false;
    control_bytes_ -= control_.front().size();
    control_.pop_front();
  }
  return true;
}

void Session::Fail(const absl::Status& status) {
  if (link_ == nullptr || closing_) return;
  closing_ = true;
  clock_->Cancel(keep_alive_timer_);
  keep_alive_timer_ = 0;
  clock_->Cancel(connack_timer_);
  connack_timer_ = 0;
  link_->Close(status);
}

void Session::OnLinkData(absl::string_view bytes) {
  if (link_ == nullptr || closing_) return;
  Scope scope(*this);
  last_received_ = clock_->Now();
  absl::Status status =
      decoder_.Feed(bytes, [this](const Packet& packet) { return HandlePacket(packet); });
  if (status.ok() && link_ != nullptr && !closing_) {
    // What these packets produced (acknowledgements, publishes from handlers) leaves now, in one
    // write, rather than at the end of the turn: a layer below that coalesces per turn too
    // (WebSocket) would otherwise hold an answer for one more turn (measured: QoS 1 round trip over
    // wss 1.5-2x slower).
    FlushBatch();
  }
  if (status.ok() || closing_ || link_ == nullptr) return;
  const absl::optional<Decoder::Oversize>& oversize = decoder_.oversize();
  if (oversize.has_value() && connack_seen_ && oversize->type == PacketType::kPublish) {
    // A persistent session re-delivers what we could not take at every connection: count the
    // links that end on the same packet.
    std::string key = absl::StrCat(oversize->size, "/", oversize->topic.value_or(""));
    oversize_links_ = key == oversize_key_ ? oversize_links_ + 1 : 1;
    oversize_key_ = std::move(key);
    if (oversize->topic.has_value()) {
      status = absl::Status(status.code(),
                            absl::StrCat(status.message(), " (topic \"", *oversize->topic, "\")"));
    }
    if (oversize_links_ >= kOversizeLoopLinks) {
      std::string what = oversize->topic.has_value()
                             ? absl::StrCat("PUBLISH to \"", *oversize->topic, "\"")
                             : std::string("PUBLISH (topic unknown)");
      status = absl::DataLossError(absl::StrCat(
          "mqtt: ", oversize_links_, " connections in a row ended on the same ", what, " of ",
          oversize->size, " bytes, above max_packet_size ", options_.max_packet_size,
          ": the broker's session holds a message this client cannot take and re-delivers it at "
          "every connection; raise max_packet_size or clear the session (clean_session: true)"));
      HLOG(ERROR) << status;
      oversize_counted_ = true;
      uint64_t generation = link_generation_;
      if (observer_ != nullptr) observer_->OnPermanentError(status);
      if (!LinkIs(generation)) return;
    }
    oversize_counted_ = true;
  }
  Fail(status);
}

void Session::OnLinkWritable() {
  Scope scope(*this);
  if (batch_stuck_ && !FlushBatch()) return;
  Pump();
  FlushBatch();
}

void Session::NoteLinkEnd(const absl::Status& status) {
  // A link that got past CONNACK and ended other than on the counted oversize packet breaks the
  // run.
  if (connack_seen_ && !oversize_counted_) {
    oversize_links_ = 0;
    oversize_key_.clear();
  }
  oversize_counted_ = false;
}

void Session::OnLinkClosed(const absl::Status& status) {
  Scope scope(*this);
  NoteLinkEnd(status);
  clock_->Cancel(keep_alive_timer_);
  keep_alive_timer_ = 0;
  clock_->Cancel(connack_timer_);
  connack_timer_ = 0;
  link_ = nullptr;
  ++link_generation_;
  state_ = State::kDown;
  closing_ = false;
  connack_seen_ = false;
  DropBatch();
  ping_outstanding_ = false;
  ping_written_ = false;
  decoder_.Reset();
  resend_.clear();
  // Acknowledgements and SUBSCRIBEs for this link are moot: the broker re-sends what it still
  // wants acknowledged, and every subscription is restored on the next link.
  control_.clear();
  control_bytes_ = 0;
  pending_subscribes_.clear();
  // The filters are already gone locally and nothing restores them; the unsubscribe is done.
  auto unsubscribes = std::move(pending_unsubscribes_);
  pending_unsubscribes_.clear();
  HLOG(DEBUG) << "mqtt: link closed: " << status;
  for (auto& entry : unsubscribes) Defer(std::move(entry.second), absl::OkStatus());
}

absl::Status Session::HandlePacket(const Packet& packet) {
  if (closing_ || link_ == nullptr) return Stopped();
  ++packets_received_;
  if (state_ == State::kAwaitingConnack && packet.type != PacketType::kConnack) {
    return absl::DataLossError(
        absl::StrCat("mqtt: ", PacketTypeName(packet.type), " before CONNACK"));
  }
  switch (packet.type) {
    case PacketType::kConnack:
      return HandleConnack(packet);
    case PacketType::kPublish:
      return HandlePublish(packet);
    case PacketType::kPuback: {
      auto it = outgoing_ids_.find(packet.packet_id);
      if (it == outgoing_ids_.end()) {
        HLOG(WARNING) << "mqtt: PUBACK for unknown packet id " << packet.packet_id << " ignored";
        return absl::OkStatus();
      }
      uint64_t seq = it->second;
      const StoredMessage* m = store_->Find(seq);
      if ((m != nullptr && m->qos != 1) || released_.contains(seq)) {
        return absl::DataLossError(
            absl::StrCat("mqtt: PUBACK for packet id ", packet.packet_id, ", a QoS 2 message"));
      }
      outgoing_ids_.erase(it);
      inflight_.erase(seq);
      store_->Remove(seq);
      Complete(seq, absl::OkStatus());
      Pump();
      return closing_ ? Stopped() : absl::OkStatus();
    }
    case PacketType::kPubrec: {
      auto it = outgoing_ids_.find(packet.packet_id);
      if (it != outgoing_ids_.end()) {
        uint64_t seq = it->second;
        const StoredMessage* m = store_->Find(seq);
        if (m != nullptr && m->qos != 2) {
          return absl::DataLossError(
              absl::StrCat("mqtt: PUBREC for packet id ", packet.packet_id, ", a QoS 1 message"));
        }
        if (!released_.contains(seq)) {
          released_.insert(seq);
          if (m != nullptr) {
            std::string topic = m->topic;
            absl::Status stored =
                store_->SetPhase(seq, StoredMessage::Phase::kAwaitingComp, packet.packet_id);
            if (!stored.ok()) {
              // The broker has the message and PUBREL goes out below, so it will most likely be
              // delivered; but the store no longer tracks it, which its publisher must hear.
              FailStored(seq,
                         Annotate(stored, absl::StrCat("mqtt: store: could not record PUBREC for "
                                                       "the QoS 2 message to \"",
                                                       topic, "\" (id ", packet.packet_id,
                                                       "); PUBREL sent, so it will probably be "
                                                       "delivered, but it is no longer tracked")));
            }
          }
        }
      } else {
        HLOG(WARNING) << "mqtt: PUBREC for unknown packet id " << packet.packet_id;
      }
      // Answer even an unknown id, so the broker can finish its side of the flow.
      out_.clear();
      AppendAck(PacketType::kPubrel, packet.packet_id, &out_);
      SendControl(out_);
      return closing_ ? Stopped() : absl::OkStatus();
    }
    case PacketType::kPubcomp: {
      auto it = outgoing_ids_.find(packet.packet_id);
      if (it == outgoing_ids_.end()) {
        HLOG(WARNING) << "mqtt: PUBCOMP for unknown packet id " << packet.packet_id << " ignored";
        return absl::OkStatus();
      }
      uint64_t seq = it->second;
      outgoing_ids_.erase(it);
      inflight_.erase(seq);
      released_.erase(seq);
      store_->Remove(seq);
      Complete(seq, absl::OkStatus());
      Pump();
      return closing_ ? Stopped() : absl::OkStatus();
    }
    case PacketType::kPubrel:
      incoming_qos2_.erase(packet.packet_id);
      out_.clear();
      AppendAck(PacketType::kPubcomp, packet.packet_id, &out_);
      SendControl(out_);
      return closing_ ? Stopped() : absl::OkStatus();
    case PacketType::kSuback:
      return HandleSuback(packet);
    case PacketType::kUnsuback: {
      auto it = pending_unsubscribes_.find(packet.packet_id);
      if (it == pending_unsubscribes_.end()) {
        HLOG(WARNING) << "mqtt: UNSUBACK for unknown packet id " << packet.packet_id << " ignored";
        return absl::OkStatus();
      }
      Defer(std::move(it->second), absl::OkStatus());
      pending_unsubscribes_.erase(it);
      return absl::OkStatus();
    }
    case PacketType::kPingresp:
      // Held back by backpressure, our PINGREQ has not left: this answers nothing.
      if (ping_written_) ping_outstanding_ = false;
      return absl::OkStatus();
    default:
      return absl::DataLossError(
          absl::StrCat("mqtt: unexpected ", PacketTypeName(packet.type), " from the broker"));
  }
}

void Session::FailStored(uint64_t seq, const absl::Status& status) {
  HLOG(ERROR) << status;
  store_->Remove(seq);
  Complete(seq, status);
}

absl::Status Session::HandleConnack(const Packet& packet) {
  if (state_ != State::kAwaitingConnack) {
    return absl::DataLossError("mqtt: second CONNACK on an established session");
  }
  clock_->Cancel(connack_timer_);
  connack_timer_ = 0;
  // A refused CONNACK stays the open phase: the attempt failed there.
  if (packet.return_code != 0) return ConnackError(packet.return_code, connected_client_id_);
  link_->context().EndPhase("connack");
  // First every state change, then user code (observer, stage observer, completions), so that user
  // code sees the session as it is and may disconnect.
  state_ = State::kUp;
  connack_seen_ = true;
  ping_outstanding_ = false;
  ping_written_ = false;
  // A broker that claims a session we asked it to discard is wrong; trust the request.
  bool session_present = packet.session_present && !options_.clean_session;

  if (session_present) {
    // The broker still holds our unacknowledged packet ids: the same packets go again, PUBLISH with
    // DUP, PUBREL as is.
    resend_.clear();
    for (const auto& entry : inflight_) resend_.push_back(entry.first);
  } else {
    // A new session knows none of our packet ids: unacknowledged publishes go again as new
    // messages, in their original order and ahead of anything queued later (with clean_session
    // as well: [MQTT-3.1.2-6] does not ask for it, but the application asked for the message).
    // They keep their place even beyond the offline queue's limits: they were accepted under those
    // limits, the in-flight window bounds them, and they count towards the queue from now on, so
    // the overflow policy applies to later publishes (see MqttConfig.offline_queue).
    //
    // A QoS 2 message whose PUBREL went out was accepted by the broker, and a broker that
    // delivers on PUBREL (mosquitto) may or may not have delivered it before it dropped the
    // session. Re-sending it could deliver it twice; it ends with kAborted: outcome unknown.
    incoming_qos2_.clear();
    std::vector<Queued> requeue;
    std::vector<std::pair<uint64_t, absl::Status>> ended;
    for (const auto& entry : inflight_) {
      uint64_t seq = entry.first;
      const StoredMessage* m = store_->Find(seq);
      if (released_.contains(seq)) {
        ended.emplace_back(
            seq, absl::AbortedError(absl::StrCat(
                     "mqtt: QoS 2 message id ", entry.second,
                     m != nullptr ? absl::StrCat(" to \"", m->topic, "\"") : std::string(),
                     ": the broker dropped the session after PUBREL; it may or may not have been "
                     "delivered")));
        continue;
      }
      if (m == nullptr) continue;
      std::string topic = m->topic;
      size_t bytes = m->bytes();
      absl::Status stored = store_->SetPhase(seq, StoredMessage::Phase::kQueued, 0);
      if (!stored.ok()) {
        ended.emplace_back(seq, Annotate(stored, absl::StrCat("mqtt: store: could not record the "
                                                              "message to \"",
                                                              topic, "\" as queued again")));
        continue;
      }
      queued_bytes_ += bytes;
      requeue.push_back({seq, bytes});
    }
    inflight_.clear();
    outgoing_ids_.clear();
    released_.clear();
    resend_.clear();
    queued_.insert(queued_.begin(), requeue.begin(), requeue.end());
    for (auto& end : ended) {
      if (end.second.code() != absl::StatusCode::kAborted) HLOG(ERROR) << end.second;
      store_->Remove(end.first);
      Complete(end.first, end.second);
    }
  }

  std::vector<std::string> filters;
  filters.reserve(subscriptions_.size());
  for (const auto& entry : subscriptions_) filters.push_back(entry.first);
  if (!filters.empty()) SendSubscriptions(filters);

  ArmKeepAlive(clock_->Now());
  Pump();
  uint64_t generation = link_generation_;
  if (observer_ != nullptr && LinkIs(generation)) observer_->OnSessionUp(session_present);
  if (LinkIs(generation)) {
    link_->context().ReportStage(
        "mqtt", absl::StrCat("CONNACK accepted, session present: ", session_present ? 1 : 0));
  }
  return LinkIs(generation) ? absl::OkStatus() : Stopped();
}

absl::Status Session::HandlePublish(const Packet& packet) {
  if (packet.qos == 2) {
    if (incoming_qos2_.contains(packet.packet_id)) {
      // A re-sent QoS 2 message we already delivered: acknowledge again, do not deliver twice.
      out_.clear();
      AppendAck(PacketType::kPubrec, packet.packet_id, &out_);
      SendControl(out_);
      return closing_ ? Stopped() : absl::OkStatus();
    }
    // Recorded before delivery: a handler that ends the link must not get the re-delivery again
    // ([MQTT-4.3.3-2]: exactly once).
    incoming_qos2_.insert(packet.packet_id);
  }
  ++publishes_received_;
  uint64_t generation = link_generation_;
  dispatch_scratch_.clear();
  for (const auto& entry : subscriptions_) {
    if (TopicMatches(entry.first, packet.topic)) dispatch_scratch_.push_back(entry.second.handler);
  }
  if (dispatch_scratch_.empty()) {
    HLOG(DEBUG) << "mqtt: message on \"" << packet.topic << "\" matches no subscription";
  }
  Message message;
  message.topic = packet.topic;
  message.payload = packet.payload;
  message.qos = packet.qos;
  message.retain = packet.retain;
  message.dup = packet.dup;
  for (const auto& handler : dispatch_scratch_) {
    if (*handler) (*handler)(message);
    if (!LinkIs(generation)) break;
  }
  dispatch_scratch_.clear();
  // After our DISCONNECT nothing more may be sent; an unacknowledged message comes again later.
  if (!LinkIs(generation)) return Stopped();
  if (packet.qos == 1) {
    out_.clear();
    AppendAck(PacketType::kPuback, packet.packet_id, &out_);
    SendControl(out_);
  } else if (packet.qos == 2) {
    out_.clear();
    AppendAck(PacketType::kPubrec, packet.packet_id, &out_);
    SendControl(out_);
  }
  return closing_ ? Stopped() : absl::OkStatus();
}

absl::Status Session::HandleSuback(const Packet& packet) {
  auto it = pending_subscribes_.find(packet.packet_id);
  if (it == pending_subscribes_.end()) {
    HLOG(WARNING) << "mqtt: SUBACK for unknown packet id " << packet.packet_id << " ignored";
    return absl::OkStatus();
  }
  std::vector<std::string> filters = std::move(it->second.filters);
  pending_subscribes_.erase(it);
  if (filters.size() != packet.return_codes.size()) {
    return absl::DataLossError(absl::StrCat("mqtt: SUBACK carries ", packet.return_codes.size(),
                                            " return codes for ", filters.size(), " filters"));
  }
  std::vector<std::pair<std::string, absl::Status>> lost;
  for (size_t i = 0; i < filters.size(); ++i) {
    auto sub = subscriptions_.find(filters[i]);
    if (sub == subscriptions_.end()) continue;  // unsubscribed meanwhile
    uint8_t code = static_cast<uint8_t>(packet.return_codes[i]);
    if (code == kSubackFailure) {
      absl::Status refused = absl::PermissionDeniedError(
          absl::StrCat("mqtt: broker refused subscription to \"", filters[i], "\" (SUBACK 0x80)"));
      if (sub->second.waiting.empty() && sub->second.granted_once)
        lost.emplace_back(filters[i], refused);
      for (Completion& done : sub->second.waiting) Defer(std::move(done), refused);
      subscriptions_.erase(sub);
      continue;
    }
    sub->second.granted_once = true;
    for (Completion& done : sub->second.waiting) Defer(std::move(done), absl::OkStatus());
    sub->second.waiting.clear();
  }
  uint64_t generation = link_generation_;
  for (auto& entry : lost) {
    HLOG(WARNING) << entry.second;
    if (observer_ != nullptr) observer_->OnSubscriptionLost(entry.first, entry.second);
  }
  return LinkIs(generation) ? absl::OkStatus() : Stopped();
}

void Session::SendSubscriptions(const std::vector<std::string>& filters) {
  size_t begin = 0;
  while (begin < filters.size()) {
    // As many filters per SUBSCRIBE as the packet size limit allows.
    std::vector<SubscribeRequest> requests;
    size_t remaining = 2;
    size_t end = begin;
    while (end < filters.size()) {
      size_t add = 3 + filters[end].size();
      if (!requests.empty() && PacketSize(remaining + add) > options_.max_packet_size) break;
      remaining += add;
      requests.push_back({filters[end], subscriptions_[filters[end]].qos});
      ++end;
    }
    uint16_t id = NextPacketId();
    if (id == 0) {
      HLOG(WARNING) << "mqtt: no free packet id for SUBSCRIBE";
      return;
    }
    out_.clear();
    absl::Status status = AppendSubscribe(id, requests, &out_);
    if (!status.ok()) {
      HLOG(ERROR) << status;
      return;
    }
    pending_subscribes_[id].filters.assign(filters.begin() + begin, filters.begin() + end);
    SendControl(out_);
    begin = end;
  }
}

uint16_t Session::NextPacketId() {
  for (int i = 0; i < 65535; ++i) {
    uint16_t id = next_packet_id_++;
    if (next_packet_id_ == 0) next_packet_id_ = 1;
    if (!outgoing_ids_.contains(id) && !pending_subscribes_.contains(id) &&
        !pending_unsubscribes_.contains(id)) {
      return id;
    }
  }
  return 0;
}

void Session::Complete(uint64_t seq, const absl::Status& status) {
  auto it = completions_.find(seq);
  if (it == completions_.end()) return;
  Defer(std::move(it->second), status);
  completions_.erase(it);
}

void Session::Pump() {
  if (state_ != State::kUp || closing_) return;
  // Control packets first: acknowledgements free the broker's window, SUBSCRIBE must precede the
  // data published after it.
  if (!FlushControl()) return;
  while (!resend_.empty()) {
    if (state_ != State::kUp || closing_) return;
    uint64_t seq = resend_.front();
    const StoredMessage* m = store_->Find(seq);
    auto in = inflight_.find(seq);
    if (in == inflight_.end() || (m == nullptr && !released_.contains(seq))) {
      resend_.pop_front();
      continue;
    }
    out_.clear();
    if (released_.contains(seq)) {
      AppendAck(PacketType::kPubrel, in->second, &out_);
    } else {
      PublishPacket p{m->topic, m->payload, m->qos, m->retain, /*dup=*/true, in->second};
      if (!AppendPublish(p, &out_).ok()) {
        resend_.pop_front();
        continue;
      }
    }
    if (!Write(out_)) return;
    if (!released_.contains(seq)) ++publishes_sent_;
    resend_.pop_front();
  }
  while (!queued_.empty()) {
    if (state_ != State::kUp || closing_) return;
    // OnLinkWritable resumes.
    if (LinkAboveSoftLimit()) return;
    uint64_t seq = queued_.front().seq;
    size_t bytes = queued_.front().bytes;
    const StoredMessage* m = store_->Find(seq);
    if (m == nullptr) {
      // The store dropped it (its own overflow policy) after we last looked.
      queued_.pop_front();
      queued_bytes_ -= bytes;
      Complete(seq, absl::ResourceExhaustedError(
                        "mqtt: message dropped by the store's overflow policy (the oldest queued) "
                        "to make room"));
      continue;
    }
    uint8_t qos = m->qos;
    if (qos > 0 && outgoing_ids_.size() >= options_.max_inflight) return;
    uint16_t id = 0;
    if (qos > 0) {
      id = NextPacketId();
      if (id == 0) return;
      // Recorded before it is sent, so a store that fails means "not sent". If the write below is
      // refused, the store holds an id that never went out; harmless (a recovered session sends it
      // with that id, which the broker takes as a new message) and re-recorded on the next try.
      absl::Status stored = store_->SetPhase(seq, StoredMessage::Phase::kAwaitingAck, id);
      if (!stored.ok()) {
        std::string topic = store_->Find(seq) != nullptr ? store_->Find(seq)->topic : "";
        queued_.pop_front();
        queued_bytes_ -= bytes;
        FailStored(seq, Annotate(stored, absl::StrCat("mqtt: store: could not record the message "
                                                      "to \"",
                                                      topic, "\" as sent, so it was not sent")));
        continue;
      }
      m = store_->Find(seq);
      if (m == nullptr) return;
    }
    out_.clear();
    absl::Status encoded = AppendPublish({m->topic, m->payload, qos, m->retain, false, id}, &out_);
    if (!encoded.ok()) {
      queued_.pop_front();
      queued_bytes_ -= bytes;
      store_->Remove(seq);
      Complete(seq, encoded);
      continue;
    }
    if (!Write(out_)) return;
    ++publishes_sent_;
    queued_.pop_front();
    queued_bytes_ -= bytes;
    if (qos == 0) {
      store_->Remove(seq);
      Complete(seq, absl::OkStatus());
    } else {
      outgoing_ids_[id] = seq;
      inflight_[seq] = id;
    }
  }
}

absl::Status Session::CheckBrokerSupports(uint8_t qos, bool retain) const {
  if (qos > options_.max_qos) {
    return absl::InvalidArgumentError(absl::StrCat("mqtt: ", options_.broker,
                                                   " does not support QoS ", qos, "; use QoS ",
                                                   options_.max_qos, " or lower"));
  }
  if (retain && !options_.retain_available) {
    return absl::InvalidArgumentError(
        absl::StrCat("mqtt: ", options_.broker, " does not support retained messages"));
  }
  return absl::OkStatus();
}

void Session::Publish(absl::string_view topic, absl::string_view payload, uint8_t qos, bool retain,
                      Completion done) {
  PublishFrom(topic, payload, nullptr, qos, retain, std::move(done));
}

void Session::PublishTaking(absl::string_view topic, std::string& payload, uint8_t qos, bool retain,
                            Completion done) {
  PublishFrom(topic, payload, &payload, qos, retain, std::move(done));
}

void Session::PublishFrom(absl::string_view topic, absl::string_view payload,
                          std::string* owned_payload, uint8_t qos, bool retain, Completion done) {
  Scope scope(*this);
  absl::Status valid = ValidateTopicName(topic);
  if (valid.ok() && qos > 2) {
    valid = absl::InvalidArgumentError(absl::StrCat("mqtt: QoS ", qos, " is not 0, 1 or 2"));
  }
  if (valid.ok()) valid = CheckBrokerSupports(qos, retain);
  size_t size = PublishPacketSize(topic.size(), payload.size(), qos);
  if (valid.ok() && size > options_.max_packet_size) {
    valid = absl::InvalidArgumentError(absl::StrCat("mqtt: PUBLISH to \"", topic, "\" would be ",
                                                    size, " bytes, above max_packet_size ",
                                                    options_.max_packet_size));
  }
  if (!valid.ok()) {
    Defer(std::move(done), valid);
    return;
  }
  // The fast path: QoS 0 straight onto the link, nothing stored, no allocation. Not while the link
  // is above its soft limit: the message then waits in the bounded queue and completes when handed
  // on, which paces a publisher that waits on completions instead of filling the transports'
  // buffers up to their hard limit.
  if (qos == 0 && state_ == State::kUp && !closing_ && queued_.empty() && resend_.empty() &&
      control_.empty() && !LinkAboveSoftLimit()) {
    out_.clear();
    if (AppendPublish({topic, payload, 0, retain, false, 0}, &out_).ok() && Write(out_)) {
      ++publishes_sent_;
      Defer(std::move(done), absl::OkStatus());
      return;
    }
  }
  absl::Status queued = Enqueue(topic, payload, owned_payload, qos, retain, std::move(done));
  if (queued.ok()) Pump();
}

absl::Status Session::Enqueue(absl::string_view topic, absl::string_view payload,
                              std::string* owned_payload, uint8_t qos, bool retain,
                              Completion done) {
  size_t bytes = topic.size() + payload.size();
  absl::Status refused;
  if (bytes > options_.max_queued_bytes) {
    refused = absl::ResourceExhaustedError(absl::StrCat("mqtt: message of ", bytes,
                                                        " bytes exceeds the offline queue's ",
                                                        options_.max_queued_bytes, "-byte limit"));
  }
  while (refused.ok() && (queued_.size() + 1 > options_.max_queued_messages ||
                          queued_bytes_ + bytes > options_.max_queued_bytes)) {
    if (options_.overflow == QueueOverflow::kRejectNew || queued_.empty()) {
      refused = absl::ResourceExhaustedError(
          absl::StrCat("mqtt: offline queue full (", queued_.size(), " messages, ", queued_bytes_,
                       " bytes; limits ", options_.max_queued_messages, " messages, ",
                       options_.max_queued_bytes, " bytes); publish to \"", topic, "\" rejected"));
      break;
    }
    uint64_t oldest = queued_.front().seq;
    queued_bytes_ -= queued_.front().bytes;
    queued_.pop_front();
    if (const StoredMessage* m = store_->Find(oldest)) {
      absl::Status status = absl::ResourceExhaustedError(
          absl::StrCat("mqtt: offline queue full; dropped this message to \"", m->topic,
                       "\" (the oldest queued) to make room"));
      store_->Remove(oldest);
      Complete(oldest, status);
    } else {
      Complete(oldest, absl::ResourceExhaustedError(
                           "mqtt: message dropped by the store's overflow policy (the oldest "
                           "queued) to make room"));
    }
  }
  if (refused.ok()) {
    StoredMessage m;
    m.seq = next_seq_++;
    m.qos = qos;
    m.retain = retain;
    m.topic = std::string(topic);
    m.payload = owned_payload != nullptr ? std::move(*owned_payload) : std::string(payload);
    uint64_t seq = m.seq;
    refused = store_->Add(std::move(m));
    if (refused.ok()) {
      queued_.push_back({seq, bytes});
      queued_bytes_ += bytes;
      if (done) completions_[seq] = std::move(done);
      ReapDropped();
    }
  }
  if (!refused.ok()) Defer(std::move(done), refused);
  return refused;
}

void Session::Subscribe(absl::string_view filter, uint8_t qos, MessageHandler handler,
                        Completion done) {
  Scope scope(*this);
  absl::Status valid = ValidateTopicFilter(filter);
  if (valid.ok() && qos > 2) {
    valid = absl::InvalidArgumentError(absl::StrCat("mqtt: QoS ", qos, " is not 0, 1 or 2"));
  }
  if (valid.ok()) valid = CheckBrokerSupports(qos, false);
  if (!valid.ok()) {
    Defer(std::move(done), valid);
    return;
  }
  std::string key(filter);
  Subscription& sub = subscriptions_[key];
  sub.qos = qos;
  sub.handler = std::make_shared<const MessageHandler>(std::move(handler));
  if (done) sub.waiting.push_back(std::move(done));
  if (state_ == State::kUp && !closing_) SendSubscriptions({key});
}

void Session::Unsubscribe(absl::string_view filter, Completion done) {
  Scope scope(*this);
  auto it = subscriptions_.find(std::string(filter));
  if (it == subscriptions_.end()) {
    Defer(std::move(done),
          absl::NotFoundError(absl::StrCat("mqtt: not subscribed to \"", filter, "\"")));
    return;
  }
  std::vector<Completion> waiting = std::move(it->second.waiting);
  subscriptions_.erase(it);
  absl::Status cancelled = absl::CancelledError(
      absl::StrCat("mqtt: unsubscribed from \"", filter, "\" before the broker answered"));
  for (Completion& w : waiting) Defer(std::move(w), cancelled);
  if (state_ == State::kUp && !closing_) {
    uint16_t id = NextPacketId();
    out_.clear();
    absl::string_view filters[] = {filter};
    if (id != 0 && AppendUnsubscribe(id, filters, &out_).ok()) {
      pending_unsubscribes_[id] = std::move(done);
      SendControl(out_);
      return;
    }
  }
  Defer(std::move(done), absl::OkStatus());
}

void Session::Disconnect() {
  if (link_ == nullptr || closing_) return;
  Scope scope(*this);
  // Best effort: after what is already waiting, if the link takes it.
  FlushControl();
  out_.clear();
  AppendDisconnect(&out_);
  WriteNow(out_);  // after the batch, before the close
  closing_ = true;
  clock_->Cancel(keep_alive_timer_);
  keep_alive_timer_ = 0;
  clock_->Cancel(connack_timer_);
  connack_timer_ = 0;
  link_->Close(absl::OkStatus());
}

void Session::FailPending(const absl::Status& status, bool keep_stored) {
  Scope scope(*this);
  std::vector<uint64_t> seqs;
  for (const auto& entry : completions_) seqs.push_back(entry.first);
  std::sort(seqs.begin(), seqs.end());
  for (uint64_t seq : seqs) Defer(std::move(completions_[seq]), status);
  completions_.clear();
  queued_.clear();
  queued_bytes_ = 0;
  resend_.clear();
  inflight_.clear();
  outgoing_ids_.clear();
  released_.clear();
  if (keep_stored) {
    Recover();  // what the store holds goes out on the next link, with no completion to report to
  } else {
    store_->Clear();
  }
  for (auto& entry : subscriptions_) {
    for (Completion& done : entry.second.waiting) Defer(std::move(done), status);
    entry.second.waiting.clear();
  }
  auto unsubscribes = std::move(pending_unsubscribes_);
  pending_unsubscribes_.clear();
  for (auto& entry : unsubscribes) Defer(std::move(entry.second), status);
}

void Session::ArmKeepAlive(absl::Time now) {
  clock_->Cancel(keep_alive_timer_);
  keep_alive_timer_ = 0;
  if (options_.keep_alive <= absl::ZeroDuration()) return;
  absl::Time due;
  if (ping_outstanding_) {
    due = ping_sent_ + options_.ping_timeout;
  } else {
    // PINGREQ when we have sent nothing for a keep-alive period (the broker's rule) or heard
    // nothing for long enough that an unanswered ping still ends within one keep-alive of the last
    // sign of life.
    due = std::min(last_sent_ + options_.keep_alive,
                   last_received_ + (options_.keep_alive - options_.ping_timeout));
  }
  keep_alive_timer_ = clock_->RunAt(std::max(due, now), guard_.Wrap([this] {
    keep_alive_timer_ = 0;
    OnKeepAliveTimer();
  }));
}

void Session::OnKeepAliveTimer() {
  if (state_ != State::kUp || closing_) return;
  Scope scope(*this);
  absl::Time now = clock_->Now();
  // Any byte received after our PINGREQ left counts as an answer (a busy broker's PINGRESP may
  // queue behind data). Not while it is held back by backpressure, nor while the transports still
  // hold unsent bytes: a broker that sends but does not read is no working link.
  size_t unsent = link_ != nullptr ? link_->BufferedBytes() + batch_.size() : 0;
  if (ping_outstanding_ && ping_written_ && last_received_ > ping_written_at_ && unsent == 0) {
    ping_outstanding_ = false;
  }
  if (ping_outstanding_) {
    if (now >= ping_sent_ + options_.ping_timeout) {
      if (!ping_written_) {
        Fail(absl::DeadlineExceededError(
            absl::StrCat("mqtt: the broker has not read what we sent for ",
                         absl::FormatDuration(now - last_sent_), ": the PINGREQ due ",
                         absl::FormatDuration(now - ping_sent_),
                         " ago is still waiting for the link to take it (keep-alive ",
                         absl::FormatDuration(options_.keep_alive), ", ping timeout ",
                         absl::FormatDuration(options_.ping_timeout), "); the link is dead")));
      } else if (unsent > 0 && last_received_ >= ping_written_at_) {
        // (>=: only the message depends on it; a manual clock gives both the same instant.)
        Fail(absl::DeadlineExceededError(
            absl::StrCat("mqtt: no PINGRESP within ", absl::FormatDuration(options_.ping_timeout),
                         " while ", unsent,
                         " bytes we wrote are still waiting to leave: the broker sends but is not "
                         "reading (keep-alive ",
                         absl::FormatDuration(options_.keep_alive), "); the link is dead")));
      } else {
        Fail(absl::DeadlineExceededError(absl::StrCat(
            "mqtt: broker silent for ", absl::FormatDuration(now - last_received_),
            " (no answer to PINGREQ within ", absl::FormatDuration(options_.ping_timeout),
            ", keep-alive ", absl::FormatDuration(options_.keep_alive), "); the link is dead")));
      }
      return;
    }
  } else if (now >= last_sent_ + options_.keep_alive ||
             now >= last_received_ + (options_.keep_alive - options_.ping_timeout)) {
    // Outstanding from now on, written or not: it is due, and the deadline runs from here.
    ping_outstanding_ = true;
    ping_written_ = false;
    ping_sent_ = now;
    out_.clear();
    AppendPingreq(&out_);
    SendControl(out_);
    if (closing_) return;
  }
  ArmKeepAlive(now);
}

}  // namespace mqtt
}  // namespace hublink
