#include "plugins/registry.h"

#include "gtest/gtest.h"
#include "tests/fake_plugins.h"
#include "tests/fake_plugins.pb.h"

namespace hublink {
namespace {

using ::hublink::testing::MakeFakeTransportFactory;
using ::hublink::testing::RegisterFakePlugins;

Registry BuildFakes() {
  Registry::Builder builder;
  RegisterFakePlugins(builder);
  auto registry = std::move(builder).Build();
  EXPECT_TRUE(registry.ok()) << registry.status();
  return std::move(registry).value();
}

TEST(RegistryTest, FindsByNameAndByTypeUrl) {
  Registry registry = BuildFakes();
  auto by_name = registry.FindTransport("fake_wrap");
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  EXPECT_EQ((*by_name)->name(), "fake_wrap");
  auto by_type = registry.FindTransport("", "type.googleapis.com/hublink.testing.FakeBaseConfig");
  ASSERT_TRUE(by_type.ok()) << by_type.status();
  EXPECT_EQ((*by_type)->name(), "fake_base");
  auto protocol = registry.FindProtocol("fake_protocol");
  ASSERT_TRUE(protocol.ok());
  auto signer = registry.FindSigner("", "hublink.testing.FakeSignerConfig");
  ASSERT_TRUE(signer.ok()) << signer.status();
}

TEST(RegistryTest, TypeUrlWinsOverAMissingName) {
  Registry registry = BuildFakes();
  auto found = registry.FindTransport("", "type.googleapis.com/hublink.testing.FakeWrapConfig");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ((*found)->name(), "fake_wrap");
}

TEST(RegistryTest, UnknownNameListsEveryRegisteredName) {
  Registry registry = BuildFakes();
  auto found = registry.FindTransport("quic");
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(found.status().message(),
            "unknown transport \"quic\"; registered: fake_base, fake_wrap");
}

TEST(RegistryTest, NameAndTypeUrlOfDifferentPluginsIsAnError) {
  Registry registry = BuildFakes();
  auto found =
      registry.FindTransport("fake_base", "type.googleapis.com/hublink.testing.FakeWrapConfig");
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(found.status().message().find("belongs to plugin \"fake_wrap\""),
            absl::string_view::npos)
      << found.status();
}

TEST(RegistryTest, ConfigOfAnotherFamilyIsNotFound) {
  Registry registry = BuildFakes();
  auto found = registry.FindTransport("", "type.googleapis.com/hublink.testing.FakeSignerConfig");
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(found.status().message().find("registered: fake_base, fake_wrap"),
            absl::string_view::npos);
}

TEST(RegistryTest, DuplicateNameIsRejected) {
  Registry::Builder builder;
  RegisterFakePlugins(builder);
  builder.AddTransport(MakeFakeTransportFactory("fake_base", true));
  auto registry = std::move(builder).Build();
  ASSERT_FALSE(registry.ok());
  EXPECT_EQ(registry.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.status().message(), "registry: two transport plugins are named \"fake_base\"");
}

TEST(RegistryTest, DuplicateConfigTypeIsRejected) {
  Registry::Builder builder;
  RegisterFakePlugins(builder);
  builder.AddTransport(MakeFakeTransportFactory("other_base", true));  // also takes FakeBaseConfig
  auto registry = std::move(builder).Build();
  ASSERT_FALSE(registry.ok());
  EXPECT_EQ(registry.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.status().message(),
            "registry: transport plugins \"fake_base\" and \"other_base\" both take "
            "hublink.testing.FakeBaseConfig");
}

TEST(RegistryTest, RegistrationOrderDoesNotMatter) {
  Registry::Builder a;
  a.AddTransport(MakeFakeTransportFactory("fake_wrap", false));
  a.AddTransport(MakeFakeTransportFactory("fake_base", true));
  auto registry = std::move(a).Build();
  ASSERT_TRUE(registry.ok());
  EXPECT_EQ(registry->TransportNames(), BuildFakes().TransportNames());
}

TEST(RegistryTest, CopiesShareFactories) {
  Registry registry = BuildFakes();
  Registry copy = registry;
  EXPECT_EQ(*registry.FindTransport("fake_base"), *copy.FindTransport("fake_base"));
}

}  // namespace
}  // namespace hublink
