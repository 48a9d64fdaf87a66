#include "profiles/tencent/attach_util.h"

namespace hublink {
namespace tencent {

mqtt::Clock& AttachClock(EventLoop& loop, mqtt::Clock* configured,
                         std::unique_ptr<mqtt::Clock>* owned) {
  if (configured != nullptr) return *configured;
  *owned = std::make_unique<mqtt::EventLoopClock>(loop);
  return **owned;
}

QosPublishFn PublishThrough(Client& client) {
  Client* publisher = &client;
  return [publisher](const std::string& topic, const std::string& payload, int qos,
                     mqtt::Completion done) {
    publisher->Publish(topic, payload, qos, false, std::move(done));
  };
}

Qos0PublishFn PublishAtQos0(Client& client) {
  QosPublishFn publish = PublishThrough(client);
  return [publish](const std::string& topic, const std::string& payload, mqtt::Completion done) {
    publish(topic, payload, 0, std::move(done));
  };
}

}  // namespace tencent
}  // namespace hublink
