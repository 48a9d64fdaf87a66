#include "plugins/log.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hublink {
namespace {

TEST(LogTest, SinkReceivesFormattedRecordsAtOrAboveTheMinimumLevel) {
  std::vector<std::string> lines;
  LogSink previous =
      SetLogSink([&](const LogRecord& record) { lines.push_back(FormatLogRecord(record)); });
  SetMinLogLevel(LogLevel::kInfo);
  HLOG(DEBUG) << "hidden";
  HLOG(INFO) << "tcp: connected " << 42;
  HLOG(WARNING) << "careful";
  SetLogSink(previous);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].substr(0, 4), "INF|");
  EXPECT_NE(lines[0].find("|log_test.cc:"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("| tcp: connected 42"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[1].substr(0, 4), "WRN|");
}

TEST(LogTest, ReadableDurationRoundsTheWayPeopleRead) {
  EXPECT_EQ(ReadableDuration(absl::ZeroDuration()), "0 ms");
  EXPECT_EQ(ReadableDuration(absl::Microseconds(50)), "0.05 ms");
  EXPECT_EQ(ReadableDuration(absl::Microseconds(123)), "0.12 ms");
  EXPECT_EQ(ReadableDuration(absl::Microseconds(1300)), "1.3 ms");
  EXPECT_EQ(ReadableDuration(absl::Microseconds(120400)), "120 ms");
  EXPECT_EQ(ReadableDuration(absl::Nanoseconds(1045522207)), "1.05 s");
  EXPECT_EQ(ReadableDuration(absl::Milliseconds(12340)), "12.3 s");
  EXPECT_EQ(ReadableDuration(absl::Seconds(125)), "2 min 5 s");
  EXPECT_EQ(ReadableDuration(absl::Minutes(200)), "3 h 20 min");
  EXPECT_EQ(ReadableDuration(-absl::Milliseconds(5)), "-5.0 ms");
  EXPECT_EQ(ReadableDuration(absl::InfiniteDuration()), "forever");
}

TEST(LogTest, DroppedLinesAreNotEvaluated) {
  SetMinLogLevel(LogLevel::kWarning);
  int evaluated = 0;
  auto count = [&] { return ++evaluated; };
  HLOG(INFO) << count();
  EXPECT_EQ(evaluated, 0);
  SetMinLogLevel(LogLevel::kInfo);
}

}  // namespace
}  // namespace hublink
