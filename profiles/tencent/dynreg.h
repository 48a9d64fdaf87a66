// Tencent IoT Hub dynamic registration: a device that knows only its product's id and secret asks
// the hub for its own credentials (POST https://<region gateway>/device/register) and gets them
// AES-encrypted with the product secret. The result is the C SDK's device_info.json, which the rest
// of hublink (and the SDK) reads. Facts and sources: docs/tencent-services.md.
//
// Pure parts (string to sign, signature, request, payload decryption, device_info.json text) are
// separate from RegisterDevice(), which sends the request over an HttpClient (protocols/http), so
// they are testable with the published vector and no network.
#ifndef HUBLINK_PROFILES_TENCENT_DYNREG_H_
#define HUBLINK_PROFILES_TENCENT_DYNREG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "profiles/tencent/device_info.pb.h"
#include "protocols/http/codec.h"
#include "protocols/http/http_client.h"

namespace hublink {
namespace tencent {

using profiles::tencent::DeviceInfo;

enum class DynregAlgorithm {
  kHmacSha256,  // "hmacsha256": the body hashed with SHA-256 (the SDKs' default)
  kHmacSha1,    // "hmacsha1": the body hashed with SHA-1 (the published sign tool's vector)
};
absl::string_view DynregAlgorithmName(DynregAlgorithm algorithm);

struct DynregParams {
  std::string product_id;
  std::string product_secret;
  std::string device_name;
  // The host named in the string to sign: the gateway's name (DynregHost), or the name the
  // request is sent to when --host overrides it. No port.
  std::string host;
  DynregAlgorithm algorithm = DynregAlgorithm::kHmacSha256;
  int64_t timestamp = 0;  // Unix seconds; the hub refuses stale ones
  uint32_t nonce = 0;     // random per request
};

// The documented gateway for `region` ("china" or empty: ap-guangzhou.gateway.tencentdevices.com,
// "us-east": us-east.gateway.tencentdevices.com). kInvalidArgument for a region with no documented
// registration host (pass the host explicitly then).
absl::StatusOr<std::string> DynregHost(absl::string_view region);

// {"ProductId":"<pid>","DeviceName":"<dn>"}, JSON-escaped.
std::string DynregBody(absl::string_view product_id, absl::string_view device_name);
// POST\n<host>\n/device/register\n\n<algorithm>\n<timestamp>\n<nonce>\n<lower-hex hash of body>
std::string DynregStringToSign(const DynregParams& params, absl::string_view body);
// Base64(HMAC(product secret, string to sign)).
std::string DynregSignature(const DynregParams& params, absl::string_view body);
// The whole request: body, Content-Type and the X-TC-* headers. kInvalidArgument for a missing or
// malformed field (a product secret shorter than 16 characters cannot key the reply's AES).
absl::StatusOr<http::Request> BuildDynregRequest(const DynregParams& params);

// AES-128-CBC, key = the product secret's first 16 characters, IV = sixteen ASCII '0', as the hub
// encrypts the reply's Payload. Encrypt pads with PKCS#7 (what `openssl enc` does); Decrypt takes
// base64 and accepts PKCS#7 or zero padding (the hub's padding is undocumented; one official SDK
// strips NULs).
absl::StatusOr<std::string> EncryptDynregPayload(absl::string_view plaintext,
                                                 absl::string_view product_secret);
absl::StatusOr<std::string> DecryptDynregPayload(absl::string_view payload_base64,
                                                 absl::string_view product_secret);

struct DynregResult {
  DeviceInfo device;            // auth_mode, region, productId, deviceName (+ deviceSecret)
  std::string client_cert_pem;  // CERT devices
  std::string client_key_pem;
};

// Reads the hub's reply: {"Response":{"Len":..,"Payload":"<base64>","RequestId":..}}, or an error
// {"Response":{"Error":{"Code":..,"Message":..}}}. Codes: kUnauthenticated for a refused signature,
// kNotFound for an unknown product, kPermissionDenied for other refusals (registration disabled,
// device exists), kDataLoss for a reply that does not parse or decrypt.
absl::StatusOr<DynregResult> ParseDynregResponse(const http::Response& response,
                                                 const DynregParams& params,
                                                 absl::string_view region);

// Writes `result` as the C SDK's device_info.json at `path` (mode 0600); a CERT device's
// certificate and key go beside it as certs/<dn>_cert.crt and certs/<dn>_private.key, named
// relative to the file as the SDK expects. The product secret is not written.
absl::Status WriteDeviceInfoFile(const DynregResult& result, const std::string& path);
std::string DeviceInfoJson(const DeviceInfo& device);

// Signs `params` (timestamp and nonce filled in when 0) and sends the request with `client`,
// whose pipeline reaches the registration host. The whole exchange ends by `deadline`.
// `observer`, when set, sees each connection milestone (for -v).
absl::StatusOr<DynregResult> RegisterDevice(
    DynregParams params, absl::string_view region, http::HttpClient& client, absl::Time deadline,
    ConnectContext::StageObserver observer = ConnectContext::StageObserver());

}  // namespace tencent
}  // namespace hublink

#endif  // HUBLINK_PROFILES_TENCENT_DYNREG_H_
