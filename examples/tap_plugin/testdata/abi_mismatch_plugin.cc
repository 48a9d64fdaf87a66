// A plugin library "built against another hublink release": BUILD compiles it with
// HUBLINK_PLUGIN_ABI_VERSION=99 and HUBLINK_VERSION_STRING="0.1.0", so its entry point describes
// that ABI, refuses to register, and the host must report both sides' versions.
#include "plugins/plugin_abi.h"

HUBLINK_DEFINE_PLUGIN_ENTRY(builder) {
  // Never reached: the ABI check in the entry point fails first.
  (void)builder;
}
