#include "protocols/mqtt/file_store/file_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "auth/secret_file.h"
#include "plugins/duration.h"
#include "plugins/status_macros.h"
#include "protocols/mqtt/file_store/crc32c.h"

namespace hublink {
namespace mqtt {
namespace {

constexpr char kMagic[4] = {'H', 'L', 'F', 'S'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kFlagEncrypted = 1;
constexpr uint8_t kFlagBase = 2;
constexpr size_t kHeaderBytes = 48;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr size_t kKeyBytes = 32;
constexpr size_t kFrameBytes = 4 + 1 + 4;  // length, type, CRC
// Largest body: an MQTT payload (256 MiB) with a topic, the fields and the GCM overhead.
constexpr uint64_t kMaxBodyBytes = (uint64_t{1} << 28) + (uint64_t{1} << 17);
constexpr size_t kAddFixedBytes = 8 + 2 + 1 + 1 + 1 + 4;
constexpr char kKeyCheckLabel[] = "hublink file store key check";

constexpr uint64_t kDefaultMaxBytes = uint64_t{64} << 20;
constexpr uint64_t kDefaultMaxMessages = 100000;
constexpr absl::Duration kDefaultBatchInterval = absl::Milliseconds(50);

void PutU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}
void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetLE(const char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<uint8_t>(p[i])} << (8 * i);
  return v;
}

std::string EncodeAdd(const StoredMessage& m) {
  std::string body;
  body.reserve(kAddFixedBytes + m.topic.size() + m.payload.size());
  PutU64(body, m.seq);
  PutU16(body, m.packet_id);
  body.push_back(static_cast<char>(m.phase));
  body.push_back(static_cast<char>(m.qos));
  body.push_back(m.retain ? 1 : 0);
  PutU32(body, static_cast<uint32_t>(m.topic.size()));
  body.append(m.topic);
  body.append(m.payload);
  return body;
}

bool DecodeAdd(absl::string_view body, StoredMessage* m) {
  if (body.size() < kAddFixedBytes) return false;
  const char* p = body.data();
  m->seq = GetLE(p, 8);
  m->packet_id = static_cast<uint16_t>(GetLE(p + 8, 2));
  const uint8_t phase = static_cast<uint8_t>(p[10]);
  m->qos = static_cast<uint8_t>(p[11]);
  const uint8_t flags = static_cast<uint8_t>(p[12]);
  const uint64_t topic_len = GetLE(p + 13, 4);
  if (phase > 2 || m->qos > 2 || flags > 1) return false;
  if (topic_len > body.size() - kAddFixedBytes) return false;
  m->phase = static_cast<StoredMessage::Phase>(phase);
  m->retain = flags == 1;
  m->topic.assign(p + kAddFixedBytes, topic_len);
  m->payload.assign(p + kAddFixedBytes + topic_len, body.size() - kAddFixedBytes - topic_len);
  return true;
}

std::string Ad(uint64_t segment, uint64_t offset, uint8_t type) {
  std::string ad;
  PutU64(ad, segment);
  PutU64(ad, offset);
  ad.push_back(static_cast<char>(type));
  return ad;
}

std::string KeyCheckAd(uint64_t segment) {
  std::string ad(kKeyCheckLabel);
  PutU64(ad, segment);
  return ad;
}

bool ParseSegmentName(const std::string& name, uint64_t* number) {
  if (name.size() != 16 + 4 || name.compare(16, 4, ".seg") != 0) return false;
  uint64_t n = 0;
  for (int i = 0; i < 16; ++i) {
    const char c = name[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    n = (n << 4) | d;
  }
  *number = n;
  return true;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// 64 hex digits (surrounding whitespace ignored) -> 32 bytes in `key`.
bool DecodeHexKey(absl::string_view text, std::string* key) {
  text = absl::StripAsciiWhitespace(text);
  if (text.size() != 2 * kKeyBytes) return false;
  key->assign(kKeyBytes, '\0');
  for (size_t i = 0; i < kKeyBytes; ++i) {
    const int hi = HexDigit(text[2 * i]);
    const int lo = HexDigit(text[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      auth::Wipe(*key);
      return false;
    }
    (*key)[i] = static_cast<char>((hi << 4) | lo);
  }
  return true;
}

absl::Status MakeDirs(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("file_store: path ", path, ": not a directory"));
    }
    return absl::OkStatus();
  }
  const size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    HUBLINK_RETURN_IF_ERROR(MakeDirs(path.substr(0, slash)));
  }
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::ErrnoToStatus(errno, absl::StrCat("file_store: path ", path, ": cannot create"));
  }
  return absl::OkStatus();
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

FileMessageStore::FileMessageStore(const FileStoreConfig& config, FileStoreEventSink* sink,
                                   FileStoreOptions options)
    : dir_(config.path()),
      sync_mode_(config.sync()),
      overflow_(config.overflow()),
      sink_(sink),
      options_(std::move(options)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  max_bytes_ = config.max_bytes() == 0 ? kDefaultMaxBytes : config.max_bytes();
  max_messages_ = config.max_messages() == 0 ? kDefaultMaxMessages : config.max_messages();
  batch_interval_ = ToDuration(config.batch_interval());
  if (batch_interval_ == absl::ZeroDuration()) batch_interval_ = kDefaultBatchInterval;
  if (options_.segment_bytes == 0) options_.segment_bytes = 4 << 20;
  if (options_.compact_min_bytes == 0) options_.compact_min_bytes = 2 * options_.segment_bytes;
  std::memset(&aead_, 0, sizeof(aead_));
}

absl::StatusOr<std::unique_ptr<FileMessageStore>> FileMessageStore::Open(
    const FileStoreConfig& config, FileStoreEventSink* sink, FileStoreOptions options) {
  std::unique_ptr<FileMessageStore> store(new FileMessageStore(config, sink, std::move(options)));
  HUBLINK_RETURN_IF_ERROR(store->Init(config));
  return store;
}

absl::Status FileMessageStore::Init(const FileStoreConfig& config) {
  if (config.path().empty()) {
    return absl::InvalidArgumentError("file_store: path: missing (the store's directory)");
  }
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(config.batch_interval(), "file_store: batch_interval"));
  if (sync_mode_ != FileStoreConfig::ALWAYS && sync_mode_ != FileStoreConfig::BATCH &&
      sync_mode_ != FileStoreConfig::NONE) {
    return absl::InvalidArgumentError(
        absl::StrCat("file_store: sync: unknown value ", static_cast<int>(sync_mode_)));
  }
  if (overflow_ != FileStoreConfig::REJECT_NEW && overflow_ != FileStoreConfig::DROP_OLDEST) {
    return absl::InvalidArgumentError(
        absl::StrCat("file_store: overflow: unknown value ", static_cast<int>(overflow_)));
  }
  HUBLINK_RETURN_IF_ERROR(LoadKey(config));
  HUBLINK_RETURN_IF_ERROR(MakeDirs(dir_));
  HUBLINK_RETURN_IF_ERROR(Lock());
  return Recover();
}

absl::Status FileMessageStore::LoadKey(const FileStoreConfig& config) {
  if (!config.has_encryption()) return absl::OkStatus();
  const FileStoreConfig::Encryption& enc = config.encryption();
  std::string key;
  auth::WipeOnExit wipe_key(key);
  switch (enc.key_case()) {
    case FileStoreConfig::Encryption::kKeyFile: {
      std::string contents;
      auth::WipeOnExit wipe_contents(contents);
      HUBLINK_ASSIGN_OR_RETURN(
          contents, auth::ReadSecretFile("file_store", "encryption.key_file", enc.key_file()));
      if (contents.size() == kKeyBytes) {
        key.swap(contents);
      } else if (!DecodeHexKey(contents, &key)) {
        return absl::InvalidArgumentError(
            absl::StrCat("file_store: encryption.key_file ", enc.key_file(),
                         ": not a key: expected exactly 32 raw bytes or 64 hex digits"));
      }
      break;
    }
    case FileStoreConfig::Encryption::kKeyEnv: {
      const std::string& name = enc.key_env();
      if (name.empty()) {
        return absl::InvalidArgumentError(
            "file_store: encryption.key_env: names no environment variable");
      }
      const char* value = std::getenv(name.c_str());
      if (value == nullptr) {
        return absl::NotFoundError(absl::StrCat("file_store: encryption.key_env ", name,
                                                ": the environment variable is not set"));
      }
      if (!DecodeHexKey(value, &key)) {
        return absl::InvalidArgumentError(absl::StrCat("file_store: encryption.key_env ", name,
                                                       ": not a key: expected 64 hex digits"));
      }
      break;
    }
    case FileStoreConfig::Encryption::KEY_NOT_SET:
      return absl::InvalidArgumentError(
          "file_store: encryption: no key: set encryption.key_file or encryption.key_env");
  }
  if (!EVP_AEAD_CTX_init(&aead_, EVP_aead_aes_256_gcm(),
                         reinterpret_cast<const uint8_t*>(key.data()), key.size(),
                         EVP_AEAD_DEFAULT_TAG_LENGTH, nullptr)) {
    return absl::InternalError("file_store: EVP_AEAD_CTX_init failed");
  }
  encrypted_ = true;
  return absl::OkStatus();
}

absl::Status FileMessageStore::Lock() {
  const std::string lock_path = absl::StrCat(dir_, "/LOCK");
  lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("file_store: ", lock_path, ": cannot open"));
  }
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error != EWOULDBLOCK) {
      return absl::ErrnoToStatus(error, absl::StrCat("file_store: ", lock_path, ": flock"));
    }
    char buffer[32] = {0};
    const ssize_t n = pread(lock_fd_, buffer, sizeof(buffer) - 1, 0);
    std::string holder(buffer, n > 0 ? n : 0);
    int pid = 0;
    const bool known = absl::SimpleAtoi(absl::StripAsciiWhitespace(holder), &pid) && pid > 0;
    return absl::FailedPreconditionError(
        absl::StrCat("file_store: ", dir_, ": in use by ",
                     known ? absl::StrCat("process ", pid) : "another process", " (it holds ",
                     lock_path, "); one process per store directory"));
  }
  locked_ = true;
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(lock_fd_, 0) != 0 || pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
    return IoError(errno, "LOCK: cannot write the PID");
  }
  return absl::OkStatus();
}

FileMessageStore::~FileMessageStore() {
  if (active_fd_ >= 0) {
    if (dirty_ && sync_mode_ != FileStoreConfig::NONE) SyncActive().IgnoreError();
    close(active_fd_);
  }
  if (encrypted_) EVP_AEAD_CTX_cleanup(&aead_);
  OPENSSL_cleanse(&aead_, sizeof(aead_));
  if (lock_fd_ >= 0) {
    // The lock goes with the descriptor; the PID would only mislead. (Not when another store
    // holds the lock and this one failed to open.)
    if (locked_ && ftruncate(lock_fd_, 0) != 0) {
      // Nothing to do: the lock itself is released by close().
    }
    close(lock_fd_);
  }
}

std::string FileMessageStore::SegmentName(uint64_t number) const {
  return absl::StrFormat("%016x.seg", number);
}
std::string FileMessageStore::SegmentPath(uint64_t number) const {
  return absl::StrCat(dir_, "/", SegmentName(number));
}

absl::Status FileMessageStore::IoError(int error, const std::string& what) const {
  const std::string message = absl::StrCat("file_store: ", dir_, ": ", what);
  if (error == ENOSPC || error == EDQUOT || error == EFBIG) {
    return absl::ResourceExhaustedError(
        absl::StrCat(message, ": ", std::strerror(error), " (the disk or quota is full)"));
  }
  // The storage failed (Abseil leaves EIO kUnknown, which docs/errors.md has no row for): like a
  // peer that went away, worth a retry; the store redoes what was in doubt before the next write.
  if (error == EIO)
    return absl::UnavailableError(absl::StrCat(message, ": ", std::strerror(error)));
  absl::Status status = absl::ErrnoToStatus(error, message);
  if (status.code() == absl::StatusCode::kUnknown) {
    return absl::InternalError(status.message());
  }
  return status;
}

void FileMessageStore::Emit(FileStoreEvent event) const {
  if (sink_ != nullptr) sink_->OnFileStoreEvent(event);
}

std::string FileMessageStore::Header(uint64_t number, bool base) const {
  std::string h(kMagic, sizeof(kMagic));
  h.push_back(static_cast<char>(kVersion));
  h.push_back(static_cast<char>((encrypted_ ? kFlagEncrypted : 0) | (base ? kFlagBase : 0)));
  PutU16(h, 0);
  PutU64(h, number);
  uint8_t check[kNonceBytes + kTagBytes] = {0};
  if (encrypted_) {
    RAND_bytes(check, kNonceBytes);
    const std::string ad = KeyCheckAd(number);
    size_t out_len = 0;
    EVP_AEAD_CTX_seal(&aead_, check + kNonceBytes, &out_len, kTagBytes, check, kNonceBytes, nullptr,
                      0, reinterpret_cast<const uint8_t*>(ad.data()), ad.size());
  }
  h.append(reinterpret_cast<const char*>(check), sizeof(check));
  PutU32(h, crc32c::Value(h));
  return h;
}

std::string FileMessageStore::Frame(RecordType type, const std::string& body, uint64_t segment,
                                    uint64_t offset) const {
  std::string out;
  const uint8_t t = static_cast<uint8_t>(type);
  if (!encrypted_) {
    out.reserve(kFrameBytes + body.size());
    PutU32(out, static_cast<uint32_t>(body.size()));
    out.push_back(static_cast<char>(t));
    out.append(body);
  } else {
    const size_t sealed = kNonceBytes + body.size() + kTagBytes;
    out.resize(5 + sealed);
    char* p = &out[0];
    for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((sealed >> (8 * i)) & 0xff);
    p[4] = static_cast<char>(t);
    uint8_t* nonce = reinterpret_cast<uint8_t*>(p + 5);
    RAND_bytes(nonce, kNonceBytes);
    const std::string ad = Ad(segment, offset, t);
    size_t out_len = 0;
    EVP_AEAD_CTX_seal(&aead_, nonce + kNonceBytes, &out_len, body.size() + kTagBytes, nonce,
                      kNonceBytes, reinterpret_cast<const uint8_t*>(body.data()), body.size(),
                      reinterpret_cast<const uint8_t*>(ad.data()), ad.size());
  }
  PutU32(out, crc32c::Value(out));
  return out;
}

absl::Status FileMessageStore::WriteAll(int fd, const std::string& data, uint64_t offset,
                                        const std::string& name) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = options_.pwrite(fd, data.data() + done, data.size() - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError(errno, absl::StrCat(name, ": write"));
    if (n == 0) return IoError(EIO, absl::StrCat(name, ": write (no progress)"));
    done += n;
  }
  return absl::OkStatus();
}

absl::Status FileMessageStore::SyncDir() {
  Fd dir;
  dir.fd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir.fd < 0 || fsync(dir.fd) != 0) return IoError(errno, "fsync of the directory");
  return absl::OkStatus();
}

absl::Status FileMessageStore::SyncActive() {
  ++sync_count_;
  if (options_.fdatasync(active_fd_) != 0) {
    absl::Status status = IoError(errno, absl::StrCat(SegmentName(active_), ": fdatasync"));
    needs_repair_ = true;
    FileStoreEvent event;
    event.kind = FileStoreEvent::Kind::kSyncFailed;
    event.message = std::string(status.message());
    event.status = status;
    event.segment = SegmentName(active_);
    Emit(event);
    return status;
  }
  dirty_ = false;
  last_sync_ = options_.now();
  return absl::OkStatus();
}

void FileMessageStore::Track(uint64_t segment, uint64_t size, bool encrypted) {
  Segment& s = segments_[segment];
  s.bytes = size;
  s.live_refs = 0;
  s.encrypted = encrypted;
  file_bytes_ += size;
}

absl::Status FileMessageStore::CreateSegment(uint64_t number, bool base, bool force_sync,
                                             const std::string& records) {
  const bool sync = force_sync || sync_mode_ != FileStoreConfig::NONE;
  const std::string path = SegmentPath(number);
  const std::string tmp = path + ".tmp";
  const std::string name = SegmentName(number);
  absl::Status status;
  {
    Fd fd;
    fd.fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd.fd < 0) return IoError(errno, absl::StrCat(name, ".tmp: create"));
    status = WriteAll(fd.fd, Header(number, base) + records, 0, name + ".tmp");
    if (status.ok() && sync) {
      ++sync_count_;
      if (options_.fdatasync(fd.fd) != 0) {
        status = IoError(errno, absl::StrCat(name, ".tmp: fdatasync"));
      }
    }
  }
  if (status.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    status = IoError(errno, absl::StrCat(name, ": rename"));
  }
  if (!status.ok()) {
    unlink(tmp.c_str());
    return status;
  }
  if (sync) HUBLINK_RETURN_IF_ERROR(SyncDir());
  return absl::OkStatus();
}

absl::Status FileMessageStore::OpenActive(uint64_t number) {
  const int fd = open(SegmentPath(number).c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return IoError(errno, absl::StrCat(SegmentName(number), ": open"));
  if (active_fd_ >= 0) close(active_fd_);
  active_fd_ = fd;
  active_ = number;
  return absl::OkStatus();
}

absl::Status FileMessageStore::Roll() {
  if (active_fd_ >= 0 && dirty_ && sync_mode_ != FileStoreConfig::NONE) {
    HUBLINK_RETURN_IF_ERROR(SyncActive());
  }
  const uint64_t number = segments_.empty() ? 1 : segments_.rbegin()->first + 1;
  HUBLINK_RETURN_IF_ERROR(
      CreateSegment(number, /*base=*/segments_.empty(), /*force_sync=*/false, ""));
  Track(number, kHeaderBytes, encrypted_);
  absl::Status status = OpenActive(number);
  dirty_ = false;
  return status;
}

absl::Status FileMessageStore::Append(RecordType type, const std::string& body, bool sync_now,
                                      uint64_t* record_bytes) {
  if (active_fd_ < 0 || segments_[active_].bytes >= options_.segment_bytes) {
    absl::Status status = Roll();
    if (!status.ok()) {
      FileStoreEvent event;
      event.kind = FileStoreEvent::Kind::kWriteFailed;
      event.message = std::string(status.message());
      event.status = status;
      Emit(event);
      return status;
    }
  }
  Segment& seg = segments_[active_];
  const uint64_t offset = seg.bytes;
  const std::string record = Frame(type, body, active_, offset);
  absl::Status status = WriteAll(active_fd_, record, offset, SegmentName(active_));
  if (!status.ok()) {
    if (ftruncate(active_fd_, offset) != 0) needs_repair_ = true;
    FileStoreEvent event;
    event.kind = FileStoreEvent::Kind::kWriteFailed;
    event.message = std::string(status.message());
    event.status = status;
    event.segment = SegmentName(active_);
    event.offset = offset;
    Emit(event);
    return status;
  }
  seg.bytes += record.size();
  file_bytes_ += record.size();
  dirty_ = true;
  const bool sync =
      (sync_mode_ == FileStoreConfig::ALWAYS && sync_now) ||
      (sync_mode_ == FileStoreConfig::BATCH && options_.now() - last_sync_ >= batch_interval_);
  if (sync) {
    status = SyncActive();
    if (!status.ok()) {
      // Not accepted: take the record back (the earlier unsynced ones are redone by Repair()).
      if (ftruncate(active_fd_, offset) == 0) {
        seg.bytes = offset;
        file_bytes_ -= record.size();
      }
      return status;
    }
  }
  *record_bytes = record.size();
  return absl::OkStatus();
}

absl::Status FileMessageStore::Repair() {
  if (!needs_repair_) return absl::OkStatus();
  return Compact();
}

absl::Status FileMessageStore::Compact() {
  const uint64_t number = segments_.empty() ? 1 : segments_.rbegin()->first + 1;
  std::string records;
  std::vector<uint64_t> sizes;
  sizes.reserve(messages_.size());
  for (const auto& entry : messages_) {
    const std::string record = Frame(RecordType::kAdd, EncodeAdd(entry.second.message), number,
                                     kHeaderBytes + records.size());
    sizes.push_back(record.size());
    records.append(record);
  }
  // Always synced, whatever the mode: the old segments are deleted next.
  absl::Status status = CreateSegment(number, /*base=*/true, /*force_sync=*/true, records);
  if (status.ok()) {
    status = OpenActive(number);
    // Appends would go on in an older segment, which replay puts before this base: undo it.
    if (!status.ok()) unlink(SegmentPath(number).c_str());
  }
  if (!status.ok()) {
    compact_retry_at_ = file_bytes_ + options_.segment_bytes;
    FileStoreEvent event;
    event.kind = FileStoreEvent::Kind::kWriteFailed;
    event.message = absl::StrCat(status.message(), " (compaction)");
    event.status = status;
    event.segment = SegmentName(number);
    Emit(event);
    return status;
  }
  // The new base segment holds everything: the old ones can go.
  for (const auto& s : segments_) unlink(SegmentPath(s.first).c_str());
  SyncDir().IgnoreError();
  segments_.clear();
  file_bytes_ = 0;
  Track(number, kHeaderBytes + records.size(), encrypted_);
  live_record_bytes_ = 0;
  size_t i = 0;
  for (auto& entry : messages_) {
    Entry& e = entry.second;
    e.add_segment = number;
    e.add_bytes = sizes[i++];
    e.phase_segment = 0;
    e.phase_bytes = 0;
    live_record_bytes_ += e.add_bytes;
  }
  segments_[number].live_refs = messages_.size();
  dirty_ = false;
  last_sync_ = options_.now();
  needs_repair_ = false;
  compact_retry_at_ = 0;
  FileStoreEvent event;
  event.kind = FileStoreEvent::Kind::kCompacted;
  event.segment = SegmentName(number);
  event.records = messages_.size();
  event.bytes = file_bytes_;
  event.message = absl::StrCat("file_store: ", dir_, ": compacted ", messages_.size(),
                               " messages into ", event.segment, " (", file_bytes_, " bytes)");
  Emit(event);
  return absl::OkStatus();
}

void FileMessageStore::MaybeDeleteDeadSegments() {
  bool deleted = false;
  while (segments_.size() > 1 && segments_.begin()->first != active_ &&
         segments_.begin()->second.live_refs == 0) {
    unlink(SegmentPath(segments_.begin()->first).c_str());
    file_bytes_ -= segments_.begin()->second.bytes;
    segments_.erase(segments_.begin());
    deleted = true;
  }
  // So a deleted segment cannot come back after a crash without the ones after it.
  if (deleted && sync_mode_ != FileStoreConfig::NONE) SyncDir().IgnoreError();
}

void FileMessageStore::MaybeCompact() {
  if (file_bytes_ > options_.compact_min_bytes && file_bytes_ > 2 * live_record_bytes_ &&
      file_bytes_ >= compact_retry_at_) {
    Compact().IgnoreError();  // reported as an event; retried after another segment's worth
  }
}

void FileMessageStore::ApplyAdd(StoredMessage message, uint64_t segment, uint64_t record_bytes) {
  const uint64_t seq = message.seq;
  ApplyRemove(seq);
  Entry& e = messages_[seq];
  message_bytes_ += message.bytes();
  e.message = std::move(message);
  e.add_segment = segment;
  e.add_bytes = record_bytes;
  segments_[segment].live_refs++;
  live_record_bytes_ += record_bytes;
}

void FileMessageStore::ApplySetPhase(uint64_t seq, StoredMessage::Phase phase, uint16_t packet_id,
                                     uint64_t segment, uint64_t record_bytes) {
  auto it = messages_.find(seq);
  if (it == messages_.end()) return;
  Entry& e = it->second;
  if (e.phase_segment != 0) Unref(e.phase_segment, e.phase_bytes);
  e.message.phase = phase;
  e.message.packet_id = packet_id;
  e.phase_segment = segment;
  e.phase_bytes = record_bytes;
  segments_[segment].live_refs++;
  live_record_bytes_ += record_bytes;
}

void FileMessageStore::ApplyRemove(uint64_t seq) {
  auto it = messages_.find(seq);
  if (it == messages_.end()) return;
  Entry& e = it->second;
  Unref(e.add_segment, e.add_bytes);
  if (e.phase_segment != 0) Unref(e.phase_segment, e.phase_bytes);
  message_bytes_ -= e.message.bytes();
  messages_.erase(it);
}

void FileMessageStore::Unref(uint64_t segment, uint64_t record_bytes) {
  auto it = segments_.find(segment);
  if (it != segments_.end() && it->second.live_refs > 0) it->second.live_refs--;
  live_record_bytes_ -= std::min(live_record_bytes_, record_bytes);
}

absl::Status FileMessageStore::Recover() {
  std::vector<uint64_t> numbers;
  {
    DIR* d = opendir(dir_.c_str());
    if (d == nullptr) {
      return absl::ErrnoToStatus(errno, absl::StrCat("file_store: ", dir_, ": cannot list"));
    }
    while (struct dirent* ent = readdir(d)) {
      const std::string name = ent->d_name;
      uint64_t number;
      if (ParseSegmentName(name, &number)) {
        numbers.push_back(number);
      } else if (name.size() > 8 && name.compare(name.size() - 8, 8, ".seg.tmp") == 0) {
        unlink(absl::StrCat(dir_, "/", name).c_str());  // an unfinished roll or compaction
      }
    }
    closedir(d);
  }
  std::sort(numbers.begin(), numbers.end());

  // Start at the newest base segment: everything before it is in it.
  size_t start = 0;
  for (size_t i = numbers.size(); i-- > 0;) {
    Fd fd;
    fd.fd = open(SegmentPath(numbers[i]).c_str(), O_RDONLY | O_CLOEXEC);
    char h[kHeaderBytes];
    if (fd.fd >= 0 && pread(fd.fd, h, kHeaderBytes, 0) == static_cast<ssize_t>(kHeaderBytes) &&
        std::memcmp(h, kMagic, 4) == 0 && GetLE(h + 44, 4) == crc32c::Extend(0, h, 44) &&
        (static_cast<uint8_t>(h[5]) & kFlagBase) != 0) {
      start = i;
      break;
    }
  }
  for (size_t i = 0; i < start; ++i) unlink(SegmentPath(numbers[i]).c_str());
  if (start > 0 && sync_mode_ != FileStoreConfig::NONE) HUBLINK_RETURN_IF_ERROR(SyncDir());

  for (size_t i = start; i < numbers.size(); ++i) {
    HUBLINK_RETURN_IF_ERROR(ReplaySegment(numbers[i]));
  }

  if (segments_.empty()) {
    HUBLINK_RETURN_IF_ERROR(Roll());  // a new store: its first segment is a base
  } else {
    const auto& last = *segments_.rbegin();
    if (last.second.encrypted != encrypted_ || last.second.bytes >= options_.segment_bytes) {
      HUBLINK_RETURN_IF_ERROR(Roll());
    } else {
      HUBLINK_RETURN_IF_ERROR(OpenActive(last.first));
    }
  }
  last_sync_ = options_.now();
  MaybeDeleteDeadSegments();
  MaybeCompact();
  return absl::OkStatus();
}

absl::Status FileMessageStore::ReplaySegment(uint64_t number) {
  const std::string name = SegmentName(number);
  const std::string path = SegmentPath(number);
  Fd fd;
  fd.fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd.fd < 0) return IoError(errno, absl::StrCat(name, ": open"));
  struct stat st;
  if (fstat(fd.fd, &st) != 0) return IoError(errno, absl::StrCat(name, ": stat"));
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = pread(fd.fd, &data[got], data.size() - got, got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError(errno, absl::StrCat(name, ": read"));
    if (n == 0) break;
    got += n;
  }
  data.resize(got);

  const char* h = data.data();
  if (data.size() < kHeaderBytes || std::memcmp(h, kMagic, 4) != 0 ||
      GetLE(h + 44, 4) != crc32c::Extend(0, h, 44) || static_cast<uint8_t>(h[4]) != kVersion ||
      GetLE(h + 8, 8) != number) {
    // A segment whose creation was cut short (or not one of ours at all): nothing in it is
    // readable.
    FileStoreEvent event;
    event.kind = FileStoreEvent::Kind::kSegmentDropped;
    event.segment = name;
    event.bytes = data.size();
    event.message = absl::StrCat("file_store: ", path, ": no valid segment header; deleted (",
                                 data.size(), " bytes)");
    Emit(event);
    unlink(path.c_str());
    return absl::OkStatus();
  }
  const uint8_t flags = static_cast<uint8_t>(h[5]);
  const bool seg_encrypted = (flags & kFlagEncrypted) != 0;
  if (seg_encrypted) {
    if (!encrypted_) {
      return absl::InvalidArgumentError(
          absl::StrCat("file_store: ", path,
                       ": the store is encrypted; set encryption.key_file or encryption.key_env "
                       "to its key"));
    }
    const std::string ad = KeyCheckAd(number);
    uint8_t out[1];
    size_t out_len = 0;
    if (!EVP_AEAD_CTX_open(&aead_, out, &out_len, sizeof(out),
                           reinterpret_cast<const uint8_t*>(h + 16), kNonceBytes,
                           reinterpret_cast<const uint8_t*>(h + 16 + kNonceBytes), kTagBytes,
                           reinterpret_cast<const uint8_t*>(ad.data()), ad.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("file_store: ", path,
                       ": the encryption key does not open this store (wrong key: the store was "
                       "written with another one)"));
    }
  }
  if ((flags & kFlagBase) != 0) {
    // Only the first segment replayed can be a base (Recover starts there); be safe anyway.
    messages_.clear();
    message_bytes_ = 0;
    live_record_bytes_ = 0;
    for (auto& s : segments_) s.second.live_refs = 0;
  }
  Track(number, data.size(), seg_encrypted);

  uint64_t offset = kHeaderBytes;
  uint64_t kept = 0;
  const char* reason = nullptr;
  std::string plain;
  while (offset < data.size()) {
    const uint64_t left = data.size() - offset;
    if (left < kFrameBytes) {
      reason = "cut short";
      break;
    }
    const char* p = data.data() + offset;
    const uint64_t length = GetLE(p, 4);
    if (length > kMaxBodyBytes) {
      reason = "bad length";
      break;
    }
    if (length + kFrameBytes > left) {
      reason = "cut short";
      break;
    }
    if (GetLE(p + 5 + length, 4) != crc32c::Extend(0, p, 5 + length)) {
      reason = "CRC mismatch";
      break;
    }
    const uint8_t type = static_cast<uint8_t>(p[4]);
    absl::string_view body(p + 5, length);
    if (seg_encrypted) {
      if (length < kNonceBytes + kTagBytes) {
        reason = "too short to be encrypted";
        break;
      }
      const std::string ad = Ad(number, offset, type);
      plain.resize(length - kNonceBytes - kTagBytes);
      size_t out_len = 0;
      if (!EVP_AEAD_CTX_open(&aead_, reinterpret_cast<uint8_t*>(&plain[0]), &out_len, plain.size(),
                             reinterpret_cast<const uint8_t*>(body.data()), kNonceBytes,
                             reinterpret_cast<const uint8_t*>(body.data() + kNonceBytes),
                             length - kNonceBytes, reinterpret_cast<const uint8_t*>(ad.data()),
                             ad.size())) {
        reason = "GCM tag mismatch";
        break;
      }
      plain.resize(out_len);
      body = plain;
    }
    const uint64_t record_bytes = length + kFrameBytes;
    bool ok = true;
    switch (static_cast<RecordType>(type)) {
      case RecordType::kAdd: {
        StoredMessage m;
        ok = DecodeAdd(body, &m);
        if (ok) ApplyAdd(std::move(m), number, record_bytes);
        break;
      }
      case RecordType::kSetPhase:
        ok = body.size() == 11 && static_cast<uint8_t>(body[8]) <= 2;
        if (ok) {
          ApplySetPhase(GetLE(body.data(), 8),
                        static_cast<StoredMessage::Phase>(static_cast<uint8_t>(body[8])),
                        static_cast<uint16_t>(GetLE(body.data() + 9, 2)), number, record_bytes);
        }
        break;
      case RecordType::kRemove:
        ok = body.size() == 8;
        if (ok) ApplyRemove(GetLE(body.data(), 8));
        break;
      default:
        ok = false;
    }
    if (!ok) {
      reason = "malformed record";
      break;
    }
    offset += record_bytes;
    ++kept;
  }
  if (!plain.empty()) OPENSSL_cleanse(&plain[0], plain.size());
  if (reason != nullptr) {
    const uint64_t dropped = data.size() - offset;
    FileStoreEvent event;
    event.kind = FileStoreEvent::Kind::kRecordsDropped;
    event.segment = name;
    event.offset = offset;
    event.bytes = dropped;
    event.records = kept;
    event.message = absl::StrCat("file_store: ", path, ": dropped ", dropped, " bytes from offset ",
                                 offset, " (", reason,
                                 "; the end of a write "
                                 "cut short, or damage); kept the ",
                                 kept, " records before it");
    Emit(event);
    if (ftruncate(fd.fd, offset) != 0) {
      return IoError(errno, absl::StrCat(name, ": truncate after a damaged record"));
    }
    if (sync_mode_ != FileStoreConfig::NONE) {
      ++sync_count_;
      if (options_.fdatasync(fd.fd) != 0) {
        return IoError(errno, absl::StrCat(name, ": fdatasync after truncating"));
      }
    }
    file_bytes_ -= dropped;
    segments_[number].bytes = offset;
  }
  return absl::OkStatus();
}

absl::Status FileMessageStore::MakeRoom(const StoredMessage& message) {
  const uint64_t bytes = message.bytes();
  auto full = [&](absl::string_view why) {
    absl::Status status = absl::ResourceExhaustedError(absl::StrCat(
        "file_store: ", dir_, ": store full (", messages_.size(), " messages, ", message_bytes_,
        " bytes; limits max_messages ", max_messages_, ", max_bytes ", max_bytes_, ")", why,
        "; message ", message.seq, " to \"", message.topic, "\" (", bytes, " bytes) rejected"));
    if (!full_reported_) {
      full_reported_ = true;
      FileStoreEvent event;
      event.kind = FileStoreEvent::Kind::kStoreFull;
      event.message = std::string(status.message());
      event.seq = message.seq;
      event.bytes = bytes;
      Emit(event);
    }
    return status;
  };
  if (bytes > max_bytes_) return full(": the message alone exceeds max_bytes");
  while (messages_.size() + 1 > max_messages_ || message_bytes_ + bytes > max_bytes_) {
    if (overflow_ != FileStoreConfig::DROP_OLDEST) return full("");
    auto victim = std::find_if(messages_.begin(), messages_.end(), [](const auto& entry) {
      return entry.second.message.phase == StoredMessage::Phase::kQueued;
    });
    if (victim == messages_.end()) return full(": only in-flight messages, none to drop");
    const uint64_t seq = victim->first;
    std::string body;
    PutU64(body, seq);
    uint64_t record_bytes = 0;
    HUBLINK_RETURN_IF_ERROR(Append(RecordType::kRemove, body, false, &record_bytes));
    FileStoreEvent event;
    event.kind = FileStoreEvent::Kind::kMessageDropped;
    event.seq = seq;
    event.bytes = victim->second.message.bytes();
    event.message = absl::StrCat("file_store: ", dir_, ": store full; dropped message ", seq,
                                 " to \"", victim->second.message.topic,
                                 "\" (the oldest queued) to make room for message ", message.seq);
    ApplyRemove(seq);
    Emit(event);
  }
  return absl::OkStatus();
}

absl::Status FileMessageStore::Add(StoredMessage message) {
  if (messages_.count(message.seq) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("file_store: Add: message ", message.seq, " is already stored"));
  }
  if (message.qos > 2 || static_cast<uint8_t>(message.phase) > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("file_store: Add: message ", message.seq, ": bad qos or phase"));
  }
  if (kAddFixedBytes + message.bytes() + kNonceBytes + kTagBytes > kMaxBodyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("file_store: Add: message ", message.seq, ": larger than 256 MiB"));
  }
  HUBLINK_RETURN_IF_ERROR(Repair());
  HUBLINK_RETURN_IF_ERROR(MakeRoom(message));
  uint64_t record_bytes = 0;
  HUBLINK_RETURN_IF_ERROR(Append(RecordType::kAdd, EncodeAdd(message), true, &record_bytes));
  ApplyAdd(std::move(message), active_, record_bytes);
  full_reported_ = false;
  MaybeDeleteDeadSegments();
  MaybeCompact();
  return absl::OkStatus();
}

const StoredMessage* FileMessageStore::Find(uint64_t seq) const {
  auto it = messages_.find(seq);
  return it == messages_.end() ? nullptr : &it->second.message;
}

absl::Status FileMessageStore::SetPhase(uint64_t seq, StoredMessage::Phase phase,
                                        uint16_t packet_id) {
  if (messages_.find(seq) == messages_.end()) {
    return absl::NotFoundError(absl::StrCat("file_store: SetPhase: no message ", seq));
  }
  if (static_cast<uint8_t>(phase) > 2) {
    return absl::InvalidArgumentError("file_store: SetPhase: bad phase");
  }
  HUBLINK_RETURN_IF_ERROR(Repair());
  std::string body;
  PutU64(body, seq);
  body.push_back(static_cast<char>(phase));
  PutU16(body, packet_id);
  uint64_t record_bytes = 0;
  HUBLINK_RETURN_IF_ERROR(Append(RecordType::kSetPhase, body, true, &record_bytes));
  ApplySetPhase(seq, phase, packet_id, active_, record_bytes);
  MaybeDeleteDeadSegments();
  MaybeCompact();
  return absl::OkStatus();
}

void FileMessageStore::Remove(uint64_t seq) {
  if (messages_.find(seq) == messages_.end()) return;
  if (Repair().ok()) {
    std::string body;
    PutU64(body, seq);
    uint64_t record_bytes = 0;
    if (!Append(RecordType::kRemove, body, false, &record_bytes).ok()) needs_repair_ = true;
  }
  ApplyRemove(seq);
  MaybeDeleteDeadSegments();
  MaybeCompact();
}

void FileMessageStore::Clear() {
  messages_.clear();
  message_bytes_ = 0;
  live_record_bytes_ = 0;
  if (!Compact().ok()) needs_repair_ = true;
}

std::vector<uint64_t> FileMessageStore::Sequences() const {
  std::vector<uint64_t> out;
  out.reserve(messages_.size());
  for (const auto& entry : messages_) out.push_back(entry.first);
  return out;
}

std::vector<uint64_t> FileMessageStore::segments() const {
  std::vector<uint64_t> out;
  for (const auto& s : segments_) out.push_back(s.first);
  return out;
}

absl::Status FileMessageStore::Flush() {
  if (sync_mode_ == FileStoreConfig::NONE || !dirty_) return absl::OkStatus();
  HUBLINK_RETURN_IF_ERROR(Repair());
  if (!dirty_) return absl::OkStatus();
  return SyncActive();
}

absl::Time FileMessageStore::NextFlush() const {
  if (sync_mode_ != FileStoreConfig::BATCH || !dirty_) return absl::InfiniteFuture();
  return last_sync_ + batch_interval_;
}

}  // namespace mqtt
}  // namespace hublink
