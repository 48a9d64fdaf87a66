// FileMessageStore: a durable, crash-safe MessageStore. Every mutation is one record appended to a
// log of segment files in a directory; Open() replays the log, so a restarted process finds the
// messages that were queued or in flight when it stopped, in their last recorded phase.
//
// On disk (all integers little-endian), DIR holds LOCK and segments named <16 hex digits>.seg:
//
//   segment header, 48 bytes:
//     "HLFS" | version u8 (1) | flags u8 (1 = encrypted, 2 = base) | 0 u16 | segment number u64 |
//     key check: nonce[12] tag[16] (zeros without encryption) | CRC32C of the 44 bytes before u32
//   then records, one per mutation:
//     length u32 (of body) | type u8 | body[length] | CRC32C of length, type and body u32
//   record types and their plaintext bodies:
//     1 ADD        seq u64 | packet_id u16 | phase u8 | qos u8 | flags u8 (1 = retain) |
//                  topic length u32 | topic | payload
//     2 SET_PHASE  seq u64 | phase u8 | packet_id u16
//     3 REMOVE     seq u64
//   encrypted, a body is nonce[12] | AES-256-GCM ciphertext | tag[16], with additional data
//   segment number u64 | record offset u64 | type u8 (a record moved or swapped does not open).
//   The key check is the GCM tag of an empty message under additional data
//   "hublink file store key check" | segment number: it tells a wrong key from a damaged record.
//
// Replay applies every segment in number order; a base segment (the output of compaction, or the
// first segment of a new store) starts from an empty store, and the segments before it are
// deleted. ADD of a stored seq replaces it; SET_PHASE and REMOVE of an unknown seq do nothing.
// The first record of a segment that is cut short or fails its CRC (or its GCM tag) ends that
// segment: the rest is reported (kRecordsDropped, with the offset and byte count) and truncated,
// so later appends are clean. A damaged log never stops Open; a wrong or missing key does.
//
// The active (last) segment rolls at 4 MiB. Sealed segments whose records are all dead are deleted
// oldest first; when the files hold more than twice the live records (and more than two segments'
// worth), compaction writes every live message as one ADD into a new base segment (a temp file,
// fdatasync, rename, fsync of the directory) and deletes all older segments.
//
// Sync modes (FileStoreConfig.sync): ALWAYS: Add and SetPhase return after fdatasync (Remove and
// Clear are written at once but synced with the next Add/SetPhase/Flush: a Remove lost to a power
// cut re-sends a QoS 1 message, which at-least-once allows). BATCH: fdatasync when batch_interval
// has passed since the last one, at the next write or Flush() (and when a full segment is sealed).
// NONE: no fdatasync (compaction still syncs its new segment before deleting the old ones).
//
// Errors (docs/errors.md): a full disk or quota (ENOSPC, EDQUOT, EFBIG) is kResourceExhausted; EIO
// is kUnavailable (the storage failed or went away: like an unreachable peer, worth a retry, e.g.
// once the storage is back; kDataLoss is the table's row for a peer breaking its protocol), other
// errnos as absl::ErrnoToStatus maps them (kInternal where it has no code). A failed write or sync
// of Add/SetPhase leaves the store as before the call (the partial record is truncated away) and
// the next mutation first rewrites the whole store into a new segment (compaction) so nothing
// depends on the failed sync. The limits give kResourceExhausted, a second process on the same
// directory kFailedPrecondition naming the holder's PID, a key that does not open the store
// kInvalidArgument (bad configuration: the key is not this store's).
//
// Not thread-safe: like the Session that owns it, use it from one thread (the loop thread).
#ifndef HUBLINK_PROTOCOLS_MQTT_FILE_STORE_FILE_STORE_H_
#define HUBLINK_PROTOCOLS_MQTT_FILE_STORE_FILE_STORE_H_

#include <openssl/aead.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "protocols/mqtt/file_store/file_store.pb.h"
#include "protocols/mqtt/message_store.h"

namespace hublink {
namespace mqtt {

// Something the owner should know about the store's health. None of these is an error returned to
// a caller by itself (those come back as absl::Status too).
struct FileStoreEvent {
  enum class Kind {
    // Open dropped the damaged or cut-short end of a segment: `segment`, `offset` (first byte
    // dropped), `bytes` (bytes dropped), `records` (whole records kept before it).
    kRecordsDropped,
    // Open deleted a segment whose header is unreadable (`segment`, `bytes`).
    kSegmentDropped,
    // Add found the store at a limit (reported once until an Add succeeds again).
    kStoreFull,
    // DROP_OLDEST removed message `seq` (`bytes`: its topic + payload) to make room.
    kMessageDropped,
    // A write failed (`status`); the call returned it, or for Remove/Clear (which cannot
    // return an error) the change is only in memory until the next compaction succeeds.
    kWriteFailed,
    // An fdatasync failed (`status`): what was written since the last good sync may be lost.
    kSyncFailed,
    // Compaction rewrote the live messages (`records`, `bytes` written) into `segment`.
    kCompacted,
  };
  Kind kind;
  std::string message;  // for people: "file_store: DIR: ..."
  absl::Status status;  // the I/O error, for kWriteFailed / kSyncFailed
  std::string segment;  // file name inside the directory, when one is concerned
  uint64_t offset = 0;
  uint64_t bytes = 0;
  uint64_t records = 0;
  uint64_t seq = 0;
};

class FileStoreEventSink {
 public:
  virtual ~FileStoreEventSink() = default;
  // Called on the store's thread, from inside the store's call: do not call the store back.
  virtual void OnFileStoreEvent(const FileStoreEvent& event) = 0;
};

// Knobs for tests and benchmarks; the defaults are the production behaviour.
struct FileStoreOptions {
  // The time BATCH measures batch_interval with.
  std::function<absl::Time()> now = [] { return absl::Now(); };
  // Called for every fdatasync of a segment (not of the directory): return 0 or -1 with errno set,
  // like ::fdatasync. Counting or failing syncs in tests.
  std::function<int(int fd)> fdatasync = [](int fd) { return ::fdatasync(fd); };
  // Called for every write into a segment, like ::pwrite (short writes are continued).
  std::function<ssize_t(int fd, const void* data, size_t size, off_t offset)> pwrite =
      [](int fd, const void* data, size_t size, off_t offset) {
        return ::pwrite(fd, data, size, offset);
      };
  // The active segment rolls once it reaches this size.
  uint64_t segment_bytes = 4 << 20;
  // Compaction runs when the files hold more than this and more than twice the live records.
  // 0: two segments' worth.
  uint64_t compact_min_bytes = 0;
};

class FileMessageStore : public MessageStore {
 public:
  // Locks and replays the store in config.path (creating it when absent). `sink` (may be null)
  // must outlive the store; it gets the recovery events before Open returns.
  static absl::StatusOr<std::unique_ptr<FileMessageStore>> Open(
      const FileStoreConfig& config, FileStoreEventSink* sink = nullptr,
      FileStoreOptions options = FileStoreOptions());

  // Syncs what is not synced yet (except with NONE) and releases the lock.
  ~FileMessageStore() override;
  FileMessageStore(const FileMessageStore&) = delete;
  FileMessageStore& operator=(const FileMessageStore&) = delete;

  // MessageStore. Add: kFailedPrecondition for a seq already stored, kResourceExhausted over a
  // limit or on a full disk, other I/O errors as above. SetPhase: kNotFound for an unknown seq.
  absl::Status Add(StoredMessage message) override;
  const StoredMessage* Find(uint64_t seq) const override;
  absl::Status SetPhase(uint64_t seq, StoredMessage::Phase phase, uint16_t packet_id) override;
  // Cannot fail by the interface: a write error is reported as an event (kWriteFailed) and the
  // removal kept in memory; the next compaction makes it durable.
  void Remove(uint64_t seq) override;
  // Empties the store atomically (a new empty base segment replaces every old one).
  void Clear() override;
  std::vector<uint64_t> Sequences() const override;
  size_t size() const override { return messages_.size(); }

  // fdatasync of everything written so far, when something is not synced yet (a no-op with NONE).
  // BATCH owners call it from a timer at NextFlush().
  absl::Status Flush();
  // When BATCH wants Flush() called: the last sync + batch_interval while something is unsynced,
  // InfiniteFuture() when nothing is (and always with ALWAYS/NONE).
  absl::Time NextFlush() const;
  // Runs compaction now (normally automatic).
  absl::Status Compact();

  // Topic + payload bytes of the stored messages (what max_bytes limits).
  uint64_t bytes() const { return message_bytes_; }
  // Bytes of all segment files, and of the records that are still live.
  uint64_t file_bytes() const { return file_bytes_; }
  uint64_t live_record_bytes() const { return live_record_bytes_; }
  // Segment numbers on disk, ascending (for tests).
  std::vector<uint64_t> segments() const;
  // fdatasyncs done so far (of segments; all modes).
  uint64_t sync_count() const { return sync_count_; }
  const std::string& path() const { return dir_; }

 private:
  struct Entry {
    StoredMessage message;
    uint64_t add_segment = 0;  // where the live ADD record is
    uint64_t add_bytes = 0;
    uint64_t phase_segment = 0;  // where the live SET_PHASE record is; 0: none
    uint64_t phase_bytes = 0;
  };
  struct Segment {
    uint64_t bytes = 0;      // file size
    uint64_t live_refs = 0;  // live ADD / SET_PHASE records in it
    bool encrypted = false;
  };
  enum class RecordType : uint8_t { kAdd = 1, kSetPhase = 2, kRemove = 3 };

  FileMessageStore(const FileStoreConfig& config, FileStoreEventSink* sink,
                   FileStoreOptions options);

  absl::Status Init(const FileStoreConfig& config);
  absl::Status LoadKey(const FileStoreConfig& config);
  absl::Status Lock();
  absl::Status Recover();
  // Replays one segment (deleting it when its header is unreadable).
  absl::Status ReplaySegment(uint64_t number);
  void ApplyAdd(StoredMessage message, uint64_t segment, uint64_t record_bytes);
  void ApplySetPhase(uint64_t seq, StoredMessage::Phase phase, uint16_t packet_id, uint64_t segment,
                     uint64_t record_bytes);
  void ApplyRemove(uint64_t seq);
  void Unref(uint64_t segment, uint64_t record_bytes);

  std::string SegmentName(uint64_t number) const;
  std::string SegmentPath(uint64_t number) const;
  std::string Header(uint64_t number, bool base) const;
  // Opens `number` (which exists) for appending at its end.
  absl::Status OpenActive(uint64_t number);
  // Creates segment `number` holding a header (and `records`), via a temp file and rename; synced
  // (file and directory) unless the mode is NONE and not `force_sync`.
  absl::Status CreateSegment(uint64_t number, bool base, bool force_sync,
                             const std::string& records);
  absl::Status Roll();
  // Appends one record to the active segment (rolling first when it is full) and syncs as the mode
  // says. On error the segment is as before. `record_bytes` gets the framed size.
  absl::Status Append(RecordType type, const std::string& body, bool sync_now,
                      uint64_t* record_bytes);
  std::string Frame(RecordType type, const std::string& body, uint64_t segment,
                    uint64_t offset) const;
  absl::Status WriteAll(int fd, const std::string& data, uint64_t offset, const std::string& name);
  absl::Status SyncActive();
  absl::Status SyncDir();
  absl::Status IoError(int error, const std::string& what) const;
  // Before a mutation: redo what a failed write or sync left in doubt.
  absl::Status Repair();
  void MaybeDeleteDeadSegments();
  void MaybeCompact();
  // Adds `segment` (of `size` bytes) to the bookkeeping.
  void Track(uint64_t segment, uint64_t size, bool encrypted);
  void Emit(FileStoreEvent event) const;
  absl::Status MakeRoom(const StoredMessage& message);

  std::string dir_;
  FileStoreConfig::Sync sync_mode_;
  absl::Duration batch_interval_;
  uint64_t max_bytes_;
  uint64_t max_messages_;
  FileStoreConfig::Overflow overflow_;
  FileStoreEventSink* sink_;
  FileStoreOptions options_;

  bool encrypted_ = false;
  EVP_AEAD_CTX aead_;

  int lock_fd_ = -1;
  bool locked_ = false;
  int active_fd_ = -1;
  uint64_t active_ = 0;  // active segment number
  std::map<uint64_t, Segment> segments_;
  std::map<uint64_t, Entry> messages_;
  uint64_t message_bytes_ = 0;
  uint64_t file_bytes_ = 0;
  uint64_t live_record_bytes_ = 0;

  bool dirty_ = false;  // written since the last sync
  absl::Time last_sync_;
  bool needs_repair_ = false;
  bool full_reported_ = false;
  uint64_t compact_retry_at_ = 0;  // after a failed compaction: file_bytes_ to reach first
  uint64_t sync_count_ = 0;
};

}  // namespace mqtt
}  // namespace hublink

#endif  // HUBLINK_PROTOCOLS_MQTT_FILE_STORE_FILE_STORE_H_
