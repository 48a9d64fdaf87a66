#include "protocols/mqtt/mqtt_protocol.h"

#include <memory>
#include <utility>

#include "protocols/mqtt/mqtt.pb.h"
#include "protocols/mqtt/session.h"

namespace hublink {
namespace {

class ConfiguredMqtt : public ConfiguredProtocol {
 public:
  explicit ConfiguredMqtt(mqtt::SessionOptions options) : options_(std::move(options)) {}
  absl::StatusOr<std::unique_ptr<Protocol>> Create(EventLoop& loop) override {
    // The in-memory store for now; a durable store is chosen here once the config names one.
    return std::unique_ptr<Protocol>(
        new mqtt::Session(loop, options_, std::make_unique<mqtt::MemoryMessageStore>()));
  }

 private:
  const mqtt::SessionOptions options_;
};

class MqttFactory : public ProtocolFactory {
 public:
  absl::string_view name() const override { return "mqtt"; }
  const google::protobuf::Descriptor* config_type() const override {
    return protocols::MqttConfig::descriptor();
  }
  absl::StatusOr<std::unique_ptr<ConfiguredProtocol>> Configure(
      const google::protobuf::Message& config) const override {
    absl::StatusOr<mqtt::SessionOptions> options =
        mqtt::SessionOptionsFromConfig(static_cast<const protocols::MqttConfig&>(config));
    if (!options.ok()) return options.status();
    return std::unique_ptr<ConfiguredProtocol>(new ConfiguredMqtt(*std::move(options)));
  }
};

}  // namespace

void RegisterMqttProtocol(Registry::Builder& builder) {
  builder.AddProtocol(std::make_unique<MqttFactory>());
}

}  // namespace hublink
