// Runs the fuzz target over seeded random mutations of valid packets, so the normal build exercises
// it.
#include <cstdint>
#include <string>

#include "gtest/gtest.h"
#include "protocols/mqtt/codec.h"
#include "tests/fuzz_replay.h"

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

  hublink::testing::FuzzReplayOptions options;
  options.rng_seed = 12345;
  hublink::testing::ReplayFuzzMutations(LLVMFuzzerTestOneInput, {seed}, options);
}

}  // namespace
}  // namespace mqtt
}  // namespace hublink
