#include "tools/faultproxy/proxy_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace hublink {
namespace faultproxy {
namespace testing {

absl::StatusOr<std::unique_ptr<RunningProxy>> RunningProxy::Start(int upstream_port,
                                                                  ProxyOptions options) {
  std::unique_ptr<RunningProxy> running(new RunningProxy());
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  if (!loop.ok()) return loop.status();
  running->loop_ = std::move(loop).value();
  options.upstream.port = upstream_port;
  options.enable_control = true;
  absl::StatusOr<std::unique_ptr<Proxy>> proxy = Proxy::Create(running->loop_.get(), options);
  if (!proxy.ok()) return proxy.status();
  running->proxy_ = std::move(proxy).value();
  running->port_ = running->proxy_->listen_port();
  running->control_port_ = running->proxy_->control_port();
  EventLoop* loop_ptr = running->loop_.get();
  running->thread_ = std::thread([loop_ptr] { loop_ptr->Run(); });
  return running;
}

RunningProxy::~RunningProxy() {
  loop_->Stop();
  thread_.join();
  proxy_.reset();
}

void SetIoTimeout(int fd, absl::Duration timeout) {
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  SetIoTimeout(fd, kIoTimeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

int Accept(int listen_fd) {
  pollfd p{listen_fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(kIoTimeout))) != 1) return -1;
  int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) SetIoTimeout(fd, kIoTimeout);
  return fd;
}

bool WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

std::string ReadN(int fd, size_t n) {
  std::string out;
  char buffer[65536];
  while (out.size() < n) {
    ssize_t got = recv(fd, buffer, std::min(sizeof(buffer), n - out.size()), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    out.append(buffer, static_cast<size_t>(got));
  }
  return out;
}

int ReadEnd(int fd) {
  char c;
  for (;;) {
    ssize_t n = recv(fd, &c, 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    return n == 0 ? 0 : 1;
  }
}

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return done();
    absl::SleepFor(absl::Milliseconds(2));  // polling another thread's state: nothing to wait on
  }
  return true;
}

ControlClient::ControlClient(int port) : fd_(Connect(port)) {}

ControlClient::~ControlClient() {
  if (fd_ >= 0) close(fd_);
}

bool ControlClient::Send(const std::string& bytes) { return fd_ >= 0 && WriteAll(fd_, bytes); }

std::string ControlClient::ReadLine() {
  char buffer[4096];
  for (;;) {
    size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    ssize_t n = fd_ < 0 ? -1 : recv(fd_, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "<no reply>";
    buffer_.append(buffer, static_cast<size_t>(n));
  }
}

std::string ControlClient::Command(const std::string& line) {
  if (!Send(line + "\n")) return "<no reply>";
  return ReadLine();
}

int64_t StatusValue(const std::string& status, const std::string& segment, const std::string& key) {
  std::vector<std::string> segments = absl::StrSplit(status, " | ");
  for (const std::string& s : segments) {
    bool match = segment.empty() ? absl::StartsWith(s, "ok ")
                                 : (s == segment || absl::StartsWith(s, segment + " "));
    if (!match) continue;
    for (absl::string_view word : absl::StrSplit(s, ' ')) {
      if (absl::StartsWith(word, key + "=")) {
        int64_t value;
        if (absl::SimpleAtoi(word.substr(key.size() + 1), &value)) return value;
      }
    }
    return -1;
  }
  return -1;
}

}  // namespace testing
}  // namespace faultproxy
}  // namespace hublink
