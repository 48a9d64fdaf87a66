// A one-shot event between threads, like absl::Notification but on std::mutex and
// std::condition_variable: plugins/event_loop.h's locking policy (Debian's Abseil is not built with
// ThreadSanitizer, which then cannot see absl::Notification's synchronization).
#ifndef HUBLINK_BENCH_NOTIFICATION_H_
#define HUBLINK_BENCH_NOTIFICATION_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace hublink {
namespace bench {

class Notification {
 public:
  Notification() = default;
  Notification(const Notification&) = delete;
  Notification& operator=(const Notification&) = delete;

  void Notify() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      notified_ = true;
    }
    changed_.notify_all();
  }
  bool HasBeenNotified() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return notified_;
  }
  void WaitForNotification() const {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return notified_; });
  }
  // True if notified before `deadline`.
  bool WaitForNotificationWithDeadline(absl::Time deadline) const {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!notified_) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      // In steps of at most an hour, so that a far deadline cannot overflow the clock arithmetic.
      changed_.wait_for(lock, absl::ToChronoMilliseconds(std::min(left, absl::Hours(1))) +
                                  std::chrono::milliseconds(1));
    }
    return true;
  }
  bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    return WaitForNotificationWithDeadline(absl::Now() + timeout);
  }

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  bool notified_ = false;  // guarded by mutex_
};

}  // namespace bench
}  // namespace hublink

#endif  // HUBLINK_BENCH_NOTIFICATION_H_
