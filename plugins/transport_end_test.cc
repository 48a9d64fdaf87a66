#include "plugins/transport_end.h"

#include <functional>
#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace hublink {
namespace {

std::unique_ptr<EventLoop> NewLoop() {
  auto loop = EventLoop::Create();
  EXPECT_TRUE(loop.ok()) << loop.status();
  return std::move(loop).value();
}

// Runs the loop until a plain loop timer set `delay` from now has run: every TransportEnd timer due
// earlier and every task posted before it has had its chance by then.
void RunPast(EventLoop& loop, absl::Duration delay) {
  bool reached = false;
  loop.RunAfter(delay, [&] { reached = true; });
  for (int turns = 0; !reached && turns < 1000; ++turns) loop.RunOnce(absl::Seconds(1));
  ASSERT_TRUE(reached);
}

class RecordingListener : public TransportListener {
 public:
  void OnOpen() override {}
  void OnData(absl::string_view) override {}
  void OnClosed(const absl::Status& status) override {
    closed.push_back(status);
    if (on_closed) on_closed();
  }
  std::vector<absl::Status> closed;
  std::function<void()> on_closed;
};

TEST(TransportEndTest, DeliversExactlyOnceEvenWhenTheListenerReenters) {
  auto loop = NewLoop();
  TransportEnd end(*loop);
  RecordingListener listener;
  end.set_listener(&listener);
  // The listener reacts to OnClosed by ending the connection again, as a Client's Close() or a
  // failing Write() would.
  listener.on_closed = [&] {
    EXPECT_TRUE(end.delivered());
    end.Finish(absl::UnavailableError("second"));
    end.Deliver(absl::InternalError("third"));
  };
  end.Finish(absl::DeadlineExceededError("first"));
  end.Deliver(absl::OkStatus());
  end.DeliverLater(absl::OkStatus());
  RunPast(*loop, absl::Milliseconds(1));
  ASSERT_EQ(listener.closed.size(), 1u);
  EXPECT_EQ(listener.closed[0], absl::DeadlineExceededError("first"));
}

TEST(TransportEndTest, WithoutAListenerNothingIsDeliveredUntilThereIsOne) {
  auto loop = NewLoop();
  TransportEnd end(*loop);
  end.Deliver(absl::OkStatus());  // Close() before Open()
  EXPECT_FALSE(end.delivered());
  RecordingListener listener;
  end.set_listener(&listener);  // Open() after Close() reports the end, from the loop
  end.DeliverLater(absl::FailedPreconditionError("Open() after Close()"));
  EXPECT_TRUE(listener.closed.empty()) << "DeliverLater() called back from inside the caller";
  RunPast(*loop, absl::Milliseconds(1));
  ASSERT_EQ(listener.closed.size(), 1u);
  EXPECT_EQ(listener.closed[0].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(end.delivered());
}

TEST(TransportEndTest, FinishCancelsEveryPendingTimerAndClearsItsSlot) {
  auto loop = NewLoop();
  TransportEnd end(*loop);
  RecordingListener listener;
  end.set_listener(&listener);
  EventLoop::TimerId handshake = 0, close = 0;
  bool fired = false;
  end.RunAfter(handshake, absl::Milliseconds(1), [&] { fired = true; });
  end.RunAfter(close, absl::Milliseconds(2), [&] { fired = true; });
  ASSERT_NE(handshake, 0u);
  ASSERT_NE(close, 0u);
  const EventLoop::TimerId handshake_id = handshake, close_id = close;
  end.Finish(absl::OkStatus());
  EXPECT_EQ(handshake, 0u);
  EXPECT_EQ(close, 0u);
  EXPECT_FALSE(loop->Cancel(handshake_id)) << "still pending in the loop";
  EXPECT_FALSE(loop->Cancel(close_id)) << "still pending in the loop";
  RunPast(*loop, absl::Milliseconds(5));
  EXPECT_FALSE(fired);
  EXPECT_EQ(listener.closed.size(), 1u);
}

TEST(TransportEndTest, ATimerClearsItsSlotBeforeItRunsAndMayRearmIt) {
  auto loop = NewLoop();
  TransportEnd end(*loop);
  EventLoop::TimerId ping = 0;
  int runs = 0;
  std::function<void()> tick = [&] {
    EXPECT_EQ(ping, 0u) << "the slot still names the timer that is running";
    if (++runs < 3) end.RunAfter(ping, absl::Milliseconds(1), tick);
  };
  end.RunAfter(ping, absl::Milliseconds(1), tick);
  for (int turns = 0; runs < 3 && turns < 1000; ++turns) loop->RunOnce(absl::Seconds(1));
  EXPECT_EQ(runs, 3);
  EXPECT_EQ(ping, 0u);
}

TEST(TransportEndTest, ArmingAnArmedSlotReplacesItsTimer) {
  auto loop = NewLoop();
  TransportEnd end(*loop);
  EventLoop::TimerId slot = 0;
  int first = 0, second = 0;
  end.RunAfter(slot, absl::Milliseconds(1), [&] { ++first; });
  const EventLoop::TimerId replaced = slot;
  end.RunAfter(slot, absl::Milliseconds(1), [&] { ++second; });
  EXPECT_NE(slot, replaced);
  EXPECT_FALSE(loop->Cancel(replaced));
  RunPast(*loop, absl::Milliseconds(5));
  EXPECT_EQ(first, 0);
  EXPECT_EQ(second, 1);
  // Cancel() on an idle slot is harmless.
  end.Cancel(slot);
  EXPECT_EQ(slot, 0u);
}

TEST(TransportEndTest, NothingRunsAfterTheTransportIsDestroyed) {
  auto loop = NewLoop();
  RecordingListener listener;
  bool ran = false;
  EventLoop::TimerId timer = 0, cancelled_id = 0;
  {
    TransportEnd end(*loop);
    end.set_listener(&listener);
    end.RunAfter(timer, absl::Milliseconds(1), [&] { ran = true; });
    cancelled_id = timer;
    end.Post([&] { ran = true; });
    end.DeliverLater(absl::OkStatus());
    loop->Post(end.Wrap([&] { ran = true; }));
  }  // the transport holding `end` is destroyed with all of that pending
  EXPECT_FALSE(loop->Cancel(cancelled_id)) << "the destructor left the timer in the loop";
  RunPast(*loop, absl::Milliseconds(5));
  EXPECT_FALSE(ran);
  EXPECT_TRUE(listener.closed.empty());
}

TEST(TransportEndTest, AListenerMayDestroyTheTransportFromOnClosed) {
  auto loop = NewLoop();
  struct FakeTransport {
    explicit FakeTransport(EventLoop& loop) : end(loop) {}
    EventLoop::TimerId timer = 0;
    TransportEnd end;
  };
  auto transport = std::make_unique<FakeTransport>(*loop);
  RecordingListener listener;
  listener.on_closed = [&] { transport.reset(); };
  transport->end.set_listener(&listener);
  bool fired = false;
  transport->end.RunAfter(transport->timer, absl::Milliseconds(1), [&] { fired = true; });
  transport->end.Post([&] { fired = true; });
  transport->end.Finish(absl::UnavailableError("reset"));  // returns into a destroyed transport
  EXPECT_EQ(transport, nullptr);
  ASSERT_EQ(listener.closed.size(), 1u);
  RunPast(*loop, absl::Milliseconds(5));
  EXPECT_FALSE(fired);
}

}  // namespace
}  // namespace hublink
