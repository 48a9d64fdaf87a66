#include "bench/scenarios.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/alloc_counter.h"
#include "bench/notification.h"

namespace hublink {
namespace bench {
namespace {

constexpr absl::Duration kConnectTimeout = absl::Seconds(10);

// Bounds the publishes a sender has outstanding (not yet reported by
// OnPublished) to `window`, the same way for both libraries. Refills once half
// the window has drained, so a sender that is ahead wakes once per window/2
// messages rather than once per message.
class PublishWindow : public ConnectionListener {
 public:
  explicit PublishWindow(int64_t window) : window_(window < 1 ? 1 : window) {}

  void OnMessage(absl::string_view, absl::string_view) override {}
  void OnPublished(bool ok) override {
    int64_t done = completed_.fetch_add(1) + 1;
    if (!ok) failed_.fetch_add(1);
    if (waiting_.load() && sent_.load() - done <= window_ / 2) {
      std::lock_guard<std::mutex> lock(mutex_);
      condition_.notify_one();
    }
  }

  // Blocks until one more publish fits; false at the deadline. The caller then
  // calls Sent().
  bool Acquire(absl::Time deadline) {
    if (sent_.load() - completed_.load() < window_) return true;
    return WaitUntil(window_ / 2, deadline);
  }
  void Sent() { sent_.fetch_add(1); }
  bool WaitAll(absl::Time deadline) { return WaitUntil(0, deadline); }

  int64_t sent() const { return sent_.load(); }
  int64_t completed() const { return completed_.load(); }
  int64_t failed() const { return failed_.load(); }

 private:
  bool WaitUntil(int64_t outstanding, absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    waiting_.store(true);
    while (sent_.load() - completed_.load() > outstanding) {
      if (absl::Now() >= deadline) {
        waiting_.store(false);
        return false;
      }
      // The short timeout is only a safety net; OnPublished signals.
      condition_.wait_for(lock, std::chrono::milliseconds(10));
    }
    waiting_.store(false);
    return true;
  }

  const int64_t window_;
  std::atomic<int64_t> sent_{0};
  std::atomic<int64_t> completed_{0};
  std::atomic<int64_t> failed_{0};
  std::atomic<bool> waiting_{false};
  // std::mutex and std::condition_variable: plugins/event_loop.h's locking policy.
  std::mutex mutex_;
  std::condition_variable condition_;
};

// A point in time with this process's CPU and the broker's (for windows that do
// not start with a publish of this process).
struct Mark {
  absl::Time at;
  absl::Duration cpu;
  absl::Duration broker_cpu;
};
Mark MarkNow(pid_t broker) { return {absl::Now(), ProcessCpu(), ProcessCpuOf(broker)}; }

// Counts what a subscriber receives. With `mark_first`, the first message also
// takes a Mark (--role=sub: the publisher is another process, so the window
// starts at the first message received).
class Sink : public ConnectionListener {
 public:
  explicit Sink(int64_t expected, bool mark_first = false, pid_t broker = 0)
      : expected_(expected), mark_first_(mark_first), broker_(broker) {}

  void OnMessage(absl::string_view, absl::string_view payload) override {
    int64_t count = received_.fetch_add(1) + 1;
    if (count == 1 && mark_first_) {
      first_ = MarkNow(broker_);
      first_seen_.Notify();
    }
    bytes_.fetch_add(static_cast<int64_t>(payload.size()));
    const int64_t now = absl::ToUnixNanos(absl::Now());
    const int64_t previous = last_nanos_.exchange(now);
    // One subscriber delivers on one thread, so this is the only writer.
    if (count > 1 && now - previous > max_gap_nanos_.load()) max_gap_nanos_.store(now - previous);
    if (count == expected_) all_.Notify();
  }
  void OnPublished(bool) override {}

  // Waits for every expected message, until `deadline`, or until nothing
  // arrived for `quiet` once `sender_done` says the sender has finished.
  void Wait(absl::Time deadline, absl::Duration quiet, const std::atomic<bool>& sender_done) {
    int64_t seen = -1;
    absl::Time progress = absl::Now();
    while (!all_.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
      absl::Time now = absl::Now();
      if (now >= deadline) return;
      int64_t count = received_.load();
      if (count != seen) {
        seen = count;
        progress = now;
      } else if (sender_done.load() && now - progress >= quiet) {
        return;
      }
    }
  }

  // With `mark_first`: waits for the first message; first() is valid once it
  // returned true.
  bool WaitFirst(absl::Time deadline) const {
    return first_seen_.WaitForNotificationWithDeadline(deadline);
  }
  const Mark& first() const { return first_; }

  int64_t received() const { return received_.load(); }
  int64_t bytes() const { return bytes_.load(); }
  absl::Time last() const { return absl::FromUnixNanos(last_nanos_.load()); }

  // The delivery fields of a RESULT line, for a window from `start` to `end` (the rate ends at the
  // last message received) in which this process used `cpu` and the broker `broker_cpu`.
  void AddDelivery(Result& result, absl::Time start, absl::Time end, absl::Duration cpu,
                   absl::Duration broker_cpu) const {
    const int64_t count = received();
    const double seconds = absl::ToDoubleSeconds((count > 0 ? last() : end) - start);
    const double window_s = absl::ToDoubleSeconds(end - start);
    result.Add("received", count)
        .Add("seconds", seconds)
        .Add("msgs_per_s", seconds > 0 ? count / seconds : 0.0)
        .Add("mb_per_s", seconds > 0 ? bytes() / seconds / 1e6 : 0.0)
        .Add("cpu_s", absl::ToDoubleSeconds(cpu))
        .Add("cpu_per_100k", count > 0 ? absl::ToDoubleSeconds(cpu) * 1e5 / count : 0.0)
        .Add("rss_kib", PeakRssKib())
        .Add("broker_cpu_pct",
             window_s > 0 ? 100.0 * absl::ToDoubleSeconds(broker_cpu) / window_s : 0.0)
        .Add("broker_cpu_s", absl::ToDoubleSeconds(broker_cpu))
        .Add("stalled", static_cast<int64_t>(count < expected_))
        // The longest wait between two deliveries: a broker that sits on a queued message until a
        // timer fires shows here (mosquitto 2.0's websockets loop, up to 100 ms).
        .Add("max_gap_ms", static_cast<double>(max_gap_nanos_.load()) / 1e6);
  }

 private:
  const int64_t expected_;
  const bool mark_first_;
  const pid_t broker_;
  Mark first_;
  Notification first_seen_;
  std::atomic<int64_t> received_{0};
  std::atomic<int64_t> bytes_{0};
  std::atomic<int64_t> last_nanos_{0};
  std::atomic<int64_t> max_gap_nanos_{0};
  Notification all_;
};

Target TargetFromFlags(const Flags& flags) {
  Target target;
  target.transport = flags.Get("transport", "tcp");
  target.host = flags.Get("host", "127.0.0.1");
  target.port = static_cast<int>(flags.GetInt("port", 1883));
  target.ca_file = flags.Get("ca_file");
  return target;
}

bool ConnectOne(Connection& c) {
  c.StartConnect();
  if (c.WaitConnected(kConnectTimeout)) return true;
  std::fprintf(stderr, "bench: connect failed\n");
  return false;
}

bool ConnectBoth(Connection& a, Connection& b) {
  a.StartConnect();
  b.StartConnect();
  bool a_up = a.WaitConnected(kConnectTimeout);
  bool b_up = b.WaitConnected(kConnectTimeout);
  if (!a_up || !b_up) std::fprintf(stderr, "bench: connect failed\n");
  return a_up && b_up;
}

// Publishes `count` messages through `sender`'s window, at most `rate` per second
// (0: unlimited) by absolute time, publish i no earlier than start + i/rate, so a
// late wake-up is caught up rather than lost. Stops early at `deadline`.
void PublishAll(Connection& pub, PublishWindow& sender, const std::string& topic,
                const std::string& payload, int qos, int64_t count, double rate, absl::Time start,
                absl::Time deadline) {
  for (int64_t i = 0; i < count; ++i) {
    if (rate > 0) {
      const absl::Duration wait = start + absl::Seconds(i / rate) - absl::Now();
      if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
    }
    if (!sender.Acquire(deadline)) break;
    sender.Sent();
    pub.Publish(topic, payload, qos);
  }
}

struct ThroughputParams {
  explicit ThroughputParams(const Flags& flags)
      : target(TargetFromFlags(flags)),
        run(flags.Get("run_id", "0")),
        qos(static_cast<int>(flags.GetInt("qos", 0))),
        count(flags.GetInt("count", 10000)),
        window(flags.GetInt("window", 64)),
        rate(flags.GetDouble("rate", 0)),
        cap(absl::Seconds(flags.GetDouble("seconds", 5))),
        broker(static_cast<pid_t>(flags.GetInt("broker_pid", 0))),
        payload(static_cast<size_t>(flags.GetInt("size", 64)), 'x'),
        topic(flags.Get("topic", absl::StrCat("t/", run))) {
    // --sub_transport/--sub_port put the subscriber on another listener
    // (diagnosis: which side of the broker limits).
    sub_target = target;
    if (flags.Has("sub_transport")) {
      sub_target.transport = flags.Get("sub_transport");
      sub_target.port = static_cast<int>(flags.GetInt("sub_port", target.port));
    }
  }

  Target target, sub_target;
  std::string run;
  int qos;
  int64_t count, window;
  double rate;  // msgs/s, 0 = unlimited
  absl::Duration cap;
  pid_t broker;
  std::string payload, topic;
};

// --role=sub: only the subscriber. Prints READY once subscribed, then counts
// --count messages from a publisher in another process; the window (rate, its
// CPU, the broker's CPU) runs from the first message received to the last.
int ThroughputSubscriber(const ThroughputParams& p, ConnectionFactory& factory) {
  Sink sink(p.count, /*mark_first=*/true, p.broker);
  std::unique_ptr<Connection> sub =
      factory.Make(p.sub_target, absl::StrCat("s", p.run), static_cast<int>(p.window), &sink);
  if (!ConnectOne(*sub)) return 2;
  if (!sub->Subscribe(p.topic, p.qos, kConnectTimeout)) {
    std::fprintf(stderr, "bench: subscribe failed\n");
    return 2;
  }
  std::printf("READY\n");
  std::fflush(stdout);
  // The publisher process starts now: allow it a connect timeout to begin.
  Mark first = MarkNow(p.broker), end = first;
  if (sink.WaitFirst(first.at + kConnectTimeout + p.cap)) {
    first = sink.first();
    // The sender is elsewhere: any quiet second after the first message ends the run.
    const std::atomic<bool> sender_done{true};
    sink.Wait(first.at + p.cap, absl::Seconds(1), sender_done);
    end = MarkNow(p.broker);
  } else {
    std::fprintf(stderr, "bench: no message arrived\n");
  }
  Result result;
  result.Add("role", "sub");
  sink.AddDelivery(result, first.at, end.at, end.cpu - first.cpu,
                   end.broker_cpu - first.broker_cpu);
  sub->Disconnect();
  result.Print();
  return 0;
}

// --role=pub: only the publisher: --count messages through the window (paced by
// --rate), then waits for their completions.
int ThroughputPublisher(const ThroughputParams& p, ConnectionFactory& factory) {
  PublishWindow sender(p.window);
  std::unique_ptr<Connection> pub =
      factory.Make(p.target, absl::StrCat("p", p.run), static_cast<int>(p.window), &sender);
  if (!ConnectOne(*pub)) return 2;
  const Mark start = MarkNow(p.broker);
  const absl::Time deadline = start.at + p.cap;
  PublishAll(*pub, sender, p.topic, p.payload, p.qos, p.count, p.rate, start.at, deadline);
  const bool all = sender.WaitAll(deadline + absl::Seconds(1));
  const Mark end = MarkNow(p.broker);
  const double seconds = absl::ToDoubleSeconds(end.at - start.at);
  const absl::Duration cpu = end.cpu - start.cpu;
  Result result;
  result.Add("role", "pub")
      .Add("sent", sender.sent())
      .Add("completed", sender.completed())
      .Add("failed", sender.failed())
      .Add("seconds", seconds)
      .Add("msgs_per_s", seconds > 0 ? sender.completed() / seconds : 0.0)
      .Add("cpu_s", absl::ToDoubleSeconds(cpu))
      .Add("cpu_per_100k",
           sender.completed() > 0 ? absl::ToDoubleSeconds(cpu) * 1e5 / sender.completed() : 0.0)
      .Add("rss_kib", PeakRssKib())
      .Add("broker_cpu_s", absl::ToDoubleSeconds(end.broker_cpu - start.broker_cpu))
      .Add("stalled", static_cast<int64_t>(!all || sender.completed() < p.count));
  pub->Disconnect();
  result.Print();
  return 0;
}

// QoS 0 or 1 messages of --size bytes from one connection to another through
// the broker, counted at the subscriber. --count messages or --seconds,
// whichever ends first; --rate paces the publisher. --role=sub|pub runs one side
// only (the driver's cross row pairs a publisher of one library with a
// subscriber of the other, on a shared --topic).
int Throughput(const Flags& flags, ConnectionFactory& factory) {
  const ThroughputParams p(flags);
  const std::string role = flags.Get("role", "both");
  if (role == "sub") return ThroughputSubscriber(p, factory);
  if (role == "pub") return ThroughputPublisher(p, factory);
  if (role != "both") {
    std::fprintf(stderr, "bench: --role must be both, pub or sub\n");
    return 64;
  }

  PublishWindow sender(p.window);
  Sink sink(p.count);
  std::unique_ptr<Connection> sub =
      factory.Make(p.sub_target, absl::StrCat("s", p.run), static_cast<int>(p.window), &sink);
  std::unique_ptr<Connection> pub =
      factory.Make(p.target, absl::StrCat("p", p.run), static_cast<int>(p.window), &sender);
  if (!ConnectBoth(*sub, *pub)) return 2;
  if (!sub->Subscribe(p.topic, p.qos, kConnectTimeout)) {
    std::fprintf(stderr, "bench: subscribe failed\n");
    return 2;
  }

  const absl::Duration cpu0 = ProcessCpu();
  const absl::Duration broker0 = ProcessCpuOf(p.broker);
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + p.cap;
  std::atomic<bool> sender_done{false};
  PublishAll(*pub, sender, p.topic, p.payload, p.qos, p.count, p.rate, start, deadline);
  sender_done.store(true);
  sink.Wait(deadline, absl::Seconds(1), sender_done);
  const absl::Time end = absl::Now();
  const absl::Duration cpu = ProcessCpu() - cpu0;
  const absl::Duration broker_cpu = ProcessCpuOf(p.broker) - broker0;

  Result result;
  result.Add("sent", sender.sent())
      .Add("completed", sender.completed())
      .Add("failed", sender.failed());
  sink.AddDelivery(result, start, end, cpu, broker_cpu);
  pub->Disconnect();
  sub->Disconnect();
  result.Print();
  return 0;
}

// QoS 1 ping-pong between two connections of the same library: the pinger
// publishes on ping/, the ponger echoes each message on pong/, the pinger times
// the round trip (two broker hops, four PUBLISH/PUBACK exchanges) and sends the
// next ping from its message callback.
class Pinger : public ConnectionListener {
 public:
  Pinger(int64_t total, int64_t warmup, std::string topic)
      : total_(total), warmup_(warmup), topic_(std::move(topic)) {
    rtts_.reserve(static_cast<size_t>(total));
  }
  void set_connection(Connection* connection) { connection_ = connection; }

  // Pings until `total` round trips were timed or `deadline` passed.
  void Start(absl::Time deadline) {
    deadline_ = deadline;
    Ping();
  }
  void OnMessage(absl::string_view, absl::string_view) override {
    absl::Time now = absl::Now();
    if (round_++ >= warmup_) rtts_.push_back(absl::ToDoubleMicroseconds(now - sent_at_));
    if (static_cast<int64_t>(rtts_.size()) < total_ && now < deadline_) {
      Ping();
    } else {
      done_.Notify();
    }
  }
  void OnPublished(bool) override {}

  bool Wait(absl::Time deadline) { return done_.WaitForNotificationWithDeadline(deadline); }
  // Only after Wait() returned true.
  std::vector<double>& rtts() { return rtts_; }

 private:
  void Ping() {
    sent_at_ = absl::Now();
    connection_->Publish(topic_, "ping", 1);
  }

  const int64_t total_, warmup_;
  const std::string topic_;
  absl::Time deadline_;
  Connection* connection_ = nullptr;
  absl::Time sent_at_;
  int64_t round_ = 0;
  std::vector<double> rtts_;
  Notification done_;
};

class Ponger : public ConnectionListener {
 public:
  explicit Ponger(std::string topic) : topic_(std::move(topic)) {}
  void set_connection(Connection* connection) { connection_ = connection; }
  void OnMessage(absl::string_view, absl::string_view payload) override {
    connection_->Publish(topic_, payload, 1);
  }
  void OnPublished(bool) override {}

 private:
  const std::string topic_;
  Connection* connection_ = nullptr;
};

int Latency(const Flags& flags, ConnectionFactory& factory) {
  const Target target = TargetFromFlags(flags);
  const std::string run = flags.Get("run_id", "0");
  const int64_t count = flags.GetInt("count", 1000);
  const int64_t warmup = flags.GetInt("warmup", 20);
  const absl::Duration cap = absl::Seconds(flags.GetDouble("seconds", 10));
  const std::string ping = absl::StrCat("ping/", run), pong = absl::StrCat("pong/", run);

  Pinger pinger(count, warmup, ping);
  Ponger ponger(pong);
  std::unique_ptr<Connection> a = factory.Make(target, absl::StrCat("a", run), 64, &pinger);
  std::unique_ptr<Connection> b = factory.Make(target, absl::StrCat("b", run), 64, &ponger);
  pinger.set_connection(a.get());
  ponger.set_connection(b.get());
  if (!ConnectBoth(*a, *b)) return 2;
  if (!a->Subscribe(pong, 1, kConnectTimeout) || !b->Subscribe(ping, 1, kConnectTimeout)) {
    std::fprintf(stderr, "bench: subscribe failed\n");
    return 2;
  }
  const absl::Time deadline = absl::Now() + cap;
  pinger.Start(deadline);
  // A round trip in progress at the deadline still ends the run: allow it a few
  // seconds.
  if (!pinger.Wait(deadline + absl::Seconds(3))) {
    std::fprintf(stderr, "bench: a ping was lost\n");
    return 2;
  }
  std::vector<double>& rtts = pinger.rtts();
  double mean = 0;
  for (double rtt : rtts) mean += rtt;
  if (!rtts.empty()) mean /= rtts.size();
  Result result;
  result.Add("n", static_cast<int64_t>(rtts.size()))
      .Add("mean_us", mean)
      .Add("p50_us", Percentile(rtts, 50))
      .Add("p99_us", Percentile(rtts, 99))
      .Add("max_us", Percentile(rtts, 100))
      .Add("capped", static_cast<int64_t>(static_cast<int64_t>(rtts.size()) < count));
  a->Disconnect();
  b->Disconnect();
  result.Print();
  return 0;
}

class Ignore : public ConnectionListener {
 public:
  void OnMessage(absl::string_view, absl::string_view) override {}
  void OnPublished(bool) override {}
};

// --count fresh connections one after another: StartConnect() to CONNACK.
int ConnectTime(const Flags& flags, ConnectionFactory& factory) {
  const Target target = TargetFromFlags(flags);
  const std::string run = flags.Get("run_id", "0");
  const int64_t count = flags.GetInt("count", 50);
  const absl::Time deadline = absl::Now() + absl::Seconds(flags.GetDouble("seconds", 30));
  Ignore ignore;
  std::vector<double> millis;
  int64_t failures = 0;
  for (int64_t i = 0; i < count && absl::Now() < deadline; ++i) {
    std::unique_ptr<Connection> connection =
        factory.Make(target, absl::StrCat("c", run, "-", i), 64, &ignore);
    absl::Time start = absl::Now();
    connection->StartConnect();
    if (connection->WaitConnected(kConnectTimeout)) {
      millis.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    } else {
      ++failures;
    }
    connection->Disconnect();
  }
  Result result;
  result.Add("n", static_cast<int64_t>(millis.size()))
      .Add("failures", failures)
      .Add("min_ms", Percentile(millis, 0))
      .Add("p50_ms", Percentile(millis, 50))
      .Add("p90_ms", Percentile(millis, 90))
      .Add("max_ms", Percentile(millis, 100));
  result.Print();
  return millis.empty() ? 2 : 0;
}

// Heap allocations per publish once the connection is warm: --warmup publishes,
// then --count counted ones, both paced by the same window; no subscriber, so
// receiving costs nothing.
int Allocs(const Flags& flags, ConnectionFactory& factory) {
  const Target target = TargetFromFlags(flags);
  const std::string run = flags.Get("run_id", "0");
  const int qos = static_cast<int>(flags.GetInt("qos", 0));
  const int64_t count = flags.GetInt("count", 20000);
  const int64_t warmup = flags.GetInt("warmup", 2000);
  const int64_t window = flags.GetInt("window", 64);
  const std::string payload(static_cast<size_t>(flags.GetInt("size", 64)), 'x');
  const std::string topic = absl::StrCat("n/", run);

  PublishWindow sender(window);
  std::unique_ptr<Connection> connection =
      factory.Make(target, absl::StrCat("m", run), static_cast<int>(window), &sender);
  connection->StartConnect();
  if (!connection->WaitConnected(kConnectTimeout)) return 2;
  const absl::Time deadline = absl::Now() + absl::Seconds(flags.GetDouble("seconds", 20));
  auto publish = [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      if (!sender.Acquire(deadline)) return false;
      sender.Sent();
      connection->Publish(topic, payload, qos);
    }
    return sender.WaitAll(deadline);
  };
  if (!publish(warmup)) return 2;
  const AllocSnapshot before = CurrentAllocs();
  if (!publish(count)) return 2;
  const AllocSnapshot after = CurrentAllocs();
  Result result;
  result.Add("n", count)
      .Add("counting", static_cast<int64_t>(AllocCountingEnabled()))
      .Add("allocs_per_msg", static_cast<double>(after.calls - before.calls) / count)
      .Add("alloc_bytes_per_msg", static_cast<double>(after.bytes - before.bytes) / count);
  connection->Disconnect();
  result.Print();
  return 0;
}

}  // namespace

int RunScenario(const Flags& flags, ConnectionFactory& factory) {
  const std::string scenario = flags.Get("scenario");
  if (scenario == "throughput") return Throughput(flags, factory);
  if (scenario == "latency") return Latency(flags, factory);
  if (scenario == "connect") return ConnectTime(flags, factory);
  if (scenario == "allocs") return Allocs(flags, factory);
  std::fprintf(stderr, "bench: --scenario must be throughput, latency, connect or allocs\n");
  return 64;
}

}  // namespace bench
}  // namespace hublink
