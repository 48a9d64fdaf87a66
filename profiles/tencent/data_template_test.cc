#include "profiles/tencent/data_template.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace hublink {
namespace tencent {
namespace {

// The shape of the IoT Explorer SDK's tools/example_config.json (a light), trimmed.
constexpr char kLight[] = R"({
  "version": "1.0",
  "profile": {"ProductId": "U7D5MBSDYB", "CategoryId": "3"},
  "properties": [
    {"id": "power_switch", "mode": "rw", "define": {"type": "bool", "mapping": {"0": "off", "1": "on"}}},
    {"id": "color", "mode": "rw", "define": {"type": "enum", "mapping": {"0": "Red", "1": "Green", "2": "Blue"}}},
    {"id": "brightness", "mode": "rw", "define": {"type": "int", "unit": "%", "step": "1", "min": "0", "max": "100", "start": "1"}},
    {"id": "name", "mode": "rw", "define": {"type": "string", "min": "0", "max": "64"}},
    {"id": "position", "mode": "rw", "define": {"type": "struct", "specs": [
      {"id": "longitude", "dataType": {"type": "int", "min": "-180", "max": "180"}},
      {"id": "latitude", "dataType": {"type": "int", "min": "-90", "max": "90"}}]}}
  ],
  "events": [
    {"id": "status_report", "type": "info", "params": [
      {"id": "status", "define": {"type": "bool", "mapping": {"0": "normal", "1": "fault"}}},
      {"id": "message", "define": {"type": "string", "min": "0", "max": "64"}}]},
    {"id": "low_voltage", "type": "alert", "params": [
      {"id": "voltage", "define": {"type": "float", "min": "0.0", "max": "24.0"}}]}
  ],
  "actions": [
    {"id": "light_blink", "input": [{"id": "time", "define": {"type": "int", "min": "0", "max": "10"}}],
     "output": [{"id": "result", "define": {"type": "bool", "mapping": {"0": "fail", "1": "ok"}}}]}
  ]
})";

class DataTemplateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto parsed = ParseDataTemplate(kLight, "light.json");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    tmpl_ = *parsed;
  }
  DataTemplate tmpl_;
};

TEST_F(DataTemplateTest, ParsesPropertiesEventsAndActions) {
  EXPECT_EQ(tmpl_.properties.size(), 5u);
  EXPECT_EQ(tmpl_.properties.at("brightness").max, 100);
  EXPECT_EQ(tmpl_.properties.at("position").members.size(), 2u);
  EXPECT_EQ(tmpl_.events.at("low_voltage").type, "alert");
  EXPECT_EQ(tmpl_.actions.at("light_blink").output[0].id, "result");
}

TEST_F(DataTemplateTest, PropertiesAreCheckedByTypeAndRange) {
  EXPECT_TRUE(ValidateProperties(tmpl_, R"({"power_switch":1,"brightness":40,"color":2,)"
                                        R"("name":"study","position":{"longitude":113}})")
                  .ok());
  EXPECT_EQ(ValidateProperties(tmpl_, R"({"brightness":120})").message(),
            "template: params.brightness: 120 is above max 100");
  EXPECT_EQ(ValidateProperties(tmpl_, R"({"brightness":4.5})").message(),
            "template: params.brightness: 4.5 is not an integer");
  EXPECT_EQ(ValidateProperties(tmpl_, R"({"color":3})").message(),
            "template: params.color: 3 is not one of 0, 1, 2");
  EXPECT_EQ(ValidateProperties(tmpl_, R"({"power_switch":true})").message(),
            "template: params.power_switch: true is not one of the bool values");
  EXPECT_EQ(ValidateProperties(tmpl_, R"({"brightnes":1})").message(),
            "template: params.brightnes: not in the data template");
  EXPECT_EQ(ValidateProperties(tmpl_, R"({"position":{"latitude":91}})").message(),
            "template: params.position.latitude: 91 is above max 90");
  EXPECT_EQ(ValidateProperties(tmpl_, R"({"name":7})").message(),
            "template: params.name: 7 is not a string");
  EXPECT_EQ(ValidateProperties(tmpl_, "[1]").code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DataTemplateTest, EventsNeedEveryParameterAndActionsTheirOutput) {
  EXPECT_TRUE(ValidateEvent(tmpl_, "status_report", R"({"status":0,"message":"ok"})").ok());
  EXPECT_EQ(ValidateEvent(tmpl_, "status_report", R"({"status":0})").message(),
            "template: events.status_report.params.message: missing");
  EXPECT_EQ(ValidateEvent(tmpl_, "low_voltage", R"({"voltage":30.5})").message(),
            "template: events.low_voltage.params.voltage: 30.5 is above max 24");
  EXPECT_EQ(ValidateEvent(tmpl_, "boom", "{}").message(),
            "template: event \"boom\" is not in the data template");
  EXPECT_TRUE(ValidateActionOutput(tmpl_, "light_blink", R"({"result":1})").ok());
  EXPECT_EQ(ValidateActionOutput(tmpl_, "light_blink", R"({"result":2})").message(),
            "template: actions.light_blink.output.result: 2 is not one of 0, 1");
}

TEST_F(DataTemplateTest, BadTemplatesNameTheEntry) {
  EXPECT_EQ(ParseDataTemplate(R"({"properties":[{"id":"x","define":{"type":"double"}}]})", "t.json")
                .status()
                .message(),
            "t.json: properties[0].define: unknown type \"double\"");
  EXPECT_EQ(ParseDataTemplate(R"({"properties":[{"define":{"type":"int"}}]})", "t.json")
                .status()
                .message(),
            "t.json: properties[0]: no \"id\"");
  EXPECT_EQ(ParseDataTemplate("nope", "t.json").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DataTemplatePayloadTest, TopicsAndMessagesAreTheSdks) {
  EXPECT_EQ(ThingTopic("up", "property", "P", "d"), "$thing/up/property/P/d");
  EXPECT_EQ(ThingTopic("down", "action", "P", "d"), "$thing/down/action/P/d");
  EXPECT_EQ(PropertyReportPayload("P-1", R"({"brightness":40})"),
            R"({"method":"report","clientToken":"P-1","params":{"brightness":40}})");
  EXPECT_EQ(GetStatusPayload("P-2"), R"({"method":"get_status","clientToken":"P-2"})");
  EXPECT_EQ(ClearControlPayload("P-3"), R"({"method":"clear_control","clientToken":"P-3"})");
  EXPECT_EQ(ControlReplyPayload("clientToken-7", 0, "some message"),
            R"({"method":"control_reply","clientToken":"clientToken-7","code":0,)"
            R"("status":"some message"})");
  EXPECT_EQ(EventPostPayload("P-4", "status_report", "info", 1700000000000,
                             R"({"status":0,"message":"ok"})"),
            R"({"method":"event_post","clientToken":"P-4","eventId":"status_report",)"
            R"("type":"info","timestamp":1700000000000,"params":{"status":0,"message":"ok"}})");
  EXPECT_EQ(ActionReplyPayload("a-1", 0, "ok", R"({"result":1})"),
            R"({"method":"action_reply","clientToken":"a-1","code":0,"status":"ok",)"
            R"("response":{"result":1}})");
  EXPECT_EQ(
      ReportInfoPayload("P-5", R"({"module_hardinfo":"ESP8266"})"),
      R"({"method":"report_info","clientToken":"P-5","params":{"module_hardinfo":"ESP8266"}})");
}

TEST(DataTemplatePayloadTest, ParsesControlAndActionMessages) {
  auto control = ParseThingMessage(
      R"({"method":"control","clientToken":"clientToken-7","params":{"power_switch":1,"color":0}})");
  ASSERT_TRUE(control.ok()) << control.status();
  EXPECT_EQ(control->method, "control");
  EXPECT_EQ(control->client_token, "clientToken-7");
  EXPECT_EQ(control->params_json, R"({"color":0,"power_switch":1})");
  auto action = ParseThingMessage(
      R"({"method":"action","clientToken":"a-1","actionId":"light_blink","params":{"time":3}})");
  ASSERT_TRUE(action.ok()) << action.status();
  EXPECT_EQ(action->action_id, "light_blink");
  auto reply = ParseThingMessage(
      R"({"method":"report_reply","clientToken":"P-1","code":0,"status":"success"})");
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->status, "success");
  EXPECT_EQ(ParseThingMessage(R"({"clientToken":"x"})").status().code(),
            absl::StatusCode::kInvalidArgument);
}

class TemplateClientTest : public DataTemplateTest {
 protected:
  struct Sent {
    std::string topic, payload;
    int qos;
  };
  void SetUp() override {
    DataTemplateTest::SetUp();
    TemplateClient::Options options;
    options.timeout = absl::Seconds(5);
    device_ = std::make_unique<TemplateClient>(
        "LIGHT00001", "lamp", tmpl_,
        [this](const std::string& topic, const std::string& payload, int qos,
               mqtt::Completion done) {
          sent_.push_back({topic, payload, qos});
          if (done) done(absl::OkStatus());
        },
        clock_, options);
  }
  mqtt::ManualClock clock_{absl::FromUnixSeconds(1700000000)};
  std::vector<Sent> sent_;
  std::unique_ptr<TemplateClient> device_;
};

TEST_F(TemplateClientTest, ReportsAndEventsWaitForTheirReplies) {
  absl::Status reported = absl::UnknownError("pending"), posted = absl::UnknownError("pending");
  device_->ReportProperties(R"({"brightness":40})", [&](const absl::Status& s) { reported = s; });
  device_->PostEvent("low_voltage", R"({"voltage":3.3})",
                     [&](const absl::Status& s) { posted = s; });
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(sent_[0].topic, "$thing/up/property/LIGHT00001/lamp");
  EXPECT_EQ(sent_[0].payload,
            R"({"method":"report","clientToken":"LIGHT00001-0","params":{"brightness":40}})");
  EXPECT_EQ(sent_[0].qos, 0);
  EXPECT_EQ(sent_[1].topic, "$thing/up/event/LIGHT00001/lamp");
  EXPECT_EQ(sent_[1].payload,
            R"({"method":"event_post","clientToken":"LIGHT00001-1","eventId":"low_voltage",)"
            R"("type":"alert","timestamp":1700000000000,"params":{"voltage":3.3}})");
  EXPECT_EQ(sent_[1].qos, 1);
  device_->OnMessage(
      "property",
      R"({"method":"report_reply","clientToken":"LIGHT00001-0","code":0,"status":"success"})");
  EXPECT_TRUE(reported.ok()) << reported;
  device_->OnMessage(
      "event",
      R"({"method":"event_reply","clientToken":"LIGHT00001-1","code":406,"status":"bad"})");
  EXPECT_EQ(posted.message(), "template: event_post low_voltage refused (code 406: bad)");

  absl::Status invalid;
  device_->ReportProperties(R"({"brightness":101})", [&](const absl::Status& s) { invalid = s; });
  EXPECT_EQ(invalid.message(), "template: params.brightness: 101 is above max 100");
  EXPECT_EQ(sent_.size(), 2u) << "nothing sent";

  absl::Status late = absl::UnknownError("pending");
  device_->ReportProperties(R"({"power_switch":0})", [&](const absl::Status& s) { late = s; });
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(late.code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(TemplateClientTest, ControlAndActionAreAnsweredFromTheHandlers) {
  std::string seen;
  device_->set_control_handler([&](const std::string& params) {
    seen = params;
    return TemplateClient::Reply{0, "applied"};
  });
  device_->OnMessage(
      "property",
      R"({"method":"control","clientToken":"clientToken-7","params":{"power_switch":1}})");
  EXPECT_EQ(seen, R"({"power_switch":1})");
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(
      sent_[0].payload,
      R"({"method":"control_reply","clientToken":"clientToken-7","code":0,"status":"applied"})");
  device_->OnMessage("property",
                     R"({"method":"control","clientToken":"clientToken-8","params":{"color":9}})");
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(sent_[1].payload, R"({"method":"control_reply","clientToken":"clientToken-8","code":1,)"
                              R"("status":"template: params.color: 9 is not one of 0, 1, 2"})");

  device_->set_action_handler([](const std::string& id, const std::string& params) {
    return TemplateClient::Reply{0, "blinked", R"({"result":1})"};
  });
  device_->OnMessage(
      "action",
      R"({"method":"action","clientToken":"a-1","actionId":"light_blink","params":{"time":2}})");
  ASSERT_EQ(sent_.size(), 3u);
  EXPECT_EQ(sent_[2].topic, "$thing/up/action/LIGHT00001/lamp");
  EXPECT_EQ(sent_[2].payload,
            R"({"method":"action_reply","clientToken":"a-1","code":0,"status":"blinked",)"
            R"("response":{"result":1}})");
}

// get_status, clear_control and report_info with the SDK's payloads and the platform's replies
// (get_status_reply as the C SDK docs log it: data.reported, and data.control when the cloud
// holds a control for the device).
TEST_F(TemplateClientTest, GetStatusReturnsReportedAndThePendingControl) {
  absl::StatusOr<TemplateClient::DeviceStatus> status = absl::UnknownError("pending");
  device_->GetStatus([&](absl::StatusOr<TemplateClient::DeviceStatus> s) { status = s; });
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].topic, "$thing/up/property/LIGHT00001/lamp");
  EXPECT_EQ(sent_[0].payload, R"({"method":"get_status","clientToken":"LIGHT00001-0"})");
  EXPECT_EQ(sent_[0].qos, 0);
  // Another method under the same token, and another token, are not the answer.
  device_->OnMessage(
      "property",
      R"({"method":"report_reply","clientToken":"LIGHT00001-0","code":0,"status":"success"})");
  device_->OnMessage("property",
                     R"({"method":"get_status_reply","clientToken":"other-1","code":0,"data":{}})");
  EXPECT_EQ(status.status().message(), "pending");
  device_->OnMessage("property",
                     R"({"method":"get_status_reply","clientToken":"LIGHT00001-0","code":0,)"
                     R"("status":"success","data":{"reported":{"brightness":90,)"
                     R"("power_switch":0},"control":{"power_switch":1}}})");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->reported_json, R"({"brightness":90,"power_switch":0})");
  EXPECT_EQ(status->control_json, R"({"power_switch":1})");
  EXPECT_EQ(device_->pending(), 0u);

  // No control held: control_json stays empty; an empty "control" object is none either.
  device_->GetStatus([&](absl::StatusOr<TemplateClient::DeviceStatus> s) { status = s; });
  device_->OnMessage("property",
                     R"({"method":"get_status_reply","clientToken":"LIGHT00001-1","code":0,)"
                     R"("status":"success","data":{"reported":{"brightness":0},"control":{}}})");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->reported_json, R"({"brightness":0})");
  EXPECT_EQ(status->control_json, "");

  // A device the platform has nothing on yet: "data":{} (the SDK's wifi_config docs log this).
  device_->GetStatus([&](absl::StatusOr<TemplateClient::DeviceStatus> s) { status = s; });
  device_->OnMessage(
      "property",
      R"({"method":"get_status_reply","clientToken":"LIGHT00001-2","code":0,"data":{}})");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->reported_json, "{}");

  device_->GetStatus([&](absl::StatusOr<TemplateClient::DeviceStatus> s) { status = s; });
  device_->OnMessage("property",
                     R"({"method":"get_status_reply","clientToken":"LIGHT00001-3","code":404,)"
                     R"("status":"device not found"})");
  EXPECT_EQ(status.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.status().message(), "template: get_status refused (code 404: device not found)");

  device_->GetStatus([&](absl::StatusOr<TemplateClient::DeviceStatus> s) { status = s; });
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(status.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(status.status().message(),
            "template: no reply to get_status (clientToken LIGHT00001-4) within 5s");
}

TEST_F(TemplateClientTest, ClearControlWaitsForItsReply) {
  absl::Status cleared = absl::UnknownError("pending");
  device_->ClearControl([&](const absl::Status& s) { cleared = s; });
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].topic, "$thing/up/property/LIGHT00001/lamp");
  EXPECT_EQ(sent_[0].payload, R"({"method":"clear_control","clientToken":"LIGHT00001-0"})");
  EXPECT_EQ(sent_[0].qos, 0);
  device_->OnMessage(
      "property",
      R"({"method":"clear_control_reply","clientToken":"LIGHT00001-0","code":0,"status":"success"})");
  EXPECT_TRUE(cleared.ok()) << cleared;

  device_->ClearControl([&](const absl::Status& s) { cleared = s; });
  device_->OnMessage(
      "property",
      R"({"method":"clear_control_reply","clientToken":"LIGHT00001-1","code":1,"status":"busy"})");
  EXPECT_EQ(cleared.message(), "template: clear_control refused (code 1: busy)");
}

TEST_F(TemplateClientTest, ReportInfoIsCheckedSentAndAnswered) {
  // The SDK sample's system info (samples/data_template/data_template_sample.c, _get_sys_info).
  const std::string info =
      R"({"module_hardinfo":"ESP8266","module_softinfo":"V1.0","fw_ver":"3.1.1",)"
      R"("imei":"11-22-33-44","lat":"22.546015","lon":"113.941125",)"
      R"("device_label":{"append_info":"your self define info"}})";
  absl::Status reported = absl::UnknownError("pending");
  device_->ReportInfo(info, [&](const absl::Status& s) { reported = s; });
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].topic, "$thing/up/property/LIGHT00001/lamp");
  EXPECT_EQ(
      sent_[0].payload,
      absl::StrCat(R"({"method":"report_info","clientToken":"LIGHT00001-0","params":)", info, "}"));
  EXPECT_EQ(sent_[0].qos, 0);
  device_->OnMessage(
      "property",
      R"({"method":"report_info_reply","clientToken":"LIGHT00001-0","code":0,"status":"success"})");
  EXPECT_TRUE(reported.ok()) << reported;

  absl::Status invalid;
  device_->ReportInfo(R"({"imei":"1"})", [&](const absl::Status& s) { invalid = s; });
  EXPECT_EQ(invalid.message(),
            "template: report_info needs at least one of module_hardinfo, module_softinfo, fw_ver");
  device_->ReportInfo(R"({"fw_ver":"1","colour":"red"})",
                      [&](const absl::Status& s) { invalid = s; });
  EXPECT_EQ(invalid.message(),
            "template: report_info.colour: not a report_info field (module_hardinfo, "
            "module_softinfo, fw_ver, imei, lat, lon, mac); put the device's own fields in "
            "\"device_label\"");
  device_->ReportInfo(R"({"fw_ver":1})", [&](const absl::Status& s) { invalid = s; });
  EXPECT_EQ(invalid.message(), "template: report_info.fw_ver: 1 is not a string");
  device_->ReportInfo(R"({"fw_ver":"1","device_label":{"rev":2}})",
                      [&](const absl::Status& s) { invalid = s; });
  EXPECT_EQ(invalid.message(), "template: report_info.device_label.rev: 2 is not a string");
  EXPECT_EQ(invalid.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sent_.size(), 1u) << "nothing invalid sent";
}

TEST_F(TemplateClientTest, PendingRequestsAreCancelledWithTheClient) {
  absl::StatusOr<TemplateClient::DeviceStatus> status = absl::UnknownError("pending");
  absl::Status cleared = absl::UnknownError("pending");
  device_->GetStatus([&](absl::StatusOr<TemplateClient::DeviceStatus> s) { status = s; });
  device_->ClearControl([&](const absl::Status& s) { cleared = s; });
  device_.reset();
  EXPECT_EQ(status.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(cleared.code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace tencent
}  // namespace hublink
