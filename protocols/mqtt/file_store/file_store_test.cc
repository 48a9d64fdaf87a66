#include "protocols/mqtt/file_store/file_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protocols/mqtt/file_store/file_store.pb.h"
#include "protocols/mqtt/message_store.h"

namespace hublink {
namespace mqtt {
namespace {

using ::testing::HasSubstr;
using Phase = StoredMessage::Phase;
using Kind = FileStoreEvent::Kind;

// A fresh directory under TEST_TMPDIR per call.
std::string NewDir() {
  static int counter = 0;
  const char* tmp = std::getenv("TEST_TMPDIR");
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name =
      absl::StrCat(info->test_suite_name(), ".", info->name(), ".", getpid(), ".", ++counter);
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const std::string& n : ListDir(dir)) {
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".seg") == 0) out.push_back(n);
  }
  return out;
}

void CopyDir(const std::string& from, const std::string& to) {
  mkdir(to.c_str(), 0700);
  for (const std::string& n : ListDir(from)) {
    WriteFile(absl::StrCat(to, "/", n), ReadFile(absl::StrCat(from, "/", n)));
  }
}

class RecordingSink : public FileStoreEventSink {
 public:
  void OnFileStoreEvent(const FileStoreEvent& event) override { events.push_back(event); }
  int Count(Kind kind) const {
    return static_cast<int>(std::count_if(events.begin(), events.end(),
                                          [&](const FileStoreEvent& e) { return e.kind == kind; }));
  }
  const FileStoreEvent* Last(Kind kind) const {
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (it->kind == kind) return &*it;
    }
    return nullptr;
  }
  std::vector<FileStoreEvent> events;
};

StoredMessage Msg(uint64_t seq, std::string topic, std::string payload, uint8_t qos = 1,
                  Phase phase = Phase::kQueued, uint16_t packet_id = 0, bool retain = false) {
  StoredMessage m;
  m.seq = seq;
  m.topic = std::move(topic);
  m.payload = std::move(payload);
  m.qos = qos;
  m.phase = phase;
  m.packet_id = packet_id;
  m.retain = retain;
  return m;
}

// The whole content of a store, comparable.
std::string Dump(const MessageStore& store) {
  std::string out;
  for (uint64_t seq : store.Sequences()) {
    const StoredMessage* m = store.Find(seq);
    if (m == nullptr) {
      absl::StrAppend(&out, seq, ":missing;");
      continue;
    }
    absl::StrAppend(&out, m->seq, ",", m->packet_id, ",", static_cast<int>(m->phase), ",",
                    static_cast<int>(m->qos), ",", m->retain, ",", m->topic.size(), ":", m->topic,
                    ",", m->payload.size(), ":", m->payload, ";");
  }
  return out;
}

FileStoreConfig Config(const std::string& dir,
                       FileStoreConfig::Sync sync = FileStoreConfig::ALWAYS) {
  FileStoreConfig config;
  config.set_path(dir);
  config.set_sync(sync);
  return config;
}

std::unique_ptr<FileMessageStore> MustOpen(const FileStoreConfig& config,
                                           FileStoreEventSink* sink = nullptr,
                                           FileStoreOptions options = FileStoreOptions()) {
  auto store = FileMessageStore::Open(config, sink, std::move(options));
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(store).value() : nullptr;
}

constexpr char kHexKey[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

// Encryption on or off, for the tests that should hold either way.
class FileStoreTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { setenv("HUBLINK_FILE_STORE_TEST_KEY", kHexKey, 1); }
  FileStoreConfig Cfg(const std::string& dir,
                      FileStoreConfig::Sync sync = FileStoreConfig::ALWAYS) const {
    FileStoreConfig config = Config(dir, sync);
    if (GetParam()) config.mutable_encryption()->set_key_env("HUBLINK_FILE_STORE_TEST_KEY");
    return config;
  }
};

INSTANTIATE_TEST_SUITE_P(Plain, FileStoreTest, ::testing::Values(false));
INSTANTIATE_TEST_SUITE_P(Encrypted, FileStoreTest, ::testing::Values(true));

TEST_P(FileStoreTest, RoundTripOfEveryOperationAcrossReopen) {
  const std::string dir = NewDir();
  std::string expected;
  {
    auto store = MustOpen(Cfg(dir));
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->size(), 0u);
    ASSERT_TRUE(store->Add(Msg(1, "a/b", "hello")).ok());
    ASSERT_TRUE(
        store->Add(Msg(2, "t", std::string("\0bin\xff\0", 6), 2, Phase::kQueued, 0, true)).ok());
    ASSERT_TRUE(store->Add(Msg(3, "empty/payload", "", 0)).ok());
    ASSERT_TRUE(store->Add(Msg(5, "", "empty topic", 1, Phase::kAwaitingAck, 77)).ok());
    ASSERT_TRUE(store->Add(Msg(9, "big", std::string(100000, 'x'))).ok());
    ASSERT_TRUE(store->SetPhase(1, Phase::kAwaitingAck, 10).ok());
    ASSERT_TRUE(store->SetPhase(2, Phase::kAwaitingAck, 11).ok());
    ASSERT_TRUE(store->SetPhase(2, Phase::kAwaitingComp, 11).ok());
    ASSERT_TRUE(store->SetPhase(5, Phase::kQueued, 0).ok());
    store->Remove(3);
    store->Remove(3);   // twice: no-op
    store->Remove(42);  // unknown: no-op
    EXPECT_EQ(store->Add(Msg(1, "dup", "x")).code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(store->SetPhase(42, Phase::kAwaitingAck, 1).code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{1, 2, 5, 9}));
    EXPECT_EQ(store->Find(3), nullptr);
    EXPECT_EQ(store->Find(2)->phase, Phase::kAwaitingComp);
    EXPECT_EQ(store->bytes(), 3u + 5 + 1 + 6 + 11 + 3 + 100000);
    expected = Dump(*store);
  }
  {
    auto store = MustOpen(Cfg(dir));
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(Dump(*store), expected);
    EXPECT_EQ(store->bytes(), 3u + 5 + 1 + 6 + 11 + 3 + 100000);
    store->Clear();
    EXPECT_EQ(store->size(), 0u);
    ASSERT_TRUE(store->Add(Msg(10, "after", "clear")).ok());
  }
  auto store = MustOpen(Cfg(dir));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{10}));
  EXPECT_EQ(store->Find(10)->payload, "clear");
}

// Builds a store whose last record is the one `last_op` writes; returns the segment file, its
// bytes, where the last record starts, and the expected content without/with that record.
struct TornFixture {
  std::string segment;
  std::string bytes;
  size_t last_start = 0;
  std::string before;
  std::string after;
};

TornFixture MakeTornFixture(const FileStoreConfig& config,
                            const std::function<void(FileMessageStore&)>& last_op) {
  TornFixture f;
  auto store = MustOpen(config);
  if (store == nullptr) return f;
  EXPECT_TRUE(store->Add(Msg(1, "dev/one", "first payload")).ok());
  EXPECT_TRUE(store->Add(Msg(2, "dev/two", "second", 2)).ok());
  EXPECT_TRUE(store->SetPhase(1, Phase::kAwaitingAck, 5).ok());
  EXPECT_TRUE(store->Add(Msg(3, "dev/three", "third", 1, Phase::kQueued, 0, true)).ok());
  store->Remove(2);
  f.before = Dump(*store);
  const std::vector<std::string> segs = SegmentFiles(config.path());
  EXPECT_EQ(segs.size(), 1u);
  f.segment = absl::StrCat(config.path(), "/", segs.back());
  f.last_start = ReadFile(f.segment).size();
  last_op(*store);
  f.after = Dump(*store);
  store.reset();
  f.bytes = ReadFile(f.segment);
  EXPECT_GT(f.bytes.size(), f.last_start);
  return f;
}

// After damage at the last record: everything before it is kept, the damage is reported and cut
// off, and the store takes new writes that survive a reopen.
void CheckRecoveredAndWritable(const FileStoreConfig& config, const TornFixture& f,
                               bool expect_event, const std::string& what) {
  SCOPED_TRACE(what);
  RecordingSink sink;
  {
    auto store = MustOpen(config, &sink);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(Dump(*store), f.before);
    if (expect_event) {
      ASSERT_EQ(sink.Count(Kind::kRecordsDropped), 1);
      const FileStoreEvent* e = sink.Last(Kind::kRecordsDropped);
      EXPECT_EQ(e->offset, f.last_start);
      EXPECT_EQ(e->records, 5u);
      EXPECT_THAT(e->message, HasSubstr(absl::StrCat("from offset ", f.last_start)));
    } else {
      EXPECT_EQ(sink.Count(Kind::kRecordsDropped), 0);
    }
    EXPECT_EQ(ReadFile(f.segment).size(), f.last_start);  // the torn tail is gone
    ASSERT_TRUE(store->Add(Msg(100, "new/after/recovery", "fresh")).ok());
    ASSERT_TRUE(store->SetPhase(100, Phase::kAwaitingAck, 9).ok());
  }
  RecordingSink sink2;
  auto store = MustOpen(config, &sink2);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(sink2.Count(Kind::kRecordsDropped), 0);
  EXPECT_EQ(store->Sequences().back(), 100u);
  EXPECT_EQ(store->Find(100)->phase, Phase::kAwaitingAck);
  EXPECT_EQ(store->size(), store->Sequences().size());
}

struct LastOp {
  const char* name;
  std::function<void(FileMessageStore&)> op;
};

std::vector<LastOp> LastOps() {
  return {
      {"add", [](FileMessageStore& s) { ASSERT_TRUE(s.Add(Msg(4, "dev/four", "the last")).ok()); }},
      {"set_phase",
       [](FileMessageStore& s) { ASSERT_TRUE(s.SetPhase(3, Phase::kAwaitingAck, 6).ok()); }},
      {"remove", [](FileMessageStore& s) { s.Remove(1); }},
  };
}

TEST_P(FileStoreTest, TruncatedAtEveryByteOfTheLastRecord) {
  for (const LastOp& last : LastOps()) {
    const std::string origin = NewDir();
    const TornFixture f = MakeTornFixture(Cfg(origin, FileStoreConfig::NONE), last.op);
    ASSERT_GE(f.bytes.size(), f.last_start + 17) << last.name;  // 17: the smallest record
    for (size_t cut = f.last_start; cut < f.bytes.size(); ++cut) {
      const std::string dir = NewDir();
      CopyDir(origin, dir);
      const std::string segment = absl::StrCat(dir, f.segment.substr(origin.size()));
      WriteFile(segment, f.bytes.substr(0, cut));
      TornFixture g = f;
      g.segment = segment;
      CheckRecoveredAndWritable(Cfg(dir, FileStoreConfig::NONE), g, cut > f.last_start,
                                absl::StrCat(last.name, ": cut at ", cut, " of ", f.bytes.size()));
      if (::testing::Test::HasFatalFailure()) return;
    }
    // Whole: the record is there.
    auto store = MustOpen(Cfg(origin, FileStoreConfig::NONE));
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(Dump(*store), f.after) << last.name;
  }
}

TEST_P(FileStoreTest, FlippedByteAnywhereInTheLastRecord) {
  for (const LastOp& last : LastOps()) {
    const std::string origin = NewDir();
    const TornFixture f = MakeTornFixture(Cfg(origin, FileStoreConfig::NONE), last.op);
    ASSERT_GE(f.bytes.size(), f.last_start + 17) << last.name;
    for (size_t at = f.last_start; at < f.bytes.size(); ++at) {
      for (uint8_t mask : {0x01, 0x80}) {
        const std::string dir = NewDir();
        CopyDir(origin, dir);
        const std::string segment = absl::StrCat(dir, f.segment.substr(origin.size()));
        std::string bytes = f.bytes;
        bytes[at] = static_cast<char>(bytes[at] ^ mask);
        WriteFile(segment, bytes);
        TornFixture g = f;
        g.segment = segment;
        CheckRecoveredAndWritable(
            Cfg(dir, FileStoreConfig::NONE), g, true,
            absl::StrCat(last.name, ": flipped ", int{mask}, " at ", at, " of ", f.bytes.size()));
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
}

TEST_P(FileStoreTest, DamageInAnEarlierSegmentKeepsLaterSegments) {
  const std::string dir = NewDir();
  FileStoreOptions options;
  options.segment_bytes = 200;
  options.compact_min_bytes = uint64_t{1} << 40;  // no compaction here
  {
    auto store = MustOpen(Cfg(dir), nullptr, options);
    ASSERT_NE(store, nullptr);
    for (uint64_t seq = 1; seq <= 12; ++seq) {
      ASSERT_TRUE(store->Add(Msg(seq, "t", std::string(60, 'a' + seq))).ok());
    }
  }
  std::vector<std::string> segs = SegmentFiles(dir);
  ASSERT_GE(segs.size(), 4u);
  // Damage the last byte of the second segment: its last record goes, the rest stays.
  const std::string second = absl::StrCat(dir, "/", segs[1]);
  std::string bytes = ReadFile(second);
  bytes.back() ^= 0x40;
  WriteFile(second, bytes);
  RecordingSink sink;
  auto store = MustOpen(Cfg(dir), &sink, options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(sink.Count(Kind::kRecordsDropped), 1);
  EXPECT_EQ(sink.Last(Kind::kRecordsDropped)->segment, segs[1]);
  EXPECT_EQ(store->size(), 11u);
  EXPECT_EQ(store->Find(12)->payload, std::string(60, 'a' + 12));
}

TEST_P(FileStoreTest, SegmentWithTornHeaderIsDropped) {
  const std::string dir = NewDir();
  {
    auto store = MustOpen(Cfg(dir));
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Add(Msg(1, "t", "p")).ok());
  }
  // A roll cut short: the next segment holds half a header. Plus a leftover temp file.
  WriteFile(absl::StrCat(dir, "/0000000000000002.seg"), "HLFS\x01");
  WriteFile(absl::StrCat(dir, "/0000000000000003.seg.tmp"), "HLFS");
  RecordingSink sink;
  {
    auto store = MustOpen(Cfg(dir), &sink);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(sink.Count(Kind::kSegmentDropped), 1);
    EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{1}));
    ASSERT_TRUE(store->Add(Msg(2, "t", "q")).ok());
  }
  EXPECT_EQ(ListDir(dir), (std::vector<std::string>{"0000000000000001.seg", "LOCK"}));
  auto store = MustOpen(Cfg(dir));
  EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{1, 2}));
}

TEST_P(FileStoreTest, CompactionKeepsExactlyTheLiveRecordsAcrossReopen) {
  const std::string dir = NewDir();
  FileStoreOptions options;
  options.segment_bytes = 2048;
  options.compact_min_bytes = 8192;
  RecordingSink sink;
  std::string expected;
  {
    auto store = MustOpen(Cfg(dir), &sink, options);
    ASSERT_NE(store, nullptr);
    // Message 1 stays in flight for the whole run, pinning the first segment: only compaction
    // can reclaim the dead records around it.
    ASSERT_TRUE(store->Add(Msg(1, "pinned", "in flight forever")).ok());
    ASSERT_TRUE(store->SetPhase(1, Phase::kAwaitingAck, 1).ok());
    for (uint64_t seq = 2; seq <= 600; ++seq) {
      ASSERT_TRUE(store->Add(Msg(seq, absl::StrCat("t/", seq), std::string(40, 'p'))).ok());
      if (seq % 3 == 0) ASSERT_TRUE(store->SetPhase(seq, Phase::kAwaitingAck, seq % 65535).ok());
      if (seq % 7 == 0) {
        ASSERT_TRUE(store->SetPhase(seq, Phase::kAwaitingComp, seq % 65535).ok());
      }
      if (seq % 50 != 0 && seq % 7 != 0) store->Remove(seq);
    }
    EXPECT_GE(sink.Count(Kind::kCompacted), 1);
    // Bounded: about twice the live records plus a segment or two.
    EXPECT_LE(store->file_bytes(), 2 * store->live_record_bytes() + 3 * options.segment_bytes);
    std::vector<std::string> names;
    for (uint64_t n : store->segments()) names.push_back(absl::StrFormat("%016x.seg", n));
    EXPECT_EQ(SegmentFiles(dir), names);
    expected = Dump(*store);
    // Every 50th and every 7th, and message 1.
    EXPECT_EQ(store->size(), 1u + 12 + 85 - 1);
    ASSERT_TRUE(store->Compact().ok());
    EXPECT_EQ(store->segments().size(), 1u);
    EXPECT_EQ(Dump(*store), expected);
  }
  auto store = MustOpen(Cfg(dir), nullptr, options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Dump(*store), expected);
}

TEST_P(FileStoreTest, FifoTrafficDeletesDeadSegmentsWithoutCompaction) {
  const std::string dir = NewDir();
  FileStoreOptions options;
  options.segment_bytes = 1024;
  options.compact_min_bytes = uint64_t{1} << 40;
  auto store = MustOpen(Cfg(dir, FileStoreConfig::NONE), nullptr, options);
  ASSERT_NE(store, nullptr);
  for (uint64_t seq = 1; seq <= 2000; ++seq) {
    ASSERT_TRUE(store->Add(Msg(seq, "fifo", std::string(30, 'f'))).ok());
    if (seq > 10) store->Remove(seq - 10);
  }
  EXPECT_LE(SegmentFiles(dir).size(), 3u);
  EXPECT_EQ(store->size(), 10u);
  store.reset();
  store = MustOpen(Cfg(dir, FileStoreConfig::NONE), nullptr, options);
  EXPECT_EQ(store->Sequences().front(), 1991u);
  EXPECT_EQ(store->size(), 10u);
}

// A compaction that stopped after its rename but before deleting the old segments: replay starts
// at the new base segment, and the old ones are deleted then.
TEST_P(FileStoreTest, InterruptedCompactionIsFinishedAtOpen) {
  const std::string dir = NewDir();
  const std::string old_copy = NewDir();
  FileStoreOptions options;
  options.segment_bytes = 512;
  options.compact_min_bytes = uint64_t{1} << 40;
  std::string expected;
  std::vector<std::string> files_after;
  {
    auto store = MustOpen(Cfg(dir), nullptr, options);
    ASSERT_NE(store, nullptr);
    for (uint64_t seq = 1; seq <= 40; ++seq) {
      ASSERT_TRUE(store->Add(Msg(seq, "c", std::string(20, 'c'))).ok());
    }
    for (uint64_t seq = 2; seq <= 40; seq += 2) store->Remove(seq);
    ASSERT_TRUE(store->SetPhase(1, Phase::kAwaitingAck, 3).ok());
    CopyDir(dir, old_copy);
    ASSERT_TRUE(store->Compact().ok());
    ASSERT_TRUE(store->Add(Msg(41, "c", "after compaction")).ok());
    store->Remove(3);
    expected = Dump(*store);
    files_after = SegmentFiles(dir);
  }
  for (const std::string& n : SegmentFiles(old_copy)) {
    WriteFile(absl::StrCat(dir, "/", n), ReadFile(absl::StrCat(old_copy, "/", n)));
  }
  ASSERT_GT(SegmentFiles(dir).size(), 1u);
  auto store = MustOpen(Cfg(dir), nullptr, options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Dump(*store), expected);
  EXPECT_EQ(SegmentFiles(dir), files_after);
}

// --- sync modes ----------------------------------------------------------------------------

struct SyncCounter {
  int syncs = 0;
  int fail_next = 0;  // errno for the next sync, 0: succeed
  absl::Time now = absl::FromUnixSeconds(1700000000);
  FileStoreOptions Options() {
    FileStoreOptions options;
    options.now = [this] { return now; };
    options.fdatasync = [this](int fd) {
      ++syncs;
      if (fail_next != 0) {
        errno = fail_next;
        fail_next = 0;
        return -1;
      }
      return 0;
    };
    return options;
  }
};

TEST(FileStoreSyncTest, AlwaysSyncsEveryAddAndSetPhaseBeforeReturning) {
  SyncCounter counter;
  auto store = MustOpen(Config(NewDir(), FileStoreConfig::ALWAYS), nullptr, counter.Options());
  ASSERT_NE(store, nullptr);
  const int base = counter.syncs;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    ASSERT_TRUE(store->Add(Msg(seq, "t", "p")).ok());
    EXPECT_EQ(counter.syncs, base + static_cast<int>(seq));
  }
  ASSERT_TRUE(store->SetPhase(1, Phase::kAwaitingAck, 1).ok());
  EXPECT_EQ(counter.syncs, base + 6);
  store->Remove(1);  // written now, synced with the next sync
  EXPECT_EQ(counter.syncs, base + 6);
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(counter.syncs, base + 7);
  ASSERT_TRUE(store->Flush().ok());  // nothing unsynced
  EXPECT_EQ(counter.syncs, base + 7);
  EXPECT_EQ(store->NextFlush(), absl::InfiniteFuture());
  store->Remove(2);
  store.reset();  // closing syncs what is unsynced
  EXPECT_EQ(counter.syncs, base + 8);
}

TEST(FileStoreSyncTest, BatchSyncsAtMostEveryIntervalOnTheInjectedClock) {
  SyncCounter counter;
  FileStoreConfig config = Config(NewDir(), FileStoreConfig::BATCH);
  config.mutable_batch_interval()->set_nanos(50000000);  // 50 ms
  auto store = MustOpen(config, nullptr, counter.Options());
  ASSERT_NE(store, nullptr);
  const int base = counter.syncs;
  const absl::Time t0 = counter.now;
  EXPECT_EQ(store->NextFlush(), absl::InfiniteFuture());
  for (uint64_t seq = 1; seq <= 10; ++seq) ASSERT_TRUE(store->Add(Msg(seq, "t", "p")).ok());
  EXPECT_EQ(counter.syncs, base);
  EXPECT_EQ(store->NextFlush(), t0 + absl::Milliseconds(50));
  counter.now = t0 + absl::Milliseconds(49);
  ASSERT_TRUE(store->SetPhase(1, Phase::kAwaitingAck, 1).ok());
  store->Remove(2);
  EXPECT_EQ(counter.syncs, base);
  counter.now = t0 + absl::Milliseconds(50);  // due: the next write syncs
  ASSERT_TRUE(store->Add(Msg(11, "t", "p")).ok());
  EXPECT_EQ(counter.syncs, base + 1);
  EXPECT_EQ(store->NextFlush(), absl::InfiniteFuture());
  counter.now += absl::Milliseconds(10);
  ASSERT_TRUE(store->Add(Msg(12, "t", "p")).ok());
  EXPECT_EQ(counter.syncs, base + 1);
  EXPECT_EQ(store->NextFlush(), t0 + absl::Milliseconds(100));
  ASSERT_TRUE(store->Flush().ok());  // the owner's timer
  EXPECT_EQ(counter.syncs, base + 2);
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(counter.syncs, base + 2);
  EXPECT_EQ(store->NextFlush(), absl::InfiniteFuture());
}

TEST(FileStoreSyncTest, BatchIntervalDefaultsTo50ms) {
  SyncCounter counter;
  auto store = MustOpen(Config(NewDir(), FileStoreConfig::BATCH), nullptr, counter.Options());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Add(Msg(1, "t", "p")).ok());
  EXPECT_EQ(store->NextFlush(), counter.now + absl::Milliseconds(50));
}

TEST(FileStoreSyncTest, NoneNeverSyncs) {
  SyncCounter counter;
  auto store = MustOpen(Config(NewDir(), FileStoreConfig::NONE), nullptr, counter.Options());
  ASSERT_NE(store, nullptr);
  for (uint64_t seq = 1; seq <= 20; ++seq) {
    ASSERT_TRUE(store->Add(Msg(seq, "t", "p")).ok());
    ASSERT_TRUE(store->SetPhase(seq, Phase::kAwaitingAck, seq).ok());
    counter.now += absl::Seconds(1);
  }
  for (uint64_t seq = 1; seq <= 10; ++seq) store->Remove(seq);
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(store->NextFlush(), absl::InfiniteFuture());
  store.reset();
  EXPECT_EQ(counter.syncs, 0);
}

TEST(FileStoreSyncTest, FailedSyncRefusesTheMessageAndTheNextWriteRepairs) {
  const std::string dir = NewDir();
  SyncCounter counter;
  RecordingSink sink;
  {
    auto store = MustOpen(Config(dir), &sink, counter.Options());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Add(Msg(1, "t", "kept")).ok());
    counter.fail_next = EIO;
    absl::Status status = store->Add(Msg(2, "t", "refused"));
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("fdatasync"));
    EXPECT_EQ(sink.Count(Kind::kSyncFailed), 1);
    EXPECT_EQ(store->Find(2), nullptr);
    EXPECT_EQ(store->size(), 1u);
    // The next write first rewrites the store into a new segment (nothing rests on the failed
    // sync), then goes on.
    ASSERT_TRUE(store->Add(Msg(3, "t", "after")).ok());
    EXPECT_EQ(sink.Count(Kind::kCompacted), 1);
  }
  auto store = MustOpen(Config(dir));
  EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{1, 3}));
}

TEST(FileStoreSyncTest, FullDiskIsResourceExhaustedAndLeavesTheStoreAsItWas) {
  const std::string dir = NewDir();
  RecordingSink sink;
  int fail_writes = 0;
  FileStoreOptions options;
  options.pwrite = [&fail_writes](int fd, const void* data, size_t size, off_t offset) -> ssize_t {
    if (fail_writes > 0) {
      --fail_writes;
      // Half the record reaches the file first, as on a disk that fills up mid-write.
      if (size > 1 && ::pwrite(fd, data, size / 2, offset) < 0) return -1;
      errno = ENOSPC;
      return -1;
    }
    return ::pwrite(fd, data, size, offset);
  };
  {
    auto store = MustOpen(Config(dir), &sink, options);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Add(Msg(1, "t", "kept")).ok());
    const uint64_t size_before = store->file_bytes();
    fail_writes = 1;
    absl::Status status = store->Add(Msg(2, "t", "no room"));
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("No space left on device"));
    EXPECT_EQ(sink.Count(Kind::kWriteFailed), 1);
    EXPECT_EQ(store->Find(2), nullptr);
    EXPECT_EQ(store->file_bytes(), size_before);
    fail_writes = 1;
    EXPECT_EQ(store->SetPhase(1, Phase::kAwaitingAck, 4).code(),
              absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(store->Find(1)->phase, Phase::kQueued);
    ASSERT_TRUE(store->Add(Msg(3, "t", "room again")).ok());
  }
  RecordingSink sink2;
  auto store = MustOpen(Config(dir), &sink2);
  EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(sink2.Count(Kind::kRecordsDropped), 0);
}

TEST(FileStoreSyncTest, FailedRemoveIsReportedAndMadeDurableByTheNextWrite) {
  const std::string dir = NewDir();
  RecordingSink sink;
  bool fail = false;
  FileStoreOptions options;
  options.pwrite = [&fail](int fd, const void* data, size_t size, off_t offset) -> ssize_t {
    if (fail) {
      errno = EIO;
      return -1;
    }
    return ::pwrite(fd, data, size, offset);
  };
  {
    auto store = MustOpen(Config(dir), &sink, options);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Add(Msg(1, "t", "acknowledged")).ok());
    ASSERT_TRUE(store->Add(Msg(2, "t", "stays")).ok());
    fail = true;
    store->Remove(1);  // cannot return the error
    fail = false;
    ASSERT_EQ(sink.Count(Kind::kWriteFailed), 1);
    EXPECT_EQ(sink.Last(Kind::kWriteFailed)->status.code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(store->Find(1), nullptr);  // gone in memory at once
    ASSERT_TRUE(store->Add(Msg(3, "t", "next")).ok());
    EXPECT_EQ(sink.Count(Kind::kCompacted), 1);  // the next write made the removal durable
  }
  auto store = MustOpen(Config(dir));
  EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{2, 3}));
}

// --- limits -----------------------------------------------------------------------------------

TEST(FileStoreLimitsTest, RejectNewOverMaxMessagesAndMaxBytes) {
  const std::string dir = NewDir();
  FileStoreConfig config = Config(dir, FileStoreConfig::NONE);
  config.set_max_messages(3);
  config.set_max_bytes(100);
  RecordingSink sink;
  auto store = MustOpen(config, &sink);
  ASSERT_NE(store, nullptr);
  for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(store->Add(Msg(seq, "t", "p")).ok());
  absl::Status status = store->Add(Msg(4, "topic/4", "p"));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("store full (3 messages, 6 bytes; limits max_messages 3, max_bytes 100)"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("message 4 to \"topic/4\""));
  EXPECT_EQ(store->Add(Msg(5, "t", "p")).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(sink.Count(Kind::kStoreFull), 1);  // once until an Add succeeds again
  store->Remove(1);
  // Bytes: 2 + 2 stored; 97 more do not fit, 96 do.
  EXPECT_EQ(store->Add(Msg(6, "t", std::string(96, 'b'))).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(sink.Count(Kind::kStoreFull), 1);
  ASSERT_TRUE(store->Add(Msg(7, "t", std::string(95, 'b'))).ok());
  EXPECT_EQ(store->bytes(), 100u);
  status = store->Add(Msg(8, "t", std::string(200, 'b')));
  EXPECT_THAT(std::string(status.message()), HasSubstr("alone exceeds max_bytes"));
  EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{2, 3, 7}));
}

TEST(FileStoreLimitsTest, DropOldestDropsTheOldestQueuedAndReportsIt) {
  const std::string dir = NewDir();
  FileStoreConfig config = Config(dir);
  config.set_max_messages(3);
  config.set_overflow(FileStoreConfig::DROP_OLDEST);
  RecordingSink sink;
  {
    auto store = MustOpen(config, &sink);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Add(Msg(1, "t/1", "in flight", 1, Phase::kAwaitingAck, 1)).ok());
    ASSERT_TRUE(store->Add(Msg(2, "t/2", "queued")).ok());
    ASSERT_TRUE(store->Add(Msg(3, "t/3", "queued")).ok());
    ASSERT_TRUE(store->Add(Msg(4, "t/4", "new")).ok());
    ASSERT_EQ(sink.Count(Kind::kMessageDropped), 1);
    EXPECT_EQ(sink.Last(Kind::kMessageDropped)->seq, 2u);
    EXPECT_THAT(sink.Last(Kind::kMessageDropped)->message, HasSubstr("\"t/2\""));
    EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{1, 3, 4}));
    ASSERT_TRUE(store->SetPhase(3, Phase::kAwaitingAck, 2).ok());
    ASSERT_TRUE(store->SetPhase(4, Phase::kAwaitingComp, 3).ok());
    // Only in-flight messages left: nothing to drop.
    absl::Status status = store->Add(Msg(5, "t/5", "new"));
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(std::string(status.message()), HasSubstr("only in-flight messages"));
  }
  auto store = MustOpen(config);
  EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{1, 3, 4}));
}

TEST(FileStoreLimitsTest, DropOldestByBytesDropsAsManyAsNeeded) {
  FileStoreConfig config = Config(NewDir(), FileStoreConfig::NONE);
  config.set_max_bytes(30);
  config.set_overflow(FileStoreConfig::DROP_OLDEST);
  RecordingSink sink;
  auto store = MustOpen(config, &sink);
  ASSERT_NE(store, nullptr);
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    ASSERT_TRUE(store->Add(Msg(seq, "t", std::string(9, 'x'))).ok());  // 10 bytes each
  }
  ASSERT_TRUE(store->Add(Msg(4, "t", std::string(19, 'y'))).ok());  // 20 bytes: two must go
  EXPECT_EQ(sink.Count(Kind::kMessageDropped), 2);
  EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{3, 4}));
  EXPECT_EQ(store->bytes(), 30u);
}

// --- one process per directory -----------------------------------------------------------

TEST(FileStoreLockTest, SecondOpenInTheSameProcessIsRefused) {
  const std::string dir = NewDir();
  auto first = MustOpen(Config(dir));
  ASSERT_NE(first, nullptr);
  auto second = FileMessageStore::Open(Config(dir));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr(absl::StrCat("in use by process ", getpid())));
  EXPECT_EQ(ReadFile(absl::StrCat(dir, "/LOCK")), absl::StrCat(getpid(), "\n"));
  first.reset();
  EXPECT_TRUE(FileMessageStore::Open(Config(dir)).ok());
}

TEST(FileStoreLockTest, SecondProcessIsRefusedWithTheHoldersPid) {
  const std::string dir = NewDir();
  int ready[2], release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The holder: opens the store, says so, and waits. It ends with _exit and without closing
    // the store, like a crash: the kernel releases the lock.
    close(ready[0]);
    close(release[1]);
    auto store = FileMessageStore::Open(Config(dir));
    const char c = store.ok() ? '1' : '0';
    if (store.ok()) (void)(*store)->Add(Msg(1, "from", "child"));
    if (write(ready[1], &c, 1) != 1) _exit(2);
    char buf;
    while (read(release[0], &buf, 1) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  close(ready[1]);
  close(release[0]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, '1');
  auto second = FileMessageStore::Open(Config(dir));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr(absl::StrCat("in use by process ", child, " ")));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("one process per store"));
  close(release[1]);  // the child exits
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
  close(ready[0]);
  auto third = MustOpen(Config(dir));
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->Sequences(), (std::vector<uint64_t>{1}));
  EXPECT_EQ(ReadFile(absl::StrCat(dir, "/LOCK")), absl::StrCat(getpid(), "\n"));
}

// A writer killed (SIGKILL) in the middle of its stream: every message whose Add had returned is
// there after a reopen, and the store takes writes again.
TEST(FileStoreCrashTest, KilledWriterKeepsEveryAcceptedMessage) {
  const std::string dir = NewDir();
  int acks[2];
  ASSERT_EQ(pipe(acks), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(acks[0]);
    FileStoreOptions options;
    options.segment_bytes = 4096;  // rolls and dead-segment deletion happen too
    auto store = FileMessageStore::Open(Config(dir, FileStoreConfig::BATCH), nullptr, options);
    if (!store.ok()) _exit(3);
    for (uint64_t seq = 1;; ++seq) {
      if (!(*store)->Add(Msg(seq, "kill/test", std::string(50, 'k'))).ok()) _exit(4);
      if (seq > 5) (*store)->Remove(seq - 5);
      if (write(acks[1], &seq, sizeof(seq)) != sizeof(seq)) _exit(5);
    }
  }
  close(acks[1]);
  uint64_t last = 0;
  uint64_t seq;
  while (last < 300 && read(acks[0], &seq, sizeof(seq)) == sizeof(seq)) last = seq;
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited with " << WEXITSTATUS(wstatus);
  while (read(acks[0], &seq, sizeof(seq)) == sizeof(seq)) last = seq;
  close(acks[0]);
  ASSERT_GE(last, 300u);
  auto store = MustOpen(Config(dir, FileStoreConfig::BATCH));
  ASSERT_NE(store, nullptr);
  for (uint64_t s = last - 3; s <= last; ++s) EXPECT_NE(store->Find(s), nullptr) << s;
  for (uint64_t s : store->Sequences()) {
    EXPECT_TRUE(s + 4 >= last && s <= last + 1) << s << " (last accepted " << last << ")";
  }
  ASSERT_TRUE(store->Add(Msg(last + 100, "after", "kill")).ok());
}

// --- encryption ---------------------------------------------------------------------------

std::string AllSegmentBytes(const std::string& dir) {
  std::string all;
  for (const std::string& n : SegmentFiles(dir)) all += ReadFile(absl::StrCat(dir, "/", n));
  return all;
}

TEST(FileStoreEncryptionTest, RoundTripWithARawKeyFileAndNoPlaintextOnDisk) {
  const std::string dir = NewDir();
  const std::string key_file = dir + ".key";
  std::string raw(32, '\0');
  for (int i = 0; i < 32; ++i) raw[i] = static_cast<char>(200 + i);
  WriteFile(key_file, raw);
  FileStoreConfig config = Config(dir);
  config.mutable_encryption()->set_key_file(key_file);
  const std::string secret_payload = "SECRET-PAYLOAD-temperature=21.5";
  const std::string secret_topic = "SECRET-TOPIC/device/42";
  {
    auto store = MustOpen(config);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Add(Msg(1, secret_topic, secret_payload)).ok());
    ASSERT_TRUE(store->Add(Msg(2, secret_topic, secret_payload + "-2")).ok());
    ASSERT_TRUE(store->SetPhase(1, Phase::kAwaitingAck, 7).ok());
    store->Remove(2);
  }
  const std::string disk = AllSegmentBytes(dir);
  EXPECT_EQ(disk.find("SECRET"), std::string::npos);
  auto store = MustOpen(config);
  ASSERT_NE(store, nullptr);
  ASSERT_EQ(store->Sequences(), (std::vector<uint64_t>{1}));
  EXPECT_EQ(store->Find(1)->payload, secret_payload);
  EXPECT_EQ(store->Find(1)->topic, secret_topic);
  EXPECT_EQ(store->Find(1)->packet_id, 7);

  // The control: without encryption the same bytes are there in clear.
  const std::string plain_dir = NewDir();
  {
    auto plain = MustOpen(Config(plain_dir));
    ASSERT_TRUE(plain->Add(Msg(1, secret_topic, secret_payload)).ok());
  }
  EXPECT_NE(AllSegmentBytes(plain_dir).find(secret_payload), std::string::npos);
}

TEST(FileStoreEncryptionTest, HexKeyFileAndEnvGiveTheSameKey) {
  const std::string dir = NewDir();
  const std::string key_file = dir + ".hex";
  WriteFile(key_file, absl::StrCat("  ", kHexKey, "\n"));
  setenv("HUBLINK_FILE_STORE_TEST_KEY2", kHexKey, 1);
  FileStoreConfig from_file = Config(dir);
  from_file.mutable_encryption()->set_key_file(key_file);
  FileStoreConfig from_env = Config(dir);
  from_env.mutable_encryption()->set_key_env("HUBLINK_FILE_STORE_TEST_KEY2");
  {
    auto store = MustOpen(from_file);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Add(Msg(1, "t", "p")).ok());
  }
  auto store = MustOpen(from_env);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{1}));
}

TEST(FileStoreEncryptionTest, WrongOrMissingKeyIsAClearErrorAndLosesNothing) {
  const std::string dir = NewDir();
  setenv("HUBLINK_FILE_STORE_TEST_KEY", kHexKey, 1);
  std::string other = kHexKey;
  other[0] = 'f';
  setenv("HUBLINK_FILE_STORE_TEST_OTHER", other.c_str(), 1);
  FileStoreConfig right = Config(dir);
  right.mutable_encryption()->set_key_env("HUBLINK_FILE_STORE_TEST_KEY");
  FileStoreConfig wrong = Config(dir);
  wrong.mutable_encryption()->set_key_env("HUBLINK_FILE_STORE_TEST_OTHER");
  {
    auto store = MustOpen(right);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Add(Msg(1, "t", "p")).ok());
  }
  const std::string disk = AllSegmentBytes(dir);
  auto bad = FileMessageStore::Open(wrong);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("wrong key"));
  auto none = FileMessageStore::Open(Config(dir));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("the store is encrypted"));
  EXPECT_EQ(AllSegmentBytes(dir), disk);  // untouched
  auto store = MustOpen(right);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{1}));
}

TEST(FileStoreEncryptionTest, PlaintextStoreOpenedWithAKeyMovesToEncryptedSegments) {
  const std::string dir = NewDir();
  {
    auto store = MustOpen(Config(dir));
    ASSERT_TRUE(store->Add(Msg(1, "t", "PLAIN-OLD")).ok());
  }
  setenv("HUBLINK_FILE_STORE_TEST_KEY", kHexKey, 1);
  FileStoreConfig keyed = Config(dir);
  keyed.mutable_encryption()->set_key_env("HUBLINK_FILE_STORE_TEST_KEY");
  {
    auto store = MustOpen(keyed);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Add(Msg(2, "t", "NEW-ENCRYPTED")).ok());
    EXPECT_EQ(AllSegmentBytes(dir).find("NEW-ENCRYPTED"), std::string::npos);
    ASSERT_TRUE(store->Compact().ok());
    EXPECT_EQ(AllSegmentBytes(dir).find("PLAIN-OLD"), std::string::npos);
  }
  auto store = MustOpen(keyed);
  EXPECT_EQ(store->Sequences(), (std::vector<uint64_t>{1, 2}));
}

// --- configuration --------------------------------------------------------------------------

TEST(FileStoreConfigTest, BadConfigurations) {
  const std::string dir = NewDir();
  struct Case {
    const char* name;
    std::function<void(FileStoreConfig&)> edit;
    absl::StatusCode code;
    std::string message;
  };
  const std::string bad_key_file = dir + ".badkey";
  WriteFile(bad_key_file, "not a key\n");
  setenv("HUBLINK_FILE_STORE_TEST_SHORT", "abcd", 1);
  const std::vector<Case> cases = {
      {"no path", [](FileStoreConfig& c) { c.clear_path(); }, absl::StatusCode::kInvalidArgument,
       "file_store: path: missing"},
      {"negative interval", [](FileStoreConfig& c) { c.mutable_batch_interval()->set_seconds(-1); },
       absl::StatusCode::kInvalidArgument, "file_store: batch_interval: must not be negative"},
      {"encryption without key", [](FileStoreConfig& c) { c.mutable_encryption(); },
       absl::StatusCode::kInvalidArgument, "set encryption.key_file or encryption.key_env"},
      {"missing key file",
       [&](FileStoreConfig& c) { c.mutable_encryption()->set_key_file(dir + ".nokey"); },
       absl::StatusCode::kNotFound, "file_store: encryption.key_file"},
      {"bad key file",
       [&](FileStoreConfig& c) { c.mutable_encryption()->set_key_file(bad_key_file); },
       absl::StatusCode::kInvalidArgument, "32 raw bytes or 64 hex digits"},
      {"unset env",
       [](FileStoreConfig& c) { c.mutable_encryption()->set_key_env("HUBLINK_FILE_STORE_UNSET"); },
       absl::StatusCode::kNotFound,
       "HUBLINK_FILE_STORE_UNSET: the environment variable is not set"},
      {"short env",
       [](FileStoreConfig& c) {
         c.mutable_encryption()->set_key_env("HUBLINK_FILE_STORE_TEST_SHORT");
       },
       absl::StatusCode::kInvalidArgument, "expected 64 hex digits"},
  };
  for (const Case& c : cases) {
    FileStoreConfig config = Config(dir);
    c.edit(config);
    auto store = FileMessageStore::Open(config);
    ASSERT_FALSE(store.ok()) << c.name;
    EXPECT_EQ(store.status().code(), c.code) << c.name << ": " << store.status();
    EXPECT_THAT(std::string(store.status().message()), HasSubstr(c.message)) << c.name;
    EXPECT_THAT(std::string(store.status().message()), ::testing::Not(HasSubstr(kHexKey)));
  }
  // A file where the directory should be.
  WriteFile(dir + ".file", "x");
  auto store = FileMessageStore::Open(Config(dir + ".file"));
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FileStoreConfigTest, CreatesMissingDirectories) {
  const std::string dir = NewDir() + "/a/b/store";
  auto store = MustOpen(Config(dir));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Add(Msg(1, "t", "p")).ok());
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

}  // namespace
}  // namespace mqtt
}  // namespace hublink
