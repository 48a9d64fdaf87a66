#include "profiles/tencent/rrpc.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hublink {
namespace tencent {
namespace {

TEST(RrpcTest, TopicsAreTheSdks) {
  EXPECT_EQ(RrpcRequestFilter("ABC1234567", "lamp"), "$rrpc/rxd/ABC1234567/lamp/+");
  EXPECT_EQ(RrpcReplyTopic("ABC1234567", "lamp", "41"), "$rrpc/txd/ABC1234567/lamp/41");
  EXPECT_EQ(BroadcastTopic("ABC1234567", "lamp"), "$broadcast/rxd/ABC1234567/lamp");
}

TEST(RrpcTest, ProcessIdIsTheLastLevelOfOurOwnRequestTopic) {
  EXPECT_EQ(*RrpcProcessId("$rrpc/rxd/P/d/12345", "P", "d"), "12345");
  EXPECT_EQ(RrpcProcessId("$rrpc/rxd/P/other/1", "P", "d").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RrpcProcessId("$rrpc/rxd/P/d/", "P", "d").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RrpcProcessId("$rrpc/rxd/P/d/1/2", "P", "d").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RrpcProcessId("$rrpc/txd/P/d/1", "P", "d").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RrpcTest, RequestsReachTheHandlerAndAreAnsweredOnceOnTheirProcessId) {
  struct Sent {
    std::string topic, payload;
  };
  std::vector<Sent> sent;
  RrpcResponder::PublishFn publish = [&](const std::string& topic, const std::string& payload,
                                         mqtt::Completion done) {
    sent.push_back({topic, payload});
    if (done) done(absl::OkStatus());
  };
  std::vector<RrpcRequest> seen;
  std::vector<RrpcResponder> kept;
  RrpcHandler handler = [&](const RrpcRequest& request, RrpcResponder respond) {
    seen.push_back(request);
    if (request.process_id == "later") {
      kept.push_back(respond);  // answered after the handler returned
      return;
    }
    respond.Reply("pong:" + request.payload);
  };
  EXPECT_TRUE(DispatchRrpc("$rrpc/rxd/P/d/7", "ping", "P", "d", publish, handler));
  EXPECT_FALSE(DispatchRrpc("$rrpc/rxd/P/x/7", "ping", "P", "d", publish, handler));
  EXPECT_TRUE(DispatchRrpc("$rrpc/rxd/P/d/later", "slow", "P", "d", publish, handler));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].process_id, "7");
  EXPECT_EQ(seen[0].payload, "ping");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].topic, "$rrpc/txd/P/d/7");
  EXPECT_EQ(sent[0].payload, "pong:ping");

  RrpcResponder copy = kept[0];
  kept[0].Reply("done");
  absl::Status second;
  copy.Reply("again", [&](const absl::Status& s) { second = s; });
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].topic, "$rrpc/txd/P/d/later");
  EXPECT_EQ(sent[1].payload, "done");
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace tencent
}  // namespace hublink
