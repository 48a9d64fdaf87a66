#include "tools/cli/config_info.h"

#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "examples/tap_plugin/tap_transport.h"
#include "gtest/gtest.h"
#include "plugins/builtin.h"
#include "tests/test_util.h"

namespace hublink {
namespace cli {
namespace {

std::string Describe(const Registry& registry, absl::string_view name, absl::Status* status) {
  std::ostringstream out;
  *status = DescribePlugin(registry, name, out);
  return out.str();
}

TEST(DescribePlugin, TcpShowsKindConfigTypesDefaultsAndComments) {
  absl::Status status;
  std::string text = Describe(BuiltinRegistry(), "tcp", &status);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(absl::StartsWith(
      text,
      "tcp: base transport (owns the socket; first in a stack)\n"
      "config: hublink.transports.TcpConfig (transports/tcp/tcp.proto)\n"
      "  typed_config { [type.googleapis.com/hublink.transports.TcpConfig] { ... } }\n"
      "  The base transport: a non-blocking TCP socket.\n"))
      << text;
  // A field with a comment, one without (said so), an enum with its values.
  EXPECT_TRUE(absl::StrContains(text,
                                "  connect_timeout  google.protobuf.Duration  default: unset\n"
                                "      Per connect; defaults to the attempt's deadline (the "
                                "pipeline's policy), else 10 s.\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(text,
                                "  family  enum AddressFamily {ANY, IPV4, IPV6}  default: ANY\n"
                                "      (no comment in the proto)\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "  port  uint32  default: 0\n      1..65535, with host\n"))
      << text;  // a trailing comment
}

// Every field of every built-in plugin's config, nested ones included, is listed with a type, a
// default and either its comment or the honest "(no comment in the proto)".
TEST(DescribePlugin, EveryBuiltinFieldIsListedAndExplained) {
  const Registry& registry = BuiltinRegistry();
  for (const Registry::PluginInfo& plugin : registry.Plugins()) {
    SCOPED_TRACE(plugin.name);
    absl::Status status;
    std::string text = Describe(registry, plugin.name, &status);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_FALSE(absl::StrContains(text, "comments not available"))
        << "add its proto to config_descriptors_gen in tools/cli/BUILD\n"
        << text;
    for (int i = 0; i < plugin.config_type->field_count(); ++i) {
      EXPECT_TRUE(
          absl::StrContains(text, absl::StrCat("\n  ", plugin.config_type->field(i)->name(), "  ")))
          << plugin.config_type->field(i)->name() << " missing in\n"
          << text;
    }
    std::vector<std::string> lines = absl::StrSplit(text, '\n');
    for (size_t i = 0; i + 1 < lines.size(); ++i) {
      if (absl::StrContains(lines[i], "  default: ")) {
        EXPECT_TRUE(absl::StartsWith(lines[i + 1], "      "))
            << "no explanation after " << lines[i];
      }
    }
  }
}

TEST(DescribePlugin, NestedMessagesAreListedWithTheirPath) {
  absl::Status status;
  std::string text = Describe(BuiltinRegistry(), "mqtt", &status);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(absl::StrContains(text, "protocol")) << text;
  // A field of a nested hublink message, by its dotted path.
  bool nested = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "  ") && !absl::StartsWith(line, "   ") &&
        absl::StrContains(line.substr(0, line.find("  default")), ".")) {
      nested = true;
    }
  }
  EXPECT_TRUE(nested) << text;
}

TEST(DescribePlugin, APluginFromElsewhereSaysItsCommentsAreNotAvailable) {
  Registry::Builder builder;
  RegisterBuiltinPlugins(builder);
  acme::RegisterTapTransport(builder);
  absl::StatusOr<Registry> registry = std::move(builder).Build();
  ASSERT_TRUE(registry.ok()) << registry.status();
  absl::Status status;
  std::string text = Describe(*registry, "tap", &status);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(absl::StartsWith(text, "tap: wrapping transport")) << text;
  EXPECT_TRUE(absl::StrContains(text,
                                "  (comments not available: acme.tap.TapConfig is not "
                                "among the config protos whose comments are built into this "
                                "program or its plugin libraries;"))
      << text;
  EXPECT_TRUE(
      absl::StrContains(text, "  label  string  default: \"\"\n      (no comment available)\n"))
      << text;
}

TEST(DescribePlugin, AnUnknownNameGetsTheClosestOne) {
  absl::Status status;
  Describe(BuiltinRegistry(), "websockt", &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(status.message(), "did you mean \"websocket\"?")) << status;
}

struct Check {
  int code;
  std::string out;
  std::string err;
};

Check RunCheck(absl::string_view name, absl::string_view contents) {
  std::string path = absl::StrCat(testing::TempDir(), "/", name);
  EXPECT_TRUE(testing::WriteFile(path, contents).ok());
  std::ostringstream out, err;
  int code = CheckPipelineFile(path, BuiltinRegistry(), out, err);
  return {code, out.str(), err.str()};
}

TEST(CheckPipelineFile, AValidPipelineGetsOneLine) {
  std::string path = absl::StrCat(testing::TempDir(), "/good.textproto");
  Check check = RunCheck("good.textproto", R"pb(
    endpoint { host: "hub.example" port: 8883 }
    transports { name: "tcp" }
    transports { name: "tls" }
    protocol { name: "mqtt" }
    alternatives {
      endpoint { host: "hub.example" port: 443 }
      transports { name: "tcp" }
      transports { name: "tls" }
      transports { name: "websocket" }
    }
  )pb");
  EXPECT_EQ(check.code, 0) << check.err;
  EXPECT_EQ(check.out, absl::StrCat(path,
                                    ": ok: hub.example:8883 tcp > tls, then hub.example:443 "
                                    "tcp > tls > websocket, protocol mqtt\n"));
  EXPECT_EQ(check.err, "");
}

// Every problem, not just the first, each at the line and column of the field at fault.
TEST(CheckPipelineFile, EveryProblemIsReportedAtItsPosition) {
  std::string path = absl::StrCat(testing::TempDir(), "/bad.textproto");
  Check check = RunCheck("bad.textproto",
                         "endpoint { host: \"h\" }\n"      // 1: port missing
                         "transports { name: \"tcp\" }\n"  // 2
                         "transports {\n"                  // 3
                         "  name: \"tls\"\n"               // 4
                         "  typed_config {\n"              // 5
                         "    [type.googleapis.com/hublink.transports.TlsConfig] {\n"  // 6
                         "      server_name: \"h\"\n"                                  // 7
                         "      ca_file: \"/nonexistent/ca.pem\"\n"                    // 8
                         "    }\n"
                         "  }\n"
                         "}\n"
                         "transports { name: \"tcp\" }\n"        // 12: base again
                         "policy { reconnect { jitter: 2 } }\n"  // 13
                         "protocol { name: \"mqttt\" }\n");      // 14
  EXPECT_EQ(check.code, 1);
  EXPECT_EQ(check.out, "");
  std::vector<std::string> lines = absl::StrSplit(check.err, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 6u) << check.err;
  EXPECT_TRUE(absl::StartsWith(lines[0], path + ":1:1: endpoint.port is missing")) << lines[0];
  EXPECT_TRUE(absl::StartsWith(
      lines[1], path + ":8:7: transports[1] (\"tls\"): tls: ca_file: /nonexistent/ca.pem"))
      << lines[1];
  EXPECT_TRUE(absl::StartsWith(
      lines[2], path + ":12:1: transports[2] (\"tcp\"): only the first transport may be a base"))
      << lines[2];
  EXPECT_TRUE(absl::StartsWith(lines[3], path + ":13:22: policy.reconnect.jitter: 2")) << lines[3];
  EXPECT_TRUE(absl::StartsWith(lines[4], path + ":14:1: protocol (\"mqttt\")")) << lines[4];
  EXPECT_TRUE(absl::StrContains(lines[4], "did you mean \"mqtt\"")) << lines[4];
  EXPECT_EQ(lines[5], "5 problems in " + path);
}

TEST(CheckPipelineFile, JsonProblemsArePlacedByTheirFieldPath) {
  std::string path = absl::StrCat(testing::TempDir(), "/bad.json");
  Check check = RunCheck("bad.json",
                         "{\n"
                         "  \"endpoint\": {\"host\": \"h\", \"port\": 1},\n"
                         "  \"transports\": [\n"
                         "    {\"name\": \"tcp\"},\n"
                         "    {\"name\": \"websockt\"}\n"
                         "  ]\n"
                         "}\n");
  EXPECT_EQ(check.code, 1);
  EXPECT_TRUE(absl::StartsWith(check.err, path + ":5:5: transports[1] (\"websockt\")"))
      << check.err;
  EXPECT_TRUE(absl::StrContains(check.err, "did you mean \"websocket\"")) << check.err;
}

TEST(CheckPipelineFile, SyntaxErrorsKeepTheParsersPositionAndHelp) {
  std::string path = absl::StrCat(testing::TempDir(), "/typo.textproto");
  Check check = RunCheck("typo.textproto",
                         "endpoint { host: \"h\" port: 1 }\n"
                         "transports { nme: \"tcp\" }\n");
  EXPECT_EQ(check.code, 1);
  EXPECT_TRUE(absl::StartsWith(check.err, path + ":2:")) << check.err;
  EXPECT_TRUE(absl::StrContains(check.err, "did you mean \"name\"")) << check.err;
}

}  // namespace
}  // namespace cli
}  // namespace hublink
