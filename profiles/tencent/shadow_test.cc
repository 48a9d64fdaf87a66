#include "profiles/tencent/shadow.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hublink {
namespace tencent {
namespace {

TEST(ShadowPayloadTest, TopicsAndRequestsAreTheDocumentedOnes) {
  EXPECT_EQ(ShadowOperationTopic("ABC1234567", "AirConditioner"),
            "$shadow/operation/ABC1234567/AirConditioner");
  EXPECT_EQ(ShadowResultTopic("ABC1234567", "AirConditioner"),
            "$shadow/operation/result/ABC1234567/AirConditioner");
  EXPECT_EQ(ShadowGetPayload("ABC1234567-0"), R"({"type":"get","clientToken":"ABC1234567-0"})");
  EXPECT_EQ(ShadowDeletePayload("P-1"), R"({"type":"delete","clientToken":"P-1"})");
  EXPECT_EQ(*ShadowUpdatePayload(R"({"temperature":27})", 3, false, "ABC1234567-2"),
            R"({"type":"update","state":{"reported":{"temperature":27}},"version":3,)"
            R"("clientToken":"ABC1234567-2"})");
  EXPECT_EQ(*ShadowUpdatePayload(R"({"on":true})", 0, true, "P-3"),
            R"({"type":"update","state":{"reported":{"on":true},"desired":null},"version":0,)"
            R"("clientToken":"P-3"})");
  EXPECT_EQ(*ShadowUpdatePayload("", 0, true, "P-4"),
            R"({"type":"update","state":{"desired":null},"version":0,"clientToken":"P-4"})");
}

TEST(ShadowPayloadTest, BadReportedStateIsRefusedBeforeSending) {
  EXPECT_EQ(ShadowUpdatePayload("[1]", 0, false, "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShadowUpdatePayload("{nope", 0, false, "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShadowUpdatePayload("", 0, false, "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShadowUpdatePayload("{}", -1, false, "t").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ShadowPayloadTest, ParsesTheDocumentedGetReply) {
  // The get reply from Tencent's "Device Shadow Data Flow" page.
  auto message = ParseShadowMessage(
      R"({"type": "get","result": 0,"timestamp": 1514967088,"clientToken": "clientToken",)"
      R"("payload": {"state": {"reported": {"temperature": 27},"desired": {"temperature": 25},)"
      R"("delta": {"temperature": 25}},"metadata": {"reported": {"temperature": {"timestamp": )"
      R"(1514967066}}},"version": 1,"timestamp": 1514967076}})");
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(message->type, "get");
  EXPECT_EQ(message->result, 0);
  EXPECT_EQ(message->client_token, "clientToken");
  EXPECT_EQ(message->timestamp, 1514967088);
  EXPECT_EQ(message->version, 1);
  // Keys sorted, whatever order they came in.
  EXPECT_EQ(message->state_json, R"({"delta":{"temperature":25},"desired":{"temperature":25},)"
                                 R"("reported":{"temperature":27}})");
  auto mixed = ParseShadowMessage(
      R"({"type":"get","payload":{"state":{"reported":{"s":"a\"b","f":1.5,"b":true,"n":null,)"
      R"("l":[1,"x"]}},"version":2}})");
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ(mixed->payload_json,
            R"({"state":{"reported":{"b":true,"f":1.5,"l":[1,"x"],"n":null,"s":"a\"b"}},)"
            R"("version":2})");
  EXPECT_EQ(ParseShadowMessage("[]").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseShadowMessage(R"({"result":0})").status().code(),
            absl::StatusCode::kInvalidArgument);
}

class ShadowClientTest : public ::testing::Test {
 protected:
  struct Sent {
    std::string topic;
    std::string payload;
    mqtt::Completion done;
  };

  ShadowClientTest() {
    ShadowClient::Options options;
    options.timeout = absl::Seconds(5);
    shadow_ = std::make_unique<ShadowClient>(
        "PID", "dev",
        [this](const std::string& topic, const std::string& payload, mqtt::Completion done) {
          sent_.push_back({topic, payload, std::move(done)});
        },
        clock_, options);
  }

  mqtt::ManualClock clock_;
  std::vector<Sent> sent_;
  std::unique_ptr<ShadowClient> shadow_;
};

TEST_F(ShadowClientTest, RepliesAreMatchedByClientToken) {
  absl::StatusOr<ShadowDocument> got = absl::UnknownError("pending");
  absl::StatusOr<ShadowDocument> updated = absl::UnknownError("pending");
  shadow_->Get([&](absl::StatusOr<ShadowDocument> d) { got = std::move(d); });
  shadow_->Update(R"({"t":1})", 0, false,
                  [&](absl::StatusOr<ShadowDocument> d) { updated = std::move(d); });
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(sent_[0].topic, "$shadow/operation/PID/dev");
  EXPECT_EQ(sent_[0].payload, R"({"type":"get","clientToken":"PID-0"})");
  EXPECT_EQ(sent_[1].payload,
            R"({"type":"update","state":{"reported":{"t":1}},"version":0,"clientToken":"PID-1"})");
  // Replies out of order, one for somebody else, and garbage: each goes where it belongs.
  shadow_->OnMessage("garbage");
  shadow_->OnMessage(R"({"type":"update","result":0,"clientToken":"OTHER-1","payload":{}})");
  shadow_->OnMessage(
      R"({"type":"update","result":0,"clientToken":"PID-1","payload":{"state":{"reported":{"t":1}},"version":4}})");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnknown);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->version, 4);
  shadow_->OnMessage(
      R"({"type":"get","result":0,"clientToken":"PID-0","payload":{"state":{"reported":{"t":1}},"version":4}})");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state_json, R"({"reported":{"t":1}})");
  EXPECT_EQ(shadow_->pending(), 0u);
  EXPECT_EQ(clock_.Advance(absl::Seconds(10)), 0) << "the timeouts were cancelled";
}

TEST_F(ShadowClientTest, VersionConflictCarriesTheServersVersion) {
  absl::StatusOr<ShadowDocument> updated = absl::UnknownError("pending");
  shadow_->Update(R"({"t":2})", 3, false,
                  [&](absl::StatusOr<ShadowDocument> d) { updated = std::move(d); });
  shadow_->OnMessage(
      R"({"type":"update","result":5005,"clientToken":"PID-0","payload":{"version":7}})");
  EXPECT_EQ(updated.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(updated.status().message(),
            "shadow: update refused by the hub (result 5005, clientToken PID-0): version "
            "conflict: the update was for version 3, the shadow is at version 7; get the "
            "document and update again");
  EXPECT_EQ(ShadowConflictVersion(updated.status()), 7);
  EXPECT_EQ(ShadowConflictVersion(absl::OkStatus()), absl::nullopt);
}

TEST_F(ShadowClientTest, OtherRefusalsNameTheResultCode) {
  absl::StatusOr<ShadowDocument> deleted = absl::UnknownError("pending");
  shadow_->Delete([&](absl::StatusOr<ShadowDocument> d) { deleted = std::move(d); });
  shadow_->OnMessage(R"({"type":"delete","result":404,"clientToken":"PID-0"})");
  EXPECT_EQ(deleted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(deleted.status().message(),
            "shadow: delete refused by the hub (result 404, clientToken PID-0)");
  EXPECT_EQ(ShadowConflictVersion(deleted.status()), absl::nullopt);
}

TEST_F(ShadowClientTest, UnansweredRequestTimesOutOnTheClock) {
  absl::StatusOr<ShadowDocument> got = absl::UnknownError("pending");
  shadow_->Get([&](absl::StatusOr<ShadowDocument> d) { got = std::move(d); });
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnknown);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(got.status().message(),
            "shadow: no reply to get (clientToken PID-0) within 5s on "
            "$shadow/operation/result/PID/dev");
  // A late reply finds nothing to complete.
  shadow_->OnMessage(R"({"type":"get","result":0,"clientToken":"PID-0","payload":{}})");
  EXPECT_EQ(shadow_->pending(), 0u);
}

TEST_F(ShadowClientTest, FailedPublishEndsTheRequestAtOnce) {
  absl::StatusOr<ShadowDocument> got = absl::UnknownError("pending");
  shadow_->Get([&](absl::StatusOr<ShadowDocument> d) { got = std::move(d); });
  sent_[0].done(absl::ResourceExhaustedError("mqtt: offline queue full"));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(got.status().message(), "shadow: request PID-0 not sent: mqtt: offline queue full");
  EXPECT_EQ(clock_.Advance(absl::Seconds(10)), 0);
}

TEST_F(ShadowClientTest, DeltaPushesGoToTheHandler) {
  std::vector<ShadowDocument> deltas;
  shadow_->set_delta_handler([&](const ShadowDocument& d) { deltas.push_back(d); });
  shadow_->OnMessage(
      R"({"type":"delta","timestamp":1514967076,"payload":{"state":{"temperature":25},"version":2}})");
  ASSERT_EQ(deltas.size(), 1u);
  EXPECT_EQ(deltas[0].state_json, R"({"temperature":25})");
  EXPECT_EQ(deltas[0].version, 2);
}

TEST_F(ShadowClientTest, DestroyingCancelsPendingRequests) {
  absl::StatusOr<ShadowDocument> got = absl::UnknownError("pending");
  shadow_->Get([&](absl::StatusOr<ShadowDocument> d) { got = std::move(d); });
  mqtt::Completion late = sent_[0].done;
  shadow_.reset();
  EXPECT_EQ(got.status().code(), absl::StatusCode::kCancelled);
  late(absl::UnavailableError("gone"));  // a completion after destruction is ignored
  EXPECT_EQ(clock_.Advance(absl::Seconds(10)), 0);
}

}  // namespace
}  // namespace tencent
}  // namespace hublink
