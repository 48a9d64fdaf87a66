#include "auth/hmac/hmac_signer.h"

#include <openssl/base64.h>
#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "auth/hmac/hmac.pb.h"
#include "auth/secret_file.h"
#include "auth/tencent_credentials.h"
#include "plugins/log.h"
#include "plugins/status_macros.h"

namespace hublink {
namespace {

using auth::HmacSignerConfig;

constexpr absl::string_view kStage = "hmac";

struct Algorithm {
  const EVP_MD* (*md)();
  absl::string_view suffix;  // also the canonical name
};

absl::StatusOr<Algorithm> ParseAlgorithm(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower.empty() || lower == "hmacsha1" || lower == "sha1")
    return Algorithm{EVP_sha1, "hmacsha1"};
  if (lower == "hmacsha256" || lower == "sha256") return Algorithm{EVP_sha256, "hmacsha256"};
  return absl::InvalidArgumentError(
      absl::StrCat(kStage, ": algorithm: unknown \"", absl::CHexEscape(name),
                   "\"; expected \"hmacsha1\" (default) or \"hmacsha256\""));
}

// The base64 text of the secret and where it came from (for messages; never the secret itself).
struct SecretText {
  std::string base64;
  std::string source;
};

absl::StatusOr<SecretText> LoadSecretText(const HmacSignerConfig& config) {
  switch (config.device_secret_source_case()) {
    case HmacSignerConfig::kDeviceSecret:
      return SecretText{config.device_secret(), "device_secret"};
    case HmacSignerConfig::kDeviceSecretFile: {
      SecretText text;
      text.source = absl::StrCat("device_secret_file ", config.device_secret_file());
      HUBLINK_ASSIGN_OR_RETURN(text.base64, auth::ReadSecretFile(kStage, "device_secret_file",
                                                                 config.device_secret_file()));
      return text;
    }
    case HmacSignerConfig::kDeviceSecretEnv: {
      const std::string& name = config.device_secret_env();
      const std::string source = absl::StrCat("device_secret_env ", name);
      if (name.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(kStage, ": device_secret_env: names no environment variable"));
      }
      const char* value = std::getenv(name.c_str());
      if (value == nullptr) {
        return absl::NotFoundError(
            absl::StrCat(kStage, ": ", source, ": the environment variable is not set"));
      }
      return SecretText{value, source};
    }
    case HmacSignerConfig::DEVICE_SECRET_SOURCE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      kStage, ": no device secret: set device_secret, device_secret_file or device_secret_env"));
}

// The key bytes of a base64 device secret. Strict: no embedded whitespace, correct padding.
absl::StatusOr<std::string> DecodeSecret(std::string base64, absl::string_view source) {
  auth::WipeOnExit wipe(base64);
  const absl::string_view text = absl::StripAsciiWhitespace(base64);
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kStage, ": ", source, ": the device secret is empty"));
  }
  size_t max_len = 0;
  if (!EVP_DecodedLength(&max_len, text.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(kStage, ": ", source, ": the device secret is not valid base64 (its length, ",
                     text.size(), ", is not a multiple of 4)"));
  }
  std::string key(max_len, '\0');
  size_t len = 0;
  if (!EVP_DecodeBase64(reinterpret_cast<uint8_t*>(&key[0]), &len, max_len,
                        reinterpret_cast<const uint8_t*>(text.data()), text.size())) {
    auth::Wipe(key);
    return absl::InvalidArgumentError(absl::StrCat(
        kStage, ": ", source,
        ": the device secret is not valid base64 (expected the deviceSecret the console and "
        "device_info.json give)"));
  }
  key.resize(len);
  if (key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kStage, ": ", source, ": the device secret is empty"));
  }
  return key;
}

class HmacSigner : public auth::TencentSigner {
 public:
  HmacSigner(auth::TencentLayout layout, Algorithm algorithm, std::string key)
      : TencentSigner(std::move(layout)), algorithm_(algorithm), key_(std::move(key)) {}
  ~HmacSigner() override { auth::Wipe(key_); }

 protected:
  absl::StatusOr<std::string> Password(absl::string_view username) const override {
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(algorithm_.md(), key_.data(), key_.size(),
             reinterpret_cast<const uint8_t*>(username.data()), username.size(), mac,
             &mac_len) == nullptr) {
      return absl::InternalError(
          absl::StrCat(kStage, ": computing the ", algorithm_.suffix, " failed"));
    }
    std::string password = absl::StrCat(
        absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(mac), mac_len)), ";",
        algorithm_.suffix);
    OPENSSL_cleanse(mac, sizeof(mac));
    return password;
  }

 private:
  const Algorithm algorithm_;
  std::string key_;
};

class HmacSignerFactory : public SignerFactory {
 public:
  absl::string_view name() const override { return kStage; }
  const google::protobuf::Descriptor* config_type() const override {
    return HmacSignerConfig::descriptor();
  }
  absl::StatusOr<std::unique_ptr<Signer>> Configure(
      const google::protobuf::Message& message) const override {
    if (message.GetDescriptor() != HmacSignerConfig::descriptor()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kStage, ": expected a ", HmacSignerConfig::descriptor()->full_name(),
                       ", got a ", message.GetDescriptor()->full_name()));
    }
    const auto& config = static_cast<const HmacSignerConfig&>(message);
    HUBLINK_ASSIGN_OR_RETURN(auth::TencentLayout layout,
                             auth::TencentLayout::Create(config.identity(), kStage));
    HUBLINK_ASSIGN_OR_RETURN(Algorithm algorithm, ParseAlgorithm(config.algorithm()));
    HUBLINK_ASSIGN_OR_RETURN(SecretText text, LoadSecretText(config));
    HUBLINK_ASSIGN_OR_RETURN(std::string key, DecodeSecret(std::move(text.base64), text.source));
    HLOG(INFO) << kStage << ": signing as " << layout.client_id() << " with " << algorithm.suffix
               << ", secret from " << text.source << ", expiry "
               << (layout.ttl() ? absl::StrCat("now + ", absl::FormatDuration(*layout.ttl()))
                                : std::string("never"));
    return std::unique_ptr<Signer>(new HmacSigner(std::move(layout), algorithm, std::move(key)));
  }
};

}  // namespace

void RegisterHmacSigner(Registry::Builder& builder) {
  builder.AddSigner(std::make_unique<HmacSignerFactory>());
}

}  // namespace hublink
