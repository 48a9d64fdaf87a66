#include "auth/rsa/rsa_signer.h"

#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "auth/rsa/rsa.pb.h"
#include "auth/signer_test_support.h"
#include "auth/tencent_credentials.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace hublink {
namespace {

using auth::RsaSignerConfig;
using auth::TencentSigner;

// Keys made once per run by the openssl CLI (key generation is the slow part).
struct Keys {
  std::string dir;
  std::string rsa_pkcs8;  // BEGIN PRIVATE KEY
  std::string rsa_pkcs1;  // BEGIN RSA PRIVATE KEY (what the console's devPrivateKeyFile looks like)
  std::string rsa_pkcs8_pub;
  std::string rsa_pkcs1_pub;
  std::string cert;          // a certificate for rsa_pkcs8, no key
  std::string cert_and_key;  // certificate followed by the key, in one file
  std::string ec_pkcs8;
  std::string ec_sec1;  // BEGIN EC PRIVATE KEY
  std::string ed25519;
  std::string encrypted_pkcs8;
  std::string encrypted_pkcs1;
};

const Keys& TestKeys() {
  static const Keys* keys = [] {
    auto* k = new Keys;
    k->dir = testing::TempDir() + "/rsa_keys";
    const std::string& d = k->dir;
    k->rsa_pkcs8 = d + "/rsa8.pem";
    k->rsa_pkcs1 = d + "/rsa1.pem";
    k->rsa_pkcs8_pub = d + "/rsa8.pub.pem";
    k->rsa_pkcs1_pub = d + "/rsa1.pub.pem";
    k->cert = d + "/cert.pem";
    k->cert_and_key = d + "/cert_and_key.pem";
    k->ec_pkcs8 = d + "/ec8.pem";
    k->ec_sec1 = d + "/ec1.pem";
    k->ed25519 = d + "/ed25519.pem";
    k->encrypted_pkcs8 = d + "/enc8.pem";
    k->encrypted_pkcs1 = d + "/enc1.pem";
    const std::string script = absl::StrCat(
        "set -e; mkdir -p '", d, "'; cd '", d, "';",
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa8.pem 2>/dev/null;",
        "openssl genrsa -traditional -out rsa1.pem 3072 2>/dev/null;",
        "openssl pkey -in rsa8.pem -pubout -out rsa8.pub.pem;",
        "openssl pkey -in rsa1.pem -pubout -out rsa1.pub.pem;",
        "openssl req -x509 -new -key rsa8.pem -subj /CN=ABCDEFGHIJdev01 -days 1 -out cert.pem;",
        "cat cert.pem rsa8.pem > cert_and_key.pem;",
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec8.pem;",
        "openssl ec -in ec8.pem -out ec1.pem 2>/dev/null;",
        "openssl genpkey -algorithm ED25519 -out ed25519.pem;",
        "openssl pkey -in rsa8.pem -aes256 -passout pass:hunter2 -out enc8.pem;",
        "openssl rsa -in rsa1.pem -traditional -aes256 -passout pass:hunter2 -out enc1.pem "
        "2>/dev/null;");
    absl::StatusOr<std::string> ran = testing::RunCommand(script);
    EXPECT_TRUE(ran.ok()) << ran.status();
    return k;
  }();
  return *keys;
}

RsaSignerConfig ExampleConfig(const std::string& key_file) {
  RsaSignerConfig config;
  config.mutable_identity()->set_product_id("ABCDEFGHIJ");
  config.mutable_identity()->set_device_name("dev01");
  config.set_private_key_file(key_file);
  return config;
}

absl::StatusOr<std::unique_ptr<Signer>> Configure(const RsaSignerConfig& config) {
  return auth::testing::ConfigureSigner(RegisterRsaSigner, "rsa", config);
}

std::unique_ptr<Signer> MustConfigure(const RsaSignerConfig& config) {
  absl::StatusOr<std::unique_ptr<Signer>> signer = Configure(config);
  EXPECT_TRUE(signer.ok()) << signer.status();
  return signer.ok() ? *std::move(signer) : nullptr;
}

// Checks `credentials` with the openssl CLI: the signature verifies with the public key, does not
// verify for a different username, and equals openssl's own signature byte for byte (PKCS#1 v1.5 is
// deterministic).
void ExpectOpensslAgrees(const Credentials& credentials, const std::string& key_file,
                         const std::string& pub_file) {
  ASSERT_TRUE(absl::EndsWith(credentials.password, ";rsa-sha256")) << credentials.password;
  const std::string hex = credentials.password.substr(0, credentials.password.size() - 11);
  EXPECT_EQ(hex, absl::AsciiStrToLower(hex));
  const std::string signature = absl::HexStringToBytes(hex);
  ASSERT_EQ(absl::BytesToHexString(signature), hex);  // it was all hex digits

  const std::string dir = testing::TempDir();
  const std::string message = dir + "/username.txt";
  const std::string other = dir + "/other_username.txt";
  const std::string sig = dir + "/signature.bin";
  const std::string reference = dir + "/reference.bin";
  ASSERT_TRUE(testing::WriteFile(message, credentials.username).ok());
  ASSERT_TRUE(testing::WriteFile(other, credentials.username + "0").ok());
  ASSERT_TRUE(testing::WriteFile(sig, signature).ok());

  absl::StatusOr<std::string> verified = testing::RunCommand(absl::StrCat(
      "openssl dgst -sha256 -verify '", pub_file, "' -signature '", sig, "' '", message, "'"));
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(absl::StripAsciiWhitespace(*verified), "Verified OK");
  absl::StatusOr<std::string> tampered = testing::RunCommand(absl::StrCat(
      "openssl dgst -sha256 -verify '", pub_file, "' -signature '", sig, "' '", other, "' 2>&1"));
  EXPECT_FALSE(tampered.ok());

  absl::StatusOr<std::string> signed_by_openssl = testing::RunCommand(absl::StrCat(
      "openssl dgst -sha256 -sign '", key_file, "' -out '", reference, "' '", message, "'"));
  ASSERT_TRUE(signed_by_openssl.ok()) << signed_by_openssl.status();
  absl::StatusOr<std::string> expected = testing::ReadFile(reference);
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(signature, *expected);
}

TEST(RsaSignerTest, SignaturesVerifyWithOpensslAndMatchItsBytes) {
  const Keys& keys = TestKeys();
  for (const auto& [key, pub, bits] :
       {std::make_tuple(keys.rsa_pkcs8, keys.rsa_pkcs8_pub, 2048),
        std::make_tuple(keys.rsa_pkcs1, keys.rsa_pkcs1_pub, 3072),
        std::make_tuple(keys.cert_and_key, keys.rsa_pkcs8_pub, 2048)}) {
    SCOPED_TRACE(key);
    RsaSignerConfig config = ExampleConfig(key);
    config.mutable_identity()->mutable_ttl()->set_seconds(600);
    std::unique_ptr<Signer> signer = MustConfigure(config);
    ASSERT_NE(signer, nullptr);
    SignRequest request;
    request.now = absl::FromUnixSeconds(1700000000);
    for (int i = 0; i < 2; ++i) {
      absl::StatusOr<Credentials> credentials = signer->Sign(request);
      ASSERT_TRUE(credentials.ok()) << credentials.status();
      EXPECT_EQ(credentials->client_id, "ABCDEFGHIJdev01");
      std::vector<std::string> fields = absl::StrSplit(credentials->username, ';');
      ASSERT_EQ(fields.size(), 4u);
      EXPECT_EQ(fields[3], "1700000600");
      EXPECT_EQ(credentials->password.size(), bits / 4 + 11u);
      ExpectOpensslAgrees(*credentials, key, pub);
    }
    absl::StatusOr<Credentials> fixed =
        signer->As<TencentSigner>()->SignWith("a1B2c", "1700000000");
    ASSERT_TRUE(fixed.ok()) << fixed.status();
    EXPECT_EQ(fixed->username, "ABCDEFGHIJdev01;21010406;a1B2c;1700000000");
    ExpectOpensslAgrees(*fixed, key, pub);
  }
}

TEST(RsaSignerTest, FreshConnIdAtEverySignNeverExpiryByDefault) {
  std::unique_ptr<Signer> signer = MustConfigure(ExampleConfig(TestKeys().rsa_pkcs8));
  ASSERT_NE(signer, nullptr);
  absl::StatusOr<Credentials> a = signer->Sign(SignRequest());
  absl::StatusOr<Credentials> b = signer->Sign(SignRequest());
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<std::string> fa = absl::StrSplit(a->username, ';');
  std::vector<std::string> fb = absl::StrSplit(b->username, ';');
  ASSERT_EQ(fa.size(), 4u);
  ASSERT_EQ(fb.size(), 4u);
  EXPECT_NE(fa[2], fb[2]);
  EXPECT_EQ(fa[3], "92233720368547758");
  EXPECT_NE(a->password, b->password);
}

// The key is parsed once, at Configure(): later signing never touches the file.
TEST(RsaSignerTest, KeyIsParsedOnceAtConfigure) {
  const std::string copy = testing::TempDir() + "/rsa_once.pem";
  absl::StatusOr<std::string> pem = testing::ReadFile(TestKeys().rsa_pkcs8);
  ASSERT_TRUE(pem.ok());
  ASSERT_TRUE(testing::WriteFile(copy, *pem).ok());
  std::unique_ptr<Signer> signer = MustConfigure(ExampleConfig(copy));
  ASSERT_NE(signer, nullptr);
  ASSERT_EQ(unlink(copy.c_str()), 0);
  absl::StatusOr<Credentials> credentials = signer->Sign(SignRequest());
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  ExpectOpensslAgrees(*credentials, TestKeys().rsa_pkcs8, TestKeys().rsa_pkcs8_pub);
}

struct BadConfig {
  std::string name;
  std::function<void(RsaSignerConfig&)> edit;
  absl::StatusCode code;
  std::string message;  // prefix
};

std::vector<BadConfig> BadConfigs() {
  const Keys& keys = TestKeys();
  const std::string dir = testing::TempDir();
  const std::string empty = dir + "/empty.pem";
  const std::string garbage = dir + "/garbage.pem";
  const std::string truncated = dir + "/truncated.pem";
  EXPECT_TRUE(testing::WriteFile(empty, "").ok());
  EXPECT_TRUE(testing::WriteFile(garbage, "this is not a key\n").ok());
  absl::StatusOr<std::string> pem = testing::ReadFile(keys.rsa_pkcs8);
  EXPECT_TRUE(pem.ok());
  // Header and footer intact, half the body gone: the PEM decodes but the DER inside does not
  // parse.
  const size_t cut = pem->find('\n') + 1;
  EXPECT_TRUE(
      testing::WriteFile(truncated, absl::StrCat(pem->substr(0, cut), pem->substr(cut + 64 * 12)))
          .ok());
  auto file = [](const std::string& path) {
    return [path](RsaSignerConfig& c) { c.set_private_key_file(path); };
  };
  using absl::StatusCode;
  const std::string p = "rsa: private_key_file ";
  return {
      {"no file", file(""), StatusCode::kInvalidArgument, "rsa: private_key_file: is required"},
      {"missing", file(dir + "/no/such.pem"), StatusCode::kNotFound,
       absl::StrCat(p, dir, "/no/such.pem: No such file or directory")},
      {"directory", file(dir), StatusCode::kFailedPrecondition,
       absl::StrCat(p, dir, ": is a directory, not a file")},
      {"empty", file(empty), StatusCode::kInvalidArgument, absl::StrCat(p, empty, ": is empty")},
      {"garbage", file(garbage), StatusCode::kInvalidArgument,
       absl::StrCat(p, garbage, ": no PEM private key in the file")},
      {"certificate", file(keys.cert), StatusCode::kInvalidArgument,
       absl::StrCat(p, keys.cert, ": no PEM private key in the file")},
      {"truncated", file(truncated), StatusCode::kInvalidArgument,
       absl::StrCat(p, truncated, ": cannot parse the private key (")},
      {"ec pkcs8", file(keys.ec_pkcs8), StatusCode::kInvalidArgument,
       absl::StrCat(p, keys.ec_pkcs8, ": holds an EC key, not an RSA key")},
      {"ec sec1", file(keys.ec_sec1), StatusCode::kInvalidArgument,
       absl::StrCat(p, keys.ec_sec1, ": holds an EC key, not an RSA key")},
      {"ed25519", file(keys.ed25519), StatusCode::kInvalidArgument,
       absl::StrCat(p, keys.ed25519, ": holds an Ed25519 key, not an RSA key")},
      {"encrypted pkcs8", file(keys.encrypted_pkcs8), StatusCode::kInvalidArgument,
       absl::StrCat(p, keys.encrypted_pkcs8, ": the key is encrypted")},
      {"encrypted pkcs1", file(keys.encrypted_pkcs1), StatusCode::kInvalidArgument,
       absl::StrCat(p, keys.encrypted_pkcs1, ": the key is encrypted")},
      {"no product", [](RsaSignerConfig& c) { c.mutable_identity()->clear_product_id(); },
       StatusCode::kInvalidArgument, "rsa: identity.product_id: is required"},
      {"no device name", [](RsaSignerConfig& c) { c.mutable_identity()->clear_device_name(); },
       StatusCode::kInvalidArgument, "rsa: identity.device_name: is required"},
  };
}

TEST(RsaSignerTest, BadInputsEachGiveTheirOwnError) {
  for (const BadConfig& bad : BadConfigs()) {
    RsaSignerConfig config = ExampleConfig(TestKeys().rsa_pkcs8);
    bad.edit(config);
    absl::StatusOr<std::unique_ptr<Signer>> signer = Configure(config);
    ASSERT_FALSE(signer.ok()) << bad.name;
    EXPECT_EQ(signer.status().code(), bad.code) << bad.name << ": " << signer.status();
    EXPECT_TRUE(absl::StartsWith(signer.status().message(), bad.message))
        << bad.name << ": " << signer.status();
  }
}

// Lines of PEM body (base64 of key material) in `path`.
std::vector<std::string> PemBodyLines(const std::string& path) {
  absl::StatusOr<std::string> pem = testing::ReadFile(path);
  EXPECT_TRUE(pem.ok()) << pem.status();
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(*pem, '\n', absl::SkipWhitespace())) {
    if (!absl::StartsWith(line, "-----") && line.size() >= 16) lines.emplace_back(line);
  }
  return lines;
}

TEST(RsaSignerTest, NoKeyOrPasswordInLogsOrErrors) {
  const Keys& keys = TestKeys();
  std::vector<std::string> passwords;
  std::vector<std::string> errors;
  std::vector<std::string> lines;
  {
    auth::testing::LogCapture capture;
    for (const std::string& key : {keys.rsa_pkcs8, keys.rsa_pkcs1}) {
      RsaSignerConfig config = ExampleConfig(key);
      config.mutable_identity()->mutable_ttl()->set_seconds(60);
      std::unique_ptr<Signer> signer = MustConfigure(config);
      ASSERT_NE(signer, nullptr);
      SignRequest request;
      request.now = absl::Now();
      for (int i = 0; i < 3; ++i) {
        absl::StatusOr<Credentials> credentials = signer->Sign(request);
        ASSERT_TRUE(credentials.ok());
        passwords.push_back(credentials->password);
      }
      absl::StatusOr<Credentials> bad = signer->As<TencentSigner>()->SignWith("a1B2c", "soon");
      ASSERT_FALSE(bad.ok());
      errors.emplace_back(bad.status().message());
    }
    for (const BadConfig& bad : BadConfigs()) {
      RsaSignerConfig config = ExampleConfig(keys.rsa_pkcs8);
      bad.edit(config);
      absl::StatusOr<std::unique_ptr<Signer>> signer = Configure(config);
      ASSERT_FALSE(signer.ok());
      errors.emplace_back(signer.status().message());
    }
    lines = capture.lines();
  }
  ASSERT_FALSE(lines.empty());
  std::vector<std::string> needles;
  for (const std::string& key : {keys.rsa_pkcs8, keys.rsa_pkcs1, keys.ec_pkcs8, keys.ec_sec1,
                                 keys.ed25519, keys.encrypted_pkcs8}) {
    std::vector<std::string> body = PemBodyLines(key);
    ASSERT_FALSE(body.empty()) << key;
    needles.insert(needles.end(), body.begin(), body.end());
  }
  needles.push_back("this is not a key");
  for (const std::string& password : passwords) {
    needles.push_back(password);
    needles.push_back(password.substr(0, 64));  // any sizable piece of a signature
  }
  std::vector<std::string> haystacks = lines;
  haystacks.insert(haystacks.end(), errors.begin(), errors.end());
  const std::vector<std::string> leaks = auth::testing::FindLeaks(haystacks, needles);
  EXPECT_TRUE(leaks.empty()) << absl::StrJoin(leaks, "\n");
}

}  // namespace
}  // namespace hublink
