// Issue 13: what `hublink pub --outbox=DIR` reported as accepted survives kill -9.
//
// Drives the real `hublink` binary the way a user (or a supervisor script) would: publish
// "m {seq}" QoS 1 to a real mosquitto in chunks with --outbox=DIR --first_seq=S; when a run printed
// "accepted N", the next run starts at S + N, otherwise (killed before) it submits the same chunk
// again. K runs are SIGKILLed at seeded random moments: when the independent subscriber (a
// hublink::Client in this process, QoS 1) has received a random number of further messages, so
// that publishes are in flight (in the publisher's window of 64) when the kill lands. After the
// last kill, `hublink pub --outbox=DIR` without --message delivers what the store still holds and
// must exit 0. Every seq in [0, N) must have arrived at least once; duplicates (at-least-once) are
// reported, not failed.
//
// Short variant (the suite): 2,000 messages, 10 kills. The long variant, by hand:
//   OUTBOX_KILL_MESSAGES=20000 OUTBOX_KILL_KILLS=50 bazel test //tests/e2e:outbox_kill_test \
//       --test_env=OUTBOX_KILL_MESSAGES --test_env=OUTBOX_KILL_KILLS --test_output=all \
//       --test_timeout=900
// OUTBOX_KILL_SEED changes the seed (default 13).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "protocols/mqtt/client.h"
#include "tests/test_util.h"

namespace hublink {
namespace {

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  int parsed = 0;
  return value != nullptr && absl::SimpleAtoi(value, &parsed) && parsed > 0 ? parsed : fallback;
}

// A child with stdout and stderr in files of their own.
struct Child {
  pid_t pid = -1;
  std::string out_file;
  bool reaped = false;
  int status = 0;

  static Child Start(const std::vector<std::string>& argv, const std::string& out_file,
                     const std::string& err_file) {
    Child child;
    child.out_file = out_file;
    pid_t pid = fork();
    if (pid == 0) {
      int out = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = open(err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(out, 1);
      dup2(err, 2);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    child.pid = pid;
    return child;
  }
  bool Exited() {
    if (reaped) return true;
    if (waitpid(pid, &status, WNOHANG) == pid) reaped = true;
    return reaped;
  }
  void Wait() {
    if (!reaped && waitpid(pid, &status, 0) == pid) reaped = true;
  }
  void Kill() {
    if (!reaped) kill(pid, SIGKILL);
    Wait();
  }
  // "accepted N" on stdout, or -1.
  int Accepted() const {
    absl::StatusOr<std::string> text = testing::ReadFile(out_file);
    if (!text.ok()) return -1;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      int n = 0;
      if (absl::ConsumePrefix(&line, "accepted ") && absl::SimpleAtoi(line, &n)) return n;
    }
    return -1;
  }
};

class Received {
 public:
  void Add(absl::string_view payload) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++total_;
    int seq = 0;
    if (absl::ConsumePrefix(&payload, "m ") && absl::SimpleAtoi(payload, &seq)) ++counts_[seq];
  }
  size_t total() {
    std::lock_guard<std::mutex> lock(mutex_);
    return total_;
  }
  size_t distinct() {
    std::lock_guard<std::mutex> lock(mutex_);
    return counts_.size();
  }
  std::map<int, int> counts() {
    std::lock_guard<std::mutex> lock(mutex_);
    return counts_;
  }

 private:
  std::mutex mutex_;
  size_t total_ = 0;
  std::map<int, int> counts_;
};

TEST(OutboxKill, EveryAcceptedMessageArrivesDespiteKill9) {
  const int kMessages = EnvInt("OUTBOX_KILL_MESSAGES", 2000);
  const int kKills = EnvInt("OUTBOX_KILL_KILLS", 10);
  const int kSeed = EnvInt("OUTBOX_KILL_SEED", 13);
  const int kChunk = std::max(1, kMessages / (2 * kKills));
  std::mt19937 rng(kSeed);

  testing::MosquittoBroker::Options broker_options;
  broker_options.extra_config = {"max_queued_messages 0", "max_inflight_messages 100"};
  auto broker = testing::MosquittoBroker::Start(broker_options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  const int port = (*broker)->tcp_port();

  Registry::Builder builder;
  RegisterBuiltinPlugins(builder);
  Registry registry = *std::move(builder).Build();
  absl::StatusOr<Pipeline> config = ParsePipelineText(
      absl::StrCat("endpoint { host: \"127.0.0.1\" port: ", port,
                   " }\ntransports { name: \"tcp\" }\nprotocol { name: \"mqtt\" typed_config { "
                   "[type.googleapis.com/hublink.protocols.MqttConfig] { client_id: \"outbox-sub\" "
                   "clean_session: false } } }\n"),
      "sub");
  ASSERT_TRUE(config.ok()) << config.status();
  Received received;
  auto sub = Client::Create(*config, registry, Client::Options());
  ASSERT_TRUE(sub.ok()) << sub.status();
  (*sub)->Connect();
  ASSERT_TRUE(
      (*sub)
          ->Subscribe("outbox/kill", 1, [&](const mqtt::Message& m) { received.Add(m.payload); })
          .get()
          .ok());

  const std::string dir = absl::StrCat(testing::TempDir(), "/outbox_kill_", getpid());
  const std::string store = dir + "/store";
  mkdir(dir.c_str(), 0755);
  const std::string hublink = "tools/hublink";
  auto pub_args = [&](int first, int count) {
    std::vector<std::string> args = {hublink,
                                     "pub",
                                     "--host=127.0.0.1",
                                     absl::StrCat("--port=", port),
                                     "--qos=1",
                                     "--timeout=600",
                                     absl::StrCat("--outbox=", store)};
    if (count > 0) {
      args.push_back("--topic=outbox/kill");
      args.push_back(absl::StrCat("--count=", count));
      args.push_back("--message=m {seq}");
      args.push_back(absl::StrCat("--first_seq=", first));
    }
    return args;
  };

  int next = 0;  // first seq not yet reported accepted
  int kills = 0, runs = 0, resubmitted = 0;
  const int max_runs = kKills * 4 + kMessages / kChunk + 10;
  absl::Time start = absl::Now();
  while ((next < kMessages || kills < kKills) && runs < max_runs) {
    ++runs;
    int count = std::min(kChunk, kMessages - next);
    Child child = Child::Start(pub_args(next, count), absl::StrCat(dir, "/run", runs, ".out"),
                               dir + "/stderr.log");
    bool killed = false;
    if (kills < kKills) {
      // Kill at once (a quarter of the time: during start-up, store recovery, the first sends) or
      // once the subscriber has seen a random number of further messages.
      size_t target =
          received.total() + (std::uniform_int_distribution<int>(0, 3)(rng) == 0
                                  ? 0
                                  : std::uniform_int_distribution<int>(1, kChunk / 2 + 1)(rng));
      absl::Time deadline = absl::Now() + absl::Seconds(120);
      while (!child.Exited() && received.total() < target && absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(1));  // polling a condition, bounded by the deadline
      }
      if (!child.Exited()) {
        child.Kill();
        killed = true;
        ++kills;
      }
    }
    child.Wait();
    int accepted = child.Accepted();
    if (!killed) {
      ASSERT_TRUE(WIFEXITED(child.status) && WEXITSTATUS(child.status) == 0)
          << "run " << runs << " failed; see " << dir << "/stderr.log";
    }
    if (count > 0 && accepted == count) {
      next += count;
    } else if (count > 0) {
      ++resubmitted;  // killed before it said accepted: submit the same messages again
    }
  }
  ASSERT_EQ(next, kMessages) << "runs: " << runs;
  ASSERT_GE(kills, kKills);
  // Deliver whatever the store still holds; exits 0 once it is empty.
  Child drain = Child::Start(pub_args(0, 0), dir + "/drain.out", dir + "/stderr.log");
  drain.Wait();
  ASSERT_TRUE(WIFEXITED(drain.status) && WEXITSTATUS(drain.status) == 0)
      << "see " << dir << "/stderr.log";

  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (received.distinct() < static_cast<size_t>(kMessages) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));  // polling a condition, bounded by the deadline
  }
  std::map<int, int> counts = received.counts();
  std::vector<int> missing;
  int duplicates = 0;
  for (int seq = 0; seq < kMessages; ++seq) {
    auto it = counts.find(seq);
    if (it == counts.end()) {
      missing.push_back(seq);
    } else {
      duplicates += it->second - 1;
    }
  }
  std::printf(
      "outbox kill -9: %d messages, %d kills in %d runs (%d chunks resubmitted), %zu deliveries, "
      "%d duplicates, %zu missing, %.1f s\n",
      kMessages, kills, runs, resubmitted, received.total(), duplicates, missing.size(),
      absl::ToDoubleSeconds(absl::Now() - start));
  EXPECT_TRUE(missing.empty()) << "first missing: m " << missing.front();
  (*sub)->Disconnect().wait_for(std::chrono::seconds(5));
}

}  // namespace
}  // namespace hublink
