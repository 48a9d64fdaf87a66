// Test support: watches every block freed through operator delete for a secret, so tests can check
// that a transport wiped the buffers that held it before releasing them.
//
// Linking this library replaces the global operator new/delete of the test binary (plain
// malloc/free plus a scan of each freed block while a watch is active). Under a sanitizer, which
// owns the allocator, nothing is replaced and Available() is false: tests then skip.
//
// A match is key-independent for WebSocket masking: block[i] ^ block[i + 4] is compared with
// secret[i] ^ secret[i + 4], so both the plain secret and any 4-byte-XOR-masked copy of it are
// found.
#ifndef HUBLINK_TRANSPORTS_TCP_FREED_MEMORY_WATCH_H_
#define HUBLINK_TRANSPORTS_TCP_FREED_MEMORY_WATCH_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace hublink {
namespace testing {

// Whether freed blocks can be watched in this build.
bool FreedMemoryWatchAvailable();

// Starts counting freed blocks that hold `secret` (plain or masked). `secret` must be 16..64 bytes
// and not 4-periodic. Call from one thread; other threads may allocate meanwhile.
void StartFreedMemoryWatch(absl::string_view secret);
// Stops watching; returns how many freed blocks held the secret since the start.
int StopFreedMemoryWatch();

// Whether `data` holds `secret`, plain or masked with any 4-byte key at any phase.
bool HoldsSecret(const char* data, size_t size, absl::string_view secret);

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_TCP_FREED_MEMORY_WATCH_H_
