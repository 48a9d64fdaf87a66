// The usage example at the top of protocols/mqtt/client.h, as a program: the lines between the
// markers are the ones client.h shows, and //examples:client_header_example_sync_test keeps the two
// identical. //examples:client_header_example_test runs it against mosquitto.
//
//   client_header_example [PIPELINE_FILE]    (default: device.textproto)
//
// Exits 0 when the message was acknowledged and the client disconnected cleanly, 1 otherwise.
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "protocols/mqtt/client.h"

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "device.textproto";
  // [client.h example begins]
  absl::StatusOr<std::unique_ptr<hublink::ResolvedPipeline>> pipeline =
      hublink::LoadPipelineFile(path, hublink::BuiltinRegistry());
  if (!pipeline.ok()) {  // the error names the file, the field and the plugin
    std::fprintf(stderr, "%s\n", pipeline.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<hublink::Client>> client =
      hublink::Client::Create(std::move(pipeline).value());
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  // Runs on the client's loop thread. m.topic and m.payload point into the receive
  // buffer, valid only during this call: copy what you keep. Never block on a client
  // future in here: that deadlocks.
  (*client)->Subscribe("dev/control", 1, [](const hublink::mqtt::Message& m) {
    std::printf("%s: %s\n", std::string(m.topic).c_str(), std::string(m.payload).c_str());
  });
  (*client)->Connect();
  // QoS 1: resolves on PUBACK. While the broker is unreachable the message waits in
  // the queue, so wait with a deadline rather than get().
  std::future<absl::Status> acked = (*client)->Publish("dev/data", "{\"t\":21}", 1);
  absl::Status published = acked.wait_for(std::chrono::seconds(5)) == std::future_status::ready
                               ? acked.get()
                               : absl::DeadlineExceededError("no PUBACK within 5 s");
  std::printf("publish: %s\n", published.ToString().c_str());
  absl::Status closed = (*client)->Disconnect().get();  // resolves once the socket is closed
  if (!closed.ok()) std::fprintf(stderr, "disconnect: %s\n", closed.ToString().c_str());
  return published.ok() && closed.ok() ? 0 : 1;
  // [client.h example ends]
}
