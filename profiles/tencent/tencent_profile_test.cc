#include "profiles/tencent/tencent_profile.h"

#include <sys/stat.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "auth/hmac/hmac.pb.h"
#include "auth/rsa/rsa.pb.h"
#include "gtest/gtest.h"
#include "protocols/mqtt/mqtt.pb.h"
#include "tests/test_util.h"
#include "transports/tls/tls.pb.h"
#include "transports/websocket/websocket.pb.h"

namespace hublink {
namespace tencent {
namespace {

// The seed's device_info.json, as the SDK ships it.
constexpr char kKeyDevice[] = R"({
    "auth_mode":"KEY",
    "region": "china",
    "productId":"7CN3UQ4VGT",
    "deviceName":"test1",
    "key_deviceinfo":{
        "deviceSecret":"MDEyMzQ1Njc4OWFiY2RlZg=="
    }
})";

std::vector<std::string> Names(const Pipeline& pipeline) {
  std::vector<std::string> names;
  for (const PluginConfig& t : pipeline.transports()) names.push_back(t.name());
  return names;
}

TEST(TencentProfileTest, KeyDeviceDefaultsToVerifiedWssOn443WithHmac) {
  auto info = ParseDeviceInfo(kKeyDevice, "device_info.json");
  ASSERT_TRUE(info.ok()) << info.status();
  auto pipeline = BuildPipeline(*info, ProfileOptions());
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  EXPECT_EQ(pipeline->endpoint().host(), "7CN3UQ4VGT.ap-guangzhou.iothub.tencentdevices.com");
  EXPECT_EQ(pipeline->endpoint().port(), 443u);
  EXPECT_EQ(Names(*pipeline), (std::vector<std::string>{"tcp", "tls", "websocket"}));
  transports::TlsConfig tls;
  ASSERT_TRUE(pipeline->transports(1).typed_config().UnpackTo(&tls));
  EXPECT_FALSE(tls.insecure_skip_verify());
  EXPECT_TRUE(tls.ca_file().empty()) << "system roots by default";
  transports::WebSocketConfig websocket;
  ASSERT_TRUE(pipeline->transports(2).typed_config().UnpackTo(&websocket));
  EXPECT_EQ(websocket.subprotocols(0), "mqtt");
  protocols::MqttConfig mqtt;
  ASSERT_TRUE(pipeline->protocol().typed_config().UnpackTo(&mqtt));
  EXPECT_EQ(mqtt.client_id(), "7CN3UQ4VGTtest1");
  EXPECT_EQ(mqtt.keep_alive().seconds(), 120);
  // The hub has no QoS 2, retain or will: the profile says so, and the session refuses them.
  EXPECT_EQ(mqtt.broker().name(), "Tencent IoT Hub");
  EXPECT_EQ(mqtt.broker().max_qos(), 1u);
  EXPECT_FALSE(mqtt.broker().retain_available());
  EXPECT_FALSE(mqtt.broker().will_available());
  EXPECT_EQ(pipeline->signer().name(), "hmac");
  auth::HmacSignerConfig hmac;
  ASSERT_TRUE(pipeline->signer().typed_config().UnpackTo(&hmac));
  EXPECT_EQ(hmac.identity().product_id(), "7CN3UQ4VGT");
  EXPECT_EQ(hmac.identity().device_name(), "test1");
  EXPECT_EQ(hmac.device_secret(), "MDEyMzQ1Njc4OWFiY2RlZg==");
  EXPECT_EQ(pipeline->policy().reconnect().max_attempts(), 0u) << "never gives up";
}

TEST(TencentProfileTest, TransportChoicesAndOverrides) {
  DeviceInfo info = *ParseDeviceInfo(kKeyDevice, "d");
  ProfileOptions options;
  options.set_transport(ProfileOptions::WS);
  auto ws = BuildPipeline(info, options);
  ASSERT_TRUE(ws.ok());
  EXPECT_EQ(ws->endpoint().port(), 80u);
  EXPECT_EQ(Names(*ws), (std::vector<std::string>{"tcp", "websocket"}));

  options.set_transport(ProfileOptions::TLS);
  auto tls = BuildPipeline(info, options);
  ASSERT_TRUE(tls.ok());
  EXPECT_EQ(tls->endpoint().host(), "7CN3UQ4VGT.iotcloud.tencentdevices.com");
  EXPECT_EQ(tls->endpoint().port(), 8883u);
  transports::TlsConfig tls_config;
  ASSERT_TRUE(tls->transports(1).typed_config().UnpackTo(&tls_config));
  EXPECT_EQ(tls_config.psk().identity(), "7CN3UQ4VGTtest1");
  EXPECT_EQ(tls_config.psk().key_base64(), "MDEyMzQ1Njc4OWFiY2RlZg==");

  options.set_transport(ProfileOptions::TCP);
  auto tcp = BuildPipeline(info, options);
  ASSERT_TRUE(tcp.ok());
  EXPECT_EQ(tcp->endpoint().port(), 1883u);
  EXPECT_EQ(Names(*tcp), (std::vector<std::string>{"tcp"}));

  options.set_transport(ProfileOptions::WSS);
  options.set_host("127.0.0.1");
  options.set_port(18443);
  options.set_ca_file("/tmp/ca.pem");
  options.set_signature_ttl_seconds(3600);
  auto local = BuildPipeline(info, options);
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->endpoint().host(), "127.0.0.1");
  EXPECT_EQ(local->endpoint().port(), 18443u);
  ASSERT_TRUE(local->transports(1).typed_config().UnpackTo(&tls_config));
  EXPECT_EQ(tls_config.ca_file(), "/tmp/ca.pem");
  auth::HmacSignerConfig hmac;
  ASSERT_TRUE(local->signer().typed_config().UnpackTo(&hmac));
  EXPECT_EQ(hmac.identity().ttl().seconds(), 3600);
}

// Issue 14 part 3: AUTO offers the documented ports in turn, each with its own budget, and plain
// WS only when asked.
TEST(TencentProfileTest, AutoOffersTlsThenWssAndPlainWsOnlyWhenAllowed) {
  DeviceInfo info = *ParseDeviceInfo(kKeyDevice, "d");
  ProfileOptions options;
  options.set_transport(ProfileOptions::AUTO);
  auto automatic = BuildPipeline(info, options);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(automatic->endpoint().host(), "7CN3UQ4VGT.iotcloud.tencentdevices.com");
  EXPECT_EQ(automatic->endpoint().port(), 8883u);
  EXPECT_EQ(Names(*automatic), (std::vector<std::string>{"tcp", "tls"}));
  EXPECT_EQ(automatic->policy().connect_timeout().seconds(), 5);
  EXPECT_EQ(automatic->policy().handshake_timeout().seconds(), 10);
  ASSERT_EQ(automatic->alternatives_size(), 1);
  const Stack& wss = automatic->alternatives(0);
  EXPECT_EQ(wss.endpoint().host(), "7CN3UQ4VGT.ap-guangzhou.iothub.tencentdevices.com");
  EXPECT_EQ(wss.endpoint().port(), 443u);
  ASSERT_EQ(wss.transports_size(), 3);
  EXPECT_EQ(wss.transports(1).name(), "tls");
  EXPECT_EQ(wss.transports(2).name(), "websocket");
  EXPECT_EQ(wss.connect_timeout().seconds(), 5);
  EXPECT_EQ(wss.handshake_timeout().seconds(), 10);
  transports::TlsConfig tls_config;
  ASSERT_TRUE(wss.transports(1).typed_config().UnpackTo(&tls_config));
  EXPECT_FALSE(tls_config.has_psk()) << "PSK is for 8883 only";

  options.set_allow_plain_websocket(true);
  auto with_ws = BuildPipeline(info, options);
  ASSERT_TRUE(with_ws.ok()) << with_ws.status();
  ASSERT_EQ(with_ws->alternatives_size(), 2);
  EXPECT_EQ(with_ws->alternatives(1).endpoint().port(), 80u);
  ASSERT_EQ(with_ws->alternatives(1).transports_size(), 2);
  EXPECT_EQ(with_ws->alternatives(1).transports(1).name(), "websocket");

  options.set_port(1234);
  auto with_port = BuildPipeline(info, options);
  ASSERT_FALSE(with_port.ok());
  EXPECT_TRUE(absl::StrContains(with_port.status().message(), "AUTO tries each documented port"))
      << with_port.status();
  options.set_port(0);
  options.set_transport(ProfileOptions::WSS);
  auto plain_without_auto = BuildPipeline(info, options);
  ASSERT_FALSE(plain_without_auto.ok());
  EXPECT_TRUE(absl::StrContains(plain_without_auto.status().message(), "allow_plain_websocket"))
      << plain_without_auto.status();
}

TEST(TencentProfileTest, RegionsMapToTheirDomains) {
  DeviceInfo info = *ParseDeviceInfo(kKeyDevice, "d");
  info.set_region("us-east");
  EXPECT_EQ(*BrokerHost(info, ProfileOptions::WSS), "7CN3UQ4VGT.us-east.iothub.tencentdevices.com");
  EXPECT_EQ(*BrokerHost(info, ProfileOptions::TCP),
            "7CN3UQ4VGT.us-east.iotcloud.tencentdevices.com");
  info.set_region("");
  EXPECT_EQ(*BrokerHost(info, ProfileOptions::WSS),
            "7CN3UQ4VGT.ap-guangzhou.iothub.tencentdevices.com");
  info.set_region("mars");
  auto unknown = BuildPipeline(info, ProfileOptions());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(),
            "region: unknown region \"mars\"; known: china, us-east, europe, ap-bangkok");
}

TEST(TencentProfileTest, MissingAndWrongFieldsAreNamed) {
  auto check = [](absl::string_view json, absl::string_view expected) {
    auto info = ParseDeviceInfo(json, "d");
    ASSERT_TRUE(info.ok()) << info.status();
    absl::Status status = ValidateDeviceInfo(*info);
    EXPECT_EQ(status.message(), expected);
  };
  check(R"({"auth_mode":"KEY","deviceName":"d","key_deviceinfo":{"deviceSecret":"eA=="}})",
        "productId: missing");
  check(R"({"auth_mode":"KEY","productId":"P","key_deviceinfo":{"deviceSecret":"eA=="}})",
        "deviceName: missing");
  check(R"({"auth_mode":"KEY","productId":"P","deviceName":"d"})",
        "key_deviceinfo.deviceSecret: missing (auth_mode is KEY)");
  check(R"({"auth_mode":"PSK","productId":"P","deviceName":"d"})",
        "auth_mode: \"PSK\" is neither \"KEY\" nor \"CERT\"");
  check(
      R"({"auth_mode":"CERT","productId":"P","deviceName":"d","cert_deviceinfo":{"devCertFile":"a"}})",
      "cert_deviceinfo.devPrivateKeyFile: missing (auth_mode is CERT)");
  auto broken = ParseDeviceInfo("{\"productId\": ", "broken.json");
  ASSERT_FALSE(broken.ok());
  EXPECT_TRUE(absl::StartsWith(broken.status().message(), "broken.json: not a device_info.json"));
}

TEST(TencentProfileTest, CertDeviceFilesAreFoundUnderCertsAndSignedWithRsa) {
  std::string dir = absl::StrCat(testing::TempDir(), "/certdev");
  mkdir(dir.c_str(), 0755);
  mkdir((dir + "/certs").c_str(), 0755);
  ASSERT_TRUE(testing::WriteFile(dir + "/certs/dev.crt", "cert").ok());
  ASSERT_TRUE(testing::WriteFile(dir + "/dev.key", "key").ok());
  ASSERT_TRUE(testing::WriteFile(dir + "/device_info.json", R"({
      "auth_mode": "CERT", "productId": "PID0000001", "deviceName": "cdev", "region": "europe",
      "cert_deviceinfo": {"devCertFile": "dev.crt", "devPrivateKeyFile": "dev.key"},
      "subDev": {"sub_productId": "S", "sub_devName": "s"}, "someFutureKey": 1})")
                  .ok());
  auto info = ReadDeviceInfo(dir + "/device_info.json");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->cert_deviceinfo().dev_cert_file(), dir + "/certs/dev.crt");
  EXPECT_EQ(info->cert_deviceinfo().dev_private_key_file(), dir + "/dev.key");
  EXPECT_EQ(info->sub_dev().sub_product_id(), "S");
  auto pipeline = BuildPipeline(*info, ProfileOptions());
  ASSERT_TRUE(pipeline.ok());
  EXPECT_EQ(pipeline->endpoint().host(), "PID0000001.europe.iothub.tencentdevices.com");
  EXPECT_EQ(pipeline->signer().name(), "rsa");
  auth::RsaSignerConfig rsa;
  ASSERT_TRUE(pipeline->signer().typed_config().UnpackTo(&rsa));
  EXPECT_EQ(rsa.private_key_file(), dir + "/dev.key");

  ProfileOptions mtls;
  mtls.set_transport(ProfileOptions::TLS);
  auto tls_pipeline = BuildPipeline(*info, mtls);
  ASSERT_TRUE(tls_pipeline.ok());
  transports::TlsConfig tls;
  ASSERT_TRUE(tls_pipeline->transports(1).typed_config().UnpackTo(&tls));
  EXPECT_EQ(tls.cert_file(), dir + "/certs/dev.crt");
  EXPECT_EQ(tls.key_file(), dir + "/dev.key");

  ASSERT_TRUE(testing::WriteFile(dir + "/missing.json", R"({
      "auth_mode": "CERT", "productId": "P", "deviceName": "c",
      "cert_deviceinfo": {"devCertFile": "nope.crt", "devPrivateKeyFile": "dev.key"}})")
                  .ok());
  auto missing = ReadDeviceInfo(dir + "/missing.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(missing.status().message(),
                                "cert_deviceinfo.devCertFile: nope.crt not found"))
      << missing.status();
}

}  // namespace
}  // namespace tencent
}  // namespace hublink
