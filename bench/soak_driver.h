// The soak driver (README.md, "Soak"): one real mosquitto (TCP, WS, TLS and WSS listeners,
// persistence on), one in-process faultproxy per listener, and one client process per library and
// transport (soak_hublink, soak_paho), all running at once through the same seeded fault
// timeline: blackholes and read stalls longer than the keep-alive, resets, 1-byte segmentation,
// latency spikes, two broker restarts on the same ports and a broker SIGSTOP/SIGCONT. Then the
// faults stop, the clients drain (bounded), and their event files are aligned with the timeline.
#ifndef HUBLINK_BENCH_SOAK_DRIVER_H_
#define HUBLINK_BENCH_SOAK_DRIVER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hublink {
namespace bench {

struct SoakOptions {
  absl::Duration duration = absl::Minutes(10);  // the storm; at least one round of every fault
  std::vector<std::string> transports = {"tcp", "ws", "tls", "wss"};
  std::vector<std::string> libraries = {"hublink", "paho"};
  int keep_alive_s = 4;  // ping timeout: hublink's default, half of it
  double rate = 100;     // messages per second per publisher
  int size = 64;         // payload bytes
  uint64_t seed = 1;
  std::string hublink_bin;
  std::string paho_bin;
  absl::Duration drain = absl::Seconds(30);  // bound on the final drain
  bool verbose = false;                      // progress on stderr
};

struct SoakFault {
  std::string name;     // "blackhole#2"
  std::string kind;     // blackhole, stall, reset, segment, latency, restart, sigstop
  bool silent = false;  // the link goes quiet without closing: a client must detect it
  absl::Time start, end;
};

struct SoakClientResult {
  std::string library, transport;
  bool ran = false;      // the client got ready and its event file was read
  bool drained = false;  // every publish completed and every acknowledged message arrived
  int64_t published[3] = {0, 0, 0};  // [qos]: index 1 and 2 used; [0] = total
  int64_t acked[3] = {0, 0, 0};
  int64_t failed[3] = {0, 0, 0};    // completed with an error
  int64_t received[3] = {0, 0, 0};  // distinct sequence numbers
  int64_t duplicates[3] = {0, 0, 0};
  int64_t lost[3] = {0, 0, 0};      // acknowledged, never received
  int64_t unacked = 0;              // published, never completed
  std::vector<double> detection_s;  // silent faults x {pub, sub} connected at the fault's start
  std::vector<double> recovery_s;   // fault end -> next CONNACK, for each role the fault took down
  // The same, by fault kind ("blackhole", "restart", ...).
  std::map<std::string, std::vector<double>> detection_by_kind, recovery_by_kind;
  int lost_connections = 0;           // "lost" events over the run
  std::vector<std::string> problems;  // lost messages, missed detections, never back, hangs
  std::vector<std::string> notes;     // informational (late recovery, duplicates by fault)
  int64_t rss_kib[2] = {0, 0}, fds[2] = {0, 0};  // ready, end
  double cpu_s = 0;
};

struct SoakReport {
  std::vector<SoakFault> timeline;
  std::vector<SoakClientResult> clients;
  absl::Duration keep_alive, ping_timeout;
  absl::Duration elapsed;
  std::string text;  // the tables, Markdown
};

// Runs the whole soak. Errors are setup failures (broker, proxy, binaries); what the clients did
// is in the report.
absl::StatusOr<SoakReport> RunSoak(const SoakOptions& options);

// hublink's verdict: every client ran and drained, nothing lost, back after every fault, every
// silent fault detected within keep-alive + ping timeout. Empty when it passed.
std::vector<std::string> HublinkFailures(const SoakReport& report);

}  // namespace bench
}  // namespace hublink

#endif  // HUBLINK_BENCH_SOAK_DRIVER_H_
