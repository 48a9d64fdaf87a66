// bazel run //examples:ota_sample               (the local hub: started, its firmware server too, a
//                                               new version pushed from the console)
// bazel run //examples:ota_sample -- --device_info=device_info.json --download_dir=DIR [--wait=S]
//
// The Tencent C SDK's ota_sample, on hublink: the device reports the firmware version it runs (kept
// in DIR/version.txt, --version on the first run), waits for an update_firmware on
// $ota/update/<pid>/<dn>, downloads the file over HTTPS with progress reports, resuming a download
// an earlier run left unfinished (DIR/firmware-<version>.bin.part, continued with a Range request),
// checks its MD5, reports burning and done, and records the new version, which the next run
// reports. profiles/tencent/ota.h does the protocol and the download.
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "examples/sample_support.h"
#include "plugins/log.h"
#include "profiles/tencent/ota.h"

namespace {

using hublink::tencent::OtaReportProgress;
using hublink::tencent::OtaState;

// The version the device runs: the first line of `path`, else `fallback`.
std::string RunningVersion(const std::string& path, const std::string& fallback) {
  std::ifstream in(path);
  std::string line;
  if (in && std::getline(in, line) && !absl::StripAsciiWhitespace(line).empty()) {
    return std::string(absl::StripAsciiWhitespace(line));
  }
  return fallback;
}

// Publishes a report at QoS 1 and waits for the PUBACK.
absl::Status Report(hublink::Client& client, const std::string& topic, const std::string& payload) {
  std::future<absl::Status> acked = client.Publish(topic, payload, 1);
  if (acked.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return absl::DeadlineExceededError("no PUBACK within 10 s");
  }
  return acked.get();
}

}  // namespace

int main(int argc, char** argv) {
  hublink::examples::SampleFlags flags;
  std::string initial_version = "1.0.0";
  std::string download_dir;
  int wait = 60;
  hublink::cli::FlagParser parser;
  parser.AddString("version", &initial_version,
                   "the version to report when DIR/version.txt does not exist yet (default 1.0.0)");
  parser.AddString("download_dir", &download_dir,
                   "where the firmware and version.txt go (a .part file there is resumed)");
  parser.AddInt("wait", &wait, "seconds to wait for an update_firmware (default 60)");
  if (!hublink::examples::ParseSampleFlags("ota_sample", argc, argv, parser, flags)) return 2;
  struct stat st;
  if (download_dir.empty() || stat(download_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    std::cerr << "ota_sample: --download_dir: '" << download_dir << "' is not a directory\n";
    return 2;
  }
  const std::string version_file = download_dir + "/version.txt";
  const std::string version = RunningVersion(version_file, initial_version);

  absl::optional<hublink::examples::Device> device = hublink::examples::ConnectSampleDevice(flags);
  if (!device.has_value()) return 1;
  hublink::Client& client = *device->client;
  const std::string report_topic = hublink::tencent::OtaReportTopic(device->info);
  const std::string update_topic = hublink::tencent::OtaUpdateTopic(device->info);

  // update_firmware messages (or a malformed one's error), from the loop thread.
  hublink::examples::Mailbox<absl::StatusOr<hublink::tencent::FirmwareUpdate>> updates;
  std::future<absl::Status> subscribed =
      client.Subscribe(update_topic, 1, [&updates](const hublink::mqtt::Message& message) {
        HLOG(INFO) << "OTA message: " << message.payload;
        auto update = hublink::tencent::ParseOtaUpdate(message.payload);
        if (!update.ok()) {
          updates.Put(update.status());
        } else if (update->has_value()) {
          updates.Put(**update);
        }  // else report_version_rsp and other replies: logged above
      });
  int exit_code = 1;
  absl::Status status = subscribed.wait_for(std::chrono::seconds(10)) == std::future_status::ready
                            ? subscribed.get()
                            : absl::DeadlineExceededError("no SUBACK within 10 s");
  if (status.ok()) {
    status = Report(client, report_topic, hublink::tencent::OtaReportVersion(version));
  }
  if (!status.ok()) {
    HLOG(ERROR) << "OTA init failed: " << status.message();
  } else {
    HLOG(INFO) << "reported version " << version << "; waiting for update_firmware on "
               << update_topic;
    absl::optional<absl::StatusOr<hublink::tencent::FirmwareUpdate>> update =
        updates.Take(absl::Seconds(wait));
    if (!update.has_value()) {
      HLOG(ERROR) << "no update_firmware within " << wait << " s";
    } else if (!update->ok()) {
      HLOG(ERROR) << "bad update_firmware: " << update->status().message();
    } else if ((*update)->version == version) {
      HLOG(INFO) << "version " << version << " runs already; nothing to do";
      exit_code = 0;
    } else {
      const hublink::tencent::FirmwareUpdate& firmware = **update;
      HLOG(INFO) << "update to " << firmware.version << ": " << firmware.file_size << " bytes from "
                 << firmware.url << ", md5 " << firmware.md5sum;
      // Progress at QoS 0 every 10 percent, as the SDK sample reports it while it downloads.
      int last_percent = -1;
      hublink::tencent::DownloadOptions options;
      options.ca_file = flags.connection.ca_file;
      options.registry = device->registry.get();
      options.on_progress = [&](uint64_t done, uint64_t total) {
        int percent = static_cast<int>(done * 100 / (total ? total : 1));
        if (percent / 10 == last_percent / 10 && percent != 100) return;
        last_percent = percent;
        HLOG(INFO) << "download progress " << percent << "%";
        client.Publish(report_topic,
                       OtaReportProgress(OtaState::kDownloading, percent, 0, "", firmware.version),
                       0);
      };
      options.on_retry = [](int attempt, const absl::Status& why) {
        HLOG(WARNING) << "download connection " << attempt << " ended (" << why.message()
                      << "); resuming";
      };
      const std::string path = absl::StrCat(download_dir, "/firmware-", firmware.version, ".bin");
      // A .part an interrupted run left (of this firmware: DownloadFirmware checks) is continued.
      struct stat part;
      if (stat((path + ".part").c_str(), &part) == 0 && part.st_size > 0) {
        HLOG(INFO) << "an earlier download left " << part.st_size << " bytes; resuming";
      }
      absl::StatusOr<hublink::tencent::DownloadResult> result =
          hublink::tencent::DownloadFirmware(firmware, path, options);
      if (!result.ok()) {
        HLOG(ERROR) << "download failed: " << result.status().message();
        // -1: the SDK's download failure code; an MD5 mismatch is -4 there.
        int code = result.status().code() == absl::StatusCode::kDataLoss ? -4 : -1;
        Report(client, report_topic,
               OtaReportProgress(OtaState::kFail, std::max(last_percent, 0), code,
                                 result.status().message(), firmware.version))
            .IgnoreError();
      } else {
        HLOG(INFO) << "downloaded " << path << ", md5 " << result->md5 << " verified, "
                   << result->attempts << " connection" << (result->attempts == 1 ? "" : "s")
                   << (result->resumed_at > 0
                           ? absl::StrCat(", resumed at byte ", result->resumed_at)
                           : std::string());
        // A real device writes the image to flash here; the sample records the version it now
        // runs.
        status = Report(client, report_topic,
                        OtaReportProgress(OtaState::kBurning, 100, 0, "", firmware.version));
        std::ofstream(version_file) << firmware.version << "\n";
        if (status.ok()) {
          status = Report(client, report_topic,
                          OtaReportProgress(OtaState::kDone, 100, 0, "", firmware.version));
        }
        if (!status.ok()) {
          HLOG(ERROR) << "report_progress failed: " << status.message();
        } else {
          HLOG(INFO) << "upgraded from " << version << " to " << firmware.version;
          exit_code = 0;
        }
      }
    }
  }
  hublink::examples::Disconnect(client);
  std::cout << "ota_sample: " << (exit_code == 0 ? "done" : "FAILED") << ", running version "
            << RunningVersion(version_file, initial_version) << std::endl;
  return exit_code;
}
