// The switchboard: registers every plugin that ships with hublink. Adding a built-in plugin adds
// one line to builtin.cc and one dep to its BUILD target; nothing else in the core changes.
#ifndef HUBLINK_PLUGINS_BUILTIN_H_
#define HUBLINK_PLUGINS_BUILTIN_H_

#include "plugins/registry.h"

namespace hublink {

void RegisterBuiltinPlugins(Registry::Builder& builder);

// A registry of the built-in plugins alone, built once per process on first use and never
// destroyed (so that clients may use it until exit). Programs with plugins of their own build
// their own registry with RegisterBuiltinPlugins and theirs.
const Registry& BuiltinRegistry();

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_BUILTIN_H_
