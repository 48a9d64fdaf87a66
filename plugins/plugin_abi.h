// The contract between hublink and a plugin shared object: the one header a plugin library's
// entry point needs (next to plugins/registry.h for the factories it registers).
//
// A plugin library exports one C function; HUBLINK_DEFINE_PLUGIN_ENTRY writes it:
//
//   #include "plugins/plugin_abi.h"
//   #include "plugins/registry.h"  // the factory interfaces; plugin_abi.h includes it too
//
//   HUBLINK_DEFINE_PLUGIN_ENTRY(builder) {  // builder: hublink::Registry::Builder&
//     builder.AddTransport(std::make_unique<MyTransportFactory>());
//   }
//
// The host (plugins/plugin_library.h) dlopen()s the library and calls
//
//   extern "C" int HublinkRegisterPlugins(const HublinkPluginAbi* host, HublinkPluginAbi* plugin,
//                                         void* builder);
//
// The library first writes the ABI it was compiled against into `plugin`, then compares it with
// `host` (HublinkPluginAbiCompatible, compiled into the library). Only when they match does it cast
// `builder` back to a hublink::Registry::Builder and register its factories; otherwise it returns
// kHublinkPluginAbiMismatch without touching the builder, and the host reports both sides'
// versions. The host calls it twice: with a null `builder` to learn the library's ABI and judge it
// by its own rules (an older library's check may be laxer), then with the builder.
//
// A C signature with an opaque pointer keeps the symbol name free of C++ mangling, so a library
// from another compiler or another hublink release is still found and asked, instead of crashing
// on a builder whose layout it does not know.
//
// Why the standard library is in the descriptor: factories cross the boundary as C++ objects
// (std::unique_ptr, std::string, absl::Status, google::protobuf::Message), so the library must use
// the same C++ standard library, Abseil and protobuf as the host. The sizeof fields catch the
// cheapest-to-detect layout differences (e.g. the _GLIBCXX_USE_CXX11_ABI string); they are a
// tripwire, not a proof.
#ifndef HUBLINK_PLUGINS_PLUGIN_ABI_H_
#define HUBLINK_PLUGINS_PLUGIN_ABI_H_

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
#include <string>

#include "absl/base/config.h"
#include "absl/status/status.h"
#include "google/protobuf/stubs/common.h"
#include "plugins/registry.h"
#endif

// Bumped on every hublink release; informational (the ABI version decides compatibility).
// Overridable only so a test can build a library "from another release".
#ifndef HUBLINK_VERSION_STRING
#define HUBLINK_VERSION_STRING "0.9.0"
#endif
// Bumped whenever a class a plugin implements or calls (plugins/*.h) changes layout or virtual
// functions: a library built against another value is refused.
#ifndef HUBLINK_PLUGIN_ABI_VERSION
#define HUBLINK_PLUGIN_ABI_VERSION 4
#endif

#define HUBLINK_PLUGIN_DEFAULT_SYMBOL "HublinkRegisterPlugins"

// Return values of the entry point.
enum {
  kHublinkPluginRegistered = 0,
  kHublinkPluginAbiMismatch = 1,
};

// Frozen layout: fields are only ever appended, and struct_size says how many the writer knew.
typedef struct HublinkPluginAbi {
  uint32_t struct_size;         // sizeof(HublinkPluginAbi) of the side that filled it
  uint32_t abi_version;         // HUBLINK_PLUGIN_ABI_VERSION
  const char* hublink_version;  // HUBLINK_VERSION_STRING
  const char* compiler;         // "gcc 12.2.0", "clang 16.0.6"
  const char* stdlib;           // "libstdc++ 20230528 cxx11-abi", "libc++ 160000"
  long abseil_lts;              // ABSL_LTS_RELEASE_VERSION, 0 if none
  int32_t protobuf_version;     // GOOGLE_PROTOBUF_VERSION
  uint32_t sizeof_string;       // sizeof(std::string)
  uint32_t sizeof_status;       // sizeof(absl::Status)
  uint32_t sizeof_pointer;
} HublinkPluginAbi;

#ifdef __cplusplus

#define HUBLINK_PLUGIN_ABI_STR2(x) #x
#define HUBLINK_PLUGIN_ABI_STR(x) HUBLINK_PLUGIN_ABI_STR2(x)

#if defined(__clang__)
#define HUBLINK_PLUGIN_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define HUBLINK_PLUGIN_COMPILER "gcc " __VERSION__
#else
#define HUBLINK_PLUGIN_COMPILER "unknown compiler"
#endif

// The library identity, not its release date alone: libstdc++'s dual string ABI matters too.
#if defined(_LIBCPP_VERSION)
#define HUBLINK_PLUGIN_STDLIB "libc++ " HUBLINK_PLUGIN_ABI_STR(_LIBCPP_VERSION)
#elif defined(__GLIBCXX__)
#if defined(_GLIBCXX_USE_CXX11_ABI) && _GLIBCXX_USE_CXX11_ABI
#define HUBLINK_PLUGIN_STDLIB "libstdc++ cxx11-abi"
#else
#define HUBLINK_PLUGIN_STDLIB "libstdc++ old-abi"
#endif
#else
#define HUBLINK_PLUGIN_STDLIB "unknown standard library"
#endif

#ifdef ABSL_LTS_RELEASE_VERSION
#define HUBLINK_PLUGIN_ABSL_LTS ABSL_LTS_RELEASE_VERSION
#else
#define HUBLINK_PLUGIN_ABSL_LTS 0
#endif

// The descriptor of the code that includes this header, as compiled. `static`, not just inline:
// an inline function has one definition per process, and the host exports its own (-rdynamic), so
// a library's call would bind to the host's copy and report the host's ABI as its own.
static inline HublinkPluginAbi HublinkThisPluginAbi() {
  HublinkPluginAbi abi;
  memset(&abi, 0, sizeof(abi));
  abi.struct_size = sizeof(HublinkPluginAbi);
  abi.abi_version = HUBLINK_PLUGIN_ABI_VERSION;
  abi.hublink_version = HUBLINK_VERSION_STRING;
  abi.compiler = HUBLINK_PLUGIN_COMPILER;
  abi.stdlib = HUBLINK_PLUGIN_STDLIB;
  abi.abseil_lts = HUBLINK_PLUGIN_ABSL_LTS;
  abi.protobuf_version = GOOGLE_PROTOBUF_VERSION;
  abi.sizeof_string = sizeof(std::string);
  abi.sizeof_status = sizeof(absl::Status);
  abi.sizeof_pointer = sizeof(void*);
  return abi;
}

// True when a library compiled as `plugin` may register into a host compiled as `host`. The
// compiler version may differ (the Itanium C++ ABI is stable across GCC and Clang releases); the
// standard library, Abseil, protobuf and hublink's plugin ABI may not.
static inline bool HublinkPluginAbiCompatible(const HublinkPluginAbi& host,
                                              const HublinkPluginAbi& plugin) {
  // A descriptor shorter than ours comes from an older layout: its later fields are unknown.
  if (host.struct_size < sizeof(HublinkPluginAbi) ||
      plugin.struct_size < sizeof(HublinkPluginAbi)) {
    return false;
  }
  return host.abi_version == plugin.abi_version && strcmp(host.stdlib, plugin.stdlib) == 0 &&
         host.abseil_lts == plugin.abseil_lts && host.protobuf_version == plugin.protobuf_version &&
         host.sizeof_string == plugin.sizeof_string && host.sizeof_status == plugin.sizeof_status &&
         host.sizeof_pointer == plugin.sizeof_pointer;
}

// Defines the entry point under the default symbol. The body receives `builder_name`, a
// hublink::Registry::Builder&, and runs only when the ABIs match.
#define HUBLINK_DEFINE_PLUGIN_ENTRY(builder_name) \
  HUBLINK_DEFINE_PLUGIN_ENTRY_NAMED(HublinkRegisterPlugins, builder_name)

// The same under another symbol, for a library that offers several sets (select one with
// `plugin_libraries { register_symbol: "..." }`).
#define HUBLINK_DEFINE_PLUGIN_ENTRY_NAMED(symbol, builder_name)                                 \
  static void symbol##_Register(::hublink::Registry::Builder& builder_name);                    \
  extern "C" __attribute__((visibility("default"))) int symbol(                                 \
      const HublinkPluginAbi* host, HublinkPluginAbi* plugin, void* builder) {                  \
    HublinkPluginAbi mine = HublinkThisPluginAbi();                                             \
    /* Never write past the host's (possibly older, shorter) struct. */                         \
    memcpy(plugin, &mine, host->struct_size < sizeof(mine) ? host->struct_size : sizeof(mine)); \
    if (!HublinkPluginAbiCompatible(*host, mine)) return kHublinkPluginAbiMismatch;             \
    if (builder == nullptr) return kHublinkPluginRegistered; /* the host only asked the ABI */  \
    symbol##_Register(*static_cast<::hublink::Registry::Builder*>(builder));                    \
    return kHublinkPluginRegistered;                                                            \
  }                                                                                             \
  static void symbol##_Register(::hublink::Registry::Builder& builder_name)

// Optional: the library's config protos as a serialized FileDescriptorSet with source info
// (protoc --include_source_info --include_imports --descriptor_set_out=...), so that
// `hublink plugins --describe=NAME` can print their comments. `data` and `size` name a byte array
// and its length, e.g. from `xxd -i` (examples/tap_plugin/BUILD: tap_descriptors_gen).
#define HUBLINK_PLUGIN_CONFIG_DESCRIPTORS(data, size)                    \
  extern "C" __attribute__((visibility("default"))) const unsigned char* \
  HublinkPluginConfigDescriptors(size_t* out_size) {                     \
    *out_size = (size);                                                  \
    return (data);                                                       \
  }

#endif  // __cplusplus

#endif  // HUBLINK_PLUGINS_PLUGIN_ABI_H_
