#include "protocols/mqtt/session.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "plugins/connect_context.h"
#include "plugins/log.h"
#include "plugins/signer.h"
#include "plugins/status_macros.h"

namespace hublink {
namespace mqtt {
namespace {

absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

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
    absl::Duration k = ToDuration(config.keep_alive());
    if (k < absl::ZeroDuration()) return invalid("keep_alive", "must not be negative");
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
  if (config.has_will()) {
    absl::Status topic = ValidateTopicName(config.will().topic());
    if (!topic.ok()) return invalid("will.topic", topic.message());
    if (config.will().qos() > 2)
      return invalid("will.qos", absl::StrCat(config.will().qos(), " is not 0..2"));
    if (config.will().payload().size() > 65535) return invalid("will.payload", "above 65535 bytes");
    o.will = Will{config.will().topic(), config.will().payload(),
                  static_cast<uint8_t>(config.will().qos()), config.will().retain()};
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

Session::Session(EventLoop& loop, SessionOptions options, std::unique_ptr<MessageStore> store)
    : loop_(loop),
      options_(std::move(options)),
      store_(std::move(store)),
      decoder_(options_.max_packet_size, Decoder::Role::kClient) {
  Recover();
}

Session::~Session() {
  loop_.Cancel(keep_alive_timer_);
  loop_.Cancel(connack_timer_);
}

void Session::Recover() {
  for (uint64_t seq : store_->Sequences()) {
    const StoredMessage* m = store_->Find(seq);
    if (m == nullptr) continue;
    next_seq_ = std::max(next_seq_, seq + 1);
    if (m->phase == StoredMessage::Phase::kQueued || m->packet_id == 0) {
      queued_.push_back(seq);
      queued_bytes_ += m->bytes();
    } else {
      inflight_[seq] = m->packet_id;
      outgoing_ids_[m->packet_id] = seq;
    }
  }
}

void Session::OnLinkOpen(ProtocolLink& link) {
  link_ = &link;
  closing_ = false;
  state_ = State::kAwaitingConnack;
  decoder_.Reset();
  ConnectContext& context = link.context();
  absl::Time now = loop_.Now();
  last_sent_ = last_received_ = now;
  absl::Time deadline = context.deadline() == absl::InfiniteFuture()
                            ? now + options_.connack_timeout
                            : context.deadline();
  connack_timer_ = loop_.RunAt(deadline, guard_.Wrap([this, deadline, now] {
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
  bool written = Write(out_);
  // The buffer held the password; do not leave it lying in reused memory.
  std::fill(out_.begin(), out_.end(), '\0');
  std::fill(password.begin(), password.end(), '\0');
  if (!written) {
    Fail(absl::UnavailableError("mqtt: could not write CONNECT"));
    return;
  }
  connected_client_id_ = client_id;
  context.ReportStage("mqtt", absl::StrCat("CONNECT client id \"", client_id, "\""));
}

bool Session::Write(absl::string_view bytes) {
  if (link_ == nullptr || closing_) return false;
  absl::Status status = link_->Write(bytes);
  if (status.ok()) {
    last_sent_ = loop_.Now();
    return true;
  }
  if (status.code() != absl::StatusCode::kResourceExhausted) {
    HLOG(DEBUG) << "mqtt: write failed: " << status;
  }
  return false;
}

void Session::Fail(const absl::Status& status) {
  if (link_ == nullptr || closing_) return;
  closing_ = true;
  loop_.Cancel(keep_alive_timer_);
  keep_alive_timer_ = 0;
  loop_.Cancel(connack_timer_);
  connack_timer_ = 0;
  link_->Close(status);
}

void Session::OnLinkData(absl::string_view bytes) {
  if (link_ == nullptr || closing_) return;
  last_received_ = loop_.Now();
  absl::Status status =
      decoder_.Feed(bytes, [this](const Packet& packet) { return HandlePacket(packet); });
  if (!status.ok() && !closing_ && link_ != nullptr) Fail(status);
}

void Session::OnLinkWritable() { Pump(); }

void Session::OnLinkClosed(const absl::Status& status) {
  loop_.Cancel(keep_alive_timer_);
  keep_alive_timer_ = 0;
  loop_.Cancel(connack_timer_);
  connack_timer_ = 0;
  link_ = nullptr;
  state_ = State::kDown;
  closing_ = false;
  ping_outstanding_ = false;
  decoder_.Reset();
  resend_.clear();
  pending_subscribes_.clear();
  // The filters are already gone locally and nothing restores them; the unsubscribe is done.
  auto unsubscribes = std::move(pending_unsubscribes_);
  pending_unsubscribes_.clear();
  HLOG(DEBUG) << "mqtt: link closed: " << status;
  for (auto& entry : unsubscribes) {
    if (entry.second) entry.second(absl::OkStatus());
  }
}

absl::Status Session::HandlePacket(const Packet& packet) {
  if (closing_ || link_ == nullptr) return Stopped();
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
      if (m != nullptr && m->qos != 1) {
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
        const StoredMessage* m = store_->Find(it->second);
        if (m != nullptr && m->qos != 2) {
          return absl::DataLossError(
              absl::StrCat("mqtt: PUBREC for packet id ", packet.packet_id, ", a QoS 1 message"));
        }
        store_->SetPhase(it->second, StoredMessage::Phase::kAwaitingComp, packet.packet_id)
            .IgnoreError();
      } else {
        HLOG(WARNING) << "mqtt: PUBREC for unknown packet id " << packet.packet_id;
      }
      // Answer even an unknown id, so the broker can finish its side of the flow.
      out_.clear();
      AppendAck(PacketType::kPubrel, packet.packet_id, &out_);
      Write(out_);
      return absl::OkStatus();
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
      store_->Remove(seq);
      Complete(seq, absl::OkStatus());
      Pump();
      return closing_ ? Stopped() : absl::OkStatus();
    }
    case PacketType::kPubrel:
      incoming_qos2_.erase(packet.packet_id);
      out_.clear();
      AppendAck(PacketType::kPubcomp, packet.packet_id, &out_);
      Write(out_);
      return absl::OkStatus();
    case PacketType::kSuback:
      return HandleSuback(packet);
    case PacketType::kUnsuback: {
      auto it = pending_unsubscribes_.find(packet.packet_id);
      if (it == pending_unsubscribes_.end()) {
        HLOG(WARNING) << "mqtt: UNSUBACK for unknown packet id " << packet.packet_id << " ignored";
        return absl::OkStatus();
      }
      Completion done = std::move(it->second);
      pending_unsubscribes_.erase(it);
      if (done) done(absl::OkStatus());
      return closing_ ? Stopped() : absl::OkStatus();
    }
    case PacketType::kPingresp:
      ping_outstanding_ = false;
      return absl::OkStatus();
    default:
      return absl::DataLossError(
          absl::StrCat("mqtt: unexpected ", PacketTypeName(packet.type), " from the broker"));
  }
}

absl::Status Session::HandleConnack(const Packet& packet) {
  if (state_ != State::kAwaitingConnack) {
    return absl::DataLossError("mqtt: second CONNACK on an established session");
  }
  loop_.Cancel(connack_timer_);
  connack_timer_ = 0;
  if (packet.return_code != 0) return ConnackError(packet.return_code, connected_client_id_);
  state_ = State::kUp;
  // A broker that claims a session we asked it to discard is wrong; trust the request.
  bool session_present = packet.session_present && !options_.clean_session;
  link_->context().ReportStage(
      "mqtt", absl::StrCat("CONNACK accepted, session present: ", session_present ? 1 : 0));

  std::vector<uint64_t> finished;
  if (session_present) {
    // The broker still holds our unacknowledged packet ids: the same packets go again, PUBLISH with
    // DUP, PUBREL as is.
    resend_.clear();
    for (const auto& entry : inflight_) resend_.push_back(entry.first);
  } else {
    // A new session knows none of our packet ids: unacknowledged publishes go again as new
    // messages, in their original order and ahead of anything queued later. A QoS 2 message the
    // broker already acknowledged with PUBREC was accepted, so sending it again would deliver it
    // twice; it is complete.
    incoming_qos2_.clear();
    std::vector<uint64_t> requeue;
    for (const auto& entry : inflight_) {
      const StoredMessage* m = store_->Find(entry.first);
      if (m == nullptr) continue;
      if (m->phase == StoredMessage::Phase::kAwaitingComp) {
        finished.push_back(entry.first);
      } else {
        queued_bytes_ += m->bytes();
        requeue.push_back(entry.first);
        store_->SetPhase(entry.first, StoredMessage::Phase::kQueued, 0).IgnoreError();
      }
    }
    for (uint64_t seq : finished) store_->Remove(seq);
    inflight_.clear();
    outgoing_ids_.clear();
    resend_.clear();
    queued_.insert(queued_.begin(), requeue.begin(), requeue.end());
  }

  std::vector<std::string> filters;
  filters.reserve(subscriptions_.size());
  for (const auto& entry : subscriptions_) filters.push_back(entry.first);
  if (!filters.empty()) SendSubscriptions(filters);

  ArmKeepAlive(loop_.Now());
  Pump();
  for (uint64_t seq : finished) Complete(seq, absl::OkStatus());
  if (observer_ != nullptr && !closing_) observer_->OnSessionUp(session_present);
  return closing_ ? Stopped() : absl::OkStatus();
}

absl::Status Session::HandlePublish(const Packet& packet) {
  if (packet.qos == 2 && incoming_qos2_.contains(packet.packet_id)) {
    // A re-sent QoS 2 message we already delivered: acknowledge again, do not deliver twice.
    out_.clear();
    AppendAck(PacketType::kPubrec, packet.packet_id, &out_);
    Write(out_);
    return absl::OkStatus();
  }
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
    if (closing_ || link_ == nullptr) break;
  }
  dispatch_scratch_.clear();
  // After our DISCONNECT nothing more may be sent; an unacknowledged message comes again later.
  if (closing_ || link_ == nullptr) return Stopped();
  if (packet.qos == 1) {
    out_.clear();
    AppendAck(PacketType::kPuback, packet.packet_id, &out_);
    Write(out_);
  } else if (packet.qos == 2) {
    incoming_qos2_.insert(packet.packet_id);
    out_.clear();
    AppendAck(PacketType::kPubrec, packet.packet_id, &out_);
    Write(out_);
  }
  return absl::OkStatus();
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
  std::vector<std::pair<Completion, absl::Status>> calls;
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
      for (Completion& done : sub->second.waiting) calls.emplace_back(std::move(done), refused);
      subscriptions_.erase(sub);
      continue;
    }
    sub->second.granted_once = true;
    for (Completion& done : sub->second.waiting)
      calls.emplace_back(std::move(done), absl::OkStatus());
    sub->second.waiting.clear();
  }
  for (auto& call : calls) {
    if (call.first) call.first(call.second);
  }
  for (auto& entry : lost) {
    HLOG(WARNING) << entry.second;
    if (observer_ != nullptr) observer_->OnSubscriptionLost(entry.first, entry.second);
  }
  return closing_ ? Stopped() : absl::OkStatus();
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
    Write(out_);
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
  Completion done = std::move(it->second);
  completions_.erase(it);
  if (done) done(status);
}

void Session::Pump() {
  while (!resend_.empty()) {
    if (state_ != State::kUp || closing_) return;
    uint64_t seq = resend_.front();
    const StoredMessage* m = store_->Find(seq);
    auto in = inflight_.find(seq);
    if (m == nullptr || in == inflight_.end()) {
      resend_.pop_front();
      continue;
    }
    out_.clear();
    if (m->phase == StoredMessage::Phase::kAwaitingComp) {
      AppendAck(PacketType::kPubrel, in->second, &out_);
    } else {
      PublishPacket p{m->topic, m->payload, m->qos, m->retain, /*dup=*/true, in->second};
      if (!AppendPublish(p, &out_).ok()) {
        resend_.pop_front();
        continue;
      }
    }
    if (!Write(out_)) return;
    resend_.pop_front();
  }
  while (!queued_.empty()) {
    if (state_ != State::kUp || closing_) return;
    uint64_t seq = queued_.front();
    const StoredMessage* m = store_->Find(seq);
    if (m == nullptr) {
      queued_.pop_front();
      continue;
    }
    uint8_t qos = m->qos;
    size_t bytes = m->bytes();
    if (qos > 0 && outgoing_ids_.size() >= options_.max_inflight) return;
    uint16_t id = 0;
    if (qos > 0) {
      id = NextPacketId();
      if (id == 0) return;
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
    queued_.pop_front();
    queued_bytes_ -= bytes;
    if (qos == 0) {
      store_->Remove(seq);
      Complete(seq, absl::OkStatus());
    } else {
      store_->SetPhase(seq, StoredMessage::Phase::kAwaitingAck, id).IgnoreError();
      outgoing_ids_[id] = seq;
      inflight_[seq] = id;
    }
  }
}

void Session::Publish(absl::string_view topic, absl::string_view payload, uint8_t qos, bool retain,
                      Completion done) {
  absl::Status valid = ValidateTopicName(topic);
  if (valid.ok() && qos > 2) {
    valid = absl::InvalidArgumentError(absl::StrCat("mqtt: QoS ", qos, " is not 0, 1 or 2"));
  }
  size_t size = PublishPacketSize(topic.size(), payload.size(), qos);
  if (valid.ok() && size > options_.max_packet_size) {
    valid = absl::InvalidArgumentError(absl::StrCat("mqtt: PUBLISH to \"", topic, "\" would be ",
                                                    size, " bytes, above max_packet_size ",
                                                    options_.max_packet_size));
  }
  if (!valid.ok()) {
    if (done) done(valid);
    return;
  }
  // The fast path: QoS 0 straight onto the link, nothing stored, no allocation.
  if (qos == 0 && state_ == State::kUp && !closing_ && queued_.empty() && resend_.empty()) {
    out_.clear();
    if (AppendPublish({topic, payload, 0, retain, false, 0}, &out_).ok() && Write(out_)) {
      if (done) done(absl::OkStatus());
      return;
    }
  }
  absl::Status queued = Enqueue(topic, payload, qos, retain, std::move(done));
  if (queued.ok()) Pump();
}

absl::Status Session::Enqueue(absl::string_view topic, absl::string_view payload, uint8_t qos,
                              bool retain, Completion done) {
  size_t bytes = topic.size() + payload.size();
  std::vector<std::pair<Completion, absl::Status>> dropped;
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
    uint64_t oldest = queued_.front();
    queued_.pop_front();
    if (const StoredMessage* m = store_->Find(oldest)) {
      queued_bytes_ -= m->bytes();
      absl::Status status = absl::ResourceExhaustedError(
          absl::StrCat("mqtt: offline queue full; dropped this message to \"", m->topic,
                       "\" (the oldest queued) to make room"));
      store_->Remove(oldest);
      auto it = completions_.find(oldest);
      if (it != completions_.end()) {
        dropped.emplace_back(std::move(it->second), status);
        completions_.erase(it);
      }
    }
  }
  if (refused.ok()) {
    StoredMessage m;
    m.seq = next_seq_++;
    m.qos = qos;
    m.retain = retain;
    m.topic = std::string(topic);
    m.payload = std::string(payload);
    uint64_t seq = m.seq;
    refused = store_->Add(std::move(m));
    if (refused.ok()) {
      queued_.push_back(seq);
      queued_bytes_ += bytes;
      if (done) completions_[seq] = std::move(done);
    }
  }
  for (auto& call : dropped) {
    if (call.first) call.first(call.second);
  }
  if (!refused.ok() && done) done(refused);
  return refused;
}

void Session::Subscribe(absl::string_view filter, uint8_t qos, MessageHandler handler,
                        Completion done) {
  absl::Status valid = ValidateTopicFilter(filter);
  if (valid.ok() && qos > 2) {
    valid = absl::InvalidArgumentError(absl::StrCat("mqtt: QoS ", qos, " is not 0, 1 or 2"));
  }
  if (!valid.ok()) {
    if (done) done(valid);
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
  auto it = subscriptions_.find(std::string(filter));
  if (it == subscriptions_.end()) {
    if (done) {
      done(absl::NotFoundError(absl::StrCat("mqtt: not subscribed to \"", filter, "\"")));
    }
    return;
  }
  std::vector<Completion> waiting = std::move(it->second.waiting);
  subscriptions_.erase(it);
  absl::Status cancelled = absl::CancelledError(
      absl::StrCat("mqtt: unsubscribed from \"", filter, "\" before the broker answered"));
  if (state_ == State::kUp && !closing_) {
    uint16_t id = NextPacketId();
    out_.clear();
    absl::string_view filters[] = {filter};
    if (id != 0 && AppendUnsubscribe(id, filters, &out_).ok() && Write(out_)) {
      pending_unsubscribes_[id] = std::move(done);
      done = nullptr;
    }
  }
  for (Completion& w : waiting) {
    if (w) w(cancelled);
  }
  if (done) done(absl::OkStatus());
}

void Session::Disconnect() {
  if (link_ == nullptr || closing_) return;
  out_.clear();
  AppendDisconnect(&out_);
  Write(out_);
  closing_ = true;
  loop_.Cancel(keep_alive_timer_);
  keep_alive_timer_ = 0;
  loop_.Cancel(connack_timer_);
  connack_timer_ = 0;
  link_->Close(absl::OkStatus());
}

void Session::FailPending(const absl::Status& status) {
  std::vector<uint64_t> seqs;
  for (const auto& entry : completions_) seqs.push_back(entry.first);
  std::sort(seqs.begin(), seqs.end());
  std::vector<Completion> calls;
  for (uint64_t seq : seqs) calls.push_back(std::move(completions_[seq]));
  completions_.clear();
  queued_.clear();
  queued_bytes_ = 0;
  resend_.clear();
  inflight_.clear();
  outgoing_ids_.clear();
  store_->Clear();
  for (auto& entry : subscriptions_) {
    for (Completion& done : entry.second.waiting) calls.push_back(std::move(done));
    entry.second.waiting.clear();
  }
  auto unsubscribes = std::move(pending_unsubscribes_);
  pending_unsubscribes_.clear();
  for (auto& entry : unsubscribes) calls.push_back(std::move(entry.second));
  for (Completion& done : calls) {
    if (done) done(status);
  }
}

void Session::ArmKeepAlive(absl::Time now) {
  loop_.Cancel(keep_alive_timer_);
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
  keep_alive_timer_ = loop_.RunAt(std::max(due, now), guard_.Wrap([this] {
    keep_alive_timer_ = 0;
    OnKeepAliveTimer();
  }));
}

void Session::OnKeepAliveTimer() {
  if (state_ != State::kUp || closing_) return;
  absl::Time now = loop_.Now();
  if (ping_outstanding_ && last_received_ > ping_sent_) ping_outstanding_ = false;
  if (ping_outstanding_) {
    if (now >= ping_sent_ + options_.ping_timeout) {
      Fail(absl::DeadlineExceededError(absl::StrCat(
          "mqtt: broker silent for ", absl::FormatDuration(now - last_received_),
          " (no answer to PINGREQ within ", absl::FormatDuration(options_.ping_timeout),
          ", keep-alive ", absl::FormatDuration(options_.keep_alive), "); the link is dead")));
      return;
    }
  } else if (now >= last_sent_ + options_.keep_alive ||
             now >= last_received_ + (options_.keep_alive - options_.ping_timeout)) {
    out_.clear();
    AppendPingreq(&out_);
    if (Write(out_)) {
      ping_outstanding_ = true;
      ping_sent_ = now;
    }
  }
  ArmKeepAlive(now);
}

}  // namespace mqtt
}  // namespace hublink
