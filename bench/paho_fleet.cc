// The Paho C side of bench/fleet_bench.sh: N idle connections held by one process through Paho's
// asynchronous API (Debian libpaho-mqtt-dev, -lpaho-mqtt3as), one MQTTAsync handle per connection
// as an application would write it, no persistence, MQTT 3.1.1, keep-alive 60 s (what the hublink
// side uses too). It connects them all at once, holds them idle for --hold seconds (keep-alive
// traffic only) and prints one JSON line: connected, failed, the connect wall time, VmRSS before
// and after, CPU while connecting and while idle.
//
//   paho_fleet --host=127.0.0.1 --port=1883 --transport=tcp|wss --ca_file=F --clients=N --hold=S
#include <MQTTAsync.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace {

std::atomic<int> g_connected{0};
std::atomic<int> g_failed{0};
std::atomic<int64_t> g_last_connect_ns{0};
std::atomic<int> g_lost{0};

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

void OnConnected(void*, MQTTAsync_successData*) {
  g_connected.fetch_add(1);
  g_last_connect_ns.store(absl::ToUnixNanos(absl::Now()));
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
  std::string host = "127.0.0.1", transport = "tcp", ca_file;
  int port = 1883, clients = 100, hold = 10, connect_timeout = 120;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    auto value = [&arg](absl::string_view name, std::string* out) {
      if (!absl::StartsWith(arg, absl::StrCat("--", name, "="))) return false;
      *out = std::string(arg.substr(name.size() + 3));
      return true;
    };
    std::string v;
    if (value("host", &host) || value("transport", &transport) || value("ca_file", &ca_file)) {
      continue;
    }
    if ((value("port", &v) && absl::SimpleAtoi(v, &port)) ||
        (value("clients", &v) && absl::SimpleAtoi(v, &clients)) ||
        (value("hold", &v) && absl::SimpleAtoi(v, &hold)) ||
        (value("connect_timeout", &v) && absl::SimpleAtoi(v, &connect_timeout))) {
      continue;
    }
    std::fprintf(stderr, "paho_fleet: bad argument %s\n", argv[i]);
    return 2;
  }
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
  const absl::Time start = absl::Now();
  MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
  ssl.trustStore = ca_file.c_str();
  ssl.enableServerCertAuth = 1;
  ssl.verify = 1;
  int started = 0;
  for (int i = 0; i < clients; ++i) {
    MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer;
    create.MQTTVersion = MQTTVERSION_3_1_1;
    const std::string id = absl::StrCat("paho-fleet-", i);
    int rc = MQTTAsync_createWithOptions(&handles[i], uri.c_str(), id.c_str(),
                                         MQTTCLIENT_PERSISTENCE_NONE, nullptr, &create);
    if (rc != MQTTASYNC_SUCCESS) {
      std::fprintf(stderr, "paho_fleet: MQTTAsync_create #%d: %d; stopping at %d clients\n", i, rc,
                   i);
      handles.resize(i);
      break;
    }
    MQTTAsync_setCallbacks(handles[i], nullptr, OnLost, OnArrived, nullptr);
    MQTTAsync_connectOptions options = MQTTAsync_connectOptions_initializer;
    if (wss) options = MQTTAsync_connectOptions_initializer_ws;
    options.keepAliveInterval = 60;
    options.cleansession = 1;
    options.MQTTVersion = MQTTVERSION_3_1_1;
    options.connectTimeout = connect_timeout;
    options.onSuccess = OnConnected;
    options.onFailure = OnFailed;
    if (wss) options.ssl = &ssl;
    rc = MQTTAsync_connect(handles[i], &options);
    if (rc != MQTTASYNC_SUCCESS) {
      g_failed.fetch_add(1);
      continue;
    }
    ++started;
  }
  // Bounded: until every started connect settled or the timeout.
  const absl::Time deadline = absl::Now() + absl::Seconds(connect_timeout);
  while (absl::Now() < deadline && g_connected.load() + g_failed.load() < clients) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const double cpu_connect = CpuSeconds() - cpu0;
  const int64_t last = g_last_connect_ns.load();
  const double wall = last > 0 ? absl::ToDoubleSeconds(absl::FromUnixNanos(last) - start) : 0;
  const double cpu_hold0 = CpuSeconds();
  absl::SleepFor(absl::Seconds(hold));
  const double cpu_idle = CpuSeconds() - cpu_hold0;
  const long rss_after = RssKib();
  const int connected = g_connected.load();
  std::printf(
      "{\"library\": \"paho\", \"transport\": \"%s\", \"clients\": %d, \"connected\": %d, "
      "\"failed\": %d, \"lost\": %d, \"connect_wall_s\": %.3f, \"connect_rate_per_s\": %.0f, "
      "\"rss_before_kib\": %ld, \"rss_after_kib\": %ld, \"rss_per_connection_kib\": %.2f, "
      "\"cpu_connect_s\": %.3f, \"cpu_idle_s\": %.3f, \"hold_s\": %d}\n",
      transport.c_str(), clients, connected, clients - connected, g_lost.load(), wall,
      wall > 0 ? connected / wall : 0, rss_before, rss_after,
      connected > 0 ? static_cast<double>(rss_after - rss_before) / connected : 0, cpu_connect,
      cpu_idle, hold);
  std::fflush(stdout);
  for (MQTTAsync& handle : handles) {
    MQTTAsync_disconnectOptions disconnect = MQTTAsync_disconnectOptions_initializer;
    disconnect.timeout = 100;
    MQTTAsync_disconnect(handle, &disconnect);
  }
  for (MQTTAsync& handle : handles) MQTTAsync_destroy(&handle);
  return connected == clients ? 0 : 1;
}
