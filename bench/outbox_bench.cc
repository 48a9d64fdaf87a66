// QoS 1 throughput of hublink::Client with the durable outbox (MqttConfig.store.file) at sync
// ALWAYS / BATCH / NONE against the in-memory queue, over tcp to a local mosquitto it starts:
//
//   bazel run -c opt //bench:outbox_bench -- [--count=20000] [--payload=64] [--dir=DIR]
//
// Each row publishes --count QoS 1 messages as fast as the API takes them (the session's in-flight
// window, 64, bounds what is on the wire) and times until the last PUBACK. The store directory is
// under --dir (default $TMPDIR or /tmp), fresh per row and removed after it.
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "protocols/mqtt/client.h"
#include "tests/test_util.h"

namespace hublink {
namespace {

struct Row {
  std::string name;
  std::string store;  // MqttConfig fields; empty: memory
};

double RunRow(const Registry& registry, int port, const Row& row, int count, int payload_size) {
  std::string text = absl::StrCat(
      "endpoint { host: \"127.0.0.1\" port: ", port,
      " }\ntransports { name: \"tcp\" }\n"
      "protocol { name: \"mqtt\" typed_config { [type.googleapis.com/hublink.protocols.MqttConfig] "
      "{ client_id: \"outbox-bench\" ",
      row.store, " } } }\n");
  absl::StatusOr<Pipeline> config = ParsePipelineText(text, "bench");
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
    std::exit(1);
  }
  std::promise<void> connected;
  bool connected_set = false;
  Client::Options options;
  options.on_event = [&](const ConnectionEvent& e) {
    if (e.kind == ConnectionEvent::Kind::kConnected && !connected_set) {
      connected_set = true;
      connected.set_value();
    }
  };
  auto client = Client::Create(*config, registry, std::move(options));
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    std::exit(1);
  }
  (*client)->Connect();
  if (connected.get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    std::fprintf(stderr, "no CONNACK\n");
    std::exit(1);
  }
  std::mutex mutex;
  std::condition_variable cv;
  int done = 0, failed = 0;
  std::string payload(payload_size, 'x');
  absl::Time start = absl::Now();
  for (int i = 0; i < count; ++i) {
    (*client)->Publish("bench/outbox", payload, 1, false, [&](const absl::Status& s) {
      std::lock_guard<std::mutex> lock(mutex);
      ++done;
      if (!s.ok()) ++failed;
      if (done == count) cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mutex);
    if (!cv.wait_for(lock, std::chrono::minutes(10), [&] { return done == count; })) {
      std::fprintf(stderr, "%s: timed out with %d of %d\n", row.name.c_str(), done, count);
      std::exit(1);
    }
  }
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  (*client)->Disconnect().wait_for(std::chrono::seconds(5));
  client->reset();
  if (failed > 0) std::fprintf(stderr, "%s: %d publishes failed\n", row.name.c_str(), failed);
  return count / seconds;
}

int Main(int argc, char** argv) {
  int count = 20000;
  int payload = 64;
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = tmp != nullptr ? tmp : "/tmp";
  std::string paho = "bench/outbox_paho_bench";  // the runfiles path under bazel run
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--count=")) {
      if (!absl::SimpleAtoi(arg, &count) || count <= 0) return 2;
    } else if (absl::ConsumePrefix(&arg, "--payload=")) {
      if (!absl::SimpleAtoi(arg, &payload) || payload < 0) return 2;
    } else if (absl::ConsumePrefix(&arg, "--dir=")) {
      dir = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, "--paho=")) {
      paho = std::string(arg);
    } else {
      std::fprintf(stderr,
                   "usage: outbox_bench [--count=N] [--payload=BYTES] [--dir=DIR] [--paho=PATH]\n");
      return 2;
    }
  }
  Registry::Builder builder;
  RegisterBuiltinPlugins(builder);
  absl::StatusOr<Registry> registry = std::move(builder).Build();
  if (!registry.ok()) return 1;
  auto broker = testing::MosquittoBroker::Start();
  if (!broker.ok()) {
    std::fprintf(stderr, "mosquitto: %s\n", broker.status().ToString().c_str());
    return 1;
  }
  std::string base = absl::StrCat(dir, "/outbox_bench_", getpid());
  std::vector<Row> rows = {
      {"memory", ""},
      {"file NONE", absl::StrCat("store { file { path: \"", base, "/none\" sync: NONE } }")},
      {"file BATCH 50ms",
       absl::StrCat("store { file { path: \"", base, "/batch\" sync: BATCH } }")},
      {"file ALWAYS", absl::StrCat("store { file { path: \"", base, "/always\" sync: ALWAYS } }")},
  };
  std::printf("QoS 1, %d messages of %d bytes, tcp to mosquitto on 127.0.0.1\n", count, payload);
  std::printf("| store | msg/s |\n|---|---|\n");
  for (const Row& row : rows) {
    double rate = RunRow(*registry, (*broker)->tcp_port(), row, count, payload);
    std::printf("| %s | %.0f |\n", row.name.c_str(), rate);
    std::fflush(stdout);
    std::printf("RESULT store=%s rate=%.0f\n", row.name.c_str(), rate);
  }
  (void)!std::system(absl::StrCat("rm -rf '", base, "'").c_str());
  // Paho C with file persistence, a process of its own (see outbox_paho_bench.cc).
  if (access(paho.c_str(), X_OK) == 0) {
    absl::StatusOr<std::string> rate = testing::RunCommand(
        absl::StrCat(paho, " --port=", (*broker)->tcp_port(), " --count=", count,
                     " --payload=", payload, " --dir='", dir, "'"));
    if (rate.ok()) {
      std::string r(absl::StripAsciiWhitespace(*rate));
      std::printf("| Paho C, MQTTCLIENT_PERSISTENCE_DEFAULT | %s |\n", r.c_str());
      std::printf("RESULT store=paho_default rate=%s\n", r.c_str());
    } else {
      std::fprintf(stderr, "paho: %s\n", rate.status().ToString().c_str());
    }
  }
  return 0;
}

}  // namespace
}  // namespace hublink

int main(int argc, char** argv) { return hublink::Main(argc, argv); }
