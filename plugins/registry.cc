#include "plugins/registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "plugins/did_you_mean.h"
#include "plugins/status_macros.h"

namespace hublink {
namespace registry_internal {
namespace {

absl::string_view TypeNameFromUrl(absl::string_view type_url) {
  size_t slash = type_url.rfind('/');
  return slash == absl::string_view::npos ? type_url : type_url.substr(slash + 1);
}

}  // namespace

template <typename Factory>
absl::Status FactoryTable<Factory>::Add(std::shared_ptr<const Factory> factory,
                                        absl::string_view family) {
  if (factory == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("registry: null ", family, " factory"));
  }
  std::string name(factory->name());
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("registry: a ", family, " factory has no name"));
  }
  if (factory->config_type() == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("registry: ", family, " \"", name, "\" declares no config type"));
  }
  std::string config_type = factory->config_type()->full_name();
  if (auto it = by_name_.find(name); it != by_name_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("registry: two ", family, " plugins are named \"", name, "\""));
  }
  if (auto it = by_config_type_.find(config_type); it != by_config_type_.end()) {
    return absl::AlreadyExistsError(absl::StrCat("registry: ", family, " plugins \"",
                                                 it->second->name(), "\" and \"", name,
                                                 "\" both take ", config_type));
  }
  by_name_[name] = factory.get();
  by_config_type_[config_type] = factory.get();
  factories_.push_back(std::move(factory));
  return absl::OkStatus();
}

template <typename Factory>
absl::StatusOr<const Factory*> FactoryTable<Factory>::Find(absl::string_view name,
                                                           absl::string_view type_url,
                                                           absl::string_view family) const {
  const Factory* by_name = nullptr;
  if (auto it = by_name_.find(name); !name.empty() && it != by_name_.end()) by_name = it->second;
  if (!type_url.empty()) {
    absl::string_view type_name = TypeNameFromUrl(type_url);
    auto it = by_config_type_.find(type_name);
    if (it != by_config_type_.end()) {
      if (!name.empty() && it->second->name() != name) {
        return absl::InvalidArgumentError(absl::StrCat(
            family, " \"", name, "\": typed_config is ", type_name, ", which belongs to plugin \"",
            it->second->name(), "\"",
            by_name ? absl::StrCat("; \"", name, "\" takes ", by_name->config_type()->full_name())
                    : ""));
      }
      return it->second;
    }
    if (by_name != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(family, " \"", name, "\" takes ",
                                                     by_name->config_type()->full_name(),
                                                     ", but typed_config is ", type_name));
    }
    std::vector<std::string> types;
    for (const auto& entry : by_config_type_) types.push_back(entry.first);
    std::sort(types.begin(), types.end());
    std::string meant = ClosestMatch(type_name, types);
    return absl::NotFoundError(
        absl::StrCat("no ", family, " plugin takes config ", type_name,
                     name.empty() ? "" : absl::StrCat(" or is named \"", name, "\""),
                     "; registered: ", absl::StrJoin(Names(), ", "),
                     meant.empty() ? ""
                                   : absl::StrCat("; did you mean ", meant, " (", family, " \"",
                                                  by_config_type_.at(meant)->name(), "\")?")));
  }
  if (by_name != nullptr) return by_name;
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        family,
        ": neither name nor typed_config is set; registered: ", absl::StrJoin(Names(), ", ")));
  }
  std::vector<std::string> names = Names();
  std::string meant = ClosestMatch(name, names);
  return absl::NotFoundError(
      absl::StrCat("unknown ", family, " \"", name, "\"; registered: ", absl::StrJoin(names, ", "),
                   meant.empty() ? "" : absl::StrCat("; did you mean \"", meant, "\"?")));
}

template <typename Factory>
std::vector<std::string> FactoryTable<Factory>::Names() const {
  std::vector<std::string> names;
  names.reserve(factories_.size());
  for (const auto& factory : factories_) names.emplace_back(factory->name());
  std::sort(names.begin(), names.end());
  return names;
}

template class FactoryTable<TransportFactory>;
template class FactoryTable<ProtocolFactory>;
template class FactoryTable<SignerFactory>;

}  // namespace registry_internal

Registry::Builder& Registry::Builder::AddTransport(std::unique_ptr<TransportFactory> factory) {
  transports_.push_back(std::move(factory));
  return *this;
}

Registry::Builder& Registry::Builder::AddProtocol(std::unique_ptr<ProtocolFactory> factory) {
  protocols_.push_back(std::move(factory));
  return *this;
}

Registry::Builder& Registry::Builder::AddSigner(std::unique_ptr<SignerFactory> factory) {
  signers_.push_back(std::move(factory));
  return *this;
}

absl::StatusOr<Registry> Registry::Builder::Build() && {
  Registry registry;
  for (auto& factory : transports_) {
    HUBLINK_RETURN_IF_ERROR(registry.transports_.Add(std::move(factory), "transport"));
  }
  for (auto& factory : protocols_) {
    HUBLINK_RETURN_IF_ERROR(registry.protocols_.Add(std::move(factory), "protocol"));
  }
  for (auto& factory : signers_) {
    HUBLINK_RETURN_IF_ERROR(registry.signers_.Add(std::move(factory), "signer"));
  }
  return registry;
}

std::vector<Registry::PluginInfo> Registry::Plugins() const {
  std::vector<PluginInfo> plugins;
  auto add = [&](const auto& table, const char* family) {
    for (const auto& factory : table.factories()) {
      plugins.push_back(PluginInfo{family, std::string(factory->name()), factory->config_type()});
    }
  };
  add(transports_, "transport");
  add(protocols_, "protocol");
  add(signers_, "signer");
  return plugins;
}

absl::StatusOr<const TransportFactory*> Registry::FindTransport(absl::string_view name,
                                                                absl::string_view type_url) const {
  return transports_.Find(name, type_url, "transport");
}

absl::StatusOr<const ProtocolFactory*> Registry::FindProtocol(absl::string_view name,
                                                              absl::string_view type_url) const {
  return protocols_.Find(name, type_url, "protocol");
}

absl::StatusOr<const SignerFactory*> Registry::FindSigner(absl::string_view name,
                                                          absl::string_view type_url) const {
  return signers_.Find(name, type_url, "signer");
}

}  // namespace hublink
