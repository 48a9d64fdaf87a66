#include "plugins/plugin_library.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/empty.pb.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/type.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver.h"
#include "google/protobuf/util/type_resolver_util.h"
#include "plugins/read_file.h"
#include "plugins/status_macros.h"

namespace hublink {
namespace {

namespace pb = ::google::protobuf;

using EntryPoint = int (*)(const HublinkPluginAbi* host, HublinkPluginAbi* plugin, void* builder);

// Every library this process has loaded, by canonical path. Handles are never closed: factories
// (and the vtables and descriptors they point into) live in the library.
struct LoadedLibraries {
  std::mutex mu;
  std::map<std::string, void*> handles;
  std::vector<std::string> descriptor_sets;  // from HublinkPluginConfigDescriptors, if exported
};
LoadedLibraries& Loaded() {
  static LoadedLibraries* loaded = new LoadedLibraries();
  return *loaded;
}

// realpath() when the file exists, so "./x.so" and "x.so" are one library; the path as given
// otherwise (dlopen searches a bare name).
std::string CanonicalPath(const std::string& path) {
  char buffer[PATH_MAX];
  if (path.find('/') != std::string::npos && realpath(path.c_str(), buffer) != nullptr) {
    return buffer;
  }
  return path;
}

absl::StatusOr<void*> LoadOnce(const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError("plugin_libraries: path is missing; name a .so file");
  }
  if (path.find('/') != std::string::npos) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
      int error = errno;
      if (error == ENOENT) {
        return absl::NotFoundError(absl::StrCat(
            "plugin library ", path, ": no such file; check --plugin or plugin_libraries.path"));
      }
      return absl::ErrnoToStatus(error, absl::StrCat("plugin library ", path));
    }
  }
  std::string key = CanonicalPath(path);
  LoadedLibraries& loaded = Loaded();
  std::lock_guard<std::mutex> lock(loaded.mu);
  auto it = loaded.handles.find(key);
  if (it != loaded.handles.end()) return it->second;
  dlerror();  // clear a stale error
  void* handle = dlopen(key.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    return absl::InvalidArgumentError(absl::StrCat(
        "plugin library ", path, ": cannot load: ", error != nullptr ? error : "unknown error",
        absl::StrContains(error != nullptr ? error : "", "undefined symbol")
            ? " (the program must export hublink's, Abseil's and protobuf's symbols to plugin "
              "libraries: add //plugins:plugin_host to its deps)"
            : ""));
  }
  loaded.handles.emplace(key, handle);
  using Descriptors = const unsigned char* (*)(size_t*);
  if (void* symbol = dlsym(handle, "HublinkPluginConfigDescriptors"); symbol != nullptr) {
    size_t size = 0;
    const unsigned char* data = reinterpret_cast<Descriptors>(symbol)(&size);
    if (data != nullptr) {
      loaded.descriptor_sets.emplace_back(reinterpret_cast<const char*>(data), size);
    }
  }
  return handle;
}

std::string SymbolOf(const PluginLibrary& library) {
  return library.register_symbol().empty() ? HUBLINK_PLUGIN_DEFAULT_SYMBOL
                                           : library.register_symbol();
}

absl::StatusOr<EntryPoint> FindEntry(const PluginLibrary& library) {
  HUBLINK_ASSIGN_OR_RETURN(void* handle, LoadOnce(library.path()));
  std::string symbol = SymbolOf(library);
  dlerror();
  void* entry = dlsym(handle, symbol.c_str());
  if (entry == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "plugin library ", library.path(), ": no entry point \"", symbol,
        "\"; a plugin library defines it with HUBLINK_DEFINE_PLUGIN_ENTRY (plugins/plugin_abi.h)",
        library.register_symbol().empty()
            ? ""
            : ", or set plugin_libraries.register_symbol to its name"));
  }
  return reinterpret_cast<EntryPoint>(entry);
}

std::string Or(const char* s) { return s != nullptr ? s : "?"; }

// The origin of each plugin registered so far, for duplicate errors.
struct Origins {
  std::map<std::pair<std::string, std::string>, std::string> by_name;  // (family, name)
  std::map<std::string, std::string> by_type;                          // config full name
};

absl::Status CheckAndRecord(const Registry& registry, const std::string& origin,
                            const std::string& library_path, Origins& origins) {
  for (const Registry::PluginInfo& plugin : registry.Plugins()) {
    auto name_key = std::make_pair(plugin.family, plugin.name);
    auto clash = origins.by_name.find(name_key);
    if (clash != origins.by_name.end()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "plugin library ", library_path, ": ", plugin.family, " \"", plugin.name,
          "\" is already registered by ", clash->second, "; a name can be registered once"));
    }
    std::string type = plugin.config_type != nullptr ? plugin.config_type->full_name() : "";
    auto type_clash = origins.by_type.find(type);
    if (!type.empty() && type_clash != origins.by_type.end()) {
      return absl::AlreadyExistsError(
          absl::StrCat("plugin library ", library_path, ": ", plugin.family, " \"", plugin.name,
                       "\" uses config type ", type, ", already used by ", type_clash->second));
    }
  }
  for (const Registry::PluginInfo& plugin : registry.Plugins()) {
    origins.by_name[{plugin.family, plugin.name}] =
        absl::StrCat(origin, " (", plugin.family, " \"", plugin.name, "\")");
    if (plugin.config_type != nullptr) {
      origins.by_type[plugin.config_type->full_name()] =
          absl::StrCat(origin, " (", plugin.family, " \"", plugin.name, "\")");
    }
  }
  return absl::OkStatus();
}

// For the text pre-pass: a type no one has registered yet parses as an empty message whose fields
// are skipped.
class LenientFinder : public pb::TextFormat::Finder {
 public:
  const pb::Descriptor* FindAnyType(const pb::Message& message, const std::string& prefix,
                                    const std::string& name) const override {
    const pb::Descriptor* found = pb::TextFormat::Finder::FindAnyType(message, prefix, name);
    return found != nullptr ? found : pb::Empty::descriptor();
  }
};

// For the JSON pre-pass: the same, as a TypeResolver.
class LenientTypeResolver : public pb::util::TypeResolver {
 public:
  LenientTypeResolver()
      : inner_(pb::util::NewTypeResolverForDescriptorPool("type.googleapis.com",
                                                          pb::DescriptorPool::generated_pool())) {}
  pb::util::Status ResolveMessageType(const std::string& type_url, pb::Type* type) override {
    if (inner_->ResolveMessageType(type_url, type).ok()) return pb::util::Status();
    type->Clear();
    type->set_name(type_url.substr(type_url.rfind('/') + 1));
    return pb::util::Status();
  }
  pb::util::Status ResolveEnumType(const std::string& type_url, pb::Enum* enum_type) override {
    return inner_->ResolveEnumType(type_url, enum_type);
  }

 private:
  std::unique_ptr<pb::util::TypeResolver> inner_;
};

}  // namespace

PluginLibrary PluginLibraryFromPath(const std::string& path) {
  PluginLibrary library;
  library.set_path(path);
  return library;
}

HublinkPluginAbi HostPluginAbi() { return HublinkThisPluginAbi(); }

std::vector<std::string> LoadedConfigDescriptorSets() {
  LoadedLibraries& loaded = Loaded();
  std::lock_guard<std::mutex> lock(loaded.mu);
  return loaded.descriptor_sets;
}

std::string DescribePluginAbi(const HublinkPluginAbi& abi) {
  if (abi.struct_size < sizeof(HublinkPluginAbi)) {
    return absl::StrCat("an older hublink (plugin ABI ", abi.abi_version, ")");
  }
  return absl::StrCat("hublink ", Or(abi.hublink_version), " (plugin ABI ", abi.abi_version, "; ",
                      Or(abi.compiler), "; ", Or(abi.stdlib), "; Abseil ", abi.abseil_lts,
                      "; protobuf ", abi.protobuf_version, "; sizeof std::string ",
                      abi.sizeof_string, ", absl::Status ", abi.sizeof_status, ")");
}

absl::Status RegisterPluginLibrary(const PluginLibrary& library, Registry::Builder& builder) {
  HUBLINK_ASSIGN_OR_RETURN(EntryPoint entry, FindEntry(library));
  const HublinkPluginAbi host = HostPluginAbi();
  // First ask without a builder: the library says what it was built against and registers
  // nothing, and the host decides (an old library's own check may be laxer than ours).
  HublinkPluginAbi plugin;
  std::memset(&plugin, 0, sizeof(plugin));
  int result = entry(&host, &plugin, nullptr);
  if (result == kHublinkPluginAbiMismatch || !HublinkPluginAbiCompatible(host, plugin)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plugin library ", library.path(), ": built against ", DescribePluginAbi(plugin),
        ", but this program is ", DescribePluginAbi(host),
        "; rebuild the library against this hublink's headers with the same compiler family, "
        "standard library, Abseil and protobuf"));
  }
  if (result != kHublinkPluginRegistered) {
    return absl::InvalidArgumentError(absl::StrCat("plugin library ", library.path(), ": ",
                                                   SymbolOf(library), " returned ", result));
  }
  result = entry(&host, &plugin, &builder);
  if (result != kHublinkPluginRegistered) {
    return absl::InvalidArgumentError(absl::StrCat("plugin library ", library.path(), ": ",
                                                   SymbolOf(library), " returned ", result));
  }
  return absl::OkStatus();
}

absl::StatusOr<Registry> BuildRegistryWithLibraries(
    const std::function<void(Registry::Builder&)>& register_compiled_in,
    const std::vector<PluginLibrary>& libraries) {
  Registry::Builder builder;
  if (register_compiled_in) register_compiled_in(builder);
  Origins origins;
  {
    Registry::Builder copy = builder;
    HUBLINK_ASSIGN_OR_RETURN(Registry compiled_in, std::move(copy).Build());
    HUBLINK_RETURN_IF_ERROR(CheckAndRecord(compiled_in, "this program", "", origins));
  }
  std::set<std::pair<std::string, std::string>> seen;  // (canonical path, symbol)
  for (const PluginLibrary& library : libraries) {
    if (!seen.insert({CanonicalPath(library.path()), SymbolOf(library)}).second) continue;
    // Into a builder of its own first: its names are checked against everyone else's before it
    // touches the real one, so a clash names the library and the plugin.
    Registry::Builder own;
    HUBLINK_RETURN_IF_ERROR(RegisterPluginLibrary(library, own));
    absl::StatusOr<Registry> registered = std::move(own).Build();
    if (!registered.ok()) {
      return absl::Status(
          registered.status().code(),
          absl::StrCat("plugin library ", library.path(), ": ", registered.status().message()));
    }
    HUBLINK_RETURN_IF_ERROR(CheckAndRecord(
        *registered, absl::StrCat("plugin library ", library.path()), library.path(), origins));
    HUBLINK_RETURN_IF_ERROR(RegisterPluginLibrary(library, builder));
  }
  return std::move(builder).Build();
}

absl::StatusOr<std::vector<PluginLibrary>> ReadPluginLibraries(const std::string& pipeline_path) {
  HUBLINK_ASSIGN_OR_RETURN(std::string contents, ReadFileContents(pipeline_path, "pipeline file"));
  Pipeline pipeline;
  bool parsed = false;
  if (absl::EndsWith(pipeline_path, ".json")) {
    LenientTypeResolver resolver;
    pb::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    std::string binary;
    parsed = pb::util::JsonToBinaryString(
                 &resolver, "type.googleapis.com/" + Pipeline::descriptor()->full_name(), contents,
                 &binary, options)
                 .ok() &&
             pipeline.ParsePartialFromString(binary);
  } else {
    LenientFinder finder;
    pb::TextFormat::Parser parser;
    parser.SetFinder(&finder);
    parser.AllowUnknownField(true);
    parser.AllowUnknownExtension(true);
    parser.AllowPartialMessage(true);
    // Syntax errors are the full parse's to report, with positions; stay quiet here.
    class Quiet : public pb::io::ErrorCollector {
      void AddError(int, pb::io::ColumnNumber, const std::string&) override {}
      void AddWarning(int, pb::io::ColumnNumber, const std::string&) override {}
    } quiet;
    parser.RecordErrorsTo(&quiet);
    parsed = parser.ParseFromString(contents, &pipeline);
  }
  if (!parsed) return std::vector<PluginLibrary>();
  return std::vector<PluginLibrary>(pipeline.plugin_libraries().begin(),
                                    pipeline.plugin_libraries().end());
}

}  // namespace hublink
