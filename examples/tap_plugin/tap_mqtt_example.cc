// An out-of-tree plugin under MQTT: the "tap" transport between tcp and the "mqtt" protocol,
// driven through hublink::Client. docs/plugin-authoring.md shows the lines between the markers,
// and //examples/tap_plugin:tap_mqtt_example_test keeps the two identical and runs this against
// mosquitto.
//
//   bazel run //examples/tap_plugin:tap_mqtt_example -- PIPELINE_FILE
//
// PIPELINE_FILE is like examples/tap_plugin/mqtt_pipeline.textproto (point its endpoint at a
// broker). Exits 0 when the message was acknowledged and the tap saw the bytes.
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "examples/tap_plugin/tap_transport.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "protocols/mqtt/client.h"

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "examples/tap_plugin/mqtt_pipeline.textproto";
  // [plugin-authoring.md example begins]
  hublink::Registry::Builder builder;
  hublink::RegisterBuiltinPlugins(builder);  // tcp, tls, websocket, mqtt, ...
  acme::RegisterTapTransport(builder);       // your plugin, the same way
  absl::StatusOr<hublink::Registry> registry = std::move(builder).Build();
  if (!registry.ok()) {  // two plugins with one name or one config type
    std::fprintf(stderr, "%s\n", registry.status().ToString().c_str());
    return 1;
  }
  // Only read while resolving: the registry may go once the pipeline is resolved.
  absl::StatusOr<std::unique_ptr<hublink::ResolvedPipeline>> pipeline =
      hublink::LoadPipelineFile(path, *registry);
  if (!pipeline.ok()) {
    std::fprintf(stderr, "%s\n", pipeline.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<hublink::Client>> client =
      hublink::Client::Create(std::move(pipeline).value());
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  (*client)->Connect();  // every attempt builds tcp > tap afresh, then MQTT runs over the tap
  std::future<absl::Status> acked = (*client)->Publish("dev/data", "through the tap", 1);
  absl::Status published = acked.wait_for(std::chrono::seconds(5)) == std::future_status::ready
                               ? acked.get()
                               : absl::DeadlineExceededError("no PUBACK within 5 s");
  absl::Status closed = (*client)->Disconnect().get();
  std::printf("publish: %s; disconnect: %s\n", published.ToString().c_str(),
              closed.ToString().c_str());
  // [plugin-authoring.md example ends]
  acme::TapCounters counters = acme::GetTapCounters();
  std::printf("tap counted %llu bytes down, %llu bytes up\n",
              static_cast<unsigned long long>(counters.bytes_down),
              static_cast<unsigned long long>(counters.bytes_up));
  return published.ok() && closed.ok() && counters.bytes_down > 0 && counters.bytes_up > 0 ? 0 : 1;
}
