#include "tools/cli/flags.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace hublink {
namespace cli {

void FlagParser::AddString(std::string name, std::string* value, std::string help) {
  flags_.push_back({std::move(name), Kind::kString, value, std::move(help)});
}
void FlagParser::AddInt(std::string name, int* value, std::string help) {
  flags_.push_back({std::move(name), Kind::kInt, value, std::move(help)});
}
void FlagParser::AddBool(std::string name, bool* value, std::string help) {
  flags_.push_back({std::move(name), Kind::kBool, value, std::move(help)});
}
void FlagParser::AddList(std::string name, std::vector<std::string>* values, std::string help) {
  flags_.push_back({std::move(name), Kind::kList, values, std::move(help)});
}

const FlagParser::Flag* FlagParser::Find(absl::string_view name) const {
  for (const Flag& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

absl::Status FlagParser::Parse(const std::vector<std::string>& args,
                               std::vector<std::string>* positional) {
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--") {
      positional->insert(positional->end(), args.begin() + i + 1, args.end());
      break;
    }
    if (!absl::StartsWith(arg, "--")) {
      positional->emplace_back(arg);
      continue;
    }
    arg.remove_prefix(2);
    size_t equals = arg.find('=');
    absl::string_view name = arg.substr(0, equals);
    bool has_value = equals != absl::string_view::npos;
    std::string value = has_value ? std::string(arg.substr(equals + 1)) : "";
    const Flag* flag = Find(name);
    bool negated = false;
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      flag = Find(name.substr(2));
      negated = flag != nullptr && flag->kind == Kind::kBool;
      if (!negated) flag = nullptr;
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (flag->kind == Kind::kBool) {
      bool parsed = !negated;
      if (has_value && !absl::SimpleAtob(value, &parsed)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, ": \"", value, "\" is not true or false"));
      }
      *static_cast<bool*>(flag->value) = parsed;
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = args[++i];
    }
    switch (flag->kind) {
      case Kind::kString:
        *static_cast<std::string*>(flag->value) = value;
        break;
      case Kind::kInt:
        if (!absl::SimpleAtoi(value, static_cast<int*>(flag->value))) {
          return absl::InvalidArgumentError(
              absl::StrCat("--", name, ": \"", value, "\" is not a whole number"));
        }
        break;
      case Kind::kList:
        static_cast<std::vector<std::string>*>(flag->value)->push_back(value);
        break;
      case Kind::kBool:
        break;
    }
  }
  return absl::OkStatus();
}

std::string FlagParser::Usage() const {
  std::string usage;
  for (const Flag& flag : flags_) {
    std::string spelled = absl::StrCat("--", flag.name, flag.kind == Kind::kBool ? "" : "=VALUE");
    absl::StrAppend(&usage, "  ", spelled,
                    std::string(spelled.size() < 24 ? 24 - spelled.size() : 1, ' '), flag.help,
                    "\n");
  }
  return usage;
}

}  // namespace cli
}  // namespace hublink
