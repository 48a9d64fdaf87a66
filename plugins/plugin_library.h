// Plugins from shared objects: `plugin_libraries` in a pipeline, `--plugin=PATH` on the command
// line.
//
// Design. A Registry is immutable once built (registry.h), so libraries cannot be added to one a
// program already holds. Instead the program builds its registry after it knows the libraries:
//
//   1. ReadPluginLibraries(pipeline_file) reads only the file's plugin_libraries. It tolerates
//      typed_config types nobody has registered yet: they are the libraries' own config messages,
//      whose descriptors exist only once the library is loaded.
//   2. BuildRegistryWithLibraries(RegisterBuiltinPlugins, libraries) registers the program's
//      compiled-in plugins, then loads each library (dlopen RTLD_NOW | RTLD_LOCAL, once per process
//      per path; a loaded library is never unloaded, since its factories' code must outlive every
//      registry) and lets its entry point register into the same builder.
//   3. The full parse and ResolvedPipeline::Resolve then see the library's plugins and config types
//      like built-in ones (a library's generated .pb.cc registers its descriptors with protobuf's
//      generated pool when it is loaded).
//
//   absl::StatusOr<std::vector<hublink::PluginLibrary>> libraries =
//       hublink::ReadPluginLibraries(path);
//   if (!libraries.ok()) return Fail(libraries.status());
//   absl::StatusOr<hublink::Registry> registry =
//       hublink::BuildRegistryWithLibraries(hublink::RegisterBuiltinPlugins, *libraries);
//   if (!registry.ok()) return Fail(registry.status());
//   auto pipeline = hublink::LoadPipelineFile(path, *registry);
//
// A library is a shared object that exports the entry point of plugins/plugin_abi.h and leaves
// hublink, Abseil and protobuf to the host: the host program depends on //plugins:plugin_host,
// which links all of them and exports their symbols, and the library is linked without a copy of
// any (docs/plugin-authoring.md, "Ship your plugin as a shared object"). Two copies of a generated
// .pb.cc in one process abort at load time, so this is not optional. A program that is no plugin
// host refuses a library with the loader's "undefined symbol" error and a hint.
#ifndef HUBLINK_PLUGINS_PLUGIN_LIBRARY_H_
#define HUBLINK_PLUGINS_PLUGIN_LIBRARY_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "plugins/pipeline.pb.h"
#include "plugins/plugin_abi.h"
#include "plugins/registry.h"

namespace hublink {

// A library from a --plugin flag: `path`, with the default entry point.
PluginLibrary PluginLibraryFromPath(const std::string& path);

// Loads `library` (at most once per process for one file) and lets its entry point register into
// `builder`. Errors name the file: kNotFound for a missing file or symbol, kInvalidArgument for a
// file dlopen refuses (its dlerror() text) or a library built against an incompatible hublink (both
// sides' versions). A path without '/' is searched like dlopen(3) does (LD_LIBRARY_PATH, ...).
absl::Status RegisterPluginLibrary(const PluginLibrary& library, Registry::Builder& builder);

// `register_compiled_in` (may be empty), then every library in order, into one registry. A library
// named twice (same file) is registered once. A plugin name or config type that a library registers
// a second time fails with kAlreadyExists naming the library, the plugin, and who registered it
// first.
absl::StatusOr<Registry> BuildRegistryWithLibraries(
    const std::function<void(Registry::Builder&)>& register_compiled_in,
    const std::vector<PluginLibrary>& libraries);

// The plugin_libraries of a pipeline file (text, or JSON if ".json"), without the rest of it being
// valid yet: the full parse (ReadPipelineFile) reports any other error with its position. An
// unreadable file is an error here already.
absl::StatusOr<std::vector<PluginLibrary>> ReadPluginLibraries(const std::string& pipeline_path);

// The serialized FileDescriptorSets (with comments) that the libraries loaded so far export with
// HUBLINK_PLUGIN_CONFIG_DESCRIPTORS, in load order; for `hublink plugins --describe`.
std::vector<std::string> LoadedConfigDescriptorSets();

// The ABI this hublink was built with, and the one-line form used in mismatch errors:
// "hublink 0.9.0 (plugin ABI 1; gcc 12.2.0; libstdc++ cxx11-abi; Abseil 20220623; protobuf
// 3021012)".
HublinkPluginAbi HostPluginAbi();
std::string DescribePluginAbi(const HublinkPluginAbi& abi);

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_PLUGIN_LIBRARY_H_
