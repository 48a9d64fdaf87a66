#include "profiles/tencent/dynreg.h"

#include <fcntl.h>
#include <openssl/cipher.h>
#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "plugins/status_macros.h"
#include "profiles/tencent/json_util.h"
#include "transports/http/http_syntax.h"

namespace hublink {
namespace tencent {
namespace {

constexpr absl::string_view kPath = "/device/register";
constexpr char kIv[] = "0000000000000000";

std::string JsonEscape(absl::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

const EVP_MD* Digest(DynregAlgorithm algorithm) {
  return algorithm == DynregAlgorithm::kHmacSha1 ? EVP_sha1() : EVP_sha256();
}

std::string HexHash(DynregAlgorithm algorithm, absl::string_view data) {
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, Digest(algorithm), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
}

absl::Status CheckField(absl::string_view value, absl::string_view name) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat("dynreg: ", name, " is empty"));
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("dynreg: ", name, " contains a control character"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSecret(absl::string_view secret) {
  if (secret.size() < 16) {
    return absl::InvalidArgumentError(
        "dynreg: the product secret must have at least 16 characters (its first 16 are the AES "
        "key of the reply); copy it whole from the console's product page");
  }
  return absl::OkStatus();
}

// Runs AES-128-CBC with the product secret's key and the fixed IV; `pad` as EVP does (PKCS#7).
absl::StatusOr<std::string> Aes(absl::string_view input, absl::string_view secret, bool encrypt,
                                bool pad) {
  HUBLINK_RETURN_IF_ERROR(CheckSecret(secret));
  bssl::UniquePtr<EVP_CIPHER_CTX> ctx(EVP_CIPHER_CTX_new());
  if (!ctx || !EVP_CipherInit_ex(ctx.get(), EVP_aes_128_cbc(), nullptr,
                                 reinterpret_cast<const uint8_t*>(secret.data()),
                                 reinterpret_cast<const uint8_t*>(kIv), encrypt ? 1 : 0)) {
    return absl::InternalError("dynreg: AES-128-CBC setup failed");
  }
  EVP_CIPHER_CTX_set_padding(ctx.get(), pad ? 1 : 0);
  std::string out(input.size() + 32, '\0');
  int n1 = 0, n2 = 0;
  if (!EVP_CipherUpdate(ctx.get(), reinterpret_cast<uint8_t*>(&out[0]), &n1,
                        reinterpret_cast<const uint8_t*>(input.data()),
                        static_cast<int>(input.size())) ||
      !EVP_CipherFinal_ex(ctx.get(), reinterpret_cast<uint8_t*>(&out[n1]), &n2)) {
    return absl::DataLossError(
        "dynreg: the reply's Payload does not decrypt with this product secret (wrong secret, or "
        "not AES-128-CBC)");
  }
  out.resize(n1 + n2);
  return out;
}

absl::StatusCode CodeForError(absl::string_view code) {
  if (absl::StrContains(code, "Signature") || absl::StrContains(code, "AuthFailure")) {
    return absl::StatusCode::kUnauthenticated;
  }
  if (absl::StrContains(code, "NotFound") || absl::StrContains(code, "NotExist")) {
    return absl::StatusCode::kNotFound;
  }
  return absl::StatusCode::kPermissionDenied;
}

absl::Status WriteFileMode(const std::string& path, absl::string_view contents, mode_t mode) {
  // Written to a temporary name and renamed, so a crash never leaves half a credentials file.
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("dynreg: cannot write ", tmp));
  }
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      return absl::ErrnoToStatus(err, absl::StrCat("dynreg: cannot write ", tmp));
    }
    done += static_cast<size_t>(n);
  }
  fchmod(fd, mode);
  if (fsync(fd) != 0 || close(fd) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("dynreg: cannot write ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("dynreg: cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view DynregAlgorithmName(DynregAlgorithm algorithm) {
  return algorithm == DynregAlgorithm::kHmacSha1 ? "hmacsha1" : "hmacsha256";
}

absl::StatusOr<std::string> DynregHost(absl::string_view region) {
  if (region.empty() || region == "china")
    return std::string("ap-guangzhou.gateway.tencentdevices.com");
  if (region == "us-east") return std::string("us-east.gateway.tencentdevices.com");
  return absl::InvalidArgumentError(
      absl::StrCat("dynreg: no documented registration host for region \"", http::Sanitize(region),
                   "\" (known: china, us-east); pass --host"));
}

std::string DynregBody(absl::string_view product_id, absl::string_view device_name) {
  return absl::StrCat("{\"ProductId\":\"", JsonEscape(product_id), "\",\"DeviceName\":\"",
                      JsonEscape(device_name), "\"}");
}

std::string DynregStringToSign(const DynregParams& params, absl::string_view body) {
  return absl::StrCat("POST\n", params.host, "\n", kPath, "\n\n",
                      DynregAlgorithmName(params.algorithm), "\n", params.timestamp, "\n",
                      params.nonce, "\n", HexHash(params.algorithm, body));
}

std::string DynregSignature(const DynregParams& params, absl::string_view body) {
  const std::string text = DynregStringToSign(params, body);
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(Digest(params.algorithm), params.product_secret.data(), params.product_secret.size(),
       reinterpret_cast<const uint8_t*>(text.data()), text.size(), mac, &length);
  return absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(mac), length));
}

absl::StatusOr<http::Request> BuildDynregRequest(const DynregParams& params) {
  HUBLINK_RETURN_IF_ERROR(CheckField(params.product_id, "product id"));
  HUBLINK_RETURN_IF_ERROR(CheckField(params.device_name, "device name"));
  HUBLINK_RETURN_IF_ERROR(CheckField(params.host, "host"));
  HUBLINK_RETURN_IF_ERROR(CheckSecret(params.product_secret));
  if (params.timestamp <= 0) return absl::InvalidArgumentError("dynreg: timestamp is not set");
  http::Request request;
  request.method = "POST";
  request.target = std::string(kPath);
  request.body = DynregBody(params.product_id, params.device_name);
  request.headers = {
      {"Content-Type", "application/json; charset=utf-8"},
      {"Accept", "application/json"},
      {"X-TC-Algorithm", std::string(DynregAlgorithmName(params.algorithm))},
      {"X-TC-Timestamp", absl::StrCat(params.timestamp)},
      {"X-TC-Nonce", absl::StrCat(params.nonce)},
      {"X-TC-Signature", DynregSignature(params, request.body)},
  };
  return request;
}

absl::StatusOr<std::string> EncryptDynregPayload(absl::string_view plaintext,
                                                 absl::string_view product_secret) {
  HUBLINK_ASSIGN_OR_RETURN(std::string cipher, Aes(plaintext, product_secret, true, true));
  return absl::Base64Escape(cipher);
}

absl::StatusOr<std::string> DecryptDynregPayload(absl::string_view payload_base64,
                                                 absl::string_view product_secret) {
  HUBLINK_RETURN_IF_ERROR(CheckSecret(product_secret));
  std::string cipher;
  if (!absl::Base64Unescape(payload_base64, &cipher) || cipher.empty() || cipher.size() % 16 != 0) {
    return absl::DataLossError(
        absl::StrCat("dynreg: the reply's Payload is not base64 of whole AES blocks (",
                     cipher.size(), " bytes)"));
  }
  // Unpadded first, then the padding is judged: PKCS#7 if the last byte says so consistently,
  // else trailing NULs.
  HUBLINK_ASSIGN_OR_RETURN(std::string plain, Aes(cipher, product_secret, false, false));
  const unsigned char last = static_cast<unsigned char>(plain.back());
  bool pkcs7 = last >= 1 && last <= 16;
  for (size_t i = 0; pkcs7 && i < last; ++i) {
    pkcs7 = static_cast<unsigned char>(plain[plain.size() - 1 - i]) == last;
  }
  if (pkcs7) {
    plain.resize(plain.size() - last);
  } else {
    while (!plain.empty() && plain.back() == '\0') plain.pop_back();
  }
  return plain;
}

absl::StatusOr<DynregResult> ParseDynregResponse(const http::Response& response,
                                                 const DynregParams& params,
                                                 absl::string_view region) {
  google::protobuf::Struct reply;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const bool parsed =
      google::protobuf::util::JsonStringToMessage(response.body, &reply, options).ok();
  const google::protobuf::Value* inner = parsed ? JsonField(reply, "Response") : nullptr;
  const google::protobuf::Struct* body =
      inner != nullptr && inner->has_struct_value() ? &inner->struct_value() : nullptr;
  const google::protobuf::Value* error = body != nullptr ? JsonField(*body, "Error") : nullptr;
  if (error != nullptr && error->has_struct_value()) {
    const std::string code = JsonString(error->struct_value(), "Code");
    return absl::Status(
        CodeForError(code),
        absl::StrCat("dynreg: the hub refused the registration: ", http::Sanitize(code), ": ",
                     http::Sanitize(JsonString(error->struct_value(), "Message"))));
  }
  if (response.status_code != 200) {
    absl::StatusCode code = absl::StatusCode::kUnavailable;
    if (response.status_code == 401) code = absl::StatusCode::kUnauthenticated;
    if (response.status_code == 403) code = absl::StatusCode::kPermissionDenied;
    if (response.status_code == 404) code = absl::StatusCode::kNotFound;
    if (response.status_code >= 400 && response.status_code < 500 &&
        code == absl::StatusCode::kUnavailable) {
      code = absl::StatusCode::kInvalidArgument;
    }
    return absl::Status(
        code, absl::StrCat("dynreg: HTTP ", response.status_code, " ",
                           http::Sanitize(response.reason), ": ", http::Sanitize(response.body)));
  }
  if (body == nullptr) {
    return absl::DataLossError(absl::StrCat("dynreg: the reply is not {\"Response\":{...}}: ",
                                            http::Sanitize(response.body)));
  }
  const std::string payload = JsonString(*body, "Payload");
  if (payload.empty()) {
    return absl::DataLossError("dynreg: the reply has no Payload");
  }
  HUBLINK_ASSIGN_OR_RETURN(std::string plain, DecryptDynregPayload(payload, params.product_secret));
  google::protobuf::Struct secret;
  if (!google::protobuf::util::JsonStringToMessage(plain, &secret, options).ok()) {
    return absl::DataLossError(
        "dynreg: the decrypted Payload is not JSON (is the product secret right?)");
  }
  const google::protobuf::Value* type = JsonField(secret, "encryptionType");
  const int encryption_type =
      type != nullptr && type->kind_case() == google::protobuf::Value::kNumberValue
          ? static_cast<int>(type->number_value())
          : 0;
  DynregResult result;
  result.device.set_region(std::string(region.empty() ? "china" : region));
  result.device.set_product_id(params.product_id);
  result.device.set_device_name(params.device_name);
  if (encryption_type == 2) {
    const std::string psk = JsonString(secret, "psk");
    std::string decoded;
    if (psk.empty() || !absl::Base64Unescape(psk, &decoded) || decoded.empty()) {
      return absl::DataLossError("dynreg: the decrypted Payload has no base64 psk");
    }
    result.device.set_auth_mode("KEY");
    result.device.mutable_key_deviceinfo()->set_device_secret(psk);
  } else if (encryption_type == 1) {
    result.client_cert_pem = JsonString(secret, "clientCert");
    result.client_key_pem = JsonString(secret, "clientKey");
    if (!absl::StrContains(result.client_cert_pem, "-----BEGIN") ||
        !absl::StrContains(result.client_key_pem, "-----BEGIN")) {
      return absl::DataLossError(
          "dynreg: the decrypted Payload lacks a PEM clientCert and clientKey");
    }
    result.device.set_auth_mode("CERT");
    result.device.mutable_cert_deviceinfo()->set_dev_cert_file(
        absl::StrCat(params.device_name, "_cert.crt"));
    result.device.mutable_cert_deviceinfo()->set_dev_private_key_file(
        absl::StrCat(params.device_name, "_private.key"));
  } else {
    return absl::DataLossError(absl::StrCat("dynreg: the decrypted Payload has encryptionType ",
                                            encryption_type, "; known: 1 (certificate), 2 (key)"));
  }
  return result;
}

std::string DeviceInfoJson(const DeviceInfo& device) {
  std::string out = absl::StrCat(
      "{\n  \"auth_mode\": \"", JsonEscape(device.auth_mode()), "\",\n  \"region\": \"",
      JsonEscape(device.region()), "\",\n  \"productId\": \"", JsonEscape(device.product_id()),
      "\",\n  \"deviceName\": \"", JsonEscape(device.device_name()), "\",\n");
  if (device.auth_mode() == "CERT") {
    absl::StrAppend(&out, "  \"cert_deviceinfo\": {\n    \"devCertFile\": \"",
                    JsonEscape(device.cert_deviceinfo().dev_cert_file()),
                    "\",\n    \"devPrivateKeyFile\": \"",
                    JsonEscape(device.cert_deviceinfo().dev_private_key_file()), "\"\n  }\n}\n");
  } else {
    absl::StrAppend(&out, "  \"key_deviceinfo\": {\n    \"deviceSecret\": \"",
                    JsonEscape(device.key_deviceinfo().device_secret()), "\"\n  }\n}\n");
  }
  return out;
}

absl::Status WriteDeviceInfoFile(const DynregResult& result, const std::string& path) {
  if (result.device.auth_mode() == "CERT") {
    const size_t slash = path.rfind('/');
    const std::string dir =
        absl::StrCat(slash == std::string::npos ? "." : path.substr(0, slash), "/certs");
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::ErrnoToStatus(errno, absl::StrCat("dynreg: cannot create ", dir));
    }
    HUBLINK_RETURN_IF_ERROR(
        WriteFileMode(absl::StrCat(dir, "/", result.device.cert_deviceinfo().dev_cert_file()),
                      result.client_cert_pem, 0644));
    HUBLINK_RETURN_IF_ERROR(WriteFileMode(
        absl::StrCat(dir, "/", result.device.cert_deviceinfo().dev_private_key_file()),
        result.client_key_pem, 0600));
  }
  return WriteFileMode(path, DeviceInfoJson(result.device), 0600);
}

absl::StatusOr<DynregResult> RegisterDevice(DynregParams params, absl::string_view region,
                                            http::HttpClient& client, absl::Time deadline,
                                            ConnectContext::StageObserver observer) {
  if (params.timestamp == 0) params.timestamp = absl::ToUnixSeconds(absl::Now());
  while (params.nonce == 0) {
    RAND_bytes(reinterpret_cast<uint8_t*>(&params.nonce), sizeof(params.nonce));
    params.nonce &= 0x7fffffff;  // the SDKs send a positive 31-bit number
  }
  HUBLINK_ASSIGN_OR_RETURN(http::Request request, BuildDynregRequest(params));
  http::FetchOptions options;
  options.deadline = deadline;
  options.stage_observer = std::move(observer);
  HUBLINK_ASSIGN_OR_RETURN(http::Response response, client.Fetch(std::move(request), options));
  return ParseDynregResponse(response, params, region);
}

}  // namespace tencent
}  // namespace hublink
