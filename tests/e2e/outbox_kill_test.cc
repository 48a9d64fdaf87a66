// Issue 13: what `hublink pub --outbox=DIR` reported as accepted survives kill -9.
//
// Drives the real `hublink` binary the way a user (or a supervisor script) would: publish "m {seq}"
// QoS 1 in chunks with --outbox=DIR --first_seq=S to a real mosquitto behind faultproxy (in this
// process, //tools/faultproxy:proxy): 10±5 ms latency each way, so publishes are in flight (sent,
// no PUBACK yet) at any moment, and on a seeded schedule PUBACKs held back for 150 ms about once a
// second (stall dir=down), so the window of 64 fills and further publishes wait in the store. When
// a run printed "accepted N", its seqs [S, S+N) count as accepted (also when it was killed after
// printing) and the next run starts at S + N; otherwise (killed before) it submits the same chunk
// again. K runs are SIGKILLed at seeded random moments: at once, or when the independent subscriber
// has received a random number of further messages. That subscriber is the real `mosquitto_sub -q 1
// -c` (its own process, persistent session, connected to mosquitto directly), its stdout in a file
// that this test reads as it grows; a marker published with mosquitto_pub shows it is subscribed
// before the first publisher starts. After the last kill, `hublink pub --outbox=DIR` without
// --message delivers what the store still holds and must exit 0. Every accepted seq must have
// reached mosquitto_sub at least once; duplicates (at-least-once) are reported, not failed.
//
// Short variant (the suite): 2,000 messages, 10 kills. The long variant, by hand (one
// command line):
//   bazel test //tests/e2e:outbox_kill_test --test_env=OUTBOX_KILL_MESSAGES=20000
//       --test_env=OUTBOX_KILL_KILLS=50 --test_output=all --test_timeout=900
// OUTBOX_KILL_SEED changes the seed (default 13) of the kill moments and of the proxy's faults.
// Seed 13, 2 vCPU: 2,000/10 in 4-5 s (378-460 duplicates over 4 runs, 0 missing); 20,000/50 once
// in 36.2 s, 115 runs, 21,586 deliveries, 1,586 duplicates, 0 missing.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "tools/faultproxy/fault.h"
#include "tools/faultproxy/proxy.h"
#include "tools/faultproxy/proxy_test_util.h"

namespace hublink {
namespace {

constexpr char kTopic[] = "outbox/kill";
constexpr char kMarker[] = "outbox-kill-marker";

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  int parsed = 0;
  return value != nullptr && absl::SimpleAtoi(value, &parsed) && parsed > 0 ? parsed : fallback;
}

// Polls `done` every 2 ms until it holds or `timeout` passes: the progress watched is another
// process's (a file growing, a child exiting), so there is nothing to block on.
bool PollUntil(const std::function<bool()>& done, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return done();
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

// The absolute path of `name` on $PATH ("" if absent). Resolved before fork(): a process with
// threads (the proxy's loop) may only make async-signal-safe calls between fork and exec.
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// A child with stdout and stderr in files of its own; SIGKILLed and reaped on destruction if it
// is still running (an ASSERT that returns early leaves no process behind).
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& out_file,
        const std::string& err_file)
      : out_file_(out_file) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      int out = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = open(err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(out, 1);
      dup2(err, 2);
      execv(args[0], args.data());
      _exit(127);
    }
    if (pid_ < 0) reaped_ = true;
  }
  ~Child() { Kill(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool Exited() {
    if (!reaped_ && waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
    return reaped_;
  }
  void Wait() {
    if (!reaped_ && waitpid(pid_, &status_, 0) == pid_) reaped_ = true;
  }
  void Kill() {
    if (!reaped_) kill(pid_, SIGKILL);
    Wait();
  }
  bool ExitedZero() const { return reaped_ && WIFEXITED(status_) && WEXITSTATUS(status_) == 0; }
  // N from an "accepted N" line on stdout, or -1. Complete lines only: a kill may cut a write.
  int Accepted() const {
    absl::StatusOr<std::string> text = testing::ReadFile(out_file_);
    if (!text.ok()) return -1;
    std::vector<absl::string_view> lines = absl::StrSplit(*text, '\n');
    lines.pop_back();  // after the last '\n': empty, or a line not yet complete
    for (absl::string_view line : lines) {
      int n = 0;
      if (absl::ConsumePrefix(&line, "accepted ") && absl::SimpleAtoi(line, &n)) return n;
    }
    return -1;
  }

 private:
  std::string out_file_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// mosquitto_sub's stdout (one payload per line, flushed per message), read as it grows.
class SubscriberOutput {
 public:
  explicit SubscriberOutput(std::string path) : path_(std::move(path)) {}
  ~SubscriberOutput() {
    if (fd_ >= 0) close(fd_);
  }
  SubscriberOutput(const SubscriberOutput&) = delete;
  SubscriberOutput& operator=(const SubscriberOutput&) = delete;

  // Takes in the complete lines appended since the last call.
  void Poll() {
    if (fd_ < 0) fd_ = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return;
    char buffer[65536];
    ssize_t n;
    while ((n = read(fd_, buffer, sizeof(buffer))) > 0) pending_.append(buffer, n);
    size_t start = 0;
    for (size_t newline; (newline = pending_.find('\n', start)) != std::string::npos;
         start = newline + 1) {
      Line(absl::string_view(pending_).substr(start, newline - start));
    }
    pending_.erase(0, start);
  }
  size_t deliveries() const { return deliveries_; }
  int markers() const { return markers_; }
  const std::map<int, int>& counts() const { return counts_; }
  const std::vector<std::string>& unexpected() const { return unexpected_; }

 private:
  void Line(absl::string_view line) {
    int seq = 0;
    if (line == kMarker) {
      ++markers_;
    } else if (absl::ConsumePrefix(&line, "m ") && absl::SimpleAtoi(line, &seq)) {
      ++deliveries_;
      ++counts_[seq];
    } else if (unexpected_.size() < 10) {
      unexpected_.emplace_back(line);
    }
  }

  const std::string path_;
  int fd_ = -1;
  std::string pending_;  // an incomplete last line
  size_t deliveries_ = 0;
  int markers_ = 0;
  std::map<int, int> counts_;
  std::vector<std::string> unexpected_;
};

TEST(OutboxKill, EveryAcceptedMessageArrivesDespiteKill9) {
  const int kMessages = EnvInt("OUTBOX_KILL_MESSAGES", 2000);
  const int kKills = EnvInt("OUTBOX_KILL_KILLS", 10);
  const int kSeed = EnvInt("OUTBOX_KILL_SEED", 13);
  const int kChunk = std::max(1, kMessages / (2 * kKills));
  std::mt19937 rng(kSeed);

  const std::string dir = absl::StrCat(testing::TempDir(), "/outbox_kill_", getpid());
  const std::string store = dir + "/store";
  mkdir(dir.c_str(), 0755);

  testing::MosquittoBroker::Options broker_options;
  // Nothing queued for mosquitto_sub is dropped (0 = no limit), however far it falls behind.
  broker_options.extra_config = {"max_queued_messages 0", "max_inflight_messages 100"};
  auto broker = testing::MosquittoBroker::Start(broker_options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  const int broker_port = (*broker)->tcp_port();

  // The publisher's way to the broker. The latency keeps publishes in flight (sent, no PUBACK yet)
  // whenever a kill lands; the scheduled stalls hold PUBACKs back long enough for the in-flight
  // window to fill, so that publishes also wait in the store, unsent.
  faultproxy::ProxyOptions proxy_options;
  proxy_options.seed = static_cast<uint64_t>(kSeed);
  auto schedule = faultproxy::ParseSchedule("every=1s,for=150ms,splay=250ms,fault=stall,dir=down");
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  proxy_options.schedule = *std::move(schedule);
  auto proxy = faultproxy::testing::RunningProxy::Start(broker_port, proxy_options);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  faultproxy::testing::ControlClient control((*proxy)->control_port());
  ASSERT_TRUE(control.ok());
  std::string latency = control.Command("latency delay=10ms jitter=5ms");
  ASSERT_TRUE(absl::StartsWith(latency, "ok id=")) << latency;

  // The independent subscriber: mosquitto_sub straight to the broker, QoS 1, persistent session.
  const std::string sub_out = dir + "/sub.out";
  const std::string sub_err = dir + "/sub.err";
  const std::string mosquitto_sub = FindOnPath("mosquitto_sub");
  ASSERT_FALSE(mosquitto_sub.empty())
      << "mosquitto_sub is not on PATH (apt install mosquitto-clients)";
  Child sub({mosquitto_sub, "-h", "127.0.0.1", "-p", absl::StrCat(broker_port), "-t", kTopic, "-q",
             "1", "-i", "outbox-kill-sub", "-c"},
            sub_out, sub_err);
  SubscriberOutput received(sub_out);
  // Subscribed once a marker published after its SUBSCRIBE arrives; a marker published before
  // that is lost (not retained), so it is published again.
  bool subscribed = false;
  for (int attempt = 0; attempt < 20 && !subscribed && !sub.Exited(); ++attempt) {
    absl::StatusOr<std::string> marked = testing::RunCommand(
        absl::StrCat("mosquitto_pub -h 127.0.0.1 -p ", broker_port,
                     " -q 1 -i outbox-kill-marker -t ", kTopic, " -m ", kMarker, " 2>&1"));
    ASSERT_TRUE(marked.ok()) << marked.status();
    subscribed = PollUntil(
        [&] {
          received.Poll();
          return received.markers() > 0;
        },
        absl::Milliseconds(500));
  }
  ASSERT_TRUE(subscribed) << "mosquitto_sub did not receive the marker; see " << sub_err;

  const std::string hublink = "tools/hublink";
  auto pub_args = [&](int first, int count) {
    std::vector<std::string> args = {hublink,
                                     "pub",
                                     "--host=127.0.0.1",
                                     absl::StrCat("--port=", (*proxy)->port()),
                                     "--qos=1",
                                     "--timeout=120",
                                     absl::StrCat("--outbox=", store)};
    if (count > 0) {
      args.push_back(absl::StrCat("--topic=", kTopic));
      args.push_back(absl::StrCat("--count=", count));
      args.push_back("--message=m {seq}");
      args.push_back(absl::StrCat("--first_seq=", first));
    }
    return args;
  };

  std::vector<bool> accepted(kMessages, false);  // seqs a run reported with "accepted N"
  int next = 0;                                  // first seq not yet reported accepted
  int kills = 0, runs = 0, resubmitted = 0, accepted_then_killed = 0, clean_runs = 0;
  const int max_runs = kKills * 4 + kMessages / kChunk + 10;
  absl::Time start = absl::Now();
  while ((next < kMessages || kills < kKills) && runs < max_runs) {
    ++runs;
    int count = std::min(kChunk, kMessages - next);
    Child child(pub_args(next, count), absl::StrCat(dir, "/run", runs, ".out"),
                dir + "/stderr.log");
    bool killed = false;
    if (kills < kKills) {
      // Kill at once (a quarter of the time: during start-up, store recovery, the first sends) or
      // once mosquitto_sub has printed a random number of further messages.
      received.Poll();
      size_t target = received.deliveries() +
                      (std::uniform_int_distribution<int>(0, 3)(rng) == 0
                           ? 0
                           : std::uniform_int_distribution<int>(1, kChunk / 2 + 1)(rng));
      PollUntil(
          [&] {
            received.Poll();
            return child.Exited() || received.deliveries() >= target;
          },
          absl::Seconds(120));
      if (!child.Exited()) {
        child.Kill();
        killed = true;
        ++kills;
      }
    }
    child.Wait();
    if (!killed) {
      ASSERT_TRUE(child.ExitedZero()) << "run " << runs << " failed; see " << dir << "/stderr.log";
      ++clean_runs;
    }
    // Read after the kill too: what a run printed before it died was reported all the same.
    if (count > 0 && child.Accepted() == count) {
      std::fill(accepted.begin() + next, accepted.begin() + next + count, true);
      next += count;
      if (killed) ++accepted_then_killed;
    } else if (count > 0) {
      ++resubmitted;  // killed before it said accepted: submit the same messages again
    }
  }
  ASSERT_EQ(next, kMessages) << "runs: " << runs;
  ASSERT_GE(kills, kKills);
  // Deliver whatever the store still holds; exits 0 once it is empty.
  {
    Child drain(pub_args(0, 0), dir + "/drain.out", dir + "/stderr.log");
    drain.Wait();
    ASSERT_TRUE(drain.ExitedZero()) << "see " << dir << "/stderr.log";
    ++clean_runs;
  }

  auto missing = [&] {
    std::vector<int> seqs;
    for (int seq = 0; seq < kMessages; ++seq) {
      if (accepted[seq] && received.counts().count(seq) == 0) seqs.push_back(seq);
    }
    return seqs;
  };
  PollUntil(
      [&] {
        received.Poll();
        return received.counts().size() >= static_cast<size_t>(kMessages) && missing().empty();
      },
      absl::Seconds(30));
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<int> lost = missing();
  int duplicates = 0;
  for (const auto& [seq, n] : received.counts()) duplicates += n - 1;
  std::string proxy_status = control.Command("status");
  using faultproxy::testing::StatusValue;
  std::printf(
      "outbox kill -9: %d messages, %d kills in %d runs (%d chunks resubmitted, %d killed after "
      "accepted), mosquitto_sub: %zu deliveries, %d duplicates, %zu missing, %.1f s; faultproxy: "
      "%lld connections, %lld bytes up, %lld down\n",
      kMessages, kills, runs, resubmitted, accepted_then_killed, received.deliveries(), duplicates,
      lost.size(), seconds, static_cast<long long>(StatusValue(proxy_status, "", "accepted")),
      static_cast<long long>(StatusValue(proxy_status, "", "up")),
      static_cast<long long>(StatusValue(proxy_status, "", "down")));
  EXPECT_TRUE(lost.empty()) << lost.size() << " accepted messages never reached mosquitto_sub; "
                            << "first missing: m " << lost.front();
  EXPECT_TRUE(received.unexpected().empty())
      << "mosquitto_sub printed: " << received.unexpected().front();
  // Every run that finished (and the drain) went through the proxy.
  EXPECT_GE(StatusValue(proxy_status, "", "accepted"), clean_runs) << proxy_status;
}

}  // namespace
}  // namespace hublink
