#include "tests/fake_plugins.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/fake_plugins.pb.h"

namespace hublink {
namespace testing {
namespace {

class FakeTransport : public Transport {
 public:
  FakeTransport(std::string description, std::unique_ptr<Transport> lower)
      : description_(std::move(description)), lower_(std::move(lower)) {}
  void Open(TransportListener*) override {}
  absl::Status Write(absl::string_view) override {
    return absl::FailedPreconditionError("fake: never opens");
  }
  void Close() override {}
  size_t BufferedBytes() const override { return 0; }

  std::string Describe() const {
    if (lower_ == nullptr) return description_;
    return absl::StrCat(description_, ">", static_cast<const FakeTransport&>(*lower_).Describe());
  }

 private:
  std::string description_;
  std::unique_ptr<Transport> lower_;
};

class ConfiguredFake : public ConfiguredTransport {
 public:
  explicit ConfiguredFake(std::string description) : description_(std::move(description)) {}
  absl::StatusOr<std::unique_ptr<Transport>> Create(ConnectContext&,
                                                    std::unique_ptr<Transport> lower) override {
    return std::unique_ptr<Transport>(new FakeTransport(description_, std::move(lower)));
  }

 private:
  std::string description_;
};

class FakeTransportFactory : public TransportFactory {
 public:
  FakeTransportFactory(std::string name, bool base) : name_(std::move(name)), base_(base) {}
  absl::string_view name() const override { return name_; }
  const google::protobuf::Descriptor* config_type() const override {
    if (name_ == "fake_base") return FakeBaseConfig::descriptor();
    if (name_ == "fake_wrap") return FakeWrapConfig::descriptor();
    // Other names reuse a config type on purpose: the registry must reject that clash.
    return base_ ? FakeBaseConfig::descriptor() : FakeWrapConfig::descriptor();
  }
  Kind kind() const override { return base_ ? Kind::kBase : Kind::kWrapping; }
  absl::StatusOr<std::unique_ptr<ConfiguredTransport>> Configure(
      const google::protobuf::Message& message) const override {
    std::string label;
    if (base_) {
      const auto& config = static_cast<const FakeBaseConfig&>(message);
      if (config.reject()) return absl::InvalidArgumentError("fake_base: reject: set");
      label = config.label();
    } else {
      label = static_cast<const FakeWrapConfig&>(message).label();
    }
    return std::unique_ptr<ConfiguredTransport>(
        new ConfiguredFake(absl::StrCat(name_, "(", label, ")")));
  }

 private:
  std::string name_;
  bool base_;
};

class FakeProtocol : public Protocol {
 public:
  void OnLinkOpen(ProtocolLink&) override {}
  void OnLinkData(absl::string_view) override {}
  void OnLinkClosed(const absl::Status&) override {}
};

class ConfiguredFakeProtocol : public ConfiguredProtocol {
 public:
  absl::StatusOr<std::unique_ptr<Protocol>> Create(EventLoop&) override {
    return std::unique_ptr<Protocol>(new FakeProtocol());
  }
};

class FakeProtocolFactory : public ProtocolFactory {
 public:
  absl::string_view name() const override { return "fake_protocol"; }
  const google::protobuf::Descriptor* config_type() const override {
    return FakeProtocolConfig::descriptor();
  }
  absl::StatusOr<std::unique_ptr<ConfiguredProtocol>> Configure(
      const google::protobuf::Message& message) const override {
    if (static_cast<const FakeProtocolConfig&>(message).client_id().empty()) {
      return absl::InvalidArgumentError("fake_protocol: client_id: missing");
    }
    return std::unique_ptr<ConfiguredProtocol>(new ConfiguredFakeProtocol());
  }
};

class FakeSigner : public Signer {
 public:
  explicit FakeSigner(std::string user) : user_(std::move(user)) {}
  absl::StatusOr<Credentials> Sign(const SignRequest& request) override {
    Credentials credentials;
    credentials.username = user_;
    credentials.password = absl::StrCat(absl::ToUnixSeconds(request.now));
    return credentials;
  }

 private:
  std::string user_;
};

class FakeSignerFactory : public SignerFactory {
 public:
  absl::string_view name() const override { return "fake_signer"; }
  const google::protobuf::Descriptor* config_type() const override {
    return FakeSignerConfig::descriptor();
  }
  absl::StatusOr<std::unique_ptr<Signer>> Configure(
      const google::protobuf::Message& message) const override {
    return std::unique_ptr<Signer>(
        new FakeSigner(static_cast<const FakeSignerConfig&>(message).user()));
  }
};

}  // namespace

std::unique_ptr<TransportFactory> MakeFakeTransportFactory(std::string name, bool base) {
  return std::make_unique<FakeTransportFactory>(std::move(name), base);
}

void RegisterFakePlugins(Registry::Builder& builder) {
  builder.AddTransport(MakeFakeTransportFactory("fake_base", true));
  builder.AddTransport(MakeFakeTransportFactory("fake_wrap", false));
  builder.AddProtocol(std::make_unique<FakeProtocolFactory>());
  builder.AddSigner(std::make_unique<FakeSignerFactory>());
}

std::string DescribeFakeStack(const Transport& top) {
  return static_cast<const FakeTransport&>(top).Describe();
}

}  // namespace testing
}  // namespace hublink
