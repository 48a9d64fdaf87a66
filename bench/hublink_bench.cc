// The benchmark scenarios (scenarios.h) run through hublink::Client. One
// process per scenario run, started by the driver, so CPU time, peak RSS and
// allocation counts belong to hublink alone.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "bench/notification.h"
#include "bench/scenarios.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "protocols/mqtt/client.h"

namespace hublink {
namespace bench {
namespace {

// tcp, then tls for tls/wss, then websocket for ws/wss: what
// tools/cli/connection_flags.cc builds. TLS verifies the broker against the
// benchmark's CA (IP SAN 127.0.0.1) and resumes no session, so every connect
// pays a full handshake, as a fresh Paho handle does.
std::string PipelineText(const Target& target, const std::string& client_id, int max_inflight) {
  const bool tls = target.transport == "tls" || target.transport == "wss";
  const bool ws = target.transport == "ws" || target.transport == "wss";
  std::string text = absl::StrFormat(R"pb(endpoint { host: "%s" port: %d }
                                          transports { name: "tcp" })pb",
                                     target.host, target.port);
  if (tls) {
    absl::StrAppendFormat(&text, R"pb(
                            transports {
                              name: "tls"
                              typed_config {
                                [type.googleapis.com/hublink.transports.TlsConfig] {
                                  ca_file: "%s"
                                  disable_session_resumption: true
                                }
                              }
                            })pb",
                          target.ca_file);
  }
  if (ws) text += R"pb(transports { name: "websocket" })pb";
  absl::StrAppendFormat(
      &text, R"pb(
        protocol {
          name: "mqtt"
          typed_config {
            [type.googleapis.com/hublink.protocols.MqttConfig] { client_id: "%s" max_inflight: %d }
          }
        }
        policy { reconnect { max_attempts: 1 } })pb",
      client_id, max_inflight);
  return text;
}

// How each client's loop waits (Client::Options); the library's defaults unless flags say.
struct LoopTuning {
  absl::Duration spin_before_sleep = absl::ZeroDuration();
  absl::Duration read_moderation = Client::Options().read_moderation;
};

class HublinkConnection : public Connection {
 public:
  struct State {
    Notification settled;    // connected or gave up
    bool connected = false;  // written before settled.Notify()
    absl::Time started;      // set before Connect()
  };

  HublinkConnection(std::unique_ptr<Client> client, ConnectionListener* listener,
                    std::shared_ptr<State> state)
      : client_(std::move(client)), listener_(listener), state_(std::move(state)) {}

  static std::unique_ptr<Connection> Make(const Target& target, const std::string& client_id,
                                          int max_inflight, ConnectionListener* listener,
                                          bool log_stages, const LoopTuning& tuning) {
    absl::StatusOr<Pipeline> config =
        ParsePipelineText(PipelineText(target, client_id, max_inflight), "bench");
    if (!config.ok()) Die(config.status());
    auto state = std::make_shared<State>();
    Client::Options options;
    // --spin_us: the loop polls without blocking this long after a turn with I/O before it sleeps
    // (the library's default is off); the driver's hublink+spin variant.
    options.spin_before_sleep = tuning.spin_before_sleep;
    options.read_moderation = tuning.read_moderation;
    options.on_event = [state](const ConnectionEvent& event) {
      if (state->settled.HasBeenNotified()) return;
      if (event.kind == ConnectionEvent::Kind::kConnected) {
        state->connected = true;
        state->settled.Notify();
      } else if (event.kind == ConnectionEvent::Kind::kGaveUp ||
                 event.kind == ConnectionEvent::Kind::kReconnecting) {
        std::fprintf(stderr, "bench: hublink: %s\n", DescribeConnectionEvent(event).c_str());
        state->settled.Notify();
      }
    };
    if (log_stages) {
      // Where a connect spends its time, layer by layer (--stages, for
      // diagnosis).
      options.on_stage = [state](absl::string_view layer, absl::string_view detail) {
        std::fprintf(stderr, "stage +%.3f ms %s: %s\n",
                     absl::ToDoubleMilliseconds(absl::Now() - state->started),
                     std::string(layer).c_str(), std::string(detail).c_str());
      };
    }
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Create(*config, BuiltinRegistry(), std::move(options));
    if (!client.ok()) Die(client.status());
    return std::make_unique<HublinkConnection>(*std::move(client), listener, state);
  }

  void StartConnect() override {
    state_->started = absl::Now();
    client_->Connect();
  }
  bool WaitConnected(absl::Duration timeout) override {
    return state_->settled.WaitForNotificationWithTimeout(timeout) && state_->connected;
  }
  bool Subscribe(const std::string& filter, int qos, absl::Duration timeout) override {
    ConnectionListener* listener = listener_;
    std::future<absl::Status> acked =
        client_->Subscribe(filter, qos, [listener](const mqtt::Message& message) {
          listener->OnMessage(message.topic, message.payload);
        });
    if (acked.wait_for(std::chrono::microseconds(absl::ToInt64Microseconds(timeout))) !=
        std::future_status::ready) {
      return false;
    }
    return acked.get().ok();
  }
  void Publish(const std::string& topic, absl::string_view payload, int qos) override {
    ConnectionListener* listener = listener_;
    client_->Publish(topic, payload, qos, false, [listener](const absl::Status& status) {
      listener->OnPublished(status.ok());
    });
  }
  void Disconnect() override {
    std::future<absl::Status> closed = client_->Disconnect();
    closed.wait_for(std::chrono::seconds(5));
  }

 private:
  static void Die(const absl::Status& status) {
    std::fprintf(stderr, "bench: hublink: %s\n", status.ToString().c_str());
    std::exit(2);
  }

  std::unique_ptr<Client> client_;
  ConnectionListener* listener_;
  std::shared_ptr<State> state_;
};

class HublinkFactory : public ConnectionFactory {
 public:
  HublinkFactory(bool log_stages, LoopTuning tuning) : log_stages_(log_stages), tuning_(tuning) {}
  std::unique_ptr<Connection> Make(const Target& target, const std::string& client_id,
                                   int max_inflight, ConnectionListener* listener) override {
    return HublinkConnection::Make(target, client_id, max_inflight, listener, log_stages_, tuning_);
  }

 private:
  const bool log_stages_;
  const LoopTuning tuning_;
};

}  // namespace
}  // namespace bench
}  // namespace hublink

int main(int argc, char** argv) {
  hublink::bench::Flags flags(argc, argv);
  // --spin_us=N: Client::Options::spin_before_sleep on every client of the run (0 = off).
  // --read_moderation_us=N: Client::Options::read_moderation (the library's default when absent).
  const int64_t spin_us = flags.GetInt("spin_us", 0);
  if (spin_us < 0) {
    std::fprintf(stderr, "bench: hublink: --spin_us must be >= 0\n");
    return 2;
  }
  hublink::bench::LoopTuning tuning;
  tuning.spin_before_sleep = absl::Microseconds(spin_us);
  if (flags.Has("read_moderation_us")) {
    const int64_t moderation_us = flags.GetInt("read_moderation_us", 0);
    if (moderation_us < 0) {
      std::fprintf(stderr, "bench: hublink: --read_moderation_us must be >= 0\n");
      return 2;
    }
    tuning.read_moderation = absl::Microseconds(moderation_us);
  }
  hublink::bench::HublinkFactory factory(flags.Has("stages"), tuning);
  return hublink::bench::RunScenario(flags, factory);
}
