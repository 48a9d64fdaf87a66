// The flags every hublink tool uses to say where and how to connect, and the pipeline they make:
//
//   --pipeline=FILE              a pipeline file (text format or .json), used as is but for
//                                overrides
//   --device_info=FILE           a Tencent C SDK device_info.json, through profiles/tencent
//   --transport=wss|ws|tls|tcp|auto
//                                with --device_info (default wss), or for a plain broker (not
//                                auto); auto: TLS 8883, then WSS 443
//   --allow_plain_fallback       with --transport=auto: WS 80 last
//   --state_file=FILE            start at the stack that last reached CONNACK (policy.state_file)
//   --host, --port               override the endpoint
//   --ca_file=FILE, --insecure   server verification for tls/wss
//   --client_id, --username, --password
//                                plain MQTT credentials (no signer), e.g. a hub console account
//   --proxy=URL, --no_proxy      an HTTP or SOCKS5 proxy (proxy_flags.h); without --proxy,
//                                HTTPS_PROXY / HTTP_PROXY / ALL_PROXY and NO_PROXY
#ifndef HUBLINK_TOOLS_CLI_CONNECTION_FLAGS_H_
#define HUBLINK_TOOLS_CLI_CONNECTION_FLAGS_H_

#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "plugins/pipeline.pb.h"
#include "plugins/registry.h"
#include "profiles/tencent/tencent_profile.h"
#include "tools/cli/flags.h"

namespace hublink {
namespace cli {

struct ConnectionFlags {
  std::string pipeline;
  std::string device_info;
  std::string transport;
  std::string host;
  int port = 0;
  std::string ca_file;
  bool insecure = false;
  std::string client_id;
  std::string username;
  std::string password;
  int keep_alive = 0;
  std::string sdkappid;
  int signature_ttl = 0;
  // kProxyUnset: not given (the environment decides); "": no proxy.
  std::string proxy = kProxyUnset;
  bool no_proxy = false;
  bool allow_plain_fallback = false;  // --transport=auto: WS 80 last
  std::string state_file;             // policy.state_file

  static constexpr const char* kProxyUnset = "\x01unset";
  void Register(FlagParser& parser);
};

// The pipeline the flags describe. With --device_info, `device` (when non-null) receives the parsed
// device info. Errors name the flag or file at fault; with `registry`, an unknown config type in a
// --pipeline file is matched against its plugins ("did you mean ...", which plugin).
absl::StatusOr<Pipeline> BuildPipeline(const ConnectionFlags& flags,
                                       tencent::DeviceInfo* device = nullptr,
                                       const Registry* registry = nullptr);

// The name every error about the pipeline carries: the --pipeline file, the --device_info file it
// was made from, or "command-line flags".
std::string PipelineSource(const ConnectionFlags& flags);

// Writes `pipeline` as text format to `destination`, or to `stdout_stream` when it is "-" (what
// --dump_pipeline does in every tool). kPermissionDenied names the path it could not write. With
// `flags`, a proxy password that came from --proxy or the environment is written as "***".
absl::Status WritePipeline(const Pipeline& pipeline, const std::string& destination,
                           std::ostream& stdout_stream, const ConnectionFlags* flags = nullptr);

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_CONNECTION_FLAGS_H_
