// faultproxy in front of a real mosquitto: mosquitto_pub/mosquitto_sub and a raw MQTT session
// through the in-process proxy under faults, and the faultproxy binary itself end to end.
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "tools/faultproxy/proxy.h"
#include "tools/faultproxy/proxy_test_util.h"

namespace hublink {
namespace faultproxy {
namespace {

using testing::Connect;
using testing::ControlClient;
using ::testing::HasSubstr;
using testing::ReadEnd;
using testing::ReadN;
using testing::RunningProxy;
using testing::StatusValue;
using testing::WaitFor;
using testing::WriteAll;

// CONNECT, MQTT 3.1.1, clean session, keep-alive 60 s, client id "fp".
const std::string kConnect(
    "\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02"
    "fp",
    16);
const std::string kConnackAccepted("\x20\x02\x00\x00", 4);
const std::string kPingreq("\xc0\x00", 2);
const std::string kPingresp("\xd0\x00", 2);

class MosquittoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<hublink::testing::MosquittoBroker>> broker =
        hublink::testing::MosquittoBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(broker).value();
  }
  std::unique_ptr<hublink::testing::MosquittoBroker> broker_;
};

TEST_F(MosquittoTest, PubSubThroughOneByteSegmentsAndLatency) {
  absl::StatusOr<std::unique_ptr<RunningProxy>> proxy = RunningProxy::Start(broker_->tcp_port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  ControlClient control((*proxy)->control_port());
  EXPECT_EQ(control.Command("segment size=1"), "ok id=1");
  EXPECT_EQ(control.Command("latency delay=1ms jitter=1ms"), "ok id=2");
  std::string port = absl::StrCat((*proxy)->port());
  absl::StatusOr<std::string> pub = hublink::testing::RunCommand(
      "mosquitto_pub -h 127.0.0.1 -p " + port +
      " -i fp-pub -q 1 -r -t faultproxy/test -m 'hello through faults' 2>&1");
  ASSERT_TRUE(pub.ok()) << pub.status();
  absl::StatusOr<std::string> sub =
      hublink::testing::RunCommand("mosquitto_sub -h 127.0.0.1 -p " + port +
                                   " -i fp-sub -q 1 -t faultproxy/test -C 1 -W 10 2>&1");
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ(*sub, "hello through faults\n");
  std::string status = control.Command("status");
  EXPECT_EQ(StatusValue(status, "", "accepted"), 2);
  EXPECT_GT(StatusValue(status, "", "down"), 20);  // CONNACKs, SUBACK, PUBLISH, ...
}

TEST_F(MosquittoTest, RawSessionUnderBlackholeAndReset) {
  absl::StatusOr<std::unique_ptr<RunningProxy>> proxy = RunningProxy::Start(broker_->tcp_port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  ControlClient control((*proxy)->control_port());
  int fd = Connect((*proxy)->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(WriteAll(fd, kConnect));
  EXPECT_EQ(ReadN(fd, 4), kConnackAccepted);
  ASSERT_TRUE(WriteAll(fd, kPingreq));
  EXPECT_EQ(ReadN(fd, 2), kPingresp);

  // The broker answers, the answer is lost, the TCP connection stays up.
  EXPECT_EQ(control.Command("blackhole dir=down"), "ok id=1");
  ASSERT_TRUE(WriteAll(fd, kPingreq));
  EXPECT_TRUE(
      WaitFor([&] { return StatusValue(control.Command("status"), "", "dropped_down") == 2; }));
  char c;
  EXPECT_EQ(recv(fd, &c, 1, MSG_DONTWAIT), -1);
  EXPECT_EQ(control.Command("clear"), "ok cleared=1");
  ASSERT_TRUE(WriteAll(fd, kPingreq));
  EXPECT_EQ(ReadN(fd, 2), kPingresp);

  EXPECT_EQ(control.Command("reset"), "ok id=2 reset=1");
  EXPECT_EQ(ReadEnd(fd), -ECONNRESET);
  close(fd);
}

// The binary as `bazel run //tools/faultproxy` runs it: ports picked by the kernel and printed.
TEST_F(MosquittoTest, TheBinaryProxiesMqttAndAnswersOnItsControlPort) {
  std::string out = hublink::testing::TempDir() + "/faultproxy_binary.out";
  unlink(out.c_str());
  hublink::testing::Subprocess::Options options;
  options.output_file = out;
  absl::StatusOr<std::unique_ptr<hublink::testing::Subprocess>> process =
      hublink::testing::Subprocess::Start(
          {"tools/faultproxy/faultproxy", "--listen=127.0.0.1:0",
           absl::StrCat("--upstream=127.0.0.1:", broker_->tcp_port()), "--control=127.0.0.1:0",
           "--schedule=every=1h,for=1s,fault=reset", "--seed=7"},
          options);
  ASSERT_TRUE(process.ok()) << process.status();
  int port = 0, control_port = 0;
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<std::string> text = hublink::testing::ReadFile(out);
    if (!text.ok()) return false;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      if (!absl::StartsWith(line, "faultproxy listen=")) continue;
      for (absl::string_view word : absl::StrSplit(line, ' ')) {
        size_t colon = word.rfind(':');
        if (colon == absl::string_view::npos) continue;
        int value = 0;
        if (!absl::SimpleAtoi(word.substr(colon + 1), &value)) continue;
        if (absl::StartsWith(word, "listen=")) port = value;
        if (absl::StartsWith(word, "control=")) control_port = value;
      }
      return port != 0 && control_port != 0;
    }
    return false;
  }));
  ControlClient control(control_port);
  EXPECT_THAT(control.Command("status"), HasSubstr(" schedule=on faults=0"));
  EXPECT_EQ(control.Command("segment size=3"), "ok id=1");
  absl::StatusOr<std::string> pub = hublink::testing::RunCommand(
      absl::StrCat("mosquitto_pub -h 127.0.0.1 -p ", port,
                   " -i fp-bin -q 1 -r -t faultproxy/bin -m binary 2>&1"));
  ASSERT_TRUE(pub.ok()) << pub.status();
  absl::StatusOr<std::string> sub = hublink::testing::RunCommand(
      absl::StrCat("mosquitto_sub -h 127.0.0.1 -p ", broker_->tcp_port(),
                   " -i fp-bin-sub -t faultproxy/bin -C 1 -W 10 2>&1"));
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ(*sub, "binary\n");
  EXPECT_EQ(StatusValue(control.Command("status"), "", "accepted"), 1);
  // SIGTERM: a clean exit.
  int status = (*process)->Stop();
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace faultproxy
}  // namespace hublink
