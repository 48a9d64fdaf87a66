#include "profiles/tencent/tencent_profile.h"

#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "auth/hmac/hmac.pb.h"
#include "auth/rsa/rsa.pb.h"
#include "google/protobuf/util/json_util.h"
#include "plugins/read_file.h"
#include "plugins/status_macros.h"
#include "protocols/mqtt/mqtt.pb.h"
#include "transports/tcp/tcp.pb.h"
#include "transports/tls/tls.pb.h"
#include "transports/websocket/websocket.pb.h"

namespace hublink {
namespace tencent {
namespace {

struct Region {
  absl::string_view name;
  absl::string_view websocket_domain;
  absl::string_view mqtt_domain;
};

// From the SDK's region table (docs/tencent-iothub.md, "Endpoints"): WebSocket and plain MQTT use
// different domains.
constexpr Region kRegions[] = {
    {"china", "ap-guangzhou.iothub.tencentdevices.com", "iotcloud.tencentdevices.com"},
    {"us-east", "us-east.iothub.tencentdevices.com", "us-east.iotcloud.tencentdevices.com"},
    {"europe", "europe.iothub.tencentdevices.com", "europe.iothub.tencentdevices.com"},
    {"ap-bangkok", "ap-bangkok.iothub.tencentdevices.com", "ap-bangkok.iothub.tencentdevices.com"},
};

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string Absolute(const std::string& path) {
  if (absl::StartsWith(path, "/")) return path;
  char cwd[4096];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  return absl::StrCat(cwd, "/", path);
}

// The SDK looks for certificate files under certs/; we also accept them next to the json.
absl::StatusOr<std::string> ResolveCertPath(const std::string& name, const std::string& dir,
                                            absl::string_view key) {
  if (name.empty())
    return absl::InvalidArgumentError(absl::StrCat("cert_deviceinfo.", key, ": missing"));
  if (absl::StartsWith(name, "/")) return name;
  for (const std::string& candidate :
       {absl::StrCat(dir, "/", name), absl::StrCat(dir, "/certs/", name)}) {
    if (FileExists(candidate)) return Absolute(candidate);
  }
  return absl::NotFoundError(absl::StrCat("cert_deviceinfo.", key, ": ", name, " not found in ",
                                          dir, " or ", dir, "/certs"));
}

template <typename Message>
google::protobuf::Any Pack(const Message& message) {
  google::protobuf::Any any;
  any.PackFrom(message);
  return any;
}

}  // namespace

absl::StatusOr<DeviceInfo> ParseDeviceInfo(absl::string_view json, absl::string_view source) {
  DeviceInfo info;
  google::protobuf::util::JsonParseOptions options;
  // SDK versions add keys over time (gateway and dynamic-registration fields); they are not ours to
  // reject.
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(std::string(json), &info, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a device_info.json: ", status.message().as_string()));
  }
  return info;
}

absl::Status ValidateDeviceInfo(const DeviceInfo& info) {
  if (info.product_id().empty()) return absl::InvalidArgumentError("productId: missing");
  if (info.device_name().empty()) return absl::InvalidArgumentError("deviceName: missing");
  if (info.product_id().size() > 10) {
    return absl::InvalidArgumentError(
        absl::StrCat("productId: \"", info.product_id(), "\" is longer than 10 characters"));
  }
  if (info.device_name().size() > 48) {
    return absl::InvalidArgumentError("deviceName: longer than 48 characters");
  }
  std::string mode = absl::AsciiStrToUpper(info.auth_mode());
  if (mode == "KEY") {
    if (info.key_deviceinfo().device_secret().empty()) {
      return absl::InvalidArgumentError("key_deviceinfo.deviceSecret: missing (auth_mode is KEY)");
    }
  } else if (mode == "CERT") {
    if (info.cert_deviceinfo().dev_cert_file().empty()) {
      return absl::InvalidArgumentError("cert_deviceinfo.devCertFile: missing (auth_mode is CERT)");
    }
    if (info.cert_deviceinfo().dev_private_key_file().empty()) {
      return absl::InvalidArgumentError(
          "cert_deviceinfo.devPrivateKeyFile: missing (auth_mode is CERT)");
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("auth_mode: \"", info.auth_mode(), "\" is neither \"KEY\" nor \"CERT\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<DeviceInfo> ReadDeviceInfo(const std::string& path) {
  HUBLINK_ASSIGN_OR_RETURN(std::string contents, ReadFileContents(path, "device info"));
  HUBLINK_ASSIGN_OR_RETURN(DeviceInfo info, ParseDeviceInfo(contents, path));
  if (absl::Status status = ValidateDeviceInfo(info); !status.ok()) return Annotate(status, path);
  if (absl::AsciiStrToUpper(info.auth_mode()) == "CERT") {
    std::string dir = Dirname(path);
    auto* cert = info.mutable_cert_deviceinfo();
    auto cert_path = ResolveCertPath(cert->dev_cert_file(), dir, "devCertFile");
    if (!cert_path.ok()) return Annotate(cert_path.status(), path);
    auto key_path = ResolveCertPath(cert->dev_private_key_file(), dir, "devPrivateKeyFile");
    if (!key_path.ok()) return Annotate(key_path.status(), path);
    cert->set_dev_cert_file(*cert_path);
    cert->set_dev_private_key_file(*key_path);
  }
  return info;
}

absl::StatusOr<std::string> BrokerHost(const DeviceInfo& info,
                                       ProfileOptions::Transport transport) {
  // Not a ternary: mixing "china" with a std::string would view a temporary copy.
  absl::string_view region = info.region();
  if (region.empty()) region = "china";
  for (const Region& candidate : kRegions) {
    if (candidate.name != region) continue;
    bool websocket = transport == ProfileOptions::WSS || transport == ProfileOptions::WS;
    return absl::StrCat(info.product_id(), ".",
                        websocket ? candidate.websocket_domain : candidate.mqtt_domain);
  }
  std::string known;
  for (const Region& candidate : kRegions)
    absl::StrAppend(&known, known.empty() ? "" : ", ", candidate.name);
  return absl::InvalidArgumentError(
      absl::StrCat("region: unknown region \"", region, "\"; known: ", known));
}

uint32_t DefaultPort(ProfileOptions::Transport transport) {
  switch (transport) {
    case ProfileOptions::WSS:
      return 443;
    case ProfileOptions::WS:
      return 80;
    case ProfileOptions::TLS:
      return 8883;
    case ProfileOptions::TCP:
      return 1883;
    default:
      return 443;
  }
}

namespace {

// AUTO: the TLS pipeline, with WSS (and, when allowed, WS) as alternatives, each on its default
// port and with its own budget.
absl::StatusOr<Pipeline> BuildAutoPipeline(const DeviceInfo& info, const ProfileOptions& options) {
  if (options.port() != 0) {
    return absl::InvalidArgumentError(
        "port: transport AUTO tries each documented port in turn (8883, 443, 80); a port "
        "override needs one transport");
  }
  ProfileOptions stack_options = options;
  stack_options.set_allow_plain_websocket(false);
  stack_options.set_transport(ProfileOptions::TLS);
  HUBLINK_ASSIGN_OR_RETURN(Pipeline pipeline, BuildPipeline(info, stack_options));
  const absl::Duration kConnectBudget = absl::Seconds(5);
  const absl::Duration kHandshakeBudget = absl::Seconds(10);
  auto set = [](google::protobuf::Duration* d, absl::Duration value) {
    d->set_seconds(absl::ToInt64Seconds(value));
  };
  set(pipeline.mutable_policy()->mutable_connect_timeout(), kConnectBudget);
  set(pipeline.mutable_policy()->mutable_handshake_timeout(), kHandshakeBudget);
  std::vector<ProfileOptions::Transport> fallbacks = {ProfileOptions::WSS};
  if (options.allow_plain_websocket()) fallbacks.push_back(ProfileOptions::WS);
  for (ProfileOptions::Transport transport : fallbacks) {
    stack_options.set_transport(transport);
    HUBLINK_ASSIGN_OR_RETURN(Pipeline fallback, BuildPipeline(info, stack_options));
    Stack* stack = pipeline.add_alternatives();
    *stack->mutable_endpoint() = fallback.endpoint();
    *stack->mutable_transports() = fallback.transports();
    set(stack->mutable_connect_timeout(), kConnectBudget);
    set(stack->mutable_handshake_timeout(), kHandshakeBudget);
  }
  return pipeline;
}

}  // namespace

absl::StatusOr<Pipeline> BuildPipeline(const DeviceInfo& info, const ProfileOptions& options) {
  HUBLINK_RETURN_IF_ERROR(ValidateDeviceInfo(info));
  if (options.transport() == ProfileOptions::AUTO) return BuildAutoPipeline(info, options);
  if (options.allow_plain_websocket()) {
    return absl::InvalidArgumentError(
        "allow_plain_websocket: only means something with transport AUTO");
  }
  const bool key_device = absl::AsciiStrToUpper(info.auth_mode()) == "KEY";
  const ProfileOptions::Transport transport = options.transport();

  Pipeline pipeline;
  if (options.host().empty()) {
    HUBLINK_ASSIGN_OR_RETURN(std::string host, BrokerHost(info, transport));
    pipeline.mutable_endpoint()->set_host(host);
  } else {
    pipeline.mutable_endpoint()->set_host(options.host());
  }
  pipeline.mutable_endpoint()->set_port(options.port() ? options.port() : DefaultPort(transport));

  PluginConfig* tcp = pipeline.add_transports();
  tcp->set_name("tcp");
  tcp->mutable_typed_config()->PackFrom(transports::TcpConfig());

  if (transport == ProfileOptions::WSS || transport == ProfileOptions::TLS) {
    transports::TlsConfig tls;
    if (!options.ca_file().empty()) tls.set_ca_file(options.ca_file());
    if (options.insecure()) tls.set_insecure_skip_verify(true);
    if (transport == ProfileOptions::TLS) {
      if (key_device) {
        // Key devices on 8883 authenticate the TLS session itself with the device secret (TLS-PSK).
        tls.mutable_psk()->set_identity(absl::StrCat(info.product_id(), info.device_name()));
        tls.mutable_psk()->set_key_base64(info.key_deviceinfo().device_secret());
        tls.set_min_version(transports::TlsConfig::TLS1_2);
        tls.set_max_version(transports::TlsConfig::TLS1_2);
        tls.clear_ca_file();
        tls.set_insecure_skip_verify(false);
      } else {
        tls.set_cert_file(info.cert_deviceinfo().dev_cert_file());
        tls.set_key_file(info.cert_deviceinfo().dev_private_key_file());
      }
    }
    PluginConfig* layer = pipeline.add_transports();
    layer->set_name("tls");
    layer->mutable_typed_config()->PackFrom(tls);
  }
  if (transport == ProfileOptions::WSS || transport == ProfileOptions::WS) {
    transports::WebSocketConfig websocket;
    websocket.set_path("/");
    websocket.add_subprotocols("mqtt");
    PluginConfig* layer = pipeline.add_transports();
    layer->set_name("websocket");
    layer->mutable_typed_config()->PackFrom(websocket);
  }

  protocols::MqttConfig mqtt;
  mqtt.set_client_id(absl::StrCat(info.product_id(), info.device_name()));
  mqtt.mutable_keep_alive()->set_seconds(options.keep_alive_seconds() ? options.keep_alive_seconds()
                                                                      : 120);
  mqtt.set_clean_session(true);
  // The hub speaks MQTT 3.1.1 without QoS 2, retained or will messages (the SDK refuses QoS 2 in
  // IOT_MQTT_Publish/Subscribe and has no will or retain option); it drops the connection on them,
  // so hublink refuses them up front with an error that names the hub.
  mqtt.mutable_broker()->set_name("Tencent IoT Hub");
  mqtt.mutable_broker()->set_max_qos(1);
  mqtt.mutable_broker()->set_retain_available(false);
  mqtt.mutable_broker()->set_will_available(false);
  pipeline.mutable_protocol()->set_name("mqtt");
  pipeline.mutable_protocol()->mutable_typed_config()->PackFrom(mqtt);

  auth::TencentIdentity identity;
  identity.set_product_id(info.product_id());
  identity.set_device_name(info.device_name());
  if (!options.sdkappid().empty()) identity.set_sdkappid(options.sdkappid());
  if (options.signature_ttl_seconds() > 0)
    identity.mutable_ttl()->set_seconds(options.signature_ttl_seconds());
  if (key_device) {
    auth::HmacSignerConfig hmac;
    *hmac.mutable_identity() = identity;
    hmac.set_device_secret(info.key_deviceinfo().device_secret());
    pipeline.mutable_signer()->set_name("hmac");
    pipeline.mutable_signer()->mutable_typed_config()->PackFrom(hmac);
  } else {
    auth::RsaSignerConfig rsa;
    *rsa.mutable_identity() = identity;
    rsa.set_private_key_file(info.cert_deviceinfo().dev_private_key_file());
    pipeline.mutable_signer()->set_name("rsa");
    pipeline.mutable_signer()->mutable_typed_config()->PackFrom(rsa);
  }

  // The SDK gives up after about a minute; a device should not.
  ReconnectPolicy* reconnect = pipeline.mutable_policy()->mutable_reconnect();
  reconnect->mutable_initial_delay()->set_seconds(1);
  reconnect->mutable_max_delay()->set_seconds(60);
  reconnect->set_multiplier(2.0);
  reconnect->set_jitter(0.5);
  pipeline.mutable_policy()->mutable_connect_timeout()->set_seconds(10);
  pipeline.mutable_policy()->mutable_handshake_timeout()->set_seconds(20);
  return pipeline;
}

std::string DataTopic(const DeviceInfo& info) {
  return absl::StrCat(info.product_id(), "/", info.device_name(), "/data");
}
std::string SysOperationTopic(const DeviceInfo& info) {
  return absl::StrCat("$sys/operation/", info.product_id(), "/", info.device_name());
}
std::string SysResultTopic(const DeviceInfo& info) {
  return absl::StrCat("$sys/operation/result/", info.product_id(), "/", info.device_name());
}

}  // namespace tencent
}  // namespace hublink
