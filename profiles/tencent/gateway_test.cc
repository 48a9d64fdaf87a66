#include "profiles/tencent/gateway.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hublink {
namespace tencent {
namespace {

const SubDevice kSensor{"SUBPROD001", "sensor1"};

TEST(GatewayPayloadTest, TopicsAndStatusPayloadsAreTheSdks) {
  EXPECT_EQ(GatewayOperationTopic("GWPROD0001", "gw"), "$gateway/operation/GWPROD0001/gw");
  EXPECT_EQ(GatewayResultTopic("GWPROD0001", "gw"), "$gateway/operation/result/GWPROD0001/gw");
  EXPECT_EQ(GatewayStatusPayload("online", kSensor),
            R"({"type":"online","payload":{"devices":[{"product_id":"SUBPROD001",)"
            R"("device_name":"sensor1"}]}})");
}

TEST(GatewayPayloadTest, BindSignatureIsBase64OfTheHexHmacKeyedWithTheSecretText) {
  // printf 'SUBPROD001sensor1;12345;1700000000' |
  //   openssl dgst -sha1 -hmac 'MDEyMzQ1Njc4OWFiY2RlZg==' -r | cut -d' ' -f1 | tr -d '\n' | base64
  EXPECT_EQ(GatewayBindSignature(kSensor, "MDEyMzQ1Njc4OWFiY2RlZg==", 12345, 1700000000),
            "N2Y4ZWIyMGMxOWY0NDg2NWU5ZWRiNzI2MTRiZjcwZjhiZWM3YzIzMQ==");
  EXPECT_EQ(GatewayBindPayload(kSensor, "MDEyMzQ1Njc4OWFiY2RlZg==", 12345, 1700000000),
            R"({"type":"bind","payload":{"devices":[{"product_id":"SUBPROD001",)"
            R"("device_name":"sensor1","signature":)"
            R"("N2Y4ZWIyMGMxOWY0NDg2NWU5ZWRiNzI2MTRiZjcwZjhiZWM3YzIzMQ==","random":12345,)"
            R"("timestamp":1700000000,"signmethod":"hmacsha1","authtype":"psk"}]}})");
}

class GatewayClientTest : public ::testing::Test {
 protected:
  GatewayClientTest() : clock_(absl::FromUnixSeconds(1700000000)) {
    GatewayClient::Options options;
    options.timeout = absl::Seconds(5);
    options.random = [] { return 12345; };
    gateway_ = std::make_unique<GatewayClient>(
        "GWPROD0001", "gw",
        [this](const std::string& topic, const std::string& payload, mqtt::Completion done) {
          topics_.push_back(topic);
          sent_.push_back(payload);
          done_.push_back(std::move(done));
        },
        clock_, options);
  }
  mqtt::ManualClock clock_;
  std::vector<std::string> topics_, sent_;
  std::vector<mqtt::Completion> done_;
  std::unique_ptr<GatewayClient> gateway_;
};

TEST_F(GatewayClientTest, AnswersAreMatchedByOperationAndSubDevice) {
  absl::Status bound = absl::UnknownError("pending"), online = absl::UnknownError("pending");
  absl::Status other_online = absl::UnknownError("pending");
  gateway_->Bind(kSensor, "MDEyMzQ1Njc4OWFiY2RlZg==", [&](const absl::Status& s) { bound = s; });
  gateway_->Online(kSensor, [&](const absl::Status& s) { online = s; });
  gateway_->Online({"SUBPROD001", "sensor2"}, [&](const absl::Status& s) { other_online = s; });
  ASSERT_EQ(sent_.size(), 3u);
  EXPECT_EQ(topics_[0], "$gateway/operation/GWPROD0001/gw");
  EXPECT_EQ(sent_[0], GatewayBindPayload(kSensor, "MDEyMzQ1Njc4OWFiY2RlZg==", 12345, 1700000000));
  gateway_->OnMessage("not json");
  gateway_->OnMessage(
      R"({"type":"online","payload":{"devices":[{"product_id":"SUBPROD001","device_name":"sensor1","result":0}]}})");
  EXPECT_TRUE(online.ok()) << online;
  EXPECT_EQ(bound.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(other_online.code(), absl::StatusCode::kUnknown);
  gateway_->OnMessage(
      R"({"type":"bind","payload":{"devices":[{"product_id":"SUBPROD001","device_name":"sensor1","result":809}]}})");
  EXPECT_EQ(bound.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(bound.message(), "gateway: bind SUBPROD001/sensor1 refused by the hub (result 809)");
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(other_online.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(other_online.message(),
            "gateway: no answer to online SUBPROD001/sensor2 within 5s on "
            "$gateway/operation/result/GWPROD0001/gw");
  EXPECT_EQ(gateway_->pending(), 0u);
}

TEST_F(GatewayClientTest, DescribeListsTheBoundSubDevices) {
  absl::StatusOr<std::vector<SubDevice>> list = absl::UnknownError("pending");
  gateway_->DescribeSubDevices([&](absl::StatusOr<std::vector<SubDevice>> l) { list = l; });
  EXPECT_EQ(sent_[0], R"({"type":"describe_sub_devices"})");
  gateway_->OnMessage(
      R"({"type":"describe_sub_devices","payload":{"devices":[{"product_id":"SUBPROD001","device_name":"sensor1"},{"product_id":"SUBPROD001","device_name":"sensor2"}]}})");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(*list, (std::vector<SubDevice>{{"SUBPROD001", "sensor1"}, {"SUBPROD001", "sensor2"}}));
}

TEST_F(GatewayClientTest, FailedPublishAndDestructionEndRequests) {
  absl::Status offline = absl::UnknownError("pending"), unbind = absl::UnknownError("pending");
  gateway_->Offline(kSensor, [&](const absl::Status& s) { offline = s; });
  gateway_->Unbind(kSensor, [&](const absl::Status& s) { unbind = s; });
  done_[0](absl::UnavailableError("mqtt: not connected"));
  EXPECT_EQ(offline.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(unbind.code(), absl::StatusCode::kUnknown);
  gateway_.reset();
  EXPECT_EQ(unbind.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(clock_.Advance(absl::Seconds(10)), 0);
}

}  // namespace
}  // namespace tencent
}  // namespace hublink
