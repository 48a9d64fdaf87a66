// Tencent IoT Hub gateways: a gateway device brings its sub-devices online over its own MQTT
// connection. Requests go (QoS 0) to $gateway/operation/<pid>/<dn> of the gateway, answers come on
// $gateway/operation/result/<pid>/<dn>, matched by operation and sub-device (the protocol has no
// clientToken). Facts and sources: docs/tencent-services.md.
//
//   online / offline      {"type":"online","payload":{"devices":[{"product_id":..,"device_name":..}]}}
//   bind                  the same with "signature", "random", "timestamp", "signmethod":"hmacsha1",
//                         "authtype":"psk" (signed with the sub-device's secret)
//   unbind                like online
//   describe_sub_devices  {"type":"describe_sub_devices"} -> payload.devices lists the bound ones
//
// Threading: loop thread only, like ShadowClient (profiles/tencent/shadow.h).
#ifndef HUBLINK_PROFILES_TENCENT_GATEWAY_H_
#define HUBLINK_PROFILES_TENCENT_GATEWAY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "protocols/mqtt/client.h"
#include "protocols/mqtt/clock.h"
#include "protocols/mqtt/session.h"

namespace hublink {
namespace tencent {

struct SubDevice {
  std::string product_id;
  std::string device_name;
  bool operator==(const SubDevice& other) const {
    return product_id == other.product_id && device_name == other.device_name;
  }
};

std::string GatewayOperationTopic(absl::string_view product_id, absl::string_view device_name);
std::string GatewayResultTopic(absl::string_view product_id, absl::string_view device_name);

// {"type":"<type>","payload":{"devices":[{"product_id":"..","device_name":".."}]}} for online,
// offline and unbind.
std::string GatewayStatusPayload(absl::string_view type, const SubDevice& sub_device);
// The bind signature, as the SDK computes it: Base64 of the lowercase hex HMAC-SHA1, keyed with
// the sub-device's device secret as written in its device_info.json (the base64 text itself, not
// decoded), of "<productId><deviceName>;<random>;<timestamp>".
std::string GatewayBindSignature(const SubDevice& sub_device, absl::string_view device_secret,
                                 int64_t random, int64_t timestamp);
std::string GatewayBindPayload(const SubDevice& sub_device, absl::string_view device_secret,
                               int64_t random, int64_t timestamp);

class GatewayClient {
 public:
  using PublishFn =
      std::function<void(const std::string& topic, const std::string& payload, mqtt::Completion)>;
  using Callback = std::function<void(const absl::Status&)>;
  using ListCallback = std::function<void(absl::StatusOr<std::vector<SubDevice>>)>;

  struct Options {
    absl::Duration timeout = absl::Seconds(10);
    mqtt::Clock* clock = nullptr;  // null: the client's loop (Attach)
    // For bind: the random number and the time signed. Null: a random int and the clock's time.
    std::function<int64_t()> random;
  };

  // Publishes through `client` and subscribes (QoS 0) to the gateway's result topic.
  static std::unique_ptr<GatewayClient> Attach(Client& client, absl::string_view product_id,
                                               absl::string_view device_name, Options options,
                                               mqtt::Completion subscribed);
  GatewayClient(std::string product_id, std::string device_name, PublishFn publish,
                mqtt::Clock& clock, Options options);
  // Pending requests complete with kCancelled.
  ~GatewayClient();
  GatewayClient(const GatewayClient&) = delete;
  GatewayClient& operator=(const GatewayClient&) = delete;

  // Each completes with the hub's per-device result: OK for 0, kFailedPrecondition naming the
  // result otherwise; kDeadlineExceeded without an answer within Options::timeout.
  void Online(const SubDevice& sub_device, Callback done);
  void Offline(const SubDevice& sub_device, Callback done);
  void Bind(const SubDevice& sub_device, absl::string_view device_secret, Callback done);
  void Unbind(const SubDevice& sub_device, Callback done);
  void DescribeSubDevices(ListCallback done);

  void OnMessage(absl::string_view payload);
  size_t pending() const;

 private:
  struct Pending {
    Callback done;
    ListCallback list_done;
    mqtt::Clock::TimerId timer = 0;
    uint64_t id = 0;
  };
  void Send(std::string key, std::string payload, Pending pending);
  void Finish(const std::string& key, uint64_t id, const absl::Status& status,
              std::vector<SubDevice> devices);

  const std::string product_id_;
  const std::string device_name_;
  PublishFn publish_;
  mqtt::Clock& clock_;
  Options options_;
  uint64_t next_id_ = 1;
  // By "<type> <pid>/<dn>" ("describe_sub_devices" alone): requests for the same key complete
  // together, in order.
  std::multimap<std::string, Pending> pending_;
  std::shared_ptr<GatewayClient*> self_;
  std::unique_ptr<mqtt::Clock> own_clock_;
};

}  // namespace tencent
}  // namespace hublink

#endif  // HUBLINK_PROFILES_TENCENT_GATEWAY_H_
