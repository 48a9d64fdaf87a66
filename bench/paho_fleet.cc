// The Paho C side of bench/fleet_bench.sh: N connections held by one process through Paho's
// asynchronous API (Debian libpaho-mqtt-dev, -lpaho-mqtt3as), one MQTTAsync handle per connection
// as an application would write it, no persistence, MQTT 3.1.1, keep-alive 60 s (what the hublink
// side uses too). It creates them all, connects them (all at once, or --connect_rate per second
// like `hublink fleet`), holds them for --hold seconds and prints one JSON line: connected, failed,
// the connect wall time, VmRSS before and after, CPU while connecting and while holding.
//
// Idle (no --interval): keep-alive traffic only. Publish load (--interval=1s --qos=1 --size=64):
// what `hublink fleet --interval` does, so that the two rows compare. Each connection publishes
// once per interval from its first CONNACK on, at a seeded phase within the interval, from one
// application timer thread calling MQTTAsync_sendMessage; publish-to-ack latency is taken in the
// onSuccess callback (PUBACK for QoS 1). --hold is then the publishing phase after every client
// connected (hublink's --duration): messages per second and CPU per message count that phase only;
// afterwards the acknowledgements still in flight are awaited (at most 10 s) and counted.
//
//   paho_fleet --host=127.0.0.1 --port=1883 --transport=tcp|wss --ca_file=F --clients=N --hold=S
//              [--connect_rate=R] [--interval=1s --qos=1 --size=64] [--client_id='paho-{i}']
#include <MQTTAsync.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <queue>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace {

// The send time travels in the response's context pointer (below), so it must hold 64 bits.
static_assert(sizeof(void*) >= sizeof(int64_t), "paho_fleet needs 64-bit pointers");

std::atomic<int> g_connected{0};
std::atomic<int> g_failed{0};
std::atomic<int64_t> g_last_connect_ns{0};
std::atomic<int> g_lost{0};
std::atomic<int64_t> g_sent{0};
std::atomic<int64_t> g_acked{0};
std::atomic<int64_t> g_publish_errors{0};

int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The same binning as tools/cli/fleet.h's LogHistogram (8 logarithmic buckets per doubling of µs,
// a percentile is the geometric middle of its bucket), so that Paho's p50/p99 are rounded exactly
// like hublink's. (tools/cli links BoringSSL, Paho the system OpenSSL: no shared target.)
class LogHistogram {
 public:
  void Add(double micros) {
    const int bucket =
        micros < 1 ? 0 : static_cast<int>(std::floor(std::log2(micros) * kPerDoubling)) + 1;
    ++buckets_[bucket];
    ++count_;
  }
  uint64_t count() const { return count_; }
  double Percentile(double q) const {
    if (count_ == 0) return 0;
    const uint64_t rank =
        std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
    uint64_t seen = 0;
    for (const auto& [bucket, count] : buckets_) {
      seen += count;
      if (seen >= rank) return bucket == 0 ? 0.5 : std::exp2((bucket - 0.5) / kPerDoubling);
    }
    return std::exp2((buckets_.rbegin()->first - 0.5) / kPerDoubling);
  }

 private:
  static constexpr int kPerDoubling = 8;
  std::map<int, uint64_t> buckets_;
  uint64_t count_ = 0;
};

std::mutex g_ack_mutex;  // Paho calls onSuccess from its own threads
LogHistogram g_ack_us;

// The application's timer thread: one queue of (due time, connection) for every publishing
// connection, which is how a Paho application without an event loop would pace N clients.
class Publisher {
 public:
  Publisher(std::vector<MQTTAsync>& handles, std::vector<std::string> topics,
            absl::Duration interval, int qos, int size)
      : handles_(handles),
        topics_(std::move(topics)),
        interval_ns_(absl::ToInt64Nanoseconds(interval)),
        qos_(qos),
        payload_(static_cast<size_t>(std::max(size, 0)), 'x') {}

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

  // From the connect callback: the connection's first publish at a seeded phase within one
  // interval (as hublink does), so that the fleet's publishes spread evenly over the interval.
  void Add(int index, int seed) {
    std::mt19937_64 phase(static_cast<uint64_t>(seed) * 7919u + static_cast<uint64_t>(index));
    const double fraction = std::uniform_real_distribution<double>(0, 1)(phase);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      due_.emplace(SteadyNanos() + static_cast<int64_t>(fraction * interval_ns_), index);
    }
    wake_.notify_one();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  // After Stop(): the timer thread's own CPU, the harness's share of the process's CPU (it runs
  // through MQTTAsync_sendMessage too, so it is an upper bound on the harness's cost).
  double thread_cpu_s() const { return thread_cpu_s_; }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      if (due_.empty()) {
        wake_.wait(lock);
        continue;
      }
      const auto [when, index] = due_.top();
      const int64_t now = SteadyNanos();
      if (now < when) {
        wake_.wait_for(lock, std::chrono::nanoseconds(when - now));
        continue;
      }
      due_.pop();
      // The next one an interval after this one went out, like hublink's timer (no catch-up burst).
      due_.emplace(now + interval_ns_, index);
      lock.unlock();
      Send(index);
      lock.lock();
    }
    timespec cpu{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    thread_cpu_s_ = cpu.tv_sec + cpu.tv_nsec / 1e9;
  }

  static void OnPublished(void* context, MQTTAsync_successData*) {
    const int64_t sent = static_cast<int64_t>(reinterpret_cast<uintptr_t>(context));
    const double micros = static_cast<double>(SteadyNanos() - sent) / 1000;
    g_acked.fetch_add(1);
    std::lock_guard<std::mutex> lock(g_ack_mutex);
    g_ack_us.Add(micros);
  }
  static void OnPublishFailed(void*, MQTTAsync_failureData* failure) {
    if (g_publish_errors.fetch_add(1) == 0) {
      std::fprintf(stderr, "paho_fleet: first publish failure: %d %s\n",
                   failure ? failure->code : 0,
                   failure && failure->message ? failure->message : "");
    }
  }

  void Send(int index) {
    MQTTAsync_message message = MQTTAsync_message_initializer;
    message.payload = const_cast<char*>(payload_.data());
    message.payloadlen = static_cast<int>(payload_.size());
    message.qos = qos_;
    message.retained = 0;
    MQTTAsync_responseOptions response = MQTTAsync_responseOptions_initializer;
    response.onSuccess = OnPublished;
    response.onFailure = OnPublishFailed;
    // The send time as the context: no per-message allocation or token map in the measurement.
    response.context = reinterpret_cast<void*>(static_cast<uintptr_t>(SteadyNanos()));
    g_sent.fetch_add(1);
    const int rc =
        MQTTAsync_sendMessage(handles_[static_cast<size_t>(index)],
                              topics_[static_cast<size_t>(index)].c_str(), &message, &response);
    if (rc != MQTTASYNC_SUCCESS && g_publish_errors.fetch_add(1) == 0) {
      std::fprintf(stderr, "paho_fleet: first MQTTAsync_sendMessage error: %d (connection %d)\n",
                   rc, index);
    }
  }

  std::vector<MQTTAsync>& handles_;
  const std::vector<std::string> topics_;
  const int64_t interval_ns_;
  const int qos_;
  const std::string payload_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  double thread_cpu_s_ = 0;
  std::priority_queue<std::pair<int64_t, int>, std::vector<std::pair<int64_t, int>>,
                      std::greater<std::pair<int64_t, int>>>
      due_;
};

std::atomic<Publisher*> g_publisher{nullptr};  // set before the first connect, when publishing
int g_seed = 1;

long RssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

// The connect callbacks' context is the connection's index.
void OnConnected(void* context, MQTTAsync_successData*) {
  g_connected.fetch_add(1);
  g_last_connect_ns.store(absl::ToUnixNanos(absl::Now()));
  if (Publisher* publisher = g_publisher.load()) {
    publisher->Add(static_cast<int>(reinterpret_cast<intptr_t>(context)), g_seed);
  }
}
void OnFailed(void*, MQTTAsync_failureData* failure) {
  if (g_failed.fetch_add(1) == 0) {
    std::fprintf(stderr, "paho_fleet: first connect failure: %d %s\n", failure ? failure->code : 0,
                 failure && failure->message ? failure->message : "");
  }
}
void OnLost(void*, char*) { g_lost.fetch_add(1); }
int OnArrived(void*, char* topic, int, MQTTAsync_message* message) {
  MQTTAsync_freeMessage(&message);
  MQTTAsync_free(topic);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", transport = "tcp", ca_file, interval_text;
  std::string client_id = "paho-fleet-{i}", topic = "fleet/{client_id}";
  int port = 1883, clients = 100, hold = 10, connect_timeout = 120, connect_rate = 0, qos = 1,
      size = 16;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    auto value = [&arg](absl::string_view name, std::string* out) {
      if (!absl::StartsWith(arg, absl::StrCat("--", name, "="))) return false;
      *out = std::string(arg.substr(name.size() + 3));
      return true;
    };
    std::string v;
    if (value("host", &host) || value("transport", &transport) || value("ca_file", &ca_file) ||
        value("interval", &interval_text) || value("client_id", &client_id) ||
        value("topic", &topic)) {
      continue;
    }
    if ((value("port", &v) && absl::SimpleAtoi(v, &port)) ||
        (value("clients", &v) && absl::SimpleAtoi(v, &clients)) ||
        (value("hold", &v) && absl::SimpleAtoi(v, &hold)) ||
        (value("connect_timeout", &v) && absl::SimpleAtoi(v, &connect_timeout)) ||
        (value("connect_rate", &v) && absl::SimpleAtoi(v, &connect_rate)) ||
        (value("qos", &v) && absl::SimpleAtoi(v, &qos)) ||
        (value("size", &v) && absl::SimpleAtoi(v, &size)) ||
        (value("seed", &v) && absl::SimpleAtoi(v, &g_seed))) {
      continue;
    }
    std::fprintf(stderr, "paho_fleet: bad argument %s\n", argv[i]);
    return 2;
  }
  absl::Duration interval = absl::ZeroDuration();
  if (!interval_text.empty() &&
      (!absl::ParseDuration(interval_text, &interval) || interval <= absl::ZeroDuration())) {
    std::fprintf(stderr, "paho_fleet: --interval: \"%s\" is not a positive duration (e.g. 1s)\n",
                 interval_text.c_str());
    return 2;
  }
  if (qos < 0 || qos > 2 || clients < 1 || hold < 0 || connect_rate < 0) {
    std::fprintf(stderr,
                 "paho_fleet: --qos must be 0, 1 or 2; --clients >= 1; --hold and --connect_rate "
                 ">= 0\n");
    return 2;
  }
  const bool publishing = interval > absl::ZeroDuration();
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);

  const bool wss = transport == "wss";
  const std::string uri = absl::StrCat(wss ? "wss" : "tcp", "://", host, ":", port);
  MQTTAsync_init_options init = MQTTAsync_init_options_initializer;
  init.do_openssl_init = 1;
  MQTTAsync_global_init(&init);

  const double cpu0 = CpuSeconds();
  const long rss_before = RssKib();
  std::vector<MQTTAsync> handles(static_cast<size_t>(clients));
  std::vector<std::string> topics;
  for (int i = 0; i < clients; ++i) {
    MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer;
    create.MQTTVersion = MQTTVERSION_3_1_1;
    const std::string id = absl::StrReplaceAll(client_id, {{"{i}", absl::StrCat(i)}});
    int rc = MQTTAsync_createWithOptions(&handles[i], uri.c_str(), id.c_str(),
                                         MQTTCLIENT_PERSISTENCE_NONE, nullptr, &create);
    if (rc != MQTTASYNC_SUCCESS) {
      std::fprintf(stderr, "paho_fleet: MQTTAsync_create #%d: %d; stopping at %d clients\n", i, rc,
                   i);
      handles.resize(i);
      break;
    }
    MQTTAsync_setCallbacks(handles[i], nullptr, OnLost, OnArrived, nullptr);
    if (publishing) {
      topics.push_back(absl::StrReplaceAll(topic, {{"{i}", absl::StrCat(i)}, {"{client_id}", id}}));
    }
  }
  const long rss_created = RssKib();
  Publisher publisher(handles, std::move(topics), interval, qos, size);
  if (publishing) {
    g_publisher.store(&publisher);
    publisher.Start();
  }

  MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
  ssl.trustStore = ca_file.c_str();
  ssl.enableServerCertAuth = 1;
  ssl.verify = 1;
  // The ramp, as `hublink fleet --connect_rate` does it: the k-th connect at (k + u_k) / rate, u_k
  // uniform in [0, 1) from the seed; with no rate, all at once.
  std::mt19937_64 random(static_cast<uint64_t>(g_seed) * 1000003u);
  std::uniform_real_distribution<double> jitter(0, 1);
  const absl::Time start = absl::Now();
  for (size_t i = 0; i < handles.size(); ++i) {
    if (connect_rate > 0) {
      absl::SleepFor(start + absl::Seconds((i + jitter(random)) / connect_rate) - absl::Now());
    }
    MQTTAsync_connectOptions options = MQTTAsync_connectOptions_initializer;
    if (wss) options = MQTTAsync_connectOptions_initializer_ws;
    options.keepAliveInterval = 60;
    options.cleansession = 1;
    options.MQTTVersion = MQTTVERSION_3_1_1;
    options.connectTimeout = connect_timeout;
    options.onSuccess = OnConnected;
    options.onFailure = OnFailed;
    options.context = reinterpret_cast<void*>(static_cast<intptr_t>(i));
    if (wss) options.ssl = &ssl;
    if (MQTTAsync_connect(handles[i], &options) != MQTTASYNC_SUCCESS) g_failed.fetch_add(1);
  }
  // Bounded: until every connect settled or the timeout.
  const int created = static_cast<int>(handles.size());
  const absl::Time deadline = absl::Now() + absl::Seconds(connect_timeout);
  while (absl::Now() < deadline && g_connected.load() + g_failed.load() < created) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const double cpu_connect = CpuSeconds() - cpu0;
  const int64_t last = g_last_connect_ns.load();
  const double wall = last > 0 ? absl::ToDoubleSeconds(absl::FromUnixNanos(last) - start) : 0;

  const absl::Time hold_start = absl::Now();
  const int64_t sent_before_hold = g_sent.load();
  const double cpu_hold0 = CpuSeconds();
  absl::SleepFor(absl::Seconds(hold));
  const double cpu_hold = CpuSeconds() - cpu_hold0;
  const double hold_s = absl::ToDoubleSeconds(absl::Now() - hold_start);
  const int64_t hold_messages = g_sent.load() - sent_before_hold;
  const long rss_after = RssKib();
  if (publishing) {
    g_publisher.store(nullptr);
    publisher.Stop();
    // The acknowledgements still in flight, bounded.
    const absl::Time drained = absl::Now() + absl::Seconds(10);
    while (absl::Now() < drained && g_acked.load() + g_publish_errors.load() < g_sent.load()) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  const int connected = g_connected.load();
  double p50_ms, p90_ms, p99_ms;
  uint64_t ack_count;
  {
    std::lock_guard<std::mutex> lock(g_ack_mutex);
    p50_ms = g_ack_us.Percentile(0.5) / 1000;
    p90_ms = g_ack_us.Percentile(0.9) / 1000;
    p99_ms = g_ack_us.Percentile(0.99) / 1000;
    ack_count = g_ack_us.count();
  }
  const int64_t sent = g_sent.load(), acked = g_acked.load(), errors = g_publish_errors.load();
  // cpu_idle_s and cpu_hold_s are the same number: the first is what the idle table has always
  // read, the second is hublink fleet's name for it.
  std::printf(
      "{\"library\": \"paho\", \"transport\": \"%s\", \"clients\": %d, \"connected\": %d, "
      "\"failed\": %d, \"lost\": %d, \"connect_wall_s\": %.3f, \"connect_rate_per_s\": %.0f, "
      "\"rss_before_kib\": %ld, \"rss_created_kib\": %ld, \"rss_after_kib\": %ld, "
      "\"rss_per_connection_kib\": %.2f, \"cpu_connect_s\": %.3f, \"cpu_idle_s\": %.3f, "
      "\"cpu_hold_s\": %.3f, \"hold_s\": %d, \"duration_s\": %.3f, \"messages_sent\": %lld, "
      "\"messages_acked\": %lld, \"publish_errors\": %lld, \"hold_messages\": %lld, "
      "\"messages_per_s\": %.1f, \"publish_ack\": {\"count\": %llu, \"p50_ms\": %.4f, "
      "\"p90_ms\": %.4f, \"p99_ms\": %.4f}, \"cpu_us_per_message\": %.2f, "
      "\"cpu_timer_thread_s\": %.3f}\n",
      transport.c_str(), clients, connected, clients - connected, g_lost.load(), wall,
      wall > 0 ? connected / wall : 0, rss_before, rss_created, rss_after,
      connected > 0 ? static_cast<double>(rss_after - rss_before) / connected : 0, cpu_connect,
      cpu_hold, cpu_hold, hold, hold_s, static_cast<long long>(sent), static_cast<long long>(acked),
      static_cast<long long>(errors), static_cast<long long>(hold_messages),
      hold_s > 0 ? hold_messages / hold_s : 0, static_cast<unsigned long long>(ack_count), p50_ms,
      p90_ms, p99_ms, hold_messages > 0 ? cpu_hold * 1e6 / hold_messages : 0,
      publisher.thread_cpu_s());
  std::fflush(stdout);
  for (MQTTAsync& handle : handles) {
    MQTTAsync_disconnectOptions disconnect = MQTTAsync_disconnectOptions_initializer;
    disconnect.timeout = 100;
    MQTTAsync_disconnect(handle, &disconnect);
  }
  for (MQTTAsync& handle : handles) MQTTAsync_destroy(&handle);
  const bool published_all = !publishing || (errors == 0 && acked == sent);
  return connected == clients && published_all ? 0 : 1;
}
