// What --config=static_deps changes, checked in whichever build this test runs in: tools/test.sh
// runs it in the default build (as part of //...) and once more with --config=static_deps.
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/plugin_library.h"

namespace hublink {
namespace {

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

#ifdef HUBLINK_STATIC_DEPS
constexpr bool kStatic = true;
#else
constexpr bool kStatic = false;
#endif

TEST(StaticDepsTest, ProtobufAndAbseilAreLinkedAsTheBuildSays) {
  EXPECT_EQ(Mapped("libprotobuf.so"), !kStatic);
  EXPECT_EQ(Mapped("libabsl_"), !kStatic);
}

TEST(StaticDepsTest, OnlyAStaticProgramRefusesPluginLibraries) {
  auto result = BuildRegistryWithLibraries(nullptr, {PluginLibraryFromPath("/nonexistent/x.so")});
  if (kStatic) {
    EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(result.status().message(),
              "plugin library /nonexistent/x.so: this program links protobuf and Abseil "
              "statically (--config=static_deps), and a plugin library takes them from the "
              "program; rebuild the program without --config=static_deps to load plugin "
              "libraries");
  } else {
    // The usual path: the file is looked for.
    EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound) << result.status();
  }
}

}  // namespace
}  // namespace hublink
