#include "tests/fuzz_replay.h"

#include <random>

namespace hublink {
namespace testing {

void ReplayFuzzMutations(FuzzTarget target, const std::vector<std::string>& seeds,
                         const FuzzReplayOptions& options) {
  std::mt19937 rng(options.rng_seed);
  for (int i = 0; i < options.rounds; ++i) {
    std::string input = seeds[i % seeds.size()];
    int edits = options.min_edits + rng() % 4;
    for (int m = 0; m < edits && !input.empty(); ++m) {
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
      if (options.refill_empty && input.empty()) input = "x";
    }
    std::string framed = options.prefix + std::string(1, static_cast<char>(rng())) + input;
    target(reinterpret_cast<const uint8_t*>(framed.data()), framed.size());
  }
}

}  // namespace testing
}  // namespace hublink
