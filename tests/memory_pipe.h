// Two Transports joined back to back in memory, on one EventLoop: what one writes, the other reads.
// For unit tests of wrapping transports (TLS, WebSocket) with no sockets at all. Delivery is
// deferred through the loop, as the Transport contract requires, and `max_chunk` splits deliveries
// to exercise reassembly.
#ifndef HUBLINK_TESTS_MEMORY_PIPE_H_
#define HUBLINK_TESTS_MEMORY_PIPE_H_

#include <cstddef>
#include <memory>

#include "plugins/event_loop.h"
#include "plugins/transport.h"

namespace hublink {
namespace testing {

struct MemoryPipe {
  std::unique_ptr<Transport> client;
  std::unique_ptr<Transport> server;
};

// Both ends report OnOpen() once both were opened. Close() on one end delivers OnClosed(OK) to
// both. `max_chunk` (0 = unlimited) caps the bytes per OnData() call on the receiving side.
MemoryPipe MakeMemoryPipe(EventLoop& loop, size_t max_chunk = 0);

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_TESTS_MEMORY_PIPE_H_
