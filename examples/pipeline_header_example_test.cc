// Keeps the usage example of plugins/pipeline.h identical to examples/pipeline_header_example.cc
// and runs that program against a real mosquitto (tcp > websocket), with a missing and an invalid
// pipeline file.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "examples/header_example_test_util.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace hublink {
namespace testing {
namespace {

constexpr char kBinary[] = "examples/pipeline_header_example";

std::string WriteTestFile(const std::string& name, const std::string& contents) {
  std::string path = absl::StrCat(TempDir(), "/", name);
  absl::Status written = WriteFile(path, contents);
  EXPECT_TRUE(written.ok()) << written;
  return path;
}

TEST(PipelineHeaderExample, HeaderShowsTheProgramLineForLine) {
  EXPECT_TRUE(HeaderShowsExample("plugins/pipeline.h", "examples/pipeline_header_example.cc",
                                 "pipeline.h"));
}

TEST(PipelineHeaderExample, OpensAndClosesAWebSocketStackToMosquitto) {
  MosquittoBroker::Options options;
  options.websockets = true;
  absl::StatusOr<std::unique_ptr<MosquittoBroker>> broker = MosquittoBroker::Start(options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  std::string path = WriteTestFile(
      "ws.textproto",
      absl::StrCat("endpoint { host: \"127.0.0.1\" port: ", (*broker)->ws_port(),
                   " }\ntransports { name: \"tcp\" }\n", "transports { name: \"websocket\" }\n"));
  ExampleRun run = RunExample(kBinary, {path});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("open: tcp > websocket\n"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("closed: OK\n"), std::string::npos) << run.output;
}

TEST(PipelineHeaderExample, MissingPipelineFileIsAnErrorNamingIt) {
  const std::string path = absl::StrCat(TempDir(), "/no-such-device.textproto");
  ExampleRun run = RunExample(kBinary, {path});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find(path), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("Check failed"), std::string::npos) << run.output;
}

TEST(PipelineHeaderExample, InvalidPipelineIsAnErrorNamingFileAndField) {
  std::string path = WriteTestFile(
      "no-port.textproto", "endpoint { host: \"127.0.0.1\" }\ntransports { name: \"tcp\" }\n");
  ExampleRun run = RunExample(kBinary, {path});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find(absl::StrCat(path, ": endpoint.port is missing or 0")),
            std::string::npos)
      << run.output;
}

}  // namespace
}  // namespace testing
}  // namespace hublink
