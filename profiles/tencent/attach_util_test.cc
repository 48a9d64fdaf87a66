#include "profiles/tencent/attach_util.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hublink {
namespace tencent {
namespace {

struct FakeService {
  std::vector<std::string> received;
  void OnMessage(absl::string_view payload) { received.emplace_back(payload); }
};

TEST(ForwardWhileAliveTest, ForwardsPayloadsUntilTheServiceIsGone) {
  FakeService service;
  auto self = std::make_shared<FakeService*>(&service);
  mqtt::MessageHandler handler = ForwardWhileAlive(std::weak_ptr<FakeService*>(self));
  mqtt::Message message;
  message.topic = "$shadow/operation/result/P/D";
  message.payload = R"({"type":"get"})";
  handler(message);
  ASSERT_EQ(service.received.size(), 1u);
  EXPECT_EQ(service.received[0], R"({"type":"get"})");

  // The service client resets self_ first thing in its destructor: later messages are dropped.
  self.reset();
  handler(message);
  EXPECT_EQ(service.received.size(), 1u);
}

TEST(AttachClockTest, UsesTheConfiguredClockAndOwnsNone) {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok()) << loop.status();
  mqtt::ManualClock manual;
  std::unique_ptr<mqtt::Clock> owned;
  EXPECT_EQ(&AttachClock(**loop, &manual, &owned), &manual);
  EXPECT_EQ(owned, nullptr);
}

TEST(AttachClockTest, MakesAndHandsOverALoopClockWhenNoneIsConfigured) {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok()) << loop.status();
  std::unique_ptr<mqtt::Clock> owned;
  mqtt::Clock& clock = AttachClock(**loop, nullptr, &owned);
  ASSERT_NE(owned, nullptr);
  EXPECT_EQ(&clock, owned.get());
  // The loop's own time, not a virtual one.
  EXPECT_LE(absl::AbsDuration(clock.Now() - (*loop)->Now()), absl::Seconds(5));
}

}  // namespace
}  // namespace tencent
}  // namespace hublink
