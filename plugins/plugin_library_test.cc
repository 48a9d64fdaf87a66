// The loader's pre-pass and its errors that need no shared object; loading real libraries is
// examples/tap_plugin:tap_plugin_so_test (the prebuilt hublink with tap_plugin.so and bad ones).
#include "plugins/plugin_library.h"

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/fake_plugins.h"

namespace hublink {
namespace {

std::string Write(const std::string& name, const std::string& contents) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << contents;
  return path;
}

// The libraries' own config types are unknown before they are loaded: the pre-pass reads past
// them.
TEST(ReadPluginLibraries, TextWithConfigTypesNobodyKnowsYet) {
  std::string path = Write("p.textproto", R"pb(
    endpoint { host: "h" port: 1 }
    transports { name: "tcp" }
    transports {
      name: "tap"
      typed_config {
        [type.googleapis.com/acme.tap.TapConfig] {
          label: "x"
          nested { deeper: 1 }
        }
      }
    }
    plugin_libraries { path: "/opt/a.so" }
    plugin_libraries { path: "b.so" register_symbol: "RegisterB" })pb");
  auto libraries = ReadPluginLibraries(path);
  ASSERT_TRUE(libraries.ok()) << libraries.status();
  ASSERT_EQ(libraries->size(), 2u);
  EXPECT_EQ((*libraries)[0].path(), "/opt/a.so");
  EXPECT_EQ((*libraries)[0].register_symbol(), "");
  EXPECT_EQ((*libraries)[1].path(), "b.so");
  EXPECT_EQ((*libraries)[1].register_symbol(), "RegisterB");
}

TEST(ReadPluginLibraries, JsonWithConfigTypesNobodyKnowsYet) {
  std::string path = Write("p.json", R"({
    "endpoint": {"host": "h", "port": 1},
    "transports": [{"name": "tap", "typedConfig": {"@type": "type.googleapis.com/acme.tap.TapConfig",
                                                   "label": "x", "nested": {"deeper": 1}}}],
    "pluginLibraries": [{"path": "/opt/a.so", "registerSymbol": "RegisterA"}]
  })");
  auto libraries = ReadPluginLibraries(path);
  ASSERT_TRUE(libraries.ok()) << libraries.status();
  ASSERT_EQ(libraries->size(), 1u);
  EXPECT_EQ((*libraries)[0].path(), "/opt/a.so");
  EXPECT_EQ((*libraries)[0].register_symbol(), "RegisterA");
}

// A file that does not parse has no libraries to offer; the full parse reports the error with its
// position.
TEST(ReadPluginLibraries, SyntaxErrorsAreLeftToTheFullParse) {
  auto libraries = ReadPluginLibraries(Write("broken.textproto", "endpoint { host: \n"));
  ASSERT_TRUE(libraries.ok()) << libraries.status();
  EXPECT_TRUE(libraries->empty());
}

TEST(ReadPluginLibraries, AnUnreadableFileIsAnError) {
  auto libraries = ReadPluginLibraries("/nonexistent/p.textproto");
  EXPECT_EQ(libraries.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(libraries.status().message(), "/nonexistent/p.textproto"));
}

TEST(BuildRegistryWithLibraries, CompiledInOnly) {
  auto registry = BuildRegistryWithLibraries(testing::RegisterFakePlugins, {});
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_FALSE(registry->TransportNames().empty());
}

TEST(BuildRegistryWithLibraries, ErrorsNameTheFile) {
  auto missing = BuildRegistryWithLibraries(nullptr, {PluginLibraryFromPath("/nonexistent/x.so")});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "plugin library /nonexistent/x.so: no such file; check --plugin or "
            "plugin_libraries.path");
  std::string not_elf = Write("not_elf.so", "text\n");
  auto refused = BuildRegistryWithLibraries(nullptr, {PluginLibraryFromPath(not_elf)});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      absl::StartsWith(refused.status().message(), "plugin library " + not_elf + ": cannot load: "))
      << refused.status();
  auto empty = BuildRegistryWithLibraries(nullptr, {PluginLibrary()});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PluginAbi, TheHostDescribesItself) {
  HublinkPluginAbi abi = HostPluginAbi();
  EXPECT_TRUE(HublinkPluginAbiCompatible(abi, abi));
  std::string text = DescribePluginAbi(abi);
  EXPECT_TRUE(absl::StartsWith(text, absl::StrCat("hublink " HUBLINK_VERSION_STRING " (plugin ABI ",
                                                  HUBLINK_PLUGIN_ABI_VERSION, "; ")))
      << text;
  HublinkPluginAbi other = abi;
  other.abi_version = HUBLINK_PLUGIN_ABI_VERSION + 1;
  EXPECT_FALSE(HublinkPluginAbiCompatible(abi, other));
  other = abi;
  other.stdlib = "libc++ 160000";
  EXPECT_FALSE(HublinkPluginAbiCompatible(abi, other));
  other = abi;
  other.struct_size = 8;  // an older, shorter descriptor
  EXPECT_FALSE(HublinkPluginAbiCompatible(abi, other));
}

}  // namespace
}  // namespace hublink
