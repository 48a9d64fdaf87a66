#include "tools/cli/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace hublink {
namespace cli {
namespace {

void Metric(std::string& out, absl::string_view name, absl::string_view type,
            absl::string_view help) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void Sample(std::string& out, absl::string_view name, uint64_t value) {
  absl::StrAppend(&out, name, " ", value, "\n");
}

// Label values may hold a custom plugin's phase name: escape what the format reserves.
std::string LabelValue(absl::string_view value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\' || c == '"') escaped += '\\';
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    escaped += c;
  }
  return escaped;
}

bool WriteAll(int fd, absl::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

std::string RenderPrometheus(const ClientStats& stats) {
  std::string out;
  // One sample each: name, type, help, value.
  struct Single {
    const char* name;
    const char* type;
    const char* help;
    uint64_t value;
  };
  const Single singles[] = {
      {"hublink_connect_attempts_total", "counter", "Connection attempts started.", stats.attempts},
      {"hublink_connects_total", "counter", "Attempts that reached CONNACK.", stats.connects},
      {"hublink_reconnects_total", "counter",
       "Attempts that reached CONNACK after a lost connection.", stats.reconnects},
      {"hublink_connection_losses_total", "counter",
       "Established connections that ended without a disconnect request.", stats.losses},
      {"hublink_bytes_received_total", "counter", "Bytes read from the network.", stats.bytes_in},
      {"hublink_bytes_sent_total", "counter", "Bytes written to the network.", stats.bytes_out},
      {"hublink_messages_received_total", "counter", "PUBLISH packets received.",
       stats.messages_in},
      {"hublink_messages_sent_total", "counter", "PUBLISH packets sent, re-sends included.",
       stats.messages_out},
      {"hublink_queued_messages", "gauge",
       "Publishes waiting for a connection or an in-flight slot.", stats.queued},
      {"hublink_inflight_messages", "gauge", "QoS 1/2 publishes not yet acknowledged.",
       stats.inflight},
      {"hublink_connected", "gauge", "1 while the client has a CONNACK'ed connection.",
       stats.connected ? 1u : 0u},
  };
  // The failures, labelled by phase, come right after the three connect counters.
  constexpr size_t kFailuresAfter = 3;
  for (size_t i = 0; i < sizeof(singles) / sizeof(singles[0]); ++i) {
    if (i == kFailuresAfter) {
      Metric(out, "hublink_connect_failures_total", "counter",
             "Attempts that failed before CONNACK, by the phase they failed in.");
      for (const auto& failures : stats.failures_by_phase) {
        absl::StrAppend(&out, "hublink_connect_failures_total{phase=\"", LabelValue(failures.first),
                        "\"} ", failures.second, "\n");
      }
    }
    Metric(out, singles[i].name, singles[i].type, singles[i].help);
    Sample(out, singles[i].name, singles[i].value);
  }
  Metric(out, "hublink_connect_phase_seconds", "gauge",
         "How long each phase of the latest successful connect took.");
  for (const ConnectPhase& phase : stats.last_connect) {
    absl::StrAppend(&out, "hublink_connect_phase_seconds{phase=\"", LabelValue(phase.name), "\"} ",
                    absl::StrFormat("%.6f", absl::ToDoubleSeconds(phase.duration)), "\n");
  }
  return out;
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, uint16_t port, std::function<std::string()> render) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics_port: \"", address, "\" is not an IPv4 address"));
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("metrics: socket: ", strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 16) != 0) {
    int error = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("--metrics_port: cannot listen on ", address, ":",
                                               port, ": ", strerror(error)));
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int stop[2];
  if (pipe2(stop, O_CLOEXEC) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("metrics: pipe: ", strerror(errno)));
  }
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(fd, stop[0], stop[1], ntohs(addr.sin_port), std::move(render)));
}

MetricsServer::MetricsServer(int listen_fd, int stop_read, int stop_write, uint16_t port,
                             std::function<std::string()> render)
    : listen_fd_(listen_fd),
      stop_read_(stop_read),
      stop_write_(stop_write),
      port_(port),
      render_(std::move(render)) {
  thread_ = std::thread([this] { Serve(); });
}

MetricsServer::~MetricsServer() {
  char byte = 0;
  while (write(stop_write_, &byte, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
  close(listen_fd_);
  close(stop_read_);
  close(stop_write_);
}

void MetricsServer::Serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_read_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents & POLLIN) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      Answer(fd);
      close(fd);
    }
  }
}

void MetricsServer::Answer(int fd) {
  // The request head, up to its blank line; 8 KiB and 2 s at most.
  std::string request;
  absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (!absl::StrContains(request, "\r\n\r\n") && !absl::StrContains(request, "\n\n") &&
         request.size() < 8192) {
    int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) return;
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_read_, POLLIN, 0}};
    int ready = poll(fds, 2, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || fds[1].revents != 0) return;
    char buffer[2048];
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return;
    request.append(buffer, static_cast<size_t>(n));
  }
  std::string status = "404 Not Found";
  std::string body = "only GET /metrics is served here\n";
  if (absl::StartsWith(request, "GET /metrics ") || absl::StartsWith(request, "GET /metrics?")) {
    status = "200 OK";
    body = render_();
  }
  WriteAll(fd, absl::StrCat("HTTP/1.1 ", status,
                            "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                            "Content-Length: ",
                            body.size(), "\r\nConnection: close\r\n\r\n", body));
}

}  // namespace cli
}  // namespace hublink
