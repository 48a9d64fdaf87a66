// The benchmark's only test: each client binary runs every scenario once, tiny, against a real
// mosquitto over tcp and wss, and what it reports must be correct (every message delivered, every
// ping answered, every connect made). Speed is never asserted here; bench/run.sh measures it.
#include <cstdlib>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/bench_util.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace hublink {
namespace bench {
namespace {

using testing::MosquittoBroker;

std::string Runfile(const std::string& name) {
  const char* dir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(dir == nullptr ? "." : dir, "/hublink/bench/", name);
}

double Field(const std::map<std::string, std::string>& result, const std::string& key) {
  double value = -1;
  auto it = result.find(key);
  if (it == result.end() || !absl::SimpleAtod(it->second, &value)) {
    ADD_FAILURE() << "no " << key << " in the result";
  }
  return value;
}

class SmokeTest : public ::testing::TestWithParam<const char*> {
 public:
  static void SetUpTestSuite() {
    auto certs = testing::MakeTestCertificates(testing::TempDir(), {"127.0.0.1", "localhost"});
    ASSERT_TRUE(certs.ok()) << certs.status();
    ca_file_ = new std::string(certs->ca_file);
    MosquittoBroker::Options options;
    options.websockets = true;
    options.cert_file = certs->cert_file;
    options.key_file = certs->key_file;
    options.extra_config = {"max_queued_messages 0"};
    auto broker = MosquittoBroker::Start(options);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = broker->release();
  }
  static void TearDownTestSuite() {
    delete broker_;
    delete ca_file_;
  }

  // Each client: QoS 0 and QoS 1 messages all counted at the subscriber, ping-pongs all answered,
  // connects all made, allocations counted (the interposer sees something).
  void CheckClient(const std::string& binary, const std::string& transport) {
    for (int qos : {0, 1}) {
      auto result = Run(binary, transport,
                        absl::StrCat("--scenario=throughput --count=300 --size=100 --window=16 "
                                     "--seconds=20 --qos=",
                                     qos));
      EXPECT_EQ(Field(result, "received"), 300) << binary << " " << transport << " QoS " << qos;
      EXPECT_EQ(Field(result, "failed"), 0);
      EXPECT_EQ(Field(result, "stalled"), 0);
    }
    auto latency = Run(binary, transport, "--scenario=latency --count=10 --warmup=1 --seconds=20");
    EXPECT_EQ(Field(latency, "n"), 10) << binary << " " << transport;
    EXPECT_LE(Field(latency, "p50_us"), Field(latency, "max_us"));
    auto connect = Run(binary, transport, "--scenario=connect --count=2 --seconds=20");
    EXPECT_EQ(Field(connect, "n"), 2) << binary << " " << transport;
    auto allocs = Run(binary, transport, "--scenario=allocs --count=200 --warmup=20 --seconds=20");
    // Each QoS 0 publish is at least one allocation in both libraries today; zero would mean the
    // interposer was not linked.
    if (Field(allocs, "counting") == 1) {  // off under sanitizers
      EXPECT_GT(Field(allocs, "allocs_per_msg"), 0) << binary << " " << transport;
    }
  }

  std::map<std::string, std::string> Run(const std::string& binary, const std::string& transport,
                                         const std::string& args) {
    int port = transport == "tcp" ? broker_->tcp_port() : broker_->wss_port();
    std::string command = absl::StrCat(binary, " --transport=", transport, " --port=", port,
                                       " --ca_file=", *ca_file_, " --run_id=", ++run_, " ", args);
    absl::StatusOr<std::string> output = testing::RunCommand(command);
    EXPECT_TRUE(output.ok()) << output.status();
    return output.ok() ? ParseResult(*output) : std::map<std::string, std::string>();
  }

  static MosquittoBroker* broker_;
  static std::string* ca_file_;
  int run_ = 0;
};

MosquittoBroker* SmokeTest::broker_ = nullptr;
std::string* SmokeTest::ca_file_ = nullptr;

TEST_P(SmokeTest, Hublink) { CheckClient(Runfile("hublink_bench"), GetParam()); }

// The driver's hublink+spin variant (Client::Options::spin_before_sleep): still delivers everything.
TEST_P(SmokeTest, HublinkSpin) {
  auto result = Run(Runfile("hublink_bench"), GetParam(),
                    "--spin_us=20 --scenario=throughput --count=300 --size=100 --window=16 "
                    "--seconds=20 --qos=0");
  EXPECT_EQ(Field(result, "received"), 300);
  EXPECT_EQ(Field(result, "stalled"), 0);
  auto latency = Run(Runfile("hublink_bench"), GetParam(),
                     "--spin_us=20 --scenario=latency --count=10 "
                     "--warmup=1 --seconds=20");
  EXPECT_EQ(Field(latency, "n"), 10);
}

TEST_P(SmokeTest, Paho) { CheckClient(Runfile("paho_bench"), GetParam()); }

TEST_P(SmokeTest, PahoUnderNodelayShim) {
  auto result =
      // Under ASan the preloaded shim comes before the sanitizer runtime; it only calls dlsym and
      // setsockopt, so the link-order check may be waived.
      Run(absl::StrCat("env ASAN_OPTIONS=verify_asan_link_order=0:${ASAN_OPTIONS} LD_PRELOAD=",
                       Runfile("nodelay_shim.so"), " ", Runfile("paho_bench")),
          GetParam(), "--scenario=latency --count=10 --warmup=1 --seconds=20");
  EXPECT_EQ(Field(result, "n"), 10);
}

TEST_P(SmokeTest, Probe) {
  auto result = Run(Runfile("connect_probe"), GetParam(), "--count=2 --seconds=20");
  EXPECT_EQ(Field(result, "n"), 2);
  EXPECT_EQ(Field(result, "failures"), 0);
}

// `bench/run.sh --rows=NAME` passes its flags to the driver: a misspelled row or transport must
// fail before anything runs instead of printing an empty table.
TEST(DriverTest, UnknownRowsAndTransportsAreUsageErrors) {
  for (const char* flag : {"--rows=qos0,latncy", "--transports=tcp,quic"}) {
    absl::StatusOr<std::string> run =
        testing::RunCommand(absl::StrCat(Runfile("driver"), " ", flag, " 2>&1"));
    ASSERT_FALSE(run.ok()) << flag << " ran: " << *run;
    EXPECT_TRUE(absl::StrContains(run.status().message(), flag[2] == 'r'
                                                              ? "unknown row \"latncy\""
                                                              : "unknown transport \"quic\""))
        << run.status();
    EXPECT_FALSE(absl::StrContains(run.status().message(), "mosquitto pid")) << "a broker started";
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, SmokeTest, ::testing::Values("tcp", "wss"));

}  // namespace
}  // namespace bench
}  // namespace hublink
