#include "tools/cli/fleet.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "plugins/builtin.h"
#include "plugins/event_loop.h"
#include "plugins/pipeline.h"
#include "plugins/status_macros.h"
#include "protocols/mqtt/client.h"
#include "protocols/mqtt/mqtt.pb.h"
#include "tools/cli/connection_flags.h"
#include "tools/cli/flags.h"
#include "tools/cli/service_command_util.h"

namespace hublink {
namespace cli {

// ---------------------------------------------------------------------------------------------
// LogHistogram

namespace {
constexpr double kBucketsPerDoubling = 8;
}  // namespace

void LogHistogram::Add(double micros) {
  int bucket =
      micros < 1 ? 0 : static_cast<int>(std::floor(std::log2(micros) * kBucketsPerDoubling)) + 1;
  AddBucket(bucket, 1);
}

void LogHistogram::AddBucket(int bucket, uint64_t count) {
  if (count == 0) return;
  buckets_[bucket] += count;
  count_ += count;
}

void LogHistogram::Merge(const LogHistogram& other) {
  for (const auto& [bucket, count] : other.buckets_) AddBucket(bucket, count);
}

double LogHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::max<uint64_t>(rank, 1);
  uint64_t seen = 0;
  for (const auto& [bucket, count] : buckets_) {
    seen += count;
    if (seen >= rank) {
      if (bucket == 0) return 0.5;
      return std::exp2((bucket - 0.5) / kBucketsPerDoubling);
    }
  }
  return std::exp2((buckets_.rbegin()->first - 0.5) / kBucketsPerDoubling);
}

// ---------------------------------------------------------------------------------------------
// Summary: JSON, merge, text

namespace {

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "0";
  return absl::StrFormat("%.6g", value);
}

// {"p50_ms": .., "p90_ms": .., "p99_ms": .., "count": N, "buckets": {"<bucket>": count, ...}}
std::string HistogramJson(const LogHistogram& h) {
  std::string out = absl::StrCat(
      "{\"count\": ", h.count(), ", \"p50_ms\": ", JsonNumber(h.Percentile(0.5) / 1000),
      ", \"p90_ms\": ", JsonNumber(h.Percentile(0.9) / 1000),
      ", \"p99_ms\": ", JsonNumber(h.Percentile(0.99) / 1000), ", \"buckets\": {");
  bool first = true;
  for (const auto& [bucket, count] : h.buckets()) {
    absl::StrAppend(&out, first ? "" : ", ", "\"", bucket, "\": ", count);
    first = false;
  }
  return out + "}}";
}

double Rate(double count, double seconds) { return seconds > 0 ? count / seconds : 0; }

double RssPerConnectionKib(const FleetSummary& s) {
  return s.connected > 0 ? static_cast<double>(s.rss_after_kib - s.rss_before_kib) / s.connected
                         : 0;
}

}  // namespace

std::string FleetSummaryToJson(const FleetSummary& s) {
  std::string out = "{\n";
  auto field = [&out](absl::string_view name, const std::string& value) {
    absl::StrAppend(&out, "  \"", name, "\": ", value, ",\n");
  };
  field("hublink_fleet", "1");
  field("shard", JsonString(s.shard));
  field("shards", absl::StrCat(s.shards));
  field("identities", absl::StrCat("{\"first\": ", s.identity_first, ", \"step\": ",
                                   s.identity_step, ", \"count\": ", s.clients, "}"));
  field("clients", absl::StrCat(s.clients));
  field("connected", absl::StrCat(s.connected));
  field("failed", absl::StrCat(s.failed));
  field("connect_wall_s", JsonNumber(s.connect_wall_s));
  field("connect_rate_per_s", JsonNumber(Rate(s.connected, s.connect_wall_s)));
  field("connect", HistogramJson(s.connect_us));
  field("handshake", HistogramJson(s.handshake_us));
  field("duration_s", JsonNumber(s.duration_s));
  field("messages_sent", absl::StrCat(s.messages_sent));
  field("messages_acked", absl::StrCat(s.messages_acked));
  field("publish_errors", absl::StrCat(s.publish_errors));
  field("messages_received", absl::StrCat(s.messages_received));
  field("hold_messages", absl::StrCat(s.hold_messages));
  field("messages_per_s", JsonNumber(Rate(s.hold_messages, s.duration_s)));
  field("publish_ack", HistogramJson(s.ack_us));
  field("reconnect", HistogramJson(s.reconnect_us));
  field("rss_before_kib", absl::StrCat(s.rss_before_kib));
  field("rss_after_kib", absl::StrCat(s.rss_after_kib));
  field("rss_created_kib", absl::StrCat(s.rss_created_kib));
  field("rss_per_connection_kib", JsonNumber(RssPerConnectionKib(s)));
  field("cpu_connect_s", JsonNumber(s.cpu_connect_s));
  field("cpu_hold_s", JsonNumber(s.cpu_hold_s));
  field("cpu_total_s", JsonNumber(s.cpu_total_s));
  field("cpu_us_per_connect",
        JsonNumber(s.connected > 0 ? s.cpu_connect_s * 1e6 / s.connected : 0));
  field("cpu_us_per_message",
        JsonNumber(s.hold_messages > 0 ? s.cpu_hold_s * 1e6 / s.hold_messages : 0));
  field("attempts", absl::StrCat(s.attempts));
  field("failures", absl::StrCat(s.failures));
  field("losses", absl::StrCat(s.losses));
  std::string phases = "{";
  bool first = true;
  for (const auto& [phase, count] : s.failures_by_phase) {
    absl::StrAppend(&phases, first ? "" : ", ", JsonString(phase), ": ", count);
    first = false;
  }
  field("failures_by_phase", phases + "}");
  absl::StrAppend(&out, "  \"first_error\": ", JsonString(s.first_error), "\n}\n");
  return out;
}

namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

double Number(const Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  return it == object.fields().end() ? 0 : it->second.number_value();
}
std::string String(const Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  return it == object.fields().end() ? "" : it->second.string_value();
}
const Struct* Object(const Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  if (it == object.fields().end() || !it->second.has_struct_value()) return nullptr;
  return &it->second.struct_value();
}

absl::Status ReadHistogram(const Struct& root, const std::string& key, const std::string& source,
                           LogHistogram& histogram) {
  const Struct* h = Object(root, key);
  if (h == nullptr) return absl::OkStatus();
  const Struct* buckets = Object(*h, "buckets");
  if (buckets == nullptr) return absl::OkStatus();
  for (const auto& [name, value] : buckets->fields()) {
    int bucket = 0;
    if (!absl::SimpleAtoi(name, &bucket)) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", key, ".buckets: \"", name, "\" is not a bucket number"));
    }
    histogram.AddBucket(bucket, static_cast<uint64_t>(value.number_value()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FleetSummary> FleetSummaryFromJson(const std::string& json,
                                                  const std::string& source) {
  Struct root;
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &root);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not JSON: ", std::string(parsed.message())));
  }
  if (Number(root, "hublink_fleet") != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a `hublink fleet --json` summary (no \"hublink_fleet\": 1)"));
  }
  FleetSummary s;
  s.shard = String(root, "shard");
  s.shards = static_cast<int>(Number(root, "shards"));
  if (const Struct* ids = Object(root, "identities")) {
    s.identity_first = static_cast<int64_t>(Number(*ids, "first"));
    s.identity_step = static_cast<int64_t>(Number(*ids, "step"));
  }
  auto integer = [&root](const char* key) { return static_cast<int64_t>(Number(root, key)); };
  s.clients = integer("clients");
  s.connected = integer("connected");
  s.failed = integer("failed");
  s.connect_wall_s = Number(root, "connect_wall_s");
  s.duration_s = Number(root, "duration_s");
  s.messages_sent = integer("messages_sent");
  s.messages_acked = integer("messages_acked");
  s.publish_errors = integer("publish_errors");
  s.messages_received = integer("messages_received");
  s.rss_before_kib = integer("rss_before_kib");
  s.rss_after_kib = integer("rss_after_kib");
  s.rss_created_kib = integer("rss_created_kib");
  s.cpu_connect_s = Number(root, "cpu_connect_s");
  s.cpu_total_s = Number(root, "cpu_total_s");
  s.cpu_hold_s = Number(root, "cpu_hold_s");
  s.hold_messages = integer("hold_messages");
  s.attempts = integer("attempts");
  s.failures = integer("failures");
  s.losses = integer("losses");
  if (const Struct* phases = Object(root, "failures_by_phase")) {
    for (const auto& [phase, value] : phases->fields()) {
      s.failures_by_phase[phase] = static_cast<int64_t>(value.number_value());
    }
  }
  HUBLINK_RETURN_IF_ERROR(ReadHistogram(root, "connect", source, s.connect_us));
  HUBLINK_RETURN_IF_ERROR(ReadHistogram(root, "handshake", source, s.handshake_us));
  HUBLINK_RETURN_IF_ERROR(ReadHistogram(root, "publish_ack", source, s.ack_us));
  HUBLINK_RETURN_IF_ERROR(ReadHistogram(root, "reconnect", source, s.reconnect_us));
  s.first_error = String(root, "first_error");
  return s;
}

FleetSummary MergeFleetSummaries(const std::vector<FleetSummary>& summaries) {
  FleetSummary m;
  m.shards = 0;
  m.identity_first = 0;
  m.identity_step = 0;  // the merged identities are no single progression
  for (const FleetSummary& s : summaries) {
    m.shards += s.shards;
    m.clients += s.clients;
    m.connected += s.connected;
    m.failed += s.failed;
    // The processes ran side by side: the merged phases last as long as the longest.
    m.connect_wall_s = std::max(m.connect_wall_s, s.connect_wall_s);
    m.duration_s = std::max(m.duration_s, s.duration_s);
    m.messages_sent += s.messages_sent;
    m.messages_acked += s.messages_acked;
    m.publish_errors += s.publish_errors;
    m.messages_received += s.messages_received;
    m.rss_before_kib += s.rss_before_kib;
    m.rss_after_kib += s.rss_after_kib;
    m.rss_created_kib += s.rss_created_kib;
    m.cpu_connect_s += s.cpu_connect_s;
    m.cpu_total_s += s.cpu_total_s;
    m.cpu_hold_s += s.cpu_hold_s;
    m.hold_messages += s.hold_messages;
    m.attempts += s.attempts;
    m.failures += s.failures;
    m.losses += s.losses;
    for (const auto& [phase, count] : s.failures_by_phase) m.failures_by_phase[phase] += count;
    m.connect_us.Merge(s.connect_us);
    m.handshake_us.Merge(s.handshake_us);
    m.ack_us.Merge(s.ack_us);
    m.reconnect_us.Merge(s.reconnect_us);
    if (m.first_error.empty()) m.first_error = s.first_error;
  }
  m.shard = absl::StrCat("merged from ", m.shards);
  return m;
}

void PrintFleetSummary(const FleetSummary& s, std::ostream& out) {
  auto ms = [](const LogHistogram& h, double q) {
    return absl::StrFormat("%.2f", h.Percentile(q) / 1000);
  };
  out << "fleet " << s.shard << ": " << s.connected << " of " << s.clients << " clients connected, "
      << s.failed << " failed\n";
  out << absl::StrFormat("  connect: %.0f/s over %.2f s; ", Rate(s.connected, s.connect_wall_s),
                         s.connect_wall_s)
      << "Connect() to CONNACK p50 " << ms(s.connect_us, 0.5) << " ms, p90 "
      << ms(s.connect_us, 0.9) << " ms, p99 " << ms(s.connect_us, 0.99) << " ms; handshake p50 "
      << ms(s.handshake_us, 0.5) << " ms, p99 " << ms(s.handshake_us, 0.99) << " ms\n";
  out << absl::StrFormat(
      "  messages: %d sent, %d acknowledged, %d failed, %d received; %.1f/s over the "
      "%.2f s with every client up\n",
      s.messages_sent, s.messages_acked, s.publish_errors, s.messages_received,
      Rate(s.hold_messages, s.duration_s), s.duration_s);
  if (s.reconnect_us.count() > 0) {
    out << "  reconnects: " << s.reconnect_us.count() << ", loss to CONNACK again p50 "
        << ms(s.reconnect_us, 0.5) << " ms, p90 " << ms(s.reconnect_us, 0.9) << " ms, p99 "
        << ms(s.reconnect_us, 0.99) << " ms\n";
  }
  if (s.ack_us.count() > 0) {
    out << "  publish to ack: p50 " << ms(s.ack_us, 0.5) << " ms, p99 " << ms(s.ack_us, 0.99)
        << " ms\n";
  }
  out << absl::StrFormat(
      "  memory: %.1f KiB RSS per connection, %.1f KiB of it before connecting (%d KiB before, %d "
      "KiB with the clients created, %d KiB after)\n",
      RssPerConnectionKib(s),
      s.connected > 0 ? static_cast<double>(s.rss_created_kib - s.rss_before_kib) / s.connected : 0,
      s.rss_before_kib, s.rss_created_kib, s.rss_after_kib);
  out << absl::StrFormat(
      "  cpu: %.3f s setting up and connecting (%.0f us per connect), %.3f s publishing (%.1f us "
      "per message), %.3f s in all\n",
      s.cpu_connect_s, s.connected > 0 ? s.cpu_connect_s * 1e6 / s.connected : 0, s.cpu_hold_s,
      s.hold_messages > 0 ? s.cpu_hold_s * 1e6 / s.hold_messages : 0, s.cpu_total_s);
  out << "  attempts " << s.attempts << ", failed attempts " << s.failures << ", lost connections "
      << s.losses;
  if (!s.failures_by_phase.empty()) {
    out << "; failures by phase:";
    for (const auto& [phase, count] : s.failures_by_phase) out << " " << phase << " " << count;
  }
  out << "\n";
  if (!s.first_error.empty()) out << "  first failure: " << s.first_error << "\n";
}

// ---------------------------------------------------------------------------------------------
// The fleet

namespace {

struct FleetFlags {
  ConnectionFlags connection;
  int clients = 0;
  int threads = 1;
  std::string devices_dir;
  int connect_rate = 0;  // per second; 0: all at once
  std::string interval;  // "" or 0: no publishing
  int qos = 0;
  int size = 16;
  std::string topic;
  std::string subscribe;
  std::string duration = "10s";
  std::string connect_timeout = "60s";
  std::string shard = "0/1";
  int seed = 1;
  bool json = false;
};

absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& name, const std::string& text) {
  if (text.empty()) return absl::ZeroDuration();
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds) && seconds >= 0) return absl::Seconds(seconds);
  absl::Duration duration;
  if (absl::ParseDuration(text, &duration) && duration >= absl::ZeroDuration()) return duration;
  return absl::InvalidArgumentError(
      absl::StrCat("--", name, ": \"", text, "\" is not a duration (e.g. 500ms, 10s, 2m)"));
}

// VmRSS of this process in KiB, or 0 when /proc says nothing.
int64_t RssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      int64_t kib = 0;
      std::vector<absl::string_view> parts =
          absl::StrSplit(line.substr(6), ' ', absl::SkipWhitespace());
      if (!parts.empty() && absl::SimpleAtoi(parts[0], &kib)) return kib;
    }
  }
  return 0;
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Each connection holds one socket; the loops, the broker's answers and the process's own files
// need a few more. Raises the soft limit to the hard one (and the hard one too when allowed, as
// root) and says what it did, or what it could not.
void RaiseFileLimit(int clients, std::ostream& err) {
  const rlim_t needed = static_cast<rlim_t>(clients) + 256;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t before = limit.rlim_cur;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
    rlimit higher = {needed, needed};
    if (setrlimit(RLIMIT_NOFILE, &higher) == 0) {
      err << "hublink fleet: raised the open-file limit from " << before << " to " << needed
          << " (hard limit was " << limit.rlim_max << ")\n";
      return;
    }
  }
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = {limit.rlim_max, limit.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      limit = raised;
      err << "hublink fleet: raised the open-file limit from " << before << " to " << limit.rlim_cur
          << " (the hard limit)\n";
    } else {
      err << "hublink fleet: could not raise the open-file limit from " << before << " to "
          << limit.rlim_max << ": " << strerror(errno) << "\n";
    }
  }
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
    err << "hublink fleet: the open-file limit " << limit.rlim_cur << " is below the " << needed
        << " this fleet needs and cannot be raised here (hard limit " << limit.rlim_max
        << "): connections past it fail in phase \"tcp\"; raise it with `ulimit -Hn` as root, or "
           "LimitNOFILE= in a systemd unit\n";
  }
}

// Identities: template placeholders.
std::string Expand(const std::string& pattern, int64_t index, const std::string& client_id,
                   const std::string& product_id, const std::string& device_name) {
  return absl::StrReplaceAll(pattern, {{"{i}", absl::StrCat(index)},
                                       {"{client_id}", client_id},
                                       {"{product_id}", product_id},
                                       {"{device_name}", device_name}});
}

absl::StatusOr<std::vector<std::string>> ListDeviceFiles(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("--devices_dir: cannot open ", dir, ": ", strerror(errno)));
  }
  std::vector<std::string> files;
  // Bounded by the directory's size.
  while (dirent* entry = readdir(d)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    std::string path = absl::StrCat(dir, "/", name);
    if (absl::EndsWith(name, ".json")) {
      files.push_back(path);
    } else if (access(absl::StrCat(path, "/device_info.json").c_str(), R_OK) == 0) {
      files.push_back(absl::StrCat(path, "/device_info.json"));  // local_hub's devices/ layout
    }
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "--devices_dir: ", dir,
        " holds no *.json nor */device_info.json (make some with local_hub.sh register-many)"));
  }
  return files;
}

struct LoopShard;

// One client of the fleet. Fields after `client` are touched only on its loop's thread.
struct Member {
  int64_t index = 0;
  std::string client_id;
  std::string topic;
  std::string subscribe;
  LoopShard* shard = nullptr;
  std::unique_ptr<Client> client;
  std::atomic<int64_t> connect_called_ns{0};  // set before Connect(), read on the loop
  bool ever_connected = false;
  absl::Time lost_at = absl::InfinitePast();
  EventLoop::TimerId timer = 0;
};

// One event loop, its thread and the counters of its clients.
struct LoopShard {
  std::unique_ptr<EventLoop> loop;
  std::thread thread;
  std::vector<Member*> members;
  std::mutex mutex;
  int64_t connected = 0;  // guarded by mutex
  int64_t up = 0;
  int64_t sent = 0;
  int64_t acked = 0;
  int64_t errors = 0;
  int64_t received = 0;
  absl::Time last_first_connect = absl::InfinitePast();
  LogHistogram connect_us, handshake_us, ack_us, reconnect_us;
  std::string first_error;
};

class Fleet {
 public:
  Fleet(const FleetFlags& flags, absl::Duration interval, std::ostream& err)
      : flags_(flags), interval_(interval), err_(err), payload_(std::max(flags.size, 0), 'x') {}

  absl::Status Start(int threads) {
    for (int k = 0; k < threads; ++k) {
      auto shard = std::make_unique<LoopShard>();
      HUBLINK_ASSIGN_OR_RETURN(shard->loop, EventLoop::Create());
      shards_.push_back(std::move(shard));
    }
    return absl::OkStatus();
  }

  absl::Status AddMember(int64_t index, const Pipeline& pipeline, const std::string& source,
                         const Registry& registry, const std::string& product_id,
                         const std::string& device_name) {
    auto member = std::make_unique<Member>();
    member->index = index;
    protocols::MqttConfig mqtt;
    if (pipeline.protocol().has_typed_config()) pipeline.protocol().typed_config().UnpackTo(&mqtt);
    member->client_id = mqtt.client_id();
    member->topic = Expand(flags_.topic, index, member->client_id, product_id, device_name);
    if (!flags_.subscribe.empty()) {
      member->subscribe =
          Expand(flags_.subscribe, index, member->client_id, product_id, device_name);
    }
    LoopShard* shard = shards_[members_.size() % shards_.size()].get();
    member->shard = shard;
    HUBLINK_ASSIGN_OR_RETURN(std::unique_ptr<ResolvedPipeline> resolved,
                             ResolvedPipeline::Resolve(pipeline, registry, source));
    Client::Options options;
    options.loop = shard->loop.get();
    options.seed = static_cast<uint64_t>(flags_.seed) * 1000003u + static_cast<uint64_t>(index) + 1;
    Member* m = member.get();
    options.on_event = [this, m](const ConnectionEvent& event) { OnEvent(*m, event); };
    HUBLINK_ASSIGN_OR_RETURN(
        member->client, Client::Create(std::shared_ptr<const ResolvedPipeline>(std::move(resolved)),
                                       std::move(options)));
    if (!member->subscribe.empty()) {
      member->client->Subscribe(
          member->subscribe, std::min(flags_.qos, 1),
          [shard](const mqtt::Message&) {
            std::lock_guard<std::mutex> lock(shard->mutex);
            ++shard->received;
          },
          [](const absl::Status&) {});
    }
    shard->members.push_back(m);
    members_.push_back(std::move(member));
    return absl::OkStatus();
  }

  void RunThreads() {
    for (auto& shard : shards_) {
      EventLoop* loop = shard->loop.get();
      shard->thread = std::thread([loop] { loop->Run(); });
    }
  }

  struct Totals {
    int64_t connected = 0, up = 0, sent = 0, acked = 0, errors = 0, received = 0;
    absl::Time last_first_connect = absl::InfinitePast();
    LogHistogram ack_us;
  };
  Totals Sum(bool with_histogram) {
    Totals t;
    for (auto& shard : shards_) {
      std::lock_guard<std::mutex> lock(shard->mutex);
      t.connected += shard->connected;
      t.up += shard->up;
      t.sent += shard->sent;
      t.acked += shard->acked;
      t.errors += shard->errors;
      t.received += shard->received;
      t.last_first_connect = std::max(t.last_first_connect, shard->last_first_connect);
      if (with_histogram) t.ack_us.Merge(shard->ack_us);
    }
    return t;
  }

  // Connects every member, the k-th at start + (k + jitter) / rate, and waits (bounded by
  // `timeout` after the last Connect()) until every one reached CONNACK.
  absl::Time Ramp(absl::Time start, const std::vector<double>& offsets, absl::Duration timeout,
                  bool progress) {
    absl::Time next_progress = absl::Now() + absl::Seconds(1);
    for (size_t k = 0; k < members_.size(); ++k) {
      absl::Time due = start + absl::Seconds(offsets[k]);
      absl::Time now = absl::Now();
      if (due > now) absl::SleepFor(due - now);
      Member& m = *members_[k];
      m.connect_called_ns.store(absl::ToUnixNanos(absl::Now()));
      m.client->Connect();
      if (progress && absl::Now() >= next_progress) {
        Progress();
        next_progress = absl::Now() + absl::Seconds(1);
      }
    }
    const absl::Time deadline = absl::Now() + timeout;
    // Polled every 10 ms; ends by the deadline.
    while (absl::Now() < deadline) {
      if (Sum(false).connected >= static_cast<int64_t>(members_.size())) break;
      if (progress && absl::Now() >= next_progress) {
        Progress();
        next_progress = absl::Now() + absl::Seconds(1);
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return Sum(false).last_first_connect;
  }

  void Hold(absl::Duration duration, bool progress) {
    const absl::Time end = absl::Now() + duration;
    // Wakes every 100 ms (progress once a second) until `end`.
    absl::Time next_progress = absl::Now() + absl::Seconds(1);
    while (absl::Now() < end) {
      absl::SleepFor(std::min(absl::Milliseconds(100), end - absl::Now()));
      if (progress && absl::Now() >= next_progress) {
        Progress();
        next_progress = absl::Now() + absl::Seconds(1);
      }
    }
  }

  // Stops the publish timers, then waits (at most `timeout`) for every publish to complete.
  void StopPublishing(absl::Duration timeout) {
    stopping_.store(true);
    std::vector<std::future<void>> cancelled;
    for (auto& shard : shards_) {
      auto done = std::make_shared<std::promise<void>>();
      cancelled.push_back(done->get_future());
      LoopShard* s = shard.get();
      s->loop->Post([s, done] {
        for (Member* m : s->members) {
          if (m->timer != 0) s->loop->Cancel(m->timer);
          m->timer = 0;
        }
        done->set_value();
      });
    }
    const absl::Time deadline = absl::Now() + timeout;
    for (auto& f : cancelled) f.wait_for(std::chrono::seconds(5));
    while (absl::Now() < deadline) {
      Totals t = Sum(false);
      if (t.acked + t.errors >= t.sent) break;
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  void CollectClientStats(FleetSummary& summary, absl::Duration timeout) {
    std::vector<std::future<ClientStats>> stats;
    stats.reserve(members_.size());
    for (auto& m : members_) stats.push_back(m->client->Stats());
    const absl::Time deadline = absl::Now() + timeout;
    for (auto& f : stats) {
      if (f.wait_until(absl::ToChronoTime(deadline)) != std::future_status::ready) continue;
      ClientStats s = f.get();
      summary.attempts += s.attempts;
      summary.failures += s.failures;
      summary.losses += s.losses;
      for (const auto& [phase, count] : s.failures_by_phase) {
        summary.failures_by_phase[phase] += count;
      }
    }
  }

  void Shutdown(absl::Duration timeout) {
    std::vector<std::future<absl::Status>> closed;
    closed.reserve(members_.size());
    for (auto& m : members_) closed.push_back(m->client->Disconnect());
    const absl::Time deadline = absl::Now() + timeout;
    for (auto& f : closed) f.wait_until(absl::ToChronoTime(deadline));
    for (auto& shard : shards_) shard->loop->Stop();
    for (auto& shard : shards_) {
      if (shard->thread.joinable()) shard->thread.join();
    }
    // The loops no longer run: clients may be destroyed here (client.h), before the loops.
    for (auto& m : members_) m->client.reset();
  }

  void Fill(FleetSummary& summary) {
    for (auto& shard : shards_) {
      std::lock_guard<std::mutex> lock(shard->mutex);
      summary.connected += shard->connected;
      summary.messages_sent += shard->sent;
      summary.messages_acked += shard->acked;
      summary.publish_errors += shard->errors;
      summary.messages_received += shard->received;
      summary.connect_us.Merge(shard->connect_us);
      summary.handshake_us.Merge(shard->handshake_us);
      summary.ack_us.Merge(shard->ack_us);
      summary.reconnect_us.Merge(shard->reconnect_us);
      if (summary.first_error.empty()) summary.first_error = shard->first_error;
    }
  }

  void Progress() {
    Totals t = Sum(true);
    const double seconds = absl::ToDoubleSeconds(absl::Now() - progress_since_);
    const double rate = seconds > 0 ? (t.acked - progress_acked_) / seconds : 0;
    progress_since_ = absl::Now();
    progress_acked_ = t.acked;
    err_ << absl::StrFormat(
                "\rfleet: %d/%d connected (%d up), %d failed attempts, %.0f msgs/s, ack p50 %.1f "
                "ms p99 %.1f ms   ",
                t.connected, members_.size(), t.up, failed_attempts_.load(), rate,
                t.ack_us.Percentile(0.5) / 1000, t.ack_us.Percentile(0.99) / 1000)
         << std::flush;
  }

  size_t size() const { return members_.size(); }

 private:
  void OnEvent(Member& m, const ConnectionEvent& event) {
    using Kind = ConnectionEvent::Kind;
    LoopShard& shard = *m.shard;
    switch (event.kind) {
      case Kind::kConnected:
      case Kind::kReconnected: {
        const absl::Time now = absl::Now();
        {
          std::lock_guard<std::mutex> lock(shard.mutex);
          ++shard.up;
          if (event.kind == Kind::kReconnected && m.lost_at != absl::InfinitePast()) {
            shard.reconnect_us.Add(absl::ToDoubleMicroseconds(now - m.lost_at));
          }
          if (!m.ever_connected) {
            ++shard.connected;
            shard.last_first_connect = std::max(shard.last_first_connect, now);
            shard.connect_us.Add(
                absl::ToDoubleMicroseconds(now - absl::FromUnixNanos(m.connect_called_ns.load())));
            absl::Duration handshake;
            for (const ConnectPhase& phase : event.phases) handshake += phase.duration;
            shard.handshake_us.Add(absl::ToDoubleMicroseconds(handshake));
          }
        }
        m.ever_connected = true;
        m.lost_at = absl::InfinitePast();
        if (interval_ > absl::ZeroDuration() && m.timer == 0 && !stopping_.load()) {
          // A seeded phase within one interval, so that the fleet's publishes spread evenly.
          std::mt19937_64 phase(static_cast<uint64_t>(flags_.seed) * 7919u +
                                static_cast<uint64_t>(m.index));
          const double fraction = std::uniform_real_distribution<double>(0, 1)(phase);
          Member* member = &m;
          m.timer = shard.loop->RunAfter(interval_ * fraction, [this, member] { Tick(*member); });
        }
        break;
      }
      case Kind::kLost:
      case Kind::kGaveUp:
      case Kind::kReconnecting: {
        if (event.kind == Kind::kReconnecting || event.kind == Kind::kGaveUp) ++failed_attempts_;
        std::lock_guard<std::mutex> lock(shard.mutex);
        if (event.kind == Kind::kLost) {
          --shard.up;
          m.lost_at = absl::Now();
        }
        if (shard.first_error.empty() && !event.reason.ok() && !m.ever_connected) {
          shard.first_error = absl::StrCat(m.client_id, ": ", event.reason.ToString());
        }
        break;
      }
      default:
        break;
    }
    if (event.kind == Kind::kLost && m.timer != 0) {
      shard.loop->Cancel(m.timer);
      m.timer = 0;
    }
  }

  void Tick(Member& m) {
    m.timer = 0;
    if (stopping_.load()) return;
    LoopShard& shard = *m.shard;
    {
      std::lock_guard<std::mutex> lock(shard.mutex);
      ++shard.sent;
    }
    const absl::Time sent = absl::Now();
    const bool timed = flags_.qos > 0;
    LoopShard* s = &shard;
    m.client->Publish(m.topic, payload_, flags_.qos, false,
                      [s, sent, timed](const absl::Status& status) {
                        const absl::Time now = absl::Now();
                        std::lock_guard<std::mutex> lock(s->mutex);
                        if (!status.ok()) {
                          ++s->errors;
                          return;
                        }
                        ++s->acked;
                        if (timed) s->ack_us.Add(absl::ToDoubleMicroseconds(now - sent));
                      });
    Member* member = &m;
    m.timer = shard.loop->RunAfter(interval_, [this, member] { Tick(*member); });
  }

  const FleetFlags& flags_;
  const absl::Duration interval_;
  std::ostream& err_;
  const std::string payload_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> failed_attempts_{0};
  std::vector<std::unique_ptr<LoopShard>> shards_;
  std::vector<std::unique_ptr<Member>> members_;
  absl::Time progress_since_ = absl::Now();
  int64_t progress_acked_ = 0;
};

int Usage(std::ostream& err, const std::string& message, const FlagParser& parser) {
  return PrintUsageError(err, "fleet", message, /*usage=*/"", parser);
}

int Merge(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  bool json = false;
  FlagParser parser;
  parser.AddBool("json", &json, "print the merged summary as JSON");
  std::vector<std::string> files;
  absl::Status parsed = parser.Parse(args, &files);
  if (!parsed.ok()) return Usage(err, std::string(parsed.message()), parser);
  if (files.empty()) return Usage(err, "merge: name the --json summaries to merge", parser);
  std::vector<FleetSummary> summaries;
  for (const std::string& file : files) {
    std::ifstream in(file);
    if (!in) {
      err << "hublink fleet merge: cannot read " << file << ": " << strerror(errno) << "\n";
      return 1;
    }
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<FleetSummary> summary = FleetSummaryFromJson(text.str(), file);
    if (!summary.ok()) {
      err << "hublink fleet merge: " << summary.status().message() << "\n";
      return 1;
    }
    summaries.push_back(*std::move(summary));
  }
  FleetSummary merged = MergeFleetSummaries(summaries);
  if (json) {
    out << FleetSummaryToJson(merged);
  } else {
    PrintFleetSummary(merged, out);
  }
  return 0;
}

}  // namespace

int RunFleet(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
             const std::function<void(Registry::Builder&)>& register_plugins) {
  if (!args.empty() && args[0] == "merge") {
    return Merge(std::vector<std::string>(args.begin() + 1, args.end()), out, err);
  }
  FleetFlags flags;
  FlagParser parser;
  flags.connection.Register(parser);
  parser.AddInt("clients", &flags.clients,
                "how many clients (identities 0..N-1, across all shards; default: one per "
                "--devices_dir file, else 10)");
  parser.AddInt("threads", &flags.threads, "event loops, each on a thread of its own (default 1)");
  parser.AddString("devices_dir", &flags.devices_dir,
                   "Tencent device_info.json files (DIR/*.json or DIR/*/device_info.json, sorted: "
                   "identity i is the i-th), each signing its own credentials");
  parser.AddInt("connect_rate", &flags.connect_rate,
                "Connect() calls per second, each at a seeded random point of its slot (default "
                "0: all at once)");
  parser.AddString("interval", &flags.interval,
                   "each client publishes once per interval (e.g. 1s, 200ms; default: never)");
  parser.AddInt("qos", &flags.qos, "0, 1 or 2");
  parser.AddInt("size", &flags.size, "payload bytes (default 16)");
  parser.AddString("topic", &flags.topic,
                   "topic template: {i} the identity number, {client_id}, {product_id}, "
                   "{device_name} (default fleet/{client_id}, or {product_id}/{device_name}/data "
                   "with --devices_dir)");
  parser.AddString("subscribe", &flags.subscribe,
                   "each client subscribes to this filter template (same placeholders)");
  parser.AddString("duration", &flags.duration,
                   "how long to publish once every client connected (default 10s)");
  parser.AddString("connect_timeout", &flags.connect_timeout,
                   "after the last Connect(), how long to wait for stragglers (default 60s)");
  parser.AddString("shard", &flags.shard,
                   "K/N: this process takes identities i with i % N == K, and starts its ramp K/N "
                   "of a connect slot late (default 0/1)");
  parser.AddInt("seed", &flags.seed, "seeds the connect jitter, publish phases and backoff");
  parser.AddBool("json", &flags.json,
                 "print the summary as JSON (with latency histograms, for `fleet merge`)");
  if (WantsHelp(args)) {
    out << "usage: hublink fleet [flags]\n       hublink fleet merge [--json] FILE...\n"
        << "  many clients in one process: connect, publish, summarize (docs/fleet.md)\nflags:\n"
        << parser.Usage()
        // Taken by `hublink` before these flags are parsed (TakePluginFlags in hublink_cli.cc).
        << "  --plugin=VALUE          load plugins from this shared object (repeatable; see "
           "docs/plugin-authoring.md)\n";
    return 0;
  }
  std::vector<std::string> positional;
  absl::Status parsed = parser.Parse(args, &positional);
  if (!parsed.ok()) return Usage(err, std::string(parsed.message()), parser);
  if (!positional.empty()) {
    return Usage(err, absl::StrCat("unexpected argument \"", positional[0], "\""), parser);
  }
  if (flags.qos < 0 || flags.qos > 2) return Usage(err, "--qos: must be 0, 1 or 2", parser);
  if (flags.threads < 1 || flags.threads > 256) {
    return Usage(err, "--threads: between 1 and 256", parser);
  }
  if (flags.connect_rate < 0) return Usage(err, "--connect_rate: must be >= 0", parser);
  int shard_index = 0, shard_count = 1;
  {
    std::vector<std::string> parts = absl::StrSplit(flags.shard, '/');
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &shard_index) ||
        !absl::SimpleAtoi(parts[1], &shard_count) || shard_count < 1 || shard_index < 0 ||
        shard_index >= shard_count) {
      return Usage(err, absl::StrCat("--shard: \"", flags.shard, "\" is not K/N with 0 <= K < N"),
                   parser);
    }
  }
  absl::StatusOr<absl::Duration> interval = ParseDurationFlag("interval", flags.interval);
  absl::StatusOr<absl::Duration> duration = ParseDurationFlag("duration", flags.duration);
  absl::StatusOr<absl::Duration> connect_timeout =
      ParseDurationFlag("connect_timeout", flags.connect_timeout);
  for (const auto* d : {&interval, &duration, &connect_timeout}) {
    if (!d->ok()) return Usage(err, std::string(d->status().message()), parser);
  }
  if (!flags.devices_dir.empty() &&
      (!flags.connection.device_info.empty() || !flags.connection.pipeline.empty())) {
    return Usage(err, "--devices_dir: not with --device_info or --pipeline", parser);
  }
  std::vector<std::string> device_files;
  if (!flags.devices_dir.empty()) {
    absl::StatusOr<std::vector<std::string>> files = ListDeviceFiles(flags.devices_dir);
    if (!files.ok()) {
      err << "hublink fleet: " << files.status().message() << "\n";
      return 1;
    }
    device_files = *std::move(files);
    if (flags.clients == 0) flags.clients = static_cast<int>(device_files.size());
    if (flags.clients > static_cast<int>(device_files.size())) {
      return Usage(err,
                   absl::StrCat("--clients=", flags.clients, ": ", flags.devices_dir,
                                " holds only ", device_files.size(), " devices"),
                   parser);
    }
    if (flags.topic.empty()) flags.topic = "{product_id}/{device_name}/data";
  }
  if (flags.clients == 0) flags.clients = 10;
  if (flags.clients < 0) return Usage(err, "--clients: must be positive", parser);
  if (flags.topic.empty()) flags.topic = "fleet/{client_id}";
  if (flags.devices_dir.empty() && flags.connection.client_id.empty()) {
    flags.connection.client_id = "hublink-fleet-{i}";
  }

  absl::StatusOr<Registry> registry = BuildCommandRegistry(register_plugins);
  if (!registry.ok()) {
    err << "hublink fleet: " << registry.status().message() << "\n";
    return 1;
  }

  std::vector<int64_t> identities;
  for (int64_t i = shard_index; i < flags.clients; i += shard_count) identities.push_back(i);
  RaiseFileLimit(static_cast<int>(identities.size()), err);

  FleetSummary summary;
  summary.shard = flags.shard;
  summary.identity_first = shard_index;
  summary.identity_step = shard_count;
  summary.clients = static_cast<int64_t>(identities.size());
  const double cpu_start = CpuSeconds();
  summary.rss_before_kib = RssKib();

  Fleet fleet(flags, *interval, err);
  absl::Status started = fleet.Start(flags.threads);
  if (!started.ok()) {
    err << "hublink fleet: " << started.message() << "\n";
    return 1;
  }
  // The pipeline for plain brokers is built once; per identity only the credentials change.
  Pipeline plain;
  if (device_files.empty()) {
    ConnectionFlags connection = flags.connection;
    absl::StatusOr<Pipeline> built = BuildPipeline(connection, nullptr, &*registry);
    if (!built.ok()) {
      err << "hublink fleet: " << built.status().message() << "\n";
      return 1;
    }
    plain = *std::move(built);
  }
  for (int64_t i : identities) {
    Pipeline pipeline;
    std::string source = "command-line flags";
    std::string product_id, device_name;
    if (!device_files.empty()) {
      ConnectionFlags connection = flags.connection;
      connection.device_info = device_files[static_cast<size_t>(i)];
      tencent::DeviceInfo info;
      absl::StatusOr<Pipeline> built = BuildPipeline(connection, &info, &*registry);
      if (!built.ok()) {
        err << "hublink fleet: " << built.status().message() << "\n";
        return 1;
      }
      pipeline = *std::move(built);
      source = connection.device_info;
      product_id = info.product_id();
      device_name = info.device_name();
    } else {
      pipeline = plain;
      protocols::MqttConfig mqtt;
      pipeline.protocol().typed_config().UnpackTo(&mqtt);
      const std::string id = Expand(flags.connection.client_id, i, "", "", "");
      mqtt.set_client_id(id);
      if (!flags.connection.username.empty()) {
        mqtt.set_username(Expand(flags.connection.username, i, id, "", ""));
      }
      if (!flags.connection.password.empty()) {
        mqtt.set_password(Expand(flags.connection.password, i, id, "", ""));
      }
      pipeline.mutable_protocol()->mutable_typed_config()->PackFrom(mqtt);
    }
    absl::Status added = fleet.AddMember(i, pipeline, source, *registry, product_id, device_name);
    if (!added.ok()) {
      err << "hublink fleet: identity " << i << ": " << added.message() << "\n";
      return 1;
    }
  }

  summary.rss_created_kib = RssKib();
  // The ramp: the k-th Connect() at (k + u_k) / rate, u_k uniform in [0, 1) from the seed; shard K
  // of N starts K/N of a slot late, so that N shards at the same rate interleave.
  std::vector<double> offsets(fleet.size(), 0.0);
  if (flags.connect_rate > 0) {
    std::mt19937_64 random(static_cast<uint64_t>(flags.seed) * 1000003u +
                           static_cast<uint64_t>(shard_index));
    std::uniform_real_distribution<double> jitter(0, 1);
    const double slot = 1.0 / flags.connect_rate;
    for (size_t k = 0; k < offsets.size(); ++k) {
      offsets[k] = (k + static_cast<double>(shard_index) / shard_count + jitter(random)) * slot;
    }
  }
  const bool progress = isatty(STDERR_FILENO) == 1;
  fleet.RunThreads();
  const absl::Time ramp_start = absl::Now();
  absl::Time last_connect = fleet.Ramp(ramp_start, offsets, *connect_timeout, progress);
  summary.connect_wall_s =
      last_connect > ramp_start ? absl::ToDoubleSeconds(last_connect - ramp_start) : 0;
  summary.cpu_connect_s = CpuSeconds() - cpu_start;

  const absl::Time hold_start = absl::Now();
  const int64_t sent_before_hold = fleet.Sum(false).sent;
  const double cpu_before_hold = CpuSeconds();
  fleet.Hold(*duration, progress);
  summary.duration_s = absl::ToDoubleSeconds(absl::Now() - hold_start);
  summary.hold_messages = fleet.Sum(false).sent - sent_before_hold;
  summary.cpu_hold_s = CpuSeconds() - cpu_before_hold;
  summary.rss_after_kib = RssKib();
  // Then the acknowledgements of what is still in flight (bounded), counted with the rest.
  fleet.StopPublishing(absl::Seconds(10));
  summary.cpu_total_s = CpuSeconds() - cpu_start;
  fleet.CollectClientStats(summary, absl::Seconds(10));
  fleet.Fill(summary);
  summary.failed = summary.clients - summary.connected;
  if (progress) err << "\n";
  fleet.Shutdown(absl::Seconds(10));

  if (flags.json) {
    out << FleetSummaryToJson(summary);
  } else {
    PrintFleetSummary(summary, out);
  }
  out.flush();
  const bool ok = summary.failed == 0 && summary.publish_errors == 0 &&
                  summary.messages_acked == summary.messages_sent;
  return ok ? 0 : 1;
}

}  // namespace cli
}  // namespace hublink
