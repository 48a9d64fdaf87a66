// A small command-line flag parser for hublink's tools: `--name=value`, `--name value`, bare
// `--flag` for booleans, repeatable list flags, and errors that say which flag is wrong.
// (absl/flags has no repeatable flags and no subcommands, both of which `hublink
// pub|sub|sign|plugins` needs.)
#ifndef HUBLINK_TOOLS_CLI_FLAGS_H_
#define HUBLINK_TOOLS_CLI_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace hublink {
namespace cli {

class FlagParser {
 public:
  void AddString(std::string name, std::string* value, std::string help);
  void AddInt(std::string name, int* value, std::string help);
  void AddBool(std::string name, bool* value, std::string help);
  // Every occurrence appends.
  void AddList(std::string name, std::vector<std::string>* values, std::string help);

  // Parses `args` (no program name). Anything not starting with "--" goes to `positional`; "--"
  // ends flags. kInvalidArgument names the unknown or malformed flag.
  absl::Status Parse(const std::vector<std::string>& args, std::vector<std::string>* positional);
  // One line per flag: "  --name=VALUE  help".
  std::string Usage() const;

 private:
  enum class Kind { kString, kInt, kBool, kList };
  struct Flag {
    std::string name;
    Kind kind;
    void* value;
    std::string help;
  };
  const Flag* Find(absl::string_view name) const;
  std::vector<Flag> flags_;
};

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_FLAGS_H_
