// `hublink check`, `hublink plugins --describe` and --plugin through RunHublink: what a user types.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "tools/cli/cli_test_util.h"

namespace hublink {
namespace cli {
namespace {

std::string Write(absl::string_view name, absl::string_view contents) {
  std::string path = absl::StrCat(testing::TempDir(), "/", name);
  EXPECT_TRUE(testing::WriteFile(path, contents).ok());
  return path;
}

std::string Device() {
  return Write("device.json", R"({"auth_mode": "KEY", "region": "china",
      "productId": "ABCDEFGHIJ", "deviceName": "dev01",
      "key_deviceinfo": {"deviceSecret": "MDEyMzQ1Njc4OWFiY2RlZg=="}})");
}

TEST(HublinkCheck, AValidFileExitsZeroWithOneLine) {
  std::string path = Write("ok.textproto", R"pb(
    endpoint { host: "127.0.0.1" port: 1883 }
    transports { name: "tcp" }
    protocol { name: "mqtt" })pb");
  CliRun run = Hublink({"check", path});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, path + ": ok: 127.0.0.1:1883 tcp, protocol mqtt\n");
  EXPECT_EQ(run.err, "");
}

TEST(HublinkCheck, EveryProblemAtFileLineColumnAndExitOne) {
  std::string path = Write("bad.textproto",
                           "endpoint { host: \"h\" port: 1 }\n"
                           "transports { name: \"websocket\" }\n"
                           "protocol { name: \"mqtt\" }\n"
                           "signer { name: \"hmca\" }\n");
  CliRun run = Hublink({"check", path});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_TRUE(absl::StrContains(
      run.err, path + ":2:1: transports[0] (\"websocket\"): the first transport must be a base"))
      << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, path + ":4:1: signer (\"hmca\")")) << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "did you mean \"hmac\"")) << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "2 problems in " + path)) << run.err;
}

TEST(HublinkCheck, UsageErrors) {
  EXPECT_EQ(Hublink({"check"}).code, 2);
  EXPECT_EQ(Hublink({"check", "a", "b"}).code, 2);
  CliRun missing = Hublink({"check", "/nonexistent/p.textproto"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(absl::StrContains(missing.err, "/nonexistent/p.textproto")) << missing.err;
}

// Whatever --dump_pipeline writes, `hublink check` accepts.
TEST(HublinkCheck, DumpedPipelinesPassCheck) {
  std::string device = Device();
  std::vector<std::vector<std::string>> flag_sets = {
      {"--device_info=" + device},
      {"--device_info=" + device, "--transport=ws"},
      {"--device_info=" + device, "--transport=wss", "--insecure"},
      {"--device_info=" + device, "--transport=tls", "--keep_alive=30"},
      {"--device_info=" + device, "--transport=tcp", "--host=127.0.0.1", "--port=1883"},
      {"--device_info=" + device, "--transport=auto", "--allow_plain_fallback"},
      {"--device_info=" + device, "--transport=auto",
       "--state_file=" + testing::TempDir() + "/state"},
      {"--device_info=" + device, "--transport=wss", "--proxy=http://127.0.0.1:3128"},
      {"--device_info=" + device, "--transport=tls", "--proxy=socks5://127.0.0.1:1080"},
      {"--host=127.0.0.1", "--port=1883", "--client_id=c", "--username=u", "--password=p"},
  };
  for (const std::string& command : {std::string("pub"), std::string("sub")}) {
    for (size_t i = 0; i < flag_sets.size(); ++i) {
      std::vector<std::string> args = {command, "--topic=t"};
      if (command == "pub") args.push_back("--message=m");
      args.insert(args.end(), flag_sets[i].begin(), flag_sets[i].end());
      std::string dump = absl::StrCat(testing::TempDir(), "/dump_", command, i, ".textproto");
      args.push_back("--dump_pipeline=" + dump);
      SCOPED_TRACE(absl::StrJoin(args, " "));
      CliRun dumped = Hublink(args);
      ASSERT_EQ(dumped.code, 0) << dumped.err;
      CliRun checked = Hublink({"check", dump});
      EXPECT_EQ(checked.code, 0) << checked.err;
      EXPECT_TRUE(absl::StartsWith(checked.out, dump + ": ok: ")) << checked.out;
    }
  }
  // sign dumps too.
  std::string dump = absl::StrCat(testing::TempDir(), "/dump_sign.textproto");
  ASSERT_EQ(Hublink({"sign", "--device_info=" + device, "--dump_pipeline=" + dump}).code, 0);
  EXPECT_EQ(Hublink({"check", dump}).code, 0);
}

TEST(HublinkPluginsDescribe, PrintsTheConfigOfOnePlugin) {
  CliRun run = Hublink({"plugins", "--describe=websocket"});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_TRUE(absl::StartsWith(run.out, "websocket: wrapping transport")) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "config: hublink.transports.WebSocketConfig")) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "  path  string  default: \"\"\n")) << run.out;

  CliRun unknown = Hublink({"plugins", "--describe=tlss"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_TRUE(absl::StrContains(unknown.err, "did you mean \"tls\"?")) << unknown.err;
}

TEST(HublinkPluginFlag, EveryCommandRefusesAMissingLibraryNamingIt) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"plugins"},
           {"check", Write("plain.textproto",
                           "endpoint { host: \"h\" port: 1 }\n"
                           "transports { name: \"tcp\" }\n")},
           {"pub", "--topic=t", "--message=m", "--host=127.0.0.1", "--port=1"},
           {"sign", "--device_info=" + Device()},
           // The commands that parse their own flags get the libraries through the callback.
           {"fleet"},
           {"shadow", "get"},
           {"register"},
       }) {
    std::vector<std::string> with = args;
    with.push_back("--plugin=/nonexistent/lib.so");
    SCOPED_TRACE(absl::StrJoin(with, " "));
    CliRun run = Hublink(with);
    EXPECT_EQ(run.code, 1);
    EXPECT_TRUE(absl::StrContains(run.err, "plugin library /nonexistent/lib.so: no such file"))
        << run.err;
  }
}

}  // namespace
}  // namespace cli
}  // namespace hublink
