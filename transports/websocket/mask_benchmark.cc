// Masking throughput against memcpy over the same buffer sizes (bazel run -c opt
// ...:mask_benchmark). Masking is the only per-byte work on the WebSocket send path; memcpy is the
// floor any copy pays.
#include <cstring>
#include <string>

#include "benchmark/benchmark.h"
#include "transports/websocket/frame.h"

namespace hublink {
namespace websocket {
namespace {

void BM_Mask(benchmark::State& state) {
  std::string buffer(static_cast<size_t>(state.range(0)), 'x');
  const uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
  for (auto _ : state) {
    Mask(&buffer[0], buffer.size(), key);
    benchmark::DoNotOptimize(buffer.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

// The byte-at-a-time loop the Tencent SDK (and many small clients) use, for scale.
void BM_MaskBytewise(benchmark::State& state) {
  std::string buffer(static_cast<size_t>(state.range(0)), 'x');
  const uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
  for (auto _ : state) {
    char* p = &buffer[0];
    for (size_t i = 0; i < buffer.size(); ++i) {
      p[i] = static_cast<char>(p[i] ^ key[i & 3]);
      benchmark::ClobberMemory();  // keeps the compiler from vectorizing what is meant as a scalar
                                   // loop
    }
    benchmark::DoNotOptimize(buffer.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_Memcpy(benchmark::State& state) {
  std::string source(static_cast<size_t>(state.range(0)), 'x');
  std::string target(source.size(), 'y');
  for (auto _ : state) {
    std::memcpy(&target[0], source.data(), source.size());
    benchmark::DoNotOptimize(target.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_AppendClientFrame(benchmark::State& state) {
  std::string payload(static_cast<size_t>(state.range(0)), 'x');
  std::string frame;
  MaskKeySource keys;
  for (auto _ : state) {
    frame.clear();
    AppendClientFrame(kBinary, payload, keys, &frame);
    benchmark::DoNotOptimize(frame.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

BENCHMARK(BM_Mask)->Arg(64)->Arg(1 << 10)->Arg(16 << 10)->Arg(1 << 20);
BENCHMARK(BM_MaskBytewise)->Arg(64)->Arg(1 << 10)->Arg(16 << 10)->Arg(1 << 20);
BENCHMARK(BM_Memcpy)->Arg(64)->Arg(1 << 10)->Arg(16 << 10)->Arg(1 << 20);
BENCHMARK(BM_AppendClientFrame)->Arg(64)->Arg(1 << 10)->Arg(16 << 10)->Arg(1 << 20);

}  // namespace
}  // namespace websocket
}  // namespace hublink

BENCHMARK_MAIN();
