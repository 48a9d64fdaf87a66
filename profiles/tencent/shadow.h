// Tencent IoT Hub's device shadow over MQTT: a JSON document the hub keeps for each device, with
// the state the device reported, the state an application desires, their difference (delta) and a
// version that grows with every change.
//
// The device publishes requests (QoS 0, as the C SDK does) to $shadow/operation/<pid>/<dn> and the
// hub answers on $shadow/operation/result/<pid>/<dn>, echoing the request's clientToken
// ("<pid>-<n>"); the same topic carries {"type":"delta"} pushes when the desired state changes.
// ShadowClient matches replies to requests by clientToken, fails a request that gets no reply in
// time with kDeadlineExceeded (on the given clock, so tests drive it), and hands deltas to a
// handler. Facts and sources: docs/tencent-services.md.
//
//   auto shadow = tencent::ShadowClient::Attach(*client, info, {}, [](const absl::Status& s) {});
//   // on the loop thread (client->loop().Post(...), or from a handler):
//   shadow->Update(R"({"temperature":21})", 0, [](absl::StatusOr<ShadowDocument> doc) { ... });
//
// Threading: loop thread only, like the Client's handlers. Create, call and destroy a ShadowClient
// on the client's loop thread; callbacks run there too and must not block on a client future.
#ifndef HUBLINK_PROFILES_TENCENT_SHADOW_H_
#define HUBLINK_PROFILES_TENCENT_SHADOW_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "protocols/mqtt/client.h"
#include "protocols/mqtt/clock.h"
#include "protocols/mqtt/session.h"

namespace hublink {
namespace tencent {

std::string ShadowOperationTopic(absl::string_view product_id, absl::string_view device_name);
std::string ShadowResultTopic(absl::string_view product_id, absl::string_view device_name);

// Request payloads, byte for byte what ShadowClient sends. `reported_json` is a JSON object;
// `version` 0 means "do not check" (the hub then applies the update to whatever it holds).
std::string ShadowGetPayload(absl::string_view client_token);
std::string ShadowDeletePayload(absl::string_view client_token);
// {"type":"update","state":{"reported":{...}[,"desired":null]},"version":N,"clientToken":"..."}.
// kInvalidArgument when `reported_json` is not a JSON object. An empty `reported_json` with
// clear_desired sends only "desired": null (what the device does once it has acted on a delta).
absl::StatusOr<std::string> ShadowUpdatePayload(absl::string_view reported_json, int64_t version,
                                                bool clear_desired, absl::string_view client_token);

// One message on the result topic.
struct ShadowMessage {
  std::string type;          // "get", "update", "delete", "delta", ...
  int64_t result = 0;        // 0 = success (replies only)
  std::string client_token;  // empty for pushes
  bool has_payload = false;
  int64_t version = 0;       // payload.version
  int64_t timestamp = 0;     // timestamp (of the reply)
  std::string state_json;    // payload.state as JSON ("{}" when absent)
  std::string payload_json;  // payload as JSON ("{}" when absent)
};
// kInvalidArgument for a message that is not a JSON object with a string "type".
absl::StatusOr<ShadowMessage> ParseShadowMessage(absl::string_view json);

// What a successful request, or a delta push, hands back.
struct ShadowDocument {
  int64_t version = 0;
  // payload.state: {"reported":{...},"desired":{...},"delta":{...}} for get and update replies;
  // for a delta push, the delta itself ({"color":"red"}).
  std::string state_json;
  std::string payload_json;  // the whole payload object, metadata included
};

// The hub's version carried by a version-conflict error from ShadowClient::Update (a
// kFailedPrecondition whose payload holds it), so the caller can get and retry; nullopt otherwise.
absl::optional<int64_t> ShadowConflictVersion(const absl::Status& status);

class ShadowClient {
 public:
  using PublishFn =
      std::function<void(const std::string& topic, const std::string& payload, mqtt::Completion)>;
  using Callback = std::function<void(absl::StatusOr<ShadowDocument>)>;
  using DeltaHandler = std::function<void(const ShadowDocument& delta)>;

  struct Options {
    // How long a request waits for its reply (the SDK's samples use 5-10 s).
    absl::Duration timeout = absl::Seconds(10);
    // Null: the client's loop clock (Attach); tests pass a ManualClock.
    mqtt::Clock* clock = nullptr;
  };

  // Publishes through `client` and subscribes (QoS 0) to the result topic; `subscribed` gets the
  // SUBACK's status. Requests made before the SUBACK are sent anyway (the client sends SUBSCRIBE
  // first, in order).
  static std::unique_ptr<ShadowClient> Attach(Client& client, absl::string_view product_id,
                                              absl::string_view device_name, Options options,
                                              mqtt::Completion subscribed);

  // For tests and other transports: requests go through `publish`; feed the result topic's
  // messages to OnMessage. `clock` must outlive the ShadowClient.
  ShadowClient(std::string product_id, std::string device_name, PublishFn publish,
               mqtt::Clock& clock, Options options);
  // Pending requests complete with kCancelled.
  ~ShadowClient();
  ShadowClient(const ShadowClient&) = delete;
  ShadowClient& operator=(const ShadowClient&) = delete;

  // The whole document.
  void Get(Callback done);
  // Reports `reported_json` (a JSON object). `version` > 0: the hub refuses the update unless the
  // document is at that version; the refusal completes with kFailedPrecondition naming both
  // versions when the reply carries the hub's. With clear_desired, also sends "desired": null.
  void Update(absl::string_view reported_json, int64_t version, bool clear_desired, Callback done);
  // Deletes the document.
  void Delete(Callback done);
  // Delta pushes (type "delta"): payload.state is the delta.
  void set_delta_handler(DeltaHandler handler) { delta_handler_ = std::move(handler); }

  // A message from the result topic.
  void OnMessage(absl::string_view payload);

  size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    std::string type;
    int64_t version = 0;
    Callback done;
    mqtt::Clock::TimerId timer = 0;
  };
  void Send(std::string type, int64_t version, std::string token, std::string payload,
            Callback done);
  void Finish(const std::string& token, absl::StatusOr<ShadowDocument> result);
  std::string NextToken();

  const std::string product_id_;
  const std::string device_name_;
  PublishFn publish_;
  mqtt::Clock& clock_;
  Options options_;
  uint64_t next_token_ = 0;
  std::map<std::string, Pending> pending_;
  DeltaHandler delta_handler_;
  // Guards the timers' and the publish completions' captured `this`.
  std::shared_ptr<ShadowClient*> self_;
  // Owned when Attach made the clock (the client's loop).
  std::unique_ptr<mqtt::Clock> own_clock_;
};

}  // namespace tencent
}  // namespace hublink

#endif  // HUBLINK_PROFILES_TENCENT_SHADOW_H_
