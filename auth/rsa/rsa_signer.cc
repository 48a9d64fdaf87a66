#include "auth/rsa/rsa_signer.h"

#include <openssl/bio.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "auth/rsa/rsa.pb.h"
#include "auth/secret_file.h"
#include "auth/tencent_credentials.h"
#include "plugins/log.h"
#include "plugins/status_macros.h"

namespace hublink {
namespace {

using auth::RsaSignerConfig;

constexpr absl::string_view kStage = "rsa";

// BoringSSL's error queue is per thread: leave it empty so a later, unrelated failure is not blamed
// on us.
std::string TakeOpensslError() {
  const uint32_t error = ERR_peek_last_error();
  ERR_clear_error();
  if (error == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(error);
  return reason != nullptr ? reason : absl::StrCat("error ", error);
}

std::string KeyTypeName(int type) {
  switch (type) {
    case EVP_PKEY_EC:
      return "an EC key";
    case EVP_PKEY_ED25519:
      return "an Ed25519 key";
    case EVP_PKEY_DSA:
      return "a DSA key";
    default:
      return absl::StrCat("a key of type ", type);
  }
}

// Refuses to prompt for or guess a passphrase.
int NoPassphrase(char*, int, int, void*) { return 0; }

absl::StatusOr<bssl::UniquePtr<EVP_PKEY>> LoadPrivateKey(const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kStage, ": private_key_file: is required (the device's PEM private key)"));
  }
  HUBLINK_ASSIGN_OR_RETURN(std::string pem, auth::ReadSecretFile(kStage, "private_key_file", path));
  auth::WipeOnExit wipe(pem);
  const std::string prefix = absl::StrCat(kStage, ": private_key_file ", path);
  if (pem.empty()) return absl::InvalidArgumentError(absl::StrCat(prefix, ": is empty"));

  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), pem.size()));
  if (bio == nullptr) return absl::ResourceExhaustedError(absl::StrCat(prefix, ": out of memory"));
  ERR_clear_error();
  bssl::UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) {
    const uint32_t error = ERR_peek_last_error();
    const std::string reason = TakeOpensslError();
    if (ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_BAD_PASSWORD_READ) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix,
                       ": the key is encrypted; hublink needs it unencrypted (openssl pkey -in "
                       "<file> -out <new>)"));
    }
    if (ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix,
                       ": no PEM private key in the file (expected \"-----BEGIN PRIVATE KEY-----\" "
                       "or \"-----BEGIN RSA "
                       "PRIVATE KEY-----\"; a certificate, devCertFile, is not the key)"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, ": cannot parse the private key (", reason, ")"));
  }
  if (EVP_PKEY_id(key.get()) != EVP_PKEY_RSA) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, ": holds ", KeyTypeName(EVP_PKEY_id(key.get())),
                     ", not an RSA key; rsa-sha256 needs an RSA private key"));
  }
  return key;
}

class RsaSigner : public auth::TencentSigner {
 public:
  RsaSigner(auth::TencentLayout layout, bssl::UniquePtr<EVP_PKEY> key)
      : TencentSigner(std::move(layout)), key_(std::move(key)) {}

 protected:
  absl::StatusOr<std::string> Password(absl::string_view username) const override {
    bssl::ScopedEVP_MD_CTX ctx;
    size_t len = 0;
    // EVP_DigestSignInit leaves RSA keys on PKCS#1 v1.5 padding, which is what the hub verifies.
    if (!EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) ||
        !EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const uint8_t*>(username.data()),
                        username.size())) {
      return absl::InternalError(absl::StrCat(kStage, ": signing failed: ", TakeOpensslError()));
    }
    std::vector<uint8_t> signature(len);
    if (!EVP_DigestSign(ctx.get(), signature.data(), &len,
                        reinterpret_cast<const uint8_t*>(username.data()), username.size())) {
      return absl::InternalError(absl::StrCat(kStage, ": signing failed: ", TakeOpensslError()));
    }
    return absl::StrCat(absl::BytesToHexString(absl::string_view(
                            reinterpret_cast<const char*>(signature.data()), len)),
                        ";rsa-sha256");
  }

 private:
  // EVP_PKEY is safe to use from several threads at once for signing.
  const bssl::UniquePtr<EVP_PKEY> key_;
};

class RsaSignerFactory : public SignerFactory {
 public:
  absl::string_view name() const override { return kStage; }
  const google::protobuf::Descriptor* config_type() const override {
    return RsaSignerConfig::descriptor();
  }
  absl::StatusOr<std::unique_ptr<Signer>> Configure(
      const google::protobuf::Message& message) const override {
    if (message.GetDescriptor() != RsaSignerConfig::descriptor()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kStage, ": expected a ", RsaSignerConfig::descriptor()->full_name(),
                       ", got a ", message.GetDescriptor()->full_name()));
    }
    const auto& config = static_cast<const RsaSignerConfig&>(message);
    HUBLINK_ASSIGN_OR_RETURN(auth::TencentLayout layout,
                             auth::TencentLayout::Create(config.identity(), kStage));
    HUBLINK_ASSIGN_OR_RETURN(bssl::UniquePtr<EVP_PKEY> key,
                             LoadPrivateKey(config.private_key_file()));
    HLOG(INFO) << kStage << ": signing as " << layout.client_id() << " with rsa-sha256 ("
               << EVP_PKEY_bits(key.get()) << "-bit key from " << config.private_key_file()
               << "), expiry "
               << (layout.ttl() ? absl::StrCat("now + ", absl::FormatDuration(*layout.ttl()))
                                : std::string("never"));
    return std::unique_ptr<Signer>(new RsaSigner(std::move(layout), std::move(key)));
  }
};

}  // namespace

void RegisterRsaSigner(Registry::Builder& builder) {
  builder.AddSigner(std::make_unique<RsaSignerFactory>());
}

}  // namespace hublink
