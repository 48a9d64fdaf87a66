#include "plugins/event_loop.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace hublink {
namespace {

uint32_t ToEpoll(uint32_t interest) {
  uint32_t events = 0;
  if (interest & EventLoop::kReadable) events |= EPOLLIN | EPOLLRDHUP;
  if (interest & EventLoop::kWritable) events |= EPOLLOUT;
  return events;
}

uint32_t FromEpoll(uint32_t events) {
  uint32_t ready = 0;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ready |= EventLoop::kReadable;
  if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) ready |= EventLoop::kWritable;
  return ready;
}

absl::Status ErrnoStatus(absl::string_view what) {
  int err = errno;
  return absl::InternalError(absl::StrCat("event loop: ", what, ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create() {
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return ErrnoStatus("epoll_create1");
  int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    absl::Status status = ErrnoStatus("eventfd");
    close(epoll_fd);
    return status;
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wake_fd;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &event) != 0) {
    absl::Status status = ErrnoStatus("epoll_ctl(eventfd)");
    close(wake_fd);
    close(epoll_fd);
    return status;
  }
  return std::unique_ptr<EventLoop>(new EventLoop(epoll_fd, wake_fd));
}

EventLoop::EventLoop(int epoll_fd, int wake_fd) : epoll_fd_(epoll_fd), wake_fd_(wake_fd) {}

EventLoop::~EventLoop() {
  close(wake_fd_);
  close(epoll_fd_);
}

absl::Status EventLoop::Watch(int fd, uint32_t interest, FdCallback callback) {
  if (watchers_.contains(fd)) {
    return absl::AlreadyExistsError(absl::StrCat("event loop: fd ", fd, " is already watched"));
  }
  epoll_event event{};
  event.events = ToEpoll(interest);
  event.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) return ErrnoStatus("epoll_ctl(ADD)");
  watchers_[fd] = std::make_shared<FdCallback>(std::move(callback));
  return absl::OkStatus();
}

absl::Status EventLoop::SetInterest(int fd, uint32_t interest) {
  if (!watchers_.contains(fd)) {
    return absl::NotFoundError(absl::StrCat("event loop: fd ", fd, " is not watched"));
  }
  epoll_event event{};
  event.events = ToEpoll(interest);
  event.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) != 0) return ErrnoStatus("epoll_ctl(MOD)");
  return absl::OkStatus();
}

void EventLoop::Unwatch(int fd) {
  if (watchers_.erase(fd) > 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

EventLoop::TimerId EventLoop::RunAt(absl::Time when, Task task) {
  TimerId id = next_timer_id_++;
  auto it = timers_.emplace(when, Timer{id, std::move(task)});
  timer_index_[id] = it;
  return id;
}

bool EventLoop::Cancel(TimerId id) {
  auto found = timer_index_.find(id);
  if (found == timer_index_.end()) return false;
  timers_.erase(found->second);
  timer_index_.erase(found);
  return true;
}

void EventLoop::Post(Task task) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    was_empty = posted_.empty();
    posted_.push_back(std::move(task));
  }
  // One wake-up per batch: a non-empty queue already has one pending, and the loop thread itself
  // looks at the queue before it waits (RunOnce). Saves a write() per publish under load.
  if (!was_empty || IsLoopThread()) return;
  uint64_t one = 1;
  // A full counter (EAGAIN) still leaves the fd readable, so the wake-up is not lost.
  (void)!write(wake_fd_, &one, sizeof(one));
}

void EventLoop::Stop() {
  stop_requested_.store(true);
  Post([] {});
}

void EventLoop::Run() {
  while (!stop_requested_.load()) RunOnce(absl::Seconds(1));
  stop_requested_.store(false);
}

bool EventLoop::IsLoopThread() const { return loop_thread_.load() == std::this_thread::get_id(); }

absl::Duration EventLoop::TimeToNextTimer(absl::Duration cap) const {
  if (timers_.empty()) return cap;
  absl::Duration until = timers_.begin()->first - Now();
  if (until < absl::ZeroDuration()) return absl::ZeroDuration();
  return std::min(until, cap);
}

int EventLoop::RunOnce(absl::Duration timeout) {
  loop_thread_.store(std::this_thread::get_id());
  ++turns_;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    if (!posted_.empty()) timeout = absl::ZeroDuration();
  }
  absl::Duration wait = TimeToNextTimer(timeout);
  // Round up so a timer 0.4 ms away does not spin with a zero timeout.
  int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(wait + absl::Microseconds(999)));
  if (wait <= absl::ZeroDuration()) wait_ms = 0;

  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  int n = 0;
  const absl::Duration moderate = std::min(moderate_next_wait_, wait);
  moderate_next_wait_ = absl::ZeroDuration();
  if (wait_ms != 0 && moderate > absl::ZeroDuration()) {
    ++moderated_waits_;
    // Only the wake fd: posted work ends the window at once, fd readiness does not. An EINTR
    // ends it early, which is harmless.
    pollfd wake{wake_fd_, POLLIN, 0};
    const timespec window = absl::ToTimespec(moderate);
    (void)ppoll(&wake, 1, &window, nullptr);
    n = epoll_wait(epoll_fd_, events, kMaxEvents, 0);
  } else if (wait_ms != 0 && read_last_turn_ && spin_ > absl::ZeroDuration()) {
    const absl::Time spin_until = Now() + std::min(spin_, wait);
    do {
      n = epoll_wait(epoll_fd_, events, kMaxEvents, 0);
    } while (n == 0 && Now() < spin_until);
  }
  if (n == 0) n = epoll_wait(epoll_fd_, events, kMaxEvents, wait_ms);
  int ran = 0;
  bool peer_bytes = false;
  for (int i = 0; i < n; ++i) {
    int fd = events[i].data.fd;
    if (fd == wake_fd_) {
      uint64_t count;
      (void)!read(wake_fd_, &count, sizeof(count));
      continue;
    }
    auto it = watchers_.find(fd);
    if (it == watchers_.end()) continue;  // unwatched by an earlier callback of this turn
    std::shared_ptr<FdCallback> callback = it->second;
    const uint32_t ready = FromEpoll(events[i].events);
    peer_bytes = peer_bytes || (ready & kReadable) != 0;
    (*callback)(ready);
    ++ran;
  }
  ran += RunDueTimers();
  ran += RunPosted();
  read_last_turn_ = peer_bytes;
  return ran;
}

int EventLoop::RunDueTimers() {
  int ran = 0;
  absl::Time now = Now();
  // Timers added by a running timer for "now" wait for the next turn, so a rearming timer cannot
  // starve fds.
  TimerId limit = next_timer_id_;
  while (!timers_.empty() && timers_.begin()->first <= now) {
    auto it = timers_.begin();
    if (it->second.id >= limit) break;
    Task task = std::move(it->second.task);
    timer_index_.erase(it->second.id);
    timers_.erase(it);
    task();
    ++ran;
  }
  return ran;
}

int EventLoop::RunPosted() {
  // The drained vector keeps its capacity for the next turn, so steady traffic allocates nothing.
  std::vector<Task> tasks = std::move(spare_tasks_);
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    tasks.swap(posted_);
  }
  for (Task& task : tasks) task();
  int ran = static_cast<int>(tasks.size());
  tasks.clear();
  spare_tasks_ = std::move(tasks);
  return ran;
}

}  // namespace hublink
