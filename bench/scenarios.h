// The benchmark scenarios, written once over a minimal MQTT connection
// interface that each client library (hublink, Paho C) implements in its own
// binary. Both binaries therefore run the same pacing, counting and timing
// code; only the library under the interface differs.
#ifndef HUBLINK_BENCH_SCENARIOS_H_
#define HUBLINK_BENCH_SCENARIOS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"

namespace hublink {
namespace bench {

// What a connection reports. Called on the library's own threads.
class ConnectionListener {
 public:
  virtual ~ConnectionListener() = default;
  virtual void OnMessage(absl::string_view topic, absl::string_view payload) = 0;
  // A Publish() finished: QoS 0 handed to the transport, QoS 1 PUBACK.
  virtual void OnPublished(bool ok) = 0;
};

// One MQTT 3.1.1 connection to the broker, clean session.
class Connection {
 public:
  virtual ~Connection() = default;
  // Starts connecting; WaitConnected() blocks until CONNACK (true) or
  // failure/timeout (false).
  virtual void StartConnect() = 0;
  virtual bool WaitConnected(absl::Duration timeout) = 0;
  // Blocks until SUBACK.
  virtual bool Subscribe(const std::string& filter, int qos, absl::Duration timeout) = 0;
  // Asynchronous; OnPublished follows. May be called from any thread, including
  // a listener callback.
  virtual void Publish(const std::string& topic, absl::string_view payload, int qos) = 0;
  // Orderly DISCONNECT; blocks until closed (bounded).
  virtual void Disconnect() = 0;
};

struct Target {
  std::string transport;  // tcp, ws, tls, wss
  std::string host = "127.0.0.1";
  int port = 0;
  std::string ca_file;
};

class ConnectionFactory {
 public:
  virtual ~ConnectionFactory() = default;
  // `max_inflight`: the library's QoS 1 window (same number for both
  // libraries).
  virtual std::unique_ptr<Connection> Make(const Target& target, const std::string& client_id,
                                           int max_inflight, ConnectionListener* listener) = 0;
};

// Runs the scenario the flags name
// (--scenario=throughput|latency|connect|allocs) and prints one RESULT line.
// Returns the process exit code.
int RunScenario(const Flags& flags, ConnectionFactory& factory);

}  // namespace bench
}  // namespace hublink

#endif  // HUBLINK_BENCH_SCENARIOS_H_
