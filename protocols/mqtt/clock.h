// Time as the MQTT session and the Client's reconnect policy see it: the current time and one-shot
// timers. In production it is the EventLoop (EventLoopClock); tests use ManualClock, which only
// moves when told to, so keep-alive, ping timeouts, CONNACK timeouts and backoff run in virtual
// time: deterministic and instant.
//
// It lives here rather than in plugins/ because only protocols/mqtt uses it so far; it has no MQTT
// in it, and would move to plugins/ unchanged once a transport wants virtual time too.
#ifndef HUBLINK_PROTOCOLS_MQTT_CLOCK_H_
#define HUBLINK_PROTOCOLS_MQTT_CLOCK_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "plugins/event_loop.h"

namespace hublink {
namespace mqtt {

// Loop-thread only, like the EventLoop's timers.
class Clock {
 public:
  using TimerId = EventLoop::TimerId;
  using Task = std::function<void()>;

  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Runs `task` once at `when` (soon after, if that is past: never from inside RunAt). Id 0 is
  // never issued.
  virtual TimerId RunAt(absl::Time when, Task task) = 0;
  TimerId RunAfter(absl::Duration delay, Task task) {
    return RunAt(Now() + delay, std::move(task));
  }
  // False when the timer already ran or was cancelled.
  virtual bool Cancel(TimerId id) = 0;
};

// The real thing: the loop's clock and timers.
class EventLoopClock : public Clock {
 public:
  explicit EventLoopClock(EventLoop& loop) : loop_(loop) {}
  absl::Time Now() const override { return loop_.Now(); }
  TimerId RunAt(absl::Time when, Task task) override { return loop_.RunAt(when, std::move(task)); }
  bool Cancel(TimerId id) override { return loop_.Cancel(id); }

 private:
  EventLoop& loop_;
};

// Virtual time for tests. Timers run only inside Advance()/RunDue(), in time order, on the calling
// thread (call it on the loop thread when a loop is involved). Counts timer firings, so a test can
// assert that something waits rather than spins; a runaway (a timer re-arming itself at or before
// the current time) stops after `max_firings_per_call` firings instead of hanging the test.
class ManualClock : public Clock {
 public:
  explicit ManualClock(absl::Time start = absl::FromUnixSeconds(1700000000)) : now_(start) {}

  absl::Time Now() const override { return now_; }
  TimerId RunAt(absl::Time when, Task task) override {
    TimerId id = next_id_++;
    auto it = timers_.emplace(std::make_pair(when, id), std::move(task)).first;
    index_[id] = it;
    return id;
  }
  bool Cancel(TimerId id) override {
    auto it = index_.find(id);
    if (it == index_.end()) return false;
    timers_.erase(it->second);
    index_.erase(it);
    return true;
  }

  // Moves time forward by `d`, running every timer due on the way at its own time. Returns the
  // number of timers run.
  int Advance(absl::Duration d) { return AdvanceTo(now_ + d); }
  int AdvanceTo(absl::Time target) {
    int ran = 0;
    while (!timers_.empty() && timers_.begin()->first.first <= target) {
      if (ran >= max_firings_per_call) {
        runaway_ = true;
        break;
      }
      auto it = timers_.begin();
      now_ = std::max(now_, it->first.first);
      Task task = std::move(it->second);
      index_.erase(it->first.second);
      timers_.erase(it);
      ++ran;
      ++firings_;
      task();
    }
    if (!runaway_) now_ = std::max(now_, target);
    return ran;
  }
  // Runs what is due now (timers armed at or before Now()).
  int RunDue() { return Advance(absl::ZeroDuration()); }
  // Time of the earliest pending timer, InfiniteFuture() when none.
  absl::Time NextTimer() const {
    return timers_.empty() ? absl::InfiniteFuture() : timers_.begin()->first.first;
  }
  // Moves to the earliest pending timer and runs everything due then. False when none is pending.
  bool AdvanceToNextTimer() {
    if (timers_.empty()) return false;
    AdvanceTo(NextTimer());
    return true;
  }
  size_t pending() const { return timers_.size(); }
  long firings() const { return firings_; }
  // A timer kept re-arming itself without time passing (see the class comment).
  bool runaway() const { return runaway_; }

  int max_firings_per_call = 10000;

 private:
  absl::Time now_;
  TimerId next_id_ = 1;
  std::map<std::pair<absl::Time, TimerId>, Task> timers_;
  absl::flat_hash_map<TimerId, std::map<std::pair<absl::Time, TimerId>, Task>::iterator> index_;
  long firings_ = 0;
  bool runaway_ = false;
};

}  // namespace mqtt
}  // namespace hublink

#endif  // HUBLINK_PROTOCOLS_MQTT_CLOCK_H_
