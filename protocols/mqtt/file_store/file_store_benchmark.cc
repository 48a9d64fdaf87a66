// Add+Remove throughput of FileMessageStore in each sync mode against MemoryMessageStore, with a
// window of in-flight messages as a session keeps them (Add message i, Remove message i - window).
//
//   bazel run -c opt //protocols/mqtt/file_store:file_store_benchmark -- --dir=/var/tmp/x
//
// The directory (default: a new one under $TMPDIR or /tmp) should be on the disk the device
// would use: fdatasync cost is the whole story for ALWAYS.
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "protocols/mqtt/file_store/file_store.h"
#include "protocols/mqtt/file_store/file_store.pb.h"
#include "protocols/mqtt/message_store.h"

namespace {

using hublink::mqtt::FileMessageStore;
using hublink::mqtt::FileStoreConfig;
using hublink::mqtt::MemoryMessageStore;
using hublink::mqtt::MessageStore;
using hublink::mqtt::StoredMessage;

constexpr int kWindow = 64;

double Run(MessageStore& store, int count, size_t payload_bytes) {
  const std::string payload(payload_bytes, 'p');
  const absl::Time start = absl::Now();
  for (int i = 1; i <= count; ++i) {
    StoredMessage m;
    m.seq = i;
    m.qos = 1;
    m.topic = "bench/device/data";
    m.payload = payload;
    absl::Status status = store.Add(std::move(m));
    if (!status.ok()) {
      std::fprintf(stderr, "Add: %s\n", std::string(status.message()).c_str());
      std::exit(1);
    }
    if (i > kWindow) store.Remove(i - kWindow);
  }
  for (int i = count - kWindow + 1; i <= count; ++i) store.Remove(i);
  return count / absl::ToDoubleSeconds(absl::Now() - start);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  bool own_dir = false;
  int count = 20000;
  int always_count = 2000;
  size_t payload = 100;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--dir=", 0) == 0) {
      dir = arg.substr(6);
    } else if (arg.rfind("--count=", 0) == 0) {
      if (!absl::SimpleAtoi(arg.substr(8), &count)) return 2;
      always_count = count / 10;
    } else if (arg.rfind("--payload=", 0) == 0) {
      if (!absl::SimpleAtoi(arg.substr(10), &payload)) return 2;
    } else {
      std::fprintf(stderr, "usage: %s [--dir=DIR] [--count=N] [--payload=BYTES]\n", argv[0]);
      return 2;
    }
  }
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/file_store_bench.XXXXXX");
    if (mkdtemp(&templ[0]) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = templ;
    own_dir = true;
  }
  std::printf("dir %s, payload %zu bytes, window %d\n", dir.c_str(), payload, kWindow);
  {
    MemoryMessageStore memory;
    std::printf("%-28s %12.0f msgs/s  (%d messages)\n", "MemoryMessageStore",
                Run(memory, count, payload), count);
  }
  struct Mode {
    const char* name;
    FileStoreConfig::Sync sync;
    bool encrypted;
    int count;
  };
  setenv("HUBLINK_FILE_STORE_BENCH_KEY",
         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 1);
  const Mode modes[] = {
      {"FileMessageStore NONE", FileStoreConfig::NONE, false, count},
      {"FileMessageStore BATCH 50ms", FileStoreConfig::BATCH, false, count},
      {"FileMessageStore ALWAYS", FileStoreConfig::ALWAYS, false, always_count},
      {"FileMessageStore NONE+AES", FileStoreConfig::NONE, true, count},
      {"FileMessageStore ALWAYS+AES", FileStoreConfig::ALWAYS, true, always_count},
  };
  int n = 0;
  for (const Mode& mode : modes) {
    FileStoreConfig config;
    config.set_path(absl::StrCat(dir, "/", ++n));
    config.set_sync(mode.sync);
    if (mode.encrypted) config.mutable_encryption()->set_key_env("HUBLINK_FILE_STORE_BENCH_KEY");
    auto store = FileMessageStore::Open(config);
    if (!store.ok()) {
      std::fprintf(stderr, "Open: %s\n", std::string(store.status().message()).c_str());
      return 1;
    }
    const double rate = Run(**store, mode.count, payload);
    std::printf("%-28s %12.0f msgs/s  (%d messages, %llu fdatasyncs)\n", mode.name, rate,
                mode.count, static_cast<unsigned long long>((*store)->sync_count()));
  }
  std::error_code ignored;
  if (own_dir) std::filesystem::remove_all(dir, ignored);
  return 0;
}
