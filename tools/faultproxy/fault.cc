#include "tools/faultproxy/fault.h"

#include <algorithm>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace hublink {
namespace faultproxy {
namespace {

struct KindName {
  FaultKind kind;
  const char* name;
};
constexpr KindName kKinds[] = {
    {FaultKind::kLatency, "latency"}, {FaultKind::kBandwidth, "bandwidth"},
    {FaultKind::kSegment, "segment"}, {FaultKind::kBlackhole, "blackhole"},
    {FaultKind::kStall, "stall"},     {FaultKind::kCloseAfter, "close_after"},
    {FaultKind::kReset, "reset"},     {FaultKind::kRefuse, "refuse"},
};

bool KindFromName(absl::string_view name, FaultKind* kind) {
  for (const KindName& k : kKinds) {
    if (name == k.name) {
      *kind = k.kind;
      return true;
    }
  }
  return false;
}

std::string KindList() {
  std::vector<std::string> names;
  for (const KindName& k : kKinds) names.push_back(k.name);
  return absl::StrJoin(names, "|");
}

absl::Status Bad(absl::string_view word, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("\"", word, "\": ", why));
}

// Which parameter keys each kind takes.
std::vector<std::string> KindKeys(FaultKind kind) {
  switch (kind) {
    case FaultKind::kLatency:
      return {"delay", "jitter"};
    case FaultKind::kBandwidth:
      return {"rate"};
    case FaultKind::kSegment:
      return {"size", "gap"};
    case FaultKind::kCloseAfter:
      return {"bytes", "how"};
    case FaultKind::kRefuse:
      return {"mode"};
    default:
      return {};
  }
}

}  // namespace

const char* DirName(int dir) { return dir == kUp ? "up" : "down"; }

const char* FaultKindName(FaultKind kind) {
  for (const KindName& k : kKinds) {
    if (k.kind == kind) return k.name;
  }
  return "?";
}

absl::StatusOr<absl::Duration> ParseDurationWord(absl::string_view key, absl::string_view value) {
  absl::Duration d;
  if (value.empty() || !absl::ParseDuration(value, &d) || d < absl::ZeroDuration() ||
      d == absl::InfiniteDuration() || (value != "0" && absl::ascii_isdigit(value.back()))) {
    return Bad(absl::StrCat(key, "=", value),
               "not a duration (write a unit: 250ms, 1.5s, 2m; \"0\" alone is allowed)");
  }
  return d;
}

absl::StatusOr<uint64_t> ParseCount(absl::string_view key, absl::string_view value) {
  absl::string_view digits = value;
  uint64_t scale = 1;
  if (absl::ConsumeSuffix(&digits, "k") || absl::ConsumeSuffix(&digits, "K")) {
    scale = 1000;
  } else if (absl::ConsumeSuffix(&digits, "m") || absl::ConsumeSuffix(&digits, "M")) {
    scale = 1000 * 1000;
  }
  uint64_t n;
  if (digits.empty() || !absl::SimpleAtoi(digits, &n) || digits[0] == '-' || digits[0] == '+' ||
      n > std::numeric_limits<uint64_t>::max() / scale) {
    return Bad(absl::StrCat(key, "=", value), "not a count (digits, optional k or m suffix)");
  }
  return n * scale;
}

absl::StatusOr<Fault> ParseFault(const std::vector<std::string>& words, bool allow_conn) {
  Fault fault;
  bool have_kind = false;
  std::vector<std::pair<std::string, std::string>> params;
  for (const std::string& word : words) {
    size_t eq = word.find('=');
    std::string key = eq == std::string::npos ? word : word.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : word.substr(eq + 1);
    if (eq == std::string::npos) {
      FaultKind kind;
      if (!KindFromName(word, &kind)) {
        return Bad(word, absl::StrCat("expected key=value or a fault kind (", KindList(), ")"));
      }
      if (have_kind) return Bad(word, "more than one fault kind");
      fault.kind = kind;
      have_kind = true;
    } else if (key == "fault") {
      FaultKind kind;
      if (!KindFromName(value, &kind)) {
        return Bad(word, absl::StrCat("unknown fault (", KindList(), ")"));
      }
      if (have_kind) return Bad(word, "more than one fault kind");
      fault.kind = kind;
      have_kind = true;
    } else {
      params.emplace_back(key, value);
    }
  }
  if (!have_kind) {
    return absl::InvalidArgumentError(absl::StrCat("no fault given (fault=", KindList(), ")"));
  }
  std::vector<std::string> allowed = KindKeys(fault.kind);
  bool seen_required = false;
  for (const auto& [key, value] : params) {
    std::string word = absl::StrCat(key, "=", value);
    if (key == "dir") {
      if (fault.kind == FaultKind::kReset || fault.kind == FaultKind::kRefuse) {
        return Bad(word, absl::StrCat(FaultKindName(fault.kind), " has no direction"));
      }
      if (value == "up") {
        fault.dir[kUp] = true, fault.dir[kDown] = false;
      } else if (value == "down") {
        fault.dir[kUp] = false, fault.dir[kDown] = true;
      } else if (value == "both") {
        fault.dir[kUp] = fault.dir[kDown] = true;
      } else {
        return Bad(word, "dir is up, down or both");
      }
      continue;
    }
    if (key == "conn") {
      if (!allow_conn) return Bad(word, "conn= is not allowed here");
      if (fault.kind == FaultKind::kRefuse) return Bad(word, "refuse concerns new connections");
      absl::StatusOr<uint64_t> id = ParseCount(key, value);
      if (!id.ok()) return id.status();
      if (*id == 0) return Bad(word, "connection ids start at 1");
      fault.conn = *id;
      continue;
    }
    if (key == "for") {
      absl::StatusOr<absl::Duration> d = ParseDurationWord(key, value);
      if (!d.ok()) return d.status();
      fault.duration = *d;
      continue;
    }
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return Bad(word, absl::StrCat("not a parameter of ", FaultKindName(fault.kind),
                                    allowed.empty()
                                        ? " (it takes none)"
                                        : absl::StrCat(" (", absl::StrJoin(allowed, ", "), ")")));
    }
    if (key == "delay" || key == "jitter" || key == "gap") {
      absl::StatusOr<absl::Duration> d = ParseDurationWord(key, value);
      if (!d.ok()) return d.status();
      (key == "delay" ? fault.delay : key == "jitter" ? fault.jitter : fault.gap) = *d;
      if (key == "delay") seen_required = true;
    } else if (key == "rate" || key == "size" || key == "bytes") {
      absl::StatusOr<uint64_t> n = ParseCount(key, value);
      if (!n.ok()) return n.status();
      if (*n == 0) return Bad(word, "must be at least 1");
      if (key == "rate") fault.rate = *n;
      if (key == "size") fault.size = static_cast<size_t>(*n);
      if (key == "bytes") fault.bytes = *n;
      seen_required = true;
    } else if (key == "how") {
      if (value == "fin") {
        fault.how = CloseHow::kFin;
      } else if (value == "rst") {
        fault.how = CloseHow::kRst;
      } else {
        return Bad(word, "how is fin or rst");
      }
    } else if (key == "mode") {
      if (value == "rst") {
        fault.mode = RefuseMode::kRst;
      } else if (value == "fin") {
        fault.mode = RefuseMode::kFin;
      } else if (value == "pause") {
        fault.mode = RefuseMode::kPause;
      } else if (value == "unbind") {
        fault.mode = RefuseMode::kUnbind;
      } else {
        return Bad(word, "mode is rst, fin, pause or unbind");
      }
    }
  }
  const char* required = nullptr;
  switch (fault.kind) {
    case FaultKind::kLatency:
      required = "delay=DUR";
      break;
    case FaultKind::kBandwidth:
      required = "rate=BYTES_PER_S";
      break;
    case FaultKind::kSegment:
      required = "size=N";
      break;
    case FaultKind::kCloseAfter:
      required = "bytes=N";
      break;
    default:
      seen_required = true;
  }
  if (!seen_required) {
    return absl::InvalidArgumentError(absl::StrCat(FaultKindName(fault.kind), " needs ", required));
  }
  return fault;
}

std::string Fault::ToString() const {
  std::vector<std::string> words = {absl::StrCat("fault=", FaultKindName(kind))};
  switch (kind) {
    case FaultKind::kLatency:
      words.push_back(absl::StrCat("delay=", absl::FormatDuration(delay)));
      if (jitter > absl::ZeroDuration()) {
        words.push_back(absl::StrCat("jitter=", absl::FormatDuration(jitter)));
      }
      break;
    case FaultKind::kBandwidth:
      words.push_back(absl::StrCat("rate=", rate));
      break;
    case FaultKind::kSegment:
      words.push_back(absl::StrCat("size=", size));
      if (gap > absl::ZeroDuration())
        words.push_back(absl::StrCat("gap=", absl::FormatDuration(gap)));
      break;
    case FaultKind::kCloseAfter:
      words.push_back(absl::StrCat("bytes=", bytes));
      words.push_back(absl::StrCat("how=", how == CloseHow::kFin ? "fin" : "rst"));
      break;
    case FaultKind::kRefuse: {
      const char* names[] = {"rst", "fin", "pause", "unbind"};
      words.push_back(absl::StrCat("mode=", names[static_cast<int>(mode)]));
      break;
    }
    default:
      break;
  }
  if (kind != FaultKind::kReset && kind != FaultKind::kRefuse) {
    words.push_back(absl::StrCat("dir=", dir[kUp] && dir[kDown] ? "both"
                                         : dir[kUp]             ? "up"
                                                                : "down"));
  }
  if (conn != 0) words.push_back(absl::StrCat("conn=", conn));
  if (duration > absl::ZeroDuration()) {
    words.push_back(absl::StrCat("for=", absl::FormatDuration(duration)));
  }
  return absl::StrJoin(words, " ");
}

void DirectionConfig::Add(const Fault& fault, int dir) {
  if (!fault.dir[dir]) return;
  switch (fault.kind) {
    case FaultKind::kLatency:
      delay += fault.delay;
      jitter += fault.jitter;
      break;
    case FaultKind::kBandwidth:
      rate = rate == 0 ? fault.rate : std::min(rate, fault.rate);
      break;
    case FaultKind::kSegment:
      segment = segment == 0 ? fault.size : std::min(segment, fault.size);
      gap = std::max(gap, fault.gap);
      break;
    case FaultKind::kBlackhole:
      blackhole = true;
      break;
    case FaultKind::kStall:
      stall = true;
      break;
    default:
      break;
  }
}

bool DirectionConfig::operator==(const DirectionConfig& o) const {
  return delay == o.delay && jitter == o.jitter && rate == o.rate && segment == o.segment &&
         gap == o.gap && blackhole == o.blackhole && stall == o.stall;
}

absl::StatusOr<std::vector<ScheduleEntry>> ParseSchedule(absl::string_view text) {
  std::vector<ScheduleEntry> entries;
  int index = 0;
  for (absl::string_view raw : absl::StrSplit(text, ';', absl::SkipWhitespace())) {
    ++index;
    absl::string_view item = absl::StripAsciiWhitespace(raw);
    auto fail = [&](const absl::Status& status) {
      return absl::InvalidArgumentError(
          absl::StrCat("schedule entry ", index, " (", item, "): ", status.message()));
    };
    ScheduleEntry entry;
    bool have_every = false, have_start = false;
    entry.splay = absl::ZeroDuration();
    std::vector<std::string> fault_words;
    for (absl::string_view word : absl::StrSplit(item, ',', absl::SkipWhitespace())) {
      word = absl::StripAsciiWhitespace(word);
      size_t eq = word.find('=');
      absl::string_view key = word.substr(0, eq);
      absl::string_view value = eq == absl::string_view::npos ? "" : word.substr(eq + 1);
      if (key == "every" || key == "start" || key == "splay") {
        absl::StatusOr<absl::Duration> d = ParseDurationWord(key, value);
        if (!d.ok()) return fail(d.status());
        if (key == "every") entry.every = *d, have_every = true;
        if (key == "start") entry.start = *d, have_start = true;
        if (key == "splay") entry.splay = *d;
      } else {
        fault_words.emplace_back(word);
      }
    }
    absl::StatusOr<Fault> fault = ParseFault(fault_words, /*allow_conn=*/false);
    if (!fault.ok()) return fail(fault.status());
    entry.fault = *fault;
    entry.window = fault->duration;
    if (!have_every || entry.every <= absl::ZeroDuration()) {
      return fail(absl::InvalidArgumentError("needs every=DUR (more than 0)"));
    }
    if (entry.window <= absl::ZeroDuration() && entry.fault.kind != FaultKind::kReset) {
      return fail(absl::InvalidArgumentError("needs for=DUR (only reset may omit it)"));
    }
    if (entry.window + entry.splay >= entry.every) {
      return fail(absl::InvalidArgumentError("for + splay must be shorter than every"));
    }
    if (!have_start) entry.start = entry.every;
    entries.push_back(entry);
  }
  return entries;
}

uint64_t UniformUpTo(std::mt19937_64& rng, uint64_t bound) {
  uint64_t x = rng();
  if (bound == std::numeric_limits<uint64_t>::max()) return x;
  return x % (bound + 1);
}

ScheduleClock::ScheduleClock(std::vector<ScheduleEntry> entries, uint64_t seed)
    : entries_(std::move(entries)) {
  for (size_t i = 0; i < entries_.size(); ++i) {
    std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                      static_cast<uint32_t>(i), 0x5c4edu};
    rngs_.emplace_back(seq);
    rounds_.push_back(0);
    next_.push_back(absl::ZeroDuration());
    next_[i] = At(i);
  }
}

absl::Duration ScheduleClock::At(size_t i) {
  const ScheduleEntry& e = entries_[i];
  absl::Duration splay = absl::ZeroDuration();
  if (e.splay > absl::ZeroDuration()) {
    splay = absl::Microseconds(static_cast<int64_t>(
        UniformUpTo(rngs_[i], static_cast<uint64_t>(absl::ToInt64Microseconds(e.splay)))));
  }
  return e.start + e.every * static_cast<double>(rounds_[i]) + splay;
}

ScheduleClock::Event ScheduleClock::Next() {
  size_t best = 0;
  for (size_t i = 1; i < entries_.size(); ++i) {
    if (next_[i] < next_[best]) best = i;
  }
  Event event{next_[best], best, rounds_[best]};
  ++rounds_[best];
  next_[best] = At(best);
  return event;
}

size_t Shaper::Quantum(uint64_t rate) {
  return static_cast<size_t>(std::max<uint64_t>(1, rate / 100));
}

void Shaper::Push(absl::string_view bytes, absl::Time now) {
  if (bytes.empty()) return;
  absl::Duration delay = config_.delay;
  if (config_.jitter > absl::ZeroDuration()) {
    int64_t j = absl::ToInt64Microseconds(config_.jitter);
    int64_t sample = static_cast<int64_t>(UniformUpTo(rng_, static_cast<uint64_t>(2 * j))) - j;
    delay += absl::Microseconds(sample);
    if (delay < absl::ZeroDuration()) delay = absl::ZeroDuration();
  }
  absl::Time due = std::max(now + delay, last_due_);
  last_due_ = due;
  if (!chunks_.empty() && chunks_.back().due == due && chunks_.back().bytes.size() < 65536) {
    chunks_.back().bytes.append(bytes.data(), bytes.size());
  } else {
    chunks_.push_back(Chunk{std::string(bytes), 0, due});
  }
  queued_ += bytes.size();
}

size_t Shaper::Writable(absl::Time now, absl::Time* next) const {
  if (next != nullptr) *next = absl::InfiniteFuture();
  if (chunks_.empty()) return 0;
  const Chunk& front = chunks_.front();
  absl::Time ready = std::max(front.due, paced_until_);
  if (ready > now) {
    if (next != nullptr) *next = ready;
    return 0;
  }
  size_t n = front.bytes.size() - front.offset;
  if (config_.segment > 0) n = std::min(n, config_.segment);
  if (config_.rate > 0) n = std::min(n, Quantum(config_.rate));
  return n;
}

absl::string_view Shaper::Front() const {
  if (chunks_.empty()) return absl::string_view();
  const Chunk& front = chunks_.front();
  return absl::string_view(front.bytes).substr(front.offset);
}

void Shaper::Consume(size_t n, absl::Time now) {
  if (n == 0 || chunks_.empty()) return;
  Chunk& front = chunks_.front();
  n = std::min(n, front.bytes.size() - front.offset);
  front.offset += n;
  queued_ -= n;
  if (front.offset == front.bytes.size()) chunks_.pop_front();
  if (config_.rate > 0 || config_.gap > absl::ZeroDuration()) {
    absl::Time base = std::max(paced_until_, now);
    absl::Duration cost = config_.gap;
    if (config_.rate > 0) {
      cost += absl::Nanoseconds(
          static_cast<int64_t>(static_cast<double>(n) * 1e9 / static_cast<double>(config_.rate)));
    }
    paced_until_ = base + cost;
  }
}

void Shaper::Clear() {
  chunks_.clear();
  queued_ = 0;
}

}  // namespace faultproxy
}  // namespace hublink
