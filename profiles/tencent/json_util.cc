#include "profiles/tencent/json_util.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"

namespace hublink {
namespace tencent {

using google::protobuf::Struct;
using google::protobuf::Value;

// Escapes quotes, backslashes and control characters; everything else passes as UTF-8.
std::string JsonQuote(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

absl::StatusOr<Value> ParseJsonValue(absl::string_view json) {
  Value value;
  auto status = google::protobuf::util::JsonStringToMessage(std::string(json), &value);
  if (!status.ok()) return absl::InvalidArgumentError(status.message().as_string());
  return value;
}

namespace {

void AppendJson(const Value& value, std::string* out) {
  switch (value.kind_case()) {
    case Value::kStructValue: {
      std::vector<const std::string*> keys;
      for (const auto& [key, unused] : value.struct_value().fields()) keys.push_back(&key);
      std::sort(keys.begin(), keys.end(),
                [](const std::string* a, const std::string* b) { return *a < *b; });
      out->push_back('{');
      for (size_t i = 0; i < keys.size(); ++i) {
        if (i > 0) out->push_back(',');
        absl::StrAppend(out, JsonQuote(*keys[i]), ":");
        AppendJson(value.struct_value().fields().at(*keys[i]), out);
      }
      out->push_back('}');
      return;
    }
    case Value::kListValue: {
      out->push_back('[');
      for (int i = 0; i < value.list_value().values_size(); ++i) {
        if (i > 0) out->push_back(',');
        AppendJson(value.list_value().values(i), out);
      }
      out->push_back(']');
      return;
    }
    case Value::kStringValue:
      absl::StrAppend(out, JsonQuote(value.string_value()));
      return;
    case Value::kNumberValue: {
      double d = value.number_value();
      // Integers (versions, timestamps) print as integers; others with round-trip precision.
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9007199254740992.0) {
        absl::StrAppend(out, static_cast<int64_t>(d));
      } else {
        absl::StrAppend(out, absl::StrFormat("%.17g", d));
      }
      return;
    }
    case Value::kBoolValue:
      absl::StrAppend(out, value.bool_value() ? "true" : "false");
      return;
    default:
      absl::StrAppend(out, "null");
      return;
  }
}

}  // namespace

std::string ToJson(const Value& value) {
  std::string out;
  AppendJson(value, &out);
  return out;
}

const Value* JsonField(const Struct& s, const char* name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

std::string JsonString(const Struct& s, const char* name) {
  const Value* v = JsonField(s, name);
  return v != nullptr && v->kind_case() == Value::kStringValue ? v->string_value() : "";
}

}  // namespace tencent
}  // namespace hublink
