// Small JSON helpers the Tencent services share, on protobuf's JSON parser (google.protobuf.Value),
// which the profile already uses for device_info.json.
#ifndef HUBLINK_PROFILES_TENCENT_JSON_UTIL_H_
#define HUBLINK_PROFILES_TENCENT_JSON_UTIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"

namespace hublink {
namespace tencent {

// A JSON string literal for `s`.
std::string JsonQuote(absl::string_view s);
// kInvalidArgument with the parser's message.
absl::StatusOr<google::protobuf::Value> ParseJsonValue(absl::string_view json);
// Compact JSON with object keys sorted (output does not depend on a protobuf map's order);
// integral numbers print as integers.
std::string ToJson(const google::protobuf::Value& value);
// The field `name` of `s`, or null.
const google::protobuf::Value* JsonField(const google::protobuf::Struct& s, const char* name);
// The string field `name`, or "" when absent or not a string.
std::string JsonString(const google::protobuf::Struct& s, const char* name);

}  // namespace tencent
}  // namespace hublink

#endif  // HUBLINK_PROFILES_TENCENT_JSON_UTIL_H_
