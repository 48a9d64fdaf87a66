// The MQTT 3.1.1 session: a Protocol (plugins/protocol.h) that outlives single connections. It
// speaks CONNECT/CONNACK on every new link with fresh credentials from the signer, keeps the link
// alive with PINGREQ and declares it dead when the broker goes silent, runs QoS 0/1/2 both ways
// with an in-flight window, re-sends what was unacknowledged after a reconnect, restores every
// subscription, and queues publishes while there is no link. It owns no sockets and no timers
// beyond the loop's; whoever owns the transports (hublink::Client, a test) drives it and decides
// when to reconnect.
//
// Everything here runs on the loop thread. Completions and message handlers are called on it too,
// and may call back into the session (publish, subscribe, disconnect). Completions always run last,
// after the session (and its observer) finished the state change that resolved them, so they see
// the state they report; a completion may even destroy the session. Message handlers run while a
// packet is being handled and must not destroy it.
//
// Control packets (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, PINGREQ) are never
// dropped under backpressure: they wait in a small queue of their own that goes out first, ahead of
// any data, when the link takes bytes again.
#ifndef HUBLINK_PROTOCOLS_MQTT_SESSION_H_
#define HUBLINK_PROTOCOLS_MQTT_SESSION_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "plugins/event_loop.h"
#include "plugins/protocol.h"
#include "plugins/weak_guard.h"
#include "protocols/mqtt/clock.h"
#include "protocols/mqtt/codec.h"
#include "protocols/mqtt/message_store.h"
#include "protocols/mqtt/mqtt.pb.h"

namespace hublink {
namespace mqtt {

// A received application message. Views are valid during the handler call only.
struct Message {
  absl::string_view topic;
  absl::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
};

using MessageHandler = std::function<void(const Message&)>;
// Resolved once: OK when the QoS flow completed (QoS 0: handed to the transport, or with
// coalesce_writes to the batch the transport gets at the end of this loop turn; while the
// transports are over their soft limit QoS 0 waits in the queue first; QoS 1: PUBACK; QoS
// 2: PUBCOMP; SUBSCRIBE: SUBACK granted), otherwise why not: kAborted when the outcome is unknown
// (a QoS 2 message released with PUBREL whose session the broker dropped), the MessageStore's own
// status when it could not record a step of the flow (the message's flow ends there).
using Completion = std::function<void(const absl::Status&)>;

enum class QueueOverflow { kDropOldest, kRejectNew };

// MqttConfig with defaults applied.
struct SessionOptions {
  std::string client_id;
  std::string username;
  std::string password;  // secret
  bool clean_session = true;
  absl::Duration keep_alive = absl::Seconds(60);
  absl::Duration ping_timeout = absl::Seconds(30);
  size_t max_packet_size = 8 << 20;
  size_t max_inflight = 64;
  size_t max_queued_messages = 100000;
  size_t max_queued_bytes = 64 << 20;
  QueueOverflow overflow = QueueOverflow::kDropOldest;
  // Packets written in one loop turn go down as one write at the end of the turn (a task posted on
  // the link's loop), up to Session::kMaxBatch bytes per write. Off: one link write per packet.
  bool coalesce_writes = true;
  absl::optional<Will> will;
  // When no handshake deadline is on the link's ConnectContext: how long to wait for CONNACK.
  absl::Duration connack_timeout = absl::Seconds(20);
  // MqttConfig.store.file when set: the durable store hublink::Client opens (the session itself
  // uses whatever store it is given).
  absl::optional<FileStoreConfig> file_store;
  // MqttConfig.broker: what the broker supports. Publishes (and subscriptions) beyond it fail at
  // once with kInvalidArgument naming `broker` ("the broker (Tencent IoT Hub)").
  std::string broker = "the broker";
  uint8_t max_qos = 2;
  bool retain_available = true;
};

// Validates `config` (kInvalidArgument naming the field) and applies defaults.
absl::StatusOr<SessionOptions> SessionOptionsFromConfig(const protocols::MqttConfig& config);

// What the owner of the session hears besides link closes.
class SessionObserver {
 public:
  virtual ~SessionObserver() = default;
  // CONNACK accepted: publishes flow, subscriptions are being restored.
  virtual void OnSessionUp(bool session_present) = 0;
  // The broker refused (SUBACK 0x80) a subscription it had granted before, while restoring it after
  // a reconnect. The subscription is dropped. (Refusals of a new Subscribe go to its completion.)
  virtual void OnSubscriptionLost(absl::string_view filter, const absl::Status& status) {}
  // A condition no reconnect can fix: the broker re-delivered the same PUBLISH above
  // max_packet_size at the start of kOversizeLoopLinks consecutive links (a persistent session
  // holding a message too large for us). `status` (kDataLoss) names the topic and size; the link is
  // closed with it. The owner should stop reconnecting (hublink::Client gives up).
  virtual void OnPermanentError(const absl::Status& status) {}
};

// The publish/subscribe facet a Client needs on top of Protocol. The "mqtt" plugin's Protocol is a
// Session; an owner reaches it with `protocol->As<mqtt::Session>()` (plugins/typed_access.h).
class Session : public Protocol {
 public:
  static constexpr absl::string_view kInterfaceId = "hublink.mqtt.Session";

  Session(EventLoop& loop, SessionOptions options,
          std::unique_ptr<MessageStore> store = std::make_unique<MemoryMessageStore>());
  // Keep-alive, ping and CONNACK timers on `clock` (a ManualClock in tests), which must outlive the
  // session.
  Session(Clock& clock, SessionOptions options,
          std::unique_ptr<MessageStore> store = std::make_unique<MemoryMessageStore>());
  ~Session() override;

  void set_observer(SessionObserver* observer) { observer_ = observer; }
  // Moves the session's timers to `clock` (which must outlive the session). Only while no link is
  // open: for an owner that injects virtual time (Client::Options::clock).
  void set_clock(Clock& clock) { clock_ = &clock; }
  // Replaces the (empty) store with `store` and recovers what it holds: queued and in-flight
  // messages, sent after the next CONNACK in their original order. Only before the first link
  // opens and before anything was published (kFailedPrecondition otherwise): for an owner that
  // opens a durable store itself (hublink::Client with MqttConfig.store).
  absl::Status ReplaceStore(std::unique_ptr<MessageStore> store);
  MessageStore& store() { return *store_; }

  // Protocol.
  void OnLinkOpen(ProtocolLink& link) override;
  void OnLinkData(absl::string_view bytes) override;
  void OnLinkWritable() override;
  void OnLinkClosed(const absl::Status& status) override;

  // Sends now when the session is up and nothing is queued ahead, else queues (bounded; see
  // SessionOptions). Invalid topic, QoS or size fail `done` at once with kInvalidArgument; a full
  // queue with kResourceExhausted. `done` may be empty.
  void Publish(absl::string_view topic, absl::string_view payload, uint8_t qos, bool retain,
               Completion done);
  // As Publish, for a caller that is done with `payload`: a message that has to wait in the queue
  // takes its buffer (leaving `payload` empty) instead of copying it. The Client hands publishes
  // from other threads over in buffers of its own; without this, a burst sat once in those and
  // again in the queue, in two threads' malloc arenas.
  void PublishTaking(absl::string_view topic, std::string& payload, uint8_t qos, bool retain,
                     Completion done);
  // Adds (or replaces the handler and QoS of) the subscription to `filter`, sends SUBSCRIBE when
  // up, and restores it after every reconnect. `done` gets OK on SUBACK, kPermissionDenied on
  // SUBACK 0x80 (the subscription is then dropped), kInvalidArgument for a bad filter.
  void Subscribe(absl::string_view filter, uint8_t qos, MessageHandler handler, Completion done);
  // Stops dispatching to `filter` at once; sends UNSUBSCRIBE when up. `done` gets OK on UNSUBACK
  // (or at once when down: there is nothing to restore), kNotFound for a filter never subscribed.
  void Unsubscribe(absl::string_view filter, Completion done);
  // Sends DISCONNECT and closes the link with OK. Queued and unacknowledged messages stay in the
  // store.
  void Disconnect();
  // Fails every pending publish completion and subscription completion with `status` and empties
  // the store, or with `keep_stored` (a durable store) keeps the store's messages and tracks them
  // again, without completions, so the next link (or the next process on the store) sends them:
  // for a client that gives up or goes away.
  void FailPending(const absl::Status& status, bool keep_stored = false);

  // Consecutive links that must end on the same oversize PUBLISH before it is reported as permanent
  // (SessionObserver::OnPermanentError).
  static constexpr int kOversizeLoopLinks = 3;
  // The most a coalesced write holds (SessionOptions::coalesce_writes).
  static constexpr size_t kMaxBatch = 64 << 10;

  bool up() const { return state_ == State::kUp; }
  size_t inflight() const { return outgoing_ids_.size(); }
  // Control packets waiting for the link to take bytes.
  size_t pending_control() const { return control_.size(); }
  size_t queued() const { return queued_.size(); }
  size_t queued_bytes() const { return queued_bytes_; }
  const SessionOptions& options() const { return options_; }
  // PUBLISH packets written to links (re-sends with DUP included) and received (a QoS 2
  // re-delivery that is not handed to the application again excluded), over the session's life.
  uint64_t publishes_sent() const { return publishes_sent_; }
  uint64_t publishes_received() const { return publishes_received_; }
  // Every packet decoded from links (CONNACK, acknowledgements, PUBLISH, PINGRESP...).
  uint64_t packets_received() const { return packets_received_; }

 protected:
  void* FindInterface(absl::string_view id) override { return OfferInterface<Session>(this, id); }

 private:
  enum class State { kDown, kAwaitingConnack, kUp };

  struct Subscription {
    uint8_t qos = 0;
    std::shared_ptr<const MessageHandler> handler;
    // Completions waiting for the next SUBACK covering this filter.
    std::vector<Completion> waiting;
    bool granted_once = false;
  };
  struct PendingSubscribe {
    std::vector<std::string> filters;
  };

  // Marks an entry point that may run user code: completions queued meanwhile run when the
  // outermost one returns, after every state change.
  class Scope;
  void RunDeferred();
  void Defer(Completion done, absl::Status status);
  // Whether the link of generation `generation` is still the open, usable one.
  bool LinkIs(uint64_t generation) const {
    return link_ != nullptr && !closing_ && link_generation_ == generation;
  }

  absl::Status HandlePacket(const Packet& packet);
  absl::Status HandleConnack(const Packet& packet);
  absl::Status HandlePublish(const Packet& packet);
  // kInvalidArgument when the QoS or retain flag is beyond SessionOptions' broker capabilities.
  absl::Status CheckBrokerSupports(uint8_t qos, bool retain) const;
  absl::Status HandleSuback(const Packet& packet);
  void Fail(const absl::Status& status);
  // A packet for the link: appended to the batch (coalesce_writes), else written now. False when
  // the link takes no bytes (backpressure: the caller keeps the packet and waits for
  // OnLinkWritable) or is gone.
  bool Write(absl::string_view bytes);
  // Straight to the link, after whatever the batch holds: CONNECT (its buffer is wiped), DISCONNECT
  // (the close follows), packets of kMaxBatch bytes or more.
  bool WriteNow(absl::string_view bytes);
  // One link Write(), the batch left alone.
  bool LinkWrite(absl::string_view bytes);
  // Hands the batch to the link in one write; false when the link refused it (kept, batch_stuck_)
  // or failed (dropped).
  bool FlushBatch();
  void DropBatch();
  // The transports owe an OnLinkWritable: data (QoS 0 included) waits in queued_ until then.
  bool LinkAboveSoftLimit() const { return link_ != nullptr && link_->AboveSoftLimit(); }
  void NotePingWritten();
  // A control packet: into the batch, or past a batch the link refused straight to the link.
  // Notes when a PINGREQ reached the link.
  bool WriteControl(absl::string_view bytes);
  // A control packet: written now when nothing waits ahead of it, else queued (never dropped).
  void SendControl(absl::string_view bytes);
  // Writes queued control packets; true when none is left.
  bool FlushControl();
  // The store could not record a step of message `seq`: its flow ends with `status`.
  void FailStored(uint64_t seq, const absl::Status& status);
  void NoteLinkEnd(const absl::Status& status);
  // Sends what resend_ and queued_ hold, within the window and while the link takes bytes.
  void Pump();
  void SendSubscriptions(const std::vector<std::string>& filters);
  uint16_t NextPacketId();
  void Complete(uint64_t seq, const absl::Status& status);
  // `owned_payload`, when set, holds `payload` and may be moved from.
  void PublishFrom(absl::string_view topic, absl::string_view payload, std::string* owned_payload,
                   uint8_t qos, bool retain, Completion done);
  absl::Status Enqueue(absl::string_view topic, absl::string_view payload,
                       std::string* owned_payload, uint8_t qos, bool retain, Completion done);
  void ArmKeepAlive(absl::Time when);
  void OnKeepAliveTimer();
  void Recover();
  // Completes the queued messages the store no longer holds (it dropped them under its own overflow
  // policy) with kResourceExhausted, when the store holds fewer messages than the session tracks.
  void ReapDropped();

  std::unique_ptr<EventLoopClock> owned_clock_;
  Clock* clock_;
  SessionOptions options_;
  std::unique_ptr<MessageStore> store_;
  SessionObserver* observer_ = nullptr;

  ProtocolLink* link_ = nullptr;
  uint64_t link_generation_ = 0;
  State state_ = State::kDown;
  bool closing_ = false;  // we asked the link to close; ignore further input
  Decoder decoder_;
  std::string out_;  // reused encode buffer
  // Packets written this loop turn, handed to the link in one write at its end (coalesce_writes).
  std::string batch_;
  bool batch_stuck_ = false;     // the link refused the batch: wait for OnLinkWritable
  bool batch_has_ping_ = false;  // a PINGREQ is in the batch
  bool flush_posted_ = false;

  // Outgoing publishes, by sequence number; the messages themselves live in store_.
  // Queued publishes with their topic + payload bytes (kept here: a store that drops a message
  // under its own overflow policy takes them with it, and queued_bytes_ must still add up).
  struct Queued {
    uint64_t seq;
    size_t bytes;
  };
  std::deque<Queued> queued_;
  size_t queued_bytes_ = 0;
  std::deque<uint64_t> resend_;                           // in flight, to go out again on this link
  std::map<uint64_t, uint16_t> inflight_;                 // seq -> packet id, in send order
  absl::flat_hash_map<uint16_t, uint64_t> outgoing_ids_;  // packet id -> seq
  absl::flat_hash_map<uint64_t, Completion> completions_;
  // In flight and released (PUBREL sent, waiting for PUBCOMP). Kept here, not only in the store,
  // so a store that failed to record the step does not make us send the wrong packet.
  absl::flat_hash_set<uint64_t> released_;
  uint64_t next_seq_ = 1;
  uint64_t publishes_sent_ = 0;
  uint64_t publishes_received_ = 0;
  uint64_t packets_received_ = 0;
  uint16_t next_packet_id_ = 1;

  // Incoming QoS 2 packet ids acknowledged with PUBREC and not yet released: duplicates are not
  // delivered.
  absl::flat_hash_set<uint16_t> incoming_qos2_;
  // The client id of the current link, for CONNACK errors.
  std::string connected_client_id_;

  std::map<std::string, Subscription> subscriptions_;
  absl::flat_hash_map<uint16_t, PendingSubscribe> pending_subscribes_;
  absl::flat_hash_map<uint16_t, Completion> pending_unsubscribes_;
  std::vector<std::shared_ptr<const MessageHandler>> dispatch_scratch_;

  // Control packets the link refused (backpressure), in order; they go before any data.
  std::deque<std::string> control_;
  size_t control_bytes_ = 0;

  // Completions to run when the outermost entry point returns (see Scope).
  std::vector<std::pair<Completion, absl::Status>> deferred_;
  std::vector<std::pair<Completion, absl::Status>> deferred_spare_;
  int depth_ = 0;
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);

  // The oversize packet the last links ended on (type, size, topic) and how many links in a row.
  std::string oversize_key_;
  int oversize_links_ = 0;
  bool connack_seen_ = false;      // on the current link
  bool oversize_counted_ = false;  // the current link ended on a counted oversize packet

  // Keep-alive.
  Clock::TimerId keep_alive_timer_ = 0;
  Clock::TimerId connack_timer_ = 0;
  absl::Time last_sent_;
  absl::Time last_received_;
  absl::Time ping_sent_ = absl::InfinitePast();  // when the PINGREQ was due (and queued)
  bool ping_outstanding_ = false;
  bool ping_written_ = false;  // the outstanding PINGREQ reached the link (not held back)
  absl::Time ping_written_at_ = absl::InfinitePast();

  WeakGuard guard_;
};

// Maps a CONNACK refusal to an actionable status ("mqtt: broker refused credentials (CONNACK 4):
// ...").
absl::Status ConnackError(uint8_t return_code, absl::string_view client_id);

}  // namespace mqtt
}  // namespace hublink

#endif  // HUBLINK_PROTOCOLS_MQTT_SESSION_H_
