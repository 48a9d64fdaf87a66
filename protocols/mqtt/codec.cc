#include "protocols/mqtt/codec.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "plugins/utf8.h"

namespace hublink {
namespace mqtt {
namespace {

constexpr size_t kMaxStringSize = 65535;

// Why `s` is not an MQTT UTF-8 string (MQTT 3.1.1 1.5.3: well-formed UTF-8, no U+0000, at most
// 65535 bytes), or empty when it is.
std::string Utf8Problem(absl::string_view s) {
  if (s.size() > kMaxStringSize) {
    return absl::StrCat("is ", s.size(), " bytes, above the 65535-byte limit");
  }
  return hublink::Utf8Problem(s, MqttUtf8Rules());
}

std::string TopicNameProblem(absl::string_view topic) {
  if (topic.empty()) return "topic name is empty";
  std::string utf8 = Utf8Problem(topic);
  if (!utf8.empty()) return utf8;
  size_t wildcard = topic.find_first_of("+#");
  if (wildcard != absl::string_view::npos) {
    return absl::StrCat("topic name contains wildcard '", topic.substr(wildcard, 1), "' at byte ",
                        wildcard);
  }
  return "";
}

std::string TopicFilterProblem(absl::string_view filter) {
  if (filter.empty()) return "topic filter is empty";
  std::string utf8 = Utf8Problem(filter);
  if (!utf8.empty()) return utf8;
  for (size_t i = 0; i < filter.size(); ++i) {
    char c = filter[i];
    bool level_start = i == 0 || filter[i - 1] == '/';
    bool level_end = i + 1 == filter.size() || filter[i + 1] == '/';
    if (c == '+' && !(level_start && level_end)) {
      return absl::StrCat("'+' at byte ", i, " must fill a whole level");
    }
    if (c == '#' && !(level_start && i + 1 == filter.size())) {
      return absl::StrCat("'#' at byte ", i, " must be alone in the last level");
    }
  }
  return "";
}

void AppendRemainingLength(size_t n, std::string* out) {
  do {
    uint8_t b = n % 128;
    n /= 128;
    if (n > 0) b |= 0x80;
    out->push_back(static_cast<char>(b));
  } while (n > 0);
}

size_t VarintSize(size_t n) { return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4; }

void AppendU16(uint16_t v, std::string* out) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v & 0xFF));
}

void AppendString(absl::string_view s, std::string* out) {
  AppendU16(static_cast<uint16_t>(s.size()), out);
  out->append(s.data(), s.size());
}

absl::Status Invalid(absl::string_view packet, absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("mqtt: ", packet, ": ", field, ": ", problem));
}

absl::Status Malformed(absl::string_view packet, absl::string_view problem) {
  return absl::DataLossError(absl::StrCat("mqtt: ", packet, ": ", problem));
}

// Sequential reads over a packet body; every error names the packet and the field.
class Reader {
 public:
  Reader(absl::string_view data, const char* packet) : data_(data), packet_(packet) {}

  absl::Status U8(const char* field, uint8_t* v) {
    if (data_.empty()) return Malformed(packet_, absl::StrCat("truncated before the ", field));
    *v = static_cast<uint8_t>(data_[0]);
    data_.remove_prefix(1);
    return absl::OkStatus();
  }
  absl::Status U16(const char* field, uint16_t* v) {
    if (data_.size() < 2) return Malformed(packet_, absl::StrCat("truncated before the ", field));
    *v = static_cast<uint16_t>((static_cast<uint8_t>(data_[0]) << 8) |
                               static_cast<uint8_t>(data_[1]));
    data_.remove_prefix(2);
    return absl::OkStatus();
  }
  absl::Status PacketId(uint16_t* id) {
    absl::Status status = U16("packet identifier", id);
    if (status.ok() && *id == 0) return Malformed(packet_, "packet identifier 0 is invalid");
    return status;
  }
  absl::Status Binary(const char* field, absl::string_view* v) {
    uint16_t len;
    if (data_.size() < 2)
      return Malformed(packet_, absl::StrCat(field, ": truncated length prefix"));
    len = static_cast<uint16_t>((static_cast<uint8_t>(data_[0]) << 8) |
                                static_cast<uint8_t>(data_[1]));
    if (data_.size() - 2 < len) {
      return Malformed(packet_,
                       absl::StrCat(field, ": truncated string: length ", len, " but only ",
                                    data_.size() - 2, " bytes left in the packet"));
    }
    *v = data_.substr(2, len);
    data_.remove_prefix(2 + len);
    return absl::OkStatus();
  }
  absl::Status String(const char* field, absl::string_view* v) {
    absl::Status status = Binary(field, v);
    if (!status.ok()) return status;
    std::string problem = Utf8Problem(*v);
    if (!problem.empty()) return Malformed(packet_, absl::StrCat(field, ": ", problem));
    return absl::OkStatus();
  }
  absl::string_view Rest() {
    absl::string_view rest = data_;
    data_ = {};
    return rest;
  }
  bool empty() const { return data_.empty(); }
  size_t size() const { return data_.size(); }

 private:
  absl::string_view data_;
  const char* packet_;
};

#define MQTT_RETURN_IF_ERROR(expr)               \
  do {                                           \
    absl::Status mqtt_status_ = (expr);          \
    if (!mqtt_status_.ok()) return mqtt_status_; \
  } while (0)

bool SentByServer(PacketType type) {
  switch (type) {
    case PacketType::kConnack:
    case PacketType::kPublish:
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
    case PacketType::kSuback:
    case PacketType::kUnsuback:
    case PacketType::kPingresp:
      return true;
    default:
      return false;
  }
}

bool SentByClient(PacketType type) {
  switch (type) {
    case PacketType::kConnect:
    case PacketType::kPublish:
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
    case PacketType::kPingreq:
    case PacketType::kDisconnect:
      return true;
    default:
      return false;
  }
}

absl::Status ParseConnectInto(absl::string_view body, ConnectFields* out) {
  Reader r(body, "CONNECT");
  absl::string_view name;
  MQTT_RETURN_IF_ERROR(r.String("protocol name", &name));
  uint8_t level, flags;
  MQTT_RETURN_IF_ERROR(r.U8("protocol level", &level));
  if (name != "MQTT" || level != 4) {
    return Malformed("CONNECT", absl::StrCat("unsupported protocol \"", name, "\" level ", level));
  }
  MQTT_RETURN_IF_ERROR(r.U8("connect flags", &flags));
  if (flags & 0x01) return Malformed("CONNECT", "reserved connect flag bit 0 is set");
  bool will = flags & 0x04;
  uint8_t will_qos = (flags >> 3) & 0x03;
  bool will_retain = flags & 0x20;
  bool has_password = flags & 0x40;
  bool has_username = flags & 0x80;
  if (will_qos == 3) return Malformed("CONNECT", "will QoS 3 is invalid");
  if (!will && (will_qos != 0 || will_retain)) {
    return Malformed("CONNECT", "will QoS or retain set without the will flag");
  }
  if (has_password && !has_username)
    return Malformed("CONNECT", "password flag set without username");
  uint16_t keep_alive;
  MQTT_RETURN_IF_ERROR(r.U16("keep alive", &keep_alive));
  absl::string_view client_id;
  MQTT_RETURN_IF_ERROR(r.String("client identifier", &client_id));
  if (out != nullptr) {
    out->protocol_name = std::string(name);
    out->protocol_level = level;
    out->clean_session = flags & 0x02;
    out->keep_alive_seconds = keep_alive;
    out->client_id = std::string(client_id);
  }
  if (will) {
    absl::string_view topic, payload;
    MQTT_RETURN_IF_ERROR(r.String("will topic", &topic));
    std::string problem = TopicNameProblem(topic);
    if (!problem.empty()) return Malformed("CONNECT", absl::StrCat("will topic: ", problem));
    MQTT_RETURN_IF_ERROR(r.Binary("will message", &payload));
    if (out != nullptr) {
      out->will = Will{std::string(topic), std::string(payload), will_qos, will_retain};
    }
  }
  if (has_username) {
    absl::string_view username;
    MQTT_RETURN_IF_ERROR(r.String("user name", &username));
    if (out != nullptr) out->username = std::string(username);
  }
  if (has_password) {
    absl::string_view password;
    MQTT_RETURN_IF_ERROR(r.Binary("password", &password));
    if (out != nullptr) out->password = std::string(password);
  }
  if (!r.empty()) return Malformed("CONNECT", absl::StrCat(r.size(), " unexpected trailing bytes"));
  return absl::OkStatus();
}

absl::Status ParseSubscribeInto(absl::string_view body,
                                std::vector<std::pair<std::string, uint8_t>>* out) {
  Reader r(body, "SUBSCRIBE");
  uint16_t id;
  MQTT_RETURN_IF_ERROR(r.PacketId(&id));
  if (r.empty()) return Malformed("SUBSCRIBE", "no topic filters");
  while (!r.empty()) {
    absl::string_view filter;
    uint8_t qos;
    MQTT_RETURN_IF_ERROR(r.String("topic filter", &filter));
    std::string problem = TopicFilterProblem(filter);
    if (!problem.empty()) return Malformed("SUBSCRIBE", absl::StrCat("topic filter: ", problem));
    MQTT_RETURN_IF_ERROR(r.U8("requested QoS", &qos));
    if (qos > 2) return Malformed("SUBSCRIBE", absl::StrFormat("requested QoS byte 0x%02X", qos));
    if (out != nullptr) out->emplace_back(std::string(filter), qos);
  }
  return absl::OkStatus();
}

absl::Status ParseUnsubscribeInto(absl::string_view body, std::vector<std::string>* out) {
  Reader r(body, "UNSUBSCRIBE");
  uint16_t id;
  MQTT_RETURN_IF_ERROR(r.PacketId(&id));
  if (r.empty()) return Malformed("UNSUBSCRIBE", "no topic filters");
  while (!r.empty()) {
    absl::string_view filter;
    MQTT_RETURN_IF_ERROR(r.String("topic filter", &filter));
    std::string problem = TopicFilterProblem(filter);
    if (!problem.empty()) return Malformed("UNSUBSCRIBE", absl::StrCat("topic filter: ", problem));
    if (out != nullptr) out->emplace_back(filter);
  }
  return absl::OkStatus();
}

// Reads the fixed header at the front of `in`. Returns its length (2..5), or 0 when more bytes are
// needed.
absl::StatusOr<size_t> ParseFixedHeader(absl::string_view in, size_t* remaining) {
  size_t value = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (1 + i >= in.size()) return 0;
    uint8_t b = static_cast<uint8_t>(in[1 + i]);
    value |= static_cast<size_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      *remaining = value;
      return 2 + i;
    }
  }
  return absl::DataLossError(
      "mqtt: malformed remaining length: continuation bit set in its fourth byte");
}

}  // namespace

const char* PacketTypeName(PacketType type) {
  switch (type) {
    case PacketType::kConnect:
      return "CONNECT";
    case PacketType::kConnack:
      return "CONNACK";
    case PacketType::kPublish:
      return "PUBLISH";
    case PacketType::kPuback:
      return "PUBACK";
    case PacketType::kPubrec:
      return "PUBREC";
    case PacketType::kPubrel:
      return "PUBREL";
    case PacketType::kPubcomp:
      return "PUBCOMP";
    case PacketType::kSubscribe:
      return "SUBSCRIBE";
    case PacketType::kSuback:
      return "SUBACK";
    case PacketType::kUnsubscribe:
      return "UNSUBSCRIBE";
    case PacketType::kUnsuback:
      return "UNSUBACK";
    case PacketType::kPingreq:
      return "PINGREQ";
    case PacketType::kPingresp:
      return "PINGRESP";
    case PacketType::kDisconnect:
      return "DISCONNECT";
  }
  return "?";
}

size_t PacketSize(size_t remaining) { return 1 + VarintSize(remaining) + remaining; }

size_t PublishPacketSize(size_t topic_size, size_t payload_size, uint8_t qos) {
  return PacketSize(2 + topic_size + (qos > 0 ? 2 : 0) + payload_size);
}

absl::Status AppendConnect(const ConnectPacket& p, std::string* out) {
  std::string problem = Utf8Problem(p.client_id);
  if (!problem.empty()) return Invalid("CONNECT", "client id", problem);
  if (p.client_id.empty() && !p.clean_session) {
    return Invalid("CONNECT", "client id",
                   "empty, which MQTT 3.1.1 allows only with clean_session (brokers refuse it)");
  }
  if (p.password.has_value() && !p.username.has_value()) {
    return Invalid("CONNECT", "password", "MQTT 3.1.1 allows a password only with a user name");
  }
  size_t remaining = 10 + 2 + p.client_id.size();
  uint8_t flags = p.clean_session ? 0x02 : 0;
  if (p.will != nullptr) {
    problem = TopicNameProblem(p.will->topic);
    if (!problem.empty()) return Invalid("CONNECT", "will topic", problem);
    if (p.will->qos > 2)
      return Invalid("CONNECT", "will QoS", absl::StrCat(p.will->qos, " is not 0..2"));
    if (p.will->payload.size() > kMaxStringSize) {
      return Invalid("CONNECT", "will payload", "above 65535 bytes");
    }
    flags |= 0x04 | (p.will->qos << 3) | (p.will->retain ? 0x20 : 0);
    remaining += 4 + p.will->topic.size() + p.will->payload.size();
  }
  if (p.username.has_value()) {
    problem = Utf8Problem(*p.username);
    if (!problem.empty()) return Invalid("CONNECT", "user name", problem);
    flags |= 0x80;
    remaining += 2 + p.username->size();
  }
  if (p.password.has_value()) {
    // Never describe the password itself.
    if (p.password->size() > kMaxStringSize)
      return Invalid("CONNECT", "password", "above 65535 bytes");
    flags |= 0x40;
    remaining += 2 + p.password->size();
  }
  out->reserve(out->size() + PacketSize(remaining));
  out->push_back(static_cast<char>(0x10));
  AppendRemainingLength(remaining, out);
  AppendString("MQTT", out);
  out->push_back(4);
  out->push_back(static_cast<char>(flags));
  AppendU16(p.keep_alive_seconds, out);
  AppendString(p.client_id, out);
  if (p.will != nullptr) {
    AppendString(p.will->topic, out);
    AppendString(p.will->payload, out);
  }
  if (p.username.has_value()) AppendString(*p.username, out);
  if (p.password.has_value()) AppendString(*p.password, out);
  return absl::OkStatus();
}

absl::Status AppendPublish(const PublishPacket& p, std::string* out) {
  std::string problem = TopicNameProblem(p.topic);
  if (!problem.empty()) return Invalid("PUBLISH", "topic", problem);
  if (p.qos > 2) return Invalid("PUBLISH", "QoS", absl::StrCat(p.qos, " is not 0..2"));
  if (p.qos > 0 && p.packet_id == 0) return Invalid("PUBLISH", "packet id", "0 is invalid");
  if (p.qos == 0 && p.dup) return Invalid("PUBLISH", "DUP", "must be 0 for QoS 0");
  size_t remaining = 2 + p.topic.size() + (p.qos > 0 ? 2 : 0) + p.payload.size();
  if (remaining > kMaxRemainingLength) {
    return Invalid("PUBLISH", "payload",
                   absl::StrCat(p.payload.size(), " bytes exceed MQTT's 256 MiB packet limit"));
  }
  out->reserve(out->size() + PacketSize(remaining));
  out->push_back(static_cast<char>(0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 1 : 0)));
  AppendRemainingLength(remaining, out);
  AppendString(p.topic, out);
  if (p.qos > 0) AppendU16(p.packet_id, out);
  out->append(p.payload.data(), p.payload.size());
  return absl::OkStatus();
}

void AppendAck(PacketType type, uint16_t packet_id, std::string* out) {
  uint8_t first = static_cast<uint8_t>(type) << 4;
  if (type == PacketType::kPubrel) first |= 0x02;
  out->push_back(static_cast<char>(first));
  out->push_back(2);
  AppendU16(packet_id, out);
}

absl::Status AppendSubscribe(uint16_t packet_id, absl::Span<const SubscribeRequest> requests,
                             std::string* out) {
  if (packet_id == 0) return Invalid("SUBSCRIBE", "packet id", "0 is invalid");
  if (requests.empty()) return Invalid("SUBSCRIBE", "filters", "at least one is required");
  size_t remaining = 2;
  for (const SubscribeRequest& request : requests) {
    std::string problem = TopicFilterProblem(request.filter);
    if (!problem.empty()) {
      return Invalid("SUBSCRIBE", absl::StrCat("filter \"", request.filter, "\""), problem);
    }
    if (request.qos > 2) {
      return Invalid("SUBSCRIBE", "QoS", absl::StrCat(request.qos, " is not 0..2"));
    }
    remaining += 3 + request.filter.size();
  }
  if (remaining > kMaxRemainingLength) return Invalid("SUBSCRIBE", "filters", "too many");
  out->push_back(static_cast<char>(0x82));
  AppendRemainingLength(remaining, out);
  AppendU16(packet_id, out);
  for (const SubscribeRequest& request : requests) {
    AppendString(request.filter, out);
    out->push_back(static_cast<char>(request.qos));
  }
  return absl::OkStatus();
}

absl::Status AppendUnsubscribe(uint16_t packet_id, absl::Span<const absl::string_view> filters,
                               std::string* out) {
  if (packet_id == 0) return Invalid("UNSUBSCRIBE", "packet id", "0 is invalid");
  if (filters.empty()) return Invalid("UNSUBSCRIBE", "filters", "at least one is required");
  size_t remaining = 2;
  for (absl::string_view filter : filters) {
    std::string problem = TopicFilterProblem(filter);
    if (!problem.empty())
      return Invalid("UNSUBSCRIBE", absl::StrCat("filter \"", filter, "\""), problem);
    remaining += 2 + filter.size();
  }
  if (remaining > kMaxRemainingLength) return Invalid("UNSUBSCRIBE", "filters", "too many");
  out->push_back(static_cast<char>(0xA2));
  AppendRemainingLength(remaining, out);
  AppendU16(packet_id, out);
  for (absl::string_view filter : filters) AppendString(filter, out);
  return absl::OkStatus();
}

void AppendPingreq(std::string* out) { out->append("\xC0\x00", 2); }
void AppendPingresp(std::string* out) { out->append("\xD0\x00", 2); }
void AppendDisconnect(std::string* out) { out->append("\xE0\x00", 2); }

void AppendConnack(bool session_present, uint8_t return_code, std::string* out) {
  out->push_back(0x20);
  out->push_back(2);
  out->push_back(session_present ? 1 : 0);
  out->push_back(static_cast<char>(return_code));
}

void AppendSuback(uint16_t packet_id, absl::Span<const uint8_t> return_codes, std::string* out) {
  out->push_back(static_cast<char>(0x90));
  AppendRemainingLength(2 + return_codes.size(), out);
  AppendU16(packet_id, out);
  for (uint8_t code : return_codes) out->push_back(static_cast<char>(code));
}

absl::Status ValidateUtf8String(absl::string_view s, absl::string_view what) {
  std::string problem = Utf8Problem(s);
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("mqtt: ", what, ": ", problem));
}

absl::Status ValidateTopicName(absl::string_view topic) {
  std::string problem = TopicNameProblem(topic);
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("mqtt: topic \"", topic, "\": ", problem));
}

absl::Status ValidateTopicFilter(absl::string_view filter) {
  std::string problem = TopicFilterProblem(filter);
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("mqtt: topic filter \"", filter, "\": ", problem));
}

bool TopicMatches(absl::string_view filter, absl::string_view topic) {
  if (!topic.empty() && topic[0] == '$' && !filter.empty() &&
      (filter[0] == '+' || filter[0] == '#')) {
    return false;
  }
  size_t fi = 0, ti = 0;
  bool topic_done = false;
  while (true) {
    size_t fend = filter.find('/', fi);
    if (fend == absl::string_view::npos) fend = filter.size();
    absl::string_view flevel = filter.substr(fi, fend - fi);
    // '#' also matches the parent level: "a/#" matches "a".
    if (flevel == "#") return true;
    if (topic_done) return false;
    size_t tend = topic.find('/', ti);
    if (tend == absl::string_view::npos) tend = topic.size();
    absl::string_view tlevel = topic.substr(ti, tend - ti);
    if (flevel != "+" && flevel != tlevel) return false;
    bool filter_last = fend == filter.size();
    bool topic_last = tend == topic.size();
    if (filter_last) return topic_last;
    fi = fend + 1;
    if (topic_last) {
      topic_done = true;
    } else {
      ti = tend + 1;
    }
  }
}

absl::StatusOr<size_t> Decoder::ParseOne(absl::string_view in, Packet* packet) const {
  if (in.empty()) return 0;
  uint8_t first = static_cast<uint8_t>(in[0]);
  uint8_t type_bits = first >> 4;
  uint8_t flags = first & 0x0F;
  if (type_bits == 0 || type_bits == 15) {
    return absl::DataLossError(absl::StrCat("mqtt: reserved packet type ", type_bits));
  }
  PacketType type = static_cast<PacketType>(type_bits);
  const char* name = PacketTypeName(type);
  bool allowed = role_ == Role::kClient ? SentByServer(type) : SentByClient(type);
  if (!allowed) {
    return absl::DataLossError(absl::StrCat("mqtt: unexpected ", name, " from the ",
                                            role_ == Role::kClient ? "server" : "client"));
  }
  if (type == PacketType::kPublish) {
    if ((flags & 0x06) == 0x06) return Malformed(name, "QoS 3 is invalid");
    if ((flags & 0x08) && (flags & 0x06) == 0) return Malformed(name, "DUP set on a QoS 0 message");
  } else {
    uint8_t expected = (type == PacketType::kPubrel || type == PacketType::kSubscribe ||
                        type == PacketType::kUnsubscribe)
                           ? 0x02
                           : 0x00;
    if (flags != expected) {
      return Malformed(name,
                       absl::StrFormat("reserved flags 0x%X, expected 0x%X", flags, expected));
    }
  }
  size_t remaining = 0;
  absl::StatusOr<size_t> header = ParseFixedHeader(in, &remaining);
  if (!header.ok() || *header == 0) return header;
  size_t total = *header + remaining;
  if (total > max_packet_size_) {
    return absl::DataLossError(absl::StrCat("mqtt: incoming ", name, " of ", total,
                                            " bytes exceeds max_packet_size ", max_packet_size_));
  }
  if (in.size() < total) return 0;

  *packet = Packet();
  packet->type = type;
  packet->flags = flags;
  packet->size = total;
  absl::string_view body = in.substr(*header, remaining);
  auto expect_length = [&](size_t want) -> absl::Status {
    if (remaining == want) return absl::OkStatus();
    return Malformed(name, absl::StrCat("remaining length ", remaining, ", expected ", want));
  };
  Reader r(body, name);
  switch (type) {
    case PacketType::kConnack: {
      MQTT_RETURN_IF_ERROR(expect_length(2));
      uint8_t ack_flags = static_cast<uint8_t>(body[0]);
      if (ack_flags & 0xFE) {
        return Malformed(name, absl::StrFormat("reserved acknowledge flags 0x%02X", ack_flags));
      }
      packet->session_present = ack_flags & 1;
      packet->return_code = static_cast<uint8_t>(body[1]);
      if (packet->return_code > 5) {
        return Malformed(name, absl::StrCat("reserved return code ", packet->return_code));
      }
      if (packet->session_present && packet->return_code != 0) {
        return Malformed(name,
                         absl::StrCat("session present with refusal code ", packet->return_code));
      }
      break;
    }
    case PacketType::kPublish: {
      packet->qos = (flags >> 1) & 0x03;
      packet->dup = flags & 0x08;
      packet->retain = flags & 0x01;
      MQTT_RETURN_IF_ERROR(r.String("topic", &packet->topic));
      std::string problem = TopicNameProblem(packet->topic);
      if (!problem.empty()) return Malformed(name, absl::StrCat("topic: ", problem));
      if (packet->qos > 0) MQTT_RETURN_IF_ERROR(r.PacketId(&packet->packet_id));
      packet->payload = r.Rest();
      break;
    }
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
    case PacketType::kUnsuback:
      MQTT_RETURN_IF_ERROR(expect_length(2));
      MQTT_RETURN_IF_ERROR(r.PacketId(&packet->packet_id));
      break;
    case PacketType::kSuback: {
      if (remaining < 3) {
        return Malformed(name,
                         absl::StrCat("remaining length ", remaining, ", expected at least 3"));
      }
      MQTT_RETURN_IF_ERROR(r.PacketId(&packet->packet_id));
      packet->return_codes = r.Rest();
      for (size_t i = 0; i < packet->return_codes.size(); ++i) {
        uint8_t code = static_cast<uint8_t>(packet->return_codes[i]);
        if (code > 2 && code != kSubackFailure) {
          return Malformed(name,
                           absl::StrFormat("invalid return code 0x%02X for filter %d", code, i));
        }
      }
      break;
    }
    case PacketType::kPingreq:
    case PacketType::kPingresp:
    case PacketType::kDisconnect:
      MQTT_RETURN_IF_ERROR(expect_length(0));
      break;
    case PacketType::kConnect:
      MQTT_RETURN_IF_ERROR(ParseConnectInto(body, nullptr));
      packet->body = body;
      break;
    case PacketType::kSubscribe:
      MQTT_RETURN_IF_ERROR(ParseSubscribeInto(body, nullptr));
      packet->packet_id = static_cast<uint16_t>((static_cast<uint8_t>(body[0]) << 8) |
                                                static_cast<uint8_t>(body[1]));
      packet->body = body;
      break;
    case PacketType::kUnsubscribe:
      MQTT_RETURN_IF_ERROR(ParseUnsubscribeInto(body, nullptr));
      packet->packet_id = static_cast<uint16_t>((static_cast<uint8_t>(body[0]) << 8) |
                                                static_cast<uint8_t>(body[1]));
      packet->body = body;
      break;
  }
  return total;
}

absl::Status Decoder::Feed(absl::string_view bytes,
                           absl::FunctionRef<absl::Status(const Packet&)> on_packet) {
  if (!error_.ok()) return error_;
  Packet packet;
  while (!bytes.empty()) {
    if (buffer_.empty()) {
      // Fast path: whole packets straight from the caller's bytes, no copy.
      absl::StatusOr<size_t> used = ParseOne(bytes, &packet);
      if (!used.ok()) {
        error_ = used.status();
        NoteOversize(bytes, {});
        return error_;
      }
      if (*used == 0) {
        buffer_.assign(bytes.data(), bytes.size());
        return absl::OkStatus();
      }
      bytes.remove_prefix(*used);
      MQTT_RETURN_IF_ERROR(on_packet(packet));
      continue;
    }
    // Complete the buffered packet, taking only the bytes it needs so the rest can use the fast
    // path.
    size_t remaining = 0;
    absl::StatusOr<size_t> header = ParseFixedHeader(buffer_, &remaining);
    if (!header.ok()) {
      error_ = header.status();
      return error_;
    }
    size_t need = *header == 0 ? 1 : *header + remaining - buffer_.size();
    size_t take = std::min(need, bytes.size());
    if (*header != 0 && buffer_.capacity() < *header + remaining)
      buffer_.reserve(*header + remaining);
    buffer_.append(bytes.data(), take);
    bytes.remove_prefix(take);
    absl::StatusOr<size_t> used = ParseOne(buffer_, &packet);
    if (!used.ok()) {
      error_ = used.status();
      NoteOversize(buffer_, bytes);
      return error_;
    }
    if (*used == 0) continue;
    absl::Status status = on_packet(packet);
    buffer_.clear();
    // A one-off huge packet should not pin its buffer for the life of the connection.
    if (buffer_.capacity() > (256u << 10)) std::string().swap(buffer_);
    MQTT_RETURN_IF_ERROR(status);
  }
  return absl::OkStatus();
}

void Decoder::Reset() {
  buffer_.clear();
  error_ = absl::OkStatus();
  oversize_.reset();
}

void Decoder::NoteOversize(absl::string_view in, absl::string_view more) {
  if (in.empty()) return;
  size_t remaining = 0;
  absl::StatusOr<size_t> header = ParseFixedHeader(in, &remaining);
  if (!header.ok() || *header == 0 || *header + remaining <= max_packet_size_) return;
  Oversize oversize;
  oversize.type = static_cast<PacketType>(static_cast<uint8_t>(in[0]) >> 4);
  oversize.size = *header + remaining;
  if (oversize.type == PacketType::kPublish) {
    // The topic's length and bytes, from what this packet's start and the bytes after it hold.
    std::string head(in.substr(*header, 2 + 65535));
    if (head.size() < 2 + 65535) {
      absl::string_view extra = more.substr(0, 2 + 65535 - head.size());
      head.append(extra.data(), extra.size());
    }
    if (head.size() >= 2) {
      size_t length = (static_cast<uint8_t>(head[0]) << 8) | static_cast<uint8_t>(head[1]);
      if (remaining >= 2 && head.size() >= 2 + length && length <= remaining - 2) {
        std::string topic = head.substr(2, length);
        if (TopicNameProblem(topic).empty()) oversize.topic = std::move(topic);
      }
    }
  }
  oversize_ = std::move(oversize);
}

absl::StatusOr<Packet> DecodePacket(absl::string_view bytes, Decoder::Role role,
                                    size_t max_packet_size) {
  Decoder decoder(max_packet_size, role);
  absl::optional<Packet> result;
  int count = 0;
  absl::Status status = decoder.Feed(bytes, [&](const Packet& packet) {
    ++count;
    result = packet;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (count != 1 || decoder.buffered() != 0) {
    return absl::DataLossError(absl::StrCat("mqtt: expected exactly one packet, got ", count,
                                            count == 1 ? " and trailing bytes" : ""));
  }
  return *result;
}

absl::StatusOr<ConnectFields> ParseConnect(const Packet& packet) {
  ConnectFields fields;
  MQTT_RETURN_IF_ERROR(ParseConnectInto(packet.body, &fields));
  return fields;
}

absl::StatusOr<std::vector<std::pair<std::string, uint8_t>>> ParseSubscribe(const Packet& packet) {
  std::vector<std::pair<std::string, uint8_t>> out;
  MQTT_RETURN_IF_ERROR(ParseSubscribeInto(packet.body, &out));
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseUnsubscribe(const Packet& packet) {
  std::vector<std::string> out;
  MQTT_RETURN_IF_ERROR(ParseUnsubscribeInto(packet.body, &out));
  return out;
}

}  // namespace mqtt
}  // namespace hublink
