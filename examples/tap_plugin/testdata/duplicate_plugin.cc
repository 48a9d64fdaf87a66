// A plugin library whose plugins clash: the default entry point registers a transport named
// "tcp" (a built-in's name); RegisterAnotherTap registers one named "tap" (tap_plugin.so's).
#include <memory>

#include "google/protobuf/empty.pb.h"
#include "plugins/plugin_abi.h"
#include "plugins/registry.h"
#include "plugins/transport.h"

namespace {

class NamedFactory : public hublink::TransportFactory {
 public:
  explicit NamedFactory(absl::string_view name) : name_(name) {}
  absl::string_view name() const override { return name_; }
  const google::protobuf::Descriptor* config_type() const override {
    return google::protobuf::Empty::descriptor();
  }
  Kind kind() const override { return Kind::kWrapping; }
  absl::StatusOr<std::unique_ptr<hublink::ConfiguredTransport>> Configure(
      const google::protobuf::Message&) const override {
    return absl::UnimplementedError("duplicate_plugin: never configured");
  }

 private:
  absl::string_view name_;
};

}  // namespace

HUBLINK_DEFINE_PLUGIN_ENTRY(builder) {
  builder.AddTransport(std::make_unique<NamedFactory>("tcp"));
}

HUBLINK_DEFINE_PLUGIN_ENTRY_NAMED(RegisterAnotherTap, builder) {
  builder.AddTransport(std::make_unique<NamedFactory>("tap"));
}
