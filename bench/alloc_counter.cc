#include "bench/alloc_counter.h"

#include <atomic>
#include <cstddef>

// Sanitizers bring their own malloc, which must not be replaced: counting is off there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HUBLINK_BENCH_COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HUBLINK_BENCH_COUNT_ALLOCS 0
#endif
#endif
#ifndef HUBLINK_BENCH_COUNT_ALLOCS
#define HUBLINK_BENCH_COUNT_ALLOCS 1
#endif

namespace hublink {
namespace bench {
namespace {

// Relaxed: the counts are read after the threads that make them were synchronised with (a
// completion, a join), and a lost ordering would only blur a count, never corrupt memory.
std::atomic<uint64_t> alloc_calls{0};
std::atomic<uint64_t> alloc_bytes{0};

}  // namespace

inline void CountAlloc(size_t size) {
  alloc_calls.fetch_add(1, std::memory_order_relaxed);
  alloc_bytes.fetch_add(size, std::memory_order_relaxed);
}

AllocSnapshot CurrentAllocs() {
  AllocSnapshot snapshot;
  snapshot.calls = alloc_calls.load(std::memory_order_acquire);
  snapshot.bytes = alloc_bytes.load(std::memory_order_acquire);
  return snapshot;
}

bool AllocCountingEnabled() { return HUBLINK_BENCH_COUNT_ALLOCS != 0; }

}  // namespace bench
}  // namespace hublink

#if HUBLINK_BENCH_COUNT_ALLOCS
extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t count, size_t size);
void* __libc_realloc(void* ptr, size_t size);

// The executable's definitions take precedence over libc's for every shared library too (Paho,
// libstdc++'s operator new), so one counter sees both clients the same way.
void* malloc(size_t size) {
  hublink::bench::CountAlloc(size);
  return __libc_malloc(size);
}
void* calloc(size_t count, size_t size) {
  hublink::bench::CountAlloc(count * size);
  return __libc_calloc(count, size);
}
void* realloc(void* ptr, size_t size) {
  hublink::bench::CountAlloc(size);
  return __libc_realloc(ptr, size);
}
}
#endif  // HUBLINK_BENCH_COUNT_ALLOCS
