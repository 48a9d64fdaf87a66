// //bench:soak, the driver behind bench/soak.sh: runs the soak (soak_driver.h) and prints its
// tables. Exit 0 when hublink lost nothing, came back after every fault and detected every silent
// fault within keep-alive + ping timeout; 1 otherwise; 2 for bad usage. Paho's results are printed,
// never judged.
//
//   bazel run //bench:soak -- --minutes=2
//   soak --seconds=70 --keep_alive=2 --transports=tcp,wss --clients=hublink --rate=50 --seed=7
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "bench/soak_driver.h"

namespace hublink {
namespace bench {
namespace {

// --X_bin, else next to this binary, else in its runfiles (bazel run).
std::string FindClient(const Flags& flags, const std::string& name, const char* argv0) {
  std::string flag = flags.Get(name + "_bin");
  if (!flag.empty()) return flag;
  std::string self = argv0;
  std::string dir = self.substr(0, self.rfind('/') == std::string::npos ? 0 : self.rfind('/'));
  std::vector<std::string> candidates = {absl::StrCat(dir.empty() ? "." : dir, "/soak_", name),
                                         absl::StrCat(self, ".runfiles/hublink/bench/soak_", name)};
  if (const char* runfiles = std::getenv("RUNFILES_DIR")) {
    candidates.push_back(absl::StrCat(runfiles, "/hublink/bench/soak_", name));
  }
  for (const std::string& c : candidates) {
    if (access(c.c_str(), X_OK) == 0) return c;
  }
  return candidates.front();
}

int Main(int argc, char** argv) {
  Flags flags(argc, argv);
  if (flags.Has("help")) {
    std::printf(
        "usage: soak [--minutes=10 | --seconds=N] [--transports=tcp,ws,tls,wss]\n"
        "            [--clients=hublink,paho] [--keep_alive=4] [--rate=100] [--size=64]\n"
        "            [--seed=1] [--drain_seconds=30] [--quiet]\n");
    return 0;
  }
  SoakOptions options;
  if (flags.Has("minutes")) options.duration = absl::Minutes(flags.GetDouble("minutes", 10));
  if (flags.Has("seconds")) options.duration = absl::Seconds(flags.GetDouble("seconds", 600));
  options.transports = absl::StrSplit(flags.Get("transports", "tcp,ws,tls,wss"), ',');
  options.libraries = absl::StrSplit(flags.Get("clients", "hublink,paho"), ',');
  options.keep_alive_s = static_cast<int>(flags.GetInt("keep_alive", 4));
  options.rate = flags.GetDouble("rate", 100);
  options.size = static_cast<int>(flags.GetInt("size", 64));
  options.seed = static_cast<uint64_t>(flags.GetInt("seed", 1));
  options.drain = absl::Seconds(flags.GetDouble("drain_seconds", 30));
  options.verbose = !flags.Has("quiet");
  options.hublink_bin = FindClient(flags, "hublink", argv[0]);
  options.paho_bin = FindClient(flags, "paho", argv[0]);
  for (const std::string& t : options.transports) {
    if (t != "tcp" && t != "ws" && t != "tls" && t != "wss") {
      std::fprintf(stderr, "soak: --transports: unknown transport \"%s\"\n", t.c_str());
      return 2;
    }
  }
  for (const std::string& l : options.libraries) {
    if (l != "hublink" && l != "paho") {
      std::fprintf(stderr, "soak: --clients: unknown client \"%s\" (hublink, paho)\n", l.c_str());
      return 2;
    }
  }
  if (options.keep_alive_s < 1 || options.rate <= 0 || options.rate > 5000 ||
      options.duration <= absl::ZeroDuration() || options.duration > absl::Hours(24)) {
    std::fprintf(stderr, "soak: --keep_alive >= 1, --rate in (0, 5000], a duration up to 24 h\n");
    return 2;
  }
  absl::StatusOr<SoakReport> report = RunSoak(options);
  if (!report.ok()) {
    std::fprintf(stderr, "soak: %s\n", report.status().ToString().c_str());
    return 1;
  }
  std::printf("%s", report->text.c_str());
  std::vector<std::string> failures = HublinkFailures(*report);
  if (!failures.empty()) {
    std::printf("\nhublink FAILED:\n- %s\n", absl::StrJoin(failures, "\n- ").c_str());
    return 1;
  }
  std::printf(
      "\nhublink: nothing lost, back after every fault, every dead link detected in time.\n");
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace hublink

int main(int argc, char** argv) { return hublink::bench::Main(argc, argv); }
