// Minimal leveled logging (Debian's Abseil has no absl/log yet).
//
// Lines look like the Tencent C SDK's, so its users read them at a glance:
//   INF|2026-11-25 23:01:02.345|tcp_transport.cc:88| tcp: connected 127.0.0.1:1883
// Output goes to stderr unless a sink is installed (tests install one to inspect what was logged,
// e.g. to prove no secret is ever written). Never pass secrets to a log line.
#ifndef HUBLINK_PLUGINS_LOG_H_
#define HUBLINK_PLUGINS_LOG_H_

#include <functional>
#include <sstream>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace hublink {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

struct LogRecord {
  LogLevel level;
  absl::Time time;
  absl::string_view file;  // base name
  int line;
  absl::string_view message;
};

// A duration the way people read it in a log line: "0.05 ms", "1.3 ms", "120 ms", "1.05 s",
// "12.3 s", "2 min 5 s", "3 h 20 min" (absl::FormatDuration prints "1.0455222075s").
std::string ReadableDuration(absl::Duration d);

// Formats a record the way the default stderr sink prints it (no trailing newline).
std::string FormatLogRecord(const LogRecord& record);

// Replaces the process-wide sink; an empty function restores stderr. Returns the previous sink.
using LogSink = std::function<void(const LogRecord&)>;
LogSink SetLogSink(LogSink sink);

// Records below `level` are dropped before formatting. Default kInfo; HUBLINK_LOG_LEVEL=debug
// lowers it.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

namespace log_internal {

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  const char* file_;
  int line_;
  std::ostringstream stream_;
};

// Swallows the stream expression of a dropped log line.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace log_internal
}  // namespace hublink

#define HUBLINK_LOG_LEVEL_DEBUG ::hublink::LogLevel::kDebug
#define HUBLINK_LOG_LEVEL_INFO ::hublink::LogLevel::kInfo
#define HUBLINK_LOG_LEVEL_WARNING ::hublink::LogLevel::kWarning
#define HUBLINK_LOG_LEVEL_ERROR ::hublink::LogLevel::kError

// HLOG(INFO) << "tcp: connected " << endpoint;
#define HLOG(severity)                                                                            \
  (HUBLINK_LOG_LEVEL_##severity < ::hublink::MinLogLevel())                                       \
      ? (void)0                                                                                   \
      : ::hublink::log_internal::Voidify() &                                                      \
            ::hublink::log_internal::LogMessage(HUBLINK_LOG_LEVEL_##severity, __FILE__, __LINE__) \
                .stream()

#endif  // HUBLINK_PLUGINS_LOG_H_
