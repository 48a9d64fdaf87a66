#include "profiles/tencent/shadow.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "profiles/tencent/attach_util.h"
#include "profiles/tencent/json_util.h"

namespace hublink {
namespace tencent {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kConflictVersionUrl[] = "type.hublink/tencent.shadow.conflict_version";

}  // namespace

absl::optional<int64_t> ShadowConflictVersion(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kConflictVersionUrl);
  int64_t version = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &version)) {
    return absl::nullopt;
  }
  return version;
}

std::string ShadowOperationTopic(absl::string_view product_id, absl::string_view device_name) {
  return absl::StrCat("$shadow/operation/", product_id, "/", device_name);
}
std::string ShadowResultTopic(absl::string_view product_id, absl::string_view device_name) {
  return absl::StrCat("$shadow/operation/result/", product_id, "/", device_name);
}

std::string ShadowGetPayload(absl::string_view client_token) {
  return absl::StrCat(R"({"type":"get","clientToken":)", JsonQuote(client_token), "}");
}

std::string ShadowDeletePayload(absl::string_view client_token) {
  return absl::StrCat(R"({"type":"delete","clientToken":)", JsonQuote(client_token), "}");
}

absl::StatusOr<std::string> ShadowUpdatePayload(absl::string_view reported_json, int64_t version,
                                                bool clear_desired,
                                                absl::string_view client_token) {
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("shadow: version ", version, " is negative; 0 means do not check"));
  }
  std::string state;
  if (!reported_json.empty()) {
    absl::StatusOr<Value> reported = ParseJsonValue(reported_json);
    if (!reported.ok() || reported->kind_case() != Value::kStructValue) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shadow: the reported state must be a JSON object such as {\"temperature\":21}, got: ",
          reported_json.substr(0, 80)));
    }
    absl::StrAppend(&state, R"("reported":)", reported_json);
  } else if (!clear_desired) {
    return absl::InvalidArgumentError("shadow: an update needs a reported state or desired: null");
  }
  if (clear_desired) absl::StrAppend(&state, state.empty() ? "" : ",", R"("desired":null)");
  return absl::StrCat(R"({"type":"update","state":{)", state, R"(},"version":)", version,
                      R"(,"clientToken":)", JsonQuote(client_token), "}");
}

absl::StatusOr<ShadowMessage> ParseShadowMessage(absl::string_view json) {
  absl::StatusOr<Value> value = ParseJsonValue(json);
  if (!value.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shadow: malformed message on the result topic: ", value.status().message()));
  }
  if (value->kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("shadow: message on the result topic is not a JSON object");
  }
  const Struct& root = value->struct_value();
  const Value* type = JsonField(root, "type");
  if (type == nullptr || type->kind_case() != Value::kStringValue) {
    return absl::InvalidArgumentError("shadow: message on the result topic has no \"type\"");
  }
  ShadowMessage message;
  message.type = type->string_value();
  if (const Value* result = JsonField(root, "result"); result != nullptr) {
    message.result = static_cast<int64_t>(result->number_value());
  }
  if (const Value* token = JsonField(root, "clientToken");
      token != nullptr && token->kind_case() == Value::kStringValue) {
    message.client_token = token->string_value();
  }
  if (const Value* ts = JsonField(root, "timestamp"); ts != nullptr) {
    message.timestamp = static_cast<int64_t>(ts->number_value());
  }
  message.state_json = "{}";
  message.payload_json = "{}";
  if (const Value* payload = JsonField(root, "payload");
      payload != nullptr && payload->kind_case() == Value::kStructValue) {
    message.has_payload = true;
    message.payload_json = ToJson(*payload);
    if (const Value* version = JsonField(payload->struct_value(), "version"); version != nullptr) {
      message.version = static_cast<int64_t>(version->number_value());
    }
    if (const Value* state = JsonField(payload->struct_value(), "state"); state != nullptr) {
      message.state_json = ToJson(*state);
    }
  }
  return message;
}

std::unique_ptr<ShadowClient> ShadowClient::Attach(Client& client, absl::string_view product_id,
                                                   absl::string_view device_name, Options options,
                                                   mqtt::Completion subscribed) {
  std::unique_ptr<mqtt::Clock> own_clock;
  mqtt::Clock& clock = AttachClock(client.loop(), options.clock, &own_clock);
  auto shadow = std::make_unique<ShadowClient>(std::string(product_id), std::string(device_name),
                                               PublishAtQos0(client), clock, options);
  shadow->own_clock_ = std::move(own_clock);
  client.Subscribe(ShadowResultTopic(product_id, device_name), 0,
                   ForwardWhileAlive(std::weak_ptr<ShadowClient*>(shadow->self_)),
                   std::move(subscribed));
  return shadow;
}

ShadowClient::ShadowClient(std::string product_id, std::string device_name, PublishFn publish,
                           mqtt::Clock& clock, Options options)
    : product_id_(std::move(product_id)),
      device_name_(std::move(device_name)),
      publish_(std::move(publish)),
      clock_(clock),
      options_(options),
      self_(std::make_shared<ShadowClient*>(this)) {}

ShadowClient::~ShadowClient() {
  self_.reset();
  std::map<std::string, Pending> pending = std::move(pending_);
  pending_.clear();
  for (auto& [token, request] : pending) {
    clock_.Cancel(request.timer);
    if (request.done) {
      request.done(absl::CancelledError(
          absl::StrCat("shadow: ", request.type, " (", token, ") abandoned: client destroyed")));
    }
  }
}

std::string ShadowClient::NextToken() {
  // The SDK's form: "<productId>-<counter>".
  return absl::StrCat(product_id_, "-", next_token_++);
}

void ShadowClient::Get(Callback done) {
  std::string token = NextToken();
  std::string payload = ShadowGetPayload(token);
  Send("get", 0, std::move(token), std::move(payload), std::move(done));
}

void ShadowClient::Delete(Callback done) {
  std::string token = NextToken();
  std::string payload = ShadowDeletePayload(token);
  Send("delete", 0, std::move(token), std::move(payload), std::move(done));
}

void ShadowClient::Update(absl::string_view reported_json, int64_t version, bool clear_desired,
                          Callback done) {
  std::string token = NextToken();
  absl::StatusOr<std::string> payload =
      ShadowUpdatePayload(reported_json, version, clear_desired, token);
  if (!payload.ok()) {
    if (done) done(payload.status());
    return;
  }
  Send("update", version, std::move(token), *std::move(payload), std::move(done));
}

void ShadowClient::Send(std::string type, int64_t version, std::string token, std::string payload,
                        Callback done) {
  std::weak_ptr<ShadowClient*> weak = self_;
  Pending& request = pending_[token];
  request.type = type;
  request.version = version;
  request.done = std::move(done);
  request.timer = clock_.RunAfter(options_.timeout, [weak, token, type, this] {
    if (weak.expired()) return;
    Finish(token, absl::DeadlineExceededError(
                      absl::StrCat("shadow: no reply to ", type, " (clientToken ", token,
                                   ") within ", absl::FormatDuration(options_.timeout), " on ",
                                   ShadowResultTopic(product_id_, device_name_))));
  });
  publish_(ShadowOperationTopic(product_id_, device_name_), payload,
           [weak, token, this](const absl::Status& status) {
             // A publish that never left (disconnected past the queue, refused) ends the request
             // now rather than at the timeout.
             if (status.ok() || weak.expired()) return;
             Finish(token,
                    absl::Status(status.code(), absl::StrCat("shadow: request ", token,
                                                             " not sent: ", status.message())));
           });
}

void ShadowClient::Finish(const std::string& token, absl::StatusOr<ShadowDocument> result) {
  auto it = pending_.find(token);
  if (it == pending_.end()) return;
  Pending request = std::move(it->second);
  pending_.erase(it);
  clock_.Cancel(request.timer);
  if (request.done) request.done(std::move(result));
}

void ShadowClient::OnMessage(absl::string_view payload) {
  absl::StatusOr<ShadowMessage> message = ParseShadowMessage(payload);
  // Not ours to act on: a malformed push cannot be matched to any request.
  if (!message.ok()) return;
  ShadowDocument document{message->version, message->state_json, message->payload_json};
  if (message->type == "delta") {
    if (delta_handler_) delta_handler_(document);
    return;
  }
  auto it = pending_.find(message->client_token);
  if (it == pending_.end()) return;  // a reply to another client, or after our timeout
  const Pending& request = it->second;
  if (message->result == 0) {
    Finish(message->client_token, std::move(document));
    return;
  }
  std::string detail = absl::StrCat("shadow: ", request.type, " refused by the hub (result ",
                                    message->result, ", clientToken ", message->client_token, ")");
  if (request.type == "update" && request.version > 0 && message->has_payload &&
      message->version != request.version) {
    absl::Status conflict = absl::FailedPreconditionError(absl::StrCat(
        detail, ": version conflict: the update was for version ", request.version,
        ", the shadow is at version ", message->version, "; get the document and update again"));
    conflict.SetPayload(kConflictVersionUrl, absl::Cord(absl::StrCat(message->version)));
    Finish(message->client_token, std::move(conflict));
    return;
  }
  Finish(message->client_token, absl::FailedPreconditionError(detail));
}

}  // namespace tencent
}  // namespace hublink
