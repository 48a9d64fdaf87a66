#include "tools/cli/hublink_cli.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "examples/tap_plugin/tap_transport.h"
#include "gtest/gtest.h"
#include "plugins/log.h"
#include "plugins/pipeline.h"
#include "protocols/mqtt/client.h"
#include "tests/test_util.h"
#include "tools/cli/cli_test_util.h"

namespace hublink {
namespace cli {
namespace {

using ::hublink::testing::MosquittoBroker;

// The worked example of the Tencent facts file, as a device_info.json.
std::string WorkedExampleDevice() {
  std::string path = absl::StrCat(testing::TempDir(), "/worked_example.json");
  EXPECT_TRUE(testing::WriteFile(path, R"({"auth_mode": "KEY", "region": "china",
      "productId": "ABCDEFGHIJ", "deviceName": "dev01",
      "key_deviceinfo": {"deviceSecret": "MDEyMzQ1Njc4OWFiY2RlZg=="}})")
                  .ok());
  return path;
}

TEST(HublinkCliTest, SignReproducesTheWorkedExampleByteForByte) {
  CliRun run = Hublink(
      {"sign", "--device_info=" + WorkedExampleDevice(), "--connid=a1B2c", "--expiry=1700000000"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out,
            "client_id: ABCDEFGHIJdev01\n"
            "username: ABCDEFGHIJdev01;21010406;a1B2c;1700000000\n"
            "password: 108eac8bd80d3f25b6799504dcd094ba5bfb2f91;hmacsha1\n");
}

TEST(HublinkCliTest, SignWithoutFixedPartsUsesAFreshConnidAndTheSdksNeverExpiry) {
  std::string device = WorkedExampleDevice();
  CliRun first = Hublink({"sign", "--device_info=" + device});
  CliRun second = Hublink({"sign", "--device_info=" + device});
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_TRUE(absl::StrContains(first.out, ";21010406;")) << first.out;
  EXPECT_TRUE(absl::StrContains(first.out, ";92233720368547758\n")) << first.out;
  EXPECT_NE(first.out, second.out) << "connid must differ between attempts";
  for (const CliRun& run : {first, second}) {
    EXPECT_FALSE(absl::StrContains(run.out + run.err, "MDEyMzQ1Njc4OWFiY2RlZg=="))
        << "secret printed";
    EXPECT_FALSE(absl::StrContains(run.out + run.err, "0123456789abcdef")) << "secret printed";
  }
}

TEST(HublinkCliTest, PluginsListsEveryFamily) {
  CliRun run = Hublink({"plugins"});
  ASSERT_EQ(run.code, 0) << run.err;
  // The config types line up in one column, even after the longest name ("http_connect").
  size_t column = std::string::npos;
  for (absl::string_view line : absl::StrSplit(run.out, '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "  ")) continue;
    size_t at = line.find("hublink.");
    ASSERT_NE(at, absl::string_view::npos) << line;
    if (column == std::string::npos) column = at;
    EXPECT_EQ(at, column) << line;
  }
  for (absl::string_view expected :
       {"transports:", "tcp", "hublink.transports.TcpConfig  (base)", "tls", "websocket",
        "protocols:", "mqtt", "hublink.protocols.MqttConfig", "signers:", "hmac", "rsa"}) {
    EXPECT_TRUE(absl::StrContains(run.out, expected)) << expected << " missing in\n" << run.out;
  }
}

// Issue 19: one's own CLI binary with extra plugins (RunHublink with a registration callback).
TEST(HublinkCliTest, RegistrationCallbackAddsPluginsToEveryCommand) {
  std::ostringstream out, err;
  int code = RunHublink({"plugins"}, out, err,
                        [](Registry::Builder& builder) { acme::RegisterTapTransport(builder); });
  ASSERT_EQ(code, 0) << err.str();
  EXPECT_TRUE(absl::StrContains(out.str(), "  tap ")) << out.str();
  // A pipeline file naming the plugin resolves in every command that reads one.
  std::string path = absl::StrCat(testing::TempDir(), "/tap_pipeline.textproto");
  ASSERT_TRUE(testing::WriteFile(path, R"(endpoint { host: "127.0.0.1" port: 1883 }
transports { name: "tcp" }
transports { name: "tap" }
protocol { name: "mqtt" }
)")
                  .ok());
  std::ostringstream dumped, dump_err;
  ASSERT_EQ(
      RunHublink({"pub", "--pipeline=" + path, "--topic=t", "--message=m", "--dump_pipeline=-"},
                 dumped, dump_err,
                 [](Registry::Builder& builder) { acme::RegisterTapTransport(builder); }),
      0)
      << dump_err.str();
  std::ostringstream sign_out, sign_err;
  EXPECT_EQ(RunHublink({"sign", "--pipeline=" + path}, sign_out, sign_err), 1)
      << "without the callback the built-in CLI does not know \"tap\"";
  EXPECT_TRUE(absl::StrContains(sign_err.str(), "tap")) << sign_err.str();
}

TEST(HublinkCliTest, DumpPipelineWritesAFileThatLoadsBack) {
  std::string path = absl::StrCat(testing::TempDir(), "/dumped.textproto");
  CliRun run = Hublink({"pub", "--device_info=" + WorkedExampleDevice(), "--transport=ws",
                        "--host=127.0.0.1", "--port=18080", "--dump_pipeline=" + path});
  ASSERT_EQ(run.code, 0) << run.err;
  auto pipeline = ReadPipelineFile(path);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  EXPECT_EQ(pipeline->endpoint().host(), "127.0.0.1");
  EXPECT_EQ(pipeline->endpoint().port(), 18080u);
  ASSERT_EQ(pipeline->transports_size(), 2);
  EXPECT_EQ(pipeline->transports(1).name(), "websocket");
  CliRun again = Hublink({"sign", "--pipeline=" + path, "--connid=a1B2c", "--expiry=1700000000"});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_TRUE(absl::StrContains(again.out, "108eac8bd80d3f25b6799504dcd094ba5bfb2f91;hmacsha1"));
}

// Issue 14 part 3: --transport=auto offers TLS 8883 then WSS 443 (WS 80 only when allowed), and
// --host/--ca_file apply to every stack.
TEST(HublinkCliTest, TransportAutoDumpsEveryStack) {
  std::string device = WorkedExampleDevice();
  CliRun run = Hublink({"pub", "--device_info=" + device, "--transport=auto", "--host=127.0.0.1",
                        "--ca_file=/tmp/hub-ca.pem", "--state_file=/tmp/stack.state", "--topic=t",
                        "--message=m", "--dump_pipeline=-"});
  ASSERT_EQ(run.code, 0) << run.err;
  absl::StatusOr<Pipeline> dumped = ParsePipelineText(run.out, "dump");
  ASSERT_TRUE(dumped.ok()) << dumped.status() << "\n" << run.out;
  EXPECT_EQ(dumped->endpoint().port(), 8883u);
  EXPECT_EQ(dumped->endpoint().host(), "127.0.0.1");
  EXPECT_EQ(dumped->policy().state_file(), "/tmp/stack.state");
  ASSERT_EQ(dumped->alternatives_size(), 1);
  EXPECT_EQ(dumped->alternatives(0).endpoint().host(), "127.0.0.1");
  EXPECT_EQ(dumped->alternatives(0).endpoint().port(), 443u);
  EXPECT_TRUE(absl::StrContains(run.out, "/tmp/hub-ca.pem")) << run.out;

  CliRun plain =
      Hublink({"pub", "--device_info=" + device, "--transport=auto", "--allow_plain_fallback",
               "--topic=t", "--message=m", "--dump_pipeline=-"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  dumped = ParsePipelineText(plain.out, "dump");
  ASSERT_TRUE(dumped.ok()) << dumped.status();
  ASSERT_EQ(dumped->alternatives_size(), 2);
  EXPECT_EQ(dumped->alternatives(1).endpoint().port(), 80u);

  for (const std::vector<std::string>& wrong :
       std::vector<std::vector<std::string>>{{"pub", "--device_info=" + device, "--transport=auto",
                                              "--port=1", "--topic=t", "--message=m"},
                                             {"pub", "--device_info=" + device, "--transport=wss",
                                              "--allow_plain_fallback", "--topic=t", "--message=m"},
                                             {"pub", "--host=127.0.0.1", "--port=1883",
                                              "--transport=auto", "--topic=t", "--message=m"}}) {
    CliRun refused = Hublink(wrong);
    EXPECT_EQ(refused.code, 1) << absl::StrJoin(wrong, " ");
    EXPECT_FALSE(refused.err.empty());
  }
}

TEST(HublinkCliTest, UsageErrorsExitTwoAndFailuresExitOne) {
  EXPECT_EQ(Hublink({}).code, 2);
  CliRun unknown = Hublink({"publish"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_TRUE(absl::StrContains(unknown.err, "unknown command \"publish\"")) << unknown.err;
  CliRun bad_flag = Hublink({"pub", "--topc=x"});
  EXPECT_EQ(bad_flag.code, 2);
  EXPECT_TRUE(absl::StrContains(bad_flag.err, "unknown flag --topc")) << bad_flag.err;
  CliRun bad_transport =
      Hublink({"sign", "--device_info=" + WorkedExampleDevice(), "--transport=quic"});
  EXPECT_EQ(bad_transport.code, 1);
  EXPECT_EQ(bad_transport.err,
            "hublink sign: --transport: \"quic\" is not one of wss, ws, tls, tcp, auto\n");
  CliRun nowhere = Hublink({"pub", "--topic=t", "--message=m"});
  EXPECT_EQ(nowhere.code, 1);
  EXPECT_TRUE(absl::StrContains(nowhere.err, "say where to connect")) << nowhere.err;
  CliRun missing = Hublink({"sign", "--device_info=/nonexistent/device_info.json"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(absl::StrContains(missing.err, "/nonexistent/device_info.json")) << missing.err;
}

TEST(HublinkCliTest, CommandHelpPrintsThatCommandsFlagsAndExitsZero) {
  CliRun help = Hublink({"pub", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_TRUE(absl::StartsWith(help.out, "usage: hublink pub [flags]\n")) << help.out;
  EXPECT_TRUE(absl::StrContains(help.out, "--message=")) << help.out;
  EXPECT_TRUE(absl::StrContains(help.out, "--device_info=")) << help.out;
  EXPECT_FALSE(absl::StrContains(help.out, "--connid")) << "sign's flag listed under pub";
  // A flag's stated default is the library's, not a copy of it.
  EXPECT_TRUE(absl::StrContains(
      help.out,
      absl::StrCat("(default ", absl::ToInt64Microseconds(Client::Options().read_moderation),
                   ", 0 off)")))
      << help.out;
  EXPECT_EQ(help.err, "");
  CliRun short_help = Hublink({"sign", "-h"});
  EXPECT_EQ(short_help.code, 0);
  EXPECT_TRUE(absl::StrContains(short_help.out, "--connid=")) << short_help.out;
  EXPECT_FALSE(absl::StrContains(short_help.out, "--message")) << short_help.out;
  CliRun plugins_help = Hublink({"plugins", "--help"});
  EXPECT_EQ(plugins_help.code, 0);
  EXPECT_TRUE(absl::StartsWith(plugins_help.out, "usage: hublink plugins")) << plugins_help.out;
  // After "--" it is an argument, not a request for help.
  EXPECT_EQ(Hublink({"pub", "--", "--help"}).code, 2);
  // The top-level usage says how to get a command's flags.
  CliRun usage = Hublink({});
  EXPECT_EQ(usage.code, 2);
  EXPECT_TRUE(absl::StrContains(usage.err, "hublink COMMAND --help")) << usage.err;
  EXPECT_EQ(usage.out, "");
}

TEST(HublinkCliTest, AFlagOfAnotherCommandIsAUsageError) {
  CliRun run = Hublink({"sign", "--device_info=" + WorkedExampleDevice(), "--message=hi"});
  EXPECT_EQ(run.code, 2);
  EXPECT_TRUE(absl::StrContains(run.err, "unknown flag --message")) << run.err;
}

// Semantic errors (found when the pipeline is resolved, after it parsed) name the file they are in,
// not a default "pipeline:", through every command.
TEST(HublinkCliTest, PipelineErrorsNameTheFile) {
  std::string path = absl::StrCat(testing::TempDir(), "/typo.textproto");
  ASSERT_TRUE(testing::WriteFile(path, R"pb(
                endpoint { host: "127.0.0.1" port: 1883 }
                transports { name: "tcp" }
                transports { name: "websockt" }
                protocol { name: "mqtt" })pb")
                  .ok());
  const std::vector<std::vector<std::string>> runs = {
      {"pub", "--pipeline=" + path, "--topic=t", "--message=m"},
      {"sub", "--pipeline=" + path, "--topic=t"},
      {"sign", "--pipeline=" + path}};
  for (const std::vector<std::string>& args : runs) {
    const std::string& command = args[0];
    CliRun run = Hublink(args);
    EXPECT_EQ(run.code, 1) << command;
    EXPECT_TRUE(absl::StrContains(
        run.err, absl::StrCat("hublink ", command, ": ", path, ": transports[1] (\"websockt\")")))
        << command << ": " << run.err;
  }
}

class HublinkBrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MosquittoBroker::Options options;
    options.websockets = true;
    auto broker = MosquittoBroker::Start(options);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(broker).value();
  }
  std::unique_ptr<MosquittoBroker> broker_;
};

TEST_F(HublinkBrokerTest, PubReachesSubOverTcpAndWebSocket) {
  const std::string tcp_port = absl::StrCat("--port=", broker_->tcp_port());
  // Retained, so the subscriber gets them whenever its SUBSCRIBE lands.
  CliRun retained = Hublink({"pub", "--host=127.0.0.1", tcp_port, "--topic=dev/a/data",
                             "--message=hello world", "--qos=1", "--retain"});
  ASSERT_EQ(retained.code, 0) << retained.err;
  EXPECT_EQ(retained.out, "published 1 message to dev/a/data\n");
  ASSERT_EQ(
      Hublink({"pub", "--host=127.0.0.1", tcp_port, "--topic=other", "--message=x", "--retain"})
          .code,
      0);
  CliRun sub_result;
  std::atomic<bool> sub_done{false};
  std::thread sub([&] {
    sub_result = Hublink({"sub", "--host=127.0.0.1", absl::StrCat("--port=", broker_->ws_port()),
                          "--transport=ws", "--topic=dev/+/data", "--topic=other", "--qos=1",
                          "--count=3", "--timeout=20"});
    sub_done = true;
  });
  // A live message, repeated until the subscriber has its third (bounded: 50 rounds).
  for (int i = 0; i < 50 && !sub_done; ++i) {
    CliRun live = Hublink(
        {"pub", "--host=127.0.0.1", tcp_port, "--topic=dev/b/data", "--message=again", "--qos=1"});
    ASSERT_EQ(live.code, 0) << live.err;
    absl::SleepFor(absl::Milliseconds(200));  // pacing only; the loop ends on sub_done
  }
  sub.join();
  ASSERT_EQ(sub_result.code, 0) << sub_result.err;
  std::vector<std::string> lines = absl::StrSplit(sub_result.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << sub_result.out;
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines,
            (std::vector<std::string>{"dev/a/data hello world", "dev/b/data again", "other x"}));
}

// --spin_us: the client's loop polls before sleeping; everything still arrives, and a negative
// value is refused with a message naming the flag. The same for --read_moderation_us.
TEST_F(HublinkBrokerTest, PubAndSubWithSpinningLoops) {
  const std::string tcp_port = absl::StrCat("--port=", broker_->tcp_port());
  CliRun retained =
      Hublink({"pub", "--host=127.0.0.1", tcp_port, "--topic=spin/a", "--message=spun", "--qos=1",
               "--retain", "--count=20", "--spin_us=50"});
  ASSERT_EQ(retained.code, 0) << retained.err;
  EXPECT_EQ(retained.out, "published 20 messages to spin/a\n");
  CliRun sub = Hublink({"sub", "--host=127.0.0.1", tcp_port, "--topic=spin/#", "--count=1",
                        "--timeout=20", "--spin_us=50"});
  ASSERT_EQ(sub.code, 0) << sub.err;
  EXPECT_EQ(sub.out, "spin/a spun\n");
  CliRun negative =
      Hublink({"pub", "--host=127.0.0.1", tcp_port, "--topic=t", "--message=x", "--spin_us=-1"});
  EXPECT_NE(negative.code, 0);
  EXPECT_TRUE(absl::StrContains(negative.err, "--spin_us=-1: must be 0 (off) or more"))
      << negative.err;
  // --read_moderation_us (Client::Options::read_moderation): off, then refused when negative.
  CliRun unmoderated = Hublink({"sub", "--host=127.0.0.1", tcp_port, "--topic=spin/#", "--count=1",
                                "--timeout=20", "--read_moderation_us=0"});
  ASSERT_EQ(unmoderated.code, 0) << unmoderated.err;
  EXPECT_EQ(unmoderated.out, "spin/a spun\n");
  CliRun negative_moderation = Hublink(
      {"sub", "--host=127.0.0.1", tcp_port, "--topic=t", "--count=1", "--read_moderation_us=-5"});
  EXPECT_NE(negative_moderation.code, 0);
  EXPECT_TRUE(absl::StrContains(negative_moderation.err,
                                "--read_moderation_us=-5: must be 0 (off) or more"))
      << negative_moderation.err;
}

// Issue 13: pub --outbox=DIR says "accepted N" once every message is on disk, "published N" once
// acknowledged; {seq} numbers the messages from --first_seq. Without --message it delivers what the
// store holds (here: messages accepted while the broker was unreachable) and exits 0 when empty.
TEST_F(HublinkBrokerTest, PubOutboxAcceptsPublishesAndDrains) {
  const std::string outbox =
      absl::StrCat("--outbox=", testing::TempDir(), "/cli_outbox_", getpid());
  const std::string port = absl::StrCat("--port=", broker_->tcp_port());
  CliRun run = Hublink({"pub", "--host=127.0.0.1", port, "--topic=o/t", "--qos=1", "--count=3",
                        "--message=m {seq}", "--first_seq=5", outbox});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "accepted 3\npublished 3 messages to o/t\n");
  CliRun empty = Hublink({"pub", "--host=127.0.0.1", port, outbox});
  ASSERT_EQ(empty.code, 0) << empty.err;
  EXPECT_EQ(empty.out, "published 0\n");
  EXPECT_EQ(Hublink({"sub", "--host=127.0.0.1", port, "--topic=o/t", outbox}).code, 2)
      << "--outbox is pub's only";
}

// Issue 14 part 4 and issue 19: one line per event (the client's own log of it stays at DEBUG),
// and with -v each layer's milestones and one timing line per attempt.
TEST_F(HublinkBrokerTest, VerbosePrintsATimingLinePerAttemptAndEventsPrintOnce) {
  std::vector<std::string> logged;
  std::mutex logged_mutex;
  LogSink previous = SetLogSink([&](const LogRecord& record) {
    std::lock_guard<std::mutex> lock(logged_mutex);
    logged.push_back(FormatLogRecord(record));
  });
  std::vector<std::string> args = {"pub",
                                   "--host=127.0.0.1",
                                   absl::StrCat("--port=", broker_->ws_port()),
                                   "--transport=ws",
                                   "--topic=v/t",
                                   "--message=x",
                                   "--qos=1"};
  CliRun quiet = Hublink(args);
  args.push_back("-v");
  CliRun verbose = Hublink(args);
  SetLogSink(previous);
  ASSERT_EQ(quiet.code, 0) << quiet.err;
  ASSERT_EQ(verbose.code, 0) << verbose.err;
  EXPECT_EQ(quiet.err, "hublink: connected (session present: 0)\nhublink: disconnected\n");
  for (const std::string& line : logged) {
    EXPECT_FALSE(absl::StrContains(line, "connected (session present"))
        << "printed twice: " << line;
  }
  std::vector<std::string> timing;
  for (absl::string_view line : absl::StrSplit(verbose.err, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "hublink: connect ")) timing.push_back(std::string(line));
  }
  ASSERT_EQ(timing.size(), 1u) << verbose.err;
  EXPECT_TRUE(absl::StartsWith(timing[0], "hublink: connect dns ")) << timing[0];
  for (absl::string_view phase : {" ms \u00b7 tcp ", " ms \u00b7 ws ", " ms \u00b7 connack "}) {
    EXPECT_TRUE(absl::StrContains(timing[0], phase)) << phase << " missing in " << timing[0];
  }
  EXPECT_TRUE(absl::StrContains(verbose.err, "hublink: websocket: upgrade 101")) << verbose.err;
  EXPECT_FALSE(absl::StrContains(quiet.err, "upgrade 101")) << quiet.err;
}

// A failed attempt's line says in which phase it failed.
TEST_F(HublinkBrokerTest, VerboseSaysWhereAFailedAttemptStopped) {
  int dead = *testing::PickFreePort();
  CliRun run = Hublink({"pub", "--host=127.0.0.1", absl::StrCat("--port=", dead), "--topic=v/t",
                        "--message=x", "-v"});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(absl::StrContains(run.err, "hublink: connect dns ")) << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, " \u00b7 tcp failed after ")) << run.err;
}

// Reads http://127.0.0.1:port/metrics; empty when nothing answers yet.
std::string Scrape(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const char request[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) > 0) {
      char buffer[4096];
      for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) response.append(buffer, n);
    }
  }
  close(fd);
  return response;
}

TEST_F(HublinkBrokerTest, SubServesPrometheusMetrics) {
  int metrics_port = *testing::PickFreePort();
  const std::string tcp_port = absl::StrCat("--port=", broker_->tcp_port());
  CliRun sub_result;
  std::atomic<bool> sub_done{false};
  std::thread sub([&] {
    sub_result =
        Hublink({"sub", "--host=127.0.0.1", tcp_port, "--topic=m/t", "--qos=1", "--count=2",
                 "--timeout=30", absl::StrCat("--metrics_port=", metrics_port)});
    sub_done = true;
  });
  // Scraped until the client is connected, then once more after one (retained, so it arrives
  // whenever the SUBSCRIBE lands) message has been counted; both bounded.
  std::string scraped;
  for (int i = 0; i < 500 && !sub_done; ++i) {
    scraped = Scrape(metrics_port);
    if (absl::StrContains(scraped, "\nhublink_connected 1\n")) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(absl::StrContains(scraped, "\nhublink_connected 1\n")) << scraped;
  ASSERT_EQ(Hublink({"pub", "--host=127.0.0.1", tcp_port, "--topic=m/t", "--message=x", "--qos=1",
                     "--retain"})
                .code,
            0);
  for (int i = 0; i < 500 && !sub_done; ++i) {
    scraped = Scrape(metrics_port);
    if (absl::StrContains(scraped, "\nhublink_messages_received_total 1\n")) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(absl::StartsWith(scraped, "HTTP/1.1 200 OK\r\n")) << scraped;
  EXPECT_TRUE(absl::StrContains(scraped, "\nhublink_messages_received_total 1\n")) << scraped;
  EXPECT_TRUE(absl::StrContains(scraped, "\nhublink_connects_total 1\n")) << scraped;
  EXPECT_TRUE(absl::StrContains(scraped, "hublink_connect_phase_seconds{phase=\"connack\"} "))
      << scraped;
  // The second message ends the subscriber (--count=2).
  for (int i = 0; i < 50 && !sub_done; ++i) {
    Hublink({"pub", "--host=127.0.0.1", tcp_port, "--topic=m/t", "--message=y", "--qos=1"});
    absl::SleepFor(absl::Milliseconds(50));  // pacing only; the loop ends on sub_done
  }
  sub.join();
  ASSERT_EQ(sub_result.code, 0) << sub_result.err;
  EXPECT_TRUE(absl::StrContains(
      sub_result.err,
      absl::StrCat("hublink: metrics on http://127.0.0.1:", metrics_port, "/metrics")))
      << sub_result.err;
  EXPECT_EQ(
      Hublink({"sub", "--host=127.0.0.1", tcp_port, "--topic=m/t", "--metrics_port=70000"}).code,
      1);
}

TEST_F(HublinkBrokerTest, SubTimesOutWithACountOfMessagesSeen) {
  CliRun run = Hublink({"sub", "--host=127.0.0.1", absl::StrCat("--port=", broker_->tcp_port()),
                        "--topic=quiet", "--count=1", "--timeout=1"});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(absl::StrContains(run.err, "timed out after 1s with 0 of 1 messages")) << run.err;
}

TEST(HublinkRefusedTest, WrongCredentialsFailWithTheBrokersReason) {
  std::string dir = testing::TempDir();
  std::string passwords = dir + "/passwd";
  ASSERT_TRUE(testing::RunCommand("mosquitto_passwd -b -c " + passwords + " alice s3cret").ok());
  MosquittoBroker::Options options;
  options.allow_anonymous = false;
  options.extra_config = {"password_file " + passwords};
  auto broker = MosquittoBroker::Start(options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  CliRun run =
      Hublink({"pub", "--host=127.0.0.1", absl::StrCat("--port=", (*broker)->tcp_port()),
               "--username=alice", "--password=wrong", "--topic=t", "--message=m", "--qos=1"});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(absl::StrContains(run.err, "CONNACK")) << run.err;
  EXPECT_FALSE(absl::StrContains(run.err, "wrong")) << "password echoed: " << run.err;
  CliRun ok =
      Hublink({"pub", "--host=127.0.0.1", absl::StrCat("--port=", (*broker)->tcp_port()),
               "--username=alice", "--password=s3cret", "--topic=t", "--message=m", "--qos=1"});
  EXPECT_EQ(ok.code, 0) << ok.err;
}

}  // namespace
}  // namespace cli
}  // namespace hublink
