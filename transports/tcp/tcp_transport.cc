#include "transports/tcp/tcp_transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/mem.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "plugins/duration.h"
#include "plugins/log.h"
#include "plugins/status_macros.h"
#include "plugins/transport_end.h"
#include "transports/tcp/address_order.h"
#include "transports/tcp/tcp.pb.h"

namespace hublink {
namespace {

using transports::TcpConfig;

constexpr uint64_t kDefaultMaxBuffered = 64ull << 20;
constexpr uint64_t kDefaultHighWater = 256ull << 10;
constexpr absl::Duration kDefaultConnectTimeout = absl::Seconds(10);
// How long an orderly close may take (flush, then the peer's FIN) unless close_timeout says.
constexpr absl::Duration kDefaultCloseTimeout = absl::Seconds(3);
// RFC 8305 §5 and §8: the recommended Connection Attempt Delay, and the floor below which
// attempts would pile onto a network faster than it can answer.
constexpr absl::Duration kDefaultAttemptDelay = absl::Milliseconds(250);
constexpr absl::Duration kMinAttemptDelay = absl::Milliseconds(10);

// The socket family `config.family` allows; AF_UNSPEC for either.
int AllowedFamily(const TcpConfig& config) {
  switch (config.family()) {
    case TcpConfig::IPV4:
      return AF_INET;
    case TcpConfig::IPV6:
      return AF_INET6;
    default:
      return AF_UNSPEC;
  }
}

std::string Describe(int err) {
  switch (err) {
    case ECONNREFUSED:
      return "connection refused";
    case ECONNRESET:
      return "connection reset by peer";
    case ETIMEDOUT:
      return "timed out";
    case EHOSTUNREACH:
      return "host unreachable";
    case ENETUNREACH:
      return "network unreachable";
    case EPIPE:
      return "broken pipe (peer closed)";
    default:
      return std::strerror(err);
  }
}

// getaddrinfo blocks (DNS), so it runs on a short-lived thread. The thread and the transport share
// this state; the eventfd wakes the loop when the answer is in. Nothing here points at the
// transport or the loop, so either may be gone before the thread finishes.
struct Resolution {
  Resolution() : wake_fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Resolution() {
    if (wake_fd >= 0) close(wake_fd);
  }
  int wake_fd;
  std::mutex mutex;
  bool done = false;
  int gai_error = 0;
  std::vector<SocketAddress> addresses;
};

void Resolve(std::shared_ptr<Resolution> resolution, std::string host, uint16_t port, int family) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* result = nullptr;
  std::string service = absl::StrCat(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
  if (rc == EAI_NONAME || rc == EAI_ADDRFAMILY) {
    // AI_ADDRCONFIG hides ::1 on hosts with only loopback IPv6; ask again without it.
    hints.ai_flags = 0;
    rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
  }
  std::vector<SocketAddress> addresses;
  for (addrinfo* ai = result; rc == 0 && ai != nullptr; ai = ai->ai_next) {
    SocketAddress address{};
    std::memcpy(&address.storage, ai->ai_addr, ai->ai_addrlen);
    address.length = ai->ai_addrlen;
    addresses.push_back(address);
  }
  if (result != nullptr) freeaddrinfo(result);
  {
    std::lock_guard<std::mutex> lock(resolution->mutex);
    resolution->done = true;
    resolution->gai_error = rc;
    resolution->addresses = InterleaveFamilies(std::move(addresses));
  }
  uint64_t one = 1;
  (void)!write(resolution->wake_fd, &one, sizeof(one));
}

class TcpTransport : public Transport {
 public:
  TcpTransport(const TcpConfig& config, ConnectContext& context)
      : config_(config),
        context_(context),
        loop_(context.loop()),
        // A proxy below the other layers: tcp connects to it, the layers above still see the
        // pipeline's endpoint (SNI, Host header, the tunnel's target).
        host_(config.host().empty() ? context.host() : config.host()),
        port_(config.host().empty() ? context.port() : static_cast<uint16_t>(config.port())),
        endpoint_(absl::StrCat(host_, ":", port_)) {
    max_buffered_ =
        config_.max_buffered_bytes() ? config_.max_buffered_bytes() : kDefaultMaxBuffered;
    high_water_ = config_.high_water_bytes() ? config_.high_water_bytes() : kDefaultHighWater;
    close_timeout_ =
        config_.has_close_timeout() ? ToDuration(config_.close_timeout()) : kDefaultCloseTimeout;
    attempt_delay_ = ToDuration(config_.connection_attempt_delay());
    if (attempt_delay_ == absl::ZeroDuration()) attempt_delay_ = kDefaultAttemptDelay;
  }

  ~TcpTransport() override {
    CloseAttempts();
    CloseSocket();
    WipeQueue();
    if (resolution_ != nullptr) loop_.Unwatch(resolution_->wake_fd);
  }

  void Open(TransportListener* listener) override {
    if (opened_) {
      // API misuse: the connection ends with kFailedPrecondition. The first listener hears it
      // (the second Open() does not take it over), and so does a different second listener;
      // both from the loop, never from here.
      absl::Status misuse =
          absl::FailedPreconditionError(absl::StrCat("tcp: ", endpoint_, ": Open() called twice"));
      if (listener != nullptr && listener != end_.listener()) {
        end_.Post([listener, misuse] { listener->OnClosed(misuse); });
      }
      FailLater(misuse);
      return;
    }
    opened_ = true;
    end_.set_listener(listener);
    if (state_ != State::kIdle) {
      // Closed before it was opened: report that end now that there is someone to tell.
      FailLater(absl::FailedPreconditionError(
          absl::StrCat("tcp: ", endpoint_, ": Open() after Close()")));
      return;
    }
    state_ = State::kResolving;
    context_.BeginPhase("dns");  // ends at once for an IP literal or pinned addresses
    // The plugin's own setting wins over the pipeline's policy, which wins over the default.
    absl::Duration timeout = config_.has_connect_timeout()
                                 ? ToDuration(config_.connect_timeout())
                                 : context_.connect_timeout().value_or(kDefaultConnectTimeout);
    absl::Time deadline = std::min(loop_.Now() + timeout, context_.deadline());
    end_.RunAt(timer_, deadline, [this, timeout] { Fail(ConnectTimedOut(timeout)); });
    int family = AllowedFamily(config_);
    // Pinned addresses (checked when the config was read), else an IP literal, need no resolver
    // thread. Connecting is still deferred: Open() never calls back.
    for (const std::string& pinned : config_.addresses()) {
      if (absl::optional<SocketAddress> address = ParseIpLiteral(pinned, port_, family)) {
        addresses_.push_back(*address);
      }
    }
    if (addresses_.empty()) {
      if (absl::optional<SocketAddress> literal = ParseIpLiteral(host_, port_, family)) {
        addresses_.push_back(*literal);
      }
    }
    if (!addresses_.empty()) {
      StartConnecting();
      end_.Post([this] {
        if (state_ == State::kConnecting) StartNextAttempt();
      });
      return;
    }
    resolution_ = std::make_shared<Resolution>();
    if (resolution_->wake_fd < 0) {
      FailLater(absl::InternalError(absl::StrCat("tcp: eventfd: ", Describe(errno))));
      return;
    }
    absl::Status watched =
        loop_.Watch(resolution_->wake_fd, EventLoop::kReadable, [this](uint32_t) { OnResolved(); });
    if (!watched.ok()) {
      FailLater(watched);
      return;
    }
    std::thread(Resolve, resolution_, host_, port_, family).detach();
  }

  absl::Status Write(absl::string_view bytes) override {
    if (state_ != State::kOpen) {
      return absl::FailedPreconditionError(
          absl::StrCat("tcp: ", endpoint_, ": write on a ", StateName(), " connection"));
    }
    if (bytes.size() > max_buffered_) {
      // Could never fit, however long the caller waited for OnWritable().
      return absl::InvalidArgumentError(
          absl::StrCat("tcp: ", endpoint_, ": a single write of ", bytes.size(),
                       " bytes exceeds max_buffered_bytes (", max_buffered_, ")"));
    }
    if (buffered_ + bytes.size() > max_buffered_) {
      // The caller now waits for OnWritable(), so promise one even if the queue never passed the
      // high-water mark.
      want_writable_ = true;
      return absl::ResourceExhaustedError(absl::StrCat("tcp: ", endpoint_, ": write queue full (",
                                                       buffered_, " bytes queued, limit ",
                                                       max_buffered_, "); wait for OnWritable()"));
    }
    if (bytes.empty()) return absl::OkStatus();
    if (queue_.empty()) {
      // Fast path: straight to the kernel, queue only what it did not take.
      ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        // The failure arrives as OnClosed, like any other, and stays the reported one even if a
        // read sees the end of stream first.
        FailLater(ErrnoStatus("send", errno));
        return absl::OkStatus();
      }
      if (n > 0) {
        context_.CountBytesOut(static_cast<size_t>(n));
        bytes.remove_prefix(static_cast<size_t>(n));
      }
      if (bytes.empty()) return absl::OkStatus();
    }
    queue_.emplace_back(bytes);
    buffered_ += bytes.size();
    if (buffered_ > high_water_) want_writable_ = true;
    UpdateInterest();
    return absl::OkStatus();
  }

  bool AboveSoftLimit() const override { return want_writable_ && state_ == State::kOpen; }

  void Close() override {
    switch (state_) {
      case State::kIdle:
      case State::kResolving:
      case State::kConnecting:
        state_ = State::kClosed;
        end_.Cancel(timer_);
        CloseAttempts();
        CloseSocket();
        end_.DeliverLater(absl::OkStatus());
        return;
      case State::kOpen:
        state_ = State::kDraining;
        // The whole orderly close is bounded: a peer that stops reading cannot hold it open.
        end_.RunAfter(timer_, close_timeout_, [this] { OnCloseTimeout(); });
        if (queue_.empty()) ShutdownWrite();
        UpdateInterest();
        return;
      case State::kDraining:
      case State::kLingering:
      case State::kFailing:
      case State::kClosed:
        return;
    }
  }

  size_t BufferedBytes() const override { return buffered_; }

 private:
  enum class State {
    kIdle,
    kResolving,
    kConnecting,
    kOpen,
    kDraining,
    kLingering,
    kFailing,
    kClosed
  };

  const char* StateName() const {
    switch (state_) {
      case State::kIdle:
      case State::kResolving:
      case State::kConnecting:
        return "not yet open";
      case State::kOpen:
        return "open";
      case State::kDraining:
      case State::kLingering:
        return "closing";
      case State::kFailing:
        return "failed";
      case State::kClosed:
        return "closed";
    }
    return "?";
  }

  void OnResolved() {
    loop_.Unwatch(resolution_->wake_fd);
    int gai_error;
    {
      std::lock_guard<std::mutex> lock(resolution_->mutex);
      if (!resolution_->done || state_ != State::kResolving) return;
      gai_error = resolution_->gai_error;
      addresses_ = std::move(resolution_->addresses);
    }
    if (gai_error != 0 || addresses_.empty()) {
      Fail(absl::UnavailableError(absl::StrCat(
          "tcp: ", endpoint_,
          ": cannot resolve host: ", gai_error ? gai_strerror(gai_error) : "no addresses")));
      return;
    }
    StartConnecting();
    StartNextAttempt();
  }

  void StartConnecting() {
    context_.EndPhase("dns");
    context_.BeginPhase("tcp");
    state_ = State::kConnecting;
    failures_.assign(addresses_.size(), 0);
    // With one address its errors read as before the race existed: "tcp: host:port (ip): why".
    if (addresses_.size() == 1) current_address_ = FormatIp(addresses_[0]);
  }

  // Happy Eyeballs (RFC 8305 §5): starts the attempt to the next address, passing at once over
  // those whose connect() fails on the spot, and arms the Connection Attempt Delay after which the
  // one after it starts, while this one is still pending. Also called when an attempt fails: the
  // next one need not wait out the delay then.
  void StartNextAttempt() {
    end_.Cancel(attempt_timer_);
    while (next_address_ < addresses_.size()) {
      size_t index = next_address_++;
      const SocketAddress& address = addresses_[index];
      int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        AttemptFailed(index, errno);
        continue;
      }
      int rc = connect(fd, reinterpret_cast<const sockaddr*>(&address.storage), address.length);
      if (rc != 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        AttemptFailed(index, err);
        continue;
      }
      absl::Status watched = loop_.Watch(fd, EventLoop::kWritable, [this, fd](uint32_t ready) {
        if (fd == fd_) {
          OnSocketReady(ready);
        } else {
          OnAttemptReady(fd);
        }
      });
      if (!watched.ok()) {
        close(fd);
        Fail(watched);
        return;
      }
      attempts_.push_back(Attempt{fd, index});
      if (next_address_ < addresses_.size()) {
        end_.RunAfter(attempt_timer_, attempt_delay_, [this] { StartNextAttempt(); });
      }
      return;
    }
    if (attempts_.empty()) FailEveryAddress();
  }

  void AttemptFailed(size_t index, int err) {
    failures_[index] = err;
    HLOG(DEBUG) << "tcp: " << endpoint_ << " via " << FormatIp(addresses_[index]) << ": "
                << Describe(err);
  }

  void OnAttemptReady(int fd) {
    if (state_ != State::kConnecting) return;
    auto attempt = std::find_if(attempts_.begin(), attempts_.end(),
                                [fd](const Attempt& a) { return a.fd == fd; });
    if (attempt == attempts_.end()) return;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == EINPROGRESS) return;
    size_t index = attempt->index;
    if (err != 0) {
      loop_.Unwatch(fd);
      close(fd);
      attempts_.erase(attempt);
      AttemptFailed(index, err);
      StartNextAttempt();
      return;
    }
    // The winner. RFC 8305 §5: the attempts still pending are cancelled, and the addresses not yet
    // tried are left alone.
    attempts_.erase(attempt);
    CloseAttempts();
    fd_ = fd;
    watching_ = true;
    interest_ = 0;
    current_address_ = FormatIp(addresses_[index]);
    end_.Cancel(timer_);
    int one = 1;
    if (!config_.enable_nagle()) setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (config_.has_keepalive_idle()) {
      int idle = static_cast<int>(std::max<int64_t>(1, config_.keepalive_idle().seconds()));
      setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
      setsockopt(fd_, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    }
    state_ = State::kOpen;
    UpdateInterest();
    context_.EndPhase("tcp", addresses_.size() > 1 ? current_address_ : std::string());
    context_.ReportStage("tcp", absl::StrCat("connected ", endpoint_, " (", current_address_, ")"));
    if (end_.listener() != nullptr) end_.listener()->OnOpen();
  }

  void OnSocketReady(uint32_t ready) {
    if (ready & EventLoop::kWritable) Flush();
    if ((ready & EventLoop::kReadable) && fd_ >= 0) ReadAvailable();
  }

  // Closes the attempts still pending and stops starting new ones.
  void CloseAttempts() {
    end_.Cancel(attempt_timer_);
    for (const Attempt& attempt : attempts_) {
      loop_.Unwatch(attempt.fd);
      close(attempt.fd);
    }
    attempts_.clear();
  }

  // Every address was tried and none connected.
  void FailEveryAddress() {
    if (addresses_.size() == 1) {
      FailWithErrno("connect", failures_[0]);
      return;
    }
    bool all_timed_out =
        std::all_of(failures_.begin(), failures_.end(), [](int err) { return err == ETIMEDOUT; });
    std::string message =
        absl::StrCat("tcp: ", endpoint_, ": every address failed: ", AttemptOutcomes());
    Fail(all_timed_out ? absl::DeadlineExceededError(message) : absl::UnavailableError(message));
  }

  absl::Status ConnectTimedOut(absl::Duration timeout) const {
    std::string message = absl::StrCat("tcp: ", endpoint_, ": connect timed out after ",
                                       absl::FormatDuration(timeout));
    // With one address (or still resolving) there is nothing more to say.
    if (addresses_.size() > 1) absl::StrAppend(&message, ": ", AttemptOutcomes());
    return absl::DeadlineExceededError(message);
  }

  // "[::1]:1883 connection refused; 127.0.0.1:1883 timed out; 127.0.0.2:1883 not tried", in the
  // order the addresses were tried.
  std::string AttemptOutcomes() const {
    std::string outcomes;
    for (size_t i = 0; i < addresses_.size(); ++i) {
      bool pending = std::any_of(attempts_.begin(), attempts_.end(),
                                 [i](const Attempt& a) { return a.index == i; });
      absl::StrAppend(&outcomes, i == 0 ? "" : "; ", FormatIpAndPort(addresses_[i]), " ",
                      failures_[i] != 0 ? Describe(failures_[i])
                      : pending         ? "timed out"
                                        : "not tried");
    }
    return outcomes;
  }

  void ReadAvailable() {
    char buffer[64 * 1024];
    // Bounded so one busy connection cannot starve the others on this loop.
    for (int round = 0; round < 16 && fd_ >= 0; ++round) {
      ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
      if (n > 0) {
        context_.CountBytesIn(static_cast<size_t>(n));
        if (state_ == State::kOpen || state_ == State::kDraining) {
          end_.listener()->OnData(absl::string_view(buffer, static_cast<size_t>(n)));
        }
        if (static_cast<size_t>(n) < sizeof(buffer)) return;
        continue;
      }
      if (n == 0) {
        // Peer finished. Whatever we still had queued cannot matter to it any more. A failure seen
        // earlier (a send that met a reset) stays the one reported: Finish() keeps it. A reset
        // that came right behind the FIN (the peer aborted with our bytes unread) hides behind
        // this end of stream: the socket error says so.
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
          FailWithErrno("recv", err);
          return;
        }
        Finish(absl::OkStatus());
        return;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      FailWithErrno("recv", errno);
      return;
    }
  }

  void Flush() {
    while (!queue_.empty() && fd_ >= 0) {
      iovec iov[16];
      int count = 0;
      size_t offset = front_offset_;
      for (auto it = queue_.begin(); it != queue_.end() && count < 16; ++it, ++count) {
        iov[count].iov_base = const_cast<char*>(it->data()) + offset;
        iov[count].iov_len = it->size() - offset;
        offset = 0;
      }
      msghdr message{};
      message.msg_iov = iov;
      message.msg_iovlen = count;
      ssize_t n = sendmsg(fd_, &message, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        FailWithErrno("send", errno);
        return;
      }
      size_t sent = static_cast<size_t>(n);
      context_.CountBytesOut(sent);
      buffered_ -= sent;
      while (sent > 0) {
        size_t left = queue_.front().size() - front_offset_;
        if (sent >= left) {
          sent -= left;
          // The kernel has the bytes: wipe our copy (an MQTT CONNECT holds the password).
          WipeString(queue_.front());
          queue_.pop_front();
          front_offset_ = 0;
        } else {
          front_offset_ += sent;
          sent = 0;
        }
      }
    }
    if (queue_.empty() && state_ == State::kDraining) ShutdownWrite();
    UpdateInterest();
    if (want_writable_ && buffered_ <= high_water_ / 4 && state_ == State::kOpen) {
      want_writable_ = false;
      end_.listener()->OnWritable();
    }
  }

  void ShutdownWrite() {
    shutdown(fd_, SHUT_WR);
    state_ = State::kLingering;
  }

  // close_timeout ran out: still draining our queue, or waiting for the peer's FIN.
  void OnCloseTimeout() {
    if (state_ != State::kDraining && state_ != State::kLingering) return;
    int unacknowledged = 0;
    if (fd_ < 0 || ioctl(fd_, SIOCOUTQ, &unacknowledged) != 0) unacknowledged = 0;
    size_t undelivered = buffered_ + static_cast<size_t>(std::max(unacknowledged, 0));
    if (undelivered == 0) {
      // The peer has everything we sent and only keeps its side open: an orderly end all the same.
      Finish(absl::OkStatus());
      return;
    }
    // Abort: a reset tells the peer, and frees the kernel from retrying bytes nobody reads.
    if (fd_ >= 0) {
      linger hard{1, 0};
      setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    }
    Finish(absl::DeadlineExceededError(
        absl::StrCat("tcp: ", endpoint_, ": close timed out after ",
                     absl::FormatDuration(close_timeout_), " with ", undelivered,
                     " bytes not delivered (the peer stopped reading); connection aborted")));
  }

  void UpdateInterest() {
    if (!watching_) return;
    uint32_t interest = EventLoop::kReadable;
    if (!queue_.empty()) interest |= EventLoop::kWritable;
    if (interest != interest_) {
      interest_ = interest;
      (void)loop_.SetInterest(fd_, interest);
    }
  }

  absl::Status ErrnoStatus(absl::string_view operation, int err) const {
    std::string where = current_address_.empty() || host_ == current_address_
                            ? endpoint_
                            : absl::StrCat(endpoint_, " (", current_address_, ")");
    std::string message = absl::StrCat("tcp: ", where, ": ", Describe(err));
    if (err == ECONNREFUSED || err == ECONNRESET || err == EPIPE || err == EHOSTUNREACH ||
        err == ENETUNREACH) {
      return absl::UnavailableError(message);
    }
    if (err == ETIMEDOUT) return absl::DeadlineExceededError(message);
    return absl::UnavailableError(absl::StrCat(message, " (", operation, ")"));
  }

  void FailWithErrno(absl::string_view operation, int err) { Fail(ErrnoStatus(operation, err)); }

  void Fail(const absl::Status& status) { Finish(status); }

  // For failures found inside Open() or Write(): remembered now (it is the one reported, whatever
  // the socket says meanwhile) and reported from the loop.
  void FailLater(const absl::Status& status) {
    if (state_ == State::kClosed) {
      if (!end_.delivered()) end_.DeliverLater(status);
      return;
    }
    if (error_.ok()) error_ = status;
    if (state_ == State::kFailing) return;  // already on its way
    state_ = State::kFailing;
    UpdateInterest();
    end_.Post([this] { Finish(error_); });
  }

  // Ends the connection and tells the listener once. Runs on the loop thread, never inside a
  // caller's Open/Write/Close (those post it). The first failure wins over what came after it.
  void Finish(const absl::Status& status) {
    if (state_ == State::kClosed) return;
    if (error_.ok()) error_ = status;
    state_ = State::kClosed;
    CloseAttempts();
    CloseSocket();
    WipeQueue();
    end_.Finish(error_);  // cancels the timers, tells the listener once
  }

  static void WipeString(std::string& bytes) {
    if (!bytes.empty()) OPENSSL_cleanse(&bytes[0], bytes.size());
  }

  void WipeQueue() {
    for (std::string& bytes : queue_) WipeString(bytes);
    queue_.clear();
    front_offset_ = 0;
    buffered_ = 0;
  }

  void CloseSocket() {
    if (fd_ < 0) return;
    if (watching_) loop_.Unwatch(fd_);
    watching_ = false;
    interest_ = 0;
    close(fd_);
    fd_ = -1;
  }

  const TcpConfig config_;
  ConnectContext& context_;
  EventLoop& loop_;
  const std::string host_;
  const uint16_t port_;
  const std::string endpoint_;
  uint64_t max_buffered_;
  uint64_t high_water_;
  absl::Duration close_timeout_;

  bool opened_ = false;
  // The first failure of this connection; what OnClosed reports.
  absl::Status error_;
  State state_ = State::kIdle;
  int fd_ = -1;
  bool watching_ = false;
  uint32_t interest_ = 0;
  EventLoop::TimerId timer_ = 0;
  std::shared_ptr<Resolution> resolution_;
  // The race (RFC 8305): every address in the order tried, the errno each attempt failed with
  // (0: not tried yet, pending, or the winner), and the attempts still pending.
  struct Attempt {
    int fd;
    size_t index;  // into addresses_
  };
  absl::Duration attempt_delay_;
  std::vector<SocketAddress> addresses_;
  std::vector<int> failures_;
  std::vector<Attempt> attempts_;
  size_t next_address_ = 0;
  EventLoop::TimerId attempt_timer_ = 0;
  // The address connected to (or the only one): named in errors and the "connected" stage.
  std::string current_address_;

  std::deque<std::string> queue_;
  size_t front_offset_ = 0;
  size_t buffered_ = 0;
  bool want_writable_ = false;
  // The listener, OnClosed once, the timers above, deferred work; last, so that it is destroyed
  // first and no task or timer of this transport runs during or after its destruction.
  TransportEnd end_{loop_};
};

class ConfiguredTcp : public ConfiguredTransport {
 public:
  explicit ConfiguredTcp(TcpConfig config) : config_(std::move(config)) {}
  absl::StatusOr<std::unique_ptr<Transport>> Create(ConnectContext& context,
                                                    std::unique_ptr<Transport> lower) override {
    if (lower != nullptr) {
      return absl::InvalidArgumentError(
          "tcp: is a base transport and cannot wrap another transport");
    }
    return std::unique_ptr<Transport>(new TcpTransport(config_, context));
  }

 private:
  const TcpConfig config_;
};

class TcpFactory : public TransportFactory {
 public:
  absl::string_view name() const override { return "tcp"; }
  const google::protobuf::Descriptor* config_type() const override {
    return TcpConfig::descriptor();
  }
  Kind kind() const override { return Kind::kBase; }
  absl::StatusOr<std::unique_ptr<ConfiguredTransport>> Configure(
      const google::protobuf::Message& message) const override {
    const auto& config = static_cast<const TcpConfig&>(message);
    if (config.host().empty() != (config.port() == 0)) {
      return absl::InvalidArgumentError(config.host().empty()
                                            ? "tcp: port is set but host is not (give both)"
                                            : "tcp: host is set but port is not (give both)");
    }
    if (config.port() > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("tcp: port: ", config.port(), " is not a port (1..65535)"));
    }
    if (config.host().find('\0') != std::string::npos) {
      return absl::InvalidArgumentError("tcp: host: contains a NUL byte");
    }
    HUBLINK_RETURN_IF_ERROR(
        ValidateNonNegativeDuration(config.connect_timeout(), "tcp: connect_timeout"));
    HUBLINK_RETURN_IF_ERROR(
        ValidateNonNegativeDuration(config.close_timeout(), "tcp: close_timeout"));
    absl::Duration attempt_delay = ToDuration(config.connection_attempt_delay());
    if (attempt_delay != absl::ZeroDuration() && attempt_delay < kMinAttemptDelay) {
      return absl::InvalidArgumentError(
          absl::StrCat("tcp: connection_attempt_delay: ", absl::FormatDuration(attempt_delay),
                       " is below the minimum of ", absl::FormatDuration(kMinAttemptDelay),
                       " (RFC 8305); leave it unset for the default, ",
                       absl::FormatDuration(kDefaultAttemptDelay)));
    }
    for (int i = 0; i < config.addresses_size(); ++i) {
      const std::string& address = config.addresses(i);
      if (!ParseIpLiteral(address, 0, AF_UNSPEC)) {
        return absl::InvalidArgumentError(
            absl::StrCat("tcp: addresses[", i, "]: \"", absl::CHexEscape(address),
                         "\" is not an IPv4 or IPv6 address (names go in the endpoint or host)"));
      }
      if (!ParseIpLiteral(address, 0, AllowedFamily(config))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tcp: addresses[", i, "]: ", address, " does not fit family ",
            TcpConfig::AddressFamily_Name(config.family()), " (drop the address or the family)"));
      }
    }
    if (config.high_water_bytes() != 0 && config.max_buffered_bytes() != 0 &&
        config.high_water_bytes() > config.max_buffered_bytes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tcp: high_water_bytes (", config.high_water_bytes(),
                       ") exceeds max_buffered_bytes (", config.max_buffered_bytes(), ")"));
    }
    return std::unique_ptr<ConfiguredTransport>(new ConfiguredTcp(config));
  }
};

}  // namespace

void RegisterTcpTransport(Registry::Builder& builder) {
  builder.AddTransport(std::make_unique<TcpFactory>());
}

}  // namespace hublink
