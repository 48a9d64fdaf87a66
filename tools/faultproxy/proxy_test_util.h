// Test helpers for faultproxy: a Proxy running on a loop thread of its own, blocking loopback
// sockets with bounded waits, and a control-port client.
#ifndef HUBLINK_TOOLS_FAULTPROXY_PROXY_TEST_UTIL_H_
#define HUBLINK_TOOLS_FAULTPROXY_PROXY_TEST_UTIL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "plugins/event_loop.h"
#include "tools/faultproxy/proxy.h"

namespace hublink {
namespace faultproxy {
namespace testing {

// Blocking sockets in these helpers give up after this long.
constexpr absl::Duration kIoTimeout = absl::Seconds(10);

class RunningProxy {
 public:
  // Listens on 127.0.0.1 (picked port), control on a picked port, forwarding to `upstream_port`.
  static absl::StatusOr<std::unique_ptr<RunningProxy>> Start(int upstream_port,
                                                             ProxyOptions options = {});
  ~RunningProxy();
  int port() const { return port_; }
  int control_port() const { return control_port_; }

 private:
  RunningProxy() = default;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<Proxy> proxy_;
  std::thread thread_;
  int port_ = 0;
  int control_port_ = 0;
};

// A blocking TCP connection to 127.0.0.1:port with kIoTimeout on reads and writes; -1 on failure
// (errno kept).
int Connect(int port);
// Accepts one connection on `listen_fd` within kIoTimeout; -1 on timeout. The result is blocking
// with kIoTimeout reads and writes.
int Accept(int listen_fd);
void SetIoTimeout(int fd, absl::Duration timeout);
bool WriteAll(int fd, const std::string& bytes);
// Reads exactly n bytes (less if the peer closes or a read fails or times out).
std::string ReadN(int fd, size_t n);
// recv() once more expecting the end: 0 for EOF, else -errno (e.g. -ECONNRESET); 1 for data.
int ReadEnd(int fd);

// Polls `done` (cheap, e.g. a status query) until true or `timeout`.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = kIoTimeout);

class ControlClient {
 public:
  explicit ControlClient(int port);
  ~ControlClient();
  bool ok() const { return fd_ >= 0; }
  // Sends `line` and returns the reply line (no newline), or "<no reply>".
  std::string Command(const std::string& line);
  // Reads one more reply line (after Send of several commands at once).
  std::string ReadLine();
  bool Send(const std::string& bytes);
  int fd() const { return fd_; }

 private:
  int fd_;
  std::string buffer_;
};

// A numeric key=value from a status reply: from the summary (segment "") or from the first
// " | "-separated segment starting with `segment` (e.g. "conn id=1").
int64_t StatusValue(const std::string& status, const std::string& segment, const std::string& key);

}  // namespace testing
}  // namespace faultproxy
}  // namespace hublink

#endif  // HUBLINK_TOOLS_FAULTPROXY_PROXY_TEST_UTIL_H_
