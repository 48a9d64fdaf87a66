// "mqtt": the MQTT 3.1.1 protocol plugin. Its config is hublink.protocols.MqttConfig (mqtt.proto);
// each pipeline gets an mqtt::Session (session.h) per Client.
#ifndef HUBLINK_PROTOCOLS_MQTT_MQTT_PROTOCOL_H_
#define HUBLINK_PROTOCOLS_MQTT_MQTT_PROTOCOL_H_

#include "plugins/registry.h"

namespace hublink {

void RegisterMqttProtocol(Registry::Builder& builder);

}  // namespace hublink

#endif  // HUBLINK_PROTOCOLS_MQTT_MQTT_PROTOCOL_H_
