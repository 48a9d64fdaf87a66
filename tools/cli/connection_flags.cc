#include "tools/cli/connection_flags.h"

#include <unistd.h>

#include <fstream>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "plugins/pipeline.h"
#include "plugins/status_macros.h"
#include "protocols/mqtt/mqtt.pb.h"
#include "tools/cli/proxy_flags.h"
#include "transports/tcp/tcp.pb.h"
#include "transports/tls/tls.pb.h"
#include "transports/websocket/websocket.pb.h"

namespace hublink {
namespace cli {
namespace {

using tencent::ProfileOptions;

absl::StatusOr<ProfileOptions::Transport> ParseTransport(const std::string& name) {
  std::string lower = absl::AsciiStrToLower(name);
  if (lower == "wss") return ProfileOptions::WSS;
  if (lower == "ws") return ProfileOptions::WS;
  if (lower == "tls") return ProfileOptions::TLS;
  if (lower == "tcp") return ProfileOptions::TCP;
  if (lower == "auto") return ProfileOptions::AUTO;
  return absl::InvalidArgumentError(
      absl::StrCat("--transport: \"", name, "\" is not one of wss, ws, tls, tcp, auto"));
}

// Applies --ca_file/--insecure to every "tls" layer and the MQTT credential flags to the protocol.
absl::Status ApplyOverrides(const ConnectionFlags& flags, Pipeline& pipeline) {
  // --host, --ca_file and --insecure speak of the service, so they hold for every stack; a port
  // belongs to one stack.
  if (!flags.host.empty()) pipeline.mutable_endpoint()->set_host(flags.host);
  for (Stack& alternative : *pipeline.mutable_alternatives()) {
    if (!flags.host.empty()) alternative.mutable_endpoint()->set_host(flags.host);
  }
  if (flags.port != 0 && pipeline.alternatives_size() > 0) {
    return absl::InvalidArgumentError(
        "--port: the pipeline has alternative stacks (--transport=auto), each on its own port; "
        "give one --transport to override the port");
  }
  if (flags.port != 0) {
    if (flags.port < 0 || flags.port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("--port: ", flags.port, " is not a port"));
    }
    pipeline.mutable_endpoint()->set_port(flags.port);
  }
  bool any_tls = false;
  std::vector<PluginConfig*> layers;
  for (PluginConfig& layer : *pipeline.mutable_transports()) layers.push_back(&layer);
  for (Stack& alternative : *pipeline.mutable_alternatives()) {
    for (PluginConfig& layer : *alternative.mutable_transports()) layers.push_back(&layer);
  }
  for (PluginConfig* layer_pointer : layers) {
    PluginConfig& layer = *layer_pointer;
    transports::TlsConfig tls;
    bool is_tls = layer.typed_config().Is<transports::TlsConfig>() ||
                  (!layer.has_typed_config() && layer.name() == "tls");
    if (!is_tls) continue;
    any_tls = true;
    if (layer.has_typed_config() && !layer.typed_config().UnpackTo(&tls)) {
      return absl::InvalidArgumentError("tls layer: typed_config does not decode");
    }
    if (!flags.ca_file.empty()) tls.set_ca_file(flags.ca_file);
    if (flags.insecure) tls.set_insecure_skip_verify(true);
    layer.mutable_typed_config()->PackFrom(tls);
  }
  if (!any_tls && (flags.insecure || !flags.ca_file.empty())) {
    return absl::InvalidArgumentError(
        "--ca_file/--insecure: the pipeline has no tls layer (use --transport=wss or tls)");
  }
  if (!flags.client_id.empty() || !flags.username.empty() || !flags.password.empty() ||
      flags.keep_alive > 0) {
    protocols::MqttConfig mqtt;
    if (pipeline.protocol().has_typed_config() &&
        !pipeline.protocol().typed_config().UnpackTo(&mqtt)) {
      return absl::InvalidArgumentError(
          "--client_id/--username/--password: the pipeline's protocol is not mqtt");
    }
    if (!flags.client_id.empty()) mqtt.set_client_id(flags.client_id);
    if (!flags.username.empty()) mqtt.set_username(flags.username);
    if (!flags.password.empty()) mqtt.set_password(flags.password);
    if (flags.keep_alive > 0) mqtt.mutable_keep_alive()->set_seconds(flags.keep_alive);
    if (pipeline.protocol().name().empty()) pipeline.mutable_protocol()->set_name("mqtt");
    pipeline.mutable_protocol()->mutable_typed_config()->PackFrom(mqtt);
  }
  return absl::OkStatus();
}

// The proxy the flags and the environment choose for `pipeline` (whose stacks are secure when the
// main one has a tls layer).
absl::StatusOr<absl::optional<ProxyUrl>> ProxyFor(const ConnectionFlags& flags,
                                                  const Pipeline& pipeline) {
  bool secure = false;
  for (const PluginConfig& layer : pipeline.transports()) {
    secure |= layer.typed_config().Is<transports::TlsConfig>() || layer.name() == "tls";
  }
  absl::optional<std::string> flag;
  if (flags.proxy != ConnectionFlags::kProxyUnset) flag = flags.proxy;
  return ChooseProxy(flag, flags.no_proxy, secure, pipeline.endpoint().host(), ProcessEnv);
}

}  // namespace

void ConnectionFlags::Register(FlagParser& parser) {
  parser.AddString("pipeline", &pipeline, "pipeline file (text format, or .json)");
  parser.AddString("device_info", &device_info, "Tencent C SDK device_info.json");
  parser.AddString("transport", &transport,
                   "wss (default with --device_info), ws, tls, tcp, or auto (--device_info: TLS "
                   "8883, then WSS 443, remembering which worked)");
  parser.AddBool("allow_plain_fallback", &allow_plain_fallback,
                 "with --transport=auto: try unencrypted WS on port 80 last");
  parser.AddString("state_file", &state_file,
                   "remember in FILE which of the pipeline's stacks last reached CONNACK, and "
                   "start there next time");
  parser.AddString("host", &host, "override the broker host");
  parser.AddInt("port", &port, "override the broker port");
  parser.AddString("ca_file", &ca_file,
                   "trust these CA certificates (PEM) instead of the system's");
  parser.AddBool("insecure", &insecure, "do not verify the server certificate (logs a warning)");
  parser.AddString("client_id", &client_id, "MQTT client id (plain brokers)");
  parser.AddString("username", &username, "MQTT username (plain brokers)");
  parser.AddString("password", &password, "MQTT password (plain brokers; never logged)");
  parser.AddInt("keep_alive", &keep_alive, "MQTT keep-alive in seconds");
  parser.AddString("sdkappid", &sdkappid, "Tencent sdkappid in the username (default 21010406)");
  parser.AddInt("signature_ttl", &signature_ttl,
                "seconds each Tencent signature stays valid (default: never expires, as the SDK)");
  parser.AddString("proxy", &proxy,
                   "http://, socks5:// or socks5h://[user:pass@]host:port (empty: none; default: "
                   "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY with NO_PROXY)");
  parser.AddBool("no_proxy", &no_proxy, "connect directly, whatever the environment says");
}

std::string PipelineSource(const ConnectionFlags& flags) {
  if (!flags.pipeline.empty()) return flags.pipeline;
  if (!flags.device_info.empty()) return flags.device_info;
  return "command-line flags";
}

absl::StatusOr<Pipeline> BuildPipeline(const ConnectionFlags& flags, tencent::DeviceInfo* device,
                                       const Registry* registry) {
  if (!flags.pipeline.empty() && !flags.device_info.empty()) {
    return absl::InvalidArgumentError("give --pipeline or --device_info, not both");
  }
  Pipeline pipeline;
  if (!flags.pipeline.empty()) {
    HUBLINK_ASSIGN_OR_RETURN(pipeline, ReadPipelineFile(flags.pipeline, registry));
    if (!flags.transport.empty()) {
      return absl::InvalidArgumentError(
          "--transport: the pipeline file already says which transports to use");
    }
  } else if (!flags.device_info.empty()) {
    HUBLINK_ASSIGN_OR_RETURN(tencent::DeviceInfo info, tencent::ReadDeviceInfo(flags.device_info));
    ProfileOptions options;
    if (!flags.transport.empty()) {
      HUBLINK_ASSIGN_OR_RETURN(ProfileOptions::Transport transport,
                               ParseTransport(flags.transport));
      options.set_transport(transport);
    }
    if (!flags.sdkappid.empty()) options.set_sdkappid(flags.sdkappid);
    if (flags.signature_ttl > 0) options.set_signature_ttl_seconds(flags.signature_ttl);
    if (flags.keep_alive > 0) options.set_keep_alive_seconds(flags.keep_alive);
    options.set_allow_plain_websocket(flags.allow_plain_fallback);
    auto built = tencent::BuildPipeline(info, options);
    if (!built.ok()) return Annotate(built.status(), flags.device_info);
    pipeline = *std::move(built);
    if (device != nullptr) *device = info;
  } else {
    if (flags.host.empty() || flags.port == 0) {
      return absl::InvalidArgumentError(
          "say where to connect: --pipeline=FILE, --device_info=FILE, or --host and --port");
    }
    ProfileOptions::Transport transport = ProfileOptions::TCP;
    if (!flags.transport.empty()) {
      HUBLINK_ASSIGN_OR_RETURN(transport, ParseTransport(flags.transport));
    }
    if (transport == ProfileOptions::AUTO) {
      return absl::InvalidArgumentError(
          "--transport=auto: only with --device_info (a plain broker's ports are not known)");
    }
    pipeline.add_transports()->set_name("tcp");
    if (transport == ProfileOptions::TLS || transport == ProfileOptions::WSS) {
      pipeline.add_transports()->set_name("tls");
    }
    if (transport == ProfileOptions::WS || transport == ProfileOptions::WSS) {
      pipeline.add_transports()->set_name("websocket");
    }
    protocols::MqttConfig mqtt;
    // Unique per invocation: a broker drops the older of two connections with the same client id.
    absl::BitGen random;
    mqtt.set_client_id(
        absl::StrCat("hublink-", getpid(), "-", absl::Hex(absl::Uniform<uint32_t>(random))));
    pipeline.mutable_protocol()->set_name("mqtt");
    pipeline.mutable_protocol()->mutable_typed_config()->PackFrom(mqtt);
  }
  if (flags.allow_plain_fallback && flags.transport != "auto") {
    return absl::InvalidArgumentError("--allow_plain_fallback: only with --transport=auto");
  }
  if (!flags.state_file.empty()) pipeline.mutable_policy()->set_state_file(flags.state_file);
  HUBLINK_RETURN_IF_ERROR(ApplyOverrides(flags, pipeline));
  HUBLINK_ASSIGN_OR_RETURN(absl::optional<ProxyUrl> proxy, ProxyFor(flags, pipeline));
  if (proxy.has_value()) HUBLINK_RETURN_IF_ERROR(InsertProxy(*proxy, pipeline));
  return pipeline;
}

absl::Status WritePipeline(const Pipeline& pipeline, const std::string& destination,
                           std::ostream& stdout_stream, const ConnectionFlags* flags) {
  std::string text = PipelineToText(pipeline);
  if (flags != nullptr) {
    absl::StatusOr<absl::optional<ProxyUrl>> proxy = ProxyFor(*flags, pipeline);
    if (proxy.ok() && proxy->has_value())
      text = PipelineToText(MaskProxyPassword(pipeline, **proxy));
  }
  if (destination == "-") {
    stdout_stream << text;
    return absl::OkStatus();
  }
  std::ofstream file(destination);
  file << text;
  file.close();
  if (!file) return absl::PermissionDeniedError(absl::StrCat("cannot write ", destination));
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace hublink
