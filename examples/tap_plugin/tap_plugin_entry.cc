// The tap transport as a shared object: the entry point hublink calls after dlopen(), and nothing
// else. tap_plugin.so = this file + tap_transport.cc + tap.pb.cc + tap_descriptors.cc; hublink's
// own code, Abseil and protobuf come from the program that loads it (BUILD: tap_plugin.so).
#include <cstddef>

#include "examples/tap_plugin/tap_transport.h"
#include "plugins/plugin_abi.h"

HUBLINK_DEFINE_PLUGIN_ENTRY(builder) { acme::RegisterTapTransport(builder); }

// tap.proto with its comments, for `hublink plugins --describe=tap` (BUILD: tap_descriptors_gen).
extern const unsigned char kTapDescriptorSet[];
extern const size_t kTapDescriptorSetSize;
HUBLINK_PLUGIN_CONFIG_DESCRIPTORS(kTapDescriptorSet, kTapDescriptorSetSize)
