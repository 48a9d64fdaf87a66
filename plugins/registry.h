// The plugin registry: every transport, protocol and signer factory an application can use, by
// name.
//
// Built once, then immutable, so lookups need no locks and registration order never matters:
//
//   hublink::Registry::Builder builder;
//   hublink::RegisterBuiltinPlugins(builder);      // tcp, tls, websocket, mqtt, hmac, rsa, ...
//   mycompany::RegisterTapTransport(builder);      // out-of-tree plugins register the same way
//   absl::StatusOr<hublink::Registry> registry = std::move(builder).Build();
//
// Build() fails when two factories of one family share a name or a config message type. A pipeline
// refers to a plugin Envoy-style, by `name` and/or `typed_config`; lookup is by the config's type
// URL first, then by name, and "not found" errors list every registered name (and suggest the
// closest one: "did you mean \"websocket\"?").
#ifndef HUBLINK_PLUGINS_REGISTRY_H_
#define HUBLINK_PLUGINS_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "plugins/protocol.h"
#include "plugins/signer.h"
#include "plugins/transport.h"

namespace hublink {

namespace registry_internal {

// Factories of one family, indexed by name and by config message full name.
template <typename Factory>
class FactoryTable {
 public:
  absl::Status Add(std::shared_ptr<const Factory> factory, absl::string_view family);
  // `type_url` may be empty; otherwise "type.googleapis.com/pkg.Message" or just "pkg.Message".
  absl::StatusOr<const Factory*> Find(absl::string_view name, absl::string_view type_url,
                                      absl::string_view family) const;
  std::vector<std::string> Names() const;
  // Every factory, in registration order.
  const std::vector<std::shared_ptr<const Factory>>& factories() const { return factories_; }

 private:
  std::vector<std::shared_ptr<const Factory>> factories_;
  absl::flat_hash_map<std::string, const Factory*> by_name_;
  absl::flat_hash_map<std::string, const Factory*> by_config_type_;
};

}  // namespace registry_internal

class Registry {
 public:
  class Builder {
   public:
    Builder& AddTransport(std::unique_ptr<TransportFactory> factory);
    Builder& AddProtocol(std::unique_ptr<ProtocolFactory> factory);
    Builder& AddSigner(std::unique_ptr<SignerFactory> factory);
    // Fails with kAlreadyExists naming the clash when two factories share a name or config type.
    absl::StatusOr<Registry> Build() &&;

   private:
    std::vector<std::shared_ptr<const TransportFactory>> transports_;
    std::vector<std::shared_ptr<const ProtocolFactory>> protocols_;
    std::vector<std::shared_ptr<const SignerFactory>> signers_;
  };

  // kNotFound lists the registered names; kInvalidArgument when name and type URL point at
  // different plugins. Factories live as long as any copy of this registry.
  absl::StatusOr<const TransportFactory*> FindTransport(absl::string_view name,
                                                        absl::string_view type_url = "") const;
  absl::StatusOr<const ProtocolFactory*> FindProtocol(absl::string_view name,
                                                      absl::string_view type_url = "") const;
  absl::StatusOr<const SignerFactory*> FindSigner(absl::string_view name,
                                                  absl::string_view type_url = "") const;

  std::vector<std::string> TransportNames() const { return transports_.Names(); }
  std::vector<std::string> ProtocolNames() const { return protocols_.Names(); }
  std::vector<std::string> SignerNames() const { return signers_.Names(); }

  // One registered plugin, for listings and for errors that name the plugin a config belongs to.
  struct PluginInfo {
    std::string family;  // "transport", "protocol" or "signer"
    std::string name;
    const google::protobuf::Descriptor* config_type;
  };
  // Every plugin: transports, then protocols, then signers, each in registration order.
  std::vector<PluginInfo> Plugins() const;

 private:
  Registry() = default;
  registry_internal::FactoryTable<TransportFactory> transports_;
  registry_internal::FactoryTable<ProtocolFactory> protocols_;
  registry_internal::FactoryTable<SignerFactory> signers_;
};

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_REGISTRY_H_
