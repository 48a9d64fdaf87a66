// The end of a transport's connection, kept in one place: the listener that must hear OnClosed()
// exactly once, the timers that must not fire after it, and deferred work that must not touch a
// transport destroyed meanwhile. Every transport needs this plumbing (plugins/transport.h's
// contract); tcp, tls, websocket and the tap example hold one TransportEnd instead of each keeping
// its own `delivered_` flag, timer bookkeeping and WeakGuard.
//
// Loop-thread only, like the transport that holds it. Header-only, so a shared-object plugin needs
// no symbol from the host for it.
//
//   class GreeterTransport : public hublink::Transport, private hublink::TransportListener {
//     void Open(hublink::TransportListener* listener) override {
//       end_.set_listener(listener);
//       lower_->Open(this);
//     }
//     void OnOpen() override {  // the layer below is open: our handshake, bounded in time
//       end_.RunAfter(timer_, absl::Seconds(10), [this] {
//         lower_->Close();
//         end_.Finish(absl::DeadlineExceededError("greeter: no greeting within 10 s"));
//       });
//     }
//     void OnClosed(const absl::Status& status) override { end_.Finish(status); }
//     ...
//     hublink::EventLoop::TimerId timer_ = 0;  // 0 when no handshake timer is pending
//     hublink::TransportEnd end_{loop_};       // after the members its tasks use
//   };
//
// Re-entrancy: Deliver() marks the end delivered before it calls the listener, so anything the
// listener does from OnClosed() (Close(), Write(), even a second failure reaching Finish()) does
// not deliver again. Deliver() touches nothing of its own after the call, so a listener that goes
// on to destroy the transport (which plugins/transport.h asks it not to do) does no harm here.
#ifndef HUBLINK_PLUGINS_TRANSPORT_END_H_
#define HUBLINK_PLUGINS_TRANSPORT_END_H_

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "plugins/event_loop.h"
#include "plugins/transport.h"
#include "plugins/weak_guard.h"

namespace hublink {

class TransportEnd {
 public:
  explicit TransportEnd(EventLoop& loop) : loop_(loop) {}
  // Cancels the timers still pending; tasks posted through Post()/Wrap() become no-ops.
  ~TransportEnd() {
    for (const Timer& timer : timers_) loop_.Cancel(timer.id);
  }
  TransportEnd(const TransportEnd&) = delete;
  TransportEnd& operator=(const TransportEnd&) = delete;

  EventLoop& loop() const { return loop_; }

  // The listener Open() was given; null before Open().
  void set_listener(TransportListener* listener) { listener_ = listener; }
  TransportListener* listener() const { return listener_; }

  // True once OnClosed() was delivered.
  bool delivered() const { return delivered_; }

  // Tells the listener OnClosed(status), now, the first time only. With no listener yet (Close()
  // before Open()) nothing is delivered, so that Open() can still report the end. Call it from
  // the loop, never from inside the transport's Open(), Write() or Close(): use DeliverLater().
  void Deliver(const absl::Status& status) {
    if (delivered_ || listener_ == nullptr) return;
    delivered_ = true;
    listener_->OnClosed(status);  // last: the listener may end this object's owner
  }

  // Deliver() from the loop, for an end found inside Open(), Write() or Close(). Dropped if the
  // transport is destroyed first.
  void DeliverLater(const absl::Status& status) {
    Post([this, status] { Deliver(status); });
  }

  // The connection is over: cancels every pending timer, then Deliver(status).
  void Finish(const absl::Status& status) {
    CancelTimers();
    Deliver(status);
  }

  // Runs `task` on the loop's next turn unless the transport was destroyed meanwhile.
  void Post(EventLoop::Task task) { loop_.Post(guard_.Wrap(std::move(task))); }

  // `fn`, made a no-op once this object is destroyed, for callbacks handed to others.
  template <typename Fn>
  auto Wrap(Fn fn) const {
    return guard_.Wrap(std::move(fn));
  }

  // A one-shot timer whose id is kept in `slot`, a member of the transport: set now, and back to 0
  // just before `task` runs or when the timer is cancelled, so `slot != 0` means "pending". A
  // timer already pending in `slot` is cancelled first. Finish() and the destructor cancel it; it
  // never runs after the transport is destroyed.
  void RunAt(EventLoop::TimerId& slot, absl::Time when, EventLoop::Task task) {
    Cancel(slot);
    EventLoop::TimerId* where = &slot;
    slot = loop_.RunAt(when, guard_.Wrap([this, where, task = std::move(task)]() mutable {
      Forget(*where);
      *where = 0;
      task();
    }));
    timers_.push_back({where, slot});
  }
  void RunAfter(EventLoop::TimerId& slot, absl::Duration delay, EventLoop::Task task) {
    RunAt(slot, loop_.Now() + delay, std::move(task));
  }

  // Cancels the timer in `slot`, if one is pending, and sets `slot` to 0.
  void Cancel(EventLoop::TimerId& slot) {
    if (slot != 0) {
      loop_.Cancel(slot);
      Forget(slot);
    }
    slot = 0;
  }

  // Cancels every pending timer and zeroes its slot.
  void CancelTimers() {
    std::vector<Timer> timers = std::move(timers_);
    timers_.clear();
    for (const Timer& timer : timers) {
      loop_.Cancel(timer.id);
      *timer.slot = 0;
    }
  }

 private:
  struct Timer {
    EventLoop::TimerId* slot;
    EventLoop::TimerId id;
  };

  void Forget(EventLoop::TimerId id) {
    timers_.erase(std::remove_if(timers_.begin(), timers_.end(),
                                 [id](const Timer& timer) { return timer.id == id; }),
                  timers_.end());
  }

  EventLoop& loop_;
  TransportListener* listener_ = nullptr;
  bool delivered_ = false;
  std::vector<Timer> timers_;  // pending ones only
  WeakGuard guard_;
};

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_TRANSPORT_END_H_
