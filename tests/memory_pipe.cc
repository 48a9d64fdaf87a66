#include "tests/memory_pipe.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "plugins/weak_guard.h"

namespace hublink {
namespace testing {
namespace {

class MemoryEnd;

struct Shared {
  MemoryEnd* ends[2] = {nullptr, nullptr};
  bool opened[2] = {false, false};
  bool closed = false;
  size_t max_chunk = 0;
};

class MemoryEnd : public Transport {
 public:
  MemoryEnd(EventLoop& loop, std::shared_ptr<Shared> shared, int side)
      : loop_(loop), shared_(std::move(shared)), side_(side) {
    shared_->ends[side_] = this;
  }
  ~MemoryEnd() override {
    shared_->ends[side_] = nullptr;
    // Destruction abandons the link: the peer sees it as a reset.
    if (!shared_->closed) {
      shared_->closed = true;
      if (MemoryEnd* peer = shared_->ends[1 - side_]) {
        loop_.Post(peer->guard_.Wrap(
            [peer] { peer->Deliver(absl::UnavailableError("memory: connection reset by peer")); }));
      }
    }
  }

  void Open(TransportListener* listener) override {
    listener_ = listener;
    shared_->opened[side_] = true;
    if (shared_->opened[0] && shared_->opened[1]) {
      for (MemoryEnd* end : shared_->ends) {
        if (end != nullptr) {
          loop_.Post(end->guard_.Wrap([end] {
            if (!end->closed_) {
              end->open_ = true;
              end->listener_->OnOpen();
            }
          }));
        }
      }
    }
  }

  absl::Status Write(absl::string_view bytes) override {
    if (!open_ || shared_->closed) {
      return absl::FailedPreconditionError("memory: write on a connection that is not open");
    }
    MemoryEnd* peer = shared_->ends[1 - side_];
    if (peer == nullptr) return absl::OkStatus();
    size_t chunk = shared_->max_chunk ? shared_->max_chunk : bytes.size();
    for (size_t offset = 0; offset < bytes.size(); offset += chunk) {
      std::string piece(bytes.substr(offset, chunk));
      loop_.Post(peer->guard_.Wrap([peer, piece = std::move(piece)] {
        if (!peer->closed_ && peer->open_) peer->listener_->OnData(piece);
      }));
    }
    return absl::OkStatus();
  }

  void Close() override {
    if (shared_->closed) return;
    shared_->closed = true;
    for (MemoryEnd* end : shared_->ends) {
      if (end != nullptr) {
        loop_.Post(end->guard_.Wrap([end] { end->Deliver(absl::OkStatus()); }));
      }
    }
  }

  size_t BufferedBytes() const override { return 0; }

 private:
  void Deliver(const absl::Status& status) {
    if (closed_) return;
    closed_ = true;
    if (listener_ != nullptr) listener_->OnClosed(status);
  }

  EventLoop& loop_;
  std::shared_ptr<Shared> shared_;
  int side_;
  TransportListener* listener_ = nullptr;
  bool open_ = false;
  bool closed_ = false;
  WeakGuard guard_;
};

}  // namespace

MemoryPipe MakeMemoryPipe(EventLoop& loop, size_t max_chunk) {
  auto shared = std::make_shared<Shared>();
  shared->max_chunk = max_chunk;
  MemoryPipe pipe;
  pipe.client = std::make_unique<MemoryEnd>(loop, shared, 0);
  pipe.server = std::make_unique<MemoryEnd>(loop, shared, 1);
  return pipe;
}

}  // namespace testing
}  // namespace hublink
