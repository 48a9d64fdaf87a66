#include "bench/soak_client.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace hublink {
namespace bench {

int64_t CurrentRssKib() {
  std::ifstream in("/proc/self/statm");
  int64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int count = 0;
  while (readdir(dir) != nullptr) ++count;
  closedir(dir);
  return count - 3;  // ".", ".." and the directory's own fd
}

namespace {

std::atomic<bool> g_stop{false};

int64_t NowUs() { return absl::ToUnixMicros(absl::Now()); }

// The event file plus the per-sequence bookkeeping the drain needs. Thread-safe.
class Recorder {
 public:
  Recorder(FILE* out, size_t capacity) : out_(out), acked_(capacity + 1), received_(capacity + 1) {}

  void Line(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    std::fputs(line.c_str(), out_);
  }
  void Flush() {
    std::lock_guard<std::mutex> lock(mu_);
    std::fflush(out_);
  }

  void Event(const char* role, const char* kind, absl::string_view detail) {
    std::string clean(detail);
    for (char& c : clean) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(out_, "E %lld %s %s %s\n", static_cast<long long>(NowUs()), role, kind,
                 clean.c_str());
    std::fflush(out_);
  }

  // Returns false past capacity (the caller stops publishing).
  bool Published(uint64_t seq, int qos) {
    std::lock_guard<std::mutex> lock(mu_);
    if (seq >= acked_.size()) return false;
    ++published_;
    std::fprintf(out_, "P %lld %llu %d\n", static_cast<long long>(NowUs()),
                 static_cast<unsigned long long>(seq), qos);
    return true;
  }

  void Completed(uint64_t seq, bool ok, absl::string_view detail) {
    std::string clean(detail);
    for (char& c : clean) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(out_, "A %lld %llu %s %s\n", static_cast<long long>(NowUs()),
                 static_cast<unsigned long long>(seq), ok ? "ok" : "fail", clean.c_str());
    if (seq == 0 || seq >= acked_.size() || acked_[seq] != 0) return;  // counted once
    acked_[seq] = ok ? 1 : 2;
    ++completed_;
    if (ok && received_[seq] == 0) ++missing_;
  }

  void Received(absl::string_view payload, int qos, bool dup) {
    uint64_t seq = 0;
    if (payload.size() < 10 || !absl::SimpleAtoi(payload.substr(0, 10), &seq)) seq = 0;
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(out_, "R %lld %llu %d %d\n", static_cast<long long>(NowUs()),
                 static_cast<unsigned long long>(seq), qos, dup ? 1 : 0);
    if (seq == 0 || seq >= received_.size()) return;
    if (received_[seq]++ == 0 && acked_[seq] == 1) --missing_;
  }

  // Every publish completed and every acknowledged message received.
  bool Drained(uint64_t* unacked, uint64_t* missing) {
    std::lock_guard<std::mutex> lock(mu_);
    *unacked = published_ - completed_;
    *missing = missing_;
    return *unacked == 0 && *missing == 0;
  }

 private:
  std::mutex mu_;  // std::mutex: plugins/event_loop.h's locking policy
  FILE* const out_;
  std::vector<uint8_t> acked_;      // 0 pending, 1 ok, 2 failed
  std::vector<uint32_t> received_;  // times received
  uint64_t published_ = 0, completed_ = 0, missing_ = 0;
};

class RoleListener : public SoakListener {
 public:
  RoleListener(const char* role, Recorder* recorder) : role_(role), recorder_(recorder) {}

  void OnEvent(const char* kind, absl::string_view detail) override {
    recorder_->Event(role_, kind, detail);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (std::strcmp(kind, "connected") == 0) connected_ = true;
      if (std::strcmp(kind, "lost") == 0) connected_ = false;
    }
    connected_changed_.notify_all();
  }
  void OnMessage(absl::string_view payload, int qos, bool dup) override {
    recorder_->Received(payload, qos, dup);
  }
  void OnCompleted(uint64_t seq, bool ok, absl::string_view detail) override {
    recorder_->Completed(seq, ok, detail);
  }

  bool WaitConnected(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return connected_changed_.wait_for(
        lock, absl::ToChronoMilliseconds(timeout) + std::chrono::milliseconds(1),
        [this] { return connected_; });
  }

 private:
  const char* const role_;
  Recorder* const recorder_;
  std::mutex mu_;  // std::mutex: plugins/event_loop.h's locking policy
  std::condition_variable connected_changed_;
  bool connected_ = false;  // guarded by mu_
};

std::string Resources(const char* what) {
  return absl::StrFormat("T %d %s %d %d %.3f\n", NowUs(), what, CurrentRssKib(), OpenFds(),
                         absl::ToDoubleSeconds(ProcessCpu()));
}

}  // namespace

int RunSoakClient(const Flags& flags, SoakFactory& factory) {
  SoakSettings settings;
  settings.transport = flags.Get("transport", "tcp");
  settings.port = static_cast<int>(flags.GetInt("port", 0));
  settings.ca_file = flags.Get("ca_file");
  settings.keep_alive_s = static_cast<int>(flags.GetInt("keep_alive", 4));
  settings.connect_timeout = absl::Seconds(flags.GetInt("connect_timeout_s", 4));
  settings.retry_min_s = static_cast<int>(flags.GetInt("retry_min", 1));
  settings.retry_max_s = static_cast<int>(flags.GetInt("retry_max", 2));
  settings.max_inflight = static_cast<int>(flags.GetInt("max_inflight", 64));
  const std::string id = flags.Get("id", absl::StrCat(factory.name(), "-", getpid()));
  const double rate = flags.GetDouble("rate", 100);
  const size_t size = static_cast<size_t>(std::max<int64_t>(16, flags.GetInt("size", 64)));
  // --count messages (0: until "stop"), QoS 2 from sequence number --qos2_from on.
  const uint64_t count = static_cast<uint64_t>(std::max<int64_t>(0, flags.GetInt("count", 0)));
  const uint64_t qos2_from = static_cast<uint64_t>(flags.GetInt("qos2_from", INT64_MAX));
  const absl::Duration drain = absl::Seconds(flags.GetDouble("drain_seconds", 30));
  const absl::Duration max_run = absl::Seconds(flags.GetDouble("max_seconds", 900));
  const std::string out_path = flags.Get("out");
  if (settings.port == 0 || out_path.empty() || rate <= 0 || rate > 10000) {
    std::fprintf(stderr, "soak: --port, --out and a --rate in (0, 10000] are required\n");
    return 2;
  }
  FILE* out = std::fopen(out_path.c_str(), "w");
  if (out == nullptr) {
    std::fprintf(stderr, "soak: %s: %s\n", out_path.c_str(), std::strerror(errno));
    return 2;
  }
  const absl::Time begin = absl::Now();
  // Every sequence number the run can reach, with room; publishing stops there.
  const size_t capacity = static_cast<size_t>(rate * absl::ToDoubleSeconds(max_run)) + 16;
  Recorder recorder(out, capacity);
  RoleListener sub_listener("sub", &recorder);
  RoleListener pub_listener("pub", &recorder);
  const std::string topic = absl::StrCat("soak/", id);

  // "stop" on stdin (or its end) ends publishing.
  std::thread([] {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line == "stop") break;
    }
    g_stop = true;
  }).detach();

  int code = 0;
  {
    SoakSettings sub_settings = settings;
    sub_settings.client_id = id + "-sub";
    SoakSettings pub_settings = settings;
    pub_settings.client_id = id + "-pub";
    std::unique_ptr<SoakConnection> sub = factory.Make(sub_settings, &sub_listener);
    std::unique_ptr<SoakConnection> pub = factory.Make(pub_settings, &pub_listener);
    sub->Start();
    if (!sub_listener.WaitConnected(absl::Seconds(60)) ||
        !sub->Subscribe(topic, 2, absl::Seconds(30))) {
      std::fprintf(stderr, "soak: %s: the subscriber did not connect and subscribe\n", id.c_str());
      recorder.Line(absl::StrFormat("D %d setup_failed 0 0\n", NowUs()));
      recorder.Flush();
      std::fflush(nullptr);
      std::_Exit(3);
    }
    pub->Start();
    if (!pub_listener.WaitConnected(absl::Seconds(60))) {
      std::fprintf(stderr, "soak: %s: the publisher did not connect\n", id.c_str());
      recorder.Line(absl::StrFormat("D %d setup_failed 0 0\n", NowUs()));
      recorder.Flush();
      std::fflush(nullptr);
      std::_Exit(3);
    }
    recorder.Line(Resources("ready"));
    recorder.Flush();

    // Paced by absolute time; a publisher that fell behind (a library call that blocked)
    // catches up, so every client publishes the same count at the same average rate.
    const absl::Time start = absl::Now();
    const absl::Time stop_by = begin + max_run - drain;
    absl::Time flushed = start;
    std::string payload(size, 'x');
    uint64_t seq = 0;
    for (int i = 0; i < 100000000; ++i) {
      absl::Time now = absl::Now();
      if (now >= stop_by || (g_stop && (count == 0 || seq >= count))) break;
      if (now - flushed > absl::Milliseconds(200)) {
        recorder.Flush();
        flushed = now;
      }
      const absl::Time next = start + absl::Seconds(static_cast<double>(seq) / rate);
      if ((count != 0 && seq >= count) || now < next) {
        absl::SleepFor(
            std::min(std::max(next - now, absl::Milliseconds(1)), absl::Milliseconds(20)));
        continue;
      }
      const int qos = seq + 1 >= qos2_from ? 2 : 1;
      ++seq;
      std::string number = absl::StrFormat("%010d", seq);
      payload.replace(0, number.size(), number);
      if (!recorder.Published(seq, qos)) break;
      pub->Publish(topic, payload, qos, seq);
    }
    recorder.Line(absl::StrFormat("S %d stop\n", NowUs()));
    recorder.Flush();

    const absl::Time drain_end = absl::Now() + drain;
    uint64_t unacked = 0, missing = 0;
    bool drained = false;
    while (!(drained = recorder.Drained(&unacked, &missing)) && absl::Now() < drain_end) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    recorder.Line(absl::StrFormat("D %d %s %d %d\n", NowUs(), drained ? "drained" : "timeout",
                                  unacked, missing));
    recorder.Line(Resources("end"));
    recorder.Flush();
    pub->Stop();
    sub->Stop();
  }
  recorder.Flush();
  std::fclose(out);
  return code;
}

}  // namespace bench
}  // namespace hublink
