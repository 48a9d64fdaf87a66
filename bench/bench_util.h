// What both benchmark clients share: flags, per-process measurements (CPU, peak
// RSS, allocations, the broker's CPU), percentiles, and the one-line result
// format the driver parses.
#ifndef HUBLINK_BENCH_BENCH_UTIL_H_
#define HUBLINK_BENCH_BENCH_UTIL_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace hublink {
namespace bench {

// --key=value flags; a bare --key means "true". Unknown keys are kept (the
// caller checks).
class Flags {
 public:
  Flags(int argc, char** argv);
  std::string Get(absl::string_view key, absl::string_view fallback = "") const;
  int64_t GetInt(absl::string_view key, int64_t fallback) const;
  double GetDouble(absl::string_view key, double fallback) const;
  bool Has(absl::string_view key) const;

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

// User + system CPU of this process (every thread) so far.
absl::Duration ProcessCpu();
// Peak resident set of this process, KiB.
int64_t PeakRssKib();
// CPU time of another process (0 when unreadable): the sum of its threads' time on a CPU from
// /proc/<pid>/task/*/schedstat, in nanoseconds, else utime + stime from /proc/<pid>/stat. The
// latter counts clock ticks of 10 ms, a quarter of a microsecond per message over a 40,000-message
// run: as large as the differences the broker µs/msg columns compare. Threads that have ended no
// longer count in the former; the broker (mosquitto) has one thread.
absl::Duration ProcessCpuOf(pid_t pid);

// Nearest-rank percentile (0..100) of `values`, which it sorts. 0 for an empty
// vector.
double Percentile(std::vector<double>& values, double percentile);

// "RESULT key=value key=value ..." on stdout, flushed: the driver reads the
// last such line.
class Result {
 public:
  Result& Add(absl::string_view key, double value);
  Result& Add(absl::string_view key, int64_t value);
  Result& Add(absl::string_view key, absl::string_view value);
  void Print() const;

 private:
  std::string line_ = "RESULT";
};

// Parses a RESULT line back into key -> value.
std::map<std::string, std::string> ParseResult(absl::string_view output);

}  // namespace bench
}  // namespace hublink

#endif  // HUBLINK_BENCH_BENCH_UTIL_H_
