// What the Attach() of the loop-thread service clients (ShadowClient, GatewayClient,
// TemplateClient) shares: the clock their request timeouts run on, publishing through the
// hublink::Client, and a subscription handler that stops forwarding once the service client is
// gone (the subscription itself outlives it, since hublink::Client has no unsubscribe-on-destroy).
#ifndef HUBLINK_PROFILES_TENCENT_ATTACH_UTIL_H_
#define HUBLINK_PROFILES_TENCENT_ATTACH_UTIL_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "plugins/event_loop.h"
#include "protocols/mqtt/client.h"
#include "protocols/mqtt/clock.h"
#include "protocols/mqtt/session.h"

namespace hublink {
namespace tencent {

// `configured` when it is set (tests pass a ManualClock); otherwise a new clock on `loop` (the
// client's), which `*owned` then holds and the service client must keep while it uses the clock.
mqtt::Clock& AttachClock(EventLoop& loop, mqtt::Clock* configured,
                         std::unique_ptr<mqtt::Clock>* owned);

// Publishes through `client` at `qos`, not retained; `done` gets the publish's outcome.
using QosPublishFn = std::function<void(const std::string& topic, const std::string& payload,
                                        int qos, mqtt::Completion done)>;
QosPublishFn PublishThrough(Client& client);
// The same at QoS 0, which the shadow and gateway operations use (as the C SDK does).
using Qos0PublishFn =
    std::function<void(const std::string& topic, const std::string& payload, mqtt::Completion)>;
Qos0PublishFn PublishAtQos0(Client& client);

// A message handler that hands each payload to (*service)->OnMessage while `service` (the service
// client's self pointer) lives, and drops it after.
template <typename Service>
mqtt::MessageHandler ForwardWhileAlive(std::weak_ptr<Service*> service) {
  return [service = std::move(service)](const mqtt::Message& message) {
    if (auto self = service.lock()) (*self)->OnMessage(message.payload);
  };
}

}  // namespace tencent
}  // namespace hublink

#endif  // HUBLINK_PROFILES_TENCENT_ATTACH_UTIL_H_
