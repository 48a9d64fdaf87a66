#include "tools/faultproxy/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "plugins/log.h"

namespace hublink {
namespace faultproxy {
namespace {

constexpr int kClient = 0;    // the accepted socket; flow kUp reads it
constexpr int kUpstream = 1;  // the socket to the upstream; flow kDown reads it
constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();
constexpr size_t kMaxControlLine = 4096;
constexpr size_t kMaxControlOutput = 1 << 20;
constexpr int kMaxWritesPerTurn = 1024;
constexpr size_t kMaxConnsInStatus = 100;

void SetLingerZero(int fd) {
  linger l{};
  l.l_onoff = 1;
  l.l_linger = 0;
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

absl::StatusOr<uint32_t> ResolveIpv4(const std::string& host) {
  std::string literal = host == "localhost" || host.empty() ? "127.0.0.1" : host;
  in_addr addr{};
  if (inet_pton(AF_INET, literal.c_str(), &addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", host, "\" is not an IPv4 address (or localhost)"));
  }
  return addr.s_addr;
}

sockaddr_in SockAddr(uint32_t ip, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = ip;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

uint64_t Mix(uint64_t x) {  // splitmix64 finalizer: distinct seeds per connection and direction
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string Seconds(absl::Duration d) {
  return absl::StrCat(absl::ToDoubleMilliseconds(d) / 1000.0, "s");
}

}  // namespace

std::string Address::ToString() const { return absl::StrCat(host, ":", port); }

absl::StatusOr<Address> ParseAddress(absl::string_view text) {
  Address address;
  absl::string_view port = text;
  size_t colon = text.rfind(':');
  if (colon != absl::string_view::npos) {
    if (colon > 0) address.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  if (!absl::SimpleAtoi(port, &address.port) || address.port < 0 || address.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not HOST:PORT"));
  }
  absl::StatusOr<uint32_t> ip = ResolveIpv4(address.host);
  if (!ip.ok()) return ip.status();
  return address;
}

struct Proxy::Flow {
  explicit Flow(uint64_t seed) : shaper(seed) {}
  Shaper shaper;
  uint64_t in = 0;       // bytes read from the source and accepted
  uint64_t out = 0;      // bytes written to the destination
  uint64_t writes = 0;   // write calls that carried them
  uint64_t dropped = 0;  // bytes read and discarded
  bool src_eof = false;
  bool dst_shut = false;  // FIN passed on
  bool want_write = false;
  bool closing = false;  // close_after reached: close once drained
  uint64_t close_limit = kNoLimit;
  CloseHow close_how = CloseHow::kFin;
  EventLoop::TimerId timer = 0;
  absl::Time timer_at = absl::InfiniteFuture();
};

struct Proxy::Conn {
  uint64_t id = 0;
  int fd[2] = {-1, -1};
  bool watched[2] = {false, false};
  uint32_t interest[2] = {0, 0};
  bool connecting = true;
  std::unique_ptr<Flow> flow[2];
  std::map<uint64_t, std::array<uint64_t, 2>> baselines;  // close_after fault id -> `in` then
  absl::Time opened;
};

struct Proxy::ControlClient {
  int fd = -1;
  std::string in;
  std::string out;
  bool closing = false;
  uint32_t interest = 0;
};

Proxy::Proxy(EventLoop* loop, ProxyOptions options) : loop_(loop), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Proxy>> Proxy::Create(EventLoop* loop, ProxyOptions options) {
  absl::StatusOr<uint32_t> upstream = ResolveIpv4(options.upstream.host);
  if (!upstream.ok()) return upstream.status();
  if (options.upstream.port <= 0) return absl::InvalidArgumentError("upstream port is required");
  if (options.max_buffer == 0) return absl::InvalidArgumentError("max_buffer must be positive");
  std::unique_ptr<Proxy> proxy(new Proxy(loop, std::move(options)));
  proxy->upstream_ip_ = *upstream;
  absl::Status bound =
      proxy->Bind(proxy->options_.listen, &proxy->listen_fd_, &proxy->listen_port_);
  if (!bound.ok()) return bound;
  absl::Status watched = proxy->WatchListener();
  if (!watched.ok()) return watched;
  if (proxy->options_.enable_control) {
    bound = proxy->Bind(proxy->options_.control, &proxy->control_fd_, &proxy->control_port_);
    if (!bound.ok()) return bound;
    Proxy* self = proxy.get();
    absl::Status status = loop->Watch(proxy->control_fd_, EventLoop::kReadable,
                                      [self](uint32_t) { self->OnControlAccept(); });
    if (!status.ok()) return status;
  }
  if (!proxy->options_.schedule.empty()) proxy->ScheduleStart();
  HLOG(INFO) << "faultproxy: listening on " << proxy->options_.listen.host << ":"
             << proxy->listen_port_ << " -> " << proxy->options_.upstream.ToString()
             << (proxy->options_.enable_control
                     ? absl::StrCat(", control on ", proxy->options_.control.host, ":",
                                    proxy->control_port_)
                     : std::string());
  return proxy;
}

Proxy::~Proxy() {
  ScheduleStop();
  std::vector<uint64_t> ids;
  for (const auto& [id, conn] : conns_) ids.push_back(id);
  for (uint64_t id : ids) Destroy(id, false);
  for (auto& [id, fault] : faults_) {
    if (fault.timer != 0) loop_->Cancel(fault.timer);
  }
  faults_.clear();
  std::vector<int> controls;
  for (const auto& [fd, client] : controls_) controls.push_back(fd);
  for (int fd : controls) CloseControl(fd);
  if (rebind_timer_ != 0) loop_->Cancel(rebind_timer_);
  if (listen_fd_ >= 0) {
    if (listen_watched_) loop_->Unwatch(listen_fd_);
    close(listen_fd_);
  }
  if (control_fd_ >= 0) {
    loop_->Unwatch(control_fd_);
    close(control_fd_);
  }
}

absl::Status Proxy::Bind(const Address& address, int* fd_out, int* port_out) {
  absl::StatusOr<uint32_t> ip = ResolveIpv4(address.host);
  if (!ip.ok()) return ip.status();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = SockAddr(*ip, address.port);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    absl::Status status = absl::UnavailableError(
        absl::StrCat("listen on ", address.ToString(), ": ", std::strerror(errno)));
    close(fd);
    return status;
  }
  *fd_out = fd;
  *port_out = ntohs(addr.sin_port);
  return absl::OkStatus();
}

absl::Status Proxy::WatchListener() {
  absl::Status status =
      loop_->Watch(listen_fd_, EventLoop::kReadable, [this](uint32_t) { OnAccept(); });
  listen_watched_ = status.ok();
  return status;
}

// ---- Connections -------------------------------------------------------------------------------

void Proxy::OnAccept() {
  const ActiveFault* refuse = nullptr;
  for (const auto& [id, fault] : faults_) {
    if (fault.fault.kind == FaultKind::kRefuse) refuse = &fault;
  }
  for (int i = 0; i < 64 && listen_fd_ >= 0; ++i) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        HLOG(WARNING) << "faultproxy: accept: " << std::strerror(errno);
      }
      return;
    }
    ++accepted_;
    if (refuse != nullptr) {
      ++refused_;
      RefuseOne(fd, refuse->fault.mode);
      continue;
    }
    if (static_cast<int>(conns_.size()) >= options_.max_connections) {
      ++refused_;
      HLOG(WARNING) << "faultproxy: " << conns_.size() << " connections already; resetting one";
      RefuseOne(fd, RefuseMode::kRst);
      continue;
    }
    StartConn(fd);
  }
}

void Proxy::RefuseOne(int fd, RefuseMode mode) {
  if (mode != RefuseMode::kFin) SetLingerZero(fd);
  close(fd);
}

void Proxy::StartConn(int client_fd) {
  for (const auto& [id, fault] : faults_) {
    if (fault.fault.kind == FaultKind::kReset && fault.fault.conn == 0) {
      ++resets_;  // a timed reset is active: this one never reaches the upstream
      RefuseOne(client_fd, RefuseMode::kRst);
      return;
    }
  }
  int upstream_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (upstream_fd < 0) {
    HLOG(WARNING) << "faultproxy: socket: " << std::strerror(errno);
    RefuseOne(client_fd, RefuseMode::kRst);
    return;
  }
  SetNoDelay(client_fd);
  SetNoDelay(upstream_fd);
  sockaddr_in addr = SockAddr(upstream_ip_, options_.upstream.port);
  int rc = connect(upstream_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc != 0 && errno != EINPROGRESS) {
    HLOG(WARNING) << "faultproxy: connect " << options_.upstream.ToString() << ": "
                  << std::strerror(errno);
    close(upstream_fd);
    RefuseOne(client_fd, RefuseMode::kRst);
    return;
  }
  auto conn = std::make_unique<Conn>();
  Conn& c = *conn;
  c.id = next_conn_id_++;
  c.fd[kClient] = client_fd;
  c.fd[kUpstream] = upstream_fd;
  c.connecting = rc != 0;
  c.opened = loop_->Now();
  for (int d = 0; d < 2; ++d) {
    c.flow[d] = std::make_unique<Flow>(Mix(options_.seed ^ Mix(c.id * 2 + d)));
  }
  for (const auto& [id, fault] : faults_) {
    if (fault.fault.kind == FaultKind::kCloseAfter && fault.fault.conn == 0) {
      c.baselines[id] = {0, 0};
    }
  }
  uint64_t id = c.id;
  conns_[id] = std::move(conn);
  HLOG(DEBUG) << "faultproxy: conn " << id << " opened";
  Reconfigure(c);
}

bool Proxy::Matches(const Fault& f, uint64_t conn) const {
  return f.kind != FaultKind::kRefuse && (f.conn == 0 || f.conn == conn);
}

bool Proxy::Reconfigure(Conn& c) {
  DirectionConfig config[2];
  uint64_t limit[2] = {kNoLimit, kNoLimit};
  CloseHow how[2] = {CloseHow::kFin, CloseHow::kFin};
  bool reset = false;
  for (const auto& [fid, active] : faults_) {
    const Fault& f = active.fault;
    if (!Matches(f, c.id)) continue;
    if (f.kind == FaultKind::kReset) reset = true;
    if (f.kind == FaultKind::kCloseAfter) {
      auto base = c.baselines.find(fid);
      if (base == c.baselines.end()) {
        base = c.baselines.emplace(fid, std::array<uint64_t, 2>{c.flow[kUp]->in, c.flow[kDown]->in})
                   .first;
      }
      for (int d = 0; d < 2; ++d) {
        if (!f.dir[d]) continue;
        uint64_t l = base->second[d] + f.bytes;
        if (l < limit[d]) limit[d] = l, how[d] = f.how;
      }
    }
    for (int d = 0; d < 2; ++d) config[d].Add(f, d);
  }
  if (reset) {
    ++resets_;
    HLOG(INFO) << "faultproxy: conn " << c.id << " reset";
    Destroy(c.id, /*rst=*/true);
    return false;
  }
  for (int d = 0; d < 2; ++d) {
    c.flow[d]->shaper.set_config(config[d]);
    c.flow[d]->close_limit = limit[d];
    c.flow[d]->close_how = how[d];
  }
  if (!Pump(c, kUp) || !Pump(c, kDown)) return false;
  return Settle(c);
}

bool Proxy::CanRead(const Conn& c, int side) const {
  const Flow& f = *c.flow[side];
  if (side == kUpstream && c.connecting) return false;
  return !f.src_eof && !f.closing && !f.shaper.config().stall &&
         f.shaper.queued() < options_.max_buffer;
}

void Proxy::OnConnEvent(uint64_t id, int side, uint32_t ready) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& c = *it->second;
  if (side == kUpstream && c.connecting) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c.fd[kUpstream], SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      HLOG(WARNING) << "faultproxy: conn " << id << ": connect " << options_.upstream.ToString()
                    << ": " << std::strerror(err);
      Destroy(id, /*rst=*/true);
      return;
    }
    c.connecting = false;
    if (!Pump(c, kUp)) return;
    Settle(c);
    return;
  }
  if (ready & EventLoop::kWritable) {
    c.flow[1 - side]->want_write = false;
    if (!Pump(c, 1 - side)) return;
  }
  if ((ready & EventLoop::kReadable) && CanRead(c, side)) {
    if (!ReadFrom(c, side)) return;
  }
  Settle(c);
}

bool Proxy::ReadFrom(Conn& c, int side) {
  Flow& f = *c.flow[side];
  size_t room = options_.max_buffer - std::min(options_.max_buffer, f.shaper.queued());
  if (room == 0) return true;
  char buffer[65536];
  ssize_t n = recv(c.fd[side], buffer, std::min(room, sizeof(buffer)), 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
    HLOG(DEBUG) << "faultproxy: conn " << c.id << ": read "
                << (side == kClient ? "client" : "upstream") << ": " << std::strerror(errno)
                << "; resetting the other side";
    Destroy(c.id, /*rst=*/true);
    return false;
  }
  if (n == 0) {
    f.src_eof = true;
    return Pump(c, side);
  }
  uint64_t take = static_cast<uint64_t>(n);
  if (f.close_limit != kNoLimit)
    take = std::min(take, f.close_limit - std::min(f.close_limit, f.in));
  uint64_t discard = static_cast<uint64_t>(n) - take;
  f.in += take;
  if (f.shaper.config().blackhole) {
    discard += take;
  } else {
    f.shaper.Push(absl::string_view(buffer, take), loop_->Now());
  }
  f.dropped += discard;
  dropped_[side] += discard;
  return Pump(c, side);
}

bool Proxy::Pump(Conn& c, int dir) {
  Flow& f = *c.flow[dir];
  if (c.connecting || f.want_write) return true;
  int fd = c.fd[1 - dir];
  absl::Time now = loop_->Now();
  absl::Time next = absl::InfiniteFuture();
  for (int writes = 0;; ++writes) {
    if (writes == kMaxWritesPerTurn) {  // let other connections run; carry on next turn
      next = now;
      break;
    }
    size_t n = f.shaper.Writable(now, &next);
    if (n == 0) break;
    ssize_t w = send(fd, f.shaper.Front().data(), n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        f.want_write = true;
        next = absl::InfiniteFuture();
        break;
      }
      HLOG(DEBUG) << "faultproxy: conn " << c.id << ": write " << DirName(dir) << ": "
                  << std::strerror(errno) << "; resetting";
      Destroy(c.id, /*rst=*/true);
      return false;
    }
    f.shaper.Consume(static_cast<size_t>(w), now);
    f.out += static_cast<uint64_t>(w);
    ++f.writes;
    bytes_[dir] += static_cast<uint64_t>(w);
  }
  if (next != f.timer_at) {
    if (f.timer != 0) loop_->Cancel(f.timer);
    f.timer = 0;
    f.timer_at = next;
    if (next != absl::InfiniteFuture()) {
      uint64_t id = c.id;
      f.timer = loop_->RunAt(next, [this, id, dir] { OnTimer(id, dir); });
    }
  }
  return true;
}

void Proxy::OnTimer(uint64_t id, int dir) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& c = *it->second;
  c.flow[dir]->timer = 0;
  c.flow[dir]->timer_at = absl::InfiniteFuture();
  if (Pump(c, dir)) Settle(c);
}

bool Proxy::Settle(Conn& c) {
  for (int d = 0; d < 2; ++d) {
    Flow& f = *c.flow[d];
    if (!f.closing && f.in >= f.close_limit) f.closing = true;
    if (f.closing && f.shaper.empty()) {
      ++closed_after_;
      HLOG(INFO) << "faultproxy: conn " << c.id << " closed after " << f.in << " bytes "
                 << DirName(d) << (f.close_how == CloseHow::kRst ? " (rst)" : " (fin)");
      Destroy(c.id, f.close_how == CloseHow::kRst);
      return false;
    }
    if (f.src_eof && f.shaper.empty() && !f.dst_shut && !c.connecting &&
        !f.shaper.config().blackhole) {
      shutdown(c.fd[1 - d], SHUT_WR);
      f.dst_shut = true;
    }
  }
  if (c.flow[kUp]->dst_shut && c.flow[kDown]->dst_shut) {
    Destroy(c.id, /*rst=*/false);
    return false;
  }
  UpdateInterest(c);
  return true;
}

void Proxy::UpdateInterest(Conn& c) {
  for (int s = 0; s < 2; ++s) {
    uint32_t want = 0;
    if (CanRead(c, s)) want |= EventLoop::kReadable;
    if (c.flow[1 - s]->want_write) want |= EventLoop::kWritable;
    if (s == kUpstream && c.connecting) want = EventLoop::kWritable;
    // A side with nothing to wait for is not watched at all: epoll would still report its
    // hang-ups, which a stalled reader must not spin on.
    if (want == 0) {
      if (c.watched[s]) loop_->Unwatch(c.fd[s]);
      c.watched[s] = false;
    } else if (!c.watched[s]) {
      uint64_t id = c.id;
      absl::Status status =
          loop_->Watch(c.fd[s], want, [this, id, s](uint32_t ready) { OnConnEvent(id, s, ready); });
      if (!status.ok()) HLOG(ERROR) << "faultproxy: " << status;
      c.watched[s] = status.ok();
    } else if (want != c.interest[s]) {
      absl::Status status = loop_->SetInterest(c.fd[s], want);
      if (!status.ok()) HLOG(ERROR) << "faultproxy: " << status;
    }
    c.interest[s] = want;
  }
}

void Proxy::Destroy(uint64_t id, bool rst) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  std::unique_ptr<Conn> conn = std::move(it->second);
  conns_.erase(it);
  for (int s = 0; s < 2; ++s) {
    if (conn->watched[s]) loop_->Unwatch(conn->fd[s]);
    if (rst) SetLingerZero(conn->fd[s]);
    close(conn->fd[s]);
    if (conn->flow[s]->timer != 0) loop_->Cancel(conn->flow[s]->timer);
  }
  HLOG(DEBUG) << "faultproxy: conn " << id << " closed" << (rst ? " (rst)" : "") << ", up "
              << conn->flow[kUp]->out << " down " << conn->flow[kDown]->out;
  // Faults aimed at this connection alone die with it.
  std::vector<uint64_t> orphans;
  for (const auto& [fid, fault] : faults_) {
    if (fault.fault.conn == id) orphans.push_back(fid);
  }
  for (uint64_t fid : orphans) RemoveFault(fid);
}

// ---- Faults
// --------------------------------------------------------------------------------------

uint64_t Proxy::AddFault(const Fault& fault, bool scheduled, std::string* detail) {
  uint64_t id = next_fault_id_++;
  absl::Time now = loop_->Now();
  HLOG(INFO) << "faultproxy: fault " << id << (scheduled ? " (scheduled)" : "")
             << " on: " << fault.ToString();
  std::vector<uint64_t> targets;
  for (const auto& [cid, conn] : conns_) {
    if (Matches(fault, cid)) targets.push_back(cid);
  }
  if (fault.kind == FaultKind::kReset && fault.duration == absl::ZeroDuration()) {
    for (uint64_t cid : targets) {
      ++resets_;
      Destroy(cid, /*rst=*/true);
    }
    if (detail != nullptr) *detail = absl::StrCat(" reset=", targets.size());
    return id;
  }
  ActiveFault& active = faults_[id];
  active.id = id;
  active.fault = fault;
  active.scheduled = scheduled;
  active.expires =
      fault.duration > absl::ZeroDuration() ? now + fault.duration : absl::InfiniteFuture();
  if (active.expires != absl::InfiniteFuture()) {
    active.timer = loop_->RunAt(active.expires, [this, id] {
      auto it = faults_.find(id);
      if (it == faults_.end()) return;
      it->second.timer = 0;
      RemoveFault(id);
    });
  }
  if (fault.kind == FaultKind::kRefuse) {
    ApplyRefuse();
    return id;
  }
  for (uint64_t cid : targets) {
    auto it = conns_.find(cid);
    if (it == conns_.end()) continue;  // closed by an earlier one's reconfiguration
    Conn& c = *it->second;
    if (fault.kind == FaultKind::kCloseAfter)
      c.baselines[id] = {c.flow[kUp]->in, c.flow[kDown]->in};
    Reconfigure(c);
  }
  if (detail != nullptr && fault.kind == FaultKind::kReset) {
    *detail = absl::StrCat(" reset=", targets.size());
  }
  return id;
}

bool Proxy::RemoveFault(uint64_t id) {
  auto it = faults_.find(id);
  if (it == faults_.end()) return false;
  if (it->second.timer != 0) loop_->Cancel(it->second.timer);
  Fault fault = it->second.fault;
  faults_.erase(it);
  HLOG(INFO) << "faultproxy: fault " << id << " off: " << fault.ToString();
  if (fault.kind == FaultKind::kRefuse) {
    ApplyRefuse();
    return true;
  }
  std::vector<uint64_t> targets;
  for (const auto& [cid, conn] : conns_) {
    if (Matches(fault, cid)) targets.push_back(cid);
  }
  for (uint64_t cid : targets) {
    auto c = conns_.find(cid);
    if (c == conns_.end()) continue;
    c->second->baselines.erase(id);
    Reconfigure(*c->second);
  }
  return true;
}

void Proxy::ApplyRefuse() {
  const ActiveFault* refuse = nullptr;
  for (const auto& [id, fault] : faults_) {
    if (fault.fault.kind == FaultKind::kRefuse) refuse = &fault;
  }
  RefuseMode mode = refuse != nullptr ? refuse->fault.mode : RefuseMode::kRst;
  bool want_socket = refuse == nullptr || mode != RefuseMode::kUnbind;
  bool want_watch =
      refuse == nullptr || (mode != RefuseMode::kPause && mode != RefuseMode::kUnbind);
  if (!want_socket && listen_fd_ >= 0) {
    if (listen_watched_) loop_->Unwatch(listen_fd_);
    listen_watched_ = false;
    close(listen_fd_);
    listen_fd_ = -1;
  }
  if (want_socket && listen_fd_ < 0) {
    if (rebind_timer_ != 0) loop_->Cancel(rebind_timer_);
    rebind_timer_ = 0;
    Address again = options_.listen;
    again.port = listen_port_;
    int port = 0;
    absl::Status status = Bind(again, &listen_fd_, &port);
    if (!status.ok()) {
      HLOG(WARNING) << "faultproxy: rebinding: " << status << "; retrying in 100ms";
      listen_fd_ = -1;
      rebind_timer_ = loop_->RunAfter(absl::Milliseconds(100), [this] {
        rebind_timer_ = 0;
        ApplyRefuse();
      });
      return;
    }
  }
  if (listen_fd_ < 0) return;
  if (want_watch && !listen_watched_) {
    absl::Status status = WatchListener();
    if (!status.ok()) HLOG(ERROR) << "faultproxy: " << status;
  } else if (!want_watch && listen_watched_) {
    loop_->Unwatch(listen_fd_);
    listen_watched_ = false;
  }
}

// ---- Schedule
// ------------------------------------------------------------------------------------

void Proxy::ScheduleStart() {
  ScheduleStop();
  if (options_.schedule.empty()) return;
  schedule_ = std::make_unique<ScheduleClock>(options_.schedule, options_.seed);
  schedule_on_ = true;
  schedule_t0_ = loop_->Now();
  ScheduleArm();
}

void Proxy::ScheduleStop() {
  schedule_on_ = false;
  if (schedule_timer_ != 0) loop_->Cancel(schedule_timer_);
  schedule_timer_ = 0;
  std::vector<uint64_t> ids;
  for (const auto& [id, fault] : faults_) {
    if (fault.scheduled) ids.push_back(id);
  }
  for (uint64_t id : ids) RemoveFault(id);
}

void Proxy::ScheduleArm() {
  if (!schedule_on_ || schedule_ == nullptr || schedule_->empty()) return;
  ScheduleClock::Event event = schedule_->Next();
  schedule_timer_ = loop_->RunAt(schedule_t0_ + event.at, [this, event] {
    schedule_timer_ = 0;
    ScheduleFire(event);
    ScheduleArm();
  });
}

void Proxy::ScheduleFire(const ScheduleClock::Event& event) {
  const ScheduleEntry& entry = schedule_->entries()[event.entry];
  Fault fault = entry.fault;
  fault.duration = entry.window;
  HLOG(INFO) << "faultproxy: schedule entry " << event.entry + 1 << " round " << event.round
             << " at +" << Seconds(event.at);
  AddFault(fault, /*scheduled=*/true, nullptr);
}

std::string Proxy::DescribeSchedule(const std::vector<ScheduleEntry>& schedule, uint64_t seed,
                                    absl::Duration horizon) {
  std::string out;
  if (schedule.empty()) return out;
  ScheduleClock clock(schedule, seed);
  for (int i = 0; i < 100000; ++i) {
    ScheduleClock::Event event = clock.Next();
    if (event.at > horizon) break;
    const ScheduleEntry& entry = schedule[event.entry];
    absl::StrAppend(&out, "+", Seconds(event.at), " entry=", event.entry + 1,
                    " round=", event.round, " ", entry.fault.ToString(), "\n");
  }
  return out;
}

// ---- Control
// -------------------------------------------------------------------------------------

void Proxy::OnControlAccept() {
  for (int i = 0; i < 16; ++i) {
    int fd = accept4(control_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (static_cast<int>(controls_.size()) >= options_.max_control_clients) {
      const char kBusy[] = "error too many control clients\n";
      (void)!send(fd, kBusy, sizeof(kBusy) - 1, MSG_NOSIGNAL);
      close(fd);
      continue;
    }
    auto client = std::make_unique<ControlClient>();
    client->fd = fd;
    client->interest = EventLoop::kReadable;
    absl::Status status = loop_->Watch(fd, EventLoop::kReadable,
                                       [this, fd](uint32_t ready) { OnControlEvent(fd, ready); });
    if (!status.ok()) {
      close(fd);
      continue;
    }
    controls_[fd] = std::move(client);
  }
}

void Proxy::CloseControl(int fd) {
  auto it = controls_.find(fd);
  if (it == controls_.end()) return;
  loop_->Unwatch(fd);
  close(fd);
  controls_.erase(it);
}

void Proxy::OnControlEvent(int fd, uint32_t ready) {
  auto it = controls_.find(fd);
  if (it == controls_.end()) return;
  ControlClient& client = *it->second;
  if ((ready & EventLoop::kReadable) && !client.closing) {
    char buffer[4096];
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      CloseControl(fd);
      return;
    }
    if (n > 0) client.in.append(buffer, static_cast<size_t>(n));
    size_t newline;
    while (!client.closing && (newline = client.in.find('\n')) != std::string::npos) {
      std::string line = client.in.substr(0, newline);
      client.in.erase(0, newline + 1);
      absl::string_view command = absl::StripAsciiWhitespace(line);
      if (command.empty() || command[0] == '#') continue;
      absl::StrAppend(&client.out, Execute(command), "\n");
      if (command == "quit") client.closing = true;
    }
    if (client.in.size() > kMaxControlLine) {
      absl::StrAppend(&client.out, "error line longer than ", kMaxControlLine, " bytes\n");
      client.in.clear();
      client.closing = true;
    }
  }
  while (!client.out.empty()) {
    ssize_t n = send(fd, client.out.data(), client.out.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      CloseControl(fd);
      return;
    }
    client.out.erase(0, static_cast<size_t>(n));
  }
  if (client.out.size() > kMaxControlOutput || (client.closing && client.out.empty())) {
    CloseControl(fd);
    return;
  }
  uint32_t want =
      (client.closing ? 0 : EventLoop::kReadable) | (client.out.empty() ? 0 : EventLoop::kWritable);
  if (want != client.interest) {
    client.interest = want;
    (void)loop_->SetInterest(fd, want);
  }
}

std::string Proxy::Status() const {
  absl::Time now = loop_->Now();
  std::string out =
      absl::StrCat("ok conns=", conns_.size(), " accepted=", accepted_, " refused=", refused_,
                   " resets=", resets_, " closed_after=", closed_after_, " up=", bytes_[kUp],
                   " down=", bytes_[kDown], " dropped_up=", dropped_[kUp],
                   " dropped_down=", dropped_[kDown], " listening=",
                   listen_watched_   ? "yes"
                   : listen_fd_ >= 0 ? "paused"
                                     : "unbound",
                   " schedule=",
                   options_.schedule.empty() ? "none"
                   : schedule_on_            ? "on"
                                             : "off",
                   " faults=", faults_.size());
  for (const auto& [id, active] : faults_) {
    absl::StrAppend(&out, " | fault id=", id, " ", active.fault.ToString());
    if (active.expires != absl::InfiniteFuture()) {
      absl::StrAppend(&out,
                      " left=", Seconds(std::max(absl::ZeroDuration(), active.expires - now)));
    }
    if (active.scheduled) absl::StrAppend(&out, " scheduled");
  }
  size_t listed = 0;
  for (const auto& [id, conn] : conns_) {
    if (listed++ == kMaxConnsInStatus) {
      absl::StrAppend(&out, " | ", conns_.size() - kMaxConnsInStatus, " more conns");
      break;
    }
    const Flow& up = *conn->flow[kUp];
    const Flow& down = *conn->flow[kDown];
    absl::StrAppend(&out, " | conn id=", id, " up=", up.out, " down=", down.out,
                    " queued_up=", up.shaper.queued(), " queued_down=", down.shaper.queued(),
                    " dropped_up=", up.dropped, " dropped_down=", down.dropped,
                    " writes_up=", up.writes, " writes_down=", down.writes,
                    " state=", conn->connecting ? "connecting" : "open",
                    " age=", Seconds(now - conn->opened));
  }
  return out;
}

std::string Proxy::Execute(absl::string_view line) {
  std::vector<std::string> words = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (words.empty()) return "error empty command";
  const std::string command = words[0];
  if (command == "status") return Status();
  if (command == "help") {
    return "ok commands: status | clear | remove ID | [apply] FAULT [dir=up|down|both] [conn=ID] "
           "[for=DUR] [params] | schedule on|off | quit; faults: latency delay= jitter= | "
           "bandwidth rate= | segment size= gap= | blackhole | stall | close_after bytes= "
           "how=fin|rst"
           " | reset | refuse mode=rst|fin|pause|unbind";
  }
  if (command == "quit") return "ok bye";
  if (command == "clear") {
    std::vector<uint64_t> ids;
    for (const auto& [id, fault] : faults_) ids.push_back(id);
    for (uint64_t id : ids) RemoveFault(id);
    return absl::StrCat("ok cleared=", ids.size());
  }
  if (command == "remove") {
    uint64_t id;
    if (words.size() != 2 || !absl::SimpleAtoi(words[1], &id)) return "error usage: remove ID";
    if (!RemoveFault(id)) return absl::StrCat("error no active fault ", words[1]);
    return absl::StrCat("ok removed=", id);
  }
  if (command == "schedule") {
    if (words.size() != 2 || (words[1] != "on" && words[1] != "off")) {
      return "error usage: schedule on|off";
    }
    if (options_.schedule.empty()) return "error no --schedule was given";
    if (words[1] == "on") {
      ScheduleStart();
    } else {
      ScheduleStop();
    }
    return absl::StrCat("ok schedule=", words[1]);
  }
  if (command == "apply") words.erase(words.begin());
  absl::StatusOr<Fault> fault = ParseFault(words, /*allow_conn=*/true);
  if (!fault.ok()) {
    if (command != "apply" && command.find('=') == std::string::npos &&
        absl::StrContains(fault.status().message(), "expected key=value or a fault kind")) {
      return absl::StrCat("error unknown command \"", command, "\" (try help)");
    }
    return absl::StrCat("error ", fault.status().message());
  }
  if (fault->conn != 0 && conns_.count(fault->conn) == 0) {
    return absl::StrCat("error no connection ", fault->conn);
  }
  std::string detail;
  uint64_t id = AddFault(*fault, /*scheduled=*/false, &detail);
  return absl::StrCat("ok id=", id, detail);
}

}  // namespace faultproxy
}  // namespace hublink
