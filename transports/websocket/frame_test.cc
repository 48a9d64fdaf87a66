#include "transports/websocket/frame.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/utf8.h"

namespace hublink {
namespace websocket {
namespace {

// An unmasked server frame.
std::string ServerFrame(uint8_t first_byte, absl::string_view payload) {
  std::string out(1, static_cast<char>(first_byte));
  if (payload.size() <= 125) {
    out.push_back(static_cast<char>(payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    out.push_back(126);
    out.push_back(static_cast<char>(payload.size() >> 8));
    out.push_back(static_cast<char>(payload.size()));
  } else {
    out.push_back(127);
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>(uint64_t{payload.size()} >> shift));
  }
  out.append(payload.data(), payload.size());
  return out;
}

// Records decoder output as a readable transcript.
class Recorder : public FrameDecoder::Handler {
 public:
  void OnMessageData(Opcode opcode, absl::string_view data, bool message_end) override {
    current.append(data.data(), data.size());
    if (message_end) {
      events.push_back(absl::StrCat(opcode == kText ? "text:" : "binary:", current));
      current.clear();
    }
  }
  void OnControl(Opcode opcode, absl::string_view payload) override {
    events.push_back(absl::StrCat(opcode == kPing   ? "ping:"
                                  : opcode == kPong ? "pong:"
                                                    : "close:",
                                  payload));
  }
  std::vector<std::string> events;
  std::string current;
};

TEST(MaskTest, MatchesBytewiseMaskingForEveryLengthAndPhase) {
  const uint8_t key[4] = {0x12, 0xA5, 0x00, 0xFF};
  for (size_t offset = 0; offset < 8; ++offset) {  // misaligned starts
    for (size_t size = 0; size < 80; ++size) {
      for (size_t phase = 0; phase < 4; ++phase) {
        std::string buffer(offset + size, '\0');
        for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<char>(i * 7 + 3);
        std::string expected = buffer;
        for (size_t i = 0; i < size; ++i)
          expected[offset + i] ^= static_cast<char>(key[(phase + i) % 4]);
        Mask(&buffer[offset], size, key, phase);
        ASSERT_EQ(buffer, expected)
            << "offset " << offset << " size " << size << " phase " << phase;
      }
    }
  }
}

TEST(MaskTest, KeysAreFreshAndSpread) {
  MaskKeySource keys;
  std::set<uint32_t> seen;
  for (int i = 0; i < 1000; ++i) {
    uint8_t key[4];
    keys.Next(key);
    seen.insert(uint32_t{key[0]} << 24 | uint32_t{key[1]} << 16 | uint32_t{key[2]} << 8 | key[3]);
  }
  // 1000 draws from 2^32: a repeat is a ~1e-4 event; more than one means a broken generator.
  EXPECT_GE(seen.size(), 999u);
}

TEST(MaskTest, SecureRandomFillsEveryByte) {
  // Sizes that are not a multiple of anything the kernel might hand out in one call, and a pattern
  // in the buffer that the fill must overwrite to its last byte.
  for (size_t size : {size_t{1}, size_t{16}, size_t{257}, size_t{8195}}) {
    std::vector<uint8_t> a(size, 0xAA), b(size, 0xAA);
    FillSecureRandom(a.data(), a.size());
    FillSecureRandom(b.data(), b.size());
    if (size >= 16) {
      EXPECT_NE(a, b) << "two draws of " << size << " bytes";
      const size_t tail = std::min<size_t>(size, 16);
      EXPECT_FALSE(std::all_of(a.end() - tail, a.end(), [](uint8_t v) { return v == 0xAA; }))
          << "the last bytes were not written";
    }
    if (size >= 8192) {
      // 8,195 uniform bytes miss one of the 256 values with probability ~256 * e^-32.
      EXPECT_EQ(std::set<uint8_t>(a.begin(), a.end()).size(), 256u);
    }
  }
}

TEST(EncoderTest, LengthFormsAndMaskingRoundTrip) {
  MaskKeySource keys;
  for (size_t size : {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{65535}, size_t{65536},
                      size_t{70000}}) {
    std::string payload(size, '\0');
    for (size_t i = 0; i < size; ++i) payload[i] = static_cast<char>(i % 251);
    std::string frame;
    AppendClientFrame(kBinary, payload, keys, &frame);
    const auto* bytes = reinterpret_cast<const uint8_t*>(frame.data());
    EXPECT_EQ(bytes[0], 0x82);
    EXPECT_TRUE(bytes[1] & 0x80) << "client frames must be masked";
    size_t header = size <= 125 ? 6 : size <= 0xFFFF ? 8 : 14;
    ASSERT_EQ(frame.size(), header + size);
    uint64_t length = bytes[1] & 0x7F;
    if (size > 125 && size <= 0xFFFF) {
      EXPECT_EQ(length, 126u);
      length = uint64_t{bytes[2]} << 8 | bytes[3];
    } else if (size > 0xFFFF) {
      EXPECT_EQ(length, 127u);
      length = 0;
      for (int i = 2; i < 10; ++i) length = length << 8 | bytes[i];
    }
    EXPECT_EQ(length, size);
    uint8_t key[4];
    std::memcpy(key, bytes + header - 4, 4);
    std::string unmasked = frame.substr(header);
    Mask(&unmasked[0], unmasked.size(), key);
    EXPECT_TRUE(unmasked == payload) << "size " << size;
  }
}

TEST(EncoderTest, EveryFrameGetsItsOwnKey) {
  MaskKeySource keys;
  std::string a, b;
  AppendClientFrame(kBinary, "same", keys, &a);
  AppendClientFrame(kBinary, "same", keys, &b);
  EXPECT_NE(a.substr(2, 4), b.substr(2, 4));
  EXPECT_NE(a, b);
}

TEST(EncoderTest, ClosePayloadKeepsUtf8Whole) {
  EXPECT_EQ(ClosePayload(1000, "bye"), std::string("\x03\xE8"
                                                   "bye",
                                                   5));
  std::string reason;
  for (int i = 0; i < 100; ++i) reason += "\xC3\xA9";  // 'é', 2 bytes each
  std::string payload = ClosePayload(1001, reason);
  EXPECT_LE(payload.size(), kMaxControlPayload);
  EXPECT_TRUE(IsValidUtf8(payload.substr(2)));
}

// The validator itself is tested in plugins/utf8_test.cc; this is WebSocket's rule: U+0000 is
// valid UTF-8, so a CLOSE reason may hold it (MQTT's strings may not).
TEST(DecoderTest, CloseReasonMayHoldUPlus0000) {
  FrameDecoder decoder(1024);
  Recorder recorder;
  const std::string payload(
      "\x03\xE8"
      "a\0b",
      5);
  ASSERT_TRUE(decoder.Feed(ServerFrame(0x88, payload), recorder).ok());
  ASSERT_EQ(recorder.events.size(), 1u);
  EXPECT_EQ(recorder.events[0], "close:" + payload);
}

// A fragmented message with control frames in between, a 16-bit and a 64-bit length frame, an empty
// message and a CLOSE: the transcript must not depend on how the bytes were split.
TEST(DecoderTest, StreamSplitAtEveryOffset) {
  const std::string medium(300, 'm');
  const std::string large(70000, 'L');
  const std::string input =
      ServerFrame(0x02, "frag1-") + ServerFrame(0x89, "ping!") + ServerFrame(0x00, "frag2-") +
      ServerFrame(0x8A, "") + ServerFrame(0x80, "end") + ServerFrame(0x82, medium) +
      ServerFrame(0x82, large) + ServerFrame(0x82, "") + ServerFrame(0x81, "text") +
      ServerFrame(0x88, std::string("\x0F\xA0"
                                    "done",
                                    6));
  const std::vector<std::string> expected = {"ping:ping!",
                                             "pong:",
                                             "binary:frag1-frag2-end",
                                             "binary:" + medium,
                                             "binary:" + large,
                                             "binary:",
                                             "text:text",
                                             std::string("close:\x0F\xA0"
                                                         "done",
                                                         12)};
  auto check = [&](const std::vector<absl::string_view>& pieces, const std::string& label) {
    FrameDecoder decoder(1 << 20);
    Recorder recorder;
    for (absl::string_view piece : pieces) {
      absl::Status status = decoder.Feed(piece, recorder);
      ASSERT_TRUE(status.ok()) << label << ": " << status;
    }
    ASSERT_EQ(recorder.events, expected) << label;
  };
  // Every split point in the small frames; the large frame's interior only matters at its edges.
  for (size_t split = 0; split <= input.size();
       split += (split > 400 && split + 400 < input.size()) ? 997 : 1) {
    check({absl::string_view(input).substr(0, split), absl::string_view(input).substr(split)},
          absl::StrCat("split ", split));
  }
  std::vector<absl::string_view> bytes;
  for (size_t i = 0; i < input.size(); ++i) bytes.push_back(absl::string_view(input).substr(i, 1));
  check(bytes, "byte by byte");
}

struct Violation {
  std::string name;
  std::string input;
  uint16_t code;
  std::string message_part;
};

TEST(DecoderTest, ViolationsFailWithCodeAndReason) {
  const std::vector<Violation> cases = {
      {"masked", std::string("\x82\x81\x01\x02\x03\x04x", 7), 1002, "server frame is masked"},
      {"rsv1", ServerFrame(0xC2, "x"), 1002, "reserved bits set (RSV1)"},
      {"rsv3", ServerFrame(0x92, "x"), 1002, "reserved bits set (RSV3)"},
      {"opcode 3", ServerFrame(0x83, "x"), 1002, "unknown opcode 0x3"},
      {"opcode B", ServerFrame(0x8B, ""), 1002, "unknown opcode 0xb"},
      {"long ping", ServerFrame(0x89, std::string(126, 'p')), 1002,
       "control frame payload over 125 bytes"},
      {"fragmented ping", ServerFrame(0x09, "p"), 1002, "fragmented control frame"},
      {"orphan continuation", ServerFrame(0x80, "x"), 1002,
       "continuation frame with no message in progress"},
      {"data inside fragmented", ServerFrame(0x02, "a") + ServerFrame(0x82, "b"), 1002,
       "new data frame inside a fragmented message"},
      {"close 1 byte", ServerFrame(0x88, "x"), 1002, "1-byte payload"},
      {"close code 1005", ServerFrame(0x88, std::string("\x03\xED", 2)), 1002,
       "invalid close code 1005"},
      {"close code 999", ServerFrame(0x88, std::string("\x03\xE7", 2)), 1002,
       "invalid close code 999"},
      {"close code 5000", ServerFrame(0x88, std::string("\x13\x88", 2)), 1002,
       "invalid close code 5000"},
      {"close reason utf8", ServerFrame(0x88, std::string("\x03\xE8\xC0\xAF", 4)), 1007,
       "not valid UTF-8"},
      {"64-bit top bit", std::string("\x82\x7F\x80\x00\x00\x00\x00\x00\x00\x01", 10), 1002,
       "top bit"},
      {"too big", ServerFrame(0x82, std::string(1025, 'b')), 1009,
       "exceeds max_message_bytes (1024)"},
      {"too big fragmented",
       ServerFrame(0x02, std::string(600, 'a')) + ServerFrame(0x89, "") +
           ServerFrame(0x80, std::string(600, 'b')),
       1009, "at least 1200 bytes exceeds max_message_bytes (1024)"},
  };
  for (const Violation& c : cases) {
    // The violation must be found however the input is split.
    for (size_t split = 0; split <= c.input.size(); split += c.input.size() > 40 ? 97 : 1) {
      FrameDecoder decoder(1024);
      Recorder recorder;
      absl::Status status = decoder.Feed(absl::string_view(c.input).substr(0, split), recorder);
      if (status.ok()) status = decoder.Feed(absl::string_view(c.input).substr(split), recorder);
      ASSERT_FALSE(status.ok()) << c.name << " split " << split;
      EXPECT_EQ(decoder.close_code(), c.code) << c.name;
      EXPECT_TRUE(absl::StrContains(status.message(), c.message_part)) << c.name << ": " << status;
      EXPECT_TRUE(absl::StrContains(status.message(), absl::StrCat("closing with ", c.code)))
          << status;
      // A peer breaking the protocol, an oversize message included (docs/errors.md).
      EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
      EXPECT_FALSE(decoder.Feed("x", recorder).ok()) << "a failed decoder must stay failed";
    }
  }
}

TEST(DecoderTest, MessageAtTheLimitPasses) {
  FrameDecoder decoder(1024);
  Recorder recorder;
  ASSERT_TRUE(
      decoder
          .Feed(ServerFrame(0x02, std::string(1000, 'a')) + ServerFrame(0x80, std::string(24, 'b')),
                recorder)
          .ok());
  ASSERT_EQ(recorder.events.size(), 1u);
  // The limit is per message, not per connection.
  ASSERT_TRUE(decoder.Feed(ServerFrame(0x82, std::string(1024, 'c')), recorder).ok());
  EXPECT_EQ(recorder.events.size(), 2u);
}

class StopOnClose : public Recorder {
 public:
  explicit StopOnClose(FrameDecoder& decoder) : decoder_(decoder) {}
  void OnControl(Opcode opcode, absl::string_view payload) override {
    Recorder::OnControl(opcode, payload);
    if (opcode == kClose) decoder_.stop();
  }

 private:
  FrameDecoder& decoder_;
};

TEST(DecoderTest, NothingIsReadAfterStop) {
  FrameDecoder decoder(1024);
  StopOnClose handler(decoder);
  ASSERT_TRUE(decoder.Feed(ServerFrame(0x88, "") + ServerFrame(0x82, "after"), handler).ok());
  ASSERT_TRUE(decoder.Feed(ServerFrame(0x82, "later"), handler).ok());
  EXPECT_EQ(handler.events, std::vector<std::string>{"close:"});
}

}  // namespace
}  // namespace websocket
}  // namespace hublink
