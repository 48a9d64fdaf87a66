// Keeps work deferred through EventLoop (Post, timers) from touching an object that died meanwhile.
// Loop-thread only: the guard is created, checked and destroyed on the loop thread.
#ifndef HUBLINK_PLUGINS_WEAK_GUARD_H_
#define HUBLINK_PLUGINS_WEAK_GUARD_H_

#include <memory>
#include <utility>

namespace hublink {

class WeakGuard {
 public:
  WeakGuard() : token_(std::make_shared<char>(0)) {}
  WeakGuard(const WeakGuard&) = delete;
  WeakGuard& operator=(const WeakGuard&) = delete;

  // Returns a callable that runs `fn` only while this guard is alive.
  template <typename Fn>
  auto Wrap(Fn fn) const {
    return [weak = std::weak_ptr<char>(token_), fn = std::move(fn)]() mutable {
      if (weak.lock()) fn();
    };
  }

 private:
  std::shared_ptr<char> token_;
};

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_WEAK_GUARD_H_
