#include "tools/cli/fleet.h"

#include <unistd.h>

#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace hublink {
namespace cli {
namespace {

using ::hublink::testing::ListenOnLoopback;
using ::hublink::testing::LoopbackListener;
using ::hublink::testing::MosquittoBroker;
using ::hublink::testing::PickFreePort;
using ::hublink::testing::ReadFile;
using ::hublink::testing::RunCommand;
using ::hublink::testing::TempDir;
using ::hublink::testing::WriteFile;

TEST(LogHistogramTest, PercentilesWithinABucket) {
  LogHistogram h;
  for (int i = 1; i <= 1000; ++i) h.Add(i * 10.0);  // 10 µs .. 10 ms, uniform
  EXPECT_EQ(h.count(), 1000u);
  // 8 buckets per doubling: the answer is within 2^(1/8) (~9%) of the true value.
  EXPECT_NEAR(h.Percentile(0.5), 5000, 5000 * 0.1);
  EXPECT_NEAR(h.Percentile(0.99), 9900, 9900 * 0.1);
  EXPECT_EQ(LogHistogram().Percentile(0.5), 0);
}

TEST(LogHistogramTest, MergedPercentilesComeFromTheAddedBuckets) {
  LogHistogram fast, slow;
  for (int i = 0; i < 90; ++i) fast.Add(100);
  for (int i = 0; i < 10; ++i) slow.Add(100000);
  LogHistogram merged = fast;
  merged.Merge(slow);
  EXPECT_EQ(merged.count(), 100u);
  EXPECT_NEAR(merged.Percentile(0.5), 100, 10);
  EXPECT_NEAR(merged.Percentile(0.99), 100000, 10000);
}

TEST(FleetSummaryTest, JsonRoundTripAndMerge) {
  FleetSummary a;
  a.shard = "0/2";
  a.identity_first = 0;
  a.identity_step = 2;
  a.clients = 5;
  a.connected = 5;
  a.messages_sent = 40;
  a.messages_acked = 40;
  a.rss_before_kib = 1000;
  a.rss_after_kib = 1100;
  a.failures_by_phase["tcp"] = 2;
  a.connect_us.Add(1500);
  a.ack_us.Add(300);
  a.reconnect_us.Add(900000);
  a.connect_wall_s = 1.5;
  a.duration_s = 2;
  absl::StatusOr<FleetSummary> back = FleetSummaryFromJson(FleetSummaryToJson(a), "a.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->shard, "0/2");
  EXPECT_EQ(back->identity_step, 2);
  EXPECT_EQ(back->clients, 5);
  EXPECT_EQ(back->messages_acked, 40);
  EXPECT_EQ(back->failures_by_phase["tcp"], 2);
  EXPECT_EQ(back->connect_us.buckets(), a.connect_us.buckets());
  EXPECT_EQ(back->reconnect_us.buckets(), a.reconnect_us.buckets());

  FleetSummary b = a;
  b.shard = "1/2";
  b.failures_by_phase["connack"] = 1;
  b.connect_wall_s = 2.5;
  FleetSummary merged = MergeFleetSummaries({*back, b});
  EXPECT_EQ(merged.shards, 2);
  EXPECT_EQ(merged.clients, 10);
  EXPECT_EQ(merged.messages_sent, 80);
  EXPECT_EQ(merged.failures_by_phase["tcp"], 4);
  EXPECT_EQ(merged.failures_by_phase["connack"], 1);
  EXPECT_EQ(merged.connect_us.count(), 2u);
  EXPECT_EQ(merged.reconnect_us.count(), 2u);
  EXPECT_EQ(merged.connect_wall_s, 2.5);  // concurrent shards: the longest

  EXPECT_FALSE(FleetSummaryFromJson("{\"x\": 1}", "x.json").ok());
  EXPECT_FALSE(FleetSummaryFromJson("not json", "y.json").ok());
}

// The client ids mosquitto logged as connected ("New client connected from ... as ID (p2, ...").
std::multiset<std::string> ConnectedIds(const std::string& log_file) {
  absl::StatusOr<std::string> log = ReadFile(log_file);
  std::multiset<std::string> ids;
  if (!log.ok()) return ids;
  static const std::regex kConnected(R"(New client connected from \S+ as (\S+) \()");
  std::istringstream lines(*log);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch match;
    if (std::regex_search(line, match, kConnected)) ids.insert(match[1]);
  }
  return ids;
}

TEST(FleetTest, TwoHundredClientsOnTwoLoopsConnectAndGetEveryPublishAcked) {
  auto broker = MosquittoBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  std::ostringstream out, err;
  int code = RunFleet({"--host=127.0.0.1", absl::StrCat("--port=", (*broker)->tcp_port()),
                       "--clients=200", "--threads=2", "--connect_rate=1000", "--interval=500ms",
                       "--qos=1", "--size=32", "--topic=fleet/{i}", "--subscribe=fleet/{i}",
                       "--duration=2s", "--client_id=dev-{i}", "--json"},
                      out, err, nullptr);
  ASSERT_EQ(code, 0) << err.str() << out.str();
  absl::StatusOr<FleetSummary> summary = FleetSummaryFromJson(out.str(), "stdout");
  ASSERT_TRUE(summary.ok()) << summary.status() << "\n" << out.str();
  EXPECT_EQ(summary->clients, 200);
  EXPECT_EQ(summary->connected, 200);
  EXPECT_EQ(summary->failed, 0);
  EXPECT_EQ(summary->connect_us.count(), 200u);
  EXPECT_EQ(summary->handshake_us.count(), 200u);
  EXPECT_GE(summary->attempts, 200);
  // Each client's first publish falls within its first interval, well inside 2 s.
  EXPECT_GE(summary->messages_sent, 200);
  EXPECT_EQ(summary->messages_acked, summary->messages_sent);
  EXPECT_EQ(summary->publish_errors, 0);
  EXPECT_EQ(summary->ack_us.count(), static_cast<uint64_t>(summary->messages_acked));
  EXPECT_GT(summary->rss_after_kib, 0);
  EXPECT_GT(summary->cpu_total_s, 0);
  EXPECT_GT(summary->hold_messages, 0);
  EXPECT_LE(summary->hold_messages, summary->messages_sent);
  // Every line of the JSON the user reads is there.
  for (const char* key :
       {"\"connect_rate_per_s\"", "\"p50_ms\"", "\"p90_ms\"", "\"p99_ms\"", "\"messages_per_s\"",
        "\"rss_per_connection_kib\"", "\"cpu_us_per_message\"", "\"failures_by_phase\"",
        "\"publish_ack\"", "\"buckets\""}) {
    EXPECT_NE(out.str().find(key), std::string::npos) << key;
  }
  std::multiset<std::string> ids = ConnectedIds((*broker)->log_file());
  EXPECT_EQ(ids.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(ids.count(absl::StrCat("dev-", i)), 1u) << i;
}

TEST(FleetTest, TextSummaryByDefault) {
  auto broker = MosquittoBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  std::ostringstream out, err;
  int code = RunFleet({"--host=127.0.0.1", absl::StrCat("--port=", (*broker)->tcp_port()),
                       "--clients=5", "--duration=0"},
                      out, err, nullptr);
  ASSERT_EQ(code, 0) << err.str() << out.str();
  EXPECT_NE(out.str().find("5 of 5 clients connected, 0 failed"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("KiB RSS per connection"), std::string::npos) << out.str();
}

TEST(FleetTest, BadFlagsAreUsageErrors) {
  std::ostringstream out, err;
  EXPECT_EQ(RunFleet({"--shard=2/2"}, out, err, nullptr), 2);
  EXPECT_NE(err.str().find("--shard"), std::string::npos) << err.str();
  EXPECT_EQ(RunFleet({"--interval=soon"}, out, err, nullptr), 2);
  EXPECT_EQ(RunFleet({"merge"}, out, err, nullptr), 2);
}

TEST(FleetTest, FailedConnectsAreCountedByPhase) {
  // A port nobody listens on: every attempt fails in "tcp"; the fleet gives up after the timeout.
  absl::StatusOr<LoopbackListener> listener = ListenOnLoopback();
  ASSERT_TRUE(listener.ok()) << listener.status();
  const int port = listener->port;
  close(listener->fd);  // closed: connections to the port are refused
  std::ostringstream out, err;
  int code = RunFleet({"--host=127.0.0.1", absl::StrCat("--port=", port), "--clients=3",
                       "--connect_timeout=300ms", "--duration=0", "--json"},
                      out, err, nullptr);
  EXPECT_EQ(code, 1);
  absl::StatusOr<FleetSummary> summary = FleetSummaryFromJson(out.str(), "stdout");
  ASSERT_TRUE(summary.ok()) << summary.status() << "\n" << out.str();
  EXPECT_EQ(summary->connected, 0);
  EXPECT_EQ(summary->failed, 3);
  EXPECT_GE(summary->failures_by_phase["tcp"], 3);
  EXPECT_NE(summary->first_error.find("hublink-fleet-"), std::string::npos) << summary->first_error;
}

// Two processes (the hublink binary) with --shard=0/2 and 1/2 at the same time: together they
// connect every identity once, and `fleet merge` adds their summaries.
TEST(FleetTest, TwoShardProcessesCoverDisjointIdentitiesAndMerge) {
  auto broker = MosquittoBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  const std::string dir = TempDir();
  const std::string common =
      absl::StrCat("tools/hublink fleet --host=127.0.0.1 --port=", (*broker)->tcp_port(),
                   " --clients=60 --threads=2 --connect_rate=200 --interval=300ms --qos=1 "
                   "--duration=1s --client_id='shard-dev-{i}' --json");
  absl::StatusOr<std::string> ran = RunCommand(absl::StrCat(
      "timeout 60 ", common, " --shard=0/2 >", dir, "/s0.json 2>", dir, "/s0.err & a=$!; ",
      "timeout 60 ", common, " --shard=1/2 >", dir, "/s1.json 2>", dir, "/s1.err & b=$!; ",
      "wait $a; ra=$?; wait $b; rb=$?; cat ", dir, "/s0.err ", dir, "/s1.err; exit $((ra | rb))"));
  ASSERT_TRUE(ran.ok()) << ran.status();

  for (int k = 0; k < 2; ++k) {
    absl::StatusOr<std::string> json = ReadFile(absl::StrCat(dir, "/s", k, ".json"));
    ASSERT_TRUE(json.ok()) << json.status();
    absl::StatusOr<FleetSummary> summary = FleetSummaryFromJson(*json, "shard");
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->shard, absl::StrCat(k, "/2"));
    EXPECT_EQ(summary->identity_first, k);
    EXPECT_EQ(summary->identity_step, 2);
    EXPECT_EQ(summary->clients, 30);
    EXPECT_EQ(summary->connected, 30);
  }
  std::multiset<std::string> ids = ConnectedIds((*broker)->log_file());
  EXPECT_EQ(ids.size(), 60u);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(ids.count(absl::StrCat("shard-dev-", i)), 1u) << i;

  absl::StatusOr<std::string> merged = RunCommand(
      absl::StrCat("tools/hublink fleet merge --json ", dir, "/s0.json ", dir, "/s1.json"));
  ASSERT_TRUE(merged.ok()) << merged.status();
  absl::StatusOr<FleetSummary> total = FleetSummaryFromJson(*merged, "merge");
  ASSERT_TRUE(total.ok()) << total.status() << "\n" << *merged;
  EXPECT_EQ(total->shards, 2);
  EXPECT_EQ(total->clients, 60);
  EXPECT_EQ(total->connected, 60);
  EXPECT_EQ(total->connect_us.count(), 60u);
  EXPECT_GE(total->messages_sent, 60);
  EXPECT_EQ(total->messages_acked, total->messages_sent);
  EXPECT_EQ(total->ack_us.count(), static_cast<uint64_t>(total->messages_acked));

  absl::StatusOr<std::string> text =
      RunCommand(absl::StrCat("tools/hublink fleet merge ", dir, "/s0.json ", dir, "/s1.json"));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_NE(text->find("fleet merged from 2: 60 of 60 clients connected"), std::string::npos)
      << *text;
}

// The lines of `file` between the "# [NAME script begins]" and "# [NAME script ends]" markers,
// with the indentation of the begin marker removed: the shell scripts of a YAML manifest's literal
// blocks, as the container's /bin/sh -c gets them.
absl::StatusOr<std::string> ScriptFromManifest(const std::string& file, const std::string& name) {
  absl::StatusOr<std::string> text = ReadFile(file);
  if (!text.ok()) return text.status();
  const std::string begins = absl::StrCat("# [", name, " script begins]");
  const std::string ends = absl::StrCat("# [", name, " script ends]");
  std::string script;
  size_t indent = std::string::npos;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    const size_t at = line.find_first_not_of(' ');
    const absl::string_view body = at == absl::string_view::npos ? "" : line.substr(at);
    if (indent == std::string::npos) {
      if (body == begins) indent = at;
      continue;
    }
    if (body == ends) return script;
    if (!body.empty() && at < indent) break;  // the literal block ended before the end marker
    absl::StrAppend(&script, line.size() > indent ? line.substr(indent) : "", "\n");
  }
  return absl::NotFoundError(absl::StrCat(file, ": no \"", begins, "\" ... \"", ends, "\""));
}

// docs/fleet-indexed-job.yaml as three pods of an Indexed Job would run it, but as three processes
// here: the manifest's own shard script with JOB_COMPLETION_INDEX=0,1,2 and SHARDS=3, at the same
// time against one mosquitto, then its merge script. Together the shards connect every identity
// exactly once, and the merge adds their summaries.
TEST(FleetTest, IndexedJobManifestScriptsShardAndMergeAsThreeProcesses) {
  const std::string manifest = "docs/fleet-indexed-job.yaml";
  absl::StatusOr<std::string> yaml = ReadFile(manifest);
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  // The settings that must agree for the shards to cover the identities (the file says so too).
  for (const char* line : {"completionMode: Indexed", "completions: 4", "parallelism: 4",
                           "- name: SHARDS\n              value: \"4\""}) {
    EXPECT_TRUE(absl::StrContains(*yaml, line)) << line;
  }
  absl::StatusOr<std::string> shard_script = ScriptFromManifest(manifest, "shard");
  ASSERT_TRUE(shard_script.ok()) << shard_script.status();
  absl::StatusOr<std::string> merge_script = ScriptFromManifest(manifest, "merge");
  ASSERT_TRUE(merge_script.ok()) << merge_script.status();
  const std::string dir = absl::StrCat(TempDir(), "/indexed_job");
  ASSERT_TRUE(RunCommand(absl::StrCat("mkdir -p ", dir, "/results")).ok());
  ASSERT_TRUE(WriteFile(dir + "/shard.sh", *shard_script).ok());
  ASSERT_TRUE(WriteFile(dir + "/merge.sh", *merge_script).ok());

  auto broker = MosquittoBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  // The container's environment: the manifest's variables, with `hublink` on PATH.
  const std::string env = absl::StrCat(
      "PATH=\"$PWD/tools:$PATH\" SHARDS=3 BROKER_HOST=127.0.0.1 BROKER_PORT=",
      (*broker)->tcp_port(),
      " CLIENTS=60 CONNECT_RATE=200 INTERVAL=300ms DURATION=1s RESULTS=", dir, "/results");
  std::string command;
  for (int k = 0; k < 3; ++k) {
    absl::StrAppend(&command, "JOB_COMPLETION_INDEX=", k, " ", env, " timeout 60 sh ", dir,
                    "/shard.sh 2>", dir, "/s", k, ".err & p", k, "=$!; ");
  }
  absl::StrAppend(&command, "wait $p0; r0=$?; wait $p1; r1=$?; wait $p2; r2=$?; cat ", dir,
                  "/s*.err; exit $((r0 | r1 | r2))");
  absl::StatusOr<std::string> ran = RunCommand(command);
  ASSERT_TRUE(ran.ok()) << ran.status();

  for (int k = 0; k < 3; ++k) {
    absl::StatusOr<std::string> json = ReadFile(absl::StrCat(dir, "/results/shard-", k, ".json"));
    ASSERT_TRUE(json.ok()) << json.status();
    absl::StatusOr<FleetSummary> summary = FleetSummaryFromJson(*json, "shard");
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->shard, absl::StrCat(k, "/3"));
    EXPECT_EQ(summary->identity_first, k);
    EXPECT_EQ(summary->identity_step, 3);
    EXPECT_EQ(summary->clients, 20);
    EXPECT_EQ(summary->connected, 20);
  }
  // Disjoint and complete: each of the 60 identities connected once, by one of the shards.
  std::multiset<std::string> ids = ConnectedIds((*broker)->log_file());
  EXPECT_EQ(ids.size(), 60u);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(ids.count(absl::StrCat("fleet-", i)), 1u) << i;

  // Every summary is there, so the merge script's wait loop returns at once.
  absl::StatusOr<std::string> merged_text =
      RunCommand(absl::StrCat("PATH=\"$PWD/tools:$PATH\" SHARDS=3 RESULTS=", dir,
                              "/results timeout 60 sh ", dir, "/merge.sh"));
  ASSERT_TRUE(merged_text.ok()) << merged_text.status();
  EXPECT_NE(merged_text->find("fleet merged from 3: 60 of 60 clients connected, 0 failed"),
            std::string::npos)
      << *merged_text;
  absl::StatusOr<std::string> merged_json = ReadFile(dir + "/results/merged.json");
  ASSERT_TRUE(merged_json.ok()) << merged_json.status();
  absl::StatusOr<FleetSummary> total = FleetSummaryFromJson(*merged_json, "merged.json");
  ASSERT_TRUE(total.ok()) << total.status();
  EXPECT_EQ(total->shards, 3);
  EXPECT_EQ(total->clients, 60);
  EXPECT_EQ(total->connected, 60);
  EXPECT_EQ(total->failed, 0);
  EXPECT_EQ(total->connect_us.count(), 60u);
  EXPECT_GE(total->messages_sent, 60);
  EXPECT_EQ(total->messages_acked, total->messages_sent);
  EXPECT_EQ(total->ack_us.count(), static_cast<uint64_t>(total->messages_acked));
}

// `hublink fleet` with a plugin from a shared object (the tap transport of
// //examples/tap_plugin:tap_plugin.so): named by --plugin, or by the --pipeline file's
// plugin_libraries. Every client connects through tcp > tap.
TEST(FleetTest, ClientsConnectThroughAPluginFromASharedObject) {
  auto broker = MosquittoBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  absl::StatusOr<std::string> shipped = ReadFile("examples/tap_plugin/mqtt_pipeline.textproto");
  ASSERT_TRUE(shipped.ok()) << shipped.status();
  const std::string pipeline = absl::StrReplaceAll(
      *shipped, {{"port: 1883", absl::StrCat("port: ", (*broker)->tcp_port())}});
  const std::string dir = TempDir();
  ASSERT_TRUE(WriteFile(dir + "/tap.textproto", pipeline).ok());
  ASSERT_TRUE(
      WriteFile(dir + "/tap_with_library.textproto",
                "plugin_libraries { path: \"examples/tap_plugin/tap_plugin.so\" }\n" + pipeline)
          .ok());
  struct Case {
    std::string name;
    std::string flags;
  };
  for (const Case& c :
       {Case{"flag", absl::StrCat("--plugin=examples/tap_plugin/tap_plugin.so "
                                  "--pipeline=",
                                  dir, "/tap.textproto")},
        Case{"file", absl::StrCat("--pipeline=", dir, "/tap_with_library.textproto")}}) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<std::string> out = RunCommand(
        absl::StrCat("timeout 60 tools/hublink fleet ", c.flags, " --clients=5 --client_id='tap-",
                     c.name, "-{i}' --duration=0 --json 2>", dir, "/tap_", c.name, ".err"));
    absl::StatusOr<std::string> log = ReadFile(absl::StrCat(dir, "/tap_", c.name, ".err"));
    ASSERT_TRUE(out.ok()) << out.status() << "\n" << (log.ok() ? *log : "");
    absl::StatusOr<FleetSummary> summary = FleetSummaryFromJson(*out, "stdout");
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->connected, 5);
    ASSERT_TRUE(log.ok()) << log.status();
    EXPECT_TRUE(absl::StrContains(*log, "[mqtt] open")) << *log;  // the tap's own log line
  }
  std::multiset<std::string> ids = ConnectedIds((*broker)->log_file());
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(ids.count(absl::StrCat("tap-flag-", i)), 1u) << i;
    EXPECT_EQ(ids.count(absl::StrCat("tap-file-", i)), 1u) << i;
  }
}

TEST(FleetTest, HelpNamesThePluginFlag) {
  absl::StatusOr<std::string> help = RunCommand("tools/hublink fleet --help");
  ASSERT_TRUE(help.ok()) << help.status();
  EXPECT_TRUE(absl::StrContains(*help, "--plugin=VALUE")) << *help;
  EXPECT_TRUE(absl::StrContains(*help, "--shard=VALUE")) << *help;
}

// 20 devices made by `local_hub.sh register-many` connect to the local hub over WSS, each signing
// its own credentials, and publish to their own data topic (which the hub's ACL allows).
TEST(FleetTest, RegisteredDevicesConnectToTheLocalHubOverWss) {
  const std::string dir = absl::StrCat(TempDir(), "/local_hub");
  std::string base = absl::StrCat("tools/local_hub/local_hub.sh --dir ", dir,
                                  " --plugin tools/local_hub/hub_plugin.so");
  int wss_port = 0;
  for (const char* flag : {" --mqtt-port ", " --ws-port ", " --wss-port "}) {
    absl::StatusOr<int> port = PickFreePort();
    ASSERT_TRUE(port.ok()) << port.status();
    absl::StrAppend(&base, flag, *port);
    wss_port = *port;
  }
  absl::StatusOr<std::string> started = RunCommand(base + " start 2>&1");
  ASSERT_TRUE(started.ok()) << started.status();
  // Stopped by its own script, which kills only the PID it recorded.
  struct Stop {
    std::string base;
    ~Stop() { (void)RunCommand(base + " stop >/dev/null 2>&1"); }
  } stop{base};
  const std::string devices = absl::StrCat(dir, "/fleet_devices");
  absl::StatusOr<std::string> registered =
      RunCommand(absl::StrCat(base, " register-many FLEETT 20 ", devices, " 2>&1"));
  ASSERT_TRUE(registered.ok()) << registered.status();

  std::ostringstream out, err;
  int code =
      RunFleet({absl::StrCat("--devices_dir=", devices), "--transport=wss", "--host=127.0.0.1",
                absl::StrCat("--port=", wss_port), absl::StrCat("--ca_file=", dir, "/tls/ca.crt"),
                "--threads=2", "--connect_rate=100", "--interval=300ms", "--qos=1", "--duration=1s",
                "--json"},
               out, err, nullptr);
  ASSERT_EQ(code, 0) << err.str() << out.str();
  absl::StatusOr<FleetSummary> summary = FleetSummaryFromJson(out.str(), "stdout");
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->clients, 20);
  EXPECT_EQ(summary->connected, 20);
  EXPECT_GE(summary->messages_sent, 20);
  EXPECT_EQ(summary->messages_acked, summary->messages_sent);
  EXPECT_EQ(summary->failures, 0);
  std::multiset<std::string> ids = ConnectedIds(absl::StrCat(dir, "/mosquitto.log"));
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(ids.count(absl::StrFormat("FLEETTfleet%05d", i)), 1u) << i;
  }
}

}  // namespace
}  // namespace cli
}  // namespace hublink
