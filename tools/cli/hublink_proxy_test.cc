// `hublink pub` through real proxies (tinyproxy, microsocks) to a real mosquitto, chosen by --proxy
// or by the environment, and the password masked in --dump_pipeline.
#include <stdlib.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "tools/cli/cli_test_util.h"
#include "transports/http_connect/proxy_test_util.h"

namespace hublink {
namespace cli {
namespace {

using ::hublink::testing::MosquittoBroker;
using ::hublink::testing::ProxyDaemon;

// proxy_test_util links the conformance suite, which this test does not instantiate.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TransportConformanceTest);

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

class HublinkProxyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto certs = testing::MakeTestCertificates(testing::TempDir(), {"127.0.0.1", "localhost"});
    ASSERT_TRUE(certs.ok()) << certs.status();
    ca_file_ = new std::string(certs->ca_file);
    MosquittoBroker::Options options;
    options.websockets = true;
    options.cert_file = certs->cert_file;
    options.key_file = certs->key_file;
    auto broker = MosquittoBroker::Start(options);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = broker->release();
  }
  static void TearDownTestSuite() {
    delete broker_;
    delete ca_file_;
  }

  // pub QoS 1 over `transport` to the broker: a PUBACK means the tunnel carried both ways.
  std::vector<std::string> Pub(const std::string& transport) {
    int port = transport == "ws" ? broker_->ws_port() : broker_->wss_port();
    std::vector<std::string> args = {"pub",
                                     "--host=127.0.0.1",
                                     absl::StrCat("--port=", port),
                                     "--transport=" + transport,
                                     "--topic=t",
                                     "--message=through the proxy",
                                     "--qos=1",
                                     "--timeout=20"};
    if (transport == "wss") args.push_back("--ca_file=" + *ca_file_);
    return args;
  }

  static MosquittoBroker* broker_;
  static std::string* ca_file_;
};

MosquittoBroker* HublinkProxyTest::broker_ = nullptr;
std::string* HublinkProxyTest::ca_file_ = nullptr;

TEST_F(HublinkProxyTest, ProxyFlagReachesTheBrokerThroughTinyproxyWithBasicAuth) {
  auto proxy = ProxyDaemon::StartTinyproxy({"dev", "s3cret", {}});
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  std::vector<std::string> args = Pub("ws");
  args.push_back(absl::StrCat("--proxy=http://dev:s3%63ret@127.0.0.1:", (*proxy)->port()));
  CliRun run = Hublink(args);
  EXPECT_EQ(run.code, 0) << run.err << "\n" << (*proxy)->Log();
  EXPECT_TRUE(absl::StrContains((*proxy)->Log(), "CONNECT")) << (*proxy)->Log();
  EXPECT_FALSE(absl::StrContains(run.err, "s3cret")) << run.err;
  // A wrong password is the proxy's refusal, said as such.
  args.back() = absl::StrCat("--proxy=http://dev:wrong@127.0.0.1:", (*proxy)->port());
  args.push_back("--timeout=5");
  CliRun refused = Hublink(args);
  EXPECT_EQ(refused.code, 1);
  EXPECT_TRUE(absl::StrContains(refused.err, "http_connect")) << refused.err;
}

TEST_F(HublinkProxyTest, HttpsProxyFromTheEnvironmentCarriesWss) {
  auto proxy = ProxyDaemon::StartTinyproxy({});
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  ScopedEnv https_proxy("HTTPS_PROXY", absl::StrCat("http://127.0.0.1:", (*proxy)->port()));
  CliRun run = Hublink(Pub("wss"));
  EXPECT_EQ(run.code, 0) << run.err << "\n" << (*proxy)->Log();
  EXPECT_TRUE(absl::StrContains((*proxy)->Log(), "CONNECT")) << (*proxy)->Log();
}

TEST_F(HublinkProxyTest, NoProxyAndAnEmptyProxyFlagGoDirect) {
  // A proxy that is not there: going through it would fail.
  absl::StatusOr<int> nowhere = testing::PickFreePort();
  ASSERT_TRUE(nowhere.ok());
  ScopedEnv https_proxy("HTTPS_PROXY", absl::StrCat("http://127.0.0.1:", *nowhere));
  EXPECT_EQ(Hublink(Pub("wss")).code, 1) << "the environment's proxy was not used";
  std::vector<std::string> args = Pub("wss");
  args.push_back("--no_proxy");
  CliRun direct = Hublink(args);
  EXPECT_EQ(direct.code, 0) << direct.err;
  args.back() = "--proxy=";
  CliRun empty = Hublink(args);
  EXPECT_EQ(empty.code, 0) << empty.err;
  ScopedEnv no_proxy("NO_PROXY", "localhost,127.0.0.0/8");
  CliRun listed = Hublink(Pub("wss"));
  EXPECT_EQ(listed.code, 0) << listed.err;
}

TEST_F(HublinkProxyTest, Socks5hThroughMicrosocks) {
  auto proxy = ProxyDaemon::StartMicrosocks({"dev", "pw"});
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  std::vector<std::string> args = Pub("wss");
  args.push_back(absl::StrCat("--proxy=socks5h://dev:pw@127.0.0.1:", (*proxy)->port()));
  CliRun run = Hublink(args);
  EXPECT_EQ(run.code, 0) << run.err << "\n" << (*proxy)->Log();
}

TEST_F(HublinkProxyTest, DumpPipelineMasksAPasswordFromTheFlag) {
  std::vector<std::string> args = Pub("wss");
  args.push_back("--proxy=http://dev:topsecret@127.0.0.1:3128");
  args.push_back("--dump_pipeline=-");
  CliRun run = Hublink(args);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "http_connect")) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "password: \"***\"")) << run.out;
  EXPECT_FALSE(absl::StrContains(run.out, "topsecret")) << run.out;
}

}  // namespace
}  // namespace cli
}  // namespace hublink
