// `hublink fleet`: many MQTT clients in one process, for load-testing a hub (and for measuring what
// one connection costs). N clients share K event loops (one thread each, clients spread
// round-robin); each has its own identity, from templates (`--client_id='dev-{i}'`) or from a
// directory of Tencent device_info.json files (each signs its own credentials). They connect at
// --connect_rate per second (seeded jitter), then publish every --interval for --duration, and a
// summary reports connect time percentiles, connect rate, messages per second, publish-to-ack
// latency, RSS per connection, CPU per message and failures by phase (`--json`: as JSON, with the
// latency histograms, so that `hublink fleet merge FILE...` can combine the summaries of several
// processes started with --shard=K/N).
//
//   hublink fleet --host=127.0.0.1 --port=1883 --clients=1000 --threads=2 --connect_rate=500
//       --interval=1s --qos=1 --duration=30s --json
//   hublink fleet merge shard0.json shard1.json [--json]
#ifndef HUBLINK_TOOLS_CLI_FLEET_H_
#define HUBLINK_TOOLS_CLI_FLEET_H_

#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "plugins/registry.h"

namespace hublink {
namespace cli {

// Latency histogram with logarithmic buckets: bucket 0 holds values below 1 µs, bucket b >= 1 holds
// [2^((b-1)/8), 2^(b/8)) µs (8 buckets per doubling, so a percentile is within ~9% of the truth).
// Histograms of several processes add bucket by bucket, which percentiles cannot.
class LogHistogram {
 public:
  void Add(double micros);
  void Merge(const LogHistogram& other);
  uint64_t count() const { return count_; }
  // The value (µs) at quantile q in [0, 1]: the geometric middle of the bucket holding it; 0 when
  // empty.
  double Percentile(double q) const;
  const std::map<int, uint64_t>& buckets() const { return buckets_; }
  void AddBucket(int bucket, uint64_t count);

 private:
  std::map<int, uint64_t> buckets_;
  uint64_t count_ = 0;
};

// What one fleet process (or a merge of several) measured. Written and read as JSON.
struct FleetSummary {
  std::string shard = "0/1";  // "K/N", or "merged from N" after a merge
  int shards = 1;             // how many process summaries this one covers
  // This process's identities are first, first + step, ... (count of them).
  int64_t identity_first = 0;
  int64_t identity_step = 1;
  int64_t clients = 0;
  int64_t connected = 0;      // reached CONNACK at least once
  int64_t failed = 0;         // never reached CONNACK
  double connect_wall_s = 0;  // first Connect() to the last client's first CONNACK
  double duration_s = 0;      // the publishing phase, after every client connected
  int64_t messages_sent = 0;  // all of them: clients publish from their first CONNACK on
  // Of those, the ones sent during the publishing phase (`duration_s`): messages per second and
  // CPU per message are counted over that phase only, when the whole fleet is up.
  int64_t hold_messages = 0;
  double cpu_hold_s = 0;
  int64_t messages_acked = 0;  // completions without error (QoS 0: handed to the transport)
  int64_t publish_errors = 0;
  int64_t messages_received = 0;
  int64_t rss_before_kib = 0;  // VmRSS before any client existed
  int64_t rss_after_kib = 0;   // VmRSS at the end of the publishing phase
  // VmRSS once every client was created, before any connected: what the Client objects and their
  // resolved pipelines cost apart from the connections.
  int64_t rss_created_kib = 0;
  double cpu_connect_s = 0;  // user + system CPU until every client connected
  double cpu_total_s = 0;    // ... until the end of the publishing phase
  int64_t attempts = 0;
  int64_t failures = 0;  // attempts that ended before CONNACK
  int64_t losses = 0;
  std::map<std::string, int64_t> failures_by_phase;
  LogHistogram connect_us;    // Connect() to the first CONNACK (queueing and retries included)
  LogHistogram handshake_us;  // the phases of the attempt that reached CONNACK, summed
  LogHistogram ack_us;        // Publish() to PUBACK (QoS >= 1)
  // A lost connection (kLost) to its CONNACK again (kReconnected). After a broker restart all
  // clients lose theirs at once, so this is how the reconnect backoff's jitter spread them out.
  LogHistogram reconnect_us;
  std::string first_error;  // the first connect failure seen, to say why
};

std::string FleetSummaryToJson(const FleetSummary& summary);
// `source` names the input in errors.
absl::StatusOr<FleetSummary> FleetSummaryFromJson(const std::string& json,
                                                  const std::string& source);
// Counts add; percentiles come from the added histograms; RSS and CPU per connection or message
// from the added totals; rates over the longest of the (concurrent) phases.
FleetSummary MergeFleetSummaries(const std::vector<FleetSummary>& summaries);
// The human-readable summary.
void PrintFleetSummary(const FleetSummary& summary, std::ostream& out);

// `args` excludes "fleet". `register_plugins` (may be empty) adds plugins next to the built-in
// ones, as for the other commands. Exit code 0 when every client connected and every publish was
// acknowledged, 1 otherwise, 2 for bad usage.
int RunFleet(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
             const std::function<void(Registry::Builder&)>& register_plugins);

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_FLEET_H_
