// Counts heap allocations made by the whole process (every thread, every
// library: hublink through operator new, Paho C through malloc) by interposing
// malloc/calloc/realloc in the benchmark binary and forwarding to glibc's
// __libc_* entry points (free and the aligned allocators stay glibc's: same
// heap).
#ifndef HUBLINK_BENCH_ALLOC_COUNTER_H_
#define HUBLINK_BENCH_ALLOC_COUNTER_H_

#include <cstdint>

namespace hublink {
namespace bench {

struct AllocSnapshot {
  uint64_t calls = 0;  // malloc + calloc + realloc (realloc counts as one allocation)
  uint64_t bytes = 0;  // bytes requested
};

AllocSnapshot CurrentAllocs();
// False under AddressSanitizer, whose own malloc must not be replaced: counts then stay zero.
bool AllocCountingEnabled();

}  // namespace bench
}  // namespace hublink

#endif  // HUBLINK_BENCH_ALLOC_COUNTER_H_
