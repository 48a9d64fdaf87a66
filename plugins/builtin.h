// The switchboard: registers every plugin that ships with hublink. Adding a built-in plugin adds
// one line to builtin.cc and one dep to its BUILD target; nothing else in the core changes.
#ifndef HUBLINK_PLUGINS_BUILTIN_H_
#define HUBLINK_PLUGINS_BUILTIN_H_

#include "plugins/registry.h"

namespace hublink {

void RegisterBuiltinPlugins(Registry::Builder& builder);

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_BUILTIN_H_
