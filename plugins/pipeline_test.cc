#include "plugins/pipeline.h"

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
  EXPECT_TRUE((*pipeline)->StackHasLayer(0, "fake_wrap"));
  EXPECT_FALSE((*pipeline)->StackHasLayer(0, "fake"));  // whole names only
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
  EXPECT_EQ(ResolveText("endpoint { port: 1 } transports { name: \"fake_base\" }").message(),
            "test.textproto: endpoint.host is missing; set the host name or address to connect to");
  EXPECT_EQ(ResolveText("endpoint { host: \"h\" } transports { name: \"fake_base\" }").message(),
            "test.textproto: endpoint.port is missing or 0; set a port 1..65535");
  EXPECT_EQ(
      ResolveText("endpoint { host: \"h\" port: 0 } transports { name: \"fake_base\" }").message(),
      "test.textproto: endpoint.port is missing or 0; set a port 1..65535");
  EXPECT_EQ(ResolveText("endpoint { host: \"h\" port: 65536 } transports { name: \"fake_base\" }")
                .message(),
            "test.textproto: endpoint.port: 65536 is not a port (1..65535)");
  EXPECT_EQ(
      ResolveText("endpoint { host: \"h\" port: 1 }\n"
                  "transports { name: \"fake_base\" }\n"
                  "alternatives { endpoint { host: \"h2\" } transports { name: \"fake_base\" } }")
          .message(),
      "test.textproto: alternatives[0].endpoint.port is missing or 0; set a port 1..65535");
  EXPECT_TRUE(absl::StartsWith(ResolveText("endpoint { host: \"h\" port: 1 }").message(),
                               "test.textproto: transports is missing; a stack needs"));
  EXPECT_TRUE(
      absl::StrContains(ResolveText("endpoint { host: \"h\" port: 1 } transports { }").message(),
                        "transports[0]: transport: neither name nor typed_config is set; "
                        "registered: fake_base, fake_wrap"));
}

TEST_F(PipelineTest, MisspelledConfigTypeSuggestsTheRegisteredOneAndItsPlugin) {
  constexpr char kText[] =
      R"pb(endpoint { host: "h" port: 1 }
           transports { name: "fake_base" }
           transports {
             typed_config {
               [type.googleapis.com/hublink.testing.FakewrapConfig] { label: "x" }
             }
           })pb";
  auto config = ParsePipelineText(kText, "t.textproto", registry_.get());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(config.status().message(), "t.textproto:5:")) << config.status();
  EXPECT_TRUE(absl::EndsWith(
      config.status().message(),
      ": Could not find type "
      "\"type.googleapis.com/hublink.testing.FakewrapConfig\" stored in google.protobuf.Any; "
      "did you mean [type.googleapis.com/hublink.testing.FakeWrapConfig], the config of "
      "transport \"fake_wrap\"?"))
      << config.status();
  // Without a registry the suggestion comes from the message types linked in.
  auto unregistered = ParsePipelineText(kText, "t.textproto");
  ASSERT_FALSE(unregistered.ok());
  EXPECT_TRUE(
      absl::EndsWith(unregistered.status().message(),
                     "; did you mean [type.googleapis.com/hublink.testing.FakeWrapConfig]?"))
      << unregistered.status();
}

TEST_F(PipelineTest, UnknownConfigTypeListsWhatThePluginsTake) {
  auto config = ParsePipelineText(R"pb(transports {
                                         typed_config {
                                           [type.googleapis.com/hublink.Endpoint] {}
                                         }
                                       })pb",
                                  "t.textproto", registry_.get());
  ASSERT_TRUE(config.ok()) << config.status();  // a linked type parses; Resolve rejects it
  auto misspelled =
      ParsePipelineText("transports { typed_config { [type.googleapis.com/acme.Quic] {} } }",
                        "t.textproto", registry_.get());
  ASSERT_FALSE(misspelled.ok());
  EXPECT_TRUE(absl::StrContains(misspelled.status().message(),
                                "; the registered plugins take: hublink.testing.FakeBaseConfig "
                                "(transport \"fake_base\"), hublink.testing.FakeWrapConfig "
                                "(transport \"fake_wrap\")"))
      << misspelled.status();
}

TEST_F(PipelineTest, MisspelledFieldSuggestsTheFieldAndNamesThePlugin) {
  auto config =
      ParsePipelineText(R"pb(endpoint { host: "h" port: 1 }
                             transports {
                               name: "fake_base"
                               typed_config {
                                 [type.googleapis.com/hublink.testing.FakeBaseConfig] { lable: "x" }
                               }
                             })pb",
                        "t.textproto", registry_.get());
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(absl::StartsWith(config.status().message(), "t.textproto:5:")) << config.status();
  EXPECT_TRUE(absl::EndsWith(
      config.status().message(),
      ": Message type \"hublink.testing.FakeBaseConfig\" has no field named "
      "\"lable\"; did you mean \"label\"? (hublink.testing.FakeBaseConfig is the config of "
      "transport \"fake_base\")"))
      << config.status();
  // The pipeline's own messages get the same help, and a name far from every field lists them.
  auto top = ParsePipelineText("endpoint { host: \"h\" port: 1 }\ntransport { name: \"x\" }",
                               "t.textproto");
  ASSERT_FALSE(top.ok());
  EXPECT_TRUE(absl::EndsWith(top.status().message(),
                             "has no field named \"transport\"; did you mean \"transports\"?"))
      << top.status();
  auto far = ParsePipelineText("endpoint { hostname: \"h\" }", "t.textproto");
  ASSERT_FALSE(far.ok());
  EXPECT_TRUE(absl::EndsWith(far.status().message(), "; its fields: host, port")) << far.status();
}

TEST_F(PipelineTest, JsonParseErrorsGetTheSameHelp) {
  auto type = ParsePipelineJson(
      R"({"transports": [{"typedConfig": {"@type": "type.googleapis.com/hublink.testing.FakewrapConfig"}}]})",
      "p.json", registry_.get());
  ASSERT_FALSE(type.ok());
  EXPECT_TRUE(absl::EndsWith(type.status().message(),
                             "unknown type: hublink.testing.FakewrapConfig for type Any; did you "
                             "mean \"type.googleapis.com/hublink.testing.FakeWrapConfig\", the "
                             "config of transport \"fake_wrap\"?"))
      << type.status();
  auto field = ParsePipelineJson(
      R"({"transports": [{"typedConfig": {"@type": "type.googleapis.com/hublink.testing.FakeBaseConfig", "lable": "x"}}]})",
      "p.json", registry_.get());
  ASSERT_FALSE(field.ok());
  EXPECT_EQ(field.status().message(),
            "p.json: lable: Cannot find field; did you mean \"label\" (a field of "
            "hublink.testing.FakeBaseConfig, the config of transport \"fake_base\")?");
}

TEST_F(PipelineTest, LoadPipelineFileSuggestsWithItsRegistry) {
  std::string path = ::testing::TempDir() + "/misspelled.textproto";
  {
    std::ofstream out(path);
    out << "endpoint { host: \"h\" port: 1 }\ntransports { name: \"fake_base\" }\n"
           "transports { typed_config { [type.googleapis.com/hublink.testing.fakewrapconfig] {} } "
           "}\n";
  }
  auto loaded = LoadPipelineFile(path, *registry_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_TRUE(absl::StartsWith(loaded.status().message(), path + ":3:")) << loaded.status();
  EXPECT_TRUE(absl::EndsWith(loaded.status().message(),
                             "did you mean [type.googleapis.com/hublink.testing.FakeWrapConfig], "
                             "the config of transport \"fake_wrap\"?"))
      << loaded.status();
}

TEST_F(PipelineTest, MisspelledPluginNameSuggestsTheRegisteredOne) {
  absl::Status status = ResolveText(R"pb(
    endpoint { host: "h" port: 1 }
    transports { name: "fake_bsae" })pb");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(),
            "test.textproto: transports[0] (\"fake_bsae\"): unknown transport \"fake_bsae\"; "
            "registered: fake_base, fake_wrap; did you mean \"fake_base\"?");
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

// Loading them is the registry builder's job (plugin_library_test); Resolve takes them as read.
TEST_F(PipelineTest, PluginLibrariesAreLeftToTheRegistryBuilder) {
  absl::Status status = ResolveText(R"pb(
    endpoint { host: "h" port: 1 }
    transports { name: "fake_base" }
    plugin_libraries { path: "x.so" })pb");
  EXPECT_TRUE(status.ok()) << status;
  // A registry built without them does not know their plugins, and the error says why.
  status = ResolveText(R"pb(
    endpoint { host: "h" port: 1 }
    transports { name: "tap" }
    plugin_libraries { path: "x.so" })pb");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(status.message(), "this pipeline lists plugin_libraries"))
      << status;
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
