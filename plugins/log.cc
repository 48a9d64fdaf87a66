#include "plugins/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/base/const_init.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace hublink {
namespace {

ABSL_CONST_INIT absl::Mutex sink_mutex(absl::kConstInit);
LogSink* sink ABSL_GUARDED_BY(sink_mutex) = nullptr;

LogLevel InitialLevel() {
  const char* env = std::getenv("HUBLINK_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  std::string level = absl::AsciiStrToLower(env);
  if (level == "debug") return LogLevel::kDebug;
  if (level == "warning") return LogLevel::kWarning;
  if (level == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int>& MinLevelStorage() {
  static std::atomic<int> level{static_cast<int>(InitialLevel())};
  return level;
}

const char* LevelTag(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DBG";
    case LogLevel::kInfo:
      return "INF";
    case LogLevel::kWarning:
      return "WRN";
    case LogLevel::kError:
      return "ERR";
  }
  return "???";
}

}  // namespace

std::string FormatLogRecord(const LogRecord& record) {
  return absl::StrCat(LevelTag(record.level), "|",
                      absl::FormatTime("%Y-%m-%d %H:%M:%E3S", record.time, absl::LocalTimeZone()),
                      "|", record.file, ":", record.line, "| ", record.message);
}

LogSink SetLogSink(LogSink new_sink) {
  absl::MutexLock lock(&sink_mutex);
  LogSink previous = sink != nullptr ? *sink : LogSink();
  delete sink;
  sink = new_sink ? new LogSink(std::move(new_sink)) : nullptr;
  return previous;
}

void SetMinLogLevel(LogLevel level) { MinLevelStorage().store(static_cast<int>(level)); }

LogLevel MinLogLevel() {
  return static_cast<LogLevel>(MinLevelStorage().load(std::memory_order_relaxed));
}

namespace log_internal {

LogMessage::LogMessage(LogLevel level, const char* file, int line)
    : level_(level), file_(file), line_(line) {
  const char* slash = std::strrchr(file, '/');
  if (slash != nullptr) file_ = slash + 1;
}

LogMessage::~LogMessage() {
  std::string message = stream_.str();
  LogRecord record{level_, absl::Now(), file_, line_, message};
  absl::MutexLock lock(&sink_mutex);
  if (sink != nullptr) {
    (*sink)(record);
    return;
  }
  std::string line = FormatLogRecord(record);
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace log_internal
}  // namespace hublink
