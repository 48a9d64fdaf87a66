// Tencent IoT Hub OTA (firmware update), the device's side: the MQTT payloads on
// $ota/report/<pid>/<dn> and $ota/update/<pid>/<dn>, and the firmware download over HTTPS with the
// "http" plugin, resumed with Range after a cut and checked with MD5 at the end. Facts and sources:
// docs/tencent-services.md.
//
// The pure parts (topics, payloads, update parsing, URL parsing) are separate from
// DownloadFirmware(), which owns the network and the files.
#ifndef HUBLINK_PROFILES_TENCENT_OTA_H_
#define HUBLINK_PROFILES_TENCENT_OTA_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "plugins/pipeline.pb.h"
#include "plugins/registry.h"
#include "profiles/tencent/device_info.pb.h"

namespace hublink {
namespace tencent {

using profiles::tencent::DeviceInfo;

std::string OtaReportTopic(const DeviceInfo& info);  // $ota/report/<pid>/<dn>: device publishes
std::string OtaUpdateTopic(const DeviceInfo& info);  // $ota/update/<pid>/<dn>: device subscribes

// {"type":"report_version","report":{"version":"<version>"}}
std::string OtaReportVersion(absl::string_view version);

enum class OtaState { kDownloading, kBurning, kDone, kFail };
absl::string_view OtaStateName(OtaState state);  // "downloading", "burning", "done", "fail"
// {"type":"report_progress","report":{"progress":{"state":..,"percent":"<n>","result_code":"<n>",
// "result_msg":".."},"version":".."}} (the SDK sends the numbers as strings).
std::string OtaReportProgress(OtaState state, int percent, int result_code,
                              absl::string_view result_msg, absl::string_view version);

struct FirmwareUpdate {
  std::string url;     // https://host[:port]/path
  std::string md5sum;  // 32 lower-case hex digits
  uint64_t file_size = 0;
  std::string version;
};

// A message on the update topic. update_firmware → the update; other types (report_version_rsp,
// ...) → nullopt. kInvalidArgument for an update_firmware without a usable url, md5sum, file_size or
// version, or a payload that is not a JSON object.
absl::StatusOr<absl::optional<FirmwareUpdate>> ParseOtaUpdate(absl::string_view payload);

struct HttpsUrl {
  std::string host;
  uint32_t port = 443;
  std::string target = "/";  // path and query
};
// https://host[:port][/path][?query]; an IPv6 literal in brackets. Only https: firmware travels
// verified and encrypted.
absl::StatusOr<HttpsUrl> ParseHttpsUrl(absl::string_view url);

struct DownloadOptions {
  std::string ca_file;    // trust anchors for the firmware server; empty: the system roots
  bool insecure = false;  // tests only
  // Changes the pipeline before use, e.g. to put a proxy under it (tools/cli/proxy_flags.h).
  std::function<absl::Status(Pipeline&)> adjust_pipeline;
  const Registry* registry = nullptr;  // default: BuiltinRegistry()
  // Each connection (connect, handshakes, and its share of the body) must end within this.
  absl::Duration attempt_timeout = absl::Seconds(120);
  // Connections in all, the first included; after a cut or an unreachable server the next one
  // resumes where the file ends, after retry_delay (doubling, at most 10 s).
  int max_attempts = 10;
  absl::Duration retry_delay = absl::Milliseconds(200);
  // Bytes on disk so far and the file size; called as pieces arrive (on the calling thread).
  std::function<void(uint64_t done, uint64_t total)> on_progress;
  // Each failed attempt and why, before the retry (for logs and tests).
  std::function<void(int attempt, const absl::Status& why)> on_retry;
};

struct DownloadResult {
  std::string md5;          // of the whole file, verified equal to the update's md5sum
  int attempts = 0;         // connections used
  uint64_t resumed_at = 0;  // the offset of the last Range request (0: no resume needed)
};

// Downloads `update` to `path`: the bytes go to "<path>.part" (with "<path>.part.md5" naming the
// firmware they belong to, so a later call resumes it, even after a restart, and a different
// firmware starts over), each connection asks for "Range: bytes=<size of .part>-", and once
// file_size bytes are there their MD5 must match md5sum; then "<path>.part" becomes `path`.
// Errors: kDataLoss for an MD5 mismatch (the partial file is removed) or a server that sends more
// than file_size; kNotFound / kPermissionDenied for 404 / 403; the last attempt's error when
// max_attempts connections did not finish; kInvalidArgument for a bad URL or options.
absl::StatusOr<DownloadResult> DownloadFirmware(const FirmwareUpdate& update,
                                                const std::string& path,
                                                const DownloadOptions& options);

// The lower-case hex MD5 of a file's contents.
absl::StatusOr<std::string> FileMd5(const std::string& path);

}  // namespace tencent
}  // namespace hublink

#endif  // HUBLINK_PROFILES_TENCENT_OTA_H_
