// The prebuilt hublink CLI, which has no tap compiled in, loads tap_plugin.so at run time and
// publishes through tcp > tap to a real mosquitto; libraries that cannot be used are refused with
// errors naming them.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "examples/header_example_test_util.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace hublink {
namespace testing {
namespace {

constexpr char kHublink[] = "tools/hublink";
constexpr char kTap[] = "examples/tap_plugin/tap_plugin.so";
constexpr char kAbiMismatch[] = "examples/tap_plugin/testdata/abi_mismatch_plugin.so";
constexpr char kNoEntry[] = "examples/tap_plugin/testdata/no_entry_plugin.so";
constexpr char kDuplicate[] = "examples/tap_plugin/testdata/duplicate_plugin.so";

// The guide's pipeline (tcp > tap, MQTT) pointed at `port`, plus `extra` lines.
std::string TapPipeline(int port, absl::string_view extra = "") {
  absl::StatusOr<std::string> shipped = ReadFile("examples/tap_plugin/mqtt_pipeline.textproto");
  EXPECT_TRUE(shipped.ok()) << shipped.status();
  return absl::StrCat(
      absl::StrReplaceAll(shipped.value_or(""), {{"port: 1883", absl::StrCat("port: ", port)}}),
      "\n", extra);
}

std::string Write(absl::string_view name, absl::string_view contents) {
  std::string path = absl::StrCat(TempDir(), "/", name);
  EXPECT_TRUE(WriteFile(path, contents).ok());
  return path;
}

std::string Library(absl::string_view path, absl::string_view symbol = "") {
  return absl::StrCat("plugin_libraries { path: \"", path, "\"",
                      symbol.empty() ? "" : absl::StrCat(" register_symbol: \"", symbol, "\""),
                      " }\n");
}

// What a subscriber that connects afterwards gets: the retained message on `topic`.
std::string Retained(int port, const std::string& topic) {
  ExampleRun run = RunExample("mosquitto_sub", {"-h", "127.0.0.1", "-p", absl::StrCat(port), "-t",
                                                topic, "-C", "1", "-W", "10"});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  return run.output;
}

TEST(TapPluginSo, PluginsListsTheTapOnlyWithTheLibrary) {
  ExampleRun without = RunExample(kHublink, {"plugins"});
  ASSERT_EQ(without.exit_code, 0) << without.output;
  EXPECT_FALSE(absl::StrContains(without.output, "acme.tap.TapConfig")) << without.output;

  ExampleRun with = RunExample(kHublink, {"plugins", absl::StrCat("--plugin=", kTap)});
  ASSERT_EQ(with.exit_code, 0) << with.output;
  EXPECT_TRUE(absl::StrContains(with.output, "  tap           acme.tap.TapConfig\n"))
      << with.output;
}

TEST(TapPluginSo, PublishesThroughTheTapFromThePipelinesPluginLibraries) {
  absl::StatusOr<std::unique_ptr<MosquittoBroker>> broker = MosquittoBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  int port = (*broker)->tcp_port();
  std::string pipeline = Write("from_file.textproto", TapPipeline(port, Library(kTap)));
  ExampleRun run = RunExample(kHublink, {"pub", "--pipeline=" + pipeline, "--topic=so/file",
                                         "--message=via plugin_libraries", "--qos=1", "--retain"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "published 1 message to so/file")) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "[mqtt] open")) << run.output;  // the tap's own log
  EXPECT_EQ(Retained(port, "so/file"), "via plugin_libraries\n");
}

TEST(TapPluginSo, PublishesThroughTheTapWithThePluginFlag) {
  absl::StatusOr<std::unique_ptr<MosquittoBroker>> broker = MosquittoBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  int port = (*broker)->tcp_port();
  std::string pipeline = Write("from_flag.textproto", TapPipeline(port));

  // Without the library the tap's config type is unknown, and the error says so.
  ExampleRun refused = RunExample(
      kHublink, {"pub", "--pipeline=" + pipeline, "--topic=so/flag", "--message=x", "--qos=1"});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_TRUE(absl::StrContains(refused.output, "acme.tap.TapConfig")) << refused.output;

  ExampleRun run =
      RunExample(kHublink, {"pub", absl::StrCat("--plugin=", kTap), "--pipeline=" + pipeline,
                            "--topic=so/flag", "--message=via --plugin", "--qos=1", "--retain"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "[mqtt] open")) << run.output;
  EXPECT_EQ(Retained(port, "so/flag"), "via --plugin\n");
}

// The same library from the file and the flag (by another spelling of its path) loads once and
// registers once: no duplicate-name error.
TEST(TapPluginSo, OneLibraryNamedTwiceIsRegisteredOnce) {
  std::string pipeline = Write("twice.textproto", TapPipeline(1883, Library(kTap)));
  ExampleRun run =
      RunExample(kHublink, {"pub", absl::StrCat("--plugin=./", kTap), "--pipeline=" + pipeline,
                            "--topic=t", "--message=m", "--dump_pipeline=-"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "acme.tap.TapConfig")) << run.output;
}

// A JSON pipeline's plugin_libraries are found although the tap's config type is unknown until
// the library is loaded; the dump lists --plugin libraries so that it stands on its own.
TEST(TapPluginSo, JsonPipelinesAndDumpsCarryTheLibraries) {
  std::string json = Write("tap.json", absl::StrCat(R"({
    "endpoint": {"host": "127.0.0.1", "port": 1883},
    "transports": [
      {"name": "tcp"},
      {"name": "tap", "typedConfig": {"@type": "type.googleapis.com/acme.tap.TapConfig",
                                      "label": "json"}}
    ],
    "pluginLibraries": [{"path": ")",
                                                    kTap, R"("}]
  })"));
  ExampleRun run = RunExample(
      kHublink, {"pub", "--pipeline=" + json, "--topic=t", "--message=m", "--dump_pipeline=-"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "label: \"json\"")) << run.output;

  std::string text = Write("no_libraries.textproto", TapPipeline(1883));
  ExampleRun dumped =
      RunExample(kHublink, {"pub", absl::StrCat("--plugin=", kTap), "--pipeline=" + text,
                            "--topic=t", "--message=m", "--dump_pipeline=-"});
  ASSERT_EQ(dumped.exit_code, 0) << dumped.output;
  EXPECT_TRUE(absl::StrContains(dumped.output,
                                absl::StrCat("plugin_libraries {\n  path: \"", kTap, "\"\n}")))
      << dumped.output;
  // The dump stands on its own: check loads the library from it, with no --plugin.
  std::string dump = absl::StrCat(TempDir(), "/dumped.textproto");
  ExampleRun to_file =
      RunExample(kHublink, {"pub", absl::StrCat("--plugin=", kTap), "--pipeline=" + text,
                            "--topic=t", "--message=m", "--dump_pipeline=" + dump});
  ASSERT_EQ(to_file.exit_code, 0) << to_file.output;
  ExampleRun checked = RunExample(kHublink, {"check", dump});
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_EQ(checked.output,
            dump + ": ok: 127.0.0.1:1883 tcp > tap, protocol mqtt, 1 plugin library\n");
}

TEST(TapPluginSo, MqttSampleTakesThePluginFlag) {
  std::string device = Write("device.json", R"({"auth_mode": "KEY", "region": "china",
      "productId": "ABCDEFGHIJ", "deviceName": "dev01",
      "key_deviceinfo": {"deviceSecret": "MDEyMzQ1Njc4OWFiY2RlZg=="}})");
  ExampleRun run =
      RunExample("examples/mqtt_sample",
                 {"--device_info=" + device, absl::StrCat("--plugin=", kTap), "--dump_pipeline=-"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, absl::StrCat("path: \"", kTap, "\""))) << run.output;

  ExampleRun missing = RunExample("examples/mqtt_sample",
                                  {"--device_info=" + device, "--plugin=/nonexistent/tap.so"});
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_TRUE(absl::StrContains(missing.output, "plugin library /nonexistent/tap.so: no such file"))
      << missing.output;
}

// check and describe see the library's plugin like a built-in one: a problem in the tap's config is
// placed at its field.
TEST(TapPluginSo, CheckAndDescribeWithTheLibrary) {
  std::string good = Write("check_good.textproto", TapPipeline(1883, Library(kTap)));
  ExampleRun ok = RunExample(kHublink, {"check", good});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_EQ(ok.output, good + ": ok: 127.0.0.1:1883 tcp > tap, protocol mqtt, 1 plugin library\n");

  std::string bad =
      Write("check_bad.textproto", absl::StrCat("endpoint { host: \"127.0.0.1\" port: 1883 }\n"
                                                "transports { name: \"tcp\" }\n"
                                                "transports {\n"
                                                "  name: \"tap\"\n"
                                                "  typed_config {\n"
                                                "    [type.googleapis.com/acme.tap.TapConfig] {\n"
                                                "      preview_bytes: 5000\n"
                                                "    }\n"
                                                "  }\n"
                                                "}\n"));
  ExampleRun refused = RunExample(kHublink, {"check", absl::StrCat("--plugin=", kTap), bad});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_TRUE(absl::StrContains(
      refused.output,
      bad + ":7:7: transports[1] (\"tap\"): tap: preview_bytes: at most 4096\n1 problem in " + bad))
      << refused.output;

  ExampleRun described =
      RunExample(kHublink, {"plugins", absl::StrCat("--plugin=", kTap), "--describe=tap"});
  EXPECT_EQ(described.exit_code, 0) << described.output;
  EXPECT_TRUE(absl::StartsWith(described.output,
                               "tap: wrapping transport (runs over the transport before it)\n"
                               "config: acme.tap.TapConfig (examples/tap_plugin/tap.proto)\n"))
      << described.output;
  EXPECT_TRUE(absl::StrContains(described.output,
                                "  preview_bytes  uint32  default: 0\n"
                                "      Also log the first bytes of every chunk, in hex (never use "
                                "this on a link that carries secrets).\n"))
      << described.output;
}

struct Refusal {
  std::string label;
  std::vector<std::string> args;              // after "plugins"
  std::string pipeline_libraries;             // plugin_libraries lines for a pipeline file
  std::vector<std::string> expected_phrases;  // all in the one error line
};

TEST(TapPluginSo, UnusableLibrariesAreRefusedWithErrorsNamingThem) {
  std::string not_elf = Write("not_elf.so", "this is not a shared object\n");
  std::vector<Refusal> refusals = {
      {"missing file",
       {"--plugin=/nonexistent/x.so"},
       "",
       {"plugin library /nonexistent/x.so: no such file"}},
      {"not a shared object",
       {"--plugin=" + not_elf},
       "",
       {"plugin library " + not_elf + ": cannot load: ", "not_elf.so"}},
      {"no entry point",
       {absl::StrCat("--plugin=", kNoEntry)},
       "",
       {absl::StrCat("plugin library ", kNoEntry, ": no entry point \"HublinkRegisterPlugins\"")}},
      {"entry point named in the pipeline is missing",
       {},
       Library(kTap, "RegisterNothing"),
       {absl::StrCat("plugin library ", kTap, ": no entry point \"RegisterNothing\"")}},
      {"ABI mismatch",
       {absl::StrCat("--plugin=", kAbiMismatch)},
       "",
       {absl::StrCat("plugin library ", kAbiMismatch,
                     ": built against hublink 0.1.0 (plugin ABI 99"),
        "but this program is hublink 0.9.0 (plugin ABI 4", "rebuild the library"}},
      {"name of a built-in",
       {absl::StrCat("--plugin=", kDuplicate)},
       "",
       {absl::StrCat("plugin library ", kDuplicate,
                     ": transport \"tcp\" is already registered by "
                     "this program")}},
      {"name of another library's plugin",
       {absl::StrCat("--plugin=", kTap)},
       Library(kDuplicate, "RegisterAnotherTap"),
       // The pipeline's libraries load before --plugin ones: the tap is the second "tap".
       {absl::StrCat("plugin library ", kTap,
                     ": transport \"tap\" is already registered by "
                     "plugin library ",
                     kDuplicate)}},
  };
  for (const Refusal& refusal : refusals) {
    SCOPED_TRACE(refusal.label);
    std::vector<std::string> args = {"pub"};
    args.insert(args.end(), refusal.args.begin(), refusal.args.end());
    std::string pipeline =
        Write("refused.textproto", TapPipeline(1883, refusal.pipeline_libraries));
    for (const std::string& more :
         {"--pipeline=" + pipeline, std::string("--topic=t"), std::string("--message=m")}) {
      args.push_back(more);
    }
    ExampleRun run = RunExample(kHublink, args);
    EXPECT_EQ(run.exit_code, 1) << run.output;
    for (const std::string& phrase : refusal.expected_phrases) {
      EXPECT_TRUE(absl::StrContains(run.output, phrase)) << "wanted: " << phrase << "\n"
                                                         << run.output;
    }
    // `plugins` takes the same flags and refuses the same way.
    if (refusal.pipeline_libraries.empty()) {
      std::vector<std::string> list = {"plugins"};
      list.insert(list.end(), refusal.args.begin(), refusal.args.end());
      ExampleRun listed = RunExample(kHublink, list);
      EXPECT_EQ(listed.exit_code, 1) << listed.output;
      EXPECT_TRUE(absl::StrContains(listed.output, refusal.expected_phrases[0])) << listed.output;
    }
  }
}

}  // namespace
}  // namespace testing
}  // namespace hublink
