#include "tools/cli/service_command_util.h"

#include <chrono>
#include <future>
#include <utility>

#include "plugins/builtin.h"

namespace hublink {
namespace cli {

bool WantsHelp(const std::vector<std::string>& args) {
  for (const std::string& arg : args) {
    if (arg == "--") return false;
    if (arg == "--help" || arg == "-h") return true;
  }
  return false;
}

int PrintUsageError(std::ostream& err, absl::string_view command, absl::string_view problem,
                    absl::string_view usage, const FlagParser& parser) {
  err << "hublink " << command << ": " << problem << "\n";
  if (!usage.empty()) err << "usage: " << usage << "\n";
  err << "flags:\n" << parser.Usage();
  return 2;
}

absl::optional<int> ParseCommandArgs(const std::vector<std::string>& args,
                                     absl::string_view command, absl::string_view usage,
                                     absl::string_view about, FlagParser& parser, std::ostream& out,
                                     std::ostream& err, std::vector<std::string>* positional) {
  if (WantsHelp(args)) {
    out << "usage: " << usage << "\n" << about << "flags:\n" << parser.Usage();
    return 0;
  }
  absl::Status parsed = parser.Parse(args, positional);
  if (!parsed.ok()) return PrintUsageError(err, command, parsed.message(), usage, parser);
  return absl::nullopt;
}

absl::StatusOr<Registry> BuildCommandRegistry(
    const std::function<void(Registry::Builder&)>& register_plugins) {
  Registry::Builder builder;
  RegisterBuiltinPlugins(builder);
  if (register_plugins) register_plugins(builder);
  return std::move(builder).Build();
}

absl::StatusOr<CommandConnection> PrepareConnection(
    const ConnectionFlags& flags, const std::function<void(Registry::Builder&)>& register_plugins) {
  absl::StatusOr<Registry> registry = BuildCommandRegistry(register_plugins);
  if (!registry.ok()) return registry.status();
  CommandConnection connection;
  connection.registry = std::make_unique<Registry>(*std::move(registry));
  absl::StatusOr<Pipeline> pipeline = BuildPipeline(flags, &connection.info, &*connection.registry);
  if (!pipeline.ok()) return pipeline.status();
  absl::StatusOr<std::unique_ptr<ResolvedPipeline>> resolved =
      ResolvedPipeline::Resolve(*pipeline, *connection.registry, PipelineSource(flags));
  if (!resolved.ok()) return resolved.status();
  connection.resolved = *std::move(resolved);
  return connection;
}

void ReleaseThenDisconnect(Client& client, std::function<void()> release) {
  std::promise<void> released;
  client.loop().Post([&release, &released] {
    release();
    released.set_value();
  });
  released.get_future().wait();
  client.Disconnect().wait_for(std::chrono::seconds(5));
}

}  // namespace cli
}  // namespace hublink
