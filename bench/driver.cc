// Runs the hublink / Paho C benchmark matrix against one mosquitto (TCP, WS,
// TLS and WSS listeners on 127.0.0.1) and prints a Markdown table. Every
// measurement is a separate client process (so CPU, RSS and allocation counts
// belong to one library), repeated --reps times with the repetitions
// interleaved; cells are medians. bench/run.sh builds the binaries and calls
// this.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "tests/test_util.h"

namespace hublink {
namespace bench {
namespace {

using testing::MosquittoBroker;

using Values = std::map<std::string, std::string>;

// kHublinkSpin: hublink_bench --spin_us=<--spin_us> (Client::Options::spin_before_sleep; the
// library's default is off), run only by the spin row. kHublinkShared: --hublink_shared_bin, the
// same client built with --config=shared_deps (protobuf and Abseil as Debian's shared libraries
// rather than linked statically), run only by the shared row.
enum Variant { kHublink, kPaho, kPahoNodelay, kHublinkSpin, kHublinkShared };
const char* const kVariantNames[] = {"hublink", "paho", "paho+nodelay", "hublink+spin",
                                     "hublink shared"};

struct Sizes {
  int64_t qos0_small_count, qos0_large_count, qos1_count, latency_count, connect_count, probe_count,
      allocs_count;
  double throughput_seconds, latency_seconds, connect_seconds;
};

class Driver {
 public:
  explicit Driver(const Flags& flags) : flags_(flags) {
    quick_ = flags.Has("quick");
    reps_ = static_cast<int>(flags.GetInt("reps", 3));
    if (quick_) {
      sizes_ = {15000, 2000, 2500, 300, 4, 3, 2000, 1, 0.6, 5};
    } else {
      sizes_ = {40000, 8000, 10000, 1000, 17, 6, 10000, 2, 1.5, 15};
    }
    // --count_scale=0.05: tiny counts for a functional check of the driver itself (not a result).
    const double scale = flags.GetDouble("count_scale", 1);
    for (int64_t* count : {&sizes_.qos0_small_count, &sizes_.qos0_large_count, &sizes_.qos1_count,
                           &sizes_.latency_count, &sizes_.connect_count, &sizes_.probe_count,
                           &sizes_.allocs_count}) {
      *count = std::max<int64_t>(1, std::llround(*count * scale));
    }
    // Quick mode keeps the two ends of the range: plain TCP and WebSocket over TLS.
    std::string transports = flags.Get("transports", quick_ ? "tcp,wss" : "tcp,ws,tls,wss");
    for (absl::string_view t : absl::StrSplit(transports, ',')) transports_.emplace_back(t);
    // The cross and paced rows: tcp unless --transports names others.
    if (flags.Has("transports")) {
      pair_transports_ = transports_;
    } else {
      pair_transports_ = {"tcp"};
    }
    for (absl::string_view rate : absl::StrSplit(flags.Get("paced_rates", "10000,20000"), ',')) {
      int64_t value;
      if (!absl::SimpleAtoi(rate, &value)) value = 0;
      paced_rates_.push_back(value);
    }
    spin_us_ = flags.GetInt("spin_us", 20);
    // The shared row needs its binary: bench/run.sh builds it and passes it.
    std::string rows = flags.Get("rows", flags.Has("hublink_shared_bin")
                                             ? "qos0,qos1,spin,shared,latency,connect,allocs"
                                             : "qos0,qos1,spin,latency,connect,allocs");
    for (absl::string_view row : absl::StrSplit(rows, ',')) rows_.emplace_back(row);
    log_file_ = absl::StrCat(testing::TempDir(), "/bench_clients.log");
  }

  // An unknown row or transport would measure nothing and still print a table: refuse it.
  absl::Status Validate() const {
    // cross and paced are not in the default --rows.
    static constexpr absl::string_view kRows[] = {"qos0",    "qos1",   "spin",  "shared", "latency",
                                                  "connect", "allocs", "cross", "paced"};
    static constexpr absl::string_view kTransports[] = {"tcp", "ws", "tls", "wss"};
    for (const std::string& row : rows_) {
      if (std::find(std::begin(kRows), std::end(kRows), row) == std::end(kRows)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--rows: unknown row \"", row, "\" (rows: ", absl::StrJoin(kRows, ","), ")"));
      }
    }
    for (const std::string& transport : transports_) {
      if (std::find(std::begin(kTransports), std::end(kTransports), transport) ==
          std::end(kTransports)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--transports: unknown transport \"", transport,
                         "\" (transports: ", absl::StrJoin(kTransports, ","), ")"));
      }
    }
    if (spin_us_ < 0) return absl::InvalidArgumentError("--spin_us: microseconds, >= 0");
    if (Row("shared") && flags_.Get("hublink_shared_bin").empty()) {
      return absl::InvalidArgumentError(
          "--rows=shared needs --hublink_shared_bin: hublink_bench built with "
          "--config=shared_deps (bench/run.sh builds and passes it)");
    }
    for (int64_t rate : paced_rates_) {
      if (rate <= 0) {
        return absl::InvalidArgumentError(
            "--paced_rates: positive messages per second, e.g. "
            "10000,20000");
      }
    }
    return absl::OkStatus();
  }

  bool Row(absl::string_view name) const {
    return std::find(rows_.begin(), rows_.end(), name) != rows_.end();
  }

  absl::Status Start() {
    std::string dir = testing::TempDir();
    auto certs = testing::MakeTestCertificates(dir, {"127.0.0.1", "localhost"});
    if (!certs.ok()) return certs.status();
    ca_file_ = certs->ca_file;
    MosquittoBroker::Options options;
    options.websockets = true;
    options.cert_file = certs->cert_file;
    options.key_file = certs->key_file;
    // No broker-side drops and the clients' window on the broker's side too;
    // replies without Nagle so that the broker adds no stall the clients would
    // be blamed for.
    options.extra_config = {"max_queued_messages 0", "max_inflight_messages 64",
                            "set_tcp_nodelay true"};
    auto broker = MosquittoBroker::Start(options);
    if (!broker.ok()) return broker.status();
    broker_ = *std::move(broker);
    ports_ = {{"tcp", broker_->tcp_port()},
              {"ws", broker_->ws_port()},
              {"tls", broker_->tls_port()},
              {"wss", broker_->wss_port()}};
    std::fprintf(stderr,
                 "bench: mosquitto pid %d, ports tcp %d ws %d tls %d wss %d; "
                 "client log %s\n",
                 broker_->process().pid(), ports_["tcp"], ports_["ws"], ports_["tls"],
                 ports_["wss"], log_file_.c_str());
    return absl::OkStatus();
  }

  // The client binary of `variant`, with the TCP_NODELAY shim for Paho+NODELAY and --spin_us for
  // hublink+spin.
  std::string Binary(Variant variant) const {
    if (variant == kHublinkSpin) {
      return absl::StrCat(flags_.Get("hublink_bin"), " --spin_us=", spin_us_);
    }
    if (variant == kHublinkShared) return flags_.Get("hublink_shared_bin");
    std::string binary = variant == kHublink ? flags_.Get("hublink_bin") : flags_.Get("paho_bin");
    std::string preload =
        variant == kPahoNodelay ? absl::StrCat("env LD_PRELOAD=", flags_.Get("shim"), " ") : "";
    return preload + binary;
  }

  // Runs one client process; empty on failure (logged).
  Values Run(Variant variant, const std::string& transport, const std::string& args) {
    return RunBinary(Binary(variant), transport, args);
  }

  // The shell command of one client run, bounded by `timeout 60`, stderr to the client log.
  std::string Command(const std::string& binary, const std::string& transport,
                      const std::string& args) {
    return absl::StrCat("timeout 60 ", binary, " --transport=", transport,
                        " --port=", ports_[transport], " --ca_file=", ca_file_,
                        " --broker_pid=", broker_->process().pid(), " --run_id=", getpid(), "x",
                        ++run_counter_, " ", args, " 2>>", log_file_);
  }

  Values RunBinary(const std::string& binary, const std::string& transport,
                   const std::string& args) {
    absl::StatusOr<std::string> output = testing::RunCommand(Command(binary, transport, args));
    ++runs_;
    if (!output.ok()) {
      std::fprintf(stderr, "bench: FAILED: %s\n", output.status().ToString().c_str());
      ++failures_;
      return {};
    }
    Values values = ParseResult(*output);
    AddBrokerCpuPerMessage(values);
    return values;
  }

  // The broker's CPU per delivered message, in µs: what a client costs the broker (issue 15). From
  // broker_cpu_s when the run reports it, else from broker_cpu_pct over the run's seconds (older
  // binaries; the run's end is then its last message, a slight underestimate).
  static void AddBrokerCpuPerMessage(Values& values) {
    double received = 0, cpu_s = -1, pct = 0, seconds = 0;
    auto get = [&values](const char* field, double* out) {
      auto it = values.find(field);
      return it != values.end() && absl::SimpleAtod(it->second, out);
    };
    if (!get("received", &received) || received <= 0) return;
    if (!get("broker_cpu_s", &cpu_s)) {
      if (!get("broker_cpu_pct", &pct) || !get("seconds", &seconds)) return;
      cpu_s = pct / 100 * seconds;
    }
    values["broker_us_per_msg"] = absl::StrFormat("%.3f", cpu_s * 1e6 / received);
  }

  // Reads `pipe` into `output` until `needle` has arrived (nullptr: until EOF) or
  // `deadline`; false at the deadline, or at EOF before the needle.
  static bool ReadUntil(FILE* pipe, const char* needle, absl::Time deadline, std::string* output) {
    const int fd = fileno(pipe);
    while (needle == nullptr || output->find(needle) == std::string::npos) {
      const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (ms <= 0) return false;
      pollfd pfd = {fd, POLLIN, 0};
      const int ready = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(ms, 1000)));
      if (ready < 0 && errno != EINTR) return false;
      if (ready <= 0) continue;
      char buffer[4096];
      const ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return needle == nullptr;  // EOF
      output->append(buffer, static_cast<size_t>(n));
    }
    return true;
  }

  // The cross row: a --role=sub process of `sub`'s library, started first and
  // awaited until it prints READY, then a --role=pub process of `pub`'s library
  // on the same topic; the subscriber's RESULT (rate, its CPU, the broker's CPU
  // from its first message to its last) plus the publisher's CPU per delivered
  // message. Empty on failure (logged). Both are bounded by `timeout 60`.
  Values RunPair(Variant pub, Variant sub, const std::string& transport, const std::string& args,
                 double seconds) {
    const std::string topic = absl::StrCat("x/", getpid(), "x", run_counter_ + 1);
    const std::string command =
        Command(Binary(sub), transport, absl::StrCat(args, " --role=sub --topic=", topic));
    ++runs_;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
      std::fprintf(stderr, "bench: FAILED: popen: %s\n", command.c_str());
      ++failures_;
      return {};
    }
    std::string output;
    // Connect and subscribe: 10 s each at most in the client.
    if (!ReadUntil(pipe, "READY\n", absl::Now() + absl::Seconds(25), &output)) {
      // pclose waits for the subscriber, which `timeout 60` bounds.
      int status = pclose(pipe);
      std::fprintf(stderr, "bench: FAILED: no READY from the subscriber (%d): %s\n%s", status,
                   command.c_str(), output.c_str());
      ++failures_;
      return {};
    }
    const Values published =
        RunBinary(Binary(pub), transport, absl::StrCat(args, " --role=pub --topic=", topic));
    // The subscriber ends within its cap (+ 10 s if nothing arrived) + 1 s of quiet.
    const bool ended = ReadUntil(pipe, nullptr, absl::Now() + absl::Seconds(seconds + 20), &output);
    const int status = pclose(pipe);
    if (!ended || status != 0) {
      std::fprintf(stderr, "bench: FAILED (%d): %s\n%s", status, command.c_str(), output.c_str());
      ++failures_;
      return {};
    }
    Values values = ParseResult(output);
    AddBrokerCpuPerMessage(values);
    double received = 0, pub_cpu = 0;
    auto it = published.find("cpu_s");
    if (absl::SimpleAtod(values["received"], &received) && received > 0 && it != published.end() &&
        absl::SimpleAtod(it->second, &pub_cpu)) {
      values["pub_cpu_per_100k"] = absl::StrFormat("%.6g", pub_cpu * 1e5 / received);
    }
    return values;
  }

  void RunCross(const std::string& args, double seconds) {
    const absl::Time start = absl::Now();
    for (int rep = 0; rep < reps_; ++rep) {
      for (const std::string& transport : pair_transports_) {
        for (Variant pub : {kHublink, kPaho}) {
          for (Variant sub : {kHublink, kPaho}) {
            std::fprintf(stderr, "bench: cross pub %s sub %s %s rep %d\n", kVariantNames[pub],
                         kVariantNames[sub], transport.c_str(), rep + 1);
            cross_[transport][pub][sub].push_back(RunPair(pub, sub, transport, args, seconds));
          }
        }
      }
    }
    absl::StrAppendFormat(&timing_, "cross %.0f s, ", absl::ToDoubleSeconds(absl::Now() - start));
  }

  // key -> variant -> transport -> one Values per repetition.
  using Table = std::map<std::string, std::map<int, std::map<std::string, std::vector<Values>>>>;

  void RunMatrix(const std::string& key, const std::string& args, std::vector<Variant> variants,
                 std::vector<std::string> transports) {
    const absl::Time start = absl::Now();
    for (int rep = 0; rep < reps_; ++rep) {
      for (const std::string& transport : transports) {
        for (Variant variant : variants) {
          std::fprintf(stderr, "bench: %s %s %s rep %d\n", key.c_str(), kVariantNames[variant],
                       transport.c_str(), rep + 1);
          table_[key][variant][transport].push_back(Run(variant, transport, args));
        }
      }
    }
    absl::StrAppendFormat(&timing_, "%s %.0f s, ", key, absl::ToDoubleSeconds(absl::Now() - start));
  }

  // The spin and shared rows: one hublink variant only, every (key, args) cell on every
  // transport, the repetitions interleaved across all of them (rep 1 of every cell, then rep 2,
  // ...).
  void RunVariantRow(const std::string& row, Variant variant,
                     const std::vector<std::pair<std::string, std::string>>& cells,
                     const std::vector<std::string>& transports) {
    const absl::Time start = absl::Now();
    for (int rep = 0; rep < reps_; ++rep) {
      for (const auto& [key, args] : cells) {
        for (const std::string& transport : transports) {
          std::fprintf(stderr, "bench: %s %s %s rep %d\n", key.c_str(), kVariantNames[variant],
                       transport.c_str(), rep + 1);
          table_[key][variant][transport].push_back(Run(variant, transport, args));
        }
      }
    }
    absl::StrAppendFormat(&timing_, "%s %.0f s, ", row, absl::ToDoubleSeconds(absl::Now() - start));
  }

  static double Median(const std::vector<Values>& runs, const std::string& field) {
    std::vector<double> values;
    for (const Values& run : runs) {
      auto it = run.find(field);
      double value;
      if (it != run.end() && absl::SimpleAtod(it->second, &value)) values.push_back(value);
    }
    if (values.empty()) return -1;
    std::sort(values.begin(), values.end());
    size_t n = values.size();
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  }
  // What a cell's median hides: runs that did not deliver every message within their time cap
  // (STALL), and runs in which deliveries paused for 50 ms or more (PAUSE), such as mosquitto 2.0
  // holding a WebSocket subscriber's last message until its loop's 100 ms timeout.
  static std::string RunFlags(const std::vector<Values>& runs) {
    std::string flags;
    const int total = static_cast<int>(runs.size());
    if (int stalled = Count(runs, "stalled"); stalled > 0) {
      flags += absl::StrFormat(" STALL in %d/%d runs", stalled, total);
    }
    int paused = 0;
    for (const Values& run : runs) {
      auto it = run.find("max_gap_ms");
      double gap_ms;
      if (it != run.end() && absl::SimpleAtod(it->second, &gap_ms) && gap_ms >= 50) ++paused;
    }
    if (paused > 0) flags += absl::StrFormat(" PAUSE in %d/%d runs", paused, total);
    return flags;
  }
  // Runs whose `field` is non-zero.
  static int Count(const std::vector<Values>& runs, const std::string& field) {
    int count = 0;
    for (const Values& run : runs) {
      auto it = run.find(field);
      if (it != run.end() && it->second != "0") ++count;
    }
    return count;
  }

  double Cell(const std::string& key, Variant variant, const std::string& transport,
              const std::string& field) {
    return Median(table_[key][variant][transport], field);
  }

  // The runs of one cell, or null when that cell was never run (its row not in --rows). Unlike
  // Cell(), adds no empty entry to table_.
  const std::vector<Values>* Find(const std::string& key, Variant variant,
                                  const std::string& transport) const {
    auto by_key = table_.find(key);
    if (by_key == table_.end()) return nullptr;
    auto by_variant = by_key->second.find(variant);
    if (by_variant == by_key->second.end()) return nullptr;
    auto by_transport = by_variant->second.find(transport);
    if (by_transport == by_variant->second.end()) return nullptr;
    return &by_transport->second;
  }
  // Median of `field` in one cell: -1 on failure (as Median), -2 when the cell was not run.
  double CellIfRun(const std::string& key, Variant variant, const std::string& transport,
                   const std::string& field) const {
    const std::vector<Values>* runs = Find(key, variant, transport);
    return runs == nullptr ? -2 : Median(*runs, field);
  }
  // As Number(), but "n/a" for a cell that was not run.
  static std::string NumberOrNa(double value, int digits = 0) {
    return value == -2 ? "n/a" : Number(value, digits);
  }

  // Advantage of hublink: >1 means hublink is better.
  static std::string Ratio(double hublink, double paho, bool higher_is_better) {
    if (hublink <= 0 || paho <= 0) return "n/a";
    return absl::StrFormat("%.2f×", higher_is_better ? hublink / paho : paho / hublink);
  }

  static std::string Number(double value, int digits = 0) {
    if (value < 0) return "fail";
    return absl::StrFormat("%.*f", digits, value);
  }

  void Line(const std::vector<std::string>& cells) {
    out_ += absl::StrCat("| ", absl::StrJoin(cells, " | "), " |\n");
  }
  void Header(const std::string& title, const std::vector<std::string>& columns) {
    out_ += absl::StrCat("\n### ", title, "\n\n");
    Line(columns);
    std::vector<std::string> rule(columns.size(), "---");
    Line(rule);
  }

  // A throughput row: msgs/s and MB/s at the subscriber, the ratio, the
  // broker's CPU.
  // With `client_cpu`, a last column of client CPU s/100k (h / P / P+N).
  void ThroughputRows(const std::string& key, const std::string& label,
                      const std::vector<std::string>& transports, bool client_cpu = false) {
    for (const std::string& transport : transports) {
      std::vector<std::string> cells = {label, transport};
      double values[3];
      std::string broker;
      std::string per_message;
      std::string cpu;
      for (int v = 0; v < 3; ++v) {
        const std::vector<Values>& runs = table_[key][v][transport];
        values[v] = Median(runs, "msgs_per_s");
        std::string cell =
            absl::StrCat(Number(values[v]), " (", Number(Median(runs, "mb_per_s"), 1), " MB/s)");
        cell += RunFlags(runs);
        cells.push_back(cell);
        absl::StrAppend(&broker, v ? " / " : "", Number(Median(runs, "broker_cpu_pct")), "%");
        absl::StrAppend(&per_message, v ? " / " : "", Number(Median(runs, "broker_us_per_msg"), 2));
        absl::StrAppend(&cpu, v ? " / " : "", Number(Median(runs, "cpu_per_100k"), 3));
      }
      cells.push_back(Ratio(values[0], values[1], true));
      cells.push_back(Ratio(values[0], values[2], true));
      cells.push_back(broker);
      cells.push_back(per_message);
      if (client_cpu) cells.push_back(cpu);
      Line(cells);
    }
  }

  void Report() {
    const std::vector<std::string> columns = {"row",
                                              "transport",
                                              "hublink",
                                              "Paho",
                                              "Paho+NODELAY",
                                              "hublink vs Paho",
                                              "vs Paho+NODELAY",
                                              "broker CPU (h / P / P+N)",
                                              "broker µs/msg (h / P / P+N)"};
    if (Row("qos0")) {
      Header("1. QoS 0 delivered throughput (msgs/s at the subscriber)", columns);
      ThroughputRows("qos0_64", "QoS0 64 B", transports_);
      // Not a ceiling: the raw publisher and subscriber share one thread and wait on each other,
      // and what the broker spends per message depends on how both sides write and read.
      Line({"raw-socket reference 64 B", "tcp",
            absl::StrCat("raw publisher (64 KiB writes) + raw subscriber, one thread: ",
                         Number(Median(ceiling_, "msgs_per_s")), " (",
                         Number(Median(ceiling_, "mb_per_s"), 1), " MB/s)"),
            "", "",
            absl::StrCat("hublink tcp: ",
                         Number(Cell("qos0_64", kHublink, "tcp", "msgs_per_s") /
                                    Median(ceiling_, "msgs_per_s"),
                                2),
                         "× of it"),
            "", absl::StrCat(Number(Median(ceiling_, "broker_cpu_pct")), "%"),
            Number(Median(ceiling_, "broker_us_per_msg"), 2)});
      ThroughputRows("qos0_4k", "QoS0 4 KiB", transports_);
    }
    if (Row("qos1")) {
      Header("2. QoS 1 delivered throughput (64 B, in-flight window 64 for both)", columns);
      ThroughputRows("qos1_64", "QoS1 64 B", transports_);
    }
    if (Row("latency")) {
      Header(
          "3. QoS 1 round trip (µs, p50 / p99 / max; ping-pong through the "
          "broker)",
          {"transport", "hublink", "Paho", "Paho+NODELAY", "p50 vs Paho", "p50 vs Paho+N",
           "p99 vs Paho+N"});
      for (const std::string& transport : transports_) {
        std::vector<std::string> cells = {transport};
        double p50[3], p99[3];
        for (int v = 0; v < 3; ++v) {
          const std::vector<Values>& runs = table_["latency"][v][transport];
          p50[v] = Median(runs, "p50_us");
          p99[v] = Median(runs, "p99_us");
          std::string cell = absl::StrCat(Number(p50[v]), " / ", Number(p99[v]), " / ",
                                          Number(Median(runs, "max_us")));
          if (Count(runs, "capped") > 0) {
            cell += absl::StrCat(" (n=", Number(Median(runs, "n")), ", time-capped)");
          }
          cells.push_back(cell);
        }
        cells.push_back(Ratio(p50[0], p50[1], false));
        cells.push_back(Ratio(p50[0], p50[2], false));
        cells.push_back(Ratio(p99[0], p99[2], false));
        Line(cells);
      }
    }
    if (Row("connect")) {
      Header("4. Connect time to CONNACK (ms, median of per-run medians)",
             {"transport", "hublink", "Paho", "hublink vs Paho",
              "bare-socket probe: tcp / tls / upgrade / connack = total"});
      for (const std::string& transport : transports_) {
        std::vector<std::string> cells = {transport};
        double p50[2];
        for (int v = 0; v < 2; ++v) {
          p50[v] = Cell("connect", static_cast<Variant>(v), transport, "p50_ms");
          cells.push_back(Number(p50[v], 2));
        }
        cells.push_back(Ratio(p50[0], p50[1], false));
        const std::vector<Values>& probe = probe_[transport];
        cells.push_back(absl::StrCat(
            Number(Median(probe, "tcp_ms"), 2), " / ", Number(Median(probe, "tls_ms"), 2), " / ",
            Number(Median(probe, "upgrade_ms"), 2), " / ", Number(Median(probe, "connack_ms"), 2),
            " = ", Number(Median(probe, "p50_ms"), 2), " (max ", Number(Median(probe, "max_ms"), 0),
            ")"));
        Line(cells);
      }
    }
    if (Row("qos0")) {
      Header(
          "5. Client CPU seconds per 100k delivered messages (publisher + "
          "subscriber "
          "process) and peak RSS",
          {"row", "transport", "hublink", "Paho", "Paho+NODELAY", "hublink vs Paho",
           "peak RSS KiB (h / P / P+N)"});
      for (const std::pair<const char*, const char*>& row :
           {std::make_pair("qos0_64", "QoS0 64 B"), std::make_pair("qos0_4k", "QoS0 4 KiB"),
            std::make_pair("qos1_64", "QoS1 64 B")}) {
        if (table_.find(row.first) == table_.end()) continue;
        for (const std::string& transport : transports_) {
          std::vector<std::string> cells = {row.second, transport};
          double cpu[3];
          std::string rss;
          for (int v = 0; v < 3; ++v) {
            cpu[v] = Cell(row.first, static_cast<Variant>(v), transport, "cpu_per_100k");
            cells.push_back(Number(cpu[v], 3));
            absl::StrAppend(&rss, v ? " / " : "",
                            Number(Cell(row.first, static_cast<Variant>(v), transport, "rss_kib")));
          }
          cells.push_back(Ratio(cpu[0], cpu[1], false));
          cells.push_back(rss);
          Line(cells);
        }
      }
    }
    if (Row("allocs")) {
      Header(
          "6. Heap allocations per published message, steady state "
          "(malloc/calloc/realloc "
          "calls of the whole process)",
          {"row", "transport", "hublink", "Paho", "hublink bytes/msg", "Paho bytes/msg"});
      for (const char* key : {"allocs_qos0", "allocs_qos1"}) {
        for (const std::string& transport : transports_) {
          if (transport != "tcp" && transport != "wss") continue;
          Line({key[10] == '0' ? "QoS0 64 B" : "QoS1 64 B", transport,
                Number(Cell(key, kHublink, transport, "allocs_per_msg"), 2),
                Number(Cell(key, kPaho, transport, "allocs_per_msg"), 2),
                Number(Cell(key, kHublink, transport, "alloc_bytes_per_msg"), 0),
                Number(Cell(key, kPaho, transport, "alloc_bytes_per_msg"), 0)});
        }
      }
    }
    if (Row("cross")) {
      Header(
          "7. Cross pairing, QoS 0 64 B: publisher and subscriber in separate processes, "
          "any library on either side (subscriber's window: first message to last)",
          {"publisher", "subscriber", "transport", "msgs/s at the subscriber", "broker µs/msg",
           "pub CPU s/100k", "sub CPU s/100k"});
      for (const std::string& transport : pair_transports_) {
        for (Variant pub : {kHublink, kPaho}) {
          for (Variant sub : {kHublink, kPaho}) {
            const std::vector<Values>& runs = cross_[transport][pub][sub];
            std::string rate = Number(Median(runs, "msgs_per_s")) + RunFlags(runs);
            Line({kVariantNames[pub], kVariantNames[sub], transport, rate,
                  Number(Median(runs, "broker_us_per_msg"), 2),
                  Number(Median(runs, "pub_cpu_per_100k"), 3),
                  Number(Median(runs, "cpu_per_100k"), 3)});
          }
        }
      }
    }
    if (Row("paced")) {
      Header("8. QoS 0 64 B paced to an offered rate (msgs/s at the subscriber)",
             {"offered rate", "transport", "hublink", "Paho", "Paho+NODELAY", "hublink vs Paho",
              "vs Paho+NODELAY", "broker CPU (h / P / P+N)", "broker µs/msg (h / P / P+N)",
              "client CPU s/100k (h / P / P+N)"});
      for (int64_t rate : paced_rates_) {
        ThroughputRows(absl::StrCat("paced_", rate), absl::StrCat(rate, "/s"), pair_transports_,
                       /*client_cpu=*/true);
      }
    }
    if (Row("spin")) SpinReport();
    if (Row("shared")) {
      VariantTable(
          "10. hublink with shared libraries (--config=shared_deps: protobuf and Abseil as "
          "Debian's shared objects, not linked statically)",
          kHublinkShared, "shared_", "h sh");
    }
  }

  // One hublink variant's cells (keys `prefix` + qos0_64, qos0_4k, qos1_64) against this run's
  // hublink and Paho cells of the qos0 and qos1 rows ("n/a" where those rows were not run). Ratios
  // as elsewhere: >1 = the variant better. `short_name` heads the "x / h / P" columns.
  void VariantTable(const std::string& title, Variant variant, const std::string& prefix,
                    const std::string& short_name) {
    const std::string trio = absl::StrCat(" (", short_name, " / h / P)");
    Header(title,
           {"row", "transport", absl::StrCat(kVariantNames[variant], " msgs/s"), "vs hublink",
            "vs Paho", "broker µs/msg" + trio, "client CPU s/100k" + trio, "peak RSS KiB" + trio});
    const Variant compared[] = {variant, kHublink, kPaho};
    for (const auto& [key, label] :
         {std::make_pair("qos0_64", "QoS0 64 B"), std::make_pair("qos0_4k", "QoS0 4 KiB"),
          std::make_pair("qos1_64", "QoS1 64 B")}) {
      const std::string variant_key = prefix + key;
      for (const std::string& transport : transports_) {
        double rate[3];
        std::string broker, cpu, rss;
        for (int i = 0; i < 3; ++i) {
          const std::string& k = compared[i] == variant ? variant_key : key;
          rate[i] = CellIfRun(k, compared[i], transport, "msgs_per_s");
          absl::StrAppend(&broker, i ? " / " : "",
                          NumberOrNa(CellIfRun(k, compared[i], transport, "broker_us_per_msg"), 2));
          absl::StrAppend(&cpu, i ? " / " : "",
                          NumberOrNa(CellIfRun(k, compared[i], transport, "cpu_per_100k"), 3));
          absl::StrAppend(&rss, i ? " / " : "",
                          NumberOrNa(CellIfRun(k, compared[i], transport, "rss_kib")));
        }
        std::string cell = NumberOrNa(rate[0]);
        if (const std::vector<Values>* runs = Find(variant_key, variant, transport)) {
          cell += RunFlags(*runs);
        }
        Line({label, transport, cell, Ratio(rate[0], rate[1], true), Ratio(rate[0], rate[2], true),
              broker, cpu, rss});
      }
    }
  }

  // Section 9: hublink+spin, and its round trips against this run's latency row.
  void SpinReport() {
    VariantTable(absl::StrCat("9. hublink with spin_before_sleep = ", spin_us_, " µs"),
                 kHublinkSpin, "spin_", "h+s");
    out_ += "\n";
    Line({"row", "transport", "p50 / p99 µs: hublink+spin", "hublink", "Paho+NODELAY",
          "p50 vs hublink", "p50 vs Paho+N", "p99 vs Paho+N"});
    Line(std::vector<std::string>(8, "---"));
    for (const std::string& transport : transports_) {
      const std::pair<std::string, Variant> cells[] = {
          {"spin_latency", kHublinkSpin}, {"latency", kHublink}, {"latency", kPahoNodelay}};
      std::vector<std::string> line = {"QoS1 round trip", transport};
      double p50[3], p99[3];
      for (int i = 0; i < 3; ++i) {
        p50[i] = CellIfRun(cells[i].first, cells[i].second, transport, "p50_us");
        p99[i] = CellIfRun(cells[i].first, cells[i].second, transport, "p99_us");
        std::string cell =
            p50[i] == -2 ? "n/a" : absl::StrCat(Number(p50[i]), " / ", Number(p99[i]));
        const std::vector<Values>* runs = Find(cells[i].first, cells[i].second, transport);
        if (runs != nullptr && Count(*runs, "capped") > 0) cell += " (time-capped)";
        line.push_back(cell);
      }
      line.push_back(Ratio(p50[0], p50[1], false));
      line.push_back(Ratio(p50[0], p50[2], false));
      line.push_back(Ratio(p99[0], p99[2], false));
      Line(line);
    }
  }

  int Main() {
    if (absl::Status valid = Validate(); !valid.ok()) {
      std::fprintf(stderr, "bench: %s\n", std::string(valid.message()).c_str());
      return 2;
    }
    absl::Status started = Start();
    if (!started.ok()) {
      std::fprintf(stderr, "bench: %s\n", started.ToString().c_str());
      return 1;
    }
    const absl::Time begin = absl::Now();
    const absl::Duration broker_cpu0 = ProcessCpuOf(broker_->process().pid());
    const std::vector<Variant> all = {kHublink, kPaho, kPahoNodelay};
    const std::vector<std::string>& transports = transports_;
    const std::string throughput =
        absl::StrCat("--scenario=throughput --seconds=", sizes_.throughput_seconds);
    // The spin and shared rows reuse these.
    const std::string qos0_64_args = absl::StrCat(
        throughput, " --qos=0 --size=64 --window=256 --count=", sizes_.qos0_small_count);
    const std::string qos0_4k_args = absl::StrCat(
        throughput, " --qos=0 --size=4096 --window=256 --count=", sizes_.qos0_large_count);
    const std::string qos1_64_args =
        absl::StrCat(throughput, " --qos=1 --size=64 --window=64 --count=", sizes_.qos1_count);
    const std::string latency_args =
        absl::StrCat("--scenario=latency --warmup=5 --count=", sizes_.latency_count,
                     " --seconds=", sizes_.latency_seconds);
    if (Row("qos0")) {
      RunMatrix("qos0_64", qos0_64_args, all, transports);
      // A reference, not a ceiling: a raw publisher in 64 KiB writes, no client library.
      for (int rep = 0; rep < reps_; ++rep) {
        std::fprintf(stderr, "bench: raw-socket reference rep %d\n", rep + 1);
        ceiling_.push_back(
            RunBinary(flags_.Get("probe_bin"), "tcp",
                      absl::StrCat("--flood --size=64 --count=", sizes_.qos0_small_count,
                                   " --seconds=", sizes_.throughput_seconds)));
      }
      RunMatrix("qos0_4k", qos0_4k_args, all, transports);
    }
    if (Row("qos1")) {
      RunMatrix("qos1_64", qos1_64_args, all, transports);
    }
    if (Row("spin")) {
      RunVariantRow("spin", kHublinkSpin,
                    {{"spin_qos0_64", qos0_64_args},
                     {"spin_qos0_4k", qos0_4k_args},
                     {"spin_qos1_64", qos1_64_args},
                     {"spin_latency", latency_args}},
                    transports);
    }
    if (Row("shared")) {
      RunVariantRow("shared", kHublinkShared,
                    {{"shared_qos0_64", qos0_64_args},
                     {"shared_qos0_4k", qos0_4k_args},
                     {"shared_qos1_64", qos1_64_args}},
                    transports);
    }
    if (Row("latency")) {
      RunMatrix("latency", latency_args, all, transports);
    }
    if (Row("connect")) {
      // Without Paho+NODELAY: each connect step is one write awaiting a reply,
      // which Nagle never holds back (measured equal to Paho as shipped: see
      // README.md).
      RunMatrix("connect",
                absl::StrCat("--scenario=connect --count=", sizes_.connect_count,
                             " --seconds=", sizes_.connect_seconds),
                {kHublink, kPaho}, transports);
      const absl::Time probe_start = absl::Now();
      for (int rep = 0; rep < reps_; ++rep) {
        for (const std::string& transport : transports) {
          std::fprintf(stderr, "bench: probe %s rep %d\n", transport.c_str(), rep + 1);
          probe_[transport].push_back(RunBinary(
              flags_.Get("probe_bin"), transport,
              absl::StrCat("--count=", sizes_.probe_count, " --seconds=", sizes_.connect_seconds)));
        }
      }
      absl::StrAppendFormat(&timing_, "probe %.0f s, ",
                            absl::ToDoubleSeconds(absl::Now() - probe_start));
    }
    const std::string qos0_small =
        absl::StrCat(" --qos=0 --size=64 --window=256 --count=", sizes_.qos0_small_count);
    if (Row("cross")) {
      RunCross(absl::StrCat(throughput, qos0_small), sizes_.throughput_seconds);
    }
    if (Row("paced")) {
      for (int64_t rate : paced_rates_) {
        // Long enough for the whole count at the offered rate.
        const double seconds =
            std::max(sizes_.throughput_seconds,
                     1.5 * static_cast<double>(sizes_.qos0_small_count) / rate + 1);
        RunMatrix(
            absl::StrCat("paced_", rate),
            absl::StrCat("--scenario=throughput --seconds=", seconds, qos0_small, " --rate=", rate),
            all, pair_transports_);
      }
    }
    if (Row("allocs")) {
      for (int qos : {0, 1}) {
        RunMatrix(absl::StrCat("allocs_qos", qos),
                  absl::StrCat("--scenario=allocs --qos=", qos, " --size=64 --window=64 --count=",
                               sizes_.allocs_count, " --warmup=", sizes_.allocs_count / 10),
                  {kHublink, kPaho}, {"tcp", "wss"});
      }
    }
    const absl::Duration elapsed = absl::Now() - begin;
    Report();
    std::printf("%s\n", out_.c_str());
    std::string mode = quick_ ? "Quick" : "Full";
    if (flags_.Has("count_scale")) {
      absl::StrAppend(&mode, " (counts x", flags_.Get("count_scale"), ")");
    }
    std::printf(
        "%s mode, %d repetitions, %d client runs (%d failed) in %.0f s (%s); "
        "broker CPU "
        "over the whole run %.1f s.\n",
        mode.c_str(), reps_, runs_, failures_, absl::ToDoubleSeconds(elapsed), timing_.c_str(),
        absl::ToDoubleSeconds(ProcessCpuOf(broker_->process().pid()) - broker_cpu0));
    return failures_ == 0 ? 0 : 3;
  }

 private:
  const Flags& flags_;
  bool quick_ = false;
  int reps_ = 3;
  Sizes sizes_;
  std::vector<std::string> rows_;
  std::vector<std::string> transports_;
  std::vector<std::string> pair_transports_;  // cross and paced
  std::vector<int64_t> paced_rates_;
  int64_t spin_us_ = 20;  // hublink+spin's --spin_us
  std::string log_file_;
  std::string ca_file_;
  std::unique_ptr<MosquittoBroker> broker_;
  std::map<std::string, int> ports_;
  int run_counter_ = 0;
  int runs_ = 0;
  int failures_ = 0;
  Table table_;
  std::map<std::string, std::vector<Values>> probe_;
  std::vector<Values> ceiling_;
  // transport -> publisher variant -> subscriber variant -> one Values per repetition.
  std::map<std::string, std::map<int, std::map<int, std::vector<Values>>>> cross_;
  std::string out_;
  std::string timing_;
};

}  // namespace
}  // namespace bench
}  // namespace hublink

int main(int argc, char** argv) {
  hublink::bench::Flags flags(argc, argv);
  hublink::bench::Driver driver(flags);
  return driver.Main();
}
