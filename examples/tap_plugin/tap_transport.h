// An out-of-tree hublink plugin: a wrapping transport that counts (and optionally previews) the
// bytes going each way and passes them through untouched. It lives outside hublink's tree of
// plugins and touches nothing in the core: applications call RegisterTapTransport(builder) next to
// RegisterBuiltinPlugins(builder).
#ifndef HUBLINK_EXAMPLES_TAP_PLUGIN_TAP_TRANSPORT_H_
#define HUBLINK_EXAMPLES_TAP_PLUGIN_TAP_TRANSPORT_H_

#include <cstdint>

#include "plugins/registry.h"

namespace acme {

// Byte counts of every tap in the process, by direction, for the example to print.
struct TapCounters {
  uint64_t bytes_down = 0;  // written by the layer above
  uint64_t bytes_up = 0;    // read from the layer below
  uint64_t writes = 0;
  uint64_t reads = 0;
};
TapCounters GetTapCounters();

void RegisterTapTransport(hublink::Registry::Builder& builder);

}  // namespace acme

#endif  // HUBLINK_EXAMPLES_TAP_PLUGIN_TAP_TRANSPORT_H_
