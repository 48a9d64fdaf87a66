#include "tools/cli/template_command.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "plugins/read_file.h"
#include "profiles/tencent/data_template.h"
#include "protocols/mqtt/client.h"
#include "tools/cli/connection_flags.h"
#include "tools/cli/flags.h"
#include "tools/cli/service_command_util.h"

namespace hublink {
namespace cli {
namespace {

struct TemplateFlags {
  ConnectionFlags connection;
  std::string template_file;
  std::string params;
  std::string event;
  int timeout = 10;
};

constexpr char kUsage[] =
    "hublink template report|event|report-info|get-status|clear-control --device_info=FILE "
    "[--template=FILE] [--params=JSON] [--event=ID]";

int Usage(std::ostream& err, absl::string_view problem, const FlagParser& parser) {
  return PrintUsageError(err, "template", problem, kUsage, parser);
}

int Fail(std::ostream& err, const absl::Status& status) {
  err << "hublink template: " << status.message() << "\n";
  return 1;
}

}  // namespace

int RunTemplate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                const std::function<void(Registry::Builder&)>& register_plugins) {
  TemplateFlags flags;
  FlagParser parser;
  flags.connection.Register(parser);
  parser.AddString("template", &flags.template_file,
                   "the product's data template, as the IoT Explorer console exports it");
  parser.AddString("params", &flags.params,
                   "the values, a JSON object such as '{\"brightness\":40}' (report-info: "
                   "module_hardinfo, module_softinfo, fw_ver, imei, lat, lon, mac, device_label)");
  parser.AddString("event", &flags.event, "event: the event's id in the template");
  parser.AddInt("timeout", &flags.timeout,
                "seconds to wait for the connection and the reply (default 10)");
  std::vector<std::string> positional;
  if (absl::optional<int> done = ParseCommandArgs(
          args, "template", kUsage,
          "  report properties or post an event of a Tencent IoT Explorer data template (both\n"
          "  need --template and --params), report the device's info (report-info --params=\n"
          "  '{\"fw_ver\":..}'), print the platform's status (get-status: reported values and\n"
          "  the control it holds, as JSON), or drop that control (clear-control)\n",
          parser, out, err, &positional)) {
    return *done;
  }
  const std::vector<std::string> operations = {"report", "event", "report-info", "get-status",
                                               "clear-control"};
  if (positional.size() != 1 ||
      std::find(operations.begin(), operations.end(), positional[0]) == operations.end()) {
    return Usage(err, "say one operation: report, event, report-info, get-status or clear-control",
                 parser);
  }
  const std::string operation = positional[0];
  // Only report and event carry template values; the others work without the template file.
  const bool templated = operation == "report" || operation == "event";
  const bool with_params = templated || operation == "report-info";
  if (flags.connection.device_info.empty()) return Usage(err, "--device_info: required", parser);
  if (templated && flags.template_file.empty()) return Usage(err, "--template: required", parser);
  if (with_params && flags.params.empty()) return Usage(err, "--params: required", parser);
  if (!with_params && !flags.params.empty()) {
    return Usage(err, absl::StrCat("--params: ", operation, " takes none"), parser);
  }
  if ((operation == "event") != !flags.event.empty()) {
    return Usage(err, "--event is required for event and only for event", parser);
  }
  if (flags.timeout <= 0) return Usage(err, "--timeout must be positive", parser);

  absl::StatusOr<tencent::DataTemplate> tmpl = tencent::DataTemplate();
  if (!flags.template_file.empty()) {
    absl::StatusOr<std::string> text = ReadFileContents(flags.template_file, "data template");
    if (!text.ok()) return Fail(err, text.status());
    tmpl = tencent::ParseDataTemplate(*text, flags.template_file);
    if (!tmpl.ok()) return Fail(err, tmpl.status());
  }
  // Checked here too, so a bad value fails before connecting.
  absl::Status valid;
  if (operation == "report") valid = tencent::ValidateProperties(*tmpl, flags.params);
  if (operation == "event") valid = tencent::ValidateEvent(*tmpl, flags.event, flags.params);
  if (operation == "report-info") valid = tencent::ValidateReportInfo(flags.params);
  if (!valid.ok()) return Fail(err, valid);

  absl::StatusOr<CommandConnection> connection =
      PrepareConnection(flags.connection, register_plugins);
  if (!connection.ok()) return Fail(err, connection.status());
  const tencent::DeviceInfo& info = connection->info;

  // Declared before the client, whose loop thread may complete it until the client is gone.
  auto result = std::make_shared<std::promise<absl::Status>>();
  auto settled = std::make_shared<std::atomic<bool>>(false);
  auto finish = [result, settled](const absl::Status& status) {
    if (!settled->exchange(true)) result->set_value(status);
  };
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(
      std::shared_ptr<const ResolvedPipeline>(std::move(connection->resolved)), Client::Options());
  if (!client.ok()) return Fail(err, client.status());
  Client& c = **client;
  auto device = std::make_shared<std::unique_ptr<tencent::TemplateClient>>();
  // get-status's answer, written on the loop thread before `finish`, read after the future.
  auto printed = std::make_shared<std::string>();
  c.Connect();
  c.loop().Post([&c, device, finish, printed, operation, flags, info, t = *tmpl] {
    tencent::TemplateClient::Options options;
    options.timeout = absl::Seconds(flags.timeout);
    *device = tencent::TemplateClient::Attach(
        c, info.product_id(), info.device_name(), t, options,
        [device, finish, printed, operation, flags](const absl::Status& subscribed) {
          if (!subscribed.ok()) {
            finish(absl::Status(subscribed.code(), absl::StrCat("subscribing to $thing/down: ",
                                                                subscribed.message())));
            return;
          }
          if (*device == nullptr) return;
          if (operation == "report") {
            (*device)->ReportProperties(flags.params, finish);
          } else if (operation == "event") {
            (*device)->PostEvent(flags.event, flags.params, finish);
          } else if (operation == "report-info") {
            (*device)->ReportInfo(flags.params, finish);
          } else if (operation == "clear-control") {
            (*device)->ClearControl(finish);
          } else {
            (*device)->GetStatus(
                [finish, printed](absl::StatusOr<tencent::TemplateClient::DeviceStatus> status) {
                  if (status.ok()) {
                    *printed = absl::StrCat(R"({"reported":)", status->reported_json,
                                            status->control_json.empty() ? "" : R"(,"control":)",
                                            status->control_json, "}");
                  }
                  finish(status.status());
                });
          }
        });
  });
  std::future<absl::Status> future = result->get_future();
  absl::Status status =
      future.wait_for(std::chrono::seconds(2 * flags.timeout)) == std::future_status::ready
          ? future.get()
          : absl::DeadlineExceededError(absl::StrCat(operation, ": nothing within ",
                                                     2 * flags.timeout,
                                                     " s (connected? see the log above)"));
  ReleaseThenDisconnect(c, [device] { device->reset(); });
  if (!status.ok()) return Fail(err, status);
  if (operation == "report") {
    out << "reported\n";
  } else if (operation == "event") {
    out << "event " << flags.event << " posted\n";
  } else if (operation == "report-info") {
    out << "info reported\n";
  } else if (operation == "clear-control") {
    out << "control cleared\n";
  } else {
    out << *printed << "\n";
  }
  return 0;
}

}  // namespace cli
}  // namespace hublink
