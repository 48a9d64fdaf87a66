#include "profiles/tencent/time_sync.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "profiles/tencent/time_sync.pb.h"

namespace hublink {
namespace tencent {

std::string TimeRequestPayload() { return R"({"type": "get", "resource": ["time"]})"; }

absl::StatusOr<TimeReply> ParseTimeReply(absl::string_view payload) {
  profiles::tencent::SysOperationResult result;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(std::string(payload), &result, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("time sync: malformed $sys reply: ", status.message().as_string()));
  }
  if (result.type() != "get") {
    return absl::NotFoundError(
        absl::StrCat("time sync: not a time reply (type \"", result.type(), "\")"));
  }
  if (result.ntptime1() <= 0 || result.ntptime2() <= 0 || result.ntptime2() < result.ntptime1()) {
    return absl::InvalidArgumentError(
        absl::StrCat("time sync: reply without usable ntptime1/ntptime2 (", result.ntptime1(), ", ",
                     result.ntptime2(), ")"));
  }
  return TimeReply{result.time(), result.ntptime1(), result.ntptime2()};
}

TimeSync ComputeTimeSync(const TimeReply& reply, absl::Time sent, absl::Time received) {
  // Work in integer milliseconds, as the formula is defined, then keep sub-ms precision of the
  // local side.
  absl::Duration server_sum = absl::Milliseconds(reply.ntptime1_ms + reply.ntptime2_ms);
  absl::Duration local_span = received - sent;
  absl::Time server_now = absl::UnixEpoch() + (server_sum + local_span) / 2;
  absl::Duration server_processing = absl::Milliseconds(reply.ntptime2_ms - reply.ntptime1_ms);
  return TimeSync{server_now, server_now - received, local_span - server_processing};
}

}  // namespace tencent
}  // namespace hublink
