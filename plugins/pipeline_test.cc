#include "plugins/pipeline.h"

#include <fstream>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/fake_plugins.h"

namespace hublink {
namespace {

using ::hublink::testing::DescribeFakeStack;
using ::hublink::testing::RegisterFakePlugins;

constexpr char kGood[] = R"pb(
  endpoint { host: "127.0.0.1" port: 8080 }
  transports {
    name: "fake_base"
    typed_config {
      [type.googleapis.com/hublink.testing.FakeBaseConfig] { label: "sock" }
    }
  }
  transports {
    typed_config {
      [type.googleapis.com/hublink.testing.FakeWrapConfig] { label: "outer" }
    }
  }
  protocol {
    name: "fake_protocol"
    typed_config {
      [type.googleapis.com/hublink.testing.FakeProtocolConfig] { client_id: "dev1" }
    }
  }
  signer { name: "fake_signer" }
  policy {
    reconnect {
      initial_delay { seconds: 1 }
      multiplier: 2
      jitter: 0.2
    }
  }
)pb";

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Registry::Builder builder;
    RegisterFakePlugins(builder);
    registry_ = std::make_unique<Registry>(std::move(builder).Build().value());
    loop_ = std::move(EventLoop::Create()).value();
  }

  absl::Status ResolveText(absl::string_view text) {
    auto config = ParsePipelineText(text, "test.textproto");
    if (!config.ok()) return config.status();
    return ResolvedPipeline::Resolve(*config, *registry_, "test.textproto").status();
  }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<EventLoop> loop_;
};

TEST_F(PipelineTest, ResolvesAndBuildsTheStackLowestFirst) {
  auto config = ParsePipelineText(kGood, "good");
  ASSERT_TRUE(config.ok()) << config.status();
  auto pipeline = ResolvedPipeline::Resolve(*config, *registry_);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  EXPECT_EQ((*pipeline)->DescribeStack(), "fake_base > fake_wrap");
  EXPECT_NE((*pipeline)->protocol(), nullptr);
  ASSERT_NE((*pipeline)->signer(), nullptr);
  ConnectContext context(*loop_, "127.0.0.1", 8080);
  auto top = (*pipeline)->CreateStack(context);
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_EQ(DescribeFakeStack(**top), "fake_wrap(outer)>fake_base(sock)");
  EXPECT_EQ(context.signer(), (*pipeline)->signer());
}

TEST_F(PipelineTest, JsonWorksToo) {
  constexpr char kJson[] = R"({
    "endpoint": {"host": "::1", "port": 443},
    "transports": [
      {"name": "fake_base"},
      {"typedConfig": {"@type": "type.googleapis.com/hublink.testing.FakeWrapConfig", "label": "j"}}
    ]
  })";
  auto config = ParsePipelineJson(kJson, "p.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto pipeline = ResolvedPipeline::Resolve(*config, *registry_);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  ConnectContext context(*loop_, "::1", 443);
  EXPECT_EQ(DescribeFakeStack(*(*pipeline)->CreateStack(context).value()),
            "fake_wrap(j)>fake_base()");
}

TEST_F(PipelineTest, TextParseErrorsCarryLineAndColumn) {
  auto config =
      ParsePipelineText("endpoint { host: \"a\" }\ntransports { nmae: \"tcp\" }\n", "x.textproto");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(config.status().message(), "x.textproto:2:18: ")) << config.status();
  EXPECT_TRUE(absl::StrContains(config.status().message(), "nmae")) << config.status();
}

TEST_F(PipelineTest, JsonSyntaxErrorsCarryLineAndColumn) {
  auto config = ParsePipelineJson("{\n  \"endpoint\": {\"host\" \"a\"}\n}", "y.json");
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(absl::StartsWith(config.status().message(), "y.json:2:23: ")) << config.status();
  auto unknown = ParsePipelineJson(R"({"endpoint": {"hots": "a"}})", "z.json");
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(absl::StrContains(unknown.status().message(), "hots")) << unknown.status();
}

TEST_F(PipelineTest, FirstTransportMustBeABaseTransport) {
  absl::Status status = ResolveText(R"pb(
    endpoint { host: "h" port: 1 }
    transports { name: "fake_wrap" })pb");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      absl::StartsWith(status.message(),
                       "test.textproto: transports[0] (\"fake_wrap\"): the first transport must "
                       "be a base transport"))
      << status;
}

TEST_F(PipelineTest, OnlyTheFirstTransportMayBeABaseTransport) {
  absl::Status status = ResolveText(R"pb(
    endpoint { host: "h" port: 1 }
    transports { name: "fake_base" }
    transports { name: "fake_base" })pb");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "transports[1] (\"fake_base\"): only the first"))
      << status;
}

TEST_F(PipelineTest, UnknownPluginListsRegisteredOnes) {
  absl::Status status = ResolveText(R"pb(
    endpoint { host: "h" port: 1 }
    transports { name: "fake_base" }
    transports { name: "quic" })pb");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(),
            "test.textproto: transports[1] (\"quic\"): unknown transport \"quic\"; registered: "
            "fake_base, fake_wrap");
}

TEST_F(PipelineTest, WrongConfigTypeNamesThePluginAndTheExpectedType) {
  absl::Status status = ResolveText(R"pb(
    endpoint { host: "h" port: 1 }
    transports {
      name: "fake_base"
      typed_config {
        [type.googleapis.com/hublink.testing.FakeSignerConfig] {}
      }
    })pb");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "test.textproto: transports[0] (\"fake_base\"): transport \"fake_base\" takes "
            "hublink.testing.FakeBaseConfig, but typed_config is hublink.testing.FakeSignerConfig");
}

TEST_F(PipelineTest, PluginConfigErrorsArePrefixedWithWhere) {
  absl::Status status = ResolveText(R"pb(
    endpoint { host: "h" port: 1 }
    transports {
      name: "fake_base"
      typed_config {
        [type.googleapis.com/hublink.testing.FakeBaseConfig] { reject: true }
      }
    })pb");
  EXPECT_EQ(status.message(),
            "test.textproto: transports[0] (\"fake_base\"): fake_base: reject: set");
  status = ResolveText(R"pb(
    endpoint { host: "h" port: 1 }
    transports { name: "fake_base" }
    protocol { name: "fake_protocol" })pb");
  EXPECT_EQ(status.message(),
            "test.textproto: protocol (\"fake_protocol\"): fake_protocol: client_id: missing");
}

TEST_F(PipelineTest, MissingFieldsAreNamed) {
  EXPECT_EQ(ResolveText("transports { name: \"fake_base\" }").message(),
            "test.textproto: endpoint.host: missing");
  EXPECT_EQ(ResolveText("endpoint { host: \"h\" } transports { name: \"fake_base\" }").message(),
            "test.textproto: endpoint.port: 0 is not a port (1..65535)");
  EXPECT_TRUE(absl::StartsWith(ResolveText("endpoint { host: \"h\" port: 1 }").message(),
                               "test.textproto: transports: missing"));
  EXPECT_TRUE(
      absl::StrContains(ResolveText("endpoint { host: \"h\" port: 1 } transports { }").message(),
                        "transports[0]: transport: neither name nor typed_config is set; "
                        "registered: fake_base, fake_wrap"));
}

TEST_F(PipelineTest, PolicyIsValidated) {
  EXPECT_EQ(ResolveText(R"pb(endpoint { host: "h" port: 1 }
                             transports { name: "fake_base" }
                             policy { reconnect { multiplier: 0.5 } })pb")
                .message(),
            "test.textproto: policy.reconnect.multiplier: 0.5 would shrink the delay; use >= 1");
  EXPECT_EQ(ResolveText(R"pb(endpoint { host: "h" port: 1 }
                             transports { name: "fake_base" }
                             policy { reconnect { jitter: 1.5 } })pb")
                .message(),
            "test.textproto: policy.reconnect.jitter: 1.5 is outside 0..1");
  EXPECT_EQ(ResolveText(R"pb(endpoint { host: "h" port: 1 }
                             transports { name: "fake_base" }
                             policy { connect_timeout { seconds: -1 } })pb")
                .message(),
            "test.textproto: policy.connect_timeout: must not be negative");
}

TEST_F(PipelineTest, AlternativeStacksAreValidatedAndBuildable) {
  auto config = ParsePipelineText(absl::StrCat(kGood, R"pb(
                                    alternatives {
                                      endpoint { host: "h" port: 443 }
                                      transports { name: "fake_base" }
                                    }
                                    alternatives {
                                      endpoint { host: "h" port: 80 }
                                      transports { name: "fake_wrap" }
                                    })pb"),
                                  "alt");
  ASSERT_TRUE(config.ok()) << config.status();
  auto bad = ResolvedPipeline::Resolve(*config, *registry_, "alt");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(
      absl::StrContains(bad.status().message(), "alternatives[1].transports[0] (\"fake_wrap\")"))
      << bad.status();
  config->mutable_alternatives()->RemoveLast();
  auto good = ResolvedPipeline::Resolve(*config, *registry_, "alt");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ((*good)->stack_count(), 2);
  EXPECT_EQ((*good)->stack_endpoint(1).port(), 443u);
  ConnectContext context(*loop_, "h", 443);
  EXPECT_EQ(DescribeFakeStack(*(*good)->CreateStack(context, 1).value()), "fake_base()");
  EXPECT_EQ((*good)->CreateStack(context, 2).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_F(PipelineTest, PluginLibrariesAreRejectedAsNotYetSupported) {
  absl::Status status = ResolveText(R"pb(
    endpoint { host: "h" port: 1 }
    transports { name: "fake_base" }
    plugin_libraries { path: "x.so" })pb");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
}

TEST_F(PipelineTest, FilesAreReadByExtensionAndErrorsNameThePath) {
  std::string dir = ::testing::TempDir();
  std::string text_path = dir + "/p.textproto";
  std::ofstream(text_path) << kGood;
  auto loaded = LoadPipelineFile(text_path, *registry_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  std::string json_path = dir + "/p.json";
  std::ofstream(json_path)
      << R"({"endpoint": {"host": "h", "port": 1}, "transports": [{"name": "nope"}]})";
  auto bad = LoadPipelineFile(json_path, *registry_);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StartsWith(bad.status().message(), json_path + ": transports[0] (\"nope\")"))
      << bad.status();
  auto missing = LoadPipelineFile(dir + "/absent.textproto", *registry_);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "absent.textproto"))
      << missing.status();
}

TEST_F(PipelineTest, DumpedTextParsesBackToTheSamePipeline) {
  auto config = ParsePipelineText(kGood, "good");
  ASSERT_TRUE(config.ok());
  std::string text = PipelineToText(*config);
  EXPECT_TRUE(absl::StrContains(text, "[type.googleapis.com/hublink.testing.FakeBaseConfig]"))
      << text;
  auto again = ParsePipelineText(text, "dumped");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->SerializeAsString(), config->SerializeAsString());
}

}  // namespace
}  // namespace hublink
