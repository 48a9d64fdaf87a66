#include "transports/http_connect/http_connect_transport.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "auth/secret_file.h"
#include "plugins/log.h"
#include "plugins/status_macros.h"
#include "transports/http_connect/connect_codec.h"
#include "transports/http_connect/http_connect.pb.h"
#include "transports/http_connect/tunnel_transport.h"

namespace hublink {
namespace {

using transports::HttpConnectConfig;

constexpr size_t kDefaultMaxResponseBytes = 16 * 1024;

// The config with defaults applied, validated once per pipeline. The password is wiped when the
// pipeline goes.
struct Settings {
  Settings() = default;
  Settings(const Settings&) = delete;
  Settings& operator=(const Settings&) = delete;
  ~Settings() { auth::Wipe(password); }

  std::string username;
  std::string password;
  std::vector<std::pair<std::string, std::string>> headers;
  size_t max_response_bytes = kDefaultMaxResponseBytes;
  absl::optional<absl::Duration> handshake_timeout;
};

class HttpConnectTransport : public TunnelTransport {
 public:
  HttpConnectTransport(const Settings& settings, ConnectContext& context,
                       std::unique_ptr<Transport> lower)
      : TunnelTransport("http_connect", context, std::move(lower), settings.handshake_timeout),
        settings_(settings) {}

 private:
  void StartHandshake() override {
    parser_ = std::make_unique<http_connect::ConnectResponseParser>(
        Target(), !settings_.username.empty(), settings_.max_response_bytes);
    http_connect::ConnectRequest request;
    request.host = context().host();
    request.port = context().port();
    request.headers = settings_.headers;
    std::string bytes;
    if (settings_.username.empty()) {
      bytes = http_connect::BuildConnectRequest(request);
    } else {
      // The request gets its own copy of the password only for as long as it is being built.
      request.username = settings_.username;
      request.password.reserve(settings_.password.size());
      request.password.append(settings_.password);
      bytes = http_connect::BuildConnectRequest(request);
      auth::Wipe(request.password);
    }
    HLOG(DEBUG) << "http_connect: CONNECT " << Target()
                << (settings_.username.empty() ? "" : " with Basic proxy authentication");
    SendHandshake(bytes);
  }

  void OnHandshakeData(absl::string_view bytes) override {
    absl::StatusOr<bool> done = parser_->Feed(bytes);
    if (!done.ok()) {
      Fail(done.status());
      return;
    }
    if (!*done) return;
    HandshakeDone(parser_->TakeLeftover(),
                  absl::StrCat("tunnel to ", Target(), ": ", parser_->status_line()));
  }

  std::string HandshakeProgress() const override {
    return absl::StrCat(parser_ ? parser_->bytes_seen() : 0,
                        " bytes of the proxy's answer received");
  }

  const Settings& settings_;
  std::unique_ptr<http_connect::ConnectResponseParser> parser_;
};

class ConfiguredHttpConnect : public ConfiguredTransport {
 public:
  explicit ConfiguredHttpConnect(std::unique_ptr<Settings> settings)
      : settings_(std::move(settings)) {}
  absl::StatusOr<std::unique_ptr<Transport>> Create(ConnectContext& context,
                                                    std::unique_ptr<Transport> lower) override {
    if (lower == nullptr) {
      return absl::InvalidArgumentError(
          "http_connect: is a wrapping transport and needs the connection to the proxy below it "
          "(tcp)");
    }
    return std::unique_ptr<Transport>(
        new HttpConnectTransport(*settings_, context, std::move(lower)));
  }

 private:
  // Transports of this pipeline refer to it; the pipeline outlives them.
  const std::unique_ptr<Settings> settings_;
};

absl::StatusOr<std::unique_ptr<Settings>> MakeSettings(const HttpConnectConfig& config) {
  auto s = std::make_unique<Settings>();
  s->username = config.username();
  HUBLINK_ASSIGN_OR_RETURN(
      s->password,
      LoadProxyPassword(
          "http_connect", config.password_source_case() == HttpConnectConfig::kPasswordFile,
          config.password_source_case() == HttpConnectConfig::kPasswordFile ? config.password_file()
                                                                            : config.password()));
  if (s->username.empty() && !s->password.empty()) {
    return absl::InvalidArgumentError(
        "http_connect: a password is set but username is empty (Basic authentication needs both)");
  }
  HUBLINK_RETURN_IF_ERROR(http_connect::ValidateCredentials(s->username, s->password));
  for (int i = 0; i < config.headers_size(); ++i) {
    const auto& header = config.headers(i);
    std::string field = absl::StrCat("http_connect: headers[", i, "]");
    HUBLINK_RETURN_IF_ERROR(http_connect::ValidateHeader(header.name(), header.value(), field));
    if (http_connect::IsReservedHeader(header.name())) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": ", header.name(), " is computed by the transport and cannot be set"));
    }
    s->headers.emplace_back(header.name(), header.value());
  }
  if (config.max_response_bytes() != 0) {
    if (config.max_response_bytes() < 64) {
      return absl::InvalidArgumentError("http_connect: max_response_bytes: at least 64");
    }
    s->max_response_bytes = config.max_response_bytes();
  }
  HUBLINK_ASSIGN_OR_RETURN(s->handshake_timeout,
                           ProxyHandshakeTimeout("http_connect", config.has_handshake_timeout(),
                                                 config.handshake_timeout()));
  return s;
}

class HttpConnectFactory : public TransportFactory {
 public:
  absl::string_view name() const override { return "http_connect"; }
  const google::protobuf::Descriptor* config_type() const override {
    return HttpConnectConfig::descriptor();
  }
  Kind kind() const override { return Kind::kWrapping; }
  absl::StatusOr<std::unique_ptr<ConfiguredTransport>> Configure(
      const google::protobuf::Message& message) const override {
    HUBLINK_ASSIGN_OR_RETURN(std::unique_ptr<Settings> settings,
                             MakeSettings(static_cast<const HttpConnectConfig&>(message)));
    return std::unique_ptr<ConfiguredTransport>(new ConfiguredHttpConnect(std::move(settings)));
  }
};

}  // namespace

void RegisterHttpConnectTransport(Registry::Builder& builder) {
  builder.AddTransport(std::make_unique<HttpConnectFactory>());
}

}  // namespace hublink
