#include "profiles/tencent/dynreg.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "profiles/tencent/tencent_profile.h"
#include "tests/test_util.h"

namespace hublink {
namespace tencent {
namespace {

constexpr char kSecret[] = "PRODUCT_SECRETKEY";

// A product id the profile accepts (10 characters), for replies written to device_info.json.
DynregParams DeviceParams() {
  DynregParams params;
  params.product_id = "ABCDEFGHIJ";
  params.product_secret = kSecret;
  params.device_name = "dev01";
  params.host = "127.0.0.1";
  params.timestamp = 1700000000;
  params.nonce = 7;
  return params;
}

DynregParams VectorParams() {
  DynregParams params;
  params.product_id = "PRODUCT_ID1";
  params.product_secret = kSecret;
  params.device_name = "DEVICENAME1";
  params.host = "ap-guangzhou.gateway.tencentdevices.com";
  params.algorithm = DynregAlgorithm::kHmacSha1;
  params.timestamp = 1629362589;
  params.nonce = 333464802;
  return params;
}

// Tencent's published sign-tool vector (docs/tencent-services.md).
TEST(Dynreg, PublishedVector) {
  const DynregParams params = VectorParams();
  const std::string body = DynregBody(params.product_id, params.device_name);
  EXPECT_EQ(body, R"({"ProductId":"PRODUCT_ID1","DeviceName":"DEVICENAME1"})");
  EXPECT_EQ(DynregStringToSign(params, body),
            "POST\nap-guangzhou.gateway.tencentdevices.com\n/device/register\n\nhmacsha1\n"
            "1629362589\n333464802\n88eef715f4c42652ef51b274f174f4f81a393f75");
  EXPECT_EQ(DynregSignature(params, body), "7u3+tAPlt8O4mPpBm3lambv23sw=");
}

TEST(Dynreg, Sha256SignatureMatchesOpenssl) {
  DynregParams params = VectorParams();
  params.algorithm = DynregAlgorithm::kHmacSha256;
  const std::string body = DynregBody(params.product_id, params.device_name);
  const std::string text = DynregStringToSign(params, body);
  EXPECT_NE(text.find("\nhmacsha256\n"), std::string::npos);
  // The body hash and the HMAC, each computed by the openssl CLI.
  absl::StatusOr<std::string> hash = testing::RunCommand(
      absl::StrCat("printf '%s' '", body, "' | openssl dgst -sha256 -r | cut -d' ' -f1"));
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_EQ(text.substr(text.rfind('\n') + 1), absl::StripAsciiWhitespace(*hash));
  absl::StatusOr<std::string> mac = testing::RunCommand(
      absl::StrCat("printf '", absl::StrReplaceAll(text, {{"\n", "\\n"}}),
                   "' | openssl dgst -sha256 -hmac ", kSecret, " -binary | base64"));
  ASSERT_TRUE(mac.ok()) << mac.status();
  EXPECT_EQ(DynregSignature(params, body), absl::StripAsciiWhitespace(*mac));
}

TEST(Dynreg, RequestCarriesTheDocumentedHeaders) {
  absl::StatusOr<http::Request> request = BuildDynregRequest(VectorParams());
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->method, "POST");
  EXPECT_EQ(request->target, "/device/register");
  auto find = [&](absl::string_view name) {
    for (const auto& h : request->headers) {
      if (h.first == name) return h.second;
    }
    return std::string("<missing>");
  };
  EXPECT_EQ(find("X-TC-Algorithm"), "hmacsha1");
  EXPECT_EQ(find("X-TC-Timestamp"), "1629362589");
  EXPECT_EQ(find("X-TC-Nonce"), "333464802");
  EXPECT_EQ(find("X-TC-Signature"), "7u3+tAPlt8O4mPpBm3lambv23sw=");
  EXPECT_EQ(find("Content-Type"), "application/json; charset=utf-8");
}

TEST(Dynreg, RefusesShortSecretsAndEmptyFields) {
  DynregParams params = VectorParams();
  params.product_secret = "short";
  EXPECT_EQ(BuildDynregRequest(params).status().code(), absl::StatusCode::kInvalidArgument);
  params = VectorParams();
  params.device_name = "";
  EXPECT_EQ(BuildDynregRequest(params).status().code(), absl::StatusCode::kInvalidArgument);
  params = VectorParams();
  params.device_name = "a\nb";
  EXPECT_EQ(BuildDynregRequest(params).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DynregHost("mars").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*DynregHost(""), "ap-guangzhou.gateway.tencentdevices.com");
  EXPECT_EQ(*DynregHost("us-east"), "us-east.gateway.tencentdevices.com");
  EXPECT_EQ(DynregBody("a\"b", "c\\d"), R"({"ProductId":"a\"b","DeviceName":"c\\d"})");
}

// key = the secret's first 16 characters, IV = sixteen ASCII '0', both as hex for openssl enc.
std::string OpensslEnc(bool decrypt) {
  return absl::StrCat("openssl enc -aes-128-cbc -base64 -A", decrypt ? " -d" : "", " -K ",
                      absl::BytesToHexString(std::string(kSecret).substr(0, 16)), " -iv ",
                      absl::BytesToHexString("0000000000000000"));
}

TEST(Dynreg, PayloadRoundTripsWithOpensslEnc) {
  const std::string plain = R"({"encryptionType":2,"psk":"MDEyMzQ1Njc4OWFiY2RlZg=="})";
  absl::StatusOr<std::string> ours = EncryptDynregPayload(plain, kSecret);
  ASSERT_TRUE(ours.ok()) << ours.status();
  absl::StatusOr<std::string> by_openssl =
      testing::RunCommand(absl::StrCat("printf '%s' '", *ours, "' | ", OpensslEnc(true)));
  ASSERT_TRUE(by_openssl.ok()) << by_openssl.status();
  EXPECT_EQ(*by_openssl, plain);

  absl::StatusOr<std::string> theirs =
      testing::RunCommand(absl::StrCat("printf '%s' '", plain, "' | ", OpensslEnc(false)));
  ASSERT_TRUE(theirs.ok()) << theirs.status();
  absl::StatusOr<std::string> decrypted =
      DecryptDynregPayload(absl::StripAsciiWhitespace(*theirs), kSecret);
  ASSERT_TRUE(decrypted.ok()) << decrypted.status();
  EXPECT_EQ(*decrypted, plain);
}

TEST(Dynreg, ZeroPaddedPayloadDecrypts) {
  // 47 bytes + one NUL: what a hub that zero-pads would send, built with openssl -nopad.
  const std::string plain = R"({"encryptionType": 2, "psk":"c2VjcmV0c2VjcmV0"})";
  ASSERT_EQ(plain.size() % 16, 15u);
  absl::StatusOr<std::string> cipher = testing::RunCommand(
      absl::StrCat("printf '%s\\0' '", plain, "' | ", OpensslEnc(false), " -nopad"));
  ASSERT_TRUE(cipher.ok()) << cipher.status();
  absl::StatusOr<std::string> decrypted =
      DecryptDynregPayload(absl::StripAsciiWhitespace(*cipher), kSecret);
  ASSERT_TRUE(decrypted.ok()) << decrypted.status();
  EXPECT_EQ(*decrypted, plain);
  EXPECT_EQ(DecryptDynregPayload("not base64!", kSecret).status().code(),
            absl::StatusCode::kDataLoss);
}

http::Response Reply(int code, std::string body) {
  http::Response response;
  response.status_code = code;
  response.reason = code == 200 ? "OK" : "Error";
  response.body = std::move(body);
  return response;
}

TEST(Dynreg, KeyDeviceReplyBecomesADeviceInfoTheProfileReads) {
  const std::string psk = "MDEyMzQ1Njc4OWFiY2RlZg==";
  absl::StatusOr<std::string> payload =
      EncryptDynregPayload(absl::StrCat(R"({"encryptionType":2,"psk":")", psk, "\"}"), kSecret);
  ASSERT_TRUE(payload.ok());
  absl::StatusOr<DynregResult> result =
      ParseDynregResponse(Reply(200, absl::StrCat(R"({"Response":{"Len":53,"Payload":")", *payload,
                                                  R"(","RequestId":"r1"}})")),
                          DeviceParams(), "");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->device.auth_mode(), "KEY");
  EXPECT_EQ(result->device.key_deviceinfo().device_secret(), psk);

  const std::string path = testing::TempDir() + "/dynreg_key_device_info.json";
  ASSERT_TRUE(WriteDeviceInfoFile(*result, path).ok());
  absl::StatusOr<DeviceInfo> read = ReadDeviceInfo(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->product_id(), "ABCDEFGHIJ");
  EXPECT_EQ(read->device_name(), "dev01");
  EXPECT_EQ(read->region(), "china");
  EXPECT_EQ(read->key_deviceinfo().device_secret(), psk);
  EXPECT_TRUE(read->product_secret().empty());
}

TEST(Dynreg, CertDeviceReplyWritesTheCertificateAndKeyBeside) {
  const std::string dir = testing::TempDir() + "/dynreg_cert";
  ASSERT_TRUE(testing::RunCommand("rm -rf " + dir + " && mkdir -p " + dir).ok());
  absl::StatusOr<testing::TestCertificates> certs = testing::MakeTestCertificates(dir, {"dev"});
  ASSERT_TRUE(certs.ok()) << certs.status();
  absl::StatusOr<std::string> cert = testing::ReadFile(certs->cert_file);
  absl::StatusOr<std::string> key = testing::ReadFile(certs->key_file);
  ASSERT_TRUE(cert.ok() && key.ok());
  auto escape = [](const std::string& pem) { return absl::StrReplaceAll(pem, {{"\n", "\\n"}}); };
  absl::StatusOr<std::string> payload =
      EncryptDynregPayload(absl::StrCat(R"({"encryptionType":1,"clientCert":")", escape(*cert),
                                        R"(","clientKey":")", escape(*key), "\"}"),
                           kSecret);
  ASSERT_TRUE(payload.ok());
  absl::StatusOr<DynregResult> result = ParseDynregResponse(
      Reply(200, absl::StrCat(R"({"Response":{"Len":1,"Payload":")", *payload, "\"}}")),
      DeviceParams(), "us-east");
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string path = dir + "/device_info.json";
  ASSERT_TRUE(WriteDeviceInfoFile(*result, path).ok());
  absl::StatusOr<DeviceInfo> read = ReadDeviceInfo(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->auth_mode(), "CERT");
  EXPECT_EQ(read->region(), "us-east");
  absl::StatusOr<std::string> written = testing::ReadFile(read->cert_deviceinfo().dev_cert_file());
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, *cert);
}

TEST(Dynreg, RefusalsMapToCodes) {
  const DynregParams params = VectorParams();
  auto code = [&](int status, const std::string& body) {
    return ParseDynregResponse(Reply(status, body), params, "").status().code();
  };
  EXPECT_EQ(
      code(
          200,
          R"({"Response":{"Error":{"Code":"InvalidParameterValue.SignatureFailure","Message":"x"}}})"),
      absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(
      code(200,
           R"({"Response":{"Error":{"Code":"ResourceNotFound.ProductNotExist","Message":"x"}}})"),
      absl::StatusCode::kNotFound);
  EXPECT_EQ(
      code(200,
           R"({"Response":{"Error":{"Code":"FailedOperation.DynRegDisabled","Message":"x"}}})"),
      absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(401, "no"), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(code(503, "busy"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(code(200, "not json"), absl::StatusCode::kDataLoss);
  EXPECT_EQ(code(200, R"({"Response":{"Len":0}})"), absl::StatusCode::kDataLoss);
  // Encrypted with another secret: does not decrypt into JSON.
  absl::StatusOr<std::string> payload =
      EncryptDynregPayload(R"({"encryptionType":2,"psk":"YQ=="})", "ANOTHER_SECRET_KEY");
  ASSERT_TRUE(payload.ok());
  EXPECT_EQ(code(200, absl::StrCat(R"({"Response":{"Len":1,"Payload":")", *payload, "\"}}")),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace tencent
}  // namespace hublink
