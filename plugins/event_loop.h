// The one place hublink waits: epoll over file descriptors, timers, and work posted from other
// threads.
//
// Everything except Post() and Stop() must be called on the loop's thread (the thread inside Run()
// or RunOnce()); callbacks always run there. Transports above the base transport never touch the
// loop's fds: they only use timers and Post().
//
// Two ways to drive it:
//   - loop->Run() on a thread of its own, until Stop();
//   - loop->RunOnce(timeout) from the application's own main loop, the way embedded SDKs call
//     Yield().
//
// Locking policy (the whole project, tests and tools included): state shared across threads is
// guarded by std::mutex / std::condition_variable, never absl::Mutex, absl::CondVar or
// absl::Notification. Debian's Abseil is not built with ThreadSanitizer, so `--config=tsan` cannot
// see Abseil's synchronization and reports the data it guards as races; pthread-based std::mutex
// it always understands.
#ifndef HUBLINK_PLUGINS_EVENT_LOOP_H_
#define HUBLINK_PLUGINS_EVENT_LOOP_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hublink {

class EventLoop {
 public:
  // Readiness bits passed to and from fd callbacks. Errors and hang-ups are reported as kReadable
  // so the owner's next read() sees them.
  enum : uint32_t { kReadable = 1u << 0, kWritable = 1u << 1 };

  using FdCallback = std::function<void(uint32_t ready)>;
  using Task = std::function<void()>;
  using TimerId = uint64_t;

  static absl::StatusOr<std::unique_ptr<EventLoop>> Create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Watches `fd` for `interest` (kReadable|kWritable). The fd stays owned by the caller, who must
  // call Unwatch() before closing it.
  absl::Status Watch(int fd, uint32_t interest, FdCallback callback);
  absl::Status SetInterest(int fd, uint32_t interest);
  void Unwatch(int fd);

  // Runs `task` once at `when` (or on the next turn if that is past). Returns an id for Cancel().
  TimerId RunAt(absl::Time when, Task task);
  TimerId RunAfter(absl::Duration delay, Task task) {
    return RunAt(Now() + delay, std::move(task));
  }
  // Returns false when the timer already ran or was cancelled. Id 0 is never issued, so it is a
  // safe "none".
  bool Cancel(TimerId id);

  // Thread-safe: queues `task` to run on the loop thread and wakes the loop. Tasks run in posting
  // order.
  void Post(Task task);

  // Runs until Stop(). Returns at once if Stop() was called before.
  void Run();
  // Thread-safe: makes Run() return after the current turn.
  void Stop();
  // One turn: waits at most `timeout` for something to do, then does everything ready. Returns the
  // number of callbacks run.
  int RunOnce(absl::Duration timeout);

  bool IsLoopThread() const;
  absl::Time Now() const { return absl::Now(); }

  // After a turn that read bytes from a peer, poll without blocking for up to `spin` before
  // sleeping; zero (the default) sleeps at once. Why: on a busy stream every write a peer makes to
  // a sleeping reader pays for waking it (on loopback that wake-up runs in the sender's system
  // call: a broker spends about a fifth more CPU per message on a subscriber that sleeps between
  // messages). A spinning loop is awake when the next bytes come, at the price of up to `spin` of
  // this thread's CPU per burst of traffic. Posted tasks and timers start no spin, and an idle loop
  // sleeps. On the loop thread, or before the loop runs.
  void set_spin_before_sleep(absl::Duration spin) { spin_ = spin; }

  // The next time this loop would block, it first waits up to `window` for posted tasks and timers
  // only, then takes without blocking whatever fds became ready meanwhile (and blocks as usual if
  // none did). For a reader that has just seen a peer stream at it, e.g. two or more messages in
  // one read (mqtt::Client asks after such a read). Why: a peer that sends many small writes to a
  // reader asleep in epoll pays a wake-up per write, inside its own send (a broker spent 25 µs of
  // CPU per forwarded 64 B message to a hublink subscriber that slept between messages, Paho's
  // costs it 17; with a 50 µs window, 19, and the subscriber's own CPU halved; with 1 ms, 16.6-16.9,
  // since the reader's receive buffer then fills and the sender's kernel merges its writes into
  // large segments). During the window the peer's writes pile up without waking anyone and are
  // taken in one read. A byte arriving during the window waits at most `window` plus the kernel's
  // timer slack (50 µs by default), so ask only where a stream is under way, never for a
  // request-response exchange, whose answers would wait out the window. The request is for the
  // next wait only (it lapses if that turn finds work and does not block), and it replaces
  // spin_before_sleep for that wait. Zero or negative: no effect. On the loop thread.
  void ModerateNextWait(absl::Duration window) { moderate_next_wait_ = window; }
  // How many waits were moderated so far (stats, tests). On the loop thread.
  int64_t moderated_waits() const { return moderated_waits_; }
  // How many turns (RunOnce calls) have begun, counting from 1: callbacks that see the same value
  // run in the same turn. On the loop thread.
  uint64_t turns() const { return turns_; }

 private:
  EventLoop(int epoll_fd, int wake_fd);
  int RunPosted();
  int RunDueTimers();
  absl::Duration TimeToNextTimer(absl::Duration cap) const;

  const int epoll_fd_;
  const int wake_fd_;
  absl::Duration spin_ = absl::ZeroDuration();
  bool read_last_turn_ = false;                               // loop thread only
  absl::Duration moderate_next_wait_ = absl::ZeroDuration();  // loop thread only
  int64_t moderated_waits_ = 0;                               // loop thread only
  uint64_t turns_ = 0;                                        // loop thread only
  std::atomic<bool> stop_requested_{false};
  std::atomic<std::thread::id> loop_thread_{};

  // Callbacks are shared so that one may Unwatch() itself (or another fd) while it runs.
  absl::flat_hash_map<int, std::shared_ptr<FdCallback>> watchers_;

  struct Timer {
    TimerId id;
    Task task;
  };
  std::multimap<absl::Time, Timer> timers_;
  absl::flat_hash_map<TimerId, std::multimap<absl::Time, Timer>::iterator> timer_index_;
  TimerId next_timer_id_ = 1;

  // std::mutex, per the locking policy at the top of this file.
  std::mutex posted_mutex_;
  std::vector<Task> posted_;       // guarded by posted_mutex_
  std::vector<Task> spare_tasks_;  // loop thread only
};

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_EVENT_LOOP_H_
