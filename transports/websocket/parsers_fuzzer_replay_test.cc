// Runs the WebSocket parsers' fuzz target over seeded random mutations of valid server input, so
// the normal build exercises it (and ASan/UBSan builds check it).
#include <cstdint>
#include <string>

#include "gtest/gtest.h"
#include "tests/fuzz_replay.h"
#include "transports/websocket/test_frames.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace hublink {
namespace websocket {
namespace {

// The target's first byte selects the parser: 0 frames, 1 the upgrade response. Unlike the codecs'
// replays, a round may feed the valid seed itself (0 edits), and an input edited to nothing stays so.
void Replay(char selector, const std::string& seed, int rounds) {
  hublink::testing::FuzzReplayOptions options;
  options.rounds = rounds;
  options.min_edits = 0;
  options.refill_empty = false;
  options.prefix = std::string(1, selector);
  hublink::testing::ReplayFuzzMutations(LLVMFuzzerTestOneInput, {seed}, options);
}

TEST(ParsersFuzzerReplay, MutatedServerFramesDecodeTheSameWholeOrSplit) {
  using testing::ServerFrame;
  std::string seed = ServerFrame(0x82, "binary") +               // FIN + binary
                     ServerFrame(0x02, "frag-") +                // first fragment
                     ServerFrame(0x89, "ping") +                 // PING inside the message
                     ServerFrame(0x80, "ment") +                 // last fragment
                     ServerFrame(0x82, std::string(300, 'x')) +  // 16-bit length
                     testing::CloseFrame(1000, "bye");
  Replay('\0', seed, 20000);
}

TEST(ParsersFuzzerReplay, MutatedUpgradeResponsesParseTheSameWholeOrSplit) {
  const std::string seed =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
      "Sec-WebSocket-Protocol: mqtt\r\n"
      "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
      "\r\n"
      "\x82\x02hi";
  Replay('\1', seed, 20000);
}

}  // namespace
}  // namespace websocket
}  // namespace hublink
