// google.protobuf.Duration fields in plugin configs (timeouts, intervals): the conversion to
// absl::Duration and the range check every plugin applies before using one. Plugins use these
// rather than their own copies, so that every layer rejects a bad duration with the same words.
//
//   HUBLINK_RETURN_IF_ERROR(ValidateNonNegativeDuration(config.close_timeout(), "tcp: close_timeout"));
//   absl::Duration close_timeout =
//       config.has_close_timeout() ? ToDuration(config.close_timeout()) : kDefaultCloseTimeout;
#ifndef HUBLINK_PLUGINS_DURATION_H_
#define HUBLINK_PLUGINS_DURATION_H_

#include <google/protobuf/duration.pb.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace hublink {

// Exact for every Duration that ValidateNonNegativeDuration accepts (and for negative ones in
// protobuf's range). Seconds and nanos are added as they are, so a Duration whose fields disagree
// in sign is converted, not rejected: validate first. Inline so that a shared-object plugin needs
// no symbol from the host for it.
inline absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// OK for a valid, non-negative google.protobuf.Duration (an unset field is zero, so it passes).
// Otherwise kInvalidArgument, the message starting with `field` (give the stage too, e.g.
// "tcp: close_timeout"):
//   "<field>: must not be negative"                  seconds < 0 or nanos < 0
//   "<field>: nanos is N; it must be below 1000000000 (put whole seconds in seconds)"
//   "<field>: N s is above google.protobuf.Duration's limit of 315576000000 s (10,000 years)"
// Text-format configs do not check a Duration's range; JSON ones do.
absl::Status ValidateNonNegativeDuration(const google::protobuf::Duration& d,
                                         absl::string_view field);

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_DURATION_H_
