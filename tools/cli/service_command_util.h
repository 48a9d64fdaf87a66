// What the Tencent service commands (hublink shadow, ota, template, register, fleet) share: the
// --help check, the usage error, the registry and resolved pipeline they connect with, and the
// order a service client and its MQTT client go away in. One place, so the commands cannot drift
// apart in how they parse, fail and shut down.
#ifndef HUBLINK_TOOLS_CLI_SERVICE_COMMAND_UTIL_H_
#define HUBLINK_TOOLS_CLI_SERVICE_COMMAND_UTIL_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "profiles/tencent/tencent_profile.h"
#include "protocols/mqtt/client.h"
#include "tools/cli/connection_flags.h"
#include "tools/cli/flags.h"

namespace hublink {
namespace cli {

// True when `args` ask for help: --help or -h before a "--" (after it, everything is an operand).
bool WantsHelp(const std::vector<std::string>& args);

// Writes "hublink <command>: <problem>", then "usage: <usage>" when `usage` is not empty, then the
// flags, to `err`; returns 2, the exit code of a command line that is wrong.
int PrintUsageError(std::ostream& err, absl::string_view command, absl::string_view problem,
                    absl::string_view usage, const FlagParser& parser);

// The --help and parse step of a command whose usage line is `usage`: parses `args` into
// `positional` and returns nullopt to go on, or the exit code when the command is done: 0 after
// writing "usage: <usage>", `about` (its lines end in "\n") and the flags to `out` for --help/-h,
// 2 after PrintUsageError on `err` for flags that do not parse.
absl::optional<int> ParseCommandArgs(const std::vector<std::string>& args,
                                     absl::string_view command, absl::string_view usage,
                                     absl::string_view about, FlagParser& parser, std::ostream& out,
                                     std::ostream& err, std::vector<std::string>* positional);

// The registry a command connects with: the built-in plugins and those `register_plugins` adds
// (the --plugin ones; it may be empty).
absl::StatusOr<Registry> BuildCommandRegistry(
    const std::function<void(Registry::Builder&)>& register_plugins);

// What a service command connects with: the registry (BuildCommandRegistry; on the heap, since the
// pipeline and the command's other users keep pointers to it), the --device_info it read, and the
// pipeline `flags` describe, resolved against that registry.
struct CommandConnection {
  std::unique_ptr<Registry> registry;
  tencent::DeviceInfo info;
  std::unique_ptr<ResolvedPipeline> resolved;
};
// Errors are BuildCommandRegistry's, or name the flag or file at fault.
absl::StatusOr<CommandConnection> PrepareConnection(
    const ConnectionFlags& flags, const std::function<void(Registry::Builder&)>& register_plugins);

// Runs `release` on the client's loop thread and waits for it (service clients are loop-thread
// only and must go before the client they are attached to), then disconnects, waiting up to 5 s
// for the DISCONNECT to go out.
void ReleaseThenDisconnect(Client& client, std::function<void()> release);

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_SERVICE_COMMAND_UTIL_H_
