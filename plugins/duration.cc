#include "plugins/duration.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace hublink {
namespace {

// google/protobuf/duration.proto: "approximately +-10,000 years".
constexpr int64_t kMaxSeconds = 315576000000;
constexpr int32_t kNanosPerSecond = 1000000000;

}  // namespace

absl::Status ValidateNonNegativeDuration(const google::protobuf::Duration& d,
                                         absl::string_view field) {
  if (d.seconds() < 0 || d.nanos() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be negative"));
  }
  if (d.nanos() >= kNanosPerSecond) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": nanos is ", d.nanos(),
                                                   "; it must be below 1000000000 (put whole "
                                                   "seconds in seconds)"));
  }
  if (d.seconds() > kMaxSeconds) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", d.seconds(), " s is above google.protobuf.Duration's limit of ",
                     kMaxSeconds, " s (10,000 years)"));
  }
  return absl::OkStatus();
}

}  // namespace hublink
