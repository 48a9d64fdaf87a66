// bazel run //examples:data_template_sample     (the local hub: started, a control message sent
//                                               from the console)
// bazel run //examples:data_template_sample -- --device_info=device_info.json
//     [--wait=S] [--expect_controls=N]   (the template: examples/data_template_sample.json)
//
// The Tencent C SDK's data_template_sample (IoT Explorer), on hublink: a lamp with the properties
// and the event of its data template (examples/data_template_sample.json: power_switch, color,
// brightness, name; status_report). As the SDK sample, it first reports its system info
// (report_info) and asks for its status (get_status): a control the cloud held while the lamp was
// away is applied like a live one, and cleared (clear_control) so it does not come again. It
// reports all its properties, then handles control messages: each one is checked against the
// template, applied, answered with control_reply, and the new state reported; after each it posts
// a status_report event. profiles/tencent/data_template.h does the protocol and the checks.
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "examples/sample_support.h"
#include "google/protobuf/struct.pb.h"
#include "plugins/log.h"
#include "plugins/read_file.h"
#include "profiles/tencent/data_template.h"
#include "profiles/tencent/json_util.h"

namespace {

using hublink::examples::CallOnLoop;
using hublink::tencent::TemplateClient;

// The lamp's state when it powers on.
constexpr char kInitialState[] =
    R"({"power_switch":0,"color":0,"brightness":50,"name":"hublink lamp"})";
// report_info's params: at least one of module_hardinfo, module_softinfo, fw_ver; the device's
// own fields under device_label (the SDK sample's _get_sys_info sends the same shape).
constexpr char kSystemInfo[] =
    R"({"module_hardinfo":"linux","module_softinfo":"hublink","fw_ver":"1.0.0",)"
    R"("device_label":{"append_info":"hublink data_template_sample"}})";

// Sets each of `params` (a JSON object) in `state`.
bool Apply(const std::string& params_json, google::protobuf::Struct& state) {
  absl::StatusOr<google::protobuf::Value> params = hublink::tencent::ParseJsonValue(params_json);
  if (!params.ok() || !params->has_struct_value()) return false;
  for (const auto& field : params->struct_value().fields()) {
    (*state.mutable_fields())[field.first] = field.second;
  }
  return true;
}

std::string ToJson(const google::protobuf::Struct& s) {
  google::protobuf::Value value;
  *value.mutable_struct_value() = s;
  return hublink::tencent::ToJson(value);
}

}  // namespace

int main(int argc, char** argv) {
  hublink::examples::SampleFlags flags;
  std::string template_file;
  int wait = 30;
  int expect_controls = 0;
  hublink::cli::FlagParser parser;
  parser.AddString("template", &template_file,
                   "the product's data template as the console exports it "
                   "(examples/data_template_sample.json)");
  parser.AddInt("wait", &wait, "seconds to wait for control messages (default 30)");
  parser.AddInt("expect_controls", &expect_controls,
                "stop after this many control messages; fail if fewer arrive within --wait");
  if (!hublink::examples::ParseSampleFlags("data_template_sample", argc, argv, parser, flags)) {
    return 2;
  }
  if (template_file.empty()) {
    std::cerr << "data_template_sample: --template: missing\n";
    return 2;
  }
  absl::StatusOr<std::string> template_json =
      hublink::ReadFileContents(template_file, "--template");
  absl::StatusOr<hublink::tencent::DataTemplate> data_template =
      template_json.ok() ? hublink::tencent::ParseDataTemplate(*template_json, template_file)
                         : absl::StatusOr<hublink::tencent::DataTemplate>(template_json.status());
  if (!data_template.ok()) {
    HLOG(ERROR) << data_template.status().message();
    return 1;
  }

  absl::optional<hublink::examples::Device> device = hublink::examples::ConnectSampleDevice(flags);
  if (!device.has_value()) return 1;
  hublink::Client& client = *device->client;
  const absl::Duration timeout = absl::Seconds(10);

  // Touched on the loop thread only (the control handler), then read after the client is gone.
  google::protobuf::Struct state = hublink::tencent::ParseJsonValue(kInitialState)->struct_value();
  // The state after each control, for main() to report.
  hublink::examples::Mailbox<std::string> controlled;
  std::unique_ptr<TemplateClient> thing;
  absl::Status status =
      CallOnLoop<absl::Status>(client, "subscribe to $thing/down/...", timeout, [&](auto done) {
        thing =
            TemplateClient::Attach(client, device->info.product_id(), device->info.device_name(),
                                   *data_template, {}, std::move(done));
        // Runs on the loop thread with params already checked against the template; the answer
        // goes back as control_reply.
        thing->set_control_handler([&](const std::string& params_json) {
          HLOG(INFO) << "control: " << params_json;
          if (!Apply(params_json, state)) {
            return TemplateClient::Reply{1, "params is not a JSON object", "{}"};
          }
          controlled.Put(ToJson(state));
          return TemplateClient::Reply{0, "success", "{}"};
        });
      });
  // Reports the whole state (the SDK sample reports what changed; all of it is small here).
  auto report = [&](const std::string& properties) {
    absl::Status reported = CallOnLoop<absl::Status>(
        client, "property report", timeout,
        [&](auto done) { thing->ReportProperties(properties, std::move(done)); });
    if (reported.ok()) HLOG(INFO) << "report success: " << properties;
    return reported;
  };
  if (status.ok()) {
    status = CallOnLoop<absl::Status>(client, "report_info", timeout, [&](auto done) {
      thing->ReportInfo(kSystemInfo, std::move(done));
    });
    if (status.ok()) HLOG(INFO) << "report_info success: " << kSystemInfo;
  }
  // What changed while the lamp was away: the control the cloud holds, applied before the first
  // report so that the report carries it.
  if (status.ok()) {
    absl::StatusOr<TemplateClient::DeviceStatus> offline =
        CallOnLoop<absl::StatusOr<TemplateClient::DeviceStatus>>(
            client, "get_status", timeout, [&](auto done) { thing->GetStatus(std::move(done)); });
    status = offline.status();
    if (offline.ok()) {
      HLOG(INFO) << "get_status success: reported " << offline->reported_json << ", "
                 << (offline->control_json.empty() ? "no control held"
                                                   : "control held " + offline->control_json);
    }
    if (offline.ok() && !offline->control_json.empty()) {
      // Checked like a live control; one that does not fit the template is cleared all the same,
      // so it is not handed over at every start.
      absl::Status valid =
          hublink::tencent::ValidateProperties(*data_template, offline->control_json);
      if (valid.ok()) {
        hublink::examples::RunOnLoop(client, [&] { Apply(offline->control_json, state); });
      } else {
        HLOG(WARNING) << "held control ignored: " << valid.message();
      }
      status = CallOnLoop<absl::Status>(client, "clear_control", timeout,
                                        [&](auto done) { thing->ClearControl(std::move(done)); });
      if (status.ok()) HLOG(INFO) << "clear_control success";
    }
  }
  int controls = 0;
  if (status.ok()) {
    // Read on the loop thread: a control may arrive (and change the state) at any time now.
    std::string initial;
    hublink::examples::RunOnLoop(client, [&] { initial = ToJson(state); });
    status = report(initial);
  }
  if (status.ok()) {
    HLOG(INFO) << "waiting for control on "
               << hublink::tencent::ThingTopic("down", "property", device->info.product_id(),
                                               device->info.device_name());
    absl::Time deadline = absl::Now() + absl::Seconds(wait);
    while (status.ok() && (expect_controls <= 0 || controls < expect_controls)) {
      absl::optional<std::string> properties = controlled.Take(deadline - absl::Now());
      if (!properties.has_value()) break;
      ++controls;
      status = report(*properties);
      if (!status.ok()) break;
      // An event after each change, as the SDK sample posts one when its state changes.
      std::string event =
          absl::StrCat(R"({"status":0,"message":"control )", controls, R"( done"})");
      status = CallOnLoop<absl::Status>(client, "event_post", timeout, [&](auto done) {
        thing->PostEvent("status_report", event, std::move(done));
      });
      if (status.ok()) HLOG(INFO) << "event status_report posted: " << event;
    }
    if (status.ok() && controls < expect_controls) {
      status = absl::DeadlineExceededError(absl::StrCat(
          "expected ", expect_controls, " control messages, got ", controls, " in ", wait, " s"));
    }
  }
  if (!status.ok()) HLOG(ERROR) << status.message();
  hublink::examples::RunOnLoop(client, [&] { thing.reset(); });
  hublink::examples::Disconnect(client);
  std::cout << "data_template_sample: " << (status.ok() ? "done" : "FAILED") << ", " << controls
            << " control" << (controls == 1 ? "" : "s") << " handled, state " << ToJson(state)
            << std::endl;
  return status.ok() ? 0 : 1;
}
