#include "bench/bench_util.h"

#include <unistd.h>

#include <cmath>

#include "gtest/gtest.h"

namespace hublink {
namespace bench {
namespace {

// Burns this process's CPU until getrusage (microseconds) shows `amount` more.
void BurnCpu(absl::Duration amount) {
  const absl::Duration until = ProcessCpu() + amount;
  volatile uint64_t sink = 0;
  while (ProcessCpu() < until) {
    for (int i = 0; i < 10000; ++i) sink = sink + static_cast<uint64_t>(i) * 2654435761u;
  }
}

TEST(ProcessCpuOfTest, ResolvesLessThanAClockTick) {
  const absl::Duration before = ProcessCpuOf(getpid());
  BurnCpu(absl::Milliseconds(3));
  const absl::Duration used = ProcessCpuOf(getpid()) - before;
  EXPECT_GE(used, absl::Milliseconds(2)) << used;
  EXPECT_LT(used, absl::Seconds(5)) << used;
  // /proc/<pid>/stat would only ever give whole 10 ms ticks: 0 or 10 ms here, never 3.
  const int64_t ns = absl::ToInt64Nanoseconds(used);
  EXPECT_NE(ns % (10 * 1000 * 1000), 0) << used << " is a whole number of clock ticks";
}

TEST(ProcessCpuOfTest, AgreesWithGetrusageForThisProcess) {
  BurnCpu(absl::Milliseconds(20));
  const double rusage_ms = absl::ToDoubleMilliseconds(ProcessCpu());
  const double proc_ms = absl::ToDoubleMilliseconds(ProcessCpuOf(getpid()));
  // Two readings of the same counters a few microseconds apart, one rounded to microseconds.
  EXPECT_NEAR(proc_ms, rusage_ms, 2.0);
}

TEST(ProcessCpuOfTest, NoSuchProcessIsZero) {
  EXPECT_EQ(ProcessCpuOf(0), absl::ZeroDuration());
  EXPECT_EQ(ProcessCpuOf(-1), absl::ZeroDuration());
  // Beyond pid_max (at most 2^22 on Linux): no such directory in /proc.
  EXPECT_EQ(ProcessCpuOf(1 << 23), absl::ZeroDuration());
}

}  // namespace
}  // namespace bench
}  // namespace hublink
