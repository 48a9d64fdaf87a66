#include "protocols/mqtt/codec.h"

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "gtest/gtest.h"

// Counts heap allocations on this thread so tests can prove the QoS 0 fast paths allocate nothing.
namespace {
thread_local long allocations = 0;
}
void* operator new(size_t size) {
  ++allocations;
  void* p = std::malloc(size ? size : 1);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace hublink {
namespace mqtt {
namespace {

struct Decoded {
  std::vector<std::string> packets;  // a readable rendering of each packet
  absl::Status status;
};

std::string Render(const Packet& p) {
  std::string s = PacketTypeName(p.type);
  s += " id=" + std::to_string(p.packet_id) + " size=" + std::to_string(p.size);
  switch (p.type) {
    case PacketType::kConnack:
      s += " sp=" + std::to_string(p.session_present) + " rc=" + std::to_string(p.return_code);
      break;
    case PacketType::kPublish:
      s += " qos=" + std::to_string(p.qos) + " dup=" + std::to_string(p.dup) +
           " retain=" + std::to_string(p.retain) + " topic=" + std::string(p.topic) +
           " payload=" + std::string(p.payload);
      break;
    case PacketType::kSuback:
      for (char c : p.return_codes) s += " " + std::to_string(static_cast<uint8_t>(c));
      break;
    default:
      s += " body=" + std::to_string(p.body.size());
  }
  return s;
}

Decoded Feed(Decoder& decoder, const std::vector<absl::string_view>& pieces) {
  Decoded out;
  for (absl::string_view piece : pieces) {
    out.status = decoder.Feed(piece, [&](const Packet& p) {
      out.packets.push_back(Render(p));
      return absl::OkStatus();
    });
    if (!out.status.ok()) break;
  }
  return out;
}

// Decodes `bytes` whole, split in two at every offset, split in three, and byte by byte; every way
// must agree. Returns the whole-input result.
Decoded DecodeEverySplit(absl::string_view bytes, Decoder::Role role, size_t max = 1 << 20) {
  Decoder whole_decoder(max, role);
  Decoded whole = Feed(whole_decoder, {bytes});
  for (size_t i = 0; i <= bytes.size(); ++i) {
    Decoder d(max, role);
    Decoded split = Feed(d, {bytes.substr(0, i), bytes.substr(i)});
    EXPECT_EQ(split.packets, whole.packets) << "split at " << i;
    EXPECT_EQ(split.status, whole.status) << "split at " << i;
  }
  for (size_t i = 0; i <= bytes.size(); i += 3) {
    for (size_t j = i; j <= bytes.size(); j += 5) {
      Decoder d(max, role);
      Decoded split = Feed(d, {bytes.substr(0, i), bytes.substr(i, j - i), bytes.substr(j)});
      EXPECT_EQ(split.packets, whole.packets) << "split at " << i << "," << j;
    }
  }
  Decoder d(max, role);
  std::vector<absl::string_view> bytewise;
  for (size_t i = 0; i < bytes.size(); ++i) bytewise.push_back(bytes.substr(i, 1));
  Decoded one_by_one = Feed(d, bytewise);
  EXPECT_EQ(one_by_one.packets, whole.packets);
  EXPECT_EQ(one_by_one.status, whole.status);
  return whole;
}

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

TEST(Codec, ServerPacketsRoundTripAtEverySplit) {
  std::string wire;
  AppendConnack(true, 0, &wire);
  ASSERT_TRUE(AppendPublish({"a/b", "payload", 0, false, false, 0}, &wire).ok());
  ASSERT_TRUE(AppendPublish({"a/b", "", 1, true, true, 65535}, &wire).ok());
  ASSERT_TRUE(AppendPublish({"x", "two", 2, false, false, 1}, &wire).ok());
  AppendAck(PacketType::kPuback, 1, &wire);
  AppendAck(PacketType::kPubrec, 2, &wire);
  AppendAck(PacketType::kPubrel, 3, &wire);
  AppendAck(PacketType::kPubcomp, 4, &wire);
  const uint8_t codes[] = {0, 1, 2, kSubackFailure};
  AppendSuback(5, codes, &wire);
  AppendAck(PacketType::kUnsuback, 6, &wire);
  AppendPingresp(&wire);

  Decoded d = DecodeEverySplit(wire, Decoder::Role::kClient);
  ASSERT_TRUE(d.status.ok()) << d.status;
  EXPECT_EQ(d.packets, (std::vector<std::string>{
                           "CONNACK id=0 size=4 sp=1 rc=0",
                           "PUBLISH id=0 size=14 qos=0 dup=0 retain=0 topic=a/b payload=payload",
                           "PUBLISH id=65535 size=9 qos=1 dup=1 retain=1 topic=a/b payload=",
                           "PUBLISH id=1 size=10 qos=2 dup=0 retain=0 topic=x payload=two",
                           "PUBACK id=1 size=4 body=0",
                           "PUBREC id=2 size=4 body=0",
                           "PUBREL id=3 size=4 body=0",
                           "PUBCOMP id=4 size=4 body=0",
                           "SUBACK id=5 size=8 0 1 2 128",
                           "UNSUBACK id=6 size=4 body=0",
                           "PINGRESP id=0 size=2 body=0",
                       }));
}

TEST(Codec, ClientPacketsRoundTripAtEverySplit) {
  std::string wire;
  Will will{"dev/status", "offline", 1, true};
  ConnectPacket connect;
  connect.client_id = "dev1";
  connect.clean_session = false;
  connect.keep_alive_seconds = 120;
  connect.username = "user";
  const std::string password("p\0w", 3);
  connect.password = password;
  connect.will = &will;
  ASSERT_TRUE(AppendConnect(connect, &wire).ok());
  const SubscribeRequest subs[] = {{"a/+/c", 1}, {"#", 2}, {"$sys/x", 0}};
  ASSERT_TRUE(AppendSubscribe(10, subs, &wire).ok());
  const absl::string_view unsubs[] = {"a/+/c", "#"};
  ASSERT_TRUE(AppendUnsubscribe(11, unsubs, &wire).ok());
  AppendPingreq(&wire);
  AppendDisconnect(&wire);

  Decoded d = DecodeEverySplit(wire, Decoder::Role::kServer);
  ASSERT_TRUE(d.status.ok()) << d.status;
  ASSERT_EQ(d.packets.size(), 5u);

  Decoder decoder(1 << 20, Decoder::Role::kServer);
  std::vector<std::string> filters;
  ASSERT_TRUE(decoder
                  .Feed(wire,
                        [&](const Packet& packet) {
                          if (packet.type == PacketType::kConnect) {
                            absl::StatusOr<ConnectFields> f = ParseConnect(packet);
                            EXPECT_TRUE(f.ok()) << f.status();
                            EXPECT_EQ(f->client_id, "dev1");
                            EXPECT_FALSE(f->clean_session);
                            EXPECT_EQ(f->keep_alive_seconds, 120);
                            EXPECT_EQ(f->username.value_or(""), "user");
                            EXPECT_EQ(f->password.value_or(""), std::string("p\0w", 3));
                            EXPECT_TRUE(f->will.has_value());
                            EXPECT_EQ(f->will->topic, "dev/status");
                            EXPECT_EQ(f->will->payload, "offline");
                            EXPECT_EQ(f->will->qos, 1);
                            EXPECT_TRUE(f->will->retain);
                          } else if (packet.type == PacketType::kSubscribe) {
                            auto s = ParseSubscribe(packet);
                            EXPECT_TRUE(s.ok());
                            EXPECT_EQ(packet.packet_id, 10);
                            for (auto& [filter, qos] : *s)
                              filters.push_back(filter + ":" + std::to_string(qos));
                          } else if (packet.type == PacketType::kUnsubscribe) {
                            auto u = ParseUnsubscribe(packet);
                            EXPECT_TRUE(u.ok());
                            EXPECT_EQ(packet.packet_id, 11);
                            for (auto& filter : *u) filters.push_back("-" + filter);
                          }
                          return absl::OkStatus();
                        })
                  .ok());
  EXPECT_EQ(filters, (std::vector<std::string>{"a/+/c:1", "#:2", "$sys/x:0", "-a/+/c", "-#"}));
}

TEST(Codec, ConnectWireFormatMatchesTheSpecExample) {
  std::string wire;
  ConnectPacket connect;
  connect.client_id = "id";
  connect.keep_alive_seconds = 60;
  ASSERT_TRUE(AppendConnect(connect, &wire).ok());
  EXPECT_EQ(wire, Bytes({0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 2, 'i', 'd'}));
}

TEST(Codec, LargePublishAndRemainingLengthBoundaries) {
  for (size_t payload_size : {0u, 122u, 123u, 124u, 16380u, 16381u, 2097148u, (1u << 20)}) {
    std::string payload(payload_size, 'x');
    std::string wire;
    ASSERT_TRUE(AppendPublish({"t", payload, 0, false, false, 0}, &wire).ok());
    EXPECT_EQ(wire.size(), PublishPacketSize(1, payload_size, 0));
    absl::StatusOr<Packet> p = DecodePacket(wire, Decoder::Role::kClient);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->payload.size(), payload_size);
  }
}

TEST(Codec, OneMebibytePublishSplitEverywhereOnTheHeader) {
  std::string payload(1 << 20, 'q');
  std::string wire;
  ASSERT_TRUE(AppendPublish({"big", payload, 1, false, false, 42}, &wire).ok());
  for (size_t split : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1000, (1 << 20) + 10}) {
    Decoder d(2 << 20);
    Decoded out =
        Feed(d, {absl::string_view(wire).substr(0, split), absl::string_view(wire).substr(split)});
    ASSERT_TRUE(out.status.ok()) << out.status;
    ASSERT_EQ(out.packets.size(), 1u);
  }
}

absl::Status DecodeError(std::string bytes, Decoder::Role role = Decoder::Role::kClient,
                         size_t max = 1 << 20) {
  Decoded d = DecodeEverySplit(bytes, role, max);
  return d.status;
}

void ExpectError(absl::Status status, absl::StatusCode code, absl::string_view message) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_EQ(status.message(), message);
}

TEST(Codec, MalformedPacketsGiveSpecificErrors) {
  ExpectError(DecodeError(Bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})), absl::StatusCode::kDataLoss,
              "mqtt: malformed remaining length: continuation bit set in its fourth byte");
  // An oversize packet is kDataLoss, as docs/errors.md has it.
  ExpectError(DecodeError(Bytes({0x30, 0x80, 0x80, 0x80, 0x01})), absl::StatusCode::kDataLoss,
              "mqtt: incoming PUBLISH of 2097157 bytes exceeds max_packet_size 1048576");
  ExpectError(DecodeError(Bytes({0x00, 0x00})), absl::StatusCode::kDataLoss,
              "mqtt: reserved packet type 0");
  ExpectError(DecodeError(Bytes({0xF0, 0x00})), absl::StatusCode::kDataLoss,
              "mqtt: reserved packet type 15");
  ExpectError(DecodeError(Bytes({0x10, 0x00})), absl::StatusCode::kDataLoss,
              "mqtt: unexpected CONNECT from the server");
  ExpectError(DecodeError(Bytes({0x20, 2, 0, 0}), Decoder::Role::kServer),
              absl::StatusCode::kDataLoss, "mqtt: unexpected CONNACK from the client");
  ExpectError(DecodeError(Bytes({0x41, 2, 0, 1})), absl::StatusCode::kDataLoss,
              "mqtt: PUBACK: reserved flags 0x1, expected 0x0");
  ExpectError(DecodeError(Bytes({0x60, 2, 0, 1})), absl::StatusCode::kDataLoss,
              "mqtt: PUBREL: reserved flags 0x0, expected 0x2");
  ExpectError(DecodeError(Bytes({0xD1, 0})), absl::StatusCode::kDataLoss,
              "mqtt: PINGRESP: reserved flags 0x1, expected 0x0");
  ExpectError(DecodeError(Bytes({0x36, 5, 0, 1, 'a', 0, 1})), absl::StatusCode::kDataLoss,
              "mqtt: PUBLISH: QoS 3 is invalid");
  ExpectError(DecodeError(Bytes({0x38, 3, 0, 1, 'a'})), absl::StatusCode::kDataLoss,
              "mqtt: PUBLISH: DUP set on a QoS 0 message");
  ExpectError(
      DecodeError(Bytes({0x30, 3, 0, 5, 'a'})), absl::StatusCode::kDataLoss,
      "mqtt: PUBLISH: topic: truncated string: length 5 but only 1 bytes left in the packet");
  ExpectError(DecodeError(Bytes({0x30, 1, 0})), absl::StatusCode::kDataLoss,
              "mqtt: PUBLISH: topic: truncated length prefix");
  ExpectError(DecodeError(Bytes({0x30, 4, 0, 2, 0xC0, 0x80})), absl::StatusCode::kDataLoss,
              "mqtt: PUBLISH: topic: invalid UTF-8: byte 0xC0 at byte 0 cannot start a character");
  ExpectError(DecodeError(Bytes({0x30, 5, 0, 3, 0xED, 0xA0, 0x80})), absl::StatusCode::kDataLoss,
              "mqtt: PUBLISH: topic: contains a UTF-16 surrogate U+D800 at byte 0");
  ExpectError(DecodeError(Bytes({0x30, 4, 0, 2, 'a', 0})), absl::StatusCode::kDataLoss,
              "mqtt: PUBLISH: topic: contains U+0000 at byte 1");
  ExpectError(DecodeError(Bytes({0x30, 4, 0, 2, 'a', '+'})), absl::StatusCode::kDataLoss,
              "mqtt: PUBLISH: topic: topic name contains wildcard '+' at byte 1");
  ExpectError(DecodeError(Bytes({0x30, 2, 0, 0})), absl::StatusCode::kDataLoss,
              "mqtt: PUBLISH: topic: topic name is empty");
  ExpectError(DecodeError(Bytes({0x32, 4, 0, 1, 'a', 0})), absl::StatusCode::kDataLoss,
              "mqtt: PUBLISH: truncated before the packet identifier");
  ExpectError(DecodeError(Bytes({0x32, 5, 0, 1, 'a', 0, 0})), absl::StatusCode::kDataLoss,
              "mqtt: PUBLISH: packet identifier 0 is invalid");
  ExpectError(DecodeError(Bytes({0x40, 3, 0, 1, 0})), absl::StatusCode::kDataLoss,
              "mqtt: PUBACK: remaining length 3, expected 2");
  ExpectError(DecodeError(Bytes({0x20, 2, 2, 0})), absl::StatusCode::kDataLoss,
              "mqtt: CONNACK: reserved acknowledge flags 0x02");
  ExpectError(DecodeError(Bytes({0x20, 2, 0, 6})), absl::StatusCode::kDataLoss,
              "mqtt: CONNACK: reserved return code 6");
  ExpectError(DecodeError(Bytes({0x20, 2, 1, 4})), absl::StatusCode::kDataLoss,
              "mqtt: CONNACK: session present with refusal code 4");
  ExpectError(DecodeError(Bytes({0x90, 3, 0, 1, 3})), absl::StatusCode::kDataLoss,
              "mqtt: SUBACK: invalid return code 0x03 for filter 0");
  ExpectError(DecodeError(Bytes({0x90, 2, 0, 1})), absl::StatusCode::kDataLoss,
              "mqtt: SUBACK: remaining length 2, expected at least 3");
  ExpectError(DecodeError(Bytes({0x82, 6, 0, 1, 0, 1, 'a', 3}), Decoder::Role::kServer),
              absl::StatusCode::kDataLoss, "mqtt: SUBSCRIBE: requested QoS byte 0x03");
  ExpectError(DecodeError(Bytes({0x82, 7, 0, 1, 0, 2, 'a', '#', 0}), Decoder::Role::kServer),
              absl::StatusCode::kDataLoss,
              "mqtt: SUBSCRIBE: topic filter: '#' at byte 1 must be alone in the last level");
  ExpectError(DecodeError(Bytes({0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x03, 0, 60, 0, 0}),
                          Decoder::Role::kServer),
              absl::StatusCode::kDataLoss, "mqtt: CONNECT: reserved connect flag bit 0 is set");
}

TEST(Codec, ErrorsStickAndPrecedingPacketsAreDelivered) {
  std::string wire;
  AppendPingresp(&wire);
  wire += Bytes({0x00, 0x00});
  Decoder d;
  int seen = 0;
  absl::Status status = d.Feed(wire, [&](const Packet&) {
    ++seen;
    return absl::OkStatus();
  });
  EXPECT_EQ(seen, 1);
  EXPECT_FALSE(status.ok());
  std::string ping;
  AppendPingresp(&ping);
  EXPECT_EQ(d.Feed(ping, [&](const Packet&) { return absl::OkStatus(); }), status);
  d.Reset();
  EXPECT_TRUE(d.Feed(ping, [&](const Packet&) { return absl::OkStatus(); }).ok());
}

TEST(Codec, CallbackErrorStopsDecoding) {
  std::string wire;
  AppendPingresp(&wire);
  AppendPingresp(&wire);
  Decoder d;
  int seen = 0;
  absl::Status status = d.Feed(wire, [&](const Packet&) {
    ++seen;
    return absl::CancelledError("stop");
  });
  EXPECT_EQ(seen, 1);
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
}

TEST(Codec, OversizedPacketRejectedFromItsHeaderAlone) {
  Decoder d(100);
  // Only the fixed header of a 200-byte publish: the decoder must not wait for (or buffer) the
  // body.
  absl::Status status =
      d.Feed(Bytes({0x30, 0xC8, 0x01}), [](const Packet&) { return absl::OkStatus(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(d.buffered(), 0u);
  ASSERT_TRUE(d.oversize().has_value());
  EXPECT_EQ(d.oversize()->type, PacketType::kPublish);
  EXPECT_EQ(d.oversize()->size, 203u);
  EXPECT_FALSE(d.oversize()->topic.has_value()) << "the topic was not in the bytes at hand";
}

TEST(Codec, OversizedPublishNamesItsTopicWhenTheBytesHoldIt) {
  std::string big;
  ASSERT_TRUE(AppendPublish({"dev/1/big", std::string(500, 'x'), 1, false, false, 7}, &big).ok());
  // Split inside the fixed header: the error comes when the rest arrives, topic included. Split
  // after the header: the error comes at once, from the bytes at hand, which hold the topic or not.
  for (size_t split : {size_t{1}, size_t{2}, size_t{5}, size_t{14}, big.size()}) {
    Decoder d(100);
    absl::Status status = d.Feed(big.substr(0, split), [](const Packet&) {
      ADD_FAILURE() << "no packet expected";
      return absl::OkStatus();
    });
    if (status.ok()) {
      status = d.Feed(big.substr(split), [](const Packet&) { return absl::OkStatus(); });
    }
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << split;
    ASSERT_TRUE(d.oversize().has_value()) << split;
    EXPECT_EQ(d.oversize()->size, big.size());
    EXPECT_EQ(d.oversize()->topic.value_or("?"), split == 5 ? "?" : "dev/1/big") << split;
    d.Reset();
    EXPECT_FALSE(d.oversize().has_value());
  }
  // Other errors leave it empty.
  Decoder d(100);
  EXPECT_FALSE(d.Feed(Bytes({0x00, 0x00}), [](const Packet&) { return absl::OkStatus(); }).ok());
  EXPECT_FALSE(d.oversize().has_value());
}

TEST(Codec, Utf8Validation) {
  EXPECT_TRUE(ValidateUtf8String("", "s").ok());
  EXPECT_TRUE(ValidateUtf8String("h\xC3\xA9llo \xE4\xBD\xA0 \xF0\x9F\x98\x80", "s").ok());
  EXPECT_TRUE(ValidateUtf8String("\xEF\xBF\xBF", "s").ok());  // U+FFFF: allowed (only SHOULD NOT)
  EXPECT_EQ(ValidateUtf8String("\xC1\xBF", "s").message(),
            "mqtt: s: invalid UTF-8: byte 0xC1 at byte 0 cannot start a character");
  EXPECT_EQ(ValidateUtf8String("\xE0\x80\x80", "s").message(),
            "mqtt: s: invalid UTF-8: overlong encoding at byte 0");
  EXPECT_EQ(ValidateUtf8String("\xF0\x80\x80\x80", "s").message(),
            "mqtt: s: invalid UTF-8: overlong encoding at byte 0");
  EXPECT_EQ(ValidateUtf8String("\xF4\x90\x80\x80", "s").message(),
            "mqtt: s: invalid UTF-8: code point above U+10FFFF at byte 0");
  EXPECT_EQ(ValidateUtf8String("ab\xE4\xBD", "s").message(),
            "mqtt: s: invalid UTF-8: truncated character at byte 2");
  EXPECT_EQ(ValidateUtf8String("\xE4"
                               "a"
                               "\xA0",
                               "s")
                .message(),
            "mqtt: s: invalid UTF-8: byte 0x61 at byte 1 is not a continuation byte");
  EXPECT_EQ(ValidateUtf8String("\xED\xBF\xBF", "s").message(),
            "mqtt: s: contains a UTF-16 surrogate U+DFFF at byte 0");
  EXPECT_EQ(ValidateUtf8String(std::string(65536, 'a'), "s").message(),
            "mqtt: s: is 65536 bytes, above the 65535-byte limit");
}

TEST(Codec, TopicNamesAndFilters) {
  for (const char* good : {"a", "/", "a/b/c", "$SYS/x", "a//b", " "}) {
    EXPECT_TRUE(ValidateTopicName(good).ok()) << good;
  }
  for (const char* bad : {"", "a/+", "#", "a/#/b"})
    EXPECT_FALSE(ValidateTopicName(bad).ok()) << bad;
  for (const char* good : {"#", "+", "+/+", "a/+/b", "a/#", "/#", "+/", "$SYS/#", "a//b"}) {
    EXPECT_TRUE(ValidateTopicFilter(good).ok()) << good;
  }
  for (const char* bad : {"", "a+", "+a", "a/b+", "a#", "#/a", "a/#/b", "a/##"}) {
    EXPECT_FALSE(ValidateTopicFilter(bad).ok()) << bad;
  }
  EXPECT_EQ(ValidateTopicFilter("a/b+").message(),
            "mqtt: topic filter \"a/b+\": '+' at byte 3 must fill a whole level");
}

TEST(Codec, TopicMatching) {
  struct Case {
    const char* filter;
    const char* topic;
    bool match;
  } cases[] = {
      {"a/b", "a/b", true},
      {"a/b", "a/c", false},
      {"a/+", "a/b", true},
      {"a/+", "a/b/c", false},
      {"a/+", "a", false},
      {"a/+", "a/", true},
      {"a/#", "a", true},
      {"a/#", "a/b/c", true},
      {"#", "a/b", true},
      {"#", "$SYS/x", false},
      {"+/x", "$SYS/x", false},
      {"$SYS/#", "$SYS/x", true},
      {"$sys/+/r", "$sys/op/r", true},
      {"+/+", "/x", true},
      {"+", "/x", false},
      {"/+", "/x", true},
      {"a/+/c", "a/b/c", true},
      {"a/+/c", "a/b/d", false},
      {"a", "a/b", false},
      {"a/b", "a", false},
      {"+/#", "a", true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(TopicMatches(c.filter, c.topic), c.match) << c.filter << " vs " << c.topic;
  }
}

TEST(Codec, EncodersRejectInvalidInput) {
  std::string out;
  EXPECT_EQ(AppendPublish({"a/+", "", 0, false, false, 0}, &out).message(),
            "mqtt: PUBLISH: topic: topic name contains wildcard '+' at byte 2");
  EXPECT_EQ(AppendPublish({"a", "", 1, false, false, 0}, &out).message(),
            "mqtt: PUBLISH: packet id: 0 is invalid");
  EXPECT_FALSE(AppendPublish({"a", "", 3, false, false, 1}, &out).ok());
  ConnectPacket connect;
  connect.client_id = "";
  connect.clean_session = false;
  EXPECT_FALSE(AppendConnect(connect, &out).ok());
  connect.clean_session = true;
  connect.password = "secret-value";
  absl::Status no_user = AppendConnect(connect, &out);
  EXPECT_FALSE(no_user.ok());
  EXPECT_EQ(no_user.message().find("secret-value"), absl::string_view::npos);
  const SubscribeRequest bad[] = {{"a/#/b", 0}};
  EXPECT_FALSE(AppendSubscribe(1, bad, &out).ok());
  EXPECT_TRUE(out.empty()) << "failed encoders must not append";
}

TEST(Codec, Qos0PublishEncodeAndDecodeAllocateNothingInSteadyState) {
  std::string buffer;
  std::string payload(200, 'p');
  ASSERT_TRUE(AppendPublish({"dev/data", payload, 0, false, false, 0}, &buffer).ok());
  Decoder decoder;
  size_t bytes = 0;
  long before = allocations;
  for (int i = 0; i < 1000; ++i) {
    buffer.clear();
    absl::Status s = AppendPublish({"dev/data", payload, 0, false, false, 0}, &buffer);
    if (!s.ok()) break;
    s = decoder.Feed(buffer, [&](const Packet& p) {
      bytes += p.payload.size();
      return absl::OkStatus();
    });
    if (!s.ok()) break;
  }
  long used = allocations - before;
  EXPECT_EQ(used, 0);
  EXPECT_EQ(bytes, 200u * 1000);
}

}  // namespace
}  // namespace mqtt
}  // namespace hublink
