// How protobuf and Abseil are linked, and what that means for plugin libraries. Built twice: the
// default build links both statically, --config=shared_deps links Debian's shared libraries
// (tools/test.sh runs these tests in both). Two binaries: link_mode_test is an ordinary program,
// plugin_host_test depends on //plugins:plugin_host (HUBLINK_PLUGIN_HOST).
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/plugin_library.h"
#include "plugins/registry.h"

namespace hublink {
namespace {

constexpr char kTapPlugin[] = "examples/tap_plugin/tap_plugin.so";

// Whether a file whose name starts with `prefix` is mapped into this process.
bool Mapped(const std::string& prefix) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.rfind('/');
    if (slash != std::string::npos && absl::StartsWith(line.substr(slash + 1), prefix)) return true;
  }
  return false;
}

#ifdef HUBLINK_SHARED_DEPS
constexpr bool kShared = true;
#else
constexpr bool kShared = false;
#endif

#ifdef HUBLINK_PLUGIN_HOST
constexpr bool kPluginHost = true;
#else
constexpr bool kPluginHost = false;
#endif

TEST(LinkModeTest, ProtobufAndAbseilAreLinkedAsTheBuildSays) {
  EXPECT_EQ(Mapped("libprotobuf.so"), kShared);
  EXPECT_EQ(Mapped("libabsl_"), kShared);
}

TEST(LinkModeTest, OnlyAPluginHostLoadsAPluginLibrary) {
  absl::StatusOr<Registry> registry =
      BuildRegistryWithLibraries(nullptr, {PluginLibraryFromPath(kTapPlugin)});
  if (kPluginHost) {
    ASSERT_TRUE(registry.ok()) << registry.status();
    EXPECT_TRUE(registry->FindTransport("tap", "type.googleapis.com/acme.tap.TapConfig").ok());
  } else {
    // The library leaves hublink, Abseil and protobuf to the program, which does not export them.
    EXPECT_EQ(registry.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(registry.status().message(),
                                 absl::StrCat("plugin library ", kTapPlugin, ": cannot load: ")))
        << registry.status();
    EXPECT_TRUE(absl::StrContains(registry.status().message(), "undefined symbol"))
        << registry.status();
    EXPECT_TRUE(absl::EndsWith(registry.status().message(),
                               "(the program must export hublink's, Abseil's and protobuf's "
                               "symbols to plugin libraries: add //plugins:plugin_host to its "
                               "deps)"))
        << registry.status();
  }
}

}  // namespace
}  // namespace hublink
