#include "profiles/tencent/ota.h"

#include <fcntl.h>
#include <openssl/md5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "plugins/builtin.h"
#include "plugins/read_file.h"
#include "plugins/status_macros.h"
#include "profiles/tencent/json_util.h"
#include "protocols/http/http_client.h"
#include "transports/http/http_syntax.h"

namespace hublink {
namespace tencent {
namespace {

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status WriteAll(int fd, absl::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::ErrnoToStatus(errno, absl::StrCat("ota: cannot write ", path));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Worth another connection: the transfer was cut, the server was unreachable or slow, or answered
// 5xx. TLS verification failures, 404s and our own disk errors are not.
bool Retryable(const absl::Status& status) {
  return status.code() == absl::StatusCode::kDataLoss ||
         status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kDeadlineExceeded;
}

}  // namespace

std::string OtaReportTopic(const DeviceInfo& info) {
  return absl::StrCat("$ota/report/", info.product_id(), "/", info.device_name());
}

std::string OtaUpdateTopic(const DeviceInfo& info) {
  return absl::StrCat("$ota/update/", info.product_id(), "/", info.device_name());
}

std::string OtaReportVersion(absl::string_view version) {
  return absl::StrCat("{\"type\":\"report_version\",\"report\":{\"version\":", JsonQuote(version),
                      "}}");
}

absl::string_view OtaStateName(OtaState state) {
  switch (state) {
    case OtaState::kDownloading:
      return "downloading";
    case OtaState::kBurning:
      return "burning";
    case OtaState::kDone:
      return "done";
    case OtaState::kFail:
      return "fail";
  }
  return "fail";
}

std::string OtaReportProgress(OtaState state, int percent, int result_code,
                              absl::string_view result_msg, absl::string_view version) {
  return absl::StrCat(
      "{\"type\":\"report_progress\",\"report\":{\"progress\":{\"state\":\"", OtaStateName(state),
      "\",\"percent\":\"", std::clamp(percent, 0, 100), "\",\"result_code\":\"", result_code,
      "\",\"result_msg\":", JsonQuote(result_msg), "},\"version\":", JsonQuote(version), "}}");
}

absl::StatusOr<absl::optional<FirmwareUpdate>> ParseOtaUpdate(absl::string_view payload) {
  google::protobuf::Struct message;
  google::protobuf::util::JsonParseOptions options;
  if (!google::protobuf::util::JsonStringToMessage(std::string(payload), &message, options).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ota: update message is not a JSON object: ", http::Sanitize(payload)));
  }
  if (JsonString(message, "type") != "update_firmware") return absl::optional<FirmwareUpdate>();
  FirmwareUpdate update;
  update.url = JsonString(message, "url");
  update.md5sum = absl::AsciiStrToLower(JsonString(message, "md5sum"));
  update.version = JsonString(message, "version");
  const google::protobuf::Value* size = JsonField(message, "file_size");
  double bytes = -1;
  if (size != nullptr && size->kind_case() == google::protobuf::Value::kNumberValue) {
    bytes = size->number_value();
  } else if (size != nullptr && size->kind_case() == google::protobuf::Value::kStringValue) {
    uint64_t n = 0;
    if (absl::SimpleAtoi(size->string_value(), &n)) bytes = static_cast<double>(n);
  }
  if (!(bytes >= 1 && bytes <= 9007199254740992.0) || std::floor(bytes) != bytes) {
    return absl::InvalidArgumentError("ota: update_firmware: file_size is missing or not a size");
  }
  update.file_size = static_cast<uint64_t>(bytes);
  if (update.md5sum.size() != 32 ||
      !std::all_of(update.md5sum.begin(), update.md5sum.end(), absl::ascii_isxdigit)) {
    return absl::InvalidArgumentError("ota: update_firmware: md5sum is not 32 hex digits");
  }
  if (update.version.empty()) {
    return absl::InvalidArgumentError("ota: update_firmware: version is missing");
  }
  absl::StatusOr<HttpsUrl> url = ParseHttpsUrl(update.url);
  if (!url.ok()) return Annotate(url.status(), "ota: update_firmware: url");
  return absl::optional<FirmwareUpdate>(std::move(update));
}

absl::StatusOr<HttpsUrl> ParseHttpsUrl(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", http::Sanitize(url), "\" is not an https:// URL"));
  }
  HttpsUrl out;
  size_t slash = rest.find_first_of("/?");
  absl::string_view authority = rest.substr(0, slash);
  if (slash != absl::string_view::npos) {
    out.target = std::string(rest.substr(slash));
    if (out.target[0] == '?') out.target.insert(0, "/");
  }
  if (absl::StrContains(authority, '@')) {
    return absl::InvalidArgumentError("credentials in a firmware URL are not supported");
  }
  absl::string_view host = authority, port;
  if (absl::StartsWith(authority, "[")) {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos)
      return absl::InvalidArgumentError("unclosed IPv6 literal");
    host = authority.substr(1, close - 1);
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty() && !absl::ConsumePrefix(&after, ":")) {
      return absl::InvalidArgumentError("junk after the IPv6 literal");
    }
    port = after;
  } else if (size_t colon = authority.rfind(':'); colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return absl::InvalidArgumentError("the URL has no host");
  out.host = std::string(host);
  if (!port.empty() && (!absl::SimpleAtoi(port, &out.port) || out.port == 0 || out.port > 65535)) {
    return absl::InvalidArgumentError(absl::StrCat("bad port \"", http::Sanitize(port), "\""));
  }
  for (char c : out.target) {
    if (c <= 0x20 || c >= 0x7f) {
      return absl::InvalidArgumentError("the URL path holds spaces or control characters");
    }
  }
  return out;
}

absl::StatusOr<std::string> FileMd5(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return absl::ErrnoToStatus(errno, absl::StrCat("ota: cannot read ", path));
  MD5_CTX md5;
  MD5_Init(&md5);
  std::string buffer(64 * 1024, '\0');
  while (true) {
    ssize_t n = read(fd.get(), &buffer[0], buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, absl::StrCat("ota: cannot read ", path));
    if (n == 0) break;
    MD5_Update(&md5, buffer.data(), static_cast<size_t>(n));
  }
  uint8_t digest[MD5_DIGEST_LENGTH];
  MD5_Final(digest, &md5);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), sizeof(digest)));
}

absl::StatusOr<DownloadResult> DownloadFirmware(const FirmwareUpdate& update,
                                                const std::string& path,
                                                const DownloadOptions& options) {
  if (options.max_attempts <= 0) {
    return absl::InvalidArgumentError("ota: max_attempts must be at least 1");
  }
  HUBLINK_ASSIGN_OR_RETURN(HttpsUrl url, ParseHttpsUrl(update.url));
  HUBLINK_ASSIGN_OR_RETURN(
      Pipeline pipeline,
      http::HttpsPipeline(url.host, url.port, options.ca_file, options.insecure));
  if (options.adjust_pipeline) HUBLINK_RETURN_IF_ERROR(options.adjust_pipeline(pipeline));
  HUBLINK_ASSIGN_OR_RETURN(
      std::unique_ptr<http::HttpClient> client,
      http::HttpClient::Create(pipeline, options.registry ? *options.registry : BuiltinRegistry(),
                               "ota download"));

  const std::string part = path + ".part";
  const std::string marker = part + ".md5";
  // A partial file is resumed only if it belongs to this firmware.
  absl::StatusOr<std::string> owner = ReadFileContents(marker, "OTA resume marker", 256);
  if (!owner.ok() || *owner != update.md5sum) {
    unlink(part.c_str());
    Fd fd(open(marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (fd.get() < 0) return absl::ErrnoToStatus(errno, absl::StrCat("ota: cannot write ", marker));
    HUBLINK_RETURN_IF_ERROR(WriteAll(fd.get(), update.md5sum, marker));
  }
  Fd fd(open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (fd.get() < 0) return absl::ErrnoToStatus(errno, absl::StrCat("ota: cannot write ", part));

  DownloadResult result;
  absl::Duration delay = options.retry_delay;
  absl::Status last;
  while (true) {
    struct stat st;
    if (fstat(fd.get(), &st) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("ota: cannot stat ", part));
    }
    uint64_t have = static_cast<uint64_t>(st.st_size);
    if (have > update.file_size) {  // not ours after all: start over
      if (ftruncate(fd.get(), 0) != 0) {
        return absl::ErrnoToStatus(errno, absl::StrCat("ota: cannot truncate ", part));
      }
      have = 0;
    }
    if (have == update.file_size) break;
    if (result.attempts >= options.max_attempts) {
      return Annotate(
          last, absl::StrCat("ota: download of ", update.url, " stopped at ", have, " of ",
                             update.file_size, " bytes after ", result.attempts, " connections"));
    }
    ++result.attempts;
    if (have > 0) result.resumed_at = have;

    http::Request request;
    request.target = url.target;
    if (have > 0) request.headers.emplace_back("Range", absl::StrCat("bytes=", have, "-"));
    uint64_t written = have;
    bool range_refused = false;  // 416: our offset does not fit the server's file
    http::FetchOptions fetch;
    fetch.deadline = absl::Now() + options.attempt_timeout;
    fetch.on_headers = [&](const http::Response& response) -> absl::Status {
      const int code = response.status_code;
      if (code == 206) {
        const std::string* range = response.Find("content-range");
        const std::string expected = absl::StrCat("bytes ", have, "-");
        if (range == nullptr || !absl::StartsWith(*range, expected)) {
          return absl::DataLossError(
              absl::StrCat("ota: 206 answer to Range bytes=", have, "- has Content-Range \"",
                           range ? http::Sanitize(*range) : std::string("(none)"), "\""));
        }
        return absl::OkStatus();
      }
      if (code == 200) {  // the server ignored Range: the body is the whole file
        if (ftruncate(fd.get(), 0) != 0) {
          return absl::ErrnoToStatus(errno, absl::StrCat("ota: cannot truncate ", part));
        }
        written = 0;
        return absl::OkStatus();
      }
      absl::StatusCode status = absl::StatusCode::kUnavailable;
      if (code == 404 || code == 410) status = absl::StatusCode::kNotFound;
      if (code == 401 || code == 403) status = absl::StatusCode::kPermissionDenied;
      if (code == 416) {
        range_refused = true;
        status = absl::StatusCode::kDataLoss;
      }
      if (code >= 400 && code < 500 && status == absl::StatusCode::kUnavailable) {
        status = absl::StatusCode::kInvalidArgument;
      }
      return absl::Status(status, absl::StrCat("ota: the firmware server answered ", code, " ",
                                               http::Sanitize(response.reason), " for ",
                                               http::Sanitize(url.target)));
    };
    fetch.body_sink = [&](absl::string_view piece) -> absl::Status {
      if (piece.size() > update.file_size - written) {
        return absl::DataLossError(absl::StrCat("ota: the server sent more than file_size (",
                                                update.file_size, " bytes)"));
      }
      HUBLINK_RETURN_IF_ERROR(WriteAll(fd.get(), piece, part));
      written += piece.size();
      if (options.on_progress) options.on_progress(written, update.file_size);
      return absl::OkStatus();
    };
    absl::StatusOr<http::Response> response = client->Fetch(std::move(request), fetch);
    if (response.ok()) continue;  // complete: the size check at the top decides
    last = response.status();
    if (range_refused) {
      if (ftruncate(fd.get(), 0) != 0) {
        return absl::ErrnoToStatus(errno, absl::StrCat("ota: cannot truncate ", part));
      }
    } else if (!Retryable(last)) {
      return last;
    }
    if (options.on_retry) options.on_retry(result.attempts, last);
    absl::SleepFor(delay);  // bounded: max_attempts turns of at most 10 s
    delay = std::min(delay * 2, absl::Seconds(10));
  }
  if (fsync(fd.get()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("ota: cannot sync ", part));
  }
  HUBLINK_ASSIGN_OR_RETURN(result.md5, FileMd5(part));
  if (result.md5 != update.md5sum) {
    unlink(part.c_str());
    unlink(marker.c_str());
    return absl::DataLossError(absl::StrCat("ota: MD5 of the downloaded firmware is ", result.md5,
                                            ", the update says ", update.md5sum,
                                            "; the file was removed"));
  }
  if (rename(part.c_str(), path.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("ota: cannot rename ", part, " to ", path));
  }
  unlink(marker.c_str());
  return result;
}

}  // namespace tencent
}  // namespace hublink
