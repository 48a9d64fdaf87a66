#include "tools/faultproxy/fault.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hublink {
namespace faultproxy {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<Fault> Parse(const std::string& line, bool allow_conn = true) {
  std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
  return ParseFault(words, allow_conn);
}

TEST(ParseFault, LatencyWithJitterOneDirection) {
  absl::StatusOr<Fault> f = Parse("fault=latency delay=200ms jitter=50ms dir=down conn=3 for=5s");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->kind, FaultKind::kLatency);
  EXPECT_EQ(f->delay, absl::Milliseconds(200));
  EXPECT_EQ(f->jitter, absl::Milliseconds(50));
  EXPECT_FALSE(f->dir[kUp]);
  EXPECT_TRUE(f->dir[kDown]);
  EXPECT_EQ(f->conn, 3u);
  EXPECT_EQ(f->duration, absl::Seconds(5));
  EXPECT_EQ(f->ToString(), "fault=latency delay=200ms jitter=50ms dir=down conn=3 for=5s");
}

TEST(ParseFault, BareKindAndCanonicalFormRoundTrips) {
  for (const char* line :
       {"blackhole", "stall dir=up", "bandwidth rate=10k", "segment size=1 gap=2ms dir=down",
        "close_after bytes=100 how=rst", "reset", "refuse mode=unbind", "refuse mode=pause for=1s",
        "latency delay=1.5s"}) {
    absl::StatusOr<Fault> f = Parse(line);
    ASSERT_TRUE(f.ok()) << line << ": " << f.status();
    absl::StatusOr<Fault> again = Parse(f->ToString());
    ASSERT_TRUE(again.ok()) << f->ToString() << ": " << again.status();
    EXPECT_EQ(again->ToString(), f->ToString());
  }
  EXPECT_EQ(Parse("bandwidth rate=10k")->rate, 10000u);
  EXPECT_EQ(Parse("bandwidth rate=2m")->rate, 2000000u);
  EXPECT_EQ(Parse("blackhole")->ToString(), "fault=blackhole dir=both");
  EXPECT_EQ(Parse("refuse")->mode, RefuseMode::kRst);
  EXPECT_EQ(Parse("close_after bytes=7")->how, CloseHow::kFin);
}

TEST(ParseFault, ErrorsNameTheWord) {
  struct Case {
    const char* line;
    const char* error;
  };
  for (const Case& c : std::vector<Case>{
           {"", "no fault given"},
           {"teleport", "\"teleport\": expected key=value or a fault kind"},
           {"fault=teleport", "unknown fault"},
           {"latency", "latency needs delay=DUR"},
           {"latency delay=200", "\"delay=200\": not a duration"},
           {"latency delay=-5ms", "not a duration"},
           {"latency rate=5", "\"rate=5\": not a parameter of latency (delay, jitter)"},
           {"blackhole size=1", "blackhole (it takes none)"},
           {"segment size=0", "must be at least 1"},
           {"bandwidth rate=fast", "not a count"},
           {"blackhole dir=sideways", "dir is up, down or both"},
           {"reset dir=up", "reset has no direction"},
           {"refuse conn=1", "refuse concerns new connections"},
           {"refuse mode=maybe", "mode is rst, fin, pause or unbind"},
           {"close_after bytes=5 how=gently", "how is fin or rst"},
           {"blackhole stall", "more than one fault kind"},
           {"blackhole conn=0", "connection ids start at 1"},
       }) {
    absl::StatusOr<Fault> f = Parse(c.line);
    ASSERT_FALSE(f.ok()) << c.line;
    EXPECT_THAT(std::string(f.status().message()), HasSubstr(c.error)) << c.line;
  }
  absl::StatusOr<Fault> no_conn = Parse("blackhole conn=2", /*allow_conn=*/false);
  ASSERT_FALSE(no_conn.ok());
  EXPECT_THAT(std::string(no_conn.status().message()), HasSubstr("conn= is not allowed here"));
}

TEST(DirectionConfig, FaultsCombine) {
  DirectionConfig up, down;
  for (const char* line :
       {"latency delay=100ms jitter=10ms", "latency delay=50ms dir=up", "bandwidth rate=1000",
        "bandwidth rate=500 dir=down", "segment size=8", "segment size=2 gap=1ms dir=up",
        "blackhole dir=down", "stall dir=up", "close_after bytes=3", "reset"}) {
    Fault f = *Parse(line);
    up.Add(f, kUp);
    down.Add(f, kDown);
  }
  EXPECT_EQ(up.delay, absl::Milliseconds(150));
  EXPECT_EQ(up.jitter, absl::Milliseconds(10));
  EXPECT_EQ(down.delay, absl::Milliseconds(100));
  EXPECT_EQ(up.rate, 1000u);
  EXPECT_EQ(down.rate, 500u);
  EXPECT_EQ(up.segment, 2u);
  EXPECT_EQ(up.gap, absl::Milliseconds(1));
  EXPECT_EQ(down.segment, 8u);
  EXPECT_FALSE(up.blackhole);
  EXPECT_TRUE(down.blackhole);
  EXPECT_TRUE(up.stall);
  EXPECT_FALSE(down.stall);
}

TEST(ParseSchedule, TheReadmeExample) {
  absl::StatusOr<std::vector<ScheduleEntry>> s =
      ParseSchedule("every=30s,for=5s,fault=blackhole; every=45s,for=1s,fault=reset");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ((*s)[0].every, absl::Seconds(30));
  EXPECT_EQ((*s)[0].window, absl::Seconds(5));
  EXPECT_EQ((*s)[0].start, absl::Seconds(30));
  EXPECT_EQ((*s)[0].fault.kind, FaultKind::kBlackhole);
  EXPECT_EQ((*s)[1].fault.kind, FaultKind::kReset);

  s = ParseSchedule(
      "every=10s,for=2s,start=0s,splay=3s,fault=latency,delay=300ms,jitter=100ms,dir=down;"
      "every=1m,reset");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)[0].start, absl::ZeroDuration());
  EXPECT_EQ((*s)[0].splay, absl::Seconds(3));
  EXPECT_EQ((*s)[0].fault.ToString(), "fault=latency delay=300ms jitter=100ms dir=down for=2s");
  EXPECT_EQ((*s)[1].window, absl::ZeroDuration());  // reset is one-shot without for=
  EXPECT_TRUE(ParseSchedule("")->empty());
}

TEST(ParseSchedule, Errors) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& c : std::vector<Case>{
           {"for=5s,fault=blackhole", "entry 1 (for=5s,fault=blackhole): needs every=DUR"},
           {"every=30s,fault=blackhole", "needs for=DUR"},
           {"every=5s,for=5s,blackhole", "for + splay must be shorter than every"},
           {"every=10s,for=5s,splay=5s,blackhole", "for + splay must be shorter than every"},
           {"every=10s,for=1s,blackhole;every=30,for=1s,reset", "entry 2"},
           {"every=10s,for=1s,blackhole,conn=1", "conn= is not allowed here"},
           {"every=10s,for=1s", "no fault given"},
       }) {
    absl::StatusOr<std::vector<ScheduleEntry>> s = ParseSchedule(c.text);
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.error)) << c.text;
  }
}

std::vector<std::string> Timeline(const std::string& text, uint64_t seed, int n) {
  ScheduleClock clock(*ParseSchedule(text), seed);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    ScheduleClock::Event e = clock.Next();
    out.push_back(absl::StrCat(absl::FormatDuration(e.at), "#", e.entry, ".", e.round));
  }
  return out;
}

TEST(ScheduleClock, FixedPeriodsInTimeOrder) {
  EXPECT_EQ(Timeline("every=30s,for=5s,fault=blackhole;every=45s,for=1s,fault=reset", 1, 7),
            (std::vector<std::string>{"30s#0.0", "45s#1.0", "1m#0.1", "1m30s#0.2", "1m30s#1.1",
                                      "2m#0.3", "2m15s#1.2"}));
  EXPECT_EQ(Timeline("every=10s,start=0s,for=1s,stall", 1, 3),
            (std::vector<std::string>{"0#0.0", "10s#0.1", "20s#0.2"}));
}

TEST(ScheduleClock, SplayIsSeededAndReproducible) {
  const std::string text = "every=10s,for=1s,splay=5s,blackhole;every=7s,for=1s,splay=3s,stall";
  std::vector<std::string> a = Timeline(text, 42, 50);
  EXPECT_EQ(a, Timeline(text, 42, 50));
  EXPECT_NE(a, Timeline(text, 43, 50));
  // Every activation stays within its period's splay window.
  ScheduleClock clock(*ParseSchedule(text), 42);
  absl::Duration last = absl::ZeroDuration();
  for (int i = 0; i < 200; ++i) {
    ScheduleClock::Event e = clock.Next();
    const ScheduleEntry& entry = clock.entries()[e.entry];
    absl::Duration base = entry.start + entry.every * static_cast<double>(e.round);
    EXPECT_GE(e.at, base);
    EXPECT_LE(e.at, base + entry.splay);
    EXPECT_GE(e.at, last);
    last = e.at;
  }
}

TEST(UniformUpTo, StaysInRangeAndIsPlatformIndependent) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 1000; ++i) EXPECT_LE(UniformUpTo(rng, 10), 10u);
  std::mt19937_64 a(1), b(1);
  EXPECT_EQ(UniformUpTo(a, 1000000), UniformUpTo(b, 1000000));
}

const absl::Time kT0 = absl::FromUnixSeconds(1000000);

TEST(Shaper, PassesThroughWithoutFaults) {
  Shaper shaper(1);
  shaper.Push("hello", kT0);
  shaper.Push(" world", kT0);
  EXPECT_EQ(shaper.queued(), 11u);
  EXPECT_EQ(shaper.Writable(kT0), 11u);  // same due time: one chunk, one write
  EXPECT_EQ(shaper.Front(), "hello world");
  shaper.Consume(3, kT0);
  EXPECT_EQ(shaper.Front(), "lo world");
  shaper.Consume(8, kT0);
  EXPECT_TRUE(shaper.empty());
  absl::Time next;
  EXPECT_EQ(shaper.Writable(kT0, &next), 0u);
  EXPECT_EQ(next, absl::InfiniteFuture());
}

TEST(Shaper, LatencyDelaysEachChunkAndKeepsOrder) {
  Shaper shaper(1);
  DirectionConfig config;
  config.delay = absl::Milliseconds(100);
  shaper.set_config(config);
  shaper.Push("a", kT0);
  shaper.Push("b", kT0 + absl::Milliseconds(30));
  absl::Time next;
  EXPECT_EQ(shaper.Writable(kT0 + absl::Milliseconds(99), &next), 0u);
  EXPECT_EQ(next, kT0 + absl::Milliseconds(100));
  EXPECT_EQ(shaper.Writable(next), 1u);
  EXPECT_EQ(shaper.Front(), "a");
  shaper.Consume(1, next);
  EXPECT_EQ(shaper.Writable(next, &next), 0u);
  EXPECT_EQ(next, kT0 + absl::Milliseconds(130));
  // Latency removed: new bytes still wait behind earlier ones (TCP does not reorder).
  shaper.set_config(DirectionConfig());
  shaper.Push("c", kT0 + absl::Milliseconds(40));
  EXPECT_EQ(shaper.Writable(kT0 + absl::Milliseconds(40), &next), 0u);
  EXPECT_EQ(next, kT0 + absl::Milliseconds(130));
}

std::vector<absl::Duration> DueTimes(uint64_t seed) {
  Shaper shaper(seed);
  DirectionConfig config;
  config.delay = absl::Milliseconds(100);
  config.jitter = absl::Milliseconds(40);
  shaper.set_config(config);
  std::vector<absl::Duration> due;
  for (int i = 0; i < 50; ++i) {
    absl::Time at = kT0 + absl::Milliseconds(10 * i);
    shaper.Push("x", at);
    absl::Time next;
    EXPECT_EQ(shaper.Writable(at, &next), 0u);
    due.push_back(next - at);
    shaper.Consume(shaper.Writable(next), next);
  }
  return due;
}

TEST(Shaper, JitterIsSeededBoundedAndOrdered) {
  std::vector<absl::Duration> a = DueTimes(5);
  EXPECT_EQ(a, DueTimes(5));
  EXPECT_NE(a, DueTimes(6));
  bool varied = false;
  for (absl::Duration d : a) {
    EXPECT_GE(d, absl::Milliseconds(60));
    EXPECT_LE(d, absl::Milliseconds(140) + absl::Milliseconds(10));  // may wait behind the last
    varied |= d != a[0];
  }
  EXPECT_TRUE(varied);
}

// Drains the shaper the way the proxy does, with time jumping to each `next`. Returns the time the
// last byte left and the largest single write.
std::pair<absl::Time, size_t> Drain(Shaper& shaper, absl::Time now, std::string* out) {
  size_t largest = 0;
  absl::Time last = now;
  while (!shaper.empty()) {
    absl::Time next;
    size_t n = shaper.Writable(now, &next);
    if (n == 0) {
      EXPECT_GT(next, now);
      now = next;
      continue;
    }
    out->append(std::string(shaper.Front().substr(0, n)));
    shaper.Consume(n, now);
    largest = std::max(largest, n);
    last = now;
  }
  return {last, largest};
}

TEST(Shaper, BandwidthPacesToTheRate) {
  Shaper shaper(1);
  DirectionConfig config;
  config.rate = 1000;  // bytes per second: 10-byte writes every 10 ms
  shaper.set_config(config);
  std::string input(2000, 'b');
  shaper.Push(input, kT0);
  std::string out;
  auto [last, largest] = Drain(shaper, kT0, &out);
  EXPECT_EQ(out, input);
  EXPECT_EQ(largest, 10u);
  EXPECT_EQ(last - kT0, absl::Milliseconds(1990));  // 200 writes, the last one 1.99 s in
}

TEST(Shaper, SegmentsOfOneByteWithAGap) {
  Shaper shaper(1);
  DirectionConfig config;
  config.segment = 1;
  config.gap = absl::Milliseconds(2);
  shaper.set_config(config);
  shaper.Push("abcde", kT0);
  std::string out;
  auto [last, largest] = Drain(shaper, kT0, &out);
  EXPECT_EQ(out, "abcde");
  EXPECT_EQ(largest, 1u);
  EXPECT_EQ(last - kT0, absl::Milliseconds(8));
}

TEST(Shaper, SegmentsWithoutGapAreImmediate) {
  Shaper shaper(1);
  DirectionConfig config;
  config.segment = 3;
  shaper.set_config(config);
  shaper.Push("abcdefgh", kT0);
  std::vector<size_t> sizes;
  while (size_t n = shaper.Writable(kT0)) {
    sizes.push_back(n);
    shaper.Consume(n, kT0);
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{3, 3, 2}));
  EXPECT_TRUE(shaper.empty());
}

TEST(Shaper, ClearDropsQueuedBytes) {
  Shaper shaper(1);
  shaper.Push("abc", kT0);
  shaper.Clear();
  EXPECT_TRUE(shaper.empty());
  EXPECT_EQ(shaper.Writable(kT0), 0u);
}

}  // namespace
}  // namespace faultproxy
}  // namespace hublink
