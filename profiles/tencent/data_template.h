// Tencent IoT Explorer's data template: the product's properties, events and actions, as the
// console exports them (a JSON file: {"version","properties":[{"id","mode","define":{"type",..}}],
// "events":[{"id","type","params":[..]}],"actions":[{"id","input":[..],"output":[..]}]}), and the
// messages that carry them over $thing/up|down/property|event|action/<pid>/<dn>. Values are
// checked against the template before anything is sent, so a typo or an out-of-range value is an
// error naming the field instead of a message the platform drops. Facts and sources:
// docs/tencent-services.md.
#ifndef HUBLINK_PROFILES_TENCENT_DATA_TEMPLATE_H_
#define HUBLINK_PROFILES_TENCENT_DATA_TEMPLATE_H_

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

// One value's definition ("define" of a property or event parameter, "dataType" of a struct
// member). Types: bool, int, float, enum, string, timestamp, struct (strings and arrays are
// checked as far as the template says).
struct TemplateValue {
  std::string id;
  std::string type;
  bool has_min = false, has_max = false;
  double min = 0, max = 0;             // int, float: the range; string: the length
  std::vector<std::string> mapping;    // enum and bool: the allowed keys ("0", "1", ...)
  std::vector<TemplateValue> members;  // struct
  std::string mode;                    // properties: "rw" or "r"
};

struct TemplateEvent {
  std::string id;
  std::string type;  // "info", "alert", "fault"
  std::vector<TemplateValue> params;
};

struct TemplateAction {
  std::string id;
  std::vector<TemplateValue> input;
  std::vector<TemplateValue> output;
};

struct DataTemplate {
  std::map<std::string, TemplateValue> properties;
  std::map<std::string, TemplateEvent> events;
  std::map<std::string, TemplateAction> actions;
};

// Parses the exported JSON. Errors start with `source` and name the entry ("properties[2].define:
// unknown type \"double\"").
absl::StatusOr<DataTemplate> ParseDataTemplate(absl::string_view json, absl::string_view source);

// `params_json` (a JSON object) against the properties: every key a known property, every value
// of its type and within its range. kInvalidArgument naming the key ("template: params.brightness:
// 120 is above max 100").
absl::Status ValidateProperties(const DataTemplate& tmpl, absl::string_view params_json);
// An event's params (every parameter the template lists, nothing else) and its type.
absl::Status ValidateEvent(const DataTemplate& tmpl, absl::string_view event_id,
                           absl::string_view params_json);
// An action's output (the action_reply "response").
absl::Status ValidateActionOutput(const DataTemplate& tmpl, absl::string_view action_id,
                                  absl::string_view response_json);
// report_info's params (the device's own description, not template values): a JSON object with
// at least one of module_hardinfo, module_softinfo, fw_ver (the SDK calls one of them
// compulsory); those and imei, lat, lon, mac as strings; the device's own fields in a
// "device_label" object of strings. Any other key is refused, naming device_label, so a typo
// does not vanish on the platform.
absl::Status ValidateReportInfo(absl::string_view params_json);

// $thing/<direction>/<kind>/<pid>/<dn>: direction "up" or "down", kind "property", "event",
// "action".
std::string ThingTopic(absl::string_view direction, absl::string_view kind,
                       absl::string_view product_id, absl::string_view device_name);

// Message bodies (JSON objects passed through as given; validate them first).
std::string PropertyReportPayload(absl::string_view client_token, absl::string_view params_json);
std::string GetStatusPayload(absl::string_view client_token);
std::string ClearControlPayload(absl::string_view client_token);
std::string ReportInfoPayload(absl::string_view client_token, absl::string_view params_json);
std::string ControlReplyPayload(absl::string_view client_token, int code, absl::string_view status);
// timestamp in milliseconds, as the SDK sends it.
std::string EventPostPayload(absl::string_view client_token, absl::string_view event_id,
                             absl::string_view type, int64_t timestamp_ms,
                             absl::string_view params_json);
std::string ActionReplyPayload(absl::string_view client_token, int code, absl::string_view status,
                               absl::string_view response_json);

// A message on $thing/down/...: its method, clientToken and, as JSON, params (control), data
// (get_status_reply), and for actions actionId. kInvalidArgument for a non-object or a missing
// "method".
struct ThingMessage {
  std::string method;
  std::string client_token;
  std::string action_id;
  std::string params_json = "{}";
  std::string data_json = "{}";
  int64_t code = 0;
  std::string status;
};
absl::StatusOr<ThingMessage> ParseThingMessage(absl::string_view json);

// A device speaking its data template over a Client: reports and events wait for the platform's
// report_reply / event_reply (matched by clientToken, with a timeout on the clock), control and
// action messages go to handlers whose answers go back as control_reply / action_reply. Everything
// sent is validated against the template first. Loop thread only, like ShadowClient.
class TemplateClient {
 public:
  using PublishFn = std::function<void(const std::string& topic, const std::string& payload,
                                       int qos, mqtt::Completion done)>;
  using Callback = std::function<void(const absl::Status&)>;
  struct Reply {
    int code = 0;
    std::string status;
    std::string response_json = "{}";  // actions: the output
  };
  // `params_json`: the control's params (already checked against the template; a control that
  // fails the check is answered with code 1 and the error, without calling the handler).
  using ControlHandler = std::function<Reply(const std::string& params_json)>;
  using ActionHandler =
      std::function<Reply(const std::string& action_id, const std::string& params_json)>;
  // A get_status_reply's data: the values the platform last got from the device, and the control
  // it still holds for the device (one sent while the device was away), if any.
  struct DeviceStatus {
    std::string reported_json = "{}";
    std::string control_json;  // empty: no pending control
  };
  using StatusCallback = std::function<void(absl::StatusOr<DeviceStatus>)>;

  struct Options {
    absl::Duration timeout = absl::Seconds(10);
    mqtt::Clock* clock = nullptr;  // null: the client's loop (Attach)
  };

  // Subscribes (QoS 0, as the SDK) to $thing/down/property, event and action; `subscribed` gets
  // the first failure or OK once all three are granted.
  static std::unique_ptr<TemplateClient> Attach(Client& client, absl::string_view product_id,
                                                absl::string_view device_name, DataTemplate tmpl,
                                                Options options, mqtt::Completion subscribed);
  TemplateClient(std::string product_id, std::string device_name, DataTemplate tmpl,
                 PublishFn publish, mqtt::Clock& clock, Options options);
  ~TemplateClient();  // pending requests complete with kCancelled
  TemplateClient(const TemplateClient&) = delete;
  TemplateClient& operator=(const TemplateClient&) = delete;

  // report on $thing/up/property (QoS 0); OK on a report_reply with code 0.
  void ReportProperties(absl::string_view params_json, Callback done);
  // event_post on $thing/up/event (QoS 1); OK on an event_reply with code 0.
  void PostEvent(absl::string_view event_id, absl::string_view params_json, Callback done);
  // get_status on $thing/up/property (QoS 0); the get_status_reply's data.reported and
  // data.control. A pending control is handed back, not applied: the device applies it (checked
  // with ValidateProperties), reports, and then calls ClearControl so it is not delivered again,
  // which is the SDK sample's order.
  void GetStatus(StatusCallback done);
  // clear_control on $thing/up/property (QoS 0): the platform drops the control it holds for
  // the device. OK on a clear_control_reply with code 0.
  void ClearControl(Callback done);
  // report_info on $thing/up/property (QoS 0), params checked by ValidateReportInfo. OK on a
  // report_info_reply with code 0.
  void ReportInfo(absl::string_view params_json, Callback done);
  void set_control_handler(ControlHandler handler) { control_handler_ = std::move(handler); }
  void set_action_handler(ActionHandler handler) { action_handler_ = std::move(handler); }

  // A message from one of the $thing/down topics; `kind` is "property", "event" or "action".
  void OnMessage(absl::string_view kind, absl::string_view payload);
  size_t pending() const { return pending_.size(); }

 private:
  // `done` gets the reply's data (get_status) with OK, or the failure.
  using ReplyFn = std::function<void(const absl::Status&, const ThingMessage* reply)>;
  struct Pending {
    std::string what;
    std::string reply_method;  // the only method that answers it
    ReplyFn done;
    mqtt::Clock::TimerId timer = 0;
  };
  std::string NextToken();
  void Send(absl::string_view kind, int qos, std::string what, std::string reply_method,
            std::string token, std::string payload, ReplyFn done);
  void Finish(const std::string& token, const absl::Status& status,
              const ThingMessage* reply = nullptr);

  const std::string product_id_;
  const std::string device_name_;
  const DataTemplate tmpl_;
  PublishFn publish_;
  mqtt::Clock& clock_;
  Options options_;
  uint64_t next_token_ = 0;
  std::map<std::string, Pending> pending_;
  ControlHandler control_handler_;
  ActionHandler action_handler_;
  std::shared_ptr<TemplateClient*> self_;
  std::unique_ptr<mqtt::Clock> own_clock_;
};

}  // namespace tencent
}  // namespace hublink

#endif  // HUBLINK_PROFILES_TENCENT_DATA_TEMPLATE_H_
