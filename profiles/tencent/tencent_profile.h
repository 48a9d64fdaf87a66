// Tencent Cloud IoT Hub as a hublink pipeline: reads the C SDK's device_info.json unchanged and
// composes the transports, the MQTT protocol and the signer that the hub expects.
//
//   device  transport        port  stack                                        signer
//   KEY     WSS (default)    443   tcp > tls (system roots) > websocket "mqtt"  hmac (HMAC-SHA1)
//   CERT    WSS (default)    443   tcp > tls > websocket "mqtt"                 rsa (RSA-SHA256)
//   any     WS                80   tcp > websocket "mqtt"
//   KEY     TLS             8883   tcp > tls (TLS-PSK with the device secret, TLS 1.2)
//   CERT    TLS             8883   tcp > tls (mutual TLS with the device certificate)
//   any     TCP             1883   tcp
//   any     AUTO                   TLS 8883, then WSS 443 (then WS 80 with allow_plain_websocket)
//
// Every stack carries the "mqtt" protocol; the signer column applies to all of a device's rows.
#ifndef HUBLINK_PROFILES_TENCENT_TENCENT_PROFILE_H_
#define HUBLINK_PROFILES_TENCENT_TENCENT_PROFILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "plugins/pipeline.pb.h"
#include "profiles/tencent/device_info.pb.h"

namespace hublink {
namespace tencent {

using profiles::tencent::DeviceInfo;
using profiles::tencent::ProfileOptions;

// Parses device_info.json text. Errors name `source` and the problem.
absl::StatusOr<DeviceInfo> ParseDeviceInfo(absl::string_view json, absl::string_view source);
// Reads and validates a device_info.json; relative certificate paths are resolved against the
// file's directory (then its certs/ subdirectory, where the SDK keeps them) and made absolute.
absl::StatusOr<DeviceInfo> ReadDeviceInfo(const std::string& path);

// Checks the fields the chosen mode needs; errors name the JSON key ("productId: missing").
absl::Status ValidateDeviceInfo(const DeviceInfo& info);

// The broker host for `region` and transport: "<productId>.<domain>". kInvalidArgument for an
// unknown region (the SDK silently uses china; we say so instead).
absl::StatusOr<std::string> BrokerHost(const DeviceInfo& info, ProfileOptions::Transport transport);
uint32_t DefaultPort(ProfileOptions::Transport transport);

// The whole pipeline for `info`, ready for ResolvedPipeline::Resolve.
absl::StatusOr<Pipeline> BuildPipeline(const DeviceInfo& info, const ProfileOptions& options);

// Topics the SDK sample uses.
std::string DataTopic(const DeviceInfo& info);          // <pid>/<dn>/data
std::string SysOperationTopic(const DeviceInfo& info);  // $sys/operation/<pid>/<dn>
std::string SysResultTopic(const DeviceInfo& info);     // $sys/operation/result/<pid>/<dn>

}  // namespace tencent
}  // namespace hublink

#endif  // HUBLINK_PROFILES_TENCENT_TENCENT_PROFILE_H_
