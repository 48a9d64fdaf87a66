#include "profiles/tencent/ota.h"

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace hublink {
namespace tencent {
namespace {

DeviceInfo Device() {
  DeviceInfo info;
  info.set_product_id("ABCDEFGHIJ");
  info.set_device_name("dev01");
  return info;
}

TEST(OtaPayloads, TopicsAndReportsAsTheSdkSendsThem) {
  EXPECT_EQ(OtaReportTopic(Device()), "$ota/report/ABCDEFGHIJ/dev01");
  EXPECT_EQ(OtaUpdateTopic(Device()), "$ota/update/ABCDEFGHIJ/dev01");
  EXPECT_EQ(OtaReportVersion("1.0.0"), R"({"type":"report_version","report":{"version":"1.0.0"}})");
  EXPECT_EQ(OtaReportProgress(OtaState::kDownloading, 31, 0, "", "2.0.0"),
            R"({"type":"report_progress","report":{"progress":{"state":"downloading",)"
            R"("percent":"31","result_code":"0","result_msg":""},"version":"2.0.0"}})");
  EXPECT_EQ(OtaReportProgress(OtaState::kFail, 150, -4, "md5 \"bad\"", "2"),
            R"({"type":"report_progress","report":{"progress":{"state":"fail",)"
            R"("percent":"100","result_code":"-4","result_msg":"md5 \"bad\""},"version":"2"}})");
}

TEST(OtaPayloads, ParsesUpdateFirmware) {
  absl::StatusOr<absl::optional<FirmwareUpdate>> update = ParseOtaUpdate(
      R"({"type":"update_firmware","url":"https://ota.example.com:8443/fw/a.bin?sig=1",)"
      R"("md5sum":"0123456789ABCDEF0123456789abcdef","file_size":31337,"version":"2.0.0"})");
  ASSERT_TRUE(update.ok()) << update.status();
  ASSERT_TRUE(update->has_value());
  EXPECT_EQ((*update)->md5sum, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ((*update)->file_size, 31337u);
  EXPECT_EQ((*update)->version, "2.0.0");

  absl::StatusOr<absl::optional<FirmwareUpdate>> other =
      ParseOtaUpdate(R"({"type":"report_version_rsp","result_code":0})");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());

  for (
      const char* bad : {
          R"({"type":"update_firmware","url":"http://x/a","md5sum":"0123456789abcdef0123456789abcdef","file_size":1,"version":"1"})",
          R"({"type":"update_firmware","url":"https://x/a","md5sum":"0123","file_size":1,"version":"1"})",
          R"({"type":"update_firmware","url":"https://x/a","md5sum":"0123456789abcdef0123456789abcdef","file_size":-1,"version":"1"})",
          R"({"type":"update_firmware","url":"https://x/a","md5sum":"0123456789abcdef0123456789abcdef","file_size":1})",
          "not json",
      }) {
    EXPECT_EQ(ParseOtaUpdate(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(OtaPayloads, ParsesHttpsUrls) {
  absl::StatusOr<HttpsUrl> url = ParseHttpsUrl("https://h.example.com/fw.bin?a=1");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "h.example.com");
  EXPECT_EQ(url->port, 443u);
  EXPECT_EQ(url->target, "/fw.bin?a=1");
  url = ParseHttpsUrl("https://[::1]:8443");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 8443u);
  EXPECT_EQ(url->target, "/");
  EXPECT_FALSE(ParseHttpsUrl("ftp://h/x").ok());
  EXPECT_FALSE(ParseHttpsUrl("https://:1/x").ok());
  EXPECT_FALSE(ParseHttpsUrl("https://h:99999/x").ok());
  EXPECT_FALSE(ParseHttpsUrl("https://u:p@h/x").ok());
  EXPECT_FALSE(ParseHttpsUrl("https://h/a b").ok());
}

// Downloads from protocols/http/test_server.py, whose /file?size=N serves bytes i % 251 with
// Range support.
class OtaDownloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(testing::TempDir(), "/ota_test");
    ASSERT_TRUE(testing::RunCommand("rm -rf " + dir_ + " && mkdir -p " + dir_).ok());
    absl::StatusOr<testing::TestCertificates> certs =
        testing::MakeTestCertificates(dir_, {"localhost", "127.0.0.1"});
    ASSERT_TRUE(certs.ok()) << certs.status();
    ca_file_ = certs->ca_file;
    const std::string port_file = dir_ + "/port";
    absl::StatusOr<std::unique_ptr<testing::Subprocess>> server = testing::Subprocess::Start(
        {"python3", "protocols/http/test_server.py", certs->cert_file, certs->key_file, port_file});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (port_ == 0 && absl::Now() < give_up) {
      absl::StatusOr<std::string> text = testing::ReadFile(port_file);
      if (text.ok() && absl::SimpleAtoi(*text, &port_)) break;
      ASSERT_TRUE(server_->Running()) << "test_server.py exited";
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_NE(port_, 0);
    // The same bytes locally, for the expected MD5.
    std::string bytes;
    for (size_t i = 0; i < kSize; ++i) bytes.push_back(static_cast<char>(i % 251));
    content_ = bytes;
    ASSERT_TRUE(testing::WriteFile(dir_ + "/expected.bin", bytes).ok());
    absl::StatusOr<std::string> md5 = FileMd5(dir_ + "/expected.bin");
    ASSERT_TRUE(md5.ok());
    update_.md5sum = *md5;
    update_.file_size = kSize;
    update_.version = "2.0.0";
    update_.url = absl::StrCat("https://127.0.0.1:", port_, "/file?size=", kSize);
  }

  DownloadOptions Options() {
    DownloadOptions options;
    options.ca_file = ca_file_;
    options.attempt_timeout = absl::Seconds(20);
    return options;
  }

  static constexpr size_t kSize = 250000;
  std::string dir_, ca_file_, content_;
  std::unique_ptr<testing::Subprocess> server_;
  int port_ = 0;
  FirmwareUpdate update_;
};

TEST_F(OtaDownloadTest, DownloadsAndVerifies) {
  const std::string path = dir_ + "/fw.bin";
  uint64_t last_progress = 0;
  DownloadOptions options = Options();
  options.on_progress = [&](uint64_t done, uint64_t total) {
    EXPECT_GE(done, last_progress);
    EXPECT_EQ(total, kSize);
    last_progress = done;
  };
  absl::StatusOr<DownloadResult> result = DownloadFirmware(update_, path, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->attempts, 1);
  EXPECT_EQ(result->resumed_at, 0u);
  EXPECT_EQ(result->md5, update_.md5sum);
  EXPECT_EQ(last_progress, kSize);
  absl::StatusOr<std::string> got = testing::ReadFile(path);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got == content_);
  EXPECT_FALSE(testing::ReadFile(path + ".part").ok());
}

TEST_F(OtaDownloadTest, ResumesAPartialFileWithRange) {
  const std::string path = dir_ + "/fw.bin";
  ASSERT_TRUE(testing::WriteFile(path + ".part", content_.substr(0, 100000)).ok());
  ASSERT_TRUE(testing::WriteFile(path + ".part.md5", update_.md5sum).ok());
  absl::StatusOr<DownloadResult> result = DownloadFirmware(update_, path, Options());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->resumed_at, 100000u);
  absl::StatusOr<std::string> got = testing::ReadFile(path);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got == content_);
}

TEST_F(OtaDownloadTest, PartOfAnotherFirmwareStartsOver) {
  const std::string path = dir_ + "/fw.bin";
  ASSERT_TRUE(testing::WriteFile(path + ".part", std::string(100000, 'x')).ok());
  ASSERT_TRUE(testing::WriteFile(path + ".part.md5", "ffffffffffffffffffffffffffffffff").ok());
  absl::StatusOr<DownloadResult> result = DownloadFirmware(update_, path, Options());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->resumed_at, 0u);
}

TEST_F(OtaDownloadTest, Md5MismatchIsDataLossAndRemovesThePart) {
  const std::string path = dir_ + "/fw.bin";
  update_.md5sum = "00000000000000000000000000000000";
  absl::StatusOr<DownloadResult> result = DownloadFirmware(update_, path, Options());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss) << result.status();
  EXPECT_NE(result.status().message().find("MD5"), std::string::npos);
  EXPECT_FALSE(testing::ReadFile(path + ".part").ok());
  EXPECT_FALSE(testing::ReadFile(path).ok());
}

TEST_F(OtaDownloadTest, CutsAreRetriedUpToMaxAttempts) {
  // /cut always announces the whole file and stops at 1000 bytes, from the start (it ignores
  // Range): every attempt is cut, each is retried, and the error says how far it got.
  update_.url = absl::StrCat("https://127.0.0.1:", port_, "/cut?size=", kSize, "&at=1000");
  DownloadOptions options = Options();
  options.max_attempts = 3;
  options.retry_delay = absl::Milliseconds(10);
  int retries = 0;
  options.on_retry = [&](int, const absl::Status& why) {
    EXPECT_EQ(why.code(), absl::StatusCode::kDataLoss) << why;
    ++retries;
  };
  absl::StatusOr<DownloadResult> result = DownloadFirmware(update_, dir_ + "/cut.bin", options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss) << result.status();
  EXPECT_NE(result.status().message().find("after 3 connections"), std::string::npos)
      << result.status();
  EXPECT_EQ(retries, 3);
}

TEST_F(OtaDownloadTest, NotFoundIsNotRetried) {
  update_.url = absl::StrCat("https://127.0.0.1:", port_, "/nothing.bin");
  int retries = 0;
  DownloadOptions options = Options();
  options.on_retry = [&](int, const absl::Status&) { ++retries; };
  absl::StatusOr<DownloadResult> result = DownloadFirmware(update_, dir_ + "/nf.bin", options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound) << result.status();
  EXPECT_EQ(retries, 0);
}

}  // namespace
}  // namespace tencent
}  // namespace hublink
