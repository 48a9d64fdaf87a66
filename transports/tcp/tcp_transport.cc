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

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "plugins/log.h"
#include "plugins/weak_guard.h"
#include "transports/tcp/tcp.pb.h"

namespace hublink {
namespace {

using transports::TcpConfig;

constexpr uint64_t kDefaultMaxBuffered = 64ull << 20;
constexpr uint64_t kDefaultHighWater = 1ull << 20;
constexpr absl::Duration kDefaultConnectTimeout = absl::Seconds(10);
// How long an orderly close may take (flush, then the peer's FIN) unless close_timeout says.
constexpr absl::Duration kDefaultCloseTimeout = absl::Seconds(3);

absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
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

std::string AddressToString(const sockaddr_storage& addr) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, buf, sizeof(buf));
    return buf;
  }
  inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr, buf, sizeof(buf));
  return absl::StrCat("[", buf, "]");
}

struct Address {
  sockaddr_storage storage;
  socklen_t length;
};

// `host` as an address when it is an IPv4 or IPv6 literal of an allowed family.
absl::optional<Address> ParseLiteral(const std::string& host, uint16_t port, int family) {
  Address address{};
  if (family != AF_INET6) {
    auto& v4 = reinterpret_cast<sockaddr_in&>(address.storage);
    if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
      v4.sin_family = AF_INET;
      v4.sin_port = htons(port);
      address.length = sizeof(v4);
      return address;
    }
  }
  if (family != AF_INET) {
    auto& v6 = reinterpret_cast<sockaddr_in6&>(address.storage);
    if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
      v6.sin6_family = AF_INET6;
      v6.sin6_port = htons(port);
      address.length = sizeof(v6);
      return address;
    }
  }
  return absl::nullopt;
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
  std::vector<Address> addresses;
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
  std::vector<Address> addresses;
  for (addrinfo* ai = result; rc == 0 && ai != nullptr; ai = ai->ai_next) {
    Address address{};
    std::memcpy(&address.storage, ai->ai_addr, ai->ai_addrlen);
    address.length = ai->ai_addrlen;
    addresses.push_back(address);
  }
  if (result != nullptr) freeaddrinfo(result);
  {
    std::lock_guard<std::mutex> lock(resolution->mutex);
    resolution->done = true;
    resolution->gai_error = rc;
    resolution->addresses = std::move(addresses);
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
  }

  ~TcpTransport() override {
    loop_.Cancel(timer_);
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
      if (listener != nullptr && listener != listener_) {
        loop_.Post(guard_.Wrap([listener, misuse] { listener->OnClosed(misuse); }));
      }
      FailLater(misuse);
      return;
    }
    opened_ = true;
    listener_ = listener;
    if (state_ != State::kIdle) {
      // Closed before it was opened: report that end now that there is someone to tell.
      FailLater(absl::FailedPreconditionError(
          absl::StrCat("tcp: ", endpoint_, ": Open() after Close()")));
      return;
    }
    state_ = State::kResolving;
    // The plugin's own setting wins over the pipeline's policy, which wins over the default.
    absl::Duration timeout = config_.has_connect_timeout()
                                 ? ToDuration(config_.connect_timeout())
                                 : context_.connect_timeout().value_or(kDefaultConnectTimeout);
    absl::Time deadline = std::min(loop_.Now() + timeout, context_.deadline());
    timer_ = loop_.RunAt(deadline, guard_.Wrap([this, timeout] {
      timer_ = 0;
      Fail(absl::DeadlineExceededError(absl::StrCat(
          "tcp: ", endpoint_, ": connect timed out after ", absl::FormatDuration(timeout))));
    }));
    int family = config_.family() == TcpConfig::IPV4   ? AF_INET
                 : config_.family() == TcpConfig::IPV6 ? AF_INET6
                                                       : AF_UNSPEC;
    if (absl::optional<Address> literal = ParseLiteral(host_, port_, family)) {
      // An IP literal needs no resolver thread. Connecting is still deferred: Open() never calls
      // back.
      addresses_.push_back(*literal);
      state_ = State::kConnecting;
      loop_.Post(guard_.Wrap([this] {
        if (state_ == State::kConnecting) ConnectNext();
      }));
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
      if (n > 0) bytes.remove_prefix(static_cast<size_t>(n));
      if (bytes.empty()) return absl::OkStatus();
    }
    queue_.emplace_back(bytes);
    buffered_ += bytes.size();
    if (buffered_ > high_water_) want_writable_ = true;
    UpdateInterest();
    return absl::OkStatus();
  }

  void Close() override {
    switch (state_) {
      case State::kIdle:
      case State::kResolving:
      case State::kConnecting:
        state_ = State::kClosed;
        loop_.Cancel(timer_);
        timer_ = 0;
        CloseSocket();
        loop_.Post(guard_.Wrap([this] { Deliver(absl::OkStatus()); }));
        return;
      case State::kOpen:
        state_ = State::kDraining;
        // The whole orderly close is bounded: a peer that stops reading cannot hold it open.
        timer_ = loop_.RunAfter(close_timeout_, guard_.Wrap([this] {
          timer_ = 0;
          OnCloseTimeout();
        }));
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
    std::lock_guard<std::mutex> lock(resolution_->mutex);
    if (!resolution_->done || state_ != State::kResolving) return;
    if (resolution_->gai_error != 0 || resolution_->addresses.empty()) {
      Fail(absl::UnavailableError(absl::StrCat(
          "tcp: ", endpoint_, ": cannot resolve host: ",
          resolution_->gai_error ? gai_strerror(resolution_->gai_error) : "no addresses")));
      return;
    }
    addresses_ = std::move(resolution_->addresses);
    state_ = State::kConnecting;
    ConnectNext();
  }

  // Tries addresses_[next_address_...] until one connects or all are refused.
  void ConnectNext() {
    while (next_address_ < addresses_.size()) {
      const Address& address = addresses_[next_address_++];
      current_address_ = AddressToString(address.storage);
      CloseSocket();
      fd_ = socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd_ < 0) {
        last_error_ = errno;
        continue;
      }
      int rc = connect(fd_, reinterpret_cast<const sockaddr*>(&address.storage), address.length);
      if (rc != 0 && errno != EINPROGRESS) {
        last_error_ = errno;
        continue;
      }
      absl::Status watched =
          loop_.Watch(fd_, EventLoop::kWritable, [this](uint32_t ready) { OnSocketReady(ready); });
      if (!watched.ok()) {
        Fail(watched);
        return;
      }
      watching_ = true;
      return;
    }
    FailWithErrno("connect", last_error_);
  }

  void OnConnectReady() {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == EINPROGRESS) return;
    if (err != 0) {
      last_error_ = err;
      HLOG(DEBUG) << "tcp: " << endpoint_ << " via " << current_address_ << ": " << Describe(err);
      ConnectNext();
      return;
    }
    loop_.Cancel(timer_);
    timer_ = 0;
    int one = 1;
    if (!config_.enable_nagle()) setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (config_.has_keepalive_idle()) {
      int idle = static_cast<int>(std::max<int64_t>(1, config_.keepalive_idle().seconds()));
      setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
      setsockopt(fd_, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    }
    state_ = State::kOpen;
    UpdateInterest();
    context_.ReportStage("tcp", absl::StrCat("connected ", endpoint_, " (", current_address_, ")"));
    if (listener_ != nullptr) listener_->OnOpen();
  }

  void OnSocketReady(uint32_t ready) {
    if (state_ == State::kConnecting) {
      OnConnectReady();
      return;
    }
    if (ready & EventLoop::kWritable) Flush();
    if ((ready & EventLoop::kReadable) && fd_ >= 0) ReadAvailable();
  }

  void ReadAvailable() {
    char buffer[64 * 1024];
    // Bounded so one busy connection cannot starve the others on this loop.
    for (int round = 0; round < 16 && fd_ >= 0; ++round) {
      ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
      if (n > 0) {
        if (state_ == State::kOpen || state_ == State::kDraining) {
          listener_->OnData(absl::string_view(buffer, static_cast<size_t>(n)));
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
      listener_->OnWritable();
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
      if (!delivered_) {
        loop_.Post(guard_.Wrap([this, status] { Deliver(status); }));
      }
      return;
    }
    if (error_.ok()) error_ = status;
    if (state_ == State::kFailing) return;  // already on its way
    state_ = State::kFailing;
    UpdateInterest();
    loop_.Post(guard_.Wrap([this] { Finish(error_); }));
  }

  // Ends the connection and tells the listener once. Runs on the loop thread, never inside a
  // caller's Open/Write/Close (those post it). The first failure wins over what came after it.
  void Finish(const absl::Status& status) {
    if (state_ == State::kClosed) return;
    if (error_.ok()) error_ = status;
    state_ = State::kClosed;
    loop_.Cancel(timer_);
    timer_ = 0;
    CloseSocket();
    WipeQueue();
    Deliver(error_);
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

  void Deliver(const absl::Status& status) {
    // With no listener yet (Close() before Open()), Open() reports the end later.
    if (delivered_ || listener_ == nullptr) return;
    delivered_ = true;
    listener_->OnClosed(status);
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

  TransportListener* listener_ = nullptr;
  bool opened_ = false;
  // The first failure of this connection; what OnClosed reports.
  absl::Status error_;
  State state_ = State::kIdle;
  int fd_ = -1;
  bool watching_ = false;
  uint32_t interest_ = 0;
  EventLoop::TimerId timer_ = 0;
  std::shared_ptr<Resolution> resolution_;
  std::vector<Address> addresses_;
  size_t next_address_ = 0;
  std::string current_address_;
  int last_error_ = ECONNREFUSED;

  std::deque<std::string> queue_;
  size_t front_offset_ = 0;
  size_t buffered_ = 0;
  bool want_writable_ = false;
  bool delivered_ = false;
  WeakGuard guard_;
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
    if (config.connect_timeout().seconds() < 0 || config.connect_timeout().nanos() < 0) {
      return absl::InvalidArgumentError("tcp: connect_timeout: must not be negative");
    }
    if (config.close_timeout().seconds() < 0 || config.close_timeout().nanos() < 0) {
      return absl::InvalidArgumentError("tcp: close_timeout: must not be negative");
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
