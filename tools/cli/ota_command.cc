#include "tools/cli/ota_command.h"

#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "profiles/tencent/ota.h"
#include "protocols/mqtt/client.h"
#include "tools/cli/connection_flags.h"
#include "tools/cli/flags.h"
#include "tools/cli/service_command_util.h"

namespace hublink {
namespace cli {
namespace {

struct OtaFlags {
  ConnectionFlags connection;
  std::string version;
  std::string download_dir;
  std::string firmware_ca_file;
  bool firmware_insecure = false;
  int wait = 60;
  int timeout = 10;
  int max_attempts = 10;
};

// Shared between the loop thread (messages, events) and the command's thread.
struct Inbox {
  std::mutex mutex;
  std::condition_variable changed;
  absl::optional<absl::StatusOr<tencent::FirmwareUpdate>> update;
};

constexpr char kUsage[] = "hublink ota --device_info=FILE --version=V --download_dir=DIR [flags]";

int Usage(std::ostream& err, absl::string_view problem, const FlagParser& parser) {
  return PrintUsageError(err, "ota", problem, kUsage, parser);
}

int Fail(std::ostream& err, const absl::Status& status) {
  err << "hublink ota: " << status.ToString() << "\n";
  return 1;
}

// The C SDK's IOT_OTAReportType failure codes for report_progress "fail".
int FailureCode(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kNotFound) return -2;  // IOT_OTAR_FILE_NOT_EXIST
  if (status.code() == absl::StatusCode::kUnauthenticated ||
      status.code() == absl::StatusCode::kPermissionDenied) {
    return -3;  // IOT_OTAR_AUTH_FAIL
  }
  if (absl::StrContains(status.message(), "MD5")) return -4;  // IOT_OTAR_MD5_NOT_MATCH
  return -1;                                                  // IOT_OTAR_DOWNLOAD_TIMEOUT
}

absl::Status Wait(std::future<absl::Status> future, int seconds, absl::string_view what) {
  if (future.wait_for(std::chrono::seconds(seconds)) != std::future_status::ready) {
    return absl::DeadlineExceededError(absl::StrCat(what, ": no answer within ", seconds, " s"));
  }
  return future.get();
}

}  // namespace

int RunOta(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
           const std::function<void(Registry::Builder&)>& register_plugins) {
  OtaFlags flags;
  FlagParser parser;
  flags.connection.Register(parser);
  parser.AddString("version", &flags.version, "the firmware version running now (reported)");
  parser.AddString("download_dir", &flags.download_dir,
                   "where the new firmware goes (firmware-<version>.bin; a .part file there is "
                   "resumed)");
  parser.AddString("firmware_ca_file", &flags.firmware_ca_file,
                   "trust anchors for the firmware server (default: --ca_file, else the system "
                   "roots)");
  parser.AddBool("firmware_insecure", &flags.firmware_insecure,
                 "do not verify the firmware server (tests only; the MD5 is still checked)");
  parser.AddInt("wait", &flags.wait, "seconds to wait for an update_firmware (default 60)");
  parser.AddInt("timeout", &flags.timeout,
                "seconds for the connection, the subscription and each report (default 10)");
  parser.AddInt("max_attempts", &flags.max_attempts,
                "download connections in all before giving up (default 10)");
  std::vector<std::string> positional;
  if (absl::optional<int> done = ParseCommandArgs(
          args, "ota", kUsage, "  report the version, wait for an update, download and verify it\n",
          parser, out, err, &positional)) {
    return *done;
  }
  if (!positional.empty()) return Usage(err, "takes no positional arguments", parser);
  if (flags.connection.device_info.empty()) {
    return Usage(err, "--device_info: required (OTA belongs to one device)", parser);
  }
  if (flags.version.empty()) return Usage(err, "--version: required", parser);
  if (flags.download_dir.empty()) return Usage(err, "--download_dir: required", parser);
  if (flags.wait <= 0 || flags.timeout <= 0 || flags.max_attempts <= 0) {
    return Usage(err, "--wait, --timeout and --max_attempts must be positive", parser);
  }
  struct stat st;
  if (stat(flags.download_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Usage(err, absl::StrCat("--download_dir: ", flags.download_dir, " is not a directory"),
                 parser);
  }

  absl::StatusOr<CommandConnection> connection =
      PrepareConnection(flags.connection, register_plugins);
  if (!connection.ok()) return Fail(err, connection.status());
  const tencent::DeviceInfo& info = connection->info;

  Inbox inbox;  // outlives the client, whose loop thread writes to it
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Create(std::shared_ptr<const ResolvedPipeline>(std::move(connection->resolved)));
  if (!client.ok()) return Fail(err, client.status());
  std::future<absl::Status> subscribed = (*client)->Subscribe(
      tencent::OtaUpdateTopic(info), 1, [&inbox](const mqtt::Message& message) {
        absl::StatusOr<absl::optional<tencent::FirmwareUpdate>> update =
            tencent::ParseOtaUpdate(message.payload);
        std::lock_guard<std::mutex> lock(inbox.mutex);
        if (inbox.update.has_value()) return;  // the first update wins
        if (!update.ok()) {
          inbox.update = update.status();
        } else if (update->has_value()) {
          inbox.update = **update;
        } else {
          return;  // report_version_rsp and other replies
        }
        inbox.changed.notify_all();
      });
  (*client)->Connect();
  const std::string report_topic = tencent::OtaReportTopic(info);
  absl::Status status = Wait(std::move(subscribed), flags.timeout, "subscribe");
  if (status.ok()) {
    status = Wait((*client)->Publish(report_topic, tencent::OtaReportVersion(flags.version), 1),
                  flags.timeout, "report_version");
  }
  if (!status.ok()) {
    (void)(*client)->Disconnect().wait_for(std::chrono::seconds(flags.timeout));
    return Fail(err, status);
  }
  out << "reported version " << flags.version << "; waiting for an update on "
      << tencent::OtaUpdateTopic(info) << std::endl;

  absl::StatusOr<tencent::FirmwareUpdate> update = absl::UnknownError("none");
  {
    std::unique_lock<std::mutex> lock(inbox.mutex);
    if (!inbox.changed.wait_for(lock, std::chrono::seconds(flags.wait),
                                [&] { return inbox.update.has_value(); })) {
      update =
          absl::DeadlineExceededError(absl::StrCat("no update_firmware within ", flags.wait, " s"));
    } else {
      update = *inbox.update;
    }
  }
  if (!update.ok()) {
    (void)(*client)->Disconnect().wait_for(std::chrono::seconds(flags.timeout));
    return Fail(err, update.status());
  }
  out << "update to " << update->version << ": " << update->file_size << " bytes from "
      << update->url << std::endl;

  // Progress as the SDK sample reports it: QoS 0, every 10 percent.
  int last_percent = -1;
  tencent::DownloadOptions options;
  options.ca_file =
      flags.firmware_ca_file.empty() ? flags.connection.ca_file : flags.firmware_ca_file;
  options.insecure = flags.firmware_insecure;
  options.registry = connection->registry.get();
  options.max_attempts = flags.max_attempts;
  options.on_progress = [&](uint64_t done, uint64_t total) {
    int percent = static_cast<int>(done * 100 / (total ? total : 1));
    if (percent / 10 == last_percent / 10 && percent != 100) return;
    last_percent = percent;
    (*client)->Publish(report_topic,
                       tencent::OtaReportProgress(tencent::OtaState::kDownloading, percent, 0, "",
                                                  update->version),
                       0);
  };
  options.on_retry = [&](int attempt, const absl::Status& why) {
    err << "hublink ota: connection " << attempt << " ended (" << why.message() << "); resuming\n";
  };
  const std::string path = absl::StrCat(flags.download_dir, "/firmware-", update->version, ".bin");
  absl::StatusOr<tencent::DownloadResult> result =
      tencent::DownloadFirmware(*update, path, options);
  std::string final_report =
      result.ok()
          ? tencent::OtaReportProgress(tencent::OtaState::kDone, 100, 0, "", update->version)
          : tencent::OtaReportProgress(tencent::OtaState::kFail, last_percent,
                                       FailureCode(result.status()), result.status().message(),
                                       update->version);
  absl::Status reported =
      Wait((*client)->Publish(report_topic, final_report, 1), flags.timeout, "report_progress");
  (void)(*client)->Disconnect().wait_for(std::chrono::seconds(flags.timeout));
  if (!result.ok()) return Fail(err, result.status());
  if (!reported.ok()) return Fail(err, reported);
  out << "downloaded " << path << " (md5 " << result->md5 << ", " << result->attempts
      << " connection" << (result->attempts == 1 ? "" : "s") << ")" << std::endl;
  return 0;
}

}  // namespace cli
}  // namespace hublink
