// Runs the fuzz target over seeded random mutations of valid responses, so the normal build
// exercises it.
#include <cstdint>
#include <random>
#include <string>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace hublink {
namespace http {
namespace {

TEST(CodecFuzzerReplay, MutatedResponsesParseTheSameWholeOrSplit) {
  const std::string seeds[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello",
      "HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n"
      "2\r\nde\r\n0\r\nT: 1\r\n\r\n",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 404 Not Found\r\n\r\nbody to close",
  };
  std::mt19937 rng(4242);
  for (int i = 0; i < 20000; ++i) {
    std::string input = seeds[i % 3];
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
}  // namespace http
}  // namespace hublink
