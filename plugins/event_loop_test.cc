#include "plugins/event_loop.h"

#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace hublink {
namespace {

std::unique_ptr<EventLoop> NewLoop() {
  auto loop = EventLoop::Create();
  EXPECT_TRUE(loop.ok()) << loop.status();
  return std::move(loop).value();
}

TEST(EventLoopTest, TimersRunInDeadlineOrder) {
  auto loop = NewLoop();
  std::vector<int> order;
  absl::Time now = loop->Now();
  loop->RunAt(now + absl::Milliseconds(30), [&] { order.push_back(3); });
  loop->RunAt(now + absl::Milliseconds(10), [&] { order.push_back(1); });
  loop->RunAt(now + absl::Milliseconds(20), [&] { order.push_back(2); });
  while (order.size() < 3) loop->RunOnce(absl::Seconds(1));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_GE(loop->Now() - now, absl::Milliseconds(30));
}

TEST(EventLoopTest, CancelledTimerNeverRuns) {
  auto loop = NewLoop();
  bool ran = false, other = false;
  EventLoop::TimerId id = loop->RunAfter(absl::Milliseconds(5), [&] { ran = true; });
  loop->RunAfter(absl::Milliseconds(20), [&] { other = true; });
  EXPECT_TRUE(loop->Cancel(id));
  EXPECT_FALSE(loop->Cancel(id));
  EXPECT_FALSE(loop->Cancel(0));
  while (!other) loop->RunOnce(absl::Seconds(1));
  EXPECT_FALSE(ran);
}

TEST(EventLoopTest, RunOnceReturnsAfterTimeoutWhenIdle) {
  auto loop = NewLoop();
  absl::Time start = absl::Now();
  EXPECT_EQ(loop->RunOnce(absl::Milliseconds(20)), 0);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(15));
}

// turns(): callbacks of one turn see one value, the next turn's see the next.
TEST(EventLoopTest, TurnsCountRunOnceCalls) {
  auto loop = NewLoop();
  std::vector<uint64_t> seen;
  loop->Post([&] { seen.push_back(loop->turns()); });
  loop->Post([&] { seen.push_back(loop->turns()); });
  loop->RunOnce(absl::ZeroDuration());
  loop->Post([&] { seen.push_back(loop->turns()); });
  loop->RunOnce(absl::ZeroDuration());
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], seen[1]);
  EXPECT_EQ(seen[2], seen[0] + 1);
  EXPECT_EQ(loop->turns(), seen[2]);
}

TEST(EventLoopTest, PostFromOtherThreadsWakesTheLoopAndKeepsOrder) {
  auto loop = NewLoop();
  std::vector<int> seen;
  constexpr int kPerThread = 1000;
  std::thread a([&] {
    for (int i = 0; i < kPerThread; ++i) loop->Post([&seen, i] { seen.push_back(i); });
  });
  std::thread b([&] {
    for (int i = 0; i < kPerThread; ++i) loop->Post([&seen, i] { seen.push_back(100000 + i); });
  });
  a.join();
  b.join();
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (seen.size() < 2 * kPerThread && absl::Now() < deadline) loop->RunOnce(absl::Seconds(1));
  ASSERT_EQ(seen.size(), 2u * kPerThread);
  int last_a = -1, last_b = 99999;
  for (int v : seen) {
    if (v < 100000) {
      EXPECT_GT(v, last_a);
      last_a = v;
    } else {
      EXPECT_GT(v, last_b);
      last_b = v;
    }
  }
}

TEST(EventLoopTest, RunOnAThreadStopsFromAnotherThread) {
  auto loop = NewLoop();
  std::atomic<bool> in_loop{false};
  std::thread runner([&] { loop->Run(); });
  loop->Post([&] { in_loop = loop->IsLoopThread(); });
  loop->Post([&] { loop->Stop(); });
  runner.join();
  EXPECT_TRUE(in_loop.load());
  EXPECT_FALSE(loop->IsLoopThread());
}

absl::Duration ThreadCpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

// A socketpair whose first end the loop watches, appending what it reads to `got`.
struct WatchedPair {
  explicit WatchedPair(EventLoop& loop) : loop(loop) {
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    EXPECT_TRUE(loop.Watch(fds[0], EventLoop::kReadable,
                           [this](uint32_t) {
                             char buf[16];
                             ssize_t n = read(fds[0], buf, sizeof(buf));
                             if (n > 0) got.append(buf, n);
                           })
                    .ok());
  }
  ~WatchedPair() {
    loop.Unwatch(fds[0]);
    close(fds[0]);
    close(fds[1]);
  }
  // Writes `bytes` from the other end and runs the loop until they were read.
  void Feed(const std::string& bytes) {
    got.clear();
    ASSERT_EQ(write(fds[1], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    while (got.size() < bytes.size()) loop.RunOnce(absl::Seconds(10));
  }
  EventLoop& loop;
  int fds[2] = {-1, -1};
  std::string got;
};

// What arrives while the loop spins (bytes on a watched fd, a task posted from another thread) is
// handled in that turn, as it would be after a sleep.
TEST(EventLoopTest, SpinningLoopHandlesWhatArrivesWhileItSpins) {
  auto loop = NewLoop();
  // Long enough that the arrivals below come during the spin, whatever the machine's load; the
  // turn ends as soon as they do.
  loop->set_spin_before_sleep(absl::Seconds(30));
  WatchedPair pair(*loop);
  pair.Feed("a");  // a turn that read from a peer: the next one spins
  pair.got.clear();
  std::thread writer([&] { ASSERT_EQ(write(pair.fds[1], "spun", 4), 4); });
  while (pair.got.size() < 4) ASSERT_GE(loop->RunOnce(absl::Seconds(60)), 0);
  writer.join();
  EXPECT_EQ(pair.got, "spun");
  bool posted_ran = false;
  std::thread poster([&] { loop->Post([&] { posted_ran = true; }); });
  while (!posted_ran) loop->RunOnce(absl::Seconds(60));
  poster.join();
}

// The spin follows bytes from a peer, the traffic whose wake-ups it saves the peer; posted tasks
// and timers alone do not start one, and a turn that found nothing sleeps. Checked by this thread's
// CPU time: a sleeping epoll_wait costs microseconds, a spin its length.
TEST(EventLoopTest, SpinningLoopSpinsOnlyAfterReadingAndSleepsOnceIdle) {
  auto loop = NewLoop();
  loop->set_spin_before_sleep(absl::Milliseconds(100));
  WatchedPair pair(*loop);
  loop->Post([] {});
  ASSERT_EQ(loop->RunOnce(absl::ZeroDuration()), 1);
  absl::Duration before = ThreadCpu();
  EXPECT_EQ(loop->RunOnce(absl::Milliseconds(150)), 0);
  EXPECT_LT(ThreadCpu() - before, absl::Milliseconds(50)) << "spun after a posted task";

  pair.Feed("x");
  before = ThreadCpu();
  EXPECT_EQ(loop->RunOnce(absl::Milliseconds(150)), 0);
  // 100 ms of spinning; even a thread that shares a loaded core gets far more than this of it.
  EXPECT_GE(ThreadCpu() - before, absl::Milliseconds(5)) << "did not spin after reading";
  before = ThreadCpu();
  EXPECT_EQ(loop->RunOnce(absl::Milliseconds(150)), 0);
  EXPECT_LT(ThreadCpu() - before, absl::Milliseconds(50)) << "spun after an idle turn";
}

// ModerateNextWait: bytes that arrive, or are already there, wait for the window's end; the fds are
// then read in that same turn. ppoll never returns before its timeout (no signal here), so the
// elapsed time is a lower bound, not a race.
TEST(EventLoopTest, ModeratedWaitLeavesReadyFdsUntilTheWindowEnds) {
  auto loop = NewLoop();
  WatchedPair pair(*loop);
  ASSERT_EQ(write(pair.fds[1], "x", 1), 1);
  loop->ModerateNextWait(absl::Milliseconds(30));
  const absl::Time start = absl::Now();
  EXPECT_EQ(loop->RunOnce(absl::Seconds(60)), 1);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  EXPECT_EQ(pair.got, "x");
  EXPECT_EQ(loop->moderated_waits(), 1);
}

// Posted work and timers end a moderated wait at once: a window of an hour, a test that ends.
TEST(EventLoopTest, PostedTasksAndTimersEndAModeratedWait) {
  auto loop = NewLoop();
  WatchedPair pair(*loop);
  ASSERT_EQ(write(pair.fds[1], "a", 1), 1);
  loop->ModerateNextWait(absl::Hours(1));
  bool posted_ran = false;
  // Posted before or during the wait: either way the turn runs the task and reads the fd.
  std::thread poster([&] { loop->Post([&] { posted_ran = true; }); });
  EXPECT_EQ(loop->RunOnce(absl::Hours(1)), 2);
  poster.join();
  EXPECT_TRUE(posted_ran);
  EXPECT_EQ(pair.got, "a");

  pair.got.clear();
  ASSERT_EQ(write(pair.fds[1], "b", 1), 1);
  bool timer_ran = false;
  loop->RunAfter(absl::Milliseconds(1), [&] { timer_ran = true; });
  loop->ModerateNextWait(absl::Hours(1));
  const int64_t moderated = loop->moderated_waits();
  EXPECT_EQ(loop->RunOnce(absl::Hours(1)), 2);
  EXPECT_TRUE(timer_ran);
  EXPECT_EQ(pair.got, "b");
  EXPECT_EQ(loop->moderated_waits(), moderated + 1);  // the timer's millisecond was moderated
}

// A request covers the next wait only, lapses if that turn does not block, and a zero or negative
// window asks nothing: the fd then ends the wait as usual (a window of an hour would hang here).
TEST(EventLoopTest, ModerationIsForTheNextWaitOnly) {
  auto loop = NewLoop();
  WatchedPair pair(*loop);
  loop->ModerateNextWait(absl::Milliseconds(1));
  EXPECT_EQ(loop->RunOnce(absl::Milliseconds(2)), 0);
  EXPECT_EQ(loop->moderated_waits(), 1);
  pair.Feed("after");  // not moderated: Feed runs the loop with a 10 s timeout per turn
  EXPECT_EQ(loop->moderated_waits(), 1);

  loop->ModerateNextWait(absl::Hours(1));
  loop->Post([] {});  // work pending: the turn does not block, so the request lapses
  EXPECT_EQ(loop->RunOnce(absl::Hours(1)), 1);
  pair.Feed("lapsed");
  EXPECT_EQ(loop->moderated_waits(), 1);

  loop->ModerateNextWait(absl::ZeroDuration());
  pair.Feed("zero");
  loop->ModerateNextWait(-absl::Hours(1));
  pair.Feed("negative");
  EXPECT_EQ(loop->moderated_waits(), 1);
}

TEST(EventLoopTest, FdReadinessAndUnwatchFromInsideACallback) {
  auto loop = NewLoop();
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  int reads = 0;
  std::string got;
  ASSERT_TRUE(loop->Watch(fds[0], EventLoop::kReadable,
                          [&](uint32_t ready) {
                            EXPECT_TRUE(ready & EventLoop::kReadable);
                            char buf[16];
                            ssize_t n = read(fds[0], buf, sizeof(buf));
                            if (n > 0) got.append(buf, n);
                            ++reads;
                            loop->Unwatch(fds[0]);
                          })
                  .ok());
  EXPECT_EQ(loop->Watch(fds[0], EventLoop::kReadable, [](uint32_t) {}).code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_EQ(write(fds[1], "hi", 2), 2);
  while (reads == 0) loop->RunOnce(absl::Seconds(1));
  ASSERT_EQ(write(fds[1], "more", 4), 4);
  loop->RunOnce(absl::Milliseconds(20));
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(got, "hi");
  close(fds[0]);
  close(fds[1]);
}

TEST(EventLoopTest, WritableInterestCanBeToggled) {
  auto loop = NewLoop();
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  int writable = 0;
  ASSERT_TRUE(loop->Watch(fds[0], EventLoop::kWritable,
                          [&](uint32_t ready) {
                            if (ready & EventLoop::kWritable) ++writable;
                            ASSERT_TRUE(loop->SetInterest(fds[0], EventLoop::kReadable).ok());
                          })
                  .ok());
  loop->RunOnce(absl::Milliseconds(100));
  loop->RunOnce(absl::Milliseconds(20));
  EXPECT_EQ(writable, 1);
  EXPECT_EQ(loop->SetInterest(12345, EventLoop::kReadable).code(), absl::StatusCode::kNotFound);
  loop->Unwatch(fds[0]);
  close(fds[0]);
  close(fds[1]);
}

TEST(EventLoopTest, TimerRearmingItselfDoesNotStarveTheTurn) {
  auto loop = NewLoop();
  int fired = 0;
  std::function<void()> rearm = [&] {
    ++fired;
    loop->RunAfter(absl::ZeroDuration(), rearm);
  };
  loop->RunAfter(absl::ZeroDuration(), rearm);
  loop->RunOnce(absl::Milliseconds(10));
  EXPECT_EQ(fired, 1);
  loop->RunOnce(absl::Milliseconds(10));
  EXPECT_EQ(fired, 2);
}

}  // namespace
}  // namespace hublink
