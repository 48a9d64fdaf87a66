// Keeps the usage example of protocols/mqtt/client.h identical to
// examples/client_header_example.cc and runs that program against a real mosquitto: the happy
// path, a missing pipeline file, and a broker that is not there (the deadline on Publish).
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "examples/header_example_test_util.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace hublink {
namespace testing {
namespace {

constexpr char kBinary[] = "examples/client_header_example";

std::string WritePipeline(const std::string& name, int port) {
  std::string path = absl::StrCat(TempDir(), "/", name);
  absl::Status written = WriteFile(
      path,
      absl::StrCat("endpoint { host: \"127.0.0.1\" port: ", port, " }\n",
                   "transports { name: \"tcp\" }\n", "protocol { name: \"mqtt\" typed_config {\n",
                   "  [type.googleapis.com/hublink.protocols.MqttConfig] { client_id: "
                   "\"header-example\" }\n",
                   "} }\n", "policy { connect_timeout { seconds: 2 } }\n"));
  EXPECT_TRUE(written.ok()) << written;
  return path;
}

TEST(ClientHeaderExample, HeaderShowsTheProgramLineForLine) {
  EXPECT_TRUE(HeaderShowsExample("protocols/mqtt/client.h", "examples/client_header_example.cc",
                                 "client.h"));
}

TEST(ClientHeaderExample, PublishesAndReceivesThroughMosquitto) {
  absl::StatusOr<std::unique_ptr<MosquittoBroker>> broker = MosquittoBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  // A retained message on the example's subscription reaches its handler right after SUBACK,
  // before the PUBACK of its own publish (the broker answers one client's packets in order).
  ASSERT_TRUE(RunCommand(absl::StrCat("mosquitto_pub -h 127.0.0.1 -p ", (*broker)->tcp_port(),
                                      " -q 1 -r -t dev/control -m 'lamp on'"))
                  .ok());
  ExampleRun run = RunExample(kBinary, {WritePipeline("up.textproto", (*broker)->tcp_port())});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("dev/control: lamp on\n"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("publish: OK\n"), std::string::npos) << run.output;
}

TEST(ClientHeaderExample, MissingPipelineFileIsAnErrorNamingIt) {
  const std::string path = absl::StrCat(TempDir(), "/no-such-device.textproto");
  ExampleRun run = RunExample(kBinary, {path});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find(path), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("Check failed"), std::string::npos) << run.output;
}

TEST(ClientHeaderExample, UnreachableBrokerEndsAtThePublishDeadline) {
  absl::StatusOr<int> port = PickFreePort();  // nothing listens there
  ASSERT_TRUE(port.ok()) << port.status();
  ExampleRun run = RunExample(kBinary, {WritePipeline("down.textproto", *port)});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("publish: DEADLINE_EXCEEDED: no PUBACK within 5 s"), std::string::npos)
      << run.output;
}

}  // namespace
}  // namespace testing
}  // namespace hublink
