// Keeps the MQTT snippet of docs/plugin-authoring.md identical to tap_mqtt_example.cc and runs
// that program against a real mosquitto, through tcp > tap, with the pipeline file the guide shows.
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "examples/header_example_test_util.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace hublink {
namespace testing {
namespace {

TEST(TapMqttExample, GuideShowsTheProgramLineForLine) {
  EXPECT_TRUE(DocShowsExample("docs/plugin-authoring.md", "examples/tap_plugin/tap_mqtt_example.cc",
                              "plugin-authoring.md"));
}

// The guide shows the pipeline file too, without its comment lines.
TEST(TapMqttExample, GuideShowsThePipelineFile) {
  absl::StatusOr<std::string> shipped = ReadFile("examples/tap_plugin/mqtt_pipeline.textproto");
  ASSERT_TRUE(shipped.ok()) << shipped.status();
  absl::StatusOr<std::string> guide = ReadFile("docs/plugin-authoring.md");
  ASSERT_TRUE(guide.ok()) << guide.status();
  std::string body;
  for (absl::string_view line : absl::StrSplit(*shipped, '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "#")) absl::StrAppend(&body, line, "\n");
  }
  EXPECT_TRUE(absl::StrContains(*guide, absl::StrCat("\n", body, "```")))
      << "docs/plugin-authoring.md should show, in a code block:\n"
      << body;
}

// The BUILD rules the guide quotes are the tap's own, and the conformance test it shows is the
// tap's whole test file, so that a reader who copies them copies something that builds and passes.
TEST(TapMqttExample, GuideQuotesTheTapsBuildAndTestFiles) {
  absl::StatusOr<std::string> guide = ReadFile("docs/plugin-authoring.md");
  ASSERT_TRUE(guide.ok()) << guide.status();
  absl::StatusOr<std::string> build = ReadFile("examples/tap_plugin/BUILD");
  ASSERT_TRUE(build.ok()) << build.status();
  absl::StatusOr<std::string> test = ReadFile("examples/tap_plugin/tap_transport_test.cc");
  ASSERT_TRUE(test.ok()) << test.status();
  int rules = 0;
  const std::string fence = "```starlark\n";
  for (size_t at = guide->find(fence); at != std::string::npos; at = guide->find(fence, at)) {
    at += fence.size();
    std::string block = guide->substr(at, guide->find("```", at) - at);
    if (absl::StrContains(block, "name = \"my_")) continue;  // the reader's own binaries
    for (absl::string_view rule : absl::StrSplit(block, "\n\n", absl::SkipWhitespace())) {
      ++rules;
      EXPECT_TRUE(absl::StrContains(*build, rule)) << "not in examples/tap_plugin/BUILD:\n" << rule;
    }
  }
  EXPECT_GE(rules, 5);  // load, proto, library, conformance test, program
  EXPECT_TRUE(absl::StrContains(*guide, absl::StrCat("```cpp\n", *test, "```\n")))
      << "docs/plugin-authoring.md, section 6, should show "
         "examples/tap_plugin/tap_transport_test.cc "
         "whole, in a ```cpp block";
}

// Section 4 of the guide shows the tap's transport class: the lines of tap_transport.cc between its
// "[plugin-authoring.md transport begins]" and "...ends]" markers, unchanged, in a ```cpp block.
TEST(TapMqttExample, GuideShowsTheTapTransportClass) {
  absl::StatusOr<std::string> guide = ReadFile("docs/plugin-authoring.md");
  ASSERT_TRUE(guide.ok()) << guide.status();
  absl::StatusOr<std::string> source = ReadFile("examples/tap_plugin/tap_transport.cc");
  ASSERT_TRUE(source.ok()) << source.status();
  const std::string begin = "// [plugin-authoring.md transport begins]\n";
  const std::string end = "// [plugin-authoring.md transport ends]";
  const size_t from = source->find(begin);
  ASSERT_NE(from, std::string::npos) << "tap_transport.cc lost its marker: " << begin;
  const size_t to = source->find(end, from);
  ASSERT_NE(to, std::string::npos) << "tap_transport.cc lost its marker: " << end;
  const std::string shown = source->substr(from + begin.size(), to - from - begin.size());
  EXPECT_TRUE(absl::StrContains(*guide, absl::StrCat("```cpp\n", shown, "```\n")))
      << "docs/plugin-authoring.md, section 4, should show these lines of tap_transport.cc in a "
         "```cpp block:\n"
      << shown;
}

TEST(TapMqttExample, PublishesThroughTheTapToMosquitto) {
  absl::StatusOr<std::unique_ptr<MosquittoBroker>> broker = MosquittoBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  absl::StatusOr<std::string> shipped = ReadFile("examples/tap_plugin/mqtt_pipeline.textproto");
  ASSERT_TRUE(shipped.ok()) << shipped.status();
  std::string pipeline = absl::StrReplaceAll(
      *shipped, {{"port: 1883", absl::StrCat("port: ", (*broker)->tcp_port())}});
  std::string path = absl::StrCat(TempDir(), "/tap_mqtt.textproto");
  ASSERT_TRUE(WriteFile(path, pipeline).ok());
  ExampleRun run = RunExample("examples/tap_plugin/tap_mqtt_example", {path});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("publish: OK; disconnect: OK\n"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("[mqtt] open"), std::string::npos) << run.output;  // the tap's log
}

}  // namespace
}  // namespace testing
}  // namespace hublink
