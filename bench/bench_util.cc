#include "bench/bench_util.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace hublink {
namespace bench {

Flags::Flags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (!absl::ConsumePrefix(&arg, "--")) continue;
    size_t eq = arg.find('=');
    if (eq == absl::string_view::npos) {
      values_[std::string(arg)] = "true";
    } else {
      values_[std::string(arg.substr(0, eq))] = std::string(arg.substr(eq + 1));
    }
  }
}

std::string Flags::Get(absl::string_view key, absl::string_view fallback) const {
  auto it = values_.find(key);
  return it == values_.end() ? std::string(fallback) : it->second;
}

int64_t Flags::GetInt(absl::string_view key, int64_t fallback) const {
  int64_t value;
  auto it = values_.find(key);
  if (it == values_.end() || !absl::SimpleAtoi(it->second, &value)) return fallback;
  return value;
}

double Flags::GetDouble(absl::string_view key, double fallback) const {
  double value;
  auto it = values_.find(key);
  if (it == values_.end() || !absl::SimpleAtod(it->second, &value)) return fallback;
  return value;
}

bool Flags::Has(absl::string_view key) const { return values_.find(key) != values_.end(); }

absl::Duration ProcessCpu() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return absl::DurationFromTimeval(usage.ru_utime) + absl::DurationFromTimeval(usage.ru_stime);
}

int64_t PeakRssKib() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

namespace {

// The sum of the first field of /proc/<pid>/task/<tid>/schedstat over the process's threads: each
// thread's time on a CPU, in nanoseconds. False when unreadable (a kernel without schedstat).
bool SchedstatCpuOf(pid_t pid, absl::Duration* cpu) {
  DIR* tasks = opendir(absl::StrCat("/proc/", pid, "/task").c_str());
  if (tasks == nullptr) return false;
  int64_t total_ns = 0;
  bool any = false;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream in(absl::StrCat("/proc/", pid, "/task/", entry->d_name, "/schedstat"));
    int64_t ns = 0;
    if (!(in >> ns)) continue;  // a thread that ended meanwhile
    total_ns += ns;
    any = true;
  }
  closedir(tasks);
  if (any) *cpu = absl::Nanoseconds(total_ns);
  return any;
}

}  // namespace

absl::Duration ProcessCpuOf(pid_t pid) {
  if (pid <= 0) return absl::ZeroDuration();
  absl::Duration cpu;
  if (SchedstatCpuOf(pid, &cpu)) return cpu;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces: fields are counted after its
  // closing ')'.
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return absl::ZeroDuration();
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(text).substr(paren + 2), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  int64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return absl::ZeroDuration();
  }
  static const long ticks = sysconf(_SC_CLK_TCK);
  return absl::Seconds(static_cast<double>(utime + stime) / ticks);
}

double Percentile(std::vector<double>& values, double percentile) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(std::ceil(percentile / 100.0 * values.size()));
  if (rank == 0) rank = 1;
  return values[std::min(rank, values.size()) - 1];
}

Result& Result::Add(absl::string_view key, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.6g", value);
  absl::StrAppend(&line_, " ", key, "=", buffer);
  return *this;
}

Result& Result::Add(absl::string_view key, int64_t value) {
  absl::StrAppend(&line_, " ", key, "=", value);
  return *this;
}

Result& Result::Add(absl::string_view key, absl::string_view value) {
  absl::StrAppend(&line_, " ", key, "=", value);
  return *this;
}

void Result::Print() const {
  std::printf("%s\n", line_.c_str());
  std::fflush(stdout);
}

std::map<std::string, std::string> ParseResult(absl::string_view output) {
  std::map<std::string, std::string> values;
  size_t at = output.rfind("RESULT");
  if (at == absl::string_view::npos) return values;
  absl::string_view line = output.substr(at);
  line = line.substr(0, line.find('\n'));
  for (absl::string_view field : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
    size_t eq = field.find('=');
    if (eq == absl::string_view::npos) continue;
    values[std::string(field.substr(0, eq))] = std::string(field.substr(eq + 1));
  }
  return values;
}

}  // namespace bench
}  // namespace hublink
