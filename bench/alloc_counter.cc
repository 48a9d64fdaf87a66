#include "bench/alloc_counter.h"

#include <atomic>
#include <cstddef>

extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t count, size_t size);
void* __libc_realloc(void* ptr, size_t size);
}

namespace hublink {
namespace bench {
namespace {

// Relaxed: the counts are read after the threads that make them were
// synchronised with (a completion, a join), and a lost ordering would only blur
// a count, never corrupt memory.
std::atomic<uint64_t> alloc_calls{0};
std::atomic<uint64_t> alloc_bytes{0};

inline void Count(size_t size) {
  alloc_calls.fetch_add(1, std::memory_order_relaxed);
  alloc_bytes.fetch_add(size, std::memory_order_relaxed);
}

}  // namespace

AllocSnapshot CurrentAllocs() {
  AllocSnapshot snapshot;
  snapshot.calls = alloc_calls.load(std::memory_order_acquire);
  snapshot.bytes = alloc_bytes.load(std::memory_order_acquire);
  return snapshot;
}

}  // namespace bench
}  // namespace hublink

// The executable's definitions take precedence over libc's for every shared
// library too (Paho, libstdc++'s operator new), so one counter sees both
// clients the same way.
extern "C" {
void* malloc(size_t size) {
  hublink::bench::Count(size);
  return __libc_malloc(size);
}
void* calloc(size_t count, size_t size) {
  hublink::bench::Count(count * size);
  return __libc_calloc(count, size);
}
void* realloc(void* ptr, size_t size) {
  hublink::bench::Count(size);
  return __libc_realloc(ptr, size);
}
}
