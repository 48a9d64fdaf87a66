// The pure half of faultproxy: fault specs, the schedule and the per-direction shaper. Nothing here
// touches a socket or reads a clock; time is always passed in, so all of it is testable with
// injected time and a seed.
#ifndef HUBLINK_TOOLS_FAULTPROXY_FAULT_H_
#define HUBLINK_TOOLS_FAULTPROXY_FAULT_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace hublink {
namespace faultproxy {

// Directions: "up" is client -> upstream, "down" is upstream -> client.
enum Dir : int { kUp = 0, kDown = 1 };
const char* DirName(int dir);

enum class FaultKind {
  kLatency,     // delay=DUR [jitter=DUR]
  kBandwidth,   // rate=BYTES_PER_SECOND
  kSegment,     // size=N [gap=DUR]
  kBlackhole,   // bytes read and discarded, connection kept open
  kStall,       // the source is not read at all (its sender meets backpressure)
  kCloseAfter,  // bytes=N [how=fin|rst]
  kReset,       // RST (SO_LINGER 0) both sides of matching connections
  kRefuse,      // [mode=rst|fin|pause|unbind] new connections
};
const char* FaultKindName(FaultKind kind);

enum class CloseHow { kFin, kRst };
enum class RefuseMode { kRst, kFin, kPause, kUnbind };

struct Fault {
  FaultKind kind = FaultKind::kBlackhole;
  bool dir[2] = {true, true};  // dir=up|down|both
  uint64_t conn = 0;           // conn=ID; 0 = all current and future connections
  // for=DUR: how long it stays active. Zero = until removed (control) / required (schedule).
  absl::Duration duration = absl::ZeroDuration();
  absl::Duration delay = absl::ZeroDuration();  // latency
  absl::Duration jitter = absl::ZeroDuration();
  uint64_t rate = 0;  // bandwidth, bytes per second
  size_t size = 0;    // segment
  absl::Duration gap = absl::ZeroDuration();
  uint64_t bytes = 0;  // close_after
  CloseHow how = CloseHow::kFin;
  RefuseMode mode = RefuseMode::kRst;

  // Canonical words, parseable by ParseFault: "fault=latency delay=200ms jitter=50ms dir=down".
  std::string ToString() const;
};

// Parses key=value words (order free). A bare kind name is short for fault=KIND. Keys: fault, dir,
// conn (when allow_conn), for, and the kind's own parameters. Errors name the offending word.
absl::StatusOr<Fault> ParseFault(const std::vector<std::string>& words, bool allow_conn);

// Durations as absl writes them ("250ms", "1.5s", "2m"); a bare number is rejected.
absl::StatusOr<absl::Duration> ParseDurationWord(absl::string_view key, absl::string_view value);
// A non-negative integer with an optional k (x1000) or m (x1000000) suffix.
absl::StatusOr<uint64_t> ParseCount(absl::string_view key, absl::string_view value);

// What the faults active on one direction of one connection add up to. Latencies add up; the
// smallest rate and segment size win; any blackhole or stall wins.
struct DirectionConfig {
  absl::Duration delay = absl::ZeroDuration();
  absl::Duration jitter = absl::ZeroDuration();
  uint64_t rate = 0;   // 0 = unlimited
  size_t segment = 0;  // 0 = whole writes
  absl::Duration gap = absl::ZeroDuration();
  bool blackhole = false;
  bool stall = false;

  // Folds `fault` in (for `dir`); kinds that are not shaping (close_after, reset, refuse) are
  // no-ops.
  void Add(const Fault& fault, int dir);
  bool operator==(const DirectionConfig& other) const;
};

// --schedule: entries separated by ';', each "every=DUR,for=DUR[,start=DUR][,splay=DUR],FAULT..."
// where FAULT is the same key=value words as ParseFault (comma-separated here).
struct ScheduleEntry {
  absl::Duration every;
  absl::Duration window;  // for=
  absl::Duration start;   // first activation; default = every
  absl::Duration splay;   // each activation is delayed by a seeded uniform [0, splay]
  Fault fault;
};
absl::StatusOr<std::vector<ScheduleEntry>> ParseSchedule(absl::string_view text);

// Activation times of a schedule, as offsets from its start, in time order (ties: entry order).
// Activation k of entry e is at start + k*every + U[0, splay] from an RNG of its own (seed, e), so
// the same seed gives the same timeline whatever else happens.
class ScheduleClock {
 public:
  struct Event {
    absl::Duration at;
    size_t entry;
    uint64_t round;
  };
  ScheduleClock(std::vector<ScheduleEntry> entries, uint64_t seed);
  bool empty() const { return entries_.empty(); }
  const std::vector<ScheduleEntry>& entries() const { return entries_; }
  // The next activation; the clock then moves past it. Undefined when empty().
  Event Next();

 private:
  absl::Duration At(size_t entry);
  std::vector<ScheduleEntry> entries_;
  std::vector<std::mt19937_64> rngs_;
  std::vector<uint64_t> rounds_;
  std::vector<absl::Duration> next_;
};

// A uniform integer in [0, bound] from raw mt19937_64 output (identical on every platform, unlike
// std::uniform_int_distribution).
uint64_t UniformUpTo(std::mt19937_64& rng, uint64_t bound);

// One direction's queue and pacing: bytes pushed at a time get a due time (latency + jitter, never
// earlier than bytes before them) and leave in writes no larger than the segment size, no faster
// than the rate. Pure: the caller passes `now` and does the writing.
class Shaper {
 public:
  explicit Shaper(uint64_t seed) : rng_(seed) {}

  void set_config(const DirectionConfig& config) { config_ = config; }
  const DirectionConfig& config() const { return config_; }

  void Push(absl::string_view bytes, absl::Time now);
  // How many bytes of Front() may be written at `now`. When 0 with bytes queued, `*next` (if given)
  // is when to ask again.
  size_t Writable(absl::Time now, absl::Time* next = nullptr) const;
  // The queued bytes at the front (at least Writable() of them).
  absl::string_view Front() const;
  // `n` bytes (<= Writable(now)) were written at `now`.
  void Consume(size_t n, absl::Time now);

  size_t queued() const { return queued_; }
  bool empty() const { return queued_ == 0; }
  // Drops everything queued (a reset or close discards in-flight bytes).
  void Clear();

  // Largest write under a rate: 10 ms worth, at least 1 byte.
  static size_t Quantum(uint64_t rate);

 private:
  struct Chunk {
    std::string bytes;
    size_t offset;
    absl::Time due;
  };
  DirectionConfig config_;
  std::mt19937_64 rng_;
  std::deque<Chunk> chunks_;
  size_t queued_ = 0;
  absl::Time last_due_ = absl::InfinitePast();
  absl::Time paced_until_ = absl::InfinitePast();
};

}  // namespace faultproxy
}  // namespace hublink

#endif  // HUBLINK_TOOLS_FAULTPROXY_FAULT_H_
