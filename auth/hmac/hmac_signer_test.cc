#include "auth/hmac/hmac_signer.h"

#include <openssl/base64.h>
#include <openssl/rand.h>
#include <stdlib.h>
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
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "auth/hmac/hmac.pb.h"
#include "auth/signer_test_support.h"
#include "auth/tencent_credentials.h"
#include "gtest/gtest.h"
#include "plugins/pipeline.h"
#include "tests/test_util.h"
#include "transports/tcp/tcp_transport.h"

namespace hublink {
namespace {

using auth::HmacSignerConfig;
using auth::TencentSigner;

// The worked example in docs/tencent-iothub.md, "MQTT CONNECT: worked example".
constexpr absl::string_view kExampleSecret = "MDEyMzQ1Njc4OWFiY2RlZg==";
constexpr absl::string_view kExampleUsername = "ABCDEFGHIJdev01;21010406;a1B2c;1700000000";
constexpr absl::string_view kExamplePassword = "108eac8bd80d3f25b6799504dcd094ba5bfb2f91;hmacsha1";

HmacSignerConfig ExampleConfig() {
  HmacSignerConfig config;
  config.mutable_identity()->set_product_id("ABCDEFGHIJ");
  config.mutable_identity()->set_device_name("dev01");
  config.set_device_secret(std::string(kExampleSecret));
  return config;
}

absl::StatusOr<std::unique_ptr<Signer>> Configure(const HmacSignerConfig& config) {
  return auth::testing::ConfigureSigner(RegisterHmacSigner, "hmac", config);
}

std::unique_ptr<Signer> MustConfigure(const HmacSignerConfig& config) {
  absl::StatusOr<std::unique_ptr<Signer>> signer = Configure(config);
  EXPECT_TRUE(signer.ok()) << signer.status();
  return signer.ok() ? *std::move(signer) : nullptr;
}

std::string Base64(absl::string_view bytes) {
  size_t len = 0;
  EVP_EncodedLength(&len, bytes.size());
  std::string out(len, '\0');
  const size_t written =
      EVP_EncodeBlock(reinterpret_cast<uint8_t*>(&out[0]),
                      reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  out.resize(written);
  return out;
}

std::string RandomBytes(size_t n) {
  std::string bytes(n, '\0');
  RAND_bytes(reinterpret_cast<uint8_t*>(&bytes[0]), n);
  return bytes;
}

// HMAC of `message` by the openssl CLI, as lowercase hex.
absl::StatusOr<std::string> OpensslHmac(absl::string_view digest, absl::string_view key,
                                        absl::string_view message) {
  const std::string file = testing::TempDir() + "/hmac_message.txt";
  absl::Status written = testing::WriteFile(file, message);
  if (!written.ok()) return written;
  absl::StatusOr<std::string> out = testing::RunCommand(
      absl::StrCat("openssl dgst -", digest,
                   " -mac HMAC -macopt hexkey:", absl::BytesToHexString(key), " '", file, "'"));
  if (!out.ok()) return out.status();
  // "HMAC-SHA1(<file>)= <hex>\n"
  const size_t eq = out->rfind("= ");
  if (eq == std::string::npos)
    return absl::InternalError(absl::StrCat("unexpected openssl output: ", *out));
  return std::string(absl::StripAsciiWhitespace(absl::string_view(*out).substr(eq + 2)));
}

std::vector<std::string> SplitUsername(absl::string_view username) {
  return absl::StrSplit(username, ';');
}

TEST(HmacSignerTest, WorkedExampleReproducesByteForByte) {
  std::unique_ptr<Signer> signer = MustConfigure(ExampleConfig());
  ASSERT_NE(signer, nullptr);
  auto* tencent = signer->As<TencentSigner>();
  ASSERT_NE(tencent, nullptr);
  absl::StatusOr<Credentials> credentials = tencent->SignWith("a1B2c", "1700000000");
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_EQ(credentials->client_id, "ABCDEFGHIJdev01");
  EXPECT_EQ(credentials->username, kExampleUsername);
  EXPECT_EQ(credentials->password, kExamplePassword);
}

TEST(HmacSignerTest, WorkedExampleAgreesWithOpenssl) {
  absl::StatusOr<std::string> expected = OpensslHmac("sha1", "0123456789abcdef", kExampleUsername);
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(absl::StrCat(*expected, ";hmacsha1"), kExamplePassword);
}

class HmacOpensslTest : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

// Random secrets of various lengths (shorter and longer than the block size), fresh usernames from
// Sign(): the password must be what the openssl CLI computes.
TEST_P(HmacOpensslTest, PasswordMatchesOpensslDgstMac) {
  const std::string& algorithm = GetParam().first;
  const std::string& digest = GetParam().second;
  for (size_t key_len : {1, 16, 20, 32, 64, 65, 100}) {
    const std::string key = RandomBytes(key_len);
    HmacSignerConfig config = ExampleConfig();
    config.set_algorithm(algorithm);
    config.set_device_secret(Base64(key));
    config.mutable_identity()->mutable_ttl()->set_seconds(600);
    std::unique_ptr<Signer> signer = MustConfigure(config);
    ASSERT_NE(signer, nullptr);
    SignRequest request;
    request.now = absl::FromUnixSeconds(1700000000);
    absl::StatusOr<Credentials> credentials = signer->Sign(request);
    ASSERT_TRUE(credentials.ok()) << credentials.status();
    EXPECT_EQ(SplitUsername(credentials->username)[3], "1700000600");
    absl::StatusOr<std::string> expected = OpensslHmac(digest, key, credentials->username);
    ASSERT_TRUE(expected.ok()) << expected.status();
    EXPECT_EQ(credentials->password, absl::StrCat(*expected, ";hmac", digest))
        << "key length " << key_len;
  }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, HmacOpensslTest,
                         ::testing::Values(std::make_pair("", "sha1"),
                                           std::make_pair("hmacsha1", "sha1"),
                                           std::make_pair("hmacsha256", "sha256")));

TEST(HmacSignerTest, AlgorithmNames) {
  for (absl::string_view name : {"", "hmacsha1", "sha1", "HmacSHA1", "SHA1"}) {
    HmacSignerConfig config = ExampleConfig();
    config.set_algorithm(std::string(name));
    std::unique_ptr<Signer> signer = MustConfigure(config);
    ASSERT_NE(signer, nullptr);
    absl::StatusOr<Credentials> credentials =
        signer->As<TencentSigner>()->SignWith("a1B2c", "1700000000");
    ASSERT_TRUE(credentials.ok());
    EXPECT_EQ(credentials->password, kExamplePassword) << name;
  }
  for (absl::string_view name : {"hmacsha256", "sha256", "HMACSHA256"}) {
    HmacSignerConfig config = ExampleConfig();
    config.set_algorithm(std::string(name));
    std::unique_ptr<Signer> signer = MustConfigure(config);
    ASSERT_NE(signer, nullptr);
    absl::StatusOr<Credentials> credentials = signer->Sign(SignRequest());
    ASSERT_TRUE(credentials.ok());
    EXPECT_TRUE(absl::EndsWith(credentials->password, ";hmacsha256")) << name;
    EXPECT_EQ(credentials->password.size(), 64 + 11u);
  }
}

TEST(HmacSignerTest, SecretFromFileAndFromEnvironment) {
  HmacSignerConfig from_file = ExampleConfig();
  const std::string path = testing::TempDir() + "/device_secret";
  // Editors and `echo` leave a trailing newline.
  ASSERT_TRUE(testing::WriteFile(path, absl::StrCat(kExampleSecret, "\n")).ok());
  from_file.set_device_secret_file(path);
  HmacSignerConfig from_env = ExampleConfig();
  ASSERT_EQ(setenv("HUBLINK_HMAC_TEST_SECRET", std::string(kExampleSecret).c_str(), 1), 0);
  from_env.set_device_secret_env("HUBLINK_HMAC_TEST_SECRET");
  for (const HmacSignerConfig& config : {from_file, from_env}) {
    std::unique_ptr<Signer> signer = MustConfigure(config);
    ASSERT_NE(signer, nullptr);
    absl::StatusOr<Credentials> credentials =
        signer->As<TencentSigner>()->SignWith("a1B2c", "1700000000");
    ASSERT_TRUE(credentials.ok()) << credentials.status();
    EXPECT_EQ(credentials->password, kExamplePassword);
  }
  unsetenv("HUBLINK_HMAC_TEST_SECRET");
}

// The key is decoded once at Configure(): changing the source afterwards changes nothing.
TEST(HmacSignerTest, SecretIsReadOnceAtConfigure) {
  const std::string path = testing::TempDir() + "/device_secret_once";
  ASSERT_TRUE(testing::WriteFile(path, kExampleSecret).ok());
  HmacSignerConfig config = ExampleConfig();
  config.set_device_secret_file(path);
  std::unique_ptr<Signer> signer = MustConfigure(config);
  ASSERT_NE(signer, nullptr);
  ASSERT_EQ(unlink(path.c_str()), 0);
  absl::StatusOr<Credentials> credentials =
      signer->As<TencentSigner>()->SignWith("a1B2c", "1700000000");
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_EQ(credentials->password, kExamplePassword);
}

TEST(HmacSignerTest, FreshConnIdAndExpiryAtEverySign) {
  std::unique_ptr<Signer> never = MustConfigure(ExampleConfig());
  ASSERT_NE(never, nullptr);
  SignRequest request;
  request.now = absl::FromUnixSeconds(1700000000);
  absl::StatusOr<Credentials> first = never->Sign(request);
  absl::StatusOr<Credentials> second = never->Sign(request);
  ASSERT_TRUE(first.ok() && second.ok());
  std::vector<std::string> a = SplitUsername(first->username);
  std::vector<std::string> b = SplitUsername(second->username);
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 4u);
  EXPECT_NE(a[2], b[2]);  // equal with probability 62^-5
  EXPECT_NE(first->password, second->password);
  for (const std::string& connid : {a[2], b[2]}) {
    ASSERT_EQ(connid.size(), 5u);
    for (char c : connid) EXPECT_TRUE(absl::ascii_isalnum(static_cast<unsigned char>(c))) << connid;
  }
  EXPECT_EQ(a[3], "92233720368547758");

  HmacSignerConfig config = ExampleConfig();
  config.mutable_identity()->mutable_ttl()->set_seconds(86400);
  std::unique_ptr<Signer> ttl = MustConfigure(config);
  ASSERT_NE(ttl, nullptr);
  absl::StatusOr<Credentials> credentials = ttl->Sign(request);
  ASSERT_TRUE(credentials.ok());
  EXPECT_EQ(SplitUsername(credentials->username)[3], "1700086400");
}

// The way users configure it: a pipeline in text format, the signer found by its config's type URL.
TEST(HmacSignerTest, ConfiguredFromAPipeline) {
  const std::string secret_file = testing::TempDir() + "/pipeline_secret";
  ASSERT_TRUE(testing::WriteFile(secret_file, kExampleSecret).ok());
  const std::string text = absl::StrCat(
      "endpoint { host: \"127.0.0.1\" port: 1883 }\n"
      "transports { name: \"tcp\" }\n"
      "signer { typed_config { [type.googleapis.com/hublink.auth.HmacSignerConfig] {\n"
      "  identity { product_id: \"ABCDEFGHIJ\" device_name: \"dev01\" ttl { seconds: 600 } }\n"
      "  algorithm: \"hmacsha1\"\n"
      "  device_secret_file: \"",
      secret_file, "\"\n} } }\n");
  Registry::Builder builder;
  RegisterTcpTransport(builder);
  RegisterHmacSigner(builder);
  absl::StatusOr<Registry> registry = std::move(builder).Build();
  ASSERT_TRUE(registry.ok()) << registry.status();
  absl::StatusOr<Pipeline> config = ParsePipelineText(text, "device.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<ResolvedPipeline>> pipeline =
      ResolvedPipeline::Resolve(*config, *registry, "device.textproto");
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  auto* signer = (*pipeline)->signer()->As<TencentSigner>();
  ASSERT_NE(signer, nullptr);
  absl::StatusOr<Credentials> credentials = signer->SignWith("a1B2c", "1700000000");
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_EQ(credentials->password, kExamplePassword);

  // A broken secret source fails the whole pipeline at load time, the error naming where.
  config->mutable_signer()->set_name("hmac");
  HmacSignerConfig broken = ExampleConfig();
  broken.set_device_secret_file(testing::TempDir() + "/absent_secret");
  config->mutable_signer()->mutable_typed_config()->PackFrom(broken);
  pipeline = ResolvedPipeline::Resolve(*config, *registry, "device.textproto");
  ASSERT_FALSE(pipeline.ok());
  EXPECT_EQ(pipeline.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(pipeline.status().message(),
            absl::StrCat("device.textproto: signer (\"hmac\"): hmac: device_secret_file ",
                         testing::TempDir(), "/absent_secret: No such file or directory"));
}

struct BadConfig {
  std::string name;
  std::function<void(HmacSignerConfig&)> edit;
  absl::StatusCode code;
  std::string message;
};

std::vector<BadConfig> BadConfigs() {
  const std::string dir = testing::TempDir();
  const std::string empty_file = dir + "/empty_secret";
  const std::string not_base64_file = dir + "/not_base64_secret";
  EXPECT_TRUE(testing::WriteFile(empty_file, "\n").ok());
  EXPECT_TRUE(testing::WriteFile(not_base64_file, "%%%%not-base64%%%%\n").ok());
  setenv("HUBLINK_HMAC_TEST_EMPTY", "", 1);
  unsetenv("HUBLINK_HMAC_TEST_UNSET");
  using absl::StatusCode;
  return {
      {"empty inline", [](HmacSignerConfig& c) { c.set_device_secret(""); },
       StatusCode::kInvalidArgument, "hmac: device_secret: the device secret is empty"},
      {"blank inline", [](HmacSignerConfig& c) { c.set_device_secret(" \n\t"); },
       StatusCode::kInvalidArgument, "hmac: device_secret: the device secret is empty"},
      {"bad characters", [](HmacSignerConfig& c) { c.set_device_secret("MDEy!!==MDEy"); },
       StatusCode::kInvalidArgument, "hmac: device_secret: the device secret is not valid base64"},
      {"bad length", [](HmacSignerConfig& c) { c.set_device_secret("MDEyMzQ"); },
       StatusCode::kInvalidArgument,
       "hmac: device_secret: the device secret is not valid base64 (its length, 7, is not a "
       "multiple of 4)"},
      {"inner space", [](HmacSignerConfig& c) { c.set_device_secret("MDEy MzQ1Njc4"); },
       StatusCode::kInvalidArgument, "hmac: device_secret: the device secret is not valid base64"},
      {"bad padding", [](HmacSignerConfig& c) { c.set_device_secret("MD=yMzQ1"); },
       StatusCode::kInvalidArgument, "hmac: device_secret: the device secret is not valid base64"},
      {"missing file",
       [dir](HmacSignerConfig& c) { c.set_device_secret_file(dir + "/no/such/secret"); },
       StatusCode::kNotFound,
       absl::StrCat("hmac: device_secret_file ", dir,
                    "/no/such/secret: No such file or directory")},
      {"directory", [dir](HmacSignerConfig& c) { c.set_device_secret_file(dir); },
       StatusCode::kFailedPrecondition,
       absl::StrCat("hmac: device_secret_file ", dir, ": is a directory, not a file")},
      {"empty file", [empty_file](HmacSignerConfig& c) { c.set_device_secret_file(empty_file); },
       StatusCode::kInvalidArgument,
       absl::StrCat("hmac: device_secret_file ", empty_file, ": the device secret is empty")},
      {"file not base64",
       [not_base64_file](HmacSignerConfig& c) { c.set_device_secret_file(not_base64_file); },
       StatusCode::kInvalidArgument,
       absl::StrCat("hmac: device_secret_file ", not_base64_file,
                    ": the device secret is not valid base64")},
      {"unset env", [](HmacSignerConfig& c) { c.set_device_secret_env("HUBLINK_HMAC_TEST_UNSET"); },
       StatusCode::kNotFound,
       "hmac: device_secret_env HUBLINK_HMAC_TEST_UNSET: the environment variable is not set"},
      {"empty env", [](HmacSignerConfig& c) { c.set_device_secret_env("HUBLINK_HMAC_TEST_EMPTY"); },
       StatusCode::kInvalidArgument,
       "hmac: device_secret_env HUBLINK_HMAC_TEST_EMPTY: the device secret is empty"},
      {"env without name", [](HmacSignerConfig& c) { c.set_device_secret_env(""); },
       StatusCode::kInvalidArgument, "hmac: device_secret_env: names no environment variable"},
      {"no secret", [](HmacSignerConfig& c) { c.clear_device_secret_source(); },
       StatusCode::kInvalidArgument,
       "hmac: no device secret: set device_secret, device_secret_file or device_secret_env"},
      {"unknown algorithm", [](HmacSignerConfig& c) { c.set_algorithm("md5"); },
       StatusCode::kInvalidArgument,
       "hmac: algorithm: unknown \"md5\"; expected \"hmacsha1\" (default) or \"hmacsha256\""},
      {"no product", [](HmacSignerConfig& c) { c.mutable_identity()->clear_product_id(); },
       StatusCode::kInvalidArgument, "hmac: identity.product_id: is required"},
      {"no device", [](HmacSignerConfig& c) { c.clear_identity(); }, StatusCode::kInvalidArgument,
       "hmac: identity.product_id: is required"},
      {"no device name", [](HmacSignerConfig& c) { c.mutable_identity()->clear_device_name(); },
       StatusCode::kInvalidArgument, "hmac: identity.device_name: is required"},
  };
}

TEST(HmacSignerTest, BadInputsEachGiveTheirOwnError) {
  for (const BadConfig& bad : BadConfigs()) {
    HmacSignerConfig config = ExampleConfig();
    bad.edit(config);
    absl::StatusOr<std::unique_ptr<Signer>> signer = Configure(config);
    ASSERT_FALSE(signer.ok()) << bad.name;
    EXPECT_EQ(signer.status().code(), bad.code) << bad.name << ": " << signer.status();
    EXPECT_TRUE(absl::StartsWith(signer.status().message(), bad.message))
        << bad.name << ": " << signer.status();
  }
}

// Secrets never reach a log line or an error, on success or failure: the base64 text, its decoded
// bytes (raw and hex), the passwords, and secrets that failed to decode.
TEST(HmacSignerTest, NoSecretOrPasswordInLogsOrErrors) {
  const std::string raw = "hublink-raw-secret-4a7f9c2e81d0b365";
  const std::string base64 = Base64(raw);
  const std::string bad_secret = "LeakCanary!!NotBase64+Secret";
  const std::string path = testing::TempDir() + "/leak_secret";
  ASSERT_TRUE(testing::WriteFile(path, base64 + "\n").ok());
  ASSERT_EQ(setenv("HUBLINK_HMAC_LEAK_SECRET", base64.c_str(), 1), 0);

  std::vector<std::string> errors;
  std::vector<std::string> passwords;
  std::vector<std::string> lines;
  {
    auth::testing::LogCapture capture;
    for (const char* algorithm : {"hmacsha1", "hmacsha256"}) {
      for (int source = 0; source < 3; ++source) {
        HmacSignerConfig config = ExampleConfig();
        config.set_algorithm(algorithm);
        if (source == 0) config.set_device_secret(base64);
        if (source == 1) config.set_device_secret_file(path);
        if (source == 2) config.set_device_secret_env("HUBLINK_HMAC_LEAK_SECRET");
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
        absl::StatusOr<Credentials> bad = signer->As<TencentSigner>()->SignWith("bad", "x");
        ASSERT_FALSE(bad.ok());
        errors.emplace_back(bad.status().message());
      }
    }
    // Failure paths that still carry a secret in the config.
    std::vector<std::function<void(HmacSignerConfig&)>> failures = {
        [&](HmacSignerConfig& c) { c.set_device_secret(bad_secret); },
        [&](HmacSignerConfig& c) { c.set_device_secret(bad_secret.substr(0, 27)); },
        [&](HmacSignerConfig& c) { c.set_algorithm("md5"); },
        [&](HmacSignerConfig& c) { c.mutable_identity()->clear_device_name(); },
    };
    for (const auto& edit : failures) {
      HmacSignerConfig config = ExampleConfig();
      config.set_device_secret(base64);
      edit(config);
      absl::StatusOr<std::unique_ptr<Signer>> signer = Configure(config);
      ASSERT_FALSE(signer.ok());
      errors.emplace_back(signer.status().message());
    }
    lines = capture.lines();
  }
  unsetenv("HUBLINK_HMAC_LEAK_SECRET");

  ASSERT_FALSE(lines.empty());  // the signer does log; the point is what it leaves out
  ASSERT_GE(errors.size(), 9u);
  std::vector<std::string> needles = {base64,
                                      raw,
                                      absl::BytesToHexString(raw),
                                      absl::AsciiStrToUpper(absl::BytesToHexString(raw)),
                                      bad_secret,
                                      bad_secret.substr(0, 27)};
  for (const std::string& password : passwords) {
    needles.push_back(password);
    needles.push_back(password.substr(0, password.find(';')));
  }
  std::vector<std::string> haystacks = lines;
  haystacks.insert(haystacks.end(), errors.begin(), errors.end());
  EXPECT_TRUE(auth::testing::FindLeaks(haystacks, needles).empty())
      << absl::StrJoin(auth::testing::FindLeaks(haystacks, needles), "\n");
}

}  // namespace
}  // namespace hublink
