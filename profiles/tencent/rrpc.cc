#include "profiles/tencent/rrpc.h"

#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace hublink {
namespace tencent {

std::string RrpcRequestFilter(absl::string_view product_id, absl::string_view device_name) {
  return absl::StrCat("$rrpc/rxd/", product_id, "/", device_name, "/+");
}

std::string RrpcReplyTopic(absl::string_view product_id, absl::string_view device_name,
                           absl::string_view process_id) {
  return absl::StrCat("$rrpc/txd/", product_id, "/", device_name, "/", process_id);
}

std::string BroadcastTopic(absl::string_view product_id, absl::string_view device_name) {
  return absl::StrCat("$broadcast/rxd/", product_id, "/", device_name);
}

absl::StatusOr<std::string> RrpcProcessId(absl::string_view topic, absl::string_view product_id,
                                          absl::string_view device_name) {
  const std::string prefix = absl::StrCat("$rrpc/rxd/", product_id, "/", device_name, "/");
  if (!absl::StartsWith(topic, prefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rrpc: \"", topic, "\" is not a request topic of ", prefix, "<processId>"));
  }
  absl::string_view process_id = topic.substr(prefix.size());
  if (process_id.empty() || absl::StrContains(process_id, '/')) {
    return absl::InvalidArgumentError(
        absl::StrCat("rrpc: \"", topic, "\" has no single processId level after ", prefix));
  }
  return std::string(process_id);
}

RrpcResponder::RrpcResponder(PublishFn publish, std::string topic)
    : publish_(std::move(publish)),
      topic_(std::move(topic)),
      replied_(std::make_shared<std::atomic<bool>>(false)) {}

void RrpcResponder::Reply(absl::string_view payload, mqtt::Completion done) {
  // Copies share the flag: a request is answered once, whichever copy answers.
  if (replied_->exchange(true)) {
    if (done)
      done(absl::FailedPreconditionError(absl::StrCat("rrpc: ", topic_, " already answered")));
    return;
  }
  publish_(topic_, std::string(payload), std::move(done));
}

bool DispatchRrpc(absl::string_view topic, absl::string_view payload, absl::string_view product_id,
                  absl::string_view device_name, const RrpcResponder::PublishFn& publish,
                  const RrpcHandler& handler) {
  absl::StatusOr<std::string> process_id = RrpcProcessId(topic, product_id, device_name);
  if (!process_id.ok()) return false;
  RrpcRequest request{*process_id, std::string(payload)};
  handler(request, RrpcResponder(publish, RrpcReplyTopic(product_id, device_name, *process_id)));
  return true;
}

void ServeRrpc(Client& client, absl::string_view product_id, absl::string_view device_name,
               RrpcHandler handler, mqtt::Completion subscribed) {
  Client* publisher = &client;
  RrpcResponder::PublishFn publish =
      [publisher](const std::string& topic, const std::string& payload, mqtt::Completion done) {
        publisher->Publish(topic, payload, 0, false, std::move(done));
      };
  client.Subscribe(
      RrpcRequestFilter(product_id, device_name), 0,
      [pid = std::string(product_id), dn = std::string(device_name), publish,
       handler = std::move(handler)](const mqtt::Message& m) {
        DispatchRrpc(m.topic, m.payload, pid, dn, publish, handler);
      },
      std::move(subscribed));
}

void SubscribeBroadcast(Client& client, absl::string_view product_id, absl::string_view device_name,
                        std::function<void(absl::string_view payload)> handler,
                        mqtt::Completion subscribed) {
  client.Subscribe(
      BroadcastTopic(product_id, device_name), 1,
      [handler = std::move(handler)](const mqtt::Message& m) { handler(m.payload); },
      std::move(subscribed));
}

}  // namespace tencent
}  // namespace hublink
