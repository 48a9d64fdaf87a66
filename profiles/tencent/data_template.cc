#include "profiles/tencent/data_template.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "profiles/tencent/attach_util.h"
#include "profiles/tencent/json_util.h"

namespace hublink {
namespace tencent {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr const char* kTypes[] = {"bool",      "int",    "float",      "enum", "string",
                                  "timestamp", "struct", "stringenum", "array"};

absl::Status Invalid(absl::string_view where, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", problem));
}

// The template writes numbers as strings ("min": "0"); accept numbers too.
bool NumberOf(const Struct& s, const char* name, double* out) {
  const Value* v = JsonField(s, name);
  if (v == nullptr) return false;
  if (v->kind_case() == Value::kNumberValue) {
    *out = v->number_value();
    return true;
  }
  return v->kind_case() == Value::kStringValue && absl::SimpleAtod(v->string_value(), out);
}

absl::StatusOr<TemplateValue> ParseDefine(const Struct& define, std::string id,
                                          const std::string& where);

absl::StatusOr<std::vector<TemplateValue>> ParseList(const Struct& parent, const char* key,
                                                     const char* define_key,
                                                     const std::string& where) {
  std::vector<TemplateValue> values;
  const Value* list = JsonField(parent, key);
  if (list == nullptr) return values;
  if (list->kind_case() != Value::kListValue) return Invalid(where, "not a list");
  for (int i = 0; i < list->list_value().values_size(); ++i) {
    std::string at = absl::StrCat(where, "[", i, "]");
    const Value& entry = list->list_value().values(i);
    if (entry.kind_case() != Value::kStructValue) return Invalid(at, "not an object");
    std::string id = JsonString(entry.struct_value(), "id");
    if (id.empty()) return Invalid(at, "no \"id\"");
    const Value* define = JsonField(entry.struct_value(), define_key);
    if (define == nullptr || define->kind_case() != Value::kStructValue) {
      return Invalid(at, absl::StrCat("no \"", define_key, "\" object"));
    }
    absl::StatusOr<TemplateValue> value =
        ParseDefine(define->struct_value(), id, absl::StrCat(at, ".", define_key));
    if (!value.ok()) return value.status();
    value->mode = JsonString(entry.struct_value(), "mode");
    values.push_back(*std::move(value));
  }
  return values;
}

absl::StatusOr<TemplateValue> ParseDefine(const Struct& define, std::string id,
                                          const std::string& where) {
  TemplateValue value;
  value.id = std::move(id);
  value.type = JsonString(define, "type");
  bool known = false;
  for (const char* type : kTypes) known = known || value.type == type;
  if (!known) return Invalid(where, absl::StrCat("unknown type \"", value.type, "\""));
  value.has_min = NumberOf(define, "min", &value.min);
  value.has_max = NumberOf(define, "max", &value.max);
  if (const Value* mapping = JsonField(define, "mapping");
      mapping != nullptr && mapping->kind_case() == Value::kStructValue) {
    for (const auto& [key, unused] : mapping->struct_value().fields()) value.mapping.push_back(key);
    // Numeric keys in numeric order ("2" before "10"), for errors that read the same every time.
    std::sort(value.mapping.begin(), value.mapping.end(),
              [](const std::string& a, const std::string& b) {
                return a.size() != b.size() ? a.size() < b.size() : a < b;
              });
  }
  if (value.type == "struct") {
    absl::StatusOr<std::vector<TemplateValue>> members =
        ParseList(define, "specs", "dataType", where + ".specs");
    if (!members.ok()) return members.status();
    value.members = *std::move(members);
  }
  return value;
}

std::string Show(const Value& v) { return ToJson(v); }

absl::Status CheckValue(const TemplateValue& spec, const Value& v, const std::string& where) {
  auto number_in_range = [&](bool integral) -> absl::Status {
    if (v.kind_case() != Value::kNumberValue) {
      return Invalid(where, absl::StrCat(Show(v), " is not a number (", spec.type, ")"));
    }
    double d = v.number_value();
    if (integral && d != std::floor(d)) {
      return Invalid(where, absl::StrCat(Show(v), " is not an integer"));
    }
    if (spec.has_min && d < spec.min) {
      return Invalid(where, absl::StrCat(Show(v), " is below min ", spec.min));
    }
    if (spec.has_max && d > spec.max) {
      return Invalid(where, absl::StrCat(Show(v), " is above max ", spec.max));
    }
    return absl::OkStatus();
  };
  if (spec.type == "int") return number_in_range(true);
  if (spec.type == "float") return number_in_range(false);
  if (spec.type == "timestamp") {
    if (v.kind_case() != Value::kNumberValue || v.number_value() < 0 ||
        v.number_value() != std::floor(v.number_value())) {
      return Invalid(where, absl::StrCat(Show(v), " is not a timestamp (whole seconds)"));
    }
    return absl::OkStatus();
  }
  if (spec.type == "bool" || spec.type == "enum") {
    if (v.kind_case() != Value::kNumberValue || v.number_value() != std::floor(v.number_value())) {
      return Invalid(where, absl::StrCat(Show(v), " is not one of the ", spec.type, " values"));
    }
    std::string key = absl::StrCat(static_cast<int64_t>(v.number_value()));
    std::vector<std::string> allowed = spec.mapping;
    if (spec.type == "bool" && allowed.empty()) allowed = {"0", "1"};
    for (const std::string& a : allowed) {
      if (a == key) return absl::OkStatus();
    }
    std::string list;
    for (const std::string& a : allowed) absl::StrAppend(&list, list.empty() ? "" : ", ", a);
    return Invalid(where, absl::StrCat(key, " is not one of ", list));
  }
  if (spec.type == "string" || spec.type == "stringenum") {
    if (v.kind_case() != Value::kStringValue) {
      return Invalid(where, absl::StrCat(Show(v), " is not a string"));
    }
    if (spec.type == "stringenum" && !spec.mapping.empty()) {
      for (const std::string& a : spec.mapping) {
        if (a == v.string_value()) return absl::OkStatus();
      }
      return Invalid(where, absl::StrCat(Show(v), " is not one of the template's values"));
    }
    if (spec.has_max && static_cast<double>(v.string_value().size()) > spec.max) {
      return Invalid(where, absl::StrCat("longer than max ", spec.max, " bytes"));
    }
    return absl::OkStatus();
  }
  if (spec.type == "struct") {
    if (v.kind_case() != Value::kStructValue) {
      return Invalid(where, absl::StrCat(Show(v), " is not an object (struct)"));
    }
    for (const auto& [key, member_value] : v.struct_value().fields()) {
      const TemplateValue* member = nullptr;
      for (const TemplateValue& m : spec.members) {
        if (m.id == key) member = &m;
      }
      if (member == nullptr) return Invalid(where + "." + key, "not a member of the struct");
      absl::Status ok = CheckValue(*member, member_value, where + "." + key);
      if (!ok.ok()) return ok;
    }
    return absl::OkStatus();
  }
  if (spec.type == "array" && v.kind_case() != Value::kListValue) {
    return Invalid(where, absl::StrCat(Show(v), " is not an array"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Struct> ParseObject(absl::string_view json, absl::string_view what) {
  absl::StatusOr<Value> value = ParseJsonValue(json);
  if (!value.ok() || value->kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError(
        absl::StrCat("template: ", what, " must be a JSON object, got: ", json.substr(0, 80)));
  }
  return value->struct_value();
}

// Every key of `object` a known value of `specs` and valid; with `all`, every spec present.
absl::Status CheckAgainst(const std::vector<TemplateValue>& specs, const Struct& object,
                          const std::string& where, bool all) {
  // In key order, so that of several bad values the same one is reported every time.
  std::map<std::string, const Value*> sorted;
  for (const auto& [key, value] : object.fields()) sorted[key] = &value;
  for (const auto& [key, value_ptr] : sorted) {
    const Value& value = *value_ptr;
    const TemplateValue* spec = nullptr;
    for (const TemplateValue& s : specs) {
      if (s.id == key) spec = &s;
    }
    if (spec == nullptr) return Invalid(absl::StrCat(where, ".", key), "not in the data template");
    absl::Status ok = CheckValue(*spec, value, absl::StrCat(where, ".", key));
    if (!ok.ok()) return ok;
  }
  if (all) {
    for (const TemplateValue& s : specs) {
      if (object.fields().find(s.id) == object.fields().end()) {
        return Invalid(absl::StrCat(where, ".", s.id), "missing");
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DataTemplate> ParseDataTemplate(absl::string_view json, absl::string_view source) {
  absl::StatusOr<Value> root = ParseJsonValue(json);
  if (!root.ok() || root->kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a data template (a JSON object with \"properties\")",
                     root.ok() ? "" : absl::StrCat(": ", root.status().message())));
  }
  const Struct& s = root->struct_value();
  auto annotate = [&](const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat(source, ": ", status.message()));
  };
  DataTemplate tmpl;
  absl::StatusOr<std::vector<TemplateValue>> properties =
      ParseList(s, "properties", "define", "properties");
  if (!properties.ok()) return annotate(properties.status());
  for (TemplateValue& p : *properties) tmpl.properties[p.id] = std::move(p);
  for (const char* kind : {"events", "actions"}) {
    const Value* list = JsonField(s, kind);
    if (list == nullptr) continue;
    if (list->kind_case() != Value::kListValue) return annotate(Invalid(kind, "not a list"));
    for (int i = 0; i < list->list_value().values_size(); ++i) {
      std::string at = absl::StrCat(kind, "[", i, "]");
      const Value& entry = list->list_value().values(i);
      if (entry.kind_case() != Value::kStructValue) return annotate(Invalid(at, "not an object"));
      const Struct& e = entry.struct_value();
      std::string id = JsonString(e, "id");
      if (id.empty()) return annotate(Invalid(at, "no \"id\""));
      if (std::string(kind) == "events") {
        TemplateEvent event{id, JsonString(e, "type"), {}};
        absl::StatusOr<std::vector<TemplateValue>> params =
            ParseList(e, "params", "define", at + ".params");
        if (!params.ok()) return annotate(params.status());
        event.params = *std::move(params);
        tmpl.events[id] = std::move(event);
      } else {
        TemplateAction action{id, {}, {}};
        absl::StatusOr<std::vector<TemplateValue>> input =
            ParseList(e, "input", "define", at + ".input");
        if (!input.ok()) return annotate(input.status());
        absl::StatusOr<std::vector<TemplateValue>> output =
            ParseList(e, "output", "define", at + ".output");
        if (!output.ok()) return annotate(output.status());
        action.input = *std::move(input);
        action.output = *std::move(output);
        tmpl.actions[id] = std::move(action);
      }
    }
  }
  return tmpl;
}

absl::Status ValidateProperties(const DataTemplate& tmpl, absl::string_view params_json) {
  absl::StatusOr<Struct> params = ParseObject(params_json, "params");
  if (!params.ok()) return params.status();
  std::vector<TemplateValue> specs;
  for (const auto& [id, spec] : tmpl.properties) specs.push_back(spec);
  return CheckAgainst(specs, *params, "template: params", false);
}

absl::Status ValidateEvent(const DataTemplate& tmpl, absl::string_view event_id,
                           absl::string_view params_json) {
  auto it = tmpl.events.find(std::string(event_id));
  if (it == tmpl.events.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("template: event \"", event_id, "\" is not in the data template"));
  }
  absl::StatusOr<Struct> params = ParseObject(params_json, "event params");
  if (!params.ok()) return params.status();
  return CheckAgainst(it->second.params, *params,
                      absl::StrCat("template: events.", event_id, ".params"), true);
}

absl::Status ValidateActionOutput(const DataTemplate& tmpl, absl::string_view action_id,
                                  absl::string_view response_json) {
  auto it = tmpl.actions.find(std::string(action_id));
  if (it == tmpl.actions.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("template: action \"", action_id, "\" is not in the data template"));
  }
  absl::StatusOr<Struct> response = ParseObject(response_json, "action response");
  if (!response.ok()) return response.status();
  return CheckAgainst(it->second.output, *response,
                      absl::StrCat("template: actions.", action_id, ".output"), false);
}

absl::Status ValidateReportInfo(absl::string_view params_json) {
  absl::StatusOr<Struct> params = ParseObject(params_json, "report_info params");
  if (!params.ok()) return params.status();
  constexpr const char* kStrings[] = {
      "module_hardinfo", "module_softinfo", "fw_ver", "imei", "lat", "lon", "mac"};
  bool has_required = false;
  // Sorted keys, so that the first problem named is the same on every run.
  std::map<std::string, const Value*> fields;
  for (const auto& [key, value] : params->fields()) fields[key] = &value;
  for (const auto& [key, value] : fields) {
    std::string where = absl::StrCat("template: report_info.", key);
    if (key == "device_label") {
      if (value->kind_case() != Value::kStructValue) {
        return Invalid(where, "not an object (the device's own fields, as strings)");
      }
      for (const auto& [label, v] : value->struct_value().fields()) {
        if (v.kind_case() != Value::kStringValue) {
          return Invalid(absl::StrCat(where, ".", label),
                         absl::StrCat(Show(v), " is not a string"));
        }
      }
      continue;
    }
    bool known = false;
    for (const char* k : kStrings) known = known || key == k;
    if (!known) {
      return Invalid(where,
                     "not a report_info field (module_hardinfo, module_softinfo, fw_ver, imei, "
                     "lat, lon, mac); put the device's own fields in \"device_label\"");
    }
    if (value->kind_case() != Value::kStringValue) {
      return Invalid(where, absl::StrCat(Show(*value), " is not a string"));
    }
    has_required =
        has_required || key == "module_hardinfo" || key == "module_softinfo" || key == "fw_ver";
  }
  if (!has_required) {
    return absl::InvalidArgumentError(
        "template: report_info needs at least one of module_hardinfo, module_softinfo, fw_ver");
  }
  return absl::OkStatus();
}

std::string ThingTopic(absl::string_view direction, absl::string_view kind,
                       absl::string_view product_id, absl::string_view device_name) {
  return absl::StrCat("$thing/", direction, "/", kind, "/", product_id, "/", device_name);
}

std::string PropertyReportPayload(absl::string_view client_token, absl::string_view params_json) {
  return absl::StrCat(R"({"method":"report","clientToken":)", JsonQuote(client_token),
                      R"(,"params":)", params_json, "}");
}
std::string GetStatusPayload(absl::string_view client_token) {
  return absl::StrCat(R"({"method":"get_status","clientToken":)", JsonQuote(client_token), "}");
}
std::string ClearControlPayload(absl::string_view client_token) {
  return absl::StrCat(R"({"method":"clear_control","clientToken":)", JsonQuote(client_token), "}");
}
std::string ReportInfoPayload(absl::string_view client_token, absl::string_view params_json) {
  return absl::StrCat(R"({"method":"report_info","clientToken":)", JsonQuote(client_token),
                      R"(,"params":)", params_json, "}");
}
std::string ControlReplyPayload(absl::string_view client_token, int code,
                                absl::string_view status) {
  return absl::StrCat(R"({"method":"control_reply","clientToken":)", JsonQuote(client_token),
                      R"(,"code":)", code, R"(,"status":)", JsonQuote(status), "}");
}
std::string EventPostPayload(absl::string_view client_token, absl::string_view event_id,
                             absl::string_view type, int64_t timestamp_ms,
                             absl::string_view params_json) {
  return absl::StrCat(R"({"method":"event_post","clientToken":)", JsonQuote(client_token),
                      R"(,"eventId":)", JsonQuote(event_id), R"(,"type":)", JsonQuote(type),
                      R"(,"timestamp":)", timestamp_ms, R"(,"params":)", params_json, "}");
}
std::string ActionReplyPayload(absl::string_view client_token, int code, absl::string_view status,
                               absl::string_view response_json) {
  return absl::StrCat(R"({"method":"action_reply","clientToken":)", JsonQuote(client_token),
                      R"(,"code":)", code, R"(,"status":)", JsonQuote(status), R"(,"response":)",
                      response_json, "}");
}

absl::StatusOr<ThingMessage> ParseThingMessage(absl::string_view json) {
  absl::StatusOr<Value> root = ParseJsonValue(json);
  if (!root.ok() || root->kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("template: message on $thing/down is not a JSON object");
  }
  const Struct& s = root->struct_value();
  ThingMessage message;
  message.method = JsonString(s, "method");
  if (message.method.empty()) {
    return absl::InvalidArgumentError("template: message on $thing/down has no \"method\"");
  }
  message.client_token = JsonString(s, "clientToken");
  message.action_id = JsonString(s, "actionId");
  message.status = JsonString(s, "status");
  if (const Value* code = JsonField(s, "code"); code != nullptr) {
    message.code = static_cast<int64_t>(code->number_value());
  }
  if (const Value* params = JsonField(s, "params"); params != nullptr) {
    message.params_json = ToJson(*params);
  }
  if (const Value* data = JsonField(s, "data"); data != nullptr) {
    message.data_json = ToJson(*data);
  }
  return message;
}

std::unique_ptr<TemplateClient> TemplateClient::Attach(Client& client, absl::string_view product_id,
                                                       absl::string_view device_name,
                                                       DataTemplate tmpl, Options options,
                                                       mqtt::Completion subscribed) {
  std::unique_ptr<mqtt::Clock> own_clock;
  mqtt::Clock& clock = AttachClock(client.loop(), options.clock, &own_clock);
  auto device =
      std::make_unique<TemplateClient>(std::string(product_id), std::string(device_name),
                                       std::move(tmpl), PublishThrough(client), clock, options);
  device->own_clock_ = std::move(own_clock);
  std::weak_ptr<TemplateClient*> weak = device->self_;
  // One answer for the three SUBACKs: the first failure, or OK after the last.
  struct Join {
    int left = 3;
    absl::Status first_error;
    mqtt::Completion done;
  };
  auto join = std::make_shared<Join>();
  join->done = std::move(subscribed);
  for (std::string kind : {"property", "event", "action"}) {
    client.Subscribe(
        ThingTopic("down", kind, product_id, device_name), 0,
        [weak, kind](const mqtt::Message& m) {
          if (auto self = weak.lock()) (*self)->OnMessage(kind, m.payload);
        },
        [join](const absl::Status& status) {
          if (!status.ok() && join->first_error.ok()) join->first_error = status;
          if (--join->left == 0 && join->done) join->done(join->first_error);
        });
  }
  return device;
}

TemplateClient::TemplateClient(std::string product_id, std::string device_name, DataTemplate tmpl,
                               PublishFn publish, mqtt::Clock& clock, Options options)
    : product_id_(std::move(product_id)),
      device_name_(std::move(device_name)),
      tmpl_(std::move(tmpl)),
      publish_(std::move(publish)),
      clock_(clock),
      options_(options),
      self_(std::make_shared<TemplateClient*>(this)) {}

TemplateClient::~TemplateClient() {
  self_.reset();
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [token, request] : pending) {
    clock_.Cancel(request.timer);
    if (request.done) {
      request.done(absl::CancelledError(absl::StrCat("template: ", request.what, " (", token,
                                                     ") abandoned: client destroyed")),
                   nullptr);
    }
  }
}

namespace {
// A reply that only says OK or not, for the callers that want no data.
auto StatusOnly(TemplateClient::Callback done) {
  return [done = std::move(done)](const absl::Status& status, const ThingMessage*) {
    if (done) done(status);
  };
}
}  // namespace

std::string TemplateClient::NextToken() {
  // "<productId>-<counter>", as the SDK's build_empty_json.
  return absl::StrCat(product_id_, "-", next_token_++);
}

void TemplateClient::ReportProperties(absl::string_view params_json, Callback done) {
  absl::Status valid = ValidateProperties(tmpl_, params_json);
  if (!valid.ok()) {
    if (done) done(valid);
    return;
  }
  std::string token = NextToken();
  std::string payload = PropertyReportPayload(token, params_json);
  Send("property", 0, "report", "report_reply", std::move(token), std::move(payload),
       StatusOnly(std::move(done)));
}

void TemplateClient::PostEvent(absl::string_view event_id, absl::string_view params_json,
                               Callback done) {
  absl::Status valid = ValidateEvent(tmpl_, event_id, params_json);
  if (!valid.ok()) {
    if (done) done(valid);
    return;
  }
  std::string token = NextToken();
  std::string payload =
      EventPostPayload(token, event_id, tmpl_.events.at(std::string(event_id)).type,
                       absl::ToUnixMillis(clock_.Now()), params_json);
  Send("event", 1, absl::StrCat("event_post ", event_id), "event_reply", std::move(token),
       std::move(payload), StatusOnly(std::move(done)));
}

void TemplateClient::GetStatus(StatusCallback done) {
  std::string token = NextToken();
  std::string payload = GetStatusPayload(token);
  Send(
      "property", 0, "get_status", "get_status_reply", std::move(token), std::move(payload),
      [done = std::move(done)](const absl::Status& status, const ThingMessage* reply) {
        if (!done) return;
        if (!status.ok()) {
          done(status);
          return;
        }
        absl::StatusOr<Struct> data = ParseObject(reply->data_json, "get_status_reply data");
        if (!data.ok()) {
          done(absl::DataLossError(absl::StrCat(
              "template: get_status_reply: \"data\" is not an object: ", reply->data_json)));
          return;
        }
        DeviceStatus device_status;
        if (const Value* reported = JsonField(*data, "reported"); reported != nullptr) {
          if (reported->kind_case() != Value::kStructValue) {
            done(absl::DataLossError("template: get_status_reply: data.reported is not an object"));
            return;
          }
          device_status.reported_json = ToJson(*reported);
        }
        // An empty control is no control: nothing to apply, nothing to clear.
        if (const Value* control = JsonField(*data, "control");
            control != nullptr && control->kind_case() == Value::kStructValue &&
            control->struct_value().fields_size() > 0) {
          device_status.control_json = ToJson(*control);
        }
        done(std::move(device_status));
      });
}

void TemplateClient::ClearControl(Callback done) {
  std::string token = NextToken();
  std::string payload = ClearControlPayload(token);
  Send("property", 0, "clear_control", "clear_control_reply", std::move(token), std::move(payload),
       StatusOnly(std::move(done)));
}

void TemplateClient::ReportInfo(absl::string_view params_json, Callback done) {
  absl::Status valid = ValidateReportInfo(params_json);
  if (!valid.ok()) {
    if (done) done(valid);
    return;
  }
  std::string token = NextToken();
  std::string payload = ReportInfoPayload(token, params_json);
  Send("property", 0, "report_info", "report_info_reply", std::move(token), std::move(payload),
       StatusOnly(std::move(done)));
}

void TemplateClient::Send(absl::string_view kind, int qos, std::string what,
                          std::string reply_method, std::string token, std::string payload,
                          ReplyFn done) {
  std::weak_ptr<TemplateClient*> weak = self_;
  Pending& request = pending_[token];
  request.what = what;
  request.reply_method = std::move(reply_method);
  request.done = std::move(done);
  request.timer = clock_.RunAfter(options_.timeout, [weak, token, what, this] {
    if (weak.expired()) return;
    Finish(token, absl::DeadlineExceededError(
                      absl::StrCat("template: no reply to ", what, " (clientToken ", token,
                                   ") within ", absl::FormatDuration(options_.timeout))));
  });
  publish_(ThingTopic("up", kind, product_id_, device_name_), payload, qos,
           [weak, token, this](const absl::Status& status) {
             if (status.ok() || weak.expired()) return;
             Finish(token,
                    absl::Status(status.code(), absl::StrCat("template: ", token,
                                                             " not sent: ", status.message())));
           });
}

void TemplateClient::Finish(const std::string& token, const absl::Status& status,
                            const ThingMessage* reply) {
  auto it = pending_.find(token);
  if (it == pending_.end()) return;
  Pending request = std::move(it->second);
  pending_.erase(it);
  clock_.Cancel(request.timer);
  if (request.done) request.done(status, status.ok() ? reply : nullptr);
}

void TemplateClient::OnMessage(absl::string_view kind, absl::string_view payload) {
  absl::StatusOr<ThingMessage> message = ParseThingMessage(payload);
  if (!message.ok()) return;
  if (absl::EndsWith(message->method, "_reply")) {
    // Matched by clientToken; a reply of another method under the same token is not this one's.
    auto it = pending_.find(message->client_token);
    if (it == pending_.end() || it->second.reply_method != message->method) return;
    Finish(message->client_token,
           message->code == 0 ? absl::OkStatus()
                              : absl::FailedPreconditionError(
                                    absl::StrCat("template: ", it->second.what, " refused (code ",
                                                 message->code, ": ", message->status, ")")),
           &*message);
    return;
  }
  if (message->method == "control" && kind == "property") {
    Reply reply;
    absl::Status valid = ValidateProperties(tmpl_, message->params_json);
    if (!valid.ok()) {
      reply = Reply{1, std::string(valid.message())};
    } else if (control_handler_) {
      reply = control_handler_(message->params_json);
    }
    publish_(ThingTopic("up", "property", product_id_, device_name_),
             ControlReplyPayload(message->client_token, reply.code, reply.status), 0, nullptr);
    return;
  }
  if (message->method == "action" && kind == "action") {
    Reply reply{1, "no action handler", "{}"};
    auto action = tmpl_.actions.find(message->action_id);
    if (action == tmpl_.actions.end()) {
      reply.status =
          absl::StrCat("action \"", message->action_id, "\" is not in the data template");
    } else if (action_handler_) {
      reply = action_handler_(message->action_id, message->params_json);
      absl::Status valid = ValidateActionOutput(tmpl_, message->action_id, reply.response_json);
      if (!valid.ok()) reply = Reply{1, std::string(valid.message()), "{}"};
    }
    publish_(
        ThingTopic("up", "action", product_id_, device_name_),
        ActionReplyPayload(message->client_token, reply.code, reply.status, reply.response_json), 1,
        nullptr);
  }
}

}  // namespace tencent
}  // namespace hublink
