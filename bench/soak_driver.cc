#include "bench/soak_driver.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "plugins/event_loop.h"
#include "tests/test_util.h"
#include "tools/faultproxy/proxy.h"

namespace hublink {
namespace bench {
namespace {

using testing::MosquittoBroker;
using testing::Subprocess;

// How long each fault lasts and how long the run waits after it, all derived from the keep-alive.
struct Plan {
  absl::Duration keep_alive, ping_timeout;
  absl::Duration silent;   // blackhole, stall, SIGSTOP: longer than any client's detection
  absl::Duration shaping;  // segment, latency
  absl::Duration down;     // broker restart: time between its exit and its start
  absl::Duration gap;      // after each fault
  absl::Duration warmup, tail;
  absl::Duration latency, jitter;  // a round trip stays under the ping timeout
  absl::Duration connect_timeout;
  int rounds = 1;
  struct Slot {
    std::string kind;
    absl::Duration length;
    absl::Duration gap;
  };
  std::vector<Slot> slots;
  absl::Duration qos2_after;  // from the timeline's start
  absl::Duration total;
};

bool Silent(const std::string& kind) {
  return kind == "blackhole" || kind == "stall" || kind == "sigstop";
}

Plan MakePlan(const SoakOptions& options) {
  Plan p;
  p.keep_alive = absl::Seconds(options.keep_alive_s);
  p.ping_timeout = p.keep_alive / 2;
  // Paho pings after a keep-alive without sending or receiving and gives up after another one
  // unanswered; a publisher keeps sending until its in-flight window is full: over 2 x KA.
  p.silent = 3 * p.keep_alive + absl::Seconds(1);
  p.shaping = p.keep_alive + absl::Seconds(1);
  p.down = std::max(absl::Seconds(1), p.keep_alive / 2);
  p.gap = 2 * p.keep_alive + absl::Seconds(1);
  p.warmup = p.keep_alive;
  p.tail = p.keep_alive;
  p.latency = p.ping_timeout / 4;
  p.jitter = p.ping_timeout / 8;
  p.connect_timeout = p.keep_alive;
  auto length = [&](const std::string& kind) {
    if (Silent(kind)) return p.silent;
    if (kind == "segment" || kind == "latency") return p.shaping;
    if (kind == "restart") return p.down;
    return absl::ZeroDuration();
  };
  const std::vector<std::string> proxy_kinds = {"blackhole", "reset", "segment", "latency",
                                                "stall"};
  absl::Duration round = absl::ZeroDuration();
  for (const std::string& kind : proxy_kinds) round += length(kind) + p.gap;
  // Two restarts (plus ~1 s each to stop and start mosquitto) and one SIGSTOP.
  const absl::Duration broker = 2 * (p.down + absl::Seconds(1) + p.gap) + length("sigstop") + p.gap;
  const absl::Duration fixed = p.warmup + p.tail + broker;
  p.rounds = std::max<int64_t>(1, (options.duration - fixed) / round);
  std::mt19937_64 rng(options.seed);
  std::vector<std::string> kinds;
  for (int r = 0; r < p.rounds; ++r) {
    std::vector<std::string> order = proxy_kinds;
    for (size_t i = order.size() - 1; i > 0; --i) {
      std::swap(order[i], order[rng() % (i + 1)]);
    }
    kinds.insert(kinds.end(), order.begin(), order.end());
  }
  // The broker faults at a quarter, half and 85 % of the run; the second restart falls in the
  // QoS 2 phase (from 60 %).
  const size_t n = kinds.size();
  std::vector<std::pair<size_t, std::string>> broker_faults = {
      {n * 85 / 100, "restart"}, {n / 2, "sigstop"}, {n / 4, "restart"}};
  for (const auto& [at, kind] : broker_faults) kinds.insert(kinds.begin() + at, kind);
  absl::Duration used = fixed + p.rounds * round;
  absl::Duration extra =
      std::max(absl::ZeroDuration(), options.duration - used) / static_cast<int64_t>(kinds.size());
  absl::Duration t = p.warmup;
  const size_t qos2_slot = kinds.size() * 6 / 10;
  for (size_t i = 0; i < kinds.size(); ++i) {
    // A seeded splay of up to a quarter keep-alive, so faults do not land on a fixed phase of the
    // clients' ping timers.
    absl::Duration splay = p.keep_alive * (static_cast<double>(rng() % 1000) / 4000.0);
    Plan::Slot slot{kinds[i], length(kinds[i]), p.gap + extra + splay};
    if (i == qos2_slot) p.qos2_after = t;
    t +=
        slot.length + slot.gap + (slot.kind == "restart" ? absl::Seconds(1) : absl::ZeroDuration());
    p.slots.push_back(slot);
  }
  p.total = t + p.tail;
  return p;
}

std::string Secs(absl::Duration d, int digits = 1) {
  return absl::StrFormat("%.*f", digits, absl::ToDoubleSeconds(d));
}

// The proxies on one loop thread; commands run there.
class Proxies {
 public:
  absl::Status Start(const std::map<std::string, int>& upstream_ports) {
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
    if (!loop.ok()) return loop.status();
    loop_ = *std::move(loop);
    for (const auto& [transport, port] : upstream_ports) {
      faultproxy::ProxyOptions options;
      options.upstream.port = port;
      options.enable_control = false;
      absl::StatusOr<std::unique_ptr<faultproxy::Proxy>> proxy =
          faultproxy::Proxy::Create(loop_.get(), options);
      if (!proxy.ok()) return proxy.status();
      ports_[transport] = (*proxy)->listen_port();
      proxies_.push_back(*std::move(proxy));
    }
    thread_ = std::thread([this] { loop_->Run(); });
    return absl::OkStatus();
  }

  ~Proxies() {
    if (!thread_.joinable()) return;
    loop_->Post([this] {
      proxies_.clear();
      loop_->Stop();
    });
    thread_.join();
  }

  int port(const std::string& transport) { return ports_[transport]; }

  // Runs `command` on every proxy; returns the time just before the first one and the replies.
  absl::Time Execute(const std::string& command, std::vector<std::string>* replies) {
    std::promise<std::pair<absl::Time, std::vector<std::string>>> done;
    auto result = done.get_future();
    loop_->Post([&] {
      absl::Time at = absl::Now();
      std::vector<std::string> out;
      for (auto& proxy : proxies_) out.push_back(proxy->Execute(command));
      done.set_value({at, out});
    });
    auto [at, out] = result.get();
    *replies = out;
    return at;
  }

 private:
  std::unique_ptr<EventLoop> loop_;
  std::vector<std::unique_ptr<faultproxy::Proxy>> proxies_;
  std::map<std::string, int> ports_;
  std::thread thread_;
};

struct Client {
  std::string library, transport;
  std::string events_file, log_file;
  std::unique_ptr<Subprocess> process;
  bool ready = false;
  bool exited_early = false;  // gone before "stop"
  int status = 0;             // as waitpid reports it
};

bool FileHasReady(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "T ") && absl::StrContains(line, " ready ")) return true;
    if (absl::StartsWith(line, "D ")) return false;
  }
  return false;
}

// ---- Analysis
// ------------------------------------------------------------------------------------

struct Transition {
  absl::Time t;
  bool up;
  std::string detail;
};

struct Parsed {
  std::vector<Transition> roles[2];  // 0 pub, 1 sub
  std::vector<std::string> gaveup;
  std::vector<int> qos;  // by seq, 0 = never published
  std::vector<absl::Time> acked_at;
  std::vector<int> ack;  // 0 none, 1 ok, 2 failed
  std::vector<std::string> fail_reason;
  std::vector<int> received;
  std::vector<int> received_qos;
  std::vector<absl::Time> received_at;
  bool ready = false, drained = false, ended = false;
  int64_t rss[2] = {0, 0}, fds[2] = {0, 0};
  double cpu = 0;
  absl::Time last_ack = absl::InfinitePast();  // the last successful completion
  absl::Time drain_end = absl::InfiniteFuture();
};

absl::Time FromUs(absl::string_view text) {
  int64_t us = 0;
  (void)absl::SimpleAtoi(text, &us);
  return absl::FromUnixMicros(us);
}

void Grow(Parsed& p, uint64_t seq) {
  if (seq < p.qos.size()) return;
  size_t n = std::max<size_t>(seq + 1, p.qos.size() * 2);
  p.qos.resize(n, 0);
  p.acked_at.resize(n, absl::InfinitePast());
  p.ack.resize(n, 0);
  p.fail_reason.resize(n);
  p.received.resize(n, 0);
  p.received_qos.resize(n, 0);
  p.received_at.resize(n, absl::InfinitePast());
}

Parsed ParseEvents(const std::string& path) {
  Parsed p;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<absl::string_view> w = absl::StrSplit(line, ' ');
    if (w.size() < 3) continue;
    absl::Time t = FromUs(w[1]);
    uint64_t seq = 0;
    if (w[0] == "T" && w.size() >= 6) {
      int i = w[2] == "ready" ? 0 : 1;
      (void)absl::SimpleAtoi(w[3], &p.rss[i]);
      (void)absl::SimpleAtoi(w[4], &p.fds[i]);
      if (i == 0) p.ready = true;
      if (i == 1) {
        (void)absl::SimpleAtod(w[5], &p.cpu);
        p.ended = true;
      }
    } else if (w[0] == "E" && w.size() >= 4) {
      int role = w[2] == "pub" ? 0 : 1;
      std::string detail = absl::StrJoin(w.begin() + 4, w.end(), " ");
      if (w[3] == "connected") p.roles[role].push_back({t, true, detail});
      if (w[3] == "lost") p.roles[role].push_back({t, false, detail});
      if (w[3] == "gaveup") p.gaveup.push_back(absl::StrCat(w[2], ": ", detail));
    } else if (w[0] == "P" && w.size() >= 4 && absl::SimpleAtoi(w[2], &seq)) {
      Grow(p, seq);
      (void)absl::SimpleAtoi(w[3], &p.qos[seq]);
    } else if (w[0] == "A" && w.size() >= 4 && absl::SimpleAtoi(w[2], &seq)) {
      Grow(p, seq);
      // Completions after the drain gave up are the client's own shutdown cancelling them: those
      // publishes never completed.
      if (p.ack[seq] != 0 || t > p.drain_end) continue;
      p.ack[seq] = w[3] == "ok" ? 1 : 2;
      p.acked_at[seq] = t;
      if (p.ack[seq] == 1) p.last_ack = std::max(p.last_ack, t);
      if (p.ack[seq] == 2) p.fail_reason[seq] = absl::StrJoin(w.begin() + 4, w.end(), " ");
    } else if (w[0] == "R" && w.size() >= 5 && absl::SimpleAtoi(w[2], &seq)) {
      Grow(p, seq);
      if (p.received[seq]++ == 0) {
        p.received_at[seq] = t;
        (void)absl::SimpleAtoi(w[3], &p.received_qos[seq]);
      }
    } else if (w[0] == "D") {
      p.drained = w[2] == "drained";
      p.drain_end = t;
    }
  }
  return p;
}

bool UpAt(const std::vector<Transition>& transitions, absl::Time t) {
  bool up = false;
  for (const Transition& tr : transitions) {
    if (tr.t > t) break;
    up = tr.up;
  }
  return up;
}

const char* const kRoles[] = {"publisher", "subscriber"};

class Analyzer {
 public:
  Analyzer(const Plan& plan, const std::vector<SoakFault>& timeline, absl::Time t0)
      : plan_(plan), timeline_(timeline), t0_(t0) {}

  std::string At(absl::Time t) const { return absl::StrCat("+", Secs(t - t0_), " s"); }

  // The fault in progress at `t`, or the next one; nullptr after the last one.
  const SoakFault* FaultAround(absl::Time t) const {
    for (const SoakFault& f : timeline_) {
      if (f.end >= t) return &f;
    }
    return nullptr;
  }
  std::string FaultName(absl::Time t) const {
    const SoakFault* f = FaultAround(t);
    return f == nullptr ? "after the last fault" : f->name;
  }

  void Analyze(const Parsed& p, SoakClientResult& r) const {
    r.ran = p.ready;
    r.drained = p.drained;
    r.rss_kib[0] = p.rss[0];
    r.rss_kib[1] = p.rss[1];
    r.fds[0] = p.fds[0];
    r.fds[1] = p.fds[1];
    r.cpu_s = p.cpu;
    if (!p.ready) {
      r.problems.push_back("never got ready (connect + subscribe) on a clean network");
      return;
    }
    for (const std::string& g : p.gaveup) r.problems.push_back(absl::StrCat("gave up: ", g));
    // Messages.
    std::map<std::string, std::vector<uint64_t>> lost_by_fault;
    std::map<std::string, int64_t> dups_by_fault;
    std::string first_failure;
    for (uint64_t seq = 1; seq < p.qos.size(); ++seq) {
      const int q = p.qos[seq];
      if (q < 1 || q > 2) continue;
      ++r.published[q];
      if (p.ack[seq] == 1) ++r.acked[q];
      if (p.ack[seq] == 2) {
        ++r.failed[q];
        if (first_failure.empty()) {
          first_failure =
              absl::StrCat("seq ", seq, " at ", At(p.acked_at[seq]), ": ", p.fail_reason[seq]);
        }
      }
      if (p.ack[seq] == 0) ++r.unacked;
      if (p.received[seq] > 0) ++r.received[q];
      if (p.received[seq] > 1) {
        r.duplicates[q] += p.received[seq] - 1;
        dups_by_fault[absl::StrCat("QoS ", q, " ", FaultName(p.received_at[seq]))] +=
            p.received[seq] - 1;
      }
      if (p.ack[seq] == 1 && p.received[seq] == 0) {
        ++r.lost[q];
        lost_by_fault[absl::StrCat(FaultName(p.acked_at[seq]), " (QoS ", q, ")")].push_back(seq);
      }
    }
    for (int i : {1, 2}) {
      r.published[0] += r.published[i];
      r.acked[0] += r.acked[i];
      r.failed[0] += r.failed[i];
      r.received[0] += r.received[i];
      r.duplicates[0] += r.duplicates[i];
      r.lost[0] += r.lost[i];
    }
    for (const auto& [fault, seqs] : lost_by_fault) {
      r.problems.push_back(absl::StrFormat(
          "LOST %d acknowledged messages around %s: seq %d..%d, acknowledged %s..%s", seqs.size(),
          fault, seqs.front(), seqs.back(), At(p.acked_at[seqs.front()]),
          At(p.acked_at[seqs.back()])));
    }
    if (r.failed[0] > 0) {
      r.notes.push_back(
          absl::StrCat(r.failed[0], " publishes completed with an error; first: ", first_failure));
    }
    for (const auto& [what, count] : dups_by_fault) {
      r.notes.push_back(absl::StrCat(count, " duplicates, ", what));
    }
    // Connections.
    for (int role = 0; role < 2; ++role) {
      const std::vector<Transition>& tr = p.roles[role];
      for (const Transition& t : tr) r.lost_connections += t.up ? 0 : 1;
      for (size_t i = 0; i < timeline_.size(); ++i) {
        const SoakFault& f = timeline_[i];
        const bool up_at_start = UpAt(tr, f.start);
        // Dead-link detection: the first loss after a silent fault began.
        if (f.silent && up_at_start) {
          const Transition* lost = nullptr;
          for (const Transition& t : tr) {
            if (!t.up && t.t > f.start && t.t <= f.end + absl::Seconds(1)) {
              lost = &t;
              break;
            }
          }
          if (lost != nullptr) {
            r.detection_s.push_back(absl::ToDoubleSeconds(lost->t - f.start));
            r.detection_by_kind[f.kind].push_back(r.detection_s.back());
          } else {
            r.problems.push_back(absl::StrCat("the ", kRoles[role], " did not notice ", f.name,
                                              " (", At(f.start), ", ", Secs(f.end - f.start),
                                              " s): still connected at its end"));
          }
        }
        // Recovery: did this fault take the connection down, and when was it back?
        absl::Time down_since = absl::InfinitePast();
        if (!up_at_start) down_since = f.start;
        for (const Transition& t : tr) {
          if (!t.up && t.t >= f.start && t.t <= f.end + absl::Seconds(1)) down_since = t.t;
        }
        if (down_since == absl::InfinitePast()) continue;
        const Transition* back = nullptr;
        for (const Transition& t : tr) {
          if (t.up && t.t > down_since) {
            back = &t;
            break;
          }
        }
        if (back == nullptr) {
          r.problems.push_back(absl::StrCat("the ", kRoles[role], " never came back after ", f.name,
                                            " (down since ", At(down_since), ")"));
          continue;
        }
        r.recovery_s.push_back(
            absl::ToDoubleSeconds(std::max(absl::ZeroDuration(), back->t - f.end)));
        r.recovery_by_kind[f.kind].push_back(r.recovery_s.back());
        if (i + 1 < timeline_.size() && back->t > timeline_[i + 1].start) {
          r.notes.push_back(absl::StrCat("the ", kRoles[role], " was back after ", f.name,
                                         " only at ", At(back->t), ", after ",
                                         timeline_[i + 1].name, " had started"));
        }
      }
    }
    if (!p.drained) {
      const bool pub_up = !p.roles[0].empty() && p.roles[0].back().up;
      const bool sub_up = !p.roles[1].empty() && p.roles[1].back().up;
      r.problems.push_back(
          absl::StrCat("HANG: the drain timed out (", r.unacked, " publishes never completed, ",
                       p.ended ? "" : "the client never finished, ", "the last acknowledgement at ",
                       At(p.last_ack), ", around ", FaultName(p.last_ack),
                       "); at the end the publisher was ", pub_up ? "connected" : "disconnected",
                       ", the subscriber ", sub_up ? "connected" : "disconnected"));
    }
  }

 private:
  const Plan& plan_;
  const std::vector<SoakFault>& timeline_;
  const absl::Time t0_;
};

std::string P50Max(std::vector<double> values, int digits = 2) {
  if (values.empty()) return "-";
  double p50 = Percentile(values, 50);
  double max = *std::max_element(values.begin(), values.end());
  return absl::StrFormat("%.*f / %.*f (n=%d)", digits, p50, digits, max, values.size());
}

std::string Report(const SoakOptions& options, const Plan& plan, const SoakReport& report,
                   absl::Time t0) {
  std::string out;
  absl::StrAppendFormat(
      &out,
      "Soak: %s s of faults (%d round(s)), seed %d, keep-alive %s s (hublink ping timeout %s s), "
      "%.0f msg/s per publisher, %d B payloads, QoS 1 then QoS 2 from +%s s; clean_session false, "
      "mosquitto persistence on; %s s in all\n\n",
      Secs(plan.total, 0), plan.rounds, options.seed, Secs(plan.keep_alive, 0),
      Secs(plan.ping_timeout), options.rate, options.size, Secs(plan.qos2_after, 0),
      Secs(report.elapsed, 0));
  out += "Fault timeline (every transport and client at once):\n\n";
  std::vector<std::string> items;
  for (const SoakFault& f : report.timeline) {
    items.push_back(
        absl::StrCat(f.name, " +", Secs(f.start - t0), " s (", Secs(f.end - f.start), " s)"));
  }
  out += absl::StrCat(absl::StrJoin(items, ", "), "\n\n");
  out +=
      "| transport | client | published (QoS 1 + 2) | acked | received | lost | duplicates "
      "(QoS 1 / 2) | never completed | dead-link detection s, p50 / max | fault end → CONNACK s, "
      "p50 / max | links lost | RSS KiB start → end | fds start → end | CPU s | verdict |\n";
  out += "|" + std::string() + absl::StrJoin(std::vector<std::string>(15, " --- "), "|") + "|\n";
  const double bound = absl::ToDoubleSeconds(plan.keep_alive + plan.ping_timeout);
  for (const std::string& transport : options.transports) {
    for (const SoakClientResult& r : report.clients) {
      if (r.transport != transport) continue;
      std::string verdict = "ok";
      if (!r.ran) {
        verdict = "DID NOT RUN";
      } else if (!r.problems.empty()) {
        std::vector<std::string> what;
        if (r.lost[0] > 0) what.push_back(absl::StrCat("LOST ", r.lost[0]));
        if (!r.drained) what.push_back("HANG");
        if (what.empty()) what.push_back("see problems");
        verdict = absl::StrJoin(what, ", ");
      }
      std::string detection = P50Max(r.detection_s);
      if (!r.detection_s.empty()) {
        double max = *std::max_element(r.detection_s.begin(), r.detection_s.end());
        if (max > bound) detection += absl::StrFormat(" > %.1f", bound);
      }
      absl::StrAppendFormat(
          &out,
          "| %s | %s | %d (%d + %d) | %d | %d | %d | %d / %d | %d | %s | %s | %d | %d → %d | "
          "%d → %d | %.1f | %s |\n",
          r.transport, r.library, r.published[0], r.published[1], r.published[2], r.acked[0],
          r.received[0], r.lost[0], r.duplicates[1], r.duplicates[2], r.unacked, detection,
          P50Max(r.recovery_s), r.lost_connections, r.rss_kib[0], r.rss_kib[1], r.fds[0], r.fds[1],
          r.cpu_s, verdict);
    }
  }
  // By fault kind, every transport together.
  out += "\nBy fault (all transports; s, p50 / max over connections):\n\n| fault | ";
  std::vector<std::string> columns;
  for (const std::string& library : options.libraries) {
    columns.push_back(absl::StrCat(library, " detection"));
    columns.push_back(absl::StrCat(library, " fault end → CONNACK"));
  }
  out += absl::StrJoin(columns, " | ") + " |\n|" +
         absl::StrJoin(std::vector<std::string>(columns.size() + 1, " --- "), "|") + "|\n";
  std::vector<std::string> kinds;
  for (const SoakFault& f : report.timeline) {
    if (std::find(kinds.begin(), kinds.end(), f.kind) == kinds.end()) kinds.push_back(f.kind);
  }
  for (const std::string& kind : kinds) {
    std::vector<std::string> cells = {kind};
    for (const std::string& library : options.libraries) {
      std::vector<double> detection, recovery;
      for (const SoakClientResult& r : report.clients) {
        if (r.library != library) continue;
        auto d = r.detection_by_kind.find(kind);
        if (d != r.detection_by_kind.end()) {
          detection.insert(detection.end(), d->second.begin(), d->second.end());
        }
        auto c = r.recovery_by_kind.find(kind);
        if (c != r.recovery_by_kind.end()) {
          recovery.insert(recovery.end(), c->second.begin(), c->second.end());
        }
      }
      cells.push_back(Silent(kind) ? P50Max(detection) : "");
      cells.push_back(recovery.empty() ? "stayed connected" : P50Max(recovery));
    }
    out += absl::StrCat("| ", absl::StrJoin(cells, " | "), " |\n");
  }
  absl::StrAppendFormat(&out,
                        "\nDetection: fault start → the client's \"lost\" event, over blackholes, "
                        "read stalls and the SIGSTOP, for each connection up when it began "
                        "(hublink's bound: keep-alive + ping timeout = %.1f s; \"> bound\" "
                        "marks a maximum above it). Fault end → CONNACK: for each connection the "
                        "fault took down, from the fault's end (the broker listening again, for a "
                        "restart) to its next CONNACK.\n",
                        bound);
  bool any = false;
  for (const SoakClientResult& r : report.clients) {
    for (const std::string& p : r.problems) {
      if (!any) out += "\nProblems:\n";
      any = true;
      absl::StrAppend(&out, "- ", r.library, " ", r.transport, ": ", p, "\n");
    }
  }
  if (!any) out += "\nProblems: none.\n";
  any = false;
  for (const SoakClientResult& r : report.clients) {
    for (const std::string& n : r.notes) {
      if (!any) out += "\nNotes:\n";
      any = true;
      absl::StrAppend(&out, "- ", r.library, " ", r.transport, ": ", n, "\n");
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<SoakReport> RunSoak(const SoakOptions& options) {
  const absl::Time begin = absl::Now();
  // A client that died early has closed its stdin: writing "stop" to it must not kill the driver.
  signal(SIGPIPE, SIG_IGN);
  const Plan plan = MakePlan(options);
  auto log = [&](const std::string& line) {
    if (options.verbose) {
      std::fprintf(stderr, "soak: +%.1f s %s\n", absl::ToDoubleSeconds(absl::Now() - begin),
                   line.c_str());
    }
  };
  const std::string dir = absl::StrCat(testing::TempDir(), "/soak_", getpid());
  mkdir(dir.c_str(), 0755);
  const std::string persistence = dir + "/persistence/";
  mkdir(persistence.c_str(), 0755);
  auto certs = testing::MakeTestCertificates(dir, {"127.0.0.1", "localhost"});
  if (!certs.ok()) return certs.status();
  MosquittoBroker::Options broker_options;
  broker_options.websockets = true;
  broker_options.cert_file = certs->cert_file;
  broker_options.key_file = certs->key_file;
  // Persistent sessions survive the restarts; no queue limit, so the broker drops nothing; the
  // clients' window (64) on the broker's side too: with mosquitto's default of 20, a client
  // re-sending 64 unacknowledged QoS 2 publishes after a reconnect exceeds the broker's incoming
  // quota, and mosquitto 2.0.11 then answers PUBREC but drops the message and the connection
  // ("Bad socket read/write ... Unknown error"): seen here for both libraries alike.
  broker_options.extra_config = {"persistence true", "persistence_location " + persistence,
                                 "max_queued_messages 0", "max_inflight_messages 64",
                                 "set_tcp_nodelay true"};
  auto broker = MosquittoBroker::Start(broker_options);
  if (!broker.ok()) return broker.status();
  std::map<std::string, int> upstream = {{"tcp", (*broker)->tcp_port()},
                                         {"ws", (*broker)->ws_port()},
                                         {"tls", (*broker)->tls_port()},
                                         {"wss", (*broker)->wss_port()}};
  std::map<std::string, int> used;
  for (const std::string& t : options.transports) {
    if (upstream.count(t) == 0) return absl::InvalidArgumentError("unknown transport " + t);
    used[t] = upstream[t];
  }
  Proxies proxies;
  if (absl::Status s = proxies.Start(used); !s.ok()) return s;
  log(absl::StrCat("mosquitto pid ", (*broker)->process().pid(), ", files in ", dir));

  // The same count for every client: the whole run at the rate (a client that starts a little
  // late or is held up catches up).
  const int64_t count = static_cast<int64_t>(options.rate * absl::ToDoubleSeconds(plan.total));
  const int64_t qos2_from =
      static_cast<int64_t>(options.rate * absl::ToDoubleSeconds(plan.qos2_after)) + 1;
  std::vector<Client> clients;
  for (const std::string& transport : options.transports) {
    for (const std::string& library : options.libraries) {
      const std::string& binary = library == "paho" ? options.paho_bin : options.hublink_bin;
      if (binary.empty() || access(binary.c_str(), X_OK) != 0) {
        return absl::NotFoundError(
            absl::StrCat("the ", library, " soak client \"", binary, "\" is not an executable"));
      }
      Client c;
      c.library = library;
      c.transport = transport;
      c.events_file = absl::StrCat(dir, "/", library, "_", transport, ".events");
      c.log_file = absl::StrCat(dir, "/", library, "_", transport, ".log");
      std::vector<std::string> argv = {
          binary,
          "--transport=" + transport,
          absl::StrCat("--port=", proxies.port(transport)),
          "--ca_file=" + certs->ca_file,
          absl::StrCat("--id=", library, "-", transport, "-", getpid()),
          "--out=" + c.events_file,
          absl::StrCat("--keep_alive=", options.keep_alive_s),
          absl::StrCat("--rate=", options.rate),
          absl::StrCat("--size=", options.size),
          absl::StrCat("--count=", count),
          absl::StrCat("--qos2_from=", qos2_from),
          absl::StrCat("--drain_seconds=", absl::ToDoubleSeconds(options.drain)),
          absl::StrCat("--max_seconds=", absl::ToDoubleSeconds(plan.total + options.drain) + 120),
          absl::StrCat("--connect_timeout_s=", absl::ToInt64Seconds(plan.connect_timeout)),
          "--retry_min=1",
          "--retry_max=2",
          "--max_inflight=64"};
      Subprocess::Options process_options;
      process_options.stdin_pipe = true;
      process_options.output_file = c.log_file;
      auto process = Subprocess::Start(argv, process_options);
      if (!process.ok()) return process.status();
      c.process = *std::move(process);
      clients.push_back(std::move(c));
    }
  }
  // Everyone connected and subscribed on a clean network before the first fault (bounded).
  const absl::Time ready_by = absl::Now() + absl::Seconds(60);
  for (int i = 0; i < 6000; ++i) {
    bool all = true;
    for (Client& c : clients) {
      if (!c.ready) c.ready = FileHasReady(c.events_file);
      all = all && (c.ready || !c.process->Running());
    }
    if (all || absl::Now() > ready_by) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  log("clients ready; the storm starts");

  SoakReport report;
  report.keep_alive = plan.keep_alive;
  report.ping_timeout = plan.ping_timeout;
  const absl::Time t0 = absl::Now();
  absl::SleepFor(plan.warmup);
  std::map<std::string, int> counts;
  for (const Plan::Slot& slot : plan.slots) {
    SoakFault fault;
    fault.kind = slot.kind;
    fault.name = absl::StrCat(slot.kind, "#", ++counts[slot.kind]);
    fault.silent = Silent(slot.kind);
    std::vector<std::string> replies;
    std::string command;
    if (slot.kind == "blackhole") command = "blackhole dir=both";
    if (slot.kind == "stall") command = "stall dir=both";
    if (slot.kind == "reset") command = "reset";
    if (slot.kind == "segment") command = "segment size=1";
    if (slot.kind == "latency") {
      command = absl::StrCat("latency delay=", absl::ToInt64Milliseconds(plan.latency),
                             "ms jitter=", absl::ToInt64Milliseconds(plan.jitter), "ms");
    }
    if (!command.empty()) {
      fault.start = proxies.Execute(command, &replies);
      for (const std::string& reply : replies) {
        if (!absl::StartsWith(reply, "ok")) {
          return absl::InternalError(absl::StrCat("faultproxy refused \"", command, "\": ", reply));
        }
      }
      log(absl::StrCat(fault.name, " on: ", command, " -> ", absl::StrJoin(replies, "; ")));
      if (slot.length > absl::ZeroDuration()) {
        absl::SleepFor(slot.length);
        // One fault at a time: "clear" ends it on every proxy.
        fault.end = proxies.Execute("clear", &replies);
      } else {
        fault.end = fault.start;
      }
    } else if (slot.kind == "restart") {
      fault.start = absl::Now();
      (*broker)->process().Stop();  // SIGTERM: mosquitto saves its persistence file and exits
      absl::SleepFor(slot.length);
      if (absl::Status s = (*broker)->Restart(); !s.ok()) return s;
      fault.end = absl::Now();
      log(absl::StrCat(fault.name, ": mosquitto back, pid ", (*broker)->process().pid()));
    } else if (slot.kind == "sigstop") {
      fault.start = absl::Now();
      (*broker)->process().Signal(SIGSTOP);
      absl::SleepFor(slot.length);
      (*broker)->process().Signal(SIGCONT);
      fault.end = absl::Now();
    }
    log(absl::StrCat(fault.name, " over after ", Secs(fault.end - fault.start), " s"));
    report.timeline.push_back(fault);
    absl::SleepFor(slot.gap);
  }
  absl::SleepFor(plan.tail);
  log("faults over; stopping the publishers and draining");
  for (Client& c : clients) {
    c.exited_early = !c.process->Running();
    (void)c.process->WriteStdin("stop\n");
  }
  const absl::Time exit_by = absl::Now() + options.drain + absl::Seconds(20);
  for (int i = 0; i < 100000 && absl::Now() < exit_by; ++i) {
    bool any = false;
    for (Client& c : clients) any = any || c.process->Running();
    if (!any) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  for (Client& c : clients) c.status = c.process->Stop();
  report.elapsed = absl::Now() - t0;

  Analyzer analyzer(plan, report.timeline, t0);
  for (Client& c : clients) {
    SoakClientResult r;
    r.library = c.library;
    r.transport = c.transport;
    analyzer.Analyze(ParseEvents(c.events_file), r);
    if (c.exited_early || !WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
      // What it said last (a sanitizer report, a crash), for the table's problems.
      std::ifstream in(c.log_file);
      std::vector<std::string> tail;
      std::string line;
      bool report = false;  // a sanitizer report: its first lines say what and where
      for (int i = 0; i < 100000 && std::getline(in, line); ++i) {
        if (absl::StrContains(line, "faultproxy")) continue;
        if (absl::StrContains(line, "ERROR: AddressSanitizer") ||
            absl::StrContains(line, "runtime error:")) {
          report = true;
          tail.clear();
        }
        if (report && tail.size() >= 16) continue;
        tail.push_back(line);
        if (!report && tail.size() > 12) tail.erase(tail.begin());
      }
      r.problems.push_back(
          absl::StrCat("the client process ",
                       c.exited_early ? "was gone before the end of the storm" : "ended", " with ",
                       WIFEXITED(c.status) ? absl::StrCat("exit code ", WEXITSTATUS(c.status))
                                           : absl::StrCat("signal ", WTERMSIG(c.status)),
                       "; its log ends: ", absl::StrJoin(tail, " | ")));
    }
    report.clients.push_back(std::move(r));
  }
  report.text = Report(options, plan, report, t0);
  absl::StrAppend(&report.text, "\nEvent files and client logs: ", dir, "\n");
  return report;
}

std::vector<std::string> HublinkFailures(const SoakReport& report) {
  std::vector<std::string> failures;
  const double bound = absl::ToDoubleSeconds(report.keep_alive + report.ping_timeout);
  for (const SoakClientResult& r : report.clients) {
    if (r.library != "hublink") continue;
    const std::string who = absl::StrCat("hublink ", r.transport, ": ");
    if (!r.ran) failures.push_back(who + "did not run");
    for (const std::string& p : r.problems) failures.push_back(who + p);
    if (r.lost[0] != 0) failures.push_back(absl::StrCat(who, r.lost[0], " messages lost"));
    if (!r.drained) failures.push_back(who + "did not drain");
    for (double d : r.detection_s) {
      if (d > bound) {
        failures.push_back(
            absl::StrFormat("%sdetection took %.2f s > keep-alive + ping timeout "
                            "%.1f s",
                            who, d, bound));
      }
    }
  }
  return failures;
}

}  // namespace bench
}  // namespace hublink
