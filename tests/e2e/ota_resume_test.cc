// Issue 16, OTA download end to end: the local hub's HTTPS firmware server (local_hub.sh https-start)
// behind faultproxy, which closes every connection after 300 KB from the server. DownloadFirmware
// (profiles/tencent/ota.h) must resume each cut with Range, finish a 1 MB firmware, and verify its
// MD5; and a download stopped by a cut resumes from its .part file in a later call, as after a
// device restart.
//   args: local_hub.sh
#include <cstdio>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "profiles/tencent/ota.h"
#include "tests/e2e/e2e_test_main.h"
#include "tests/test_util.h"
#include "tools/faultproxy/proxy_test_util.h"

namespace hublink {
namespace {

std::string g_local_hub;

class OtaResumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(testing::TempDir(), "/ota_resume");
    ASSERT_TRUE(testing::RunCommand("rm -rf " + dir_ + " && mkdir -p " + dir_).ok());
    hub_ = absl::StrCat("LOCAL_HUB_DIR=", dir_, "/hub ", g_local_hub);
    absl::StatusOr<std::string> started = testing::RunCommand(hub_ + " https-start 0");
    ASSERT_TRUE(started.ok()) << started.status();
    absl::StatusOr<std::string> port = testing::ReadFile(dir_ + "/hub/https.port");
    ASSERT_TRUE(port.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*port), &https_port_));
    // 1 MB of deterministic bytes, as the firmware.
    std::string firmware;
    uint32_t x = 12345;
    for (int i = 0; i < kSize; ++i) {
      x = x * 1103515245 + 12345;
      firmware.push_back(static_cast<char>(x >> 24));
    }
    firmware_ = firmware;
    ASSERT_TRUE(testing::WriteFile(dir_ + "/hub/firmware/fw-2.0.0.bin", firmware).ok());
    absl::StatusOr<std::string> md5 = testing::RunCommand(
        absl::StrCat("md5sum ", dir_, "/hub/firmware/fw-2.0.0.bin | cut -d' ' -f1"));
    ASSERT_TRUE(md5.ok());
    update_.md5sum = std::string(absl::StripAsciiWhitespace(*md5));
    update_.file_size = kSize;
    update_.version = "2.0.0";

    absl::StatusOr<std::unique_ptr<faultproxy::testing::RunningProxy>> proxy =
        faultproxy::testing::RunningProxy::Start(https_port_);
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    proxy_ = *std::move(proxy);
    faultproxy::testing::ControlClient control(proxy_->control_port());
    ASSERT_TRUE(control.ok());
    // Every connection, present and future, is closed after 300 KB from the server.
    std::string reply = control.Command("close_after bytes=300k dir=down");
    ASSERT_TRUE(absl::StartsWith(reply, "ok")) << reply;
    update_.url = absl::StrCat("https://localhost:", proxy_->port(), "/firmware/fw-2.0.0.bin");
  }

  void TearDown() override { (void)testing::RunCommand(hub_ + " https-stop"); }

  tencent::DownloadOptions Options() {
    tencent::DownloadOptions options;
    options.ca_file = dir_ + "/hub/tls/ca.crt";
    options.attempt_timeout = absl::Seconds(20);
    options.retry_delay = absl::Milliseconds(50);
    return options;
  }

  static constexpr int kSize = 1000 * 1000;
  std::string dir_, hub_, firmware_;
  int https_port_ = 0;
  std::unique_ptr<faultproxy::testing::RunningProxy> proxy_;
  tencent::FirmwareUpdate update_;
};

TEST_F(OtaResumeTest, CutsAreResumedWithRangeAndTheMd5Verified) {
  const std::string path = dir_ + "/fw.bin";
  int cuts = 0;
  tencent::DownloadOptions options = Options();
  options.on_retry = [&](int, const absl::Status& why) {
    // A cut inside a TLS record is kUnavailable (tls), between records kDataLoss (http).
    EXPECT_TRUE(why.code() == absl::StatusCode::kUnavailable ||
                why.code() == absl::StatusCode::kDataLoss)
        << why;
    ++cuts;
  };
  absl::StatusOr<tencent::DownloadResult> result =
      tencent::DownloadFirmware(update_, path, options);
  ASSERT_TRUE(result.ok()) << result.status();
  // 300 KB a connection (less the TLS handshake and headers): 4 connections for 1 MB.
  EXPECT_GE(result->attempts, 4);
  EXPECT_EQ(cuts, result->attempts - 1);
  EXPECT_GT(result->resumed_at, 600u * 1000);
  EXPECT_EQ(result->md5, update_.md5sum);
  absl::StatusOr<std::string> got = testing::ReadFile(path);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got == firmware_);
  // The server saw the Range requests.
  absl::StatusOr<std::string> log = testing::ReadFile(dir_ + "/hub/https.log");
  ASSERT_TRUE(log.ok());
  EXPECT_TRUE(absl::StrContains(*log, "\"GET /firmware/fw-2.0.0.bin HTTP/1.1\" 206")) << *log;
  std::printf("ota: %d connections, %d cuts, last Range from byte %llu\n", result->attempts, cuts,
              static_cast<unsigned long long>(result->resumed_at));
}

TEST_F(OtaResumeTest, AStoppedDownloadResumesInALaterCall) {
  const std::string path = dir_ + "/fw.bin";
  tencent::DownloadOptions options = Options();
  options.max_attempts = 1;  // the first cut ends this "run" of the device
  absl::StatusOr<tencent::DownloadResult> first = tencent::DownloadFirmware(update_, path, options);
  ASSERT_TRUE(first.status().code() == absl::StatusCode::kUnavailable ||
              first.status().code() == absl::StatusCode::kDataLoss)
      << first.status();
  absl::StatusOr<std::string> part = testing::ReadFile(path + ".part");
  ASSERT_TRUE(part.ok());
  EXPECT_GT(part->size(), 100u * 1000);
  EXPECT_LT(part->size(), static_cast<size_t>(kSize));

  absl::StatusOr<tencent::DownloadResult> second =
      tencent::DownloadFirmware(update_, path, Options());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GE(second->resumed_at, part->size());
  absl::StatusOr<std::string> got = testing::ReadFile(path);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got == firmware_);
}

TEST_F(OtaResumeTest, AWrongMd5IsCaughtAtTheEnd) {
  update_.md5sum = "0123456789abcdef0123456789abcdef";
  absl::StatusOr<tencent::DownloadResult> result =
      tencent::DownloadFirmware(update_, dir_ + "/bad.bin", Options());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss) << result.status();
  EXPECT_TRUE(absl::StrContains(result.status().message(), "MD5")) << result.status();
  EXPECT_FALSE(testing::ReadFile(dir_ + "/bad.bin").ok());
}

}  // namespace
}  // namespace hublink

int main(int argc, char** argv) {
  return hublink::testing::RunTestsWithArgs(argc, argv, "ota_resume_test LOCAL_HUB_SH",
                                            {&hublink::g_local_hub});
}
