#include "plugins/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace hublink {
namespace {

// std::mutex, as everywhere in hublink (plugins/event_loop.h says why); constexpr-constructed, so
// it is usable from static initializers.
std::mutex sink_mutex;
LogSink* sink = nullptr;  // guarded by sink_mutex

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

std::string ReadableDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) return absl::StrCat("-", ReadableDuration(-d));
  if (d == absl::InfiniteDuration()) return "forever";
  char buffer[32];
  double ms = absl::ToDoubleMilliseconds(d);
  if (ms < 1) {
    std::snprintf(buffer, sizeof(buffer), "%.2g ms", ms);
  } else if (ms < 9.95) {
    std::snprintf(buffer, sizeof(buffer), "%.1f ms", ms);
  } else if (ms < 999.5) {
    std::snprintf(buffer, sizeof(buffer), "%.0f ms", ms);
  } else if (ms < 9995) {
    std::snprintf(buffer, sizeof(buffer), "%.2f s", ms / 1000);
  } else if (ms < 59950) {
    std::snprintf(buffer, sizeof(buffer), "%.1f s", ms / 1000);
  } else {
    int64_t seconds = absl::ToInt64Seconds(d + absl::Milliseconds(500));
    if (seconds < 3600) {
      std::snprintf(buffer, sizeof(buffer), "%d min %d s", static_cast<int>(seconds / 60),
                    static_cast<int>(seconds % 60));
    } else {
      int64_t minutes = (seconds + 30) / 60;
      std::snprintf(buffer, sizeof(buffer), "%lld h %d min", static_cast<long long>(minutes / 60),
                    static_cast<int>(minutes % 60));
    }
  }
  return buffer;
}

std::string FormatLogRecord(const LogRecord& record) {
  return absl::StrCat(LevelTag(record.level), "|",
                      absl::FormatTime("%Y-%m-%d %H:%M:%E3S", record.time, absl::LocalTimeZone()),
                      "|", record.file, ":", record.line, "| ", record.message);
}

LogSink SetLogSink(LogSink new_sink) {
  std::lock_guard<std::mutex> lock(sink_mutex);
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
  std::lock_guard<std::mutex> lock(sink_mutex);
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
