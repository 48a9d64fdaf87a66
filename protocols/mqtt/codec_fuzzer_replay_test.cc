// Runs the fuzz target over seeded random mutations of valid packets, so the normal build exercises
// it.
#include <cstdint>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "protocols/mqtt/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace hublink {
namespace mqtt {
namespace {

TEST(CodecFuzzerReplay, MutatedPacketsDecodeTheSameWholeOrSplit) {
  std::string seed;
  AppendConnack(false, 0, &seed);
  ASSERT_TRUE(AppendPublish({"a/b", "hello", 1, false, false, 7}, &seed).ok());
  ASSERT_TRUE(AppendPublish({"t", "", 0, true, false, 0}, &seed).ok());
  AppendAck(PacketType::kPubrel, 9, &seed);
  const uint8_t codes[] = {0, 1, 0x80};
  AppendSuback(3, codes, &seed);
  ConnectPacket connect;
  connect.client_id = "dev";
  connect.username = "user";
  connect.password = "pw";
  ASSERT_TRUE(AppendConnect(connect, &seed).ok());
  const SubscribeRequest subs[] = {{"a/+", 1}, {"#", 2}};
  ASSERT_TRUE(AppendSubscribe(4, subs, &seed).ok());
  AppendPingresp(&seed);

  std::mt19937 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    std::string input = seed;
    int mutations = 1 + rng() % 4;
    for (int m = 0; m < mutations; ++m) {
      size_t at = rng() % input.size();
      switch (rng() % 3) {
        case 0:
          input[at] = static_cast<char>(rng());
          break;
        case 1:
          input.erase(at, 1 + rng() % 3);
          break;
        case 2:
          input.insert(at, 1, static_cast<char>(rng()));
          break;
      }
      if (input.empty()) input = "x";
    }
    input.insert(input.begin(), static_cast<char>(rng()));
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  }
}

}  // namespace
}  // namespace mqtt
}  // namespace hublink
