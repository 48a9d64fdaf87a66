#include "profiles/tencent/gateway.h"

#include <openssl/digest.h>
#include <openssl/hmac.h>

#include <random>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "profiles/tencent/attach_util.h"
#include "profiles/tencent/json_util.h"

namespace hublink {
namespace tencent {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

std::string DeviceFields(const SubDevice& d) {
  return absl::StrCat(R"("product_id":)", JsonQuote(d.product_id), R"(,"device_name":)",
                      JsonQuote(d.device_name));
}

std::string Key(absl::string_view type, const SubDevice& d) {
  return absl::StrCat(type, " ", d.product_id, "/", d.device_name);
}

}  // namespace

std::string GatewayOperationTopic(absl::string_view product_id, absl::string_view device_name) {
  return absl::StrCat("$gateway/operation/", product_id, "/", device_name);
}
std::string GatewayResultTopic(absl::string_view product_id, absl::string_view device_name) {
  return absl::StrCat("$gateway/operation/result/", product_id, "/", device_name);
}

std::string GatewayStatusPayload(absl::string_view type, const SubDevice& sub_device) {
  return absl::StrCat(R"({"type":)", JsonQuote(type), R"(,"payload":{"devices":[{)",
                      DeviceFields(sub_device), "}]}}");
}

std::string GatewayBindSignature(const SubDevice& sub_device, absl::string_view device_secret,
                                 int64_t random, int64_t timestamp) {
  std::string text =
      absl::StrCat(sub_device.product_id, sub_device.device_name, ";", random, ";", timestamp);
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha1(), device_secret.data(), device_secret.size(),
       reinterpret_cast<const uint8_t*>(text.data()), text.size(), digest, &length);
  std::string hex =
      absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
  return absl::Base64Escape(hex);
}

std::string GatewayBindPayload(const SubDevice& sub_device, absl::string_view device_secret,
                               int64_t random, int64_t timestamp) {
  return absl::StrCat(R"({"type":"bind","payload":{"devices":[{)", DeviceFields(sub_device),
                      R"(,"signature":)",
                      JsonQuote(GatewayBindSignature(sub_device, device_secret, random, timestamp)),
                      R"(,"random":)", random, R"(,"timestamp":)", timestamp,
                      R"(,"signmethod":"hmacsha1","authtype":"psk"}]}})");
}

std::unique_ptr<GatewayClient> GatewayClient::Attach(Client& client, absl::string_view product_id,
                                                     absl::string_view device_name, Options options,
                                                     mqtt::Completion subscribed) {
  std::unique_ptr<mqtt::Clock> own_clock;
  mqtt::Clock& clock = AttachClock(client.loop(), options.clock, &own_clock);
  auto gateway = std::make_unique<GatewayClient>(std::string(product_id), std::string(device_name),
                                                 PublishAtQos0(client), clock, std::move(options));
  gateway->own_clock_ = std::move(own_clock);
  client.Subscribe(GatewayResultTopic(product_id, device_name), 0,
                   ForwardWhileAlive(std::weak_ptr<GatewayClient*>(gateway->self_)),
                   std::move(subscribed));
  return gateway;
}

GatewayClient::GatewayClient(std::string product_id, std::string device_name, PublishFn publish,
                             mqtt::Clock& clock, Options options)
    : product_id_(std::move(product_id)),
      device_name_(std::move(device_name)),
      publish_(std::move(publish)),
      clock_(clock),
      options_(std::move(options)),
      self_(std::make_shared<GatewayClient*>(this)) {
  if (!options_.random) {
    auto engine = std::make_shared<std::mt19937>(std::random_device{}());
    options_.random = [engine] {
      return static_cast<int64_t>(std::uniform_int_distribution<int32_t>(1, 2147483647)(*engine));
    };
  }
}

GatewayClient::~GatewayClient() {
  self_.reset();
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [key, request] : pending) {
    clock_.Cancel(request.timer);
    absl::Status cancelled =
        absl::CancelledError(absl::StrCat("gateway: ", key, " abandoned: client destroyed"));
    if (request.done) request.done(cancelled);
    if (request.list_done) request.list_done(cancelled);
  }
}

size_t GatewayClient::pending() const { return pending_.size(); }

void GatewayClient::Online(const SubDevice& sub_device, Callback done) {
  Send(Key("online", sub_device), GatewayStatusPayload("online", sub_device),
       Pending{std::move(done), nullptr});
}
void GatewayClient::Offline(const SubDevice& sub_device, Callback done) {
  Send(Key("offline", sub_device), GatewayStatusPayload("offline", sub_device),
       Pending{std::move(done), nullptr});
}
void GatewayClient::Unbind(const SubDevice& sub_device, Callback done) {
  Send(Key("unbind", sub_device), GatewayStatusPayload("unbind", sub_device),
       Pending{std::move(done), nullptr});
}
void GatewayClient::Bind(const SubDevice& sub_device, absl::string_view device_secret,
                         Callback done) {
  int64_t timestamp = absl::ToUnixSeconds(clock_.Now());
  Send(Key("bind", sub_device),
       GatewayBindPayload(sub_device, device_secret, options_.random(), timestamp),
       Pending{std::move(done), nullptr});
}
void GatewayClient::DescribeSubDevices(ListCallback done) {
  Send("describe_sub_devices", R"({"type":"describe_sub_devices"})",
       Pending{nullptr, std::move(done)});
}

void GatewayClient::Send(std::string key, std::string payload, Pending pending) {
  const uint64_t id = next_id_++;
  pending.id = id;
  std::weak_ptr<GatewayClient*> weak = self_;
  pending.timer = clock_.RunAfter(options_.timeout, [weak, key, id, this] {
    if (weak.expired()) return;
    Finish(key, id,
           absl::DeadlineExceededError(absl::StrCat("gateway: no answer to ", key, " within ",
                                                    absl::FormatDuration(options_.timeout), " on ",
                                                    GatewayResultTopic(product_id_, device_name_))),
           {});
  });
  pending_.emplace(key, std::move(pending));
  publish_(GatewayOperationTopic(product_id_, device_name_), payload,
           [weak, key, id, this](const absl::Status& status) {
             if (status.ok() || weak.expired()) return;
             Finish(key, id,
                    absl::Status(status.code(),
                                 absl::StrCat("gateway: ", key, " not sent: ", status.message())),
                    {});
           });
}

// id 0: every request waiting under `key`.
void GatewayClient::Finish(const std::string& key, uint64_t id, const absl::Status& status,
                           std::vector<SubDevice> devices) {
  std::vector<Pending> done;
  auto [begin, end] = pending_.equal_range(key);
  for (auto it = begin; it != end;) {
    if (id == 0 || it->second.id == id) {
      done.push_back(std::move(it->second));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  for (Pending& request : done) {
    clock_.Cancel(request.timer);
    if (request.done) request.done(status);
    if (request.list_done) {
      if (status.ok()) {
        request.list_done(devices);
      } else {
        request.list_done(status);
      }
    }
  }
}

void GatewayClient::OnMessage(absl::string_view payload) {
  Value root;
  if (!google::protobuf::util::JsonStringToMessage(std::string(payload), &root).ok() ||
      root.kind_case() != Value::kStructValue) {
    return;  // nothing to match it to
  }
  const std::string type = JsonString(root.struct_value(), "type");
  std::vector<const Struct*> entries;
  if (const Value* body = JsonField(root.struct_value(), "payload");
      body != nullptr && body->kind_case() == Value::kStructValue) {
    if (const Value* list = JsonField(body->struct_value(), "devices"); list != nullptr) {
      if (list->kind_case() == Value::kListValue) {
        for (const Value& v : list->list_value().values()) {
          if (v.kind_case() == Value::kStructValue) entries.push_back(&v.struct_value());
        }
      } else if (list->kind_case() == Value::kStructValue) {
        entries.push_back(&list->struct_value());
      }
    }
  }
  if (type == "describe_sub_devices") {
    std::vector<SubDevice> devices;
    for (const Struct* entry : entries) {
      devices.push_back({JsonString(*entry, "product_id"), JsonString(*entry, "device_name")});
    }
    Finish(type, 0, absl::OkStatus(), std::move(devices));
    return;
  }
  for (const Struct* entry : entries) {
    SubDevice device{JsonString(*entry, "product_id"), JsonString(*entry, "device_name")};
    int64_t result = 0;
    if (const Value* r = JsonField(*entry, "result"); r != nullptr) {
      result = static_cast<int64_t>(r->number_value());
    }
    const std::string key = Key(type, device);
    absl::Status status = result == 0
                              ? absl::OkStatus()
                              : absl::FailedPreconditionError(absl::StrCat(
                                    "gateway: ", key, " refused by the hub (result ", result, ")"));
    Finish(key, 0, status, {});
  }
}

}  // namespace tencent
}  // namespace hublink
