#include "examples/sample_support.h"

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <utility>

#include "plugins/builtin.h"
#include "plugins/log.h"
#include "plugins/pipeline.h"
#include "plugins/plugin_library.h"

namespace hublink {
namespace examples {

bool ParseSampleFlags(absl::string_view name, int argc, char** argv, cli::FlagParser& parser,
                      SampleFlags& flags) {
  flags.connection.Register(parser);
  parser.AddList("plugin", &flags.plugin_paths,
                 "load plugins from this shared object (repeatable; docs/plugin-authoring.md)");
  std::vector<std::string> positional;
  absl::Status parsed = parser.Parse(std::vector<std::string>(argv + 1, argv + argc), &positional);
  std::string problem;
  if (!parsed.ok()) {
    problem = std::string(parsed.message());
  } else if (!positional.empty()) {
    problem = "unexpected argument " + positional[0];
  } else if (flags.connection.device_info.empty()) {
    problem = "--device_info: missing (bazel run //examples:" + std::string(name) +
              " with no flags uses the local hub)";
  }
  if (problem.empty()) return true;
  std::cerr << name << ": " << problem << "\nflags:\n" << parser.Usage();
  return false;
}

absl::StatusOr<Device> ConnectDevice(const SampleFlags& flags, absl::Duration timeout) {
  // The --plugin libraries join the registry before the pipeline names their plugins
  // (plugins/plugin_library.h).
  std::vector<PluginLibrary> libraries;
  for (const std::string& path : flags.plugin_paths) {
    libraries.push_back(PluginLibraryFromPath(path));
  }
  absl::StatusOr<Registry> registry = BuildRegistryWithLibraries(RegisterBuiltinPlugins, libraries);
  if (!registry.ok()) return registry.status();
  Device device;
  device.registry = std::make_unique<Registry>(*std::move(registry));
  absl::StatusOr<Pipeline> pipeline =
      cli::BuildPipeline(flags.connection, &device.info, device.registry.get());
  if (!pipeline.ok()) return pipeline.status();
  absl::StatusOr<std::unique_ptr<ResolvedPipeline>> resolved =
      ResolvedPipeline::Resolve(*pipeline, *device.registry, cli::PipelineSource(flags.connection));
  if (!resolved.ok()) return resolved.status();
  HLOG(INFO) << "Product_ID: " << device.info.product_id()
             << ", Device_Name: " << device.info.device_name() << ", "
             << (*resolved)->endpoint().host() << ":" << (*resolved)->endpoint().port() << ", "
             << (*resolved)->DescribeStack();

  // Connected, or the reason of the first failed attempt: the samples stop there rather than
  // retry for ever, so a wrong flag shows at once. std::mutex, per plugins/event_loop.h.
  struct Outcome {
    std::mutex mutex;
    std::condition_variable changed;
    bool connected = false;  // guarded by mutex
    absl::Status failure;    // guarded by mutex
  };
  auto outcome = std::make_shared<Outcome>();
  Client::Options options;
  options.on_event = [outcome](const ConnectionEvent& event) {
    HLOG(INFO) << DescribeConnectionEvent(event);
    {
      std::lock_guard<std::mutex> lock(outcome->mutex);
      if (event.kind == ConnectionEvent::Kind::kConnected) outcome->connected = true;
      if (!outcome->connected && !event.reason.ok() && outcome->failure.ok()) {
        outcome->failure = event.reason;
      }
    }
    outcome->changed.notify_all();
  };
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(
      std::shared_ptr<const ResolvedPipeline>(*std::move(resolved)), std::move(options));
  if (!client.ok()) return client.status();
  device.client = *std::move(client);
  device.client->Connect();
  std::unique_lock<std::mutex> lock(outcome->mutex);
  outcome->changed.wait_for(lock, absl::ToChronoMicroseconds(timeout),
                            [&outcome] { return outcome->connected || !outcome->failure.ok(); });
  if (outcome->connected) return device;
  absl::Status why = outcome->failure.ok()
                         ? absl::DeadlineExceededError(
                               absl::StrCat("no CONNACK within ", absl::FormatDuration(timeout)))
                         : outcome->failure;
  return absl::Status(why.code(), absl::StrCat("connecting: ", why.message()));
}

absl::optional<Device> ConnectSampleDevice(const SampleFlags& flags) {
  absl::StatusOr<Device> device = ConnectDevice(flags, absl::Seconds(30));
  if (!device.ok()) {
    HLOG(ERROR) << "Cloud Device Construct Failed: " << device.status().message();
    return absl::nullopt;
  }
  return *std::move(device);
}

void RunOnLoop(Client& client, std::function<void()> fn) {
  std::promise<void> ran;
  client.loop().Post([&] {
    fn();
    ran.set_value();
  });
  ran.get_future().wait();
}

void Disconnect(Client& client) {
  std::future<absl::Status> closed = client.Disconnect();
  if (closed.wait_for(std::chrono::seconds(5)) == std::future_status::ready) {
    absl::Status status = closed.get();
    HLOG(INFO) << "disconnected" << (status.ok() ? "" : ": " + std::string(status.message()));
  }
}

}  // namespace examples
}  // namespace hublink
