// Tencent IoT Hub's time service over $sys: request, reply, and the NTP-style correction.
//
// The device publishes TimeRequestPayload() to $sys/operation/<pid>/<dn> (QoS0) and the hub answers
// on $sys/operation/result/<pid>/<dn> with its receive and send times. With the local send and
// receive times, server time at receipt = (ntptime1 + ntptime2 + t_recv - t_send) / 2, which
// removes the symmetric part of the network delay. Setting the system clock needs root; hublink
// never does it: the offset is handed to the signer (through the client) so expiries use server
// time.
#ifndef HUBLINK_PROFILES_TENCENT_TIME_SYNC_H_
#define HUBLINK_PROFILES_TENCENT_TIME_SYNC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace hublink {
namespace tencent {

// {"type": "get", "resource": ["time"]}, byte for byte what the SDK sends.
std::string TimeRequestPayload();

struct TimeReply {
  int64_t time_s = 0;
  int64_t ntptime1_ms = 0;
  int64_t ntptime2_ms = 0;
};

// kNotFound for a well-formed message of another type (callers ignore it); kInvalidArgument for a
// malformed one, or a "get" reply without the times.
absl::StatusOr<TimeReply> ParseTimeReply(absl::string_view payload);

struct TimeSync {
  absl::Time server_now;  // the server's clock at `received`
  absl::Duration offset;  // server - local; add it to the local clock to get server time
  absl::Duration round_trip;
};
TimeSync ComputeTimeSync(const TimeReply& reply, absl::Time sent, absl::Time received);

}  // namespace tencent
}  // namespace hublink

#endif  // HUBLINK_PROFILES_TENCENT_TIME_SYNC_H_
