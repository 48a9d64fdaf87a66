#include "plugins/duration.h"

#include <cstdint>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace hublink {
namespace {

google::protobuf::Duration Make(int64_t seconds, int32_t nanos) {
  google::protobuf::Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}

TEST(ToDurationTest, AddsSecondsAndNanosExactly) {
  EXPECT_EQ(ToDuration(google::protobuf::Duration()), absl::ZeroDuration());
  EXPECT_EQ(ToDuration(Make(5, 0)), absl::Seconds(5));
  EXPECT_EQ(ToDuration(Make(0, 1)), absl::Nanoseconds(1));
  EXPECT_EQ(ToDuration(Make(1, 500000000)), absl::Milliseconds(1500));
  EXPECT_EQ(ToDuration(Make(0, 999999999)), absl::Seconds(1) - absl::Nanoseconds(1));
  EXPECT_EQ(ToDuration(Make(-2, -250000000)), -absl::Milliseconds(2250));
  // The largest valid Duration is still finite and exact.
  EXPECT_EQ(ToDuration(Make(315576000000, 999999999)),
            absl::Seconds(315576000000) + absl::Nanoseconds(999999999));
}

TEST(ValidateNonNegativeDurationTest, AcceptsZeroUnsetAndPositive) {
  EXPECT_TRUE(ValidateNonNegativeDuration(google::protobuf::Duration(), "t").ok());
  EXPECT_TRUE(ValidateNonNegativeDuration(Make(0, 1), "t").ok());
  EXPECT_TRUE(ValidateNonNegativeDuration(Make(30, 999999999), "t").ok());
  EXPECT_TRUE(ValidateNonNegativeDuration(Make(315576000000, 0), "t").ok());
}

TEST(ValidateNonNegativeDurationTest, RefusesNegativeSecondsOrNanos) {
  for (const google::protobuf::Duration& d :
       {Make(-1, 0), Make(0, -1), Make(-1, -5), Make(1, -5)}) {
    absl::Status status = ValidateNonNegativeDuration(d, "tcp: close_timeout");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << d.DebugString();
    EXPECT_EQ(status.message(), "tcp: close_timeout: must not be negative") << d.DebugString();
  }
}

TEST(ValidateNonNegativeDurationTest, RefusesNanosOfAWholeSecondOrMore) {
  absl::Status status =
      ValidateNonNegativeDuration(Make(1, 1000000000), "websocket: ping_interval");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "websocket: ping_interval: nanos is 1000000000; it must be below 1000000000 (put whole "
            "seconds in seconds)");
}

TEST(ValidateNonNegativeDurationTest, RefusesMoreThanProtobufsTenThousandYears) {
  absl::Status status =
      ValidateNonNegativeDuration(Make(315576000001, 0), "policy.connect_timeout");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "policy.connect_timeout: 315576000001 s is above google.protobuf.Duration's limit of "
            "315576000000 s (10,000 years)");
  EXPECT_FALSE(ValidateNonNegativeDuration(Make(INT64_MAX, 999999999), "t").ok());
}

}  // namespace
}  // namespace hublink
