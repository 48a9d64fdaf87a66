#include "tools/cli/template_command.h"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "plugins/read_file.h"
#include "profiles/tencent/data_template.h"
#include "protocols/mqtt/client.h"
#include "tools/cli/connection_flags.h"
#include "tools/cli/flags.h"

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

int Usage(std::ostream& err, absl::string_view problem, const FlagParser& parser) {
  err << "hublink template: " << problem
      << "\nusage: hublink template report|event --device_info=FILE --template=FILE "
         "--params=JSON [--event=ID]\nflags:\n"
      << parser.Usage();
  return 2;
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
                   "the values, a JSON object such as '{\"brightness\":40}'");
  parser.AddString("event", &flags.event, "event: the event's id in the template");
  parser.AddInt("timeout", &flags.timeout,
                "seconds to wait for the connection and the reply (default 10)");
  for (const std::string& arg : args) {
    if (arg == "--") break;
    if (arg == "--help" || arg == "-h") {
      out << "usage: hublink template report|event --device_info=FILE --template=FILE "
             "--params=JSON [--event=ID]\n"
          << "  report properties or post an event of a Tencent IoT Explorer data template\n"
          << "flags:\n"
          << parser.Usage();
      return 0;
    }
  }
  std::vector<std::string> positional;
  absl::Status parsed = parser.Parse(args, &positional);
  if (!parsed.ok()) return Usage(err, parsed.message(), parser);
  if (positional.size() != 1 || (positional[0] != "report" && positional[0] != "event")) {
    return Usage(err, "say one operation: report or event", parser);
  }
  const std::string operation = positional[0];
  if (flags.connection.device_info.empty()) return Usage(err, "--device_info: required", parser);
  if (flags.template_file.empty()) return Usage(err, "--template: required", parser);
  if (flags.params.empty()) return Usage(err, "--params: required", parser);
  if ((operation == "event") != !flags.event.empty()) {
    return Usage(err, "--event is required for event and only for event", parser);
  }
  if (flags.timeout <= 0) return Usage(err, "--timeout must be positive", parser);

  absl::StatusOr<std::string> text = ReadFileContents(flags.template_file, "data template");
  if (!text.ok()) return Fail(err, text.status());
  absl::StatusOr<tencent::DataTemplate> tmpl =
      tencent::ParseDataTemplate(*text, flags.template_file);
  if (!tmpl.ok()) return Fail(err, tmpl.status());
  // Checked here too, so a bad value fails before connecting.
  absl::Status valid = operation == "report"
                           ? tencent::ValidateProperties(*tmpl, flags.params)
                           : tencent::ValidateEvent(*tmpl, flags.event, flags.params);
  if (!valid.ok()) return Fail(err, valid);

  Registry::Builder builder;
  RegisterBuiltinPlugins(builder);
  if (register_plugins) register_plugins(builder);
  absl::StatusOr<Registry> registry = std::move(builder).Build();
  if (!registry.ok()) return Fail(err, registry.status());
  tencent::DeviceInfo info;
  absl::StatusOr<Pipeline> pipeline = BuildPipeline(flags.connection, &info, &*registry);
  if (!pipeline.ok()) return Fail(err, pipeline.status());
  absl::StatusOr<std::unique_ptr<ResolvedPipeline>> resolved =
      ResolvedPipeline::Resolve(*pipeline, *registry, PipelineSource(flags.connection));
  if (!resolved.ok()) return Fail(err, resolved.status());

  // Declared before the client, whose loop thread may complete it until the client is gone.
  auto result = std::make_shared<std::promise<absl::Status>>();
  auto settled = std::make_shared<std::atomic<bool>>(false);
  auto finish = [result, settled](const absl::Status& status) {
    if (!settled->exchange(true)) result->set_value(status);
  };
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(
      std::shared_ptr<const ResolvedPipeline>(*std::move(resolved)), Client::Options());
  if (!client.ok()) return Fail(err, client.status());
  Client& c = **client;
  auto device = std::make_shared<std::unique_ptr<tencent::TemplateClient>>();
  c.Connect();
  c.loop().Post([&c, device, finish, operation, flags, info, t = *tmpl] {
    tencent::TemplateClient::Options options;
    options.timeout = absl::Seconds(flags.timeout);
    *device = tencent::TemplateClient::Attach(
        c, info.product_id(), info.device_name(), t, options,
        [device, finish, operation, flags](const absl::Status& subscribed) {
          if (!subscribed.ok()) {
            finish(absl::Status(subscribed.code(), absl::StrCat("subscribing to $thing/down: ",
                                                                subscribed.message())));
            return;
          }
          if (*device == nullptr) return;
          if (operation == "report") {
            (*device)->ReportProperties(flags.params, finish);
          } else {
            (*device)->PostEvent(flags.event, flags.params, finish);
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
  std::promise<void> released;
  c.loop().Post([device, &released] {
    device->reset();
    released.set_value();
  });
  released.get_future().wait();
  c.Disconnect().wait_for(std::chrono::seconds(5));
  if (!status.ok()) return Fail(err, status);
  if (operation == "report") {
    out << "reported\n";
  } else {
    out << "event " << flags.event << " posted\n";
  }
  return 0;
}

}  // namespace cli
}  // namespace hublink
