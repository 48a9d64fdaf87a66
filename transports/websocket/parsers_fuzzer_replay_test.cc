// Runs the WebSocket parsers' fuzz target over seeded random mutations of valid server input, so
// the normal build exercises it (and ASan/UBSan builds check it).
#include <cstdint>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "transports/websocket/test_frames.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace hublink {
namespace websocket {
namespace {

void Replay(char selector, const std::string& seed, int rounds) {
  std::mt19937 rng(4242);
  for (int i = 0; i < rounds; ++i) {
    std::string input = seed;
    int mutations = rng() % 4;  // 0: the valid seed itself
    for (int m = 0; m < mutations && !input.empty(); ++m) {
      size_t at = rng() % input.size();
      switch (rng() % 3) {
        case 0:
          input[at] = static_cast<char>(rng());
          break;
        case 1:
          input.erase(at, 1 + rng() % 3);
          break;
        default:
          input.insert(at, 1, static_cast<char>(rng()));
          break;
      }
    }
    std::string framed =
        std::string(1, selector) + std::string(1, static_cast<char>(rng())) + input;
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(framed.data()), framed.size());
  }
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
