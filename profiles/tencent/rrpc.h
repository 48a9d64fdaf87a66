// Tencent IoT Hub's RRPC (revert RPC: the cloud calls the device and waits for its answer) and
// broadcast, over the device's MQTT connection. Facts and sources: docs/tencent-services.md.
//
// RRPC: the hub publishes a request to $rrpc/rxd/<pid>/<dn>/<processId> (the device subscribes,
// QoS 0, to $rrpc/rxd/<pid>/<dn>/+) and waits, a few seconds, for the answer the device publishes
// (QoS 0) to $rrpc/txd/<pid>/<dn>/<processId>: the same processId, the last topic level. Payloads
// are opaque to the hub.
//
// Broadcast: the hub publishes a product-wide message to $broadcast/rxd/<pid>/<dn> for every device
// of the product; the device subscribes (the C SDK at QoS 1). No answer.
//
//   tencent::ServeRrpc(*client, pid, dn, [](const tencent::RrpcRequest& request,
//                                           tencent::RrpcResponder respond) {
//     respond.Reply(absl::StrCat("{\"echo\":", request.payload, "}"));
//   }, [](const absl::Status& subscribed) { ... });
//
// Handlers run on the client's loop thread: copy what they keep, never block on a client future.
#ifndef HUBLINK_PROFILES_TENCENT_RRPC_H_
#define HUBLINK_PROFILES_TENCENT_RRPC_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "protocols/mqtt/client.h"
#include "protocols/mqtt/session.h"

namespace hublink {
namespace tencent {

std::string RrpcRequestFilter(absl::string_view product_id, absl::string_view device_name);
std::string RrpcReplyTopic(absl::string_view product_id, absl::string_view device_name,
                           absl::string_view process_id);
std::string BroadcastTopic(absl::string_view product_id, absl::string_view device_name);

// The processId of a request topic ($rrpc/rxd/<pid>/<dn>/<processId>); kInvalidArgument for a
// topic of another device or shape, or an empty processId.
absl::StatusOr<std::string> RrpcProcessId(absl::string_view topic, absl::string_view product_id,
                                          absl::string_view device_name);

struct RrpcRequest {
  std::string process_id;
  std::string payload;
};

// Answers one request, once (later calls do nothing). Copyable and callable from any thread, also
// after the handler returned (an answer computed elsewhere), but not after the client is
// destroyed. The hub waits only a few seconds, so answer promptly.
class RrpcResponder {
 public:
  using PublishFn = std::function<void(const std::string& topic, const std::string& payload,
                                       mqtt::Completion done)>;
  RrpcResponder(PublishFn publish, std::string topic);
  // `done` (optional) gets the publish's status.
  void Reply(absl::string_view payload, mqtt::Completion done = nullptr);
  const std::string& topic() const { return topic_; }

 private:
  PublishFn publish_;
  std::string topic_;
  std::shared_ptr<std::atomic<bool>> replied_;
};

using RrpcHandler = std::function<void(const RrpcRequest& request, RrpcResponder respond)>;

// The dispatch ServeRrpc installs, for tests and other transports: a message on the request filter
// becomes a handler call with a responder that publishes through `publish`. Messages on other
// topics are ignored (returns false).
bool DispatchRrpc(absl::string_view topic, absl::string_view payload, absl::string_view product_id,
                  absl::string_view device_name, const RrpcResponder::PublishFn& publish,
                  const RrpcHandler& handler);

// Subscribes (QoS 0) to $rrpc/rxd/<pid>/<dn>/+ and calls `handler` for each request; answers go
// out at QoS 0 as the SDK sends them. `subscribed` gets the SUBACK's status. The subscription is
// restored after reconnects, like every Client subscription.
void ServeRrpc(Client& client, absl::string_view product_id, absl::string_view device_name,
               RrpcHandler handler, mqtt::Completion subscribed);

// Subscribes (QoS 1, as the SDK does) to $broadcast/rxd/<pid>/<dn>; `handler` gets each payload
// (a view valid during the call).
void SubscribeBroadcast(Client& client, absl::string_view product_id, absl::string_view device_name,
                        std::function<void(absl::string_view payload)> handler,
                        mqtt::Completion subscribed);

}  // namespace tencent
}  // namespace hublink

#endif  // HUBLINK_PROFILES_TENCENT_RRPC_H_
