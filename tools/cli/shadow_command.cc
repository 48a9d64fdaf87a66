#include "tools/cli/shadow_command.h"

#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "profiles/tencent/shadow.h"
#include "protocols/mqtt/client.h"
#include "tools/cli/connection_flags.h"
#include "tools/cli/flags.h"
#include "tools/cli/service_command_util.h"

namespace hublink {
namespace cli {
namespace {

struct ShadowFlags {
  ConnectionFlags connection;
  std::string state;
  int version = 0;
  bool clear_desired = false;
  int deltas = 0;
  int timeout = 10;
};

// Shared between the loop thread (completions, deltas, events) and the command's thread.
struct Outcome {
  std::mutex mutex;
  std::condition_variable changed;
  bool done = false;
  absl::StatusOr<tencent::ShadowDocument> result = absl::UnknownError("no reply yet");
  std::vector<tencent::ShadowDocument> deltas;
  absl::Status last_connection_failure;  // why the latest attempt failed, for a timeout message
  bool connected = false;
};

constexpr char kUsage[] = "hublink shadow get|update|delete --device_info=FILE [flags]";

int Usage(std::ostream& err, absl::string_view problem, const FlagParser& parser) {
  return PrintUsageError(err, "shadow", problem, kUsage, parser);
}

int Fail(std::ostream& err, const absl::Status& status) {
  err << "hublink shadow: " << status.message() << "\n";
  return 1;
}

}  // namespace

int RunShadow(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
              const std::function<void(Registry::Builder&)>& register_plugins) {
  ShadowFlags flags;
  FlagParser parser;
  flags.connection.Register(parser);
  parser.AddString("state", &flags.state,
                   "update: the reported state, a JSON object such as '{\"temperature\":21}'");
  parser.AddInt("version", &flags.version,
                "update: only if the shadow is at this version (default 0: do not check)");
  parser.AddBool("clear_desired", &flags.clear_desired,
                 "update: also send \"desired\": null (the device acted on the desired state)");
  parser.AddInt("deltas", &flags.deltas,
                "after the operation, wait for this many delta pushes and print each");
  parser.AddInt("timeout", &flags.timeout,
                "seconds to wait for the connection and each reply (default 10)");
  std::vector<std::string> positional;
  if (absl::optional<int> done = ParseCommandArgs(
          args, "shadow", kUsage, "  a Tencent IoT Hub device's shadow document, printed as JSON\n",
          parser, out, err, &positional)) {
    return *done;
  }
  if (positional.size() != 1) {
    return Usage(err, "say one operation: get, update or delete", parser);
  }
  const std::string operation = positional[0];
  if (operation != "get" && operation != "update" && operation != "delete") {
    return Usage(err, absl::StrCat("unknown operation \"", operation, "\""), parser);
  }
  if (flags.connection.device_info.empty()) {
    return Usage(err, "--device_info: required (a shadow belongs to one device)", parser);
  }
  if (operation == "update" && flags.state.empty() && !flags.clear_desired) {
    return Usage(err, "update: --state (or --clear_desired) is required", parser);
  }
  if (operation != "update" && (!flags.state.empty() || flags.version != 0)) {
    return Usage(err, "--state and --version are for update", parser);
  }
  if (flags.version < 0 || flags.deltas < 0 || flags.timeout <= 0) {
    return Usage(err, "--version and --deltas must not be negative, --timeout must be positive",
                 parser);
  }

  absl::StatusOr<CommandConnection> connection =
      PrepareConnection(flags.connection, register_plugins);
  if (!connection.ok()) return Fail(err, connection.status());
  const tencent::DeviceInfo& info = connection->info;

  Outcome outcome;  // outlives the client, whose loop thread writes to it
  Client::Options options;
  options.on_event = [&outcome](const ConnectionEvent& event) {
    std::lock_guard<std::mutex> lock(outcome.mutex);
    if (event.kind == ConnectionEvent::Kind::kConnected ||
        event.kind == ConnectionEvent::Kind::kReconnected) {
      outcome.connected = true;
    } else if (!event.reason.ok()) {
      outcome.connected = false;
      outcome.last_connection_failure = event.reason;
    }
  };
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(
      std::shared_ptr<const ResolvedPipeline>(std::move(connection->resolved)), std::move(options));
  if (!client.ok()) return Fail(err, client.status());
  Client& c = **client;

  const absl::Duration timeout = absl::Seconds(flags.timeout);
  // Owned here, touched only on the loop thread (the ShadowClient is loop-thread only).
  auto shadow = std::make_shared<std::unique_ptr<tencent::ShadowClient>>();
  auto finish = [&outcome](absl::StatusOr<tencent::ShadowDocument> result) {
    std::lock_guard<std::mutex> lock(outcome.mutex);
    if (outcome.done) return;
    outcome.done = true;
    outcome.result = std::move(result);
    outcome.changed.notify_all();
  };
  c.Connect();
  c.loop().Post([&, shadow, finish] {
    tencent::ShadowClient::Options shadow_options;
    shadow_options.timeout = timeout;
    std::string product_id = info.product_id(), device_name = info.device_name();
    // The request goes out once the result topic is subscribed, so the reply cannot be missed.
    *shadow = tencent::ShadowClient::Attach(
        c, product_id, device_name, shadow_options,
        [&, shadow, finish](const absl::Status& subscribed) {
          if (!subscribed.ok()) {
            finish(absl::Status(
                subscribed.code(),
                absl::StrCat("subscribing to the shadow's result topic: ", subscribed.message())));
            return;
          }
          if (*shadow == nullptr) return;
          if (operation == "get") {
            (*shadow)->Get(finish);
          } else if (operation == "delete") {
            (*shadow)->Delete(finish);
          } else {
            (*shadow)->Update(flags.state, flags.version, flags.clear_desired, finish);
          }
        });
    (*shadow)->set_delta_handler([&outcome](const tencent::ShadowDocument& delta) {
      std::lock_guard<std::mutex> lock(outcome.mutex);
      outcome.deltas.push_back(delta);
      outcome.changed.notify_all();
    });
  });

  int code = 0;
  {
    std::unique_lock<std::mutex> lock(outcome.mutex);
    // Connecting and the reply together: the ShadowClient's own timeout starts at the SUBACK.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2 * flags.timeout);
    outcome.changed.wait_until(lock, deadline, [&] { return outcome.done; });
    if (!outcome.done) {
      std::string why =
          outcome.connected ? "the subscription to the result topic was not acknowledged"
          : outcome.last_connection_failure.ok()
              ? "not connected yet"
              : absl::StrCat("not connected: ", outcome.last_connection_failure.message());
      outcome.result = absl::DeadlineExceededError(
          absl::StrCat(operation, ": nothing within ", 2 * flags.timeout, " s (", why, ")"));
      outcome.done = true;
    }
    if (!outcome.result.ok()) {
      code = Fail(err, outcome.result.status());
    } else {
      out << outcome.result->payload_json << std::endl;
      // Deltas: each waits up to --timeout.
      for (size_t printed = 0; static_cast<int>(printed) < flags.deltas; ++printed) {
        bool arrived = outcome.changed.wait_for(lock, std::chrono::seconds(flags.timeout),
                                                [&] { return outcome.deltas.size() > printed; });
        if (!arrived) {
          code = Fail(err, absl::DeadlineExceededError(
                               absl::StrCat("no delta push within ", flags.timeout, " s (", printed,
                                            " of ", flags.deltas, " arrived)")));
          break;
        }
        out << "delta " << outcome.deltas[printed].state_json << " version "
            << outcome.deltas[printed].version << std::endl;
      }
    }
  }
  ReleaseThenDisconnect(c, [shadow] { shadow->reset(); });
  return code;
}

}  // namespace cli
}  // namespace hublink
