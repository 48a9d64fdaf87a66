// The soak clients' shared half (see README.md, "Soak"): one process runs a subscriber and a
// publisher of one library through the faultproxy, publishes sequence-numbered QoS 1 then QoS 2
// messages at a bounded rate (a given count) until told to stop (a "stop" line on stdin), drains,
// and writes every event as a timestamped line (wall time, µs since the epoch) for the driver to
// align with its fault timeline:
//
//   T <us> ready|end <rss_kib> <open_fds> <cpu_s>     resources (after both connected; at the end)
//   E <us> pub|sub <connected|lost|reconnecting|gaveup> <detail...>
//   P <us> <seq> <qos>                                publish handed to the library
//   A <us> <seq> ok|fail <detail...>                  its completion (PUBACK / PUBCOMP, or failure)
//   R <us> <seq> <qos> <dup 0|1>                      received by the subscriber
//   S <us> stop                                       publishing stopped
//   D <us> drained|timeout <unacked> <missing>        end of the drain
//
// soak_hublink.cc and soak_paho.cc implement SoakConnection over each library; everything else
// (pacing, counting, logging, drain) is this file's, so both run the same code.
#ifndef HUBLINK_BENCH_SOAK_CLIENT_H_
#define HUBLINK_BENCH_SOAK_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"

namespace hublink {
namespace bench {

// What a connection reports; called on the library's threads.
class SoakListener {
 public:
  virtual ~SoakListener() = default;
  // "connected" (every CONNACK), "lost" (an established connection ended), "reconnecting" (an
  // attempt failed / the next one is scheduled), "gaveup".
  virtual void OnEvent(const char* kind, absl::string_view detail) = 0;
  virtual void OnMessage(absl::string_view payload, int qos, bool dup) = 0;
  virtual void OnCompleted(uint64_t seq, bool ok, absl::string_view detail) = 0;
};

// What both libraries are configured with (the same numbers for both).
struct SoakSettings {
  std::string transport;  // tcp, ws, tls, wss
  std::string host = "127.0.0.1";
  int port = 0;
  std::string ca_file;
  std::string client_id;
  int keep_alive_s = 4;
  absl::Duration connect_timeout = absl::Seconds(4);  // hublink handshake; Paho connectTimeout
  int retry_min_s = 1;                                // reconnect backoff
  int retry_max_s = 2;
  int max_inflight = 64;
};

// One MQTT 3.1.1 connection, clean_session = false, reconnecting by itself forever.
class SoakConnection {
 public:
  virtual ~SoakConnection() = default;
  virtual void Start() = 0;
  // Blocks until SUBACK (true) or failure / timeout.
  virtual bool Subscribe(const std::string& filter, int qos, absl::Duration timeout) = 0;
  // Asynchronous; OnCompleted(seq, ...) follows. Queued by the library while disconnected.
  virtual void Publish(const std::string& topic, absl::string_view payload, int qos,
                       uint64_t seq) = 0;
  // Orderly DISCONNECT, bounded.
  virtual void Stop() = 0;
};

class SoakFactory {
 public:
  virtual ~SoakFactory() = default;
  virtual const char* name() const = 0;
  virtual std::unique_ptr<SoakConnection> Make(const SoakSettings& settings,
                                               SoakListener* listener) = 0;
};

// Resident set (KiB, now) and open file descriptors of this process.
int64_t CurrentRssKib();
int OpenFds();

// Flags: --transport --port --ca_file --id --out --keep_alive --rate --size --count (messages;
// 0 = until "stop") --qos2_from (the first QoS 2 sequence number) --drain_seconds --max_seconds
// --connect_timeout_s --retry_min --retry_max --max_inflight. With --count, publishing ends at
// the count and the drain starts at "stop". Returns the exit code.
int RunSoakClient(const Flags& flags, SoakFactory& factory);

}  // namespace bench
}  // namespace hublink

#endif  // HUBLINK_BENCH_SOAK_CLIENT_H_
