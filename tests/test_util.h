// Shared test utilities: driving an EventLoop until a condition holds, recording what a transport
// reports, and starting real peers (any program, or mosquitto) on loopback. Processes are ended by
// their own PID only.
#ifndef HUBLINK_TESTS_TEST_UTIL_H_
#define HUBLINK_TESTS_TEST_UTIL_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "plugins/event_loop.h"
#include "plugins/transport.h"

namespace hublink {
namespace testing {

// Runs `loop` until `done()` is true or `timeout` passes. Returns done().
bool RunUntil(EventLoop& loop, const std::function<bool()>& done,
              absl::Duration timeout = absl::Seconds(10));

// Polls `done` every 10 ms until it is true (returns true) or `timeout` passes (returns false): for
// progress made elsewhere (another thread, another process) that there is nothing to block on.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout);

// A TransportListener that remembers everything it was told.
class RecordingListener : public TransportListener {
 public:
  void OnOpen() override { ++opened; }
  void OnData(absl::string_view bytes) override { data.append(bytes.data(), bytes.size()); }
  void OnClosed(const absl::Status& status) override {
    ++closed_count;
    closed = status;
  }
  void OnWritable() override { ++writable; }

  int opened = 0;
  std::string data;
  absl::optional<absl::Status> closed;
  int closed_count = 0;
  int writable = 0;
};

// A directory for this test's files: $TEST_TMPDIR, else a fresh one under /tmp.
std::string TempDir();
absl::Status WriteFile(const std::string& path, absl::string_view contents);
absl::StatusOr<std::string> ReadFile(const std::string& path);

// A listening TCP socket on 127.0.0.1 (or ::1) with a port the kernel chose. The caller owns `fd`.
struct LoopbackListener {
  int fd = -1;
  int port = 0;
};
absl::StatusOr<LoopbackListener> ListenOnLoopback(int backlog = 16, bool ipv6 = false);

// Connections that fill a loopback listener's accept queue (a listener with a small backlog that
// never accepts), so that it drops further SYNs: a connect to it then neither succeeds nor fails.
// Closed on destruction.
class BacklogFillers {
 public:
  explicit BacklogFillers(int port);
  ~BacklogFillers();
  BacklogFillers(const BacklogFillers&) = delete;
  BacklogFillers& operator=(const BacklogFillers&) = delete;

 private:
  std::vector<int> fds_;
};

// A loopback port that was free a moment ago (bound, then closed), picked below the kernel's
// ephemeral port range so that no outgoing connection takes it before the peer binds it. For peers
// that cannot be told to bind port 0 themselves.
absl::StatusOr<int> PickFreePort();
// Polls until something accepts TCP connections on 127.0.0.1:port.
bool WaitForPort(int port, absl::Duration timeout = absl::Seconds(10));

// A child process. The destructor ends it (SIGTERM, then SIGKILL after a grace period) and reaps
// it.
class Subprocess {
 public:
  struct Options {
    // Keep the child's stdin as an open pipe (openssl s_server quits when stdin closes).
    bool stdin_pipe = false;
    // Redirect stdout/stderr into this file (appended); empty = inherit.
    std::string output_file;
  };
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                           const Options& options);
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv) {
    return Start(argv, Options());
  }
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // Sends `signal` to the child (SIGSTOP / SIGCONT for freeze tests).
  void Signal(int signal);
  // Terminates and reaps; returns the exit status as waitpid reports it. Idempotent.
  int Stop();
  // Whether the child is still running (not reaped).
  bool Running();
  // Writes to the child's stdin pipe (Options::stdin_pipe).
  absl::Status WriteStdin(absl::string_view bytes);

 private:
  Subprocess(pid_t pid, int stdin_fd) : pid_(pid), stdin_fd_(stdin_fd) {}
  pid_t pid_;
  int stdin_fd_;
  bool reaped_ = false;
  int exit_status_ = 0;
};

// A real mosquitto on 127.0.0.1, configured in a fresh directory. Ports are picked free.
class MosquittoBroker {
 public:
  struct Options {
    bool websockets = false;  // adds a `protocol websockets` listener
    // TLS listeners (MQTT/TLS and, with websockets, WSS) when cert_file/key_file are set.
    std::string cert_file;
    std::string key_file;
    std::string ca_file;  // for require_certificate
    bool require_certificate = false;
    // Plain lines appended to mosquitto.conf (e.g. "password_file /x", "allow_anonymous false").
    std::vector<std::string> extra_config;
    bool allow_anonymous = true;
  };
  static absl::StatusOr<std::unique_ptr<MosquittoBroker>> Start(const Options& options);
  static absl::StatusOr<std::unique_ptr<MosquittoBroker>> Start() { return Start(Options()); }

  int tcp_port() const { return tcp_port_; }
  int ws_port() const { return ws_port_; }    // 0 unless websockets
  int tls_port() const { return tls_port_; }  // 0 unless TLS
  int wss_port() const { return wss_port_; }  // 0 unless TLS and websockets
  Subprocess& process() { return *process_; }
  const std::string& log_file() const { return log_file_; }

  // Kills the broker and starts it again on the same ports (for reconnect tests).
  absl::Status Restart();
  void Kill();

 private:
  MosquittoBroker() = default;
  absl::Status Launch();
  std::string conf_file_;
  std::string log_file_;
  int tcp_port_ = 0, ws_port_ = 0, tls_port_ = 0, wss_port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

// Makes a throwaway CA and a server certificate for `host_names` (DNS and IP SANs) with the openssl
// CLI, into `dir`. Returns the paths: ca.pem, server.pem, server.key.
struct TestCertificates {
  std::string ca_file;
  std::string ca_key_file;
  std::string cert_file;
  std::string key_file;
};
absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir,
                                                      const std::vector<std::string>& host_names,
                                                      const std::string& extra_x509_args = "");

// Runs a shell command (sh -c), capturing stdout; non-zero exit is an error carrying its output.
absl::StatusOr<std::string> RunCommand(const std::string& command);

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_TESTS_TEST_UTIL_H_
