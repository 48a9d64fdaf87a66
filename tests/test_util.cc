#include "tests/test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace hublink {
namespace testing {

bool RunUntil(EventLoop& loop, const std::function<bool()>& done, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return done();
    loop.RunOnce(std::min(left, absl::Milliseconds(50)));
  }
  return true;
}

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  if (dir != nullptr && *dir != '\0') return dir;
  static std::string made = [] {
    char templ[] = "/tmp/hublink_test_XXXXXX";
    const char* result = mkdtemp(templ);
    return std::string(result ? result : "/tmp");
  }();
  return made;
}

absl::Status WriteFile(const std::string& path, absl::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::StatusOr<LoopbackListener> ListenOnLoopback(int backlog, bool ipv6) {
  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_storage storage{};
  socklen_t len;
  if (ipv6) {
    auto& addr = reinterpret_cast<sockaddr_in6&>(storage);
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    len = sizeof(addr);
  } else {
    auto& addr = reinterpret_cast<sockaddr_in&>(storage);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(addr);
  }
  auto* addr = reinterpret_cast<sockaddr*>(&storage);
  if (bind(fd, addr, len) != 0 || listen(fd, backlog) != 0 || getsockname(fd, addr, &len) != 0) {
    absl::Status status = absl::UnavailableError(
        absl::StrCat("listen on ", ipv6 ? "[::1]" : "127.0.0.1", ": ", std::strerror(errno)));
    close(fd);
    return status;
  }
  int port = ipv6 ? ntohs(reinterpret_cast<sockaddr_in6&>(storage).sin6_port)
                  : ntohs(reinterpret_cast<sockaddr_in&>(storage).sin_port);
  return LoopbackListener{fd, port};
}

BacklogFillers::BacklogFillers(int port) {
  for (int i = 0; i < 4; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    fds_.push_back(fd);
  }
}

BacklogFillers::~BacklogFillers() {
  for (int fd : fds_) close(fd);
}

absl::StatusOr<int> PickFreePort() {
  // Below the kernel's ephemeral range: the port is released before the peer binds it, and one
  // from that range can meanwhile become the local port of another test's outgoing connection
  // (seen as mosquitto's "Unable to create websockets listener" under parallel tests).
  int ephemeral_low = 0;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_low;
  if (ephemeral_low > 2048) {
    thread_local std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> below(std::max(1024, ephemeral_low - 10000),
                                             ephemeral_low - 1);
    for (int tries = 0; tries < 200; ++tries) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) break;
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      int port = below(rng);
      addr.sin_port = htons(static_cast<uint16_t>(port));
      bool bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
      close(fd);
      if (bound) return port;
    }
  }
  absl::StatusOr<LoopbackListener> listener = ListenOnLoopback(1);
  if (!listener.ok()) return listener.status();
  close(listener->fd);
  return listener->port;
}

bool WaitForPort(int port, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    close(fd);
    if (rc == 0) return true;
    absl::SleepFor(
        absl::Milliseconds(20));  // polling a process we do not control: nothing to wait on
  }
  return false;
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(const std::vector<std::string>& argv,
                                                              const Options& options) {
  if (argv.empty()) return absl::InvalidArgumentError("Subprocess: empty argv");
  int stdin_pipe[2] = {-1, -1};
  if (options.stdin_pipe && pipe2(stdin_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError("Subprocess: pipe failed");
  }
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    setpgid(0, 0);  // its own group, so terminal signals to the test do not reach it twice
    if (options.stdin_pipe) {
      dup2(stdin_pipe[0], STDIN_FILENO);
    } else {
      int devnull = open("/dev/null", O_RDONLY);
      dup2(devnull, STDIN_FILENO);
    }
    if (!options.output_file.empty()) {
      int out = open(options.output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (out >= 0) {
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
      }
    }
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  if (options.stdin_pipe) close(stdin_pipe[0]);
  return std::unique_ptr<Subprocess>(new Subprocess(pid, stdin_pipe[1]));
}

Subprocess::~Subprocess() { Stop(); }

void Subprocess::Signal(int signal) {
  if (!reaped_) kill(pid_, signal);
}

bool Subprocess::Running() {
  if (reaped_) return false;
  int status = 0;
  pid_t rc = waitpid(pid_, &status, WNOHANG);
  if (rc == pid_) {
    reaped_ = true;
    exit_status_ = status;
    return false;
  }
  return true;
}

int Subprocess::Stop() {
  if (stdin_fd_ >= 0) {
    close(stdin_fd_);
    stdin_fd_ = -1;
  }
  if (reaped_) return exit_status_;
  kill(pid_, SIGCONT);  // a stopped child cannot act on SIGTERM
  kill(pid_, SIGTERM);
  for (int i = 0; i < 200; ++i) {  // up to 2 s of grace
    if (!Running()) return exit_status_;
    absl::SleepFor(absl::Milliseconds(10));
  }
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  reaped_ = true;
  exit_status_ = status;
  return exit_status_;
}

absl::Status Subprocess::WriteStdin(absl::string_view bytes) {
  if (stdin_fd_ < 0) return absl::FailedPreconditionError("Subprocess: no stdin pipe");
  while (!bytes.empty()) {
    ssize_t n = write(stdin_fd_, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("write stdin: ", std::strerror(errno)));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MosquittoBroker>> MosquittoBroker::Start(const Options& options) {
  std::unique_ptr<MosquittoBroker> broker(new MosquittoBroker());
  static int instance = 0;
  std::string dir = absl::StrCat(TempDir(), "/mosquitto_", getpid(), "_", instance++);
  mkdir(dir.c_str(), 0755);
  broker->conf_file_ = dir + "/mosquitto.conf";
  broker->log_file_ = dir + "/mosquitto.log";
  auto port = [] {
    absl::StatusOr<int> p = PickFreePort();
    return p.ok() ? *p : 0;
  };
  broker->tcp_port_ = port();
  std::vector<std::string> conf = {
      // As root, mosquitto otherwise drops to the `mosquitto` user, which Bazel's sandbox forbids.
      "user root",
      "per_listener_settings false",
      absl::StrCat("allow_anonymous ", options.allow_anonymous ? "true" : "false"),
      "log_dest stderr",
      "log_type error",
      "log_type warning",
      "log_type notice",
      "persistence false",
      "max_queued_messages 100000",
      absl::StrCat("listener ", broker->tcp_port_, " 127.0.0.1"),
  };
  bool tls = !options.cert_file.empty() && !options.key_file.empty();
  auto tls_lines = [&](std::vector<std::string>& lines) {
    lines.push_back("certfile " + options.cert_file);
    lines.push_back("keyfile " + options.key_file);
    if (!options.ca_file.empty()) lines.push_back("cafile " + options.ca_file);
    if (options.require_certificate) lines.push_back("require_certificate true");
  };
  if (options.websockets) {
    broker->ws_port_ = port();
    conf.push_back(absl::StrCat("listener ", broker->ws_port_, " 127.0.0.1"));
    conf.push_back("protocol websockets");
  }
  if (tls) {
    broker->tls_port_ = port();
    conf.push_back(absl::StrCat("listener ", broker->tls_port_, " 127.0.0.1"));
    tls_lines(conf);
    if (options.websockets) {
      broker->wss_port_ = port();
      conf.push_back(absl::StrCat("listener ", broker->wss_port_, " 127.0.0.1"));
      conf.push_back("protocol websockets");
      tls_lines(conf);
    }
  }
  for (const std::string& line : options.extra_config) conf.push_back(line);
  absl::Status written =
      WriteFile(broker->conf_file_, absl::StrCat(absl::StrJoin(conf, "\n"), "\n"));
  if (!written.ok()) return written;
  absl::Status launched = broker->Launch();
  if (!launched.ok()) return launched;
  return broker;
}

absl::Status MosquittoBroker::Launch() {
  Subprocess::Options options;
  options.output_file = log_file_;
  auto process = Subprocess::Start({"mosquitto", "-c", conf_file_}, options);
  if (!process.ok()) return process.status();
  process_ = std::move(process).value();
  for (int port : {tcp_port_, ws_port_, tls_port_, wss_port_}) {
    if (port != 0 && !WaitForPort(port)) {
      absl::StatusOr<std::string> log = ReadFile(log_file_);
      return absl::UnavailableError(absl::StrCat("mosquitto did not listen on ", port, "; log:\n",
                                                 log.ok() ? *log : "(none)"));
    }
  }
  return absl::OkStatus();
}

void MosquittoBroker::Kill() {
  if (process_ != nullptr) {
    process_->Signal(SIGKILL);
    process_->Stop();
  }
}

absl::Status MosquittoBroker::Restart() {
  Kill();
  return Launch();
}

absl::StatusOr<std::string> RunCommand(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("popen: ", command));
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  int status = pclose(pipe);
  if (status != 0) {
    return absl::InternalError(
        absl::StrCat("command failed (", status, "): ", command, "\n", output));
  }
  return output;
}

absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir,
                                                      const std::vector<std::string>& host_names,
                                                      const std::string& extra_x509_args) {
  TestCertificates certs{dir + "/ca.pem", dir + "/ca.key", dir + "/server.pem",
                         dir + "/server.key"};
  std::vector<std::string> sans;
  for (const std::string& name : host_names) {
    bool is_ip = name.find_first_not_of("0123456789.") == std::string::npos ||
                 name.find(':') != std::string::npos;
    sans.push_back(absl::StrCat(is_ip ? "IP:" : "DNS:", name));
  }
  std::string cn = host_names.empty() ? "localhost" : host_names.front();
  std::string ext = dir + "/san.ext";
  absl::Status status =
      WriteFile(ext, absl::StrCat("subjectAltName=", absl::StrJoin(sans, ","), "\n"));
  if (!status.ok()) return status;
  std::string script = absl::StrCat(
      "set -e; cd '", dir, "';",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "
      "'/CN=hublink test CA' 2>/dev/null;",
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=", cn,
      "' 2>/dev/null;",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem "
      "-days 2 -extfile san.ext ",
      extra_x509_args, " 2>/dev/null");
  absl::StatusOr<std::string> ran = RunCommand(script);
  if (!ran.ok()) return ran.status();
  return certs;
}

}  // namespace testing
}  // namespace hublink
