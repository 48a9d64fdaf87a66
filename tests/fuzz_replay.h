// Replays a libFuzzer target over seeded random mutations of valid inputs, so that the normal build
// (and the ASan/UBSan builds) run every fuzz target without a fuzzing engine. The mutations are a
// fixed function of the options, so a failure reproduces run after run.
#ifndef HUBLINK_TESTS_FUZZ_REPLAY_H_
#define HUBLINK_TESTS_FUZZ_REPLAY_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hublink {
namespace testing {

using FuzzTarget = int (*)(const uint8_t* data, size_t size);

struct FuzzReplayOptions {
  uint32_t rng_seed = 4242;
  int rounds = 20000;
  // Each round applies min_edits plus 0 to 3 random edits (overwrite, erase 1-3 bytes, insert a byte).
  int min_edits = 1;
  // An input edited down to nothing becomes "x" and the edits go on; when false, the edits stop there
  // (and the empty input is fed).
  bool refill_empty = true;
  // Bytes each input starts with before the one random byte every target gets first (its split point
  // or mode): a target's selector between parsers, for instance.
  std::string prefix;
};

// Round i feeds target a mutation of seeds[i % seeds.size()].
void ReplayFuzzMutations(FuzzTarget target, const std::vector<std::string>& seeds,
                         const FuzzReplayOptions& options = {});

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_TESTS_FUZZ_REPLAY_H_
