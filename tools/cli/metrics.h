// `hublink sub --metrics_port=N`: the client's counters (Client::Stats) in the Prometheus text
// exposition format, served over plain HTTP on a loopback port for long-running use.
#ifndef HUBLINK_TOOLS_CLI_METRICS_H_
#define HUBLINK_TOOLS_CLI_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "protocols/mqtt/client.h"

namespace hublink {
namespace cli {

// Prometheus text format (version 0.0.4) of `stats`: counters end in _total, gauges do not, and
// the phases of the latest successful connect are hublink_connect_phase_seconds{phase="tls"}.
std::string RenderPrometheus(const ClientStats& stats);

// Answers every HTTP GET /metrics on its port with render(); anything else gets 404. One request
// at a time on a thread of its own (a scraper every few seconds needs no more); a client that
// sends nothing within 2 s is dropped, so one stuck scraper cannot block the next.
class MetricsServer {
 public:
  // Binds `address`:`port` (port 0: the kernel picks; see port()). kUnavailable names the address
  // when the bind fails.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& address,
                                                              uint16_t port,
                                                              std::function<std::string()> render);
  ~MetricsServer();  // stops serving and joins the thread
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  uint16_t port() const { return port_; }

 private:
  MetricsServer(int listen_fd, int stop_read, int stop_write, uint16_t port,
                std::function<std::string()> render);
  void Serve();
  void Answer(int fd);

  int listen_fd_;
  int stop_read_;   // the thread polls it next to the listening socket
  int stop_write_;  // the destructor writes a byte to stop it
  uint16_t port_;
  std::function<std::string()> render_;
  std::thread thread_;
};

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_METRICS_H_
