// Runs the fuzz target over seeded random mutations of valid responses, so the normal build
// exercises it.
#include <cstdint>
#include <iterator>
#include <string>

#include "gtest/gtest.h"
#include "tests/fuzz_replay.h"

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
  hublink::testing::ReplayFuzzMutations(LLVMFuzzerTestOneInput,
                                        {std::begin(seeds), std::end(seeds)});
}

}  // namespace
}  // namespace http
}  // namespace hublink
