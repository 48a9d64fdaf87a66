#include "profiles/tencent/time_sync.h"

#include "gtest/gtest.h"

namespace hublink {
namespace tencent {
namespace {

TEST(TimeSyncTest, RequestIsTheSdksBytes) {
  EXPECT_EQ(TimeRequestPayload(), "{\"type\": \"get\", \"resource\": [\"time\"]}");
}

TEST(TimeSyncTest, ParsesTheSeedLogsReply) {
  auto reply = ParseTimeReply(
      R"({"type":"get","time":1660189367,"ntptime1":1660189367410,"ntptime2":1660189367410})");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->time_s, 1660189367);
  EXPECT_EQ(reply->ntptime1_ms, 1660189367410);
  EXPECT_EQ(reply->ntptime2_ms, 1660189367410);
}

TEST(TimeSyncTest, OtherTypesAreNotFoundAndGarbageIsInvalid) {
  EXPECT_EQ(ParseTimeReply(R"({"type":"ssh","switch":1})").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ParseTimeReply("not json").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTimeReply(R"({"type":"get"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTimeReply(R"({"type":"get","ntptime1":20,"ntptime2":10})").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TimeSyncTest, NtpCorrectionRemovesSymmetricDelay) {
  // The device clock is 100 s behind; the network takes 40 ms each way; the server holds it 10 ms.
  absl::Time server_t1 = absl::FromUnixMillis(1700000000000);  // server received the request
  absl::Time server_t2 = server_t1 + absl::Milliseconds(10);   // server sent the reply
  absl::Time local_sent = server_t1 - absl::Milliseconds(40) - absl::Seconds(100);
  absl::Time local_received = server_t2 + absl::Milliseconds(40) - absl::Seconds(100);
  TimeReply reply{1700000000, absl::ToUnixMillis(server_t1), absl::ToUnixMillis(server_t2)};
  TimeSync sync = ComputeTimeSync(reply, local_sent, local_received);
  EXPECT_EQ(sync.offset, absl::Seconds(100));
  EXPECT_EQ(sync.server_now, server_t2 + absl::Milliseconds(40));
  EXPECT_EQ(sync.round_trip, absl::Milliseconds(80));
}

}  // namespace
}  // namespace tencent
}  // namespace hublink
