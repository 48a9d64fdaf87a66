// The soak client (soak_client.h) over hublink::Client: clean_session false, the soak's
// keep-alive (ping timeout left at its default, half the keep-alive), reconnecting forever with
// the soak's backoff, TLS verified against the soak's CA.
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "bench/soak_client.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "protocols/mqtt/client.h"

namespace hublink {
namespace bench {
namespace {

std::string PipelineText(const SoakSettings& s) {
  const bool tls = s.transport == "tls" || s.transport == "wss";
  const bool ws = s.transport == "ws" || s.transport == "wss";
  std::string text = absl::StrFormat(R"pb(endpoint { host: "%s" port: %d }
                                          transports { name: "tcp" })pb",
                                     s.host, s.port);
  if (tls) {
    absl::StrAppendFormat(&text, R"pb(
                            transports {
                              name: "tls"
                              typed_config {
                                [type.googleapis.com/hublink.transports.TlsConfig] { ca_file: "%s" }
                              }
                            })pb",
                          s.ca_file);
  }
  if (ws) text += R"pb(transports { name: "websocket" })pb";
  absl::StrAppendFormat(&text, R"pb(
                          protocol {
                            name: "mqtt"
                            typed_config {
                              [type.googleapis.com/hublink.protocols.MqttConfig] {
                                client_id: "%s"
                                clean_session: false
                                keep_alive { seconds: %d }
                                max_inflight: %d
                              }
                            }
                          }
                          policy {
                            connect_timeout { seconds: %d }
                            handshake_timeout { seconds: %d }
                            reconnect {
                              initial_delay { seconds: %d }
                              max_delay { seconds: %d }
                            }
                          })pb",
                        s.client_id, s.keep_alive_s, s.max_inflight,
                        absl::ToInt64Seconds(s.connect_timeout),
                        absl::ToInt64Seconds(s.connect_timeout), s.retry_min_s, s.retry_max_s);
  return text;
}

class HublinkSoakConnection : public SoakConnection {
 public:
  HublinkSoakConnection(const SoakSettings& settings, SoakListener* listener)
      : listener_(listener) {
    absl::StatusOr<Pipeline> config = ParsePipelineText(PipelineText(settings), "soak");
    if (!config.ok()) Die(config.status());
    Client::Options options;
    options.on_event = [listener](const ConnectionEvent& event) {
      using Kind = ConnectionEvent::Kind;
      const char* kind = nullptr;
      switch (event.kind) {
        case Kind::kConnected:
        case Kind::kReconnected:
          kind = "connected";
          break;
        case Kind::kLost:
          kind = "lost";
          break;
        case Kind::kReconnecting:
          kind = "reconnecting";
          break;
        case Kind::kGaveUp:
          kind = "gaveup";
          break;
        case Kind::kDisconnected:
          kind = "disconnected";
          break;
        case Kind::kReturning:
          kind = "returning";
          break;
      }
      listener->OnEvent(kind, DescribeConnectionEvent(event));
    };
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Create(*config, BuiltinRegistry(), std::move(options));
    if (!client.ok()) Die(client.status());
    client_ = *std::move(client);
  }

  void Start() override { client_->Connect(); }

  bool Subscribe(const std::string& filter, int qos, absl::Duration timeout) override {
    SoakListener* listener = listener_;
    std::future<absl::Status> acked =
        client_->Subscribe(filter, qos, [listener](const mqtt::Message& message) {
          listener->OnMessage(message.payload, message.qos, message.dup);
        });
    if (acked.wait_for(std::chrono::microseconds(absl::ToInt64Microseconds(timeout))) !=
        std::future_status::ready) {
      return false;
    }
    return acked.get().ok();
  }

  void Publish(const std::string& topic, absl::string_view payload, int qos,
               uint64_t seq) override {
    SoakListener* listener = listener_;
    client_->Publish(topic, payload, qos, false, [listener, seq](const absl::Status& status) {
      listener->OnCompleted(seq, status.ok(), status.ok() ? "" : status.ToString());
    });
  }

  void Stop() override {
    std::future<absl::Status> closed = client_->Disconnect();
    closed.wait_for(std::chrono::seconds(5));
  }

 private:
  static void Die(const absl::Status& status) {
    std::fprintf(stderr, "soak: hublink: %s\n", status.ToString().c_str());
    std::exit(2);
  }

  SoakListener* const listener_;
  std::unique_ptr<Client> client_;
};

class HublinkSoakFactory : public SoakFactory {
 public:
  const char* name() const override { return "hublink"; }
  std::unique_ptr<SoakConnection> Make(const SoakSettings& settings,
                                       SoakListener* listener) override {
    return std::make_unique<HublinkSoakConnection>(settings, listener);
  }
};

}  // namespace
}  // namespace bench
}  // namespace hublink

int main(int argc, char** argv) {
  hublink::bench::Flags flags(argc, argv);
  hublink::bench::HublinkSoakFactory factory;
  return hublink::bench::RunSoakClient(flags, factory);
}
