// bazel run //examples:mqtt_sample -- --device_info=/path/to/device_info.json [--loop] [--count=N]
//
// The Tencent C SDK's mqtt_sample, on hublink: connect (WSS on 443 by default), get the hub's time
// and apply the NTP correction, subscribe to <productId>/<deviceName>/data, publish QoS1
// {"action": "publish_test", "count": "<n>"} to it, print what the cloud sends, log every event and
// every transport stage, and DISCONNECT on the way out. The same binary talks to the real IoT Hub
// or to the local hub (tools/local_hub) with --host/--port/--ca_file.
#include <condition_variable>
#include <csignal>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "plugins/builtin.h"
#include "plugins/log.h"
#include "plugins/pipeline.h"
#include "plugins/plugin_library.h"
#include "profiles/tencent/tencent_profile.h"
#include "profiles/tencent/time_sync.h"
#include "protocols/mqtt/client.h"
#include "tools/cli/connection_flags.h"
#include "tools/cli/flags.h"

namespace {

volatile std::sig_atomic_t interrupted = 0;

// What the sample waits on, filled in by the client's loop thread.
// std::mutex and std::condition_variable, per plugins/event_loop.h's locking policy.
struct State {
  std::mutex mutex;
  std::condition_variable changed;  // notified whenever a StateLock is released
  int events = 0;
  bool connected = false;
  absl::Status connect_failure;
  absl::optional<hublink::tencent::TimeSync> time_sync;
  int messages_received = 0;  // from the cloud: not the echo of one of our own publishes
  absl::flat_hash_set<std::string> published;
};

// Holds the state's mutex and wakes WaitFor() on release: the holder may have changed what it
// waits on.
class StateLock {
 public:
  explicit StateLock(State& state) : state_(state), lock_(state.mutex) {}
  ~StateLock() {
    lock_.unlock();
    state_.changed.notify_all();
  }
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

 private:
  State& state_;
  std::unique_lock<std::mutex> lock_;
};

// Waits until `done()` (evaluated under the state's mutex, re-checked whenever a StateLock is
// released) or `timeout`. Wakes every 100 ms to notice an interrupt.
bool WaitFor(State& state, std::function<bool()> done, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(state.mutex);
  absl::Time deadline = absl::Now() + timeout;
  while (!interrupted && !done()) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    state.changed.wait_for(lock,
                           absl::ToChronoMilliseconds(std::min(left, absl::Milliseconds(100))) +
                               std::chrono::milliseconds(1));
  }
  return done();
}

}  // namespace

int main(int argc, char** argv) {
  using hublink::ConnectionEvent;
  hublink::cli::ConnectionFlags connection;
  bool loop_forever = false;
  int count = 1;
  int expect_messages = 0;
  int interval_ms = 1000;
  std::string dump_pipeline;
  std::vector<std::string> plugin_paths;
  hublink::cli::FlagParser parser;
  connection.Register(parser);
  parser.AddList("plugin", &plugin_paths,
                 "load plugins from this shared object (repeatable; docs/plugin-authoring.md)");
  parser.AddBool("loop", &loop_forever, "keep publishing until interrupted (or --count)");
  parser.AddInt("count", &count, "how many messages to publish (with --loop: 0 = unlimited)");
  parser.AddInt("interval_ms", &interval_ms, "pause between publishes (the SDK sample's ~1 s)");
  parser.AddInt("expect_messages", &expect_messages,
                "exit non-zero unless at least this many messages arrived from the cloud");
  parser.AddString("dump_pipeline", &dump_pipeline,
                   "write the pipeline to FILE (- for stdout), exit");
  std::vector<std::string> positional;
  absl::Status parsed = parser.Parse(std::vector<std::string>(argv + 1, argv + argc), &positional);
  if (!parsed.ok() || !positional.empty() || connection.device_info.empty()) {
    std::cerr << "mqtt_sample: "
              << (!parsed.ok()                     ? std::string(parsed.message())
                  : connection.device_info.empty() ? std::string("--device_info: missing")
                                                   : "unexpected argument " + positional[0])
              << "\nflags:\n"
              << parser.Usage();
    return 2;
  }

  // The registry comes first: it is immutable once built, and the --plugin shared objects must be
  // loaded into it before the pipeline names their plugins (plugins/plugin_library.h).
  std::vector<hublink::PluginLibrary> libraries;
  for (const std::string& path : plugin_paths) {
    libraries.push_back(hublink::PluginLibraryFromPath(path));
  }
  absl::StatusOr<hublink::Registry> registry =
      hublink::BuildRegistryWithLibraries(hublink::RegisterBuiltinPlugins, libraries);
  if (!registry.ok()) {
    HLOG(ERROR) << registry.status().message();
    return 1;
  }

  hublink::tencent::DeviceInfo device;
  absl::StatusOr<hublink::Pipeline> pipeline =
      hublink::cli::BuildPipeline(connection, &device, &*registry);
  if (!pipeline.ok()) {
    HLOG(ERROR) << pipeline.status().message();
    return 1;
  }
  // A dumped pipeline loads the --plugin libraries by itself.
  for (const std::string& path : plugin_paths) {
    bool listed = false;
    for (const hublink::PluginLibrary& library : pipeline->plugin_libraries()) {
      listed = listed || library.path() == path;
    }
    if (!listed) *pipeline->add_plugin_libraries() = hublink::PluginLibraryFromPath(path);
  }
  if (!dump_pipeline.empty()) {
    absl::Status written =
        hublink::cli::WritePipeline(*pipeline, dump_pipeline, std::cout, &connection);
    if (!written.ok()) {
      HLOG(ERROR) << written.message();
      return 1;
    }
    return 0;
  }
  HLOG(INFO) << "Product_ID: " << device.product_id() << ", Device_Name: " << device.device_name()
             << ", auth_mode: " << device.auth_mode();

  auto resolved = hublink::ResolvedPipeline::Resolve(*pipeline, *registry,
                                                     hublink::cli::PipelineSource(connection));
  if (!resolved.ok()) {
    HLOG(ERROR) << resolved.status().message();
    return 1;
  }
  std::shared_ptr<const hublink::ResolvedPipeline> shared(std::move(resolved).value());
  HLOG(INFO) << "init " << shared->endpoint().host() << ":" << shared->endpoint().port() << ", "
             << shared->DescribeStack();

  State state;
  hublink::Client::Options options;
  options.on_stage = [](absl::string_view layer, absl::string_view detail) {
    HLOG(DEBUG) << layer << ": " << detail;
    if (hublink::MinLogLevel() > hublink::LogLevel::kDebug) HLOG(INFO) << layer << ": " << detail;
  };
  options.on_event = [&state](const ConnectionEvent& event) {
    switch (event.kind) {
      case ConnectionEvent::Kind::kConnected:
        HLOG(INFO) << "Cloud Device Construct Success";
        break;
      case ConnectionEvent::Kind::kLost:
        HLOG(WARNING) << "MQTT disconnect: " << event.reason.message();
        break;
      case ConnectionEvent::Kind::kReconnected:
        HLOG(INFO) << "MQTT reconnect success";
        break;
      default:
        HLOG(INFO) << hublink::DescribeConnectionEvent(event);
        break;
    }
    StateLock lock(state);
    ++state.events;
    if (event.kind == ConnectionEvent::Kind::kConnected) state.connected = true;
    if (!state.connected && event.kind == ConnectionEvent::Kind::kReconnecting &&
        state.connect_failure.ok()) {
      state.connect_failure = event.reason;
    }
  };
  auto client = hublink::Client::Create(shared, std::move(options));
  if (!client.ok()) {
    HLOG(ERROR) << client.status().message();
    return 1;
  }
  std::signal(SIGINT, [](int) { interrupted = 1; });
  std::signal(SIGTERM, [](int) { interrupted = 1; });

  (*client)->Connect();
  if (!WaitFor(
          state, [&] { return state.connected || !state.connect_failure.ok(); },
          absl::Seconds(30)) ||
      !state.connected) {
    HLOG(ERROR) << "Cloud Device Construct Failed: "
                << (state.connect_failure.ok() ? "timed out" : state.connect_failure.message());
    return 1;
  }

  // Time service: ask the hub for its clock and apply the NTP correction (the system clock is never
  // set).
  const std::string result_topic = hublink::tencent::SysResultTopic(device);
  absl::Time request_sent;
  auto subscribed =
      (*client)->Subscribe(result_topic, 0, [&](const hublink::mqtt::Message& message) {
        absl::Time received = absl::Now();
        auto reply = hublink::tencent::ParseTimeReply(message.payload);
        if (!reply.ok()) {
          if (reply.status().code() != absl::StatusCode::kNotFound) {
            HLOG(WARNING) << reply.status().message();
          }
          return;
        }
        HLOG(DEBUG) << "Recv Msg Topic:" << message.topic << ", payload:" << message.payload;
        StateLock lock(state);
        state.time_sync = hublink::tencent::ComputeTimeSync(*reply, request_sent, received);
      });
  absl::Status sub_status = subscribed.get();
  if (!sub_status.ok()) {
    HLOG(ERROR) << "subscribe " << result_topic << " failed: " << sub_status.message();
  } else {
    HLOG(INFO) << "subscribe success, topic: " << result_topic;
    request_sent = absl::Now();
    (*client)->Publish(hublink::tencent::SysOperationTopic(device),
                       hublink::tencent::TimeRequestPayload(), 0);
    if (WaitFor(
            state, [&] { return state.time_sync.has_value(); }, absl::Seconds(5))) {
      StateLock lock(state);
      HLOG(INFO) << "system time is " << absl::ToUnixSeconds(state.time_sync->server_now);
      (*client)->SetServerClockOffset(state.time_sync->offset);
      HLOG(INFO) << "sync ntp time success! offset "
                 << absl::FormatDuration(state.time_sync->offset) << ", round trip "
                 << absl::FormatDuration(state.time_sync->round_trip)
                 << " (system clock left unchanged)";
    } else {
      HLOG(WARNING) << "time sync: no reply from the hub within 5s";
    }
  }

  const std::string data_topic = hublink::tencent::DataTopic(device);
  absl::Status data_sub =
      (*client)
          ->Subscribe(data_topic, 0,
                      [&state](const hublink::mqtt::Message& message) {
                        HLOG(INFO) << "Receive Message With topicName:" << message.topic
                                   << ", payload:" << message.payload;
                        StateLock lock(state);
                        // The hub echoes our own publishes on this topic.
                        if (!state.published.contains(message.payload)) {
                          ++state.messages_received;
                        }
                      })
          .get();
  if (!data_sub.ok()) {
    HLOG(ERROR) << "subscribe " << data_topic << " failed: " << data_sub.message();
    return 1;
  }
  HLOG(INFO) << "subscribe success, topic: " << data_topic;

  int published = 0, failed = 0;
  for (int n = 0; !interrupted && (count <= 0 ? loop_forever : n < count); ++n) {
    std::string payload = absl::StrCat("{\"action\": \"publish_test\", \"count\": \"", n, "\"}");
    HLOG(DEBUG) << "publish topicName=" << data_topic << "|payload=" << payload;
    {
      StateLock lock(state);
      state.published.insert(payload);
    }
    auto ack = (*client)->Publish(data_topic, payload, 1);
    if (ack.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      HLOG(ERROR) << "publish timeout, count " << n;
      ++failed;
    } else if (absl::Status status = ack.get(); !status.ok()) {
      HLOG(ERROR) << "publish failed (nack), count " << n << ": " << status.message();
      ++failed;
    } else {
      HLOG(INFO) << "publish success, count " << n;
      ++published;
    }
    // Like the SDK sample: let incoming messages be processed, then pause.
    WaitFor(
        state, [] { return false; }, absl::Milliseconds(interval_ms));
    if (!loop_forever && count <= 0) break;
  }
  if (expect_messages > 0) {
    WaitFor(
        state, [&] { return state.messages_received >= expect_messages; }, absl::Seconds(10));
  }
  absl::Status disconnected = (*client)->Disconnect().get();
  HLOG(INFO) << "mqtt disconnect! "
             << (disconnected.ok() ? "" : std::string(disconnected.message()));
  int received;
  {
    StateLock lock(state);
    received = state.messages_received;
  }
  HLOG(INFO) << "published " << published << ", failed " << failed << ", received " << received
             << " from the cloud";
  if (failed > 0 || received < expect_messages) return 1;
  return 0;
}
