// MQTT 3.1.1 wire format: pure encoders and an incremental decoder. No I/O, no clocks.
//
// Encoders append to a caller-owned std::string, so a caller that reuses one buffer (clear(), keep
// the capacity) encodes QoS 0 publishes with no allocation. Encoders validate what the spec makes
// the sender responsible for (UTF-8, topic names without wildcards, filter syntax, length limits)
// and fail with kInvalidArgument naming the field.
//
// The decoder takes bytes split anywhere and reports each complete packet with views into its input
// (or into its own reassembly buffer): they are valid only during the callback. Malformed input
// yields a kDataLoss status whose message names the exact fault ("mqtt: malformed remaining
// length", "mqtt: PUBLISH: topic: invalid UTF-8 ..."); so does a packet above the size limit
// (docs/errors.md: an oversize packet is kDataLoss), detected from its fixed header alone, with
// Decoder::oversize() telling what is known of it. After an error the decoder refuses further
// input: the connection must be closed.
#ifndef HUBLINK_PROTOCOLS_MQTT_CODEC_H_
#define HUBLINK_PROTOCOLS_MQTT_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"

namespace hublink {
namespace mqtt {

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};

const char* PacketTypeName(PacketType type);

// The largest remaining length four varint bytes can carry.
constexpr size_t kMaxRemainingLength = 268435455;
// SUBACK return code for a refused subscription.
constexpr uint8_t kSubackFailure = 0x80;

struct Will {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
};

struct ConnectPacket {
  absl::string_view client_id;
  bool clean_session = true;
  uint16_t keep_alive_seconds = 60;
  absl::optional<absl::string_view> username;
  absl::optional<absl::string_view> password;  // secret: never logged
  const Will* will = nullptr;
};

struct PublishPacket {
  absl::string_view topic;
  absl::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;  // 1..65535 for QoS 1 and 2, ignored for QoS 0
};

struct SubscribeRequest {
  absl::string_view filter;
  uint8_t qos = 0;
};

// One decoded packet. Which fields mean something depends on `type`; views point into decoder
// memory and are valid only during the callback that received the packet.
struct Packet {
  PacketType type = PacketType::kPingresp;
  uint8_t flags = 0;  // low nibble of the fixed header
  uint16_t packet_id =
      0;            // PUBLISH QoS>0, PUBACK..PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK
  size_t size = 0;  // whole packet on the wire, fixed header included
  // CONNACK
  bool session_present = false;
  uint8_t return_code = 0;
  // PUBLISH
  bool dup = false;
  uint8_t qos = 0;
  bool retain = false;
  absl::string_view topic;
  absl::string_view payload;
  // SUBACK: one return code per filter, in order.
  absl::string_view return_codes;
  // CONNECT / SUBSCRIBE / UNSUBSCRIBE (server role): the bytes after the fixed header, already
  // validated; ParseConnect / ParseSubscribe / ParseUnsubscribe read them.
  absl::string_view body;
};

// --- Encoders (append to *out) -------------------------------------------------------------------

absl::Status AppendConnect(const ConnectPacket& packet, std::string* out);
absl::Status AppendPublish(const PublishPacket& packet, std::string* out);
// PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: packet id only. `packet_id` must not be 0.
void AppendAck(PacketType type, uint16_t packet_id, std::string* out);
absl::Status AppendSubscribe(uint16_t packet_id, absl::Span<const SubscribeRequest> requests,
                             std::string* out);
absl::Status AppendUnsubscribe(uint16_t packet_id, absl::Span<const absl::string_view> filters,
                               std::string* out);
void AppendPingreq(std::string* out);
void AppendPingresp(std::string* out);
void AppendDisconnect(std::string* out);
// Server side (test brokers).
void AppendConnack(bool session_present, uint8_t return_code, std::string* out);
void AppendSuback(uint16_t packet_id, absl::Span<const uint8_t> return_codes, std::string* out);

// Bytes AppendPublish would produce; lets a sender check a size limit before encoding.
size_t PublishPacketSize(size_t topic_size, size_t payload_size, uint8_t qos);
// Bytes of a fixed header + remaining length for a packet whose remaining length is `remaining`.
size_t PacketSize(size_t remaining);

// --- Validation ----------------------------------------------------------------------------------

// Well-formed UTF-8 with no U+0000 and no surrogates, at most 65535 bytes (MQTT 3.1.1
// section 1.5.3). `what` prefixes the error ("topic").
absl::Status ValidateUtf8String(absl::string_view s, absl::string_view what);
// A topic name a PUBLISH may carry: non-empty, valid string, no '+' or '#'.
absl::Status ValidateTopicName(absl::string_view topic);
// A subscription filter: non-empty, valid string, '+' alone in its level, '#' alone in the last
// level.
absl::Status ValidateTopicFilter(absl::string_view filter);
// Whether `topic` matches `filter` (both already valid), including the rule that filters starting
// with a wildcard do not match topics starting with '$' (MQTT-4.7.2-1).
bool TopicMatches(absl::string_view filter, absl::string_view topic);

// --- Decoding ------------------------------------------------------------------------------------

class Decoder {
 public:
  // Which side we are: a client accepts only packets a server sends (CONNACK, PUBLISH, acks,
  // SUBACK, UNSUBACK, PINGRESP); a server only what clients send.
  enum class Role { kClient, kServer };

  explicit Decoder(size_t max_packet_size = 1 << 20, Role role = Role::kClient)
      : max_packet_size_(max_packet_size), role_(role) {}

  // Decodes every complete packet in `bytes` (plus what earlier calls left over) and passes each to
  // `on_packet`. Stops at the first decode error or the first non-OK status `on_packet` returns,
  // and returns it. After a decode error every later call returns it again.
  absl::Status Feed(absl::string_view bytes,
                    absl::FunctionRef<absl::Status(const Packet&)> on_packet);

  // Forgets partial input and any error: for a new connection.
  void Reset();

  size_t max_packet_size() const { return max_packet_size_; }
  void set_max_packet_size(size_t size) { max_packet_size_ = size; }
  // Bytes of an incomplete packet waiting for the rest.
  size_t buffered() const { return buffer_.size(); }

  // After Feed() failed on a packet above max_packet_size: its type, its size, and for a PUBLISH
  // its topic when the bytes at hand held it (a valid UTF-8 string right after the fixed header).
  struct Oversize {
    PacketType type = PacketType::kPublish;
    size_t size = 0;
    absl::optional<std::string> topic;
  };
  const absl::optional<Oversize>& oversize() const { return oversize_; }

 private:
  // Parses one packet from the front of `in`. Returns the packet's size, 0 if incomplete.
  absl::StatusOr<size_t> ParseOne(absl::string_view in, Packet* packet) const;

  // Fills oversize_ from the start of a packet that failed the size check.
  void NoteOversize(absl::string_view in, absl::string_view more);

  size_t max_packet_size_;
  Role role_;
  std::string buffer_;
  absl::Status error_;
  absl::optional<Oversize> oversize_;
};

// Decodes the whole of one packet (tests, fuzzing). kDataLoss if `bytes` holds more or less than a
// packet.
absl::StatusOr<Packet> DecodePacket(absl::string_view bytes, Decoder::Role role,
                                    size_t max_packet_size = kMaxRemainingLength + 5);

// Server-side readers of packets the decoder already validated.
struct ConnectFields {
  std::string protocol_name;
  uint8_t protocol_level = 0;
  bool clean_session = false;
  uint16_t keep_alive_seconds = 0;
  std::string client_id;
  absl::optional<std::string> username;
  absl::optional<std::string> password;
  absl::optional<Will> will;
};
absl::StatusOr<ConnectFields> ParseConnect(const Packet& packet);
absl::StatusOr<std::vector<std::pair<std::string, uint8_t>>> ParseSubscribe(const Packet& packet);
absl::StatusOr<std::vector<std::string>> ParseUnsubscribe(const Packet& packet);

}  // namespace mqtt
}  // namespace hublink

#endif  // HUBLINK_PROTOCOLS_MQTT_CODEC_H_
