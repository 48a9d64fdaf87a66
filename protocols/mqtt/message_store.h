// Where outgoing publishes live until their QoS flow completes: queued (not yet sent), awaiting
// PUBACK / PUBREC, or awaiting PUBCOMP. The session keeps only sequence numbers and completions;
// the store owns the messages, so a durable store (a crash-safe file log) slots in by implementing
// this interface and being passed to the Session, and the session recovers what it holds at
// construction (or at Session::ReplaceStore). A store may drop a queued message on its own (an
// overflow policy such as FileStoreConfig.overflow DROP_OLDEST): the session notices (the store
// holds fewer messages than it tracks, or Find returns null when the message is due) and completes
// that publish with kResourceExhausted.
#ifndef HUBLINK_PROTOCOLS_MQTT_MESSAGE_STORE_H_
#define HUBLINK_PROTOCOLS_MQTT_MESSAGE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace hublink {
namespace mqtt {

struct StoredMessage {
  enum class Phase : uint8_t {
    kQueued = 0,       // not on the wire yet (or to be sent again as new)
    kAwaitingAck = 1,  // PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2)
    kAwaitingComp = 2  // PUBREL sent; waiting for PUBCOMP
  };
  uint64_t seq = 0;  // increasing; orders (re)sends
  uint16_t packet_id = 0;
  Phase phase = Phase::kQueued;
  uint8_t qos = 0;
  bool retain = false;
  std::string topic;
  std::string payload;

  size_t bytes() const { return topic.size() + payload.size(); }
};

class MessageStore {
 public:
  virtual ~MessageStore() = default;
  // Takes a new message (seq not in the store). A durable store makes it durable before returning
  // OK.
  virtual absl::Status Add(StoredMessage message) = 0;
  // Null when absent. Valid until the next mutating call.
  virtual const StoredMessage* Find(uint64_t seq) const = 0;
  // Records a step of the message's flow. A failure ends the flow there: the session removes the
  // message and completes its publish with this status (annotated with what was and was not sent),
  // so a durable store's I/O errors reach the publisher. The session records kAwaitingAck before it
  // sends the PUBLISH (a failure means "not sent").
  virtual absl::Status SetPhase(uint64_t seq, StoredMessage::Phase phase, uint16_t packet_id) = 0;
  // Remove and Clear cannot fail by this interface (kept void on purpose: the session calls them
  // when a flow has ended, and there is nothing it could do differently on failure). A durable
  // store keeps the change in memory, reports its write error out of band (FileMessageStore:
  // kWriteFailed to its event sink, which hublink::Client forwards to Options::on_store_event) and
  // makes it durable at its next successful write; until then a restart may send the message again,
  // which at-least-once allows.
  virtual void Remove(uint64_t seq) = 0;
  virtual void Clear() = 0;
  // Every stored sequence number, ascending (recovery after a restart).
  virtual std::vector<uint64_t> Sequences() const = 0;
  virtual size_t size() const = 0;
};

class MemoryMessageStore : public MessageStore {
 public:
  absl::Status Add(StoredMessage message) override {
    uint64_t seq = message.seq;
    messages_[seq] = std::move(message);
    return absl::OkStatus();
  }
  const StoredMessage* Find(uint64_t seq) const override {
    auto it = messages_.find(seq);
    return it == messages_.end() ? nullptr : &it->second;
  }
  absl::Status SetPhase(uint64_t seq, StoredMessage::Phase phase, uint16_t packet_id) override {
    auto it = messages_.find(seq);
    if (it == messages_.end()) return absl::NotFoundError("mqtt: store: no such message");
    it->second.phase = phase;
    it->second.packet_id = packet_id;
    return absl::OkStatus();
  }
  void Remove(uint64_t seq) override { messages_.erase(seq); }
  void Clear() override { messages_.clear(); }
  std::vector<uint64_t> Sequences() const override {
    std::vector<uint64_t> out;
    out.reserve(messages_.size());
    for (const auto& entry : messages_) out.push_back(entry.first);
    return out;
  }
  size_t size() const override { return messages_.size(); }

 private:
  std::map<uint64_t, StoredMessage> messages_;
};

}  // namespace mqtt
}  // namespace hublink

#endif  // HUBLINK_PROTOCOLS_MQTT_MESSAGE_STORE_H_
