#include "tools/cli/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace hublink {
namespace cli {
namespace {

int Connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

// One HTTP exchange: sends `request`, reads until the server closes.
std::string Exchange(uint16_t port, const std::string& request) {
  int fd = Connect(port);
  EXPECT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) response.append(buffer, n);
  close(fd);
  return response;
}

ClientStats SampleStats() {
  ClientStats stats;
  stats.attempts = 5;
  stats.connects = 2;
  stats.reconnects = 1;
  stats.failures = 3;
  stats.failures_by_phase = {{"tcp", 2}, {"tls", 1}};
  stats.losses = 1;
  stats.bytes_in = 1234;
  stats.bytes_out = 5678;
  stats.messages_in = 7;
  stats.messages_out = 9;
  stats.queued = 4;
  stats.inflight = 2;
  stats.connected = true;
  stats.last_connect = {{"tcp", absl::Microseconds(250), "", true},
                        {"tls", absl::Microseconds(1500), "resumed", true},
                        {"my\"layer", absl::Milliseconds(2), "", true}};
  return stats;
}

TEST(MetricsTest, RendersEveryCounterInPrometheusTextFormat) {
  std::string text = RenderPrometheus(SampleStats());
  for (absl::string_view line : {
           "# TYPE hublink_connect_attempts_total counter\nhublink_connect_attempts_total 5\n",
           "hublink_connects_total 2\n",
           "hublink_reconnects_total 1\n",
           "hublink_connect_failures_total{phase=\"tcp\"} 2\n",
           "hublink_connect_failures_total{phase=\"tls\"} 1\n",
           "hublink_connection_losses_total 1\n",
           "hublink_bytes_received_total 1234\n",
           "hublink_bytes_sent_total 5678\n",
           "hublink_messages_received_total 7\n",
           "hublink_messages_sent_total 9\n",
           "# TYPE hublink_queued_messages gauge\nhublink_queued_messages 4\n",
           "hublink_inflight_messages 2\n",
           "hublink_connected 1\n",
           "hublink_connect_phase_seconds{phase=\"tcp\"} 0.000250\n",
           "hublink_connect_phase_seconds{phase=\"tls\"} 0.001500\n",
           // A custom phase name cannot break the format.
           "hublink_connect_phase_seconds{phase=\"my\\\"layer\"} 0.002000\n",
       }) {
    EXPECT_TRUE(absl::StrContains(text, line)) << line << " missing in\n" << text;
  }
  // Every sample line belongs to a metric declared before it.
  std::string declared;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty()) continue;
    if (absl::StartsWith(line, "# TYPE ")) {
      declared = std::string(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    if (absl::StartsWith(line, "#")) continue;
    EXPECT_TRUE(absl::StartsWith(line, declared)) << line << " after # TYPE " << declared;
  }
}

TEST(MetricsTest, ServesGetMetricsAndNothingElse) {
  int renders = 0;
  auto server = MetricsServer::Start("127.0.0.1", 0, [&renders] {
    ++renders;
    return RenderPrometheus(SampleStats());
  });
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_NE((*server)->port(), 0);
  std::string ok = Exchange((*server)->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(ok, "HTTP/1.1 200 OK\r\n")) << ok;
  EXPECT_TRUE(absl::StrContains(ok, "Content-Type: text/plain; version=0.0.4")) << ok;
  EXPECT_TRUE(absl::StrContains(ok, "\r\n\r\n# HELP hublink_connect_attempts_total")) << ok;
  std::string body = ok.substr(ok.find("\r\n\r\n") + 4);
  EXPECT_TRUE(absl::StrContains(ok, absl::StrCat("Content-Length: ", body.size(), "\r\n"))) << ok;
  std::string other = Exchange((*server)->port(), "GET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(other, "HTTP/1.1 404 Not Found\r\n")) << other;
  EXPECT_EQ(renders, 1);
}

TEST(MetricsTest, AScraperThatSendsNothingDoesNotBlockTheNext) {
  auto server = MetricsServer::Start("127.0.0.1", 0, [] { return std::string("up 1\n"); });
  ASSERT_TRUE(server.ok()) << server.status();
  int silent = Connect((*server)->port());
  std::string ok = Exchange((*server)->port(), "GET /metrics HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(absl::EndsWith(ok, "\r\n\r\nup 1\n")) << ok;
  close(silent);
}

TEST(MetricsTest, APortInUseIsAClearError) {
  auto first = MetricsServer::Start("127.0.0.1", 0, [] { return std::string(); });
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = MetricsServer::Start("127.0.0.1", (*first)->port(), [] { return std::string(); });
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(second.status().message(),
                                absl::StrCat("cannot listen on 127.0.0.1:", (*first)->port())))
      << second.status();
  EXPECT_FALSE(MetricsServer::Start("localhost", 0, [] { return std::string(); }).ok());
}

}  // namespace
}  // namespace cli
}  // namespace hublink
