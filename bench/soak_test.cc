// The short soak: every transport, hublink and Paho side by side, through one round of every fault
// (blackhole, read stall, reset, 1-byte segmentation, latency, two broker restarts, a broker
// SIGSTOP) with a 2 s keep-alive. Asserted for hublink only, and only what must hold on any
// machine, however slow: nothing acknowledged is lost, each client came back after every fault,
// and every silent fault was detected within keep-alive + ping timeout (a bound from the config).
// Paho's figures are printed, never asserted.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bench/soak_driver.h"
#include "gtest/gtest.h"

namespace hublink {
namespace bench {
namespace {

std::string Runfile(const std::string& name) {
  const char* dir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(dir == nullptr ? "." : dir, "/hublink/bench/", name);
}

TEST(SoakTest, HublinkLosesNothingAndAlwaysComesBack) {
  SoakOptions options;
  options.duration = absl::Seconds(60);
  options.keep_alive_s = 2;
  options.rate = 50;
  options.drain = absl::Seconds(20);
  options.seed = 1;
  options.verbose = true;
  options.hublink_bin = Runfile("soak_hublink");
  options.paho_bin = Runfile("soak_paho");
  absl::StatusOr<SoakReport> report = RunSoak(options);
  ASSERT_TRUE(report.ok()) << report.status();
  std::printf("%s\n", report->text.c_str());
  std::fflush(stdout);

  std::vector<std::string> failures = HublinkFailures(*report);
  EXPECT_TRUE(failures.empty()) << absl::StrJoin(failures, "\n");
  int hublink = 0;
  for (const SoakClientResult& r : report->clients) {
    if (r.library != "hublink") continue;
    ++hublink;
    EXPECT_TRUE(r.ran) << r.transport;
    EXPECT_EQ(r.lost[0], 0) << r.transport;
    EXPECT_GT(r.received[0], 0) << r.transport;
    // Every silent fault (2 blackholes... one round: blackhole, stall, SIGSTOP) found the link up
    // at least once per client, so detection was measured.
    EXPECT_FALSE(r.detection_s.empty()) << r.transport;
  }
  EXPECT_EQ(hublink, 4);
  // The storm really happened: every kind of fault is in the timeline.
  std::string kinds;
  for (const SoakFault& f : report->timeline) absl::StrAppend(&kinds, f.kind, " ");
  for (const char* kind :
       {"blackhole", "stall", "reset", "segment", "latency", "restart", "sigstop"}) {
    EXPECT_NE(kinds.find(kind), std::string::npos) << kind << " missing from: " << kinds;
  }
}

}  // namespace
}  // namespace bench
}  // namespace hublink
