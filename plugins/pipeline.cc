#include "plugins/pipeline.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor_database.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "plugins/did_you_mean.h"
#include "plugins/duration.h"
#include "plugins/read_file.h"
#include "plugins/status_macros.h"

namespace hublink {
namespace {

namespace pb = ::google::protobuf;

class CollectFirstError : public pb::io::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (error_.empty()) error_ = absl::StrCat(line + 1, ":", column + 1, ": ", message);
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

// Line and column (1-based) of byte `offset` in `text`.
std::string Position(absl::string_view text, size_t offset) {
  int line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return absl::StrCat(line, ":", column);
}

// Protobuf's JSON parser does not say where it failed; finding the first JSON syntax error
// ourselves gives users a line and column. Returns npos when the syntax is fine (the error is then
// about content).
size_t FirstJsonSyntaxError(absl::string_view s) {
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  };
  // Iterative value parser with an explicit stack of containers.
  std::vector<char> stack;
  enum class Want { kValue, kKeyOrEnd, kKey, kColon, kCommaOrEnd, kValueOrEnd } want = Want::kValue;
  while (true) {
    skip_ws();
    if (i >= s.size())
      return stack.empty() && want == Want::kCommaOrEnd ? absl::string_view::npos : i;
    char c = s[i];
    switch (want) {
      case Want::kKey:
      case Want::kKeyOrEnd:
        if (c == '}' && want == Want::kKeyOrEnd) {
          stack.pop_back();
          ++i;
          want = Want::kCommaOrEnd;
          continue;
        }
        if (c != '"') return i;
        break;  // parsed below as a string
      case Want::kColon:
        if (c != ':') return i;
        ++i;
        want = Want::kValue;
        continue;
      case Want::kCommaOrEnd:
        if (stack.empty()) return i;  // trailing garbage
        if (c == ',') {
          ++i;
          want = stack.back() == '{' ? Want::kKey : Want::kValue;
          continue;
        }
        if ((c == '}' && stack.back() == '{') || (c == ']' && stack.back() == '[')) {
          stack.pop_back();
          ++i;
          continue;
        }
        return i;
      case Want::kValueOrEnd:
        if (c == ']') {
          stack.pop_back();
          ++i;
          want = Want::kCommaOrEnd;
          continue;
        }
        break;
      case Want::kValue:
        break;
    }
    bool is_key = want == Want::kKey || want == Want::kKeyOrEnd;
    if (c == '"') {
      ++i;
      while (i < s.size() && s[i] != '"') i += (s[i] == '\\') ? 2 : 1;
      if (i >= s.size()) return s.size();
      ++i;
      want = is_key ? Want::kColon : Want::kCommaOrEnd;
    } else if (c == '{') {
      stack.push_back('{');
      ++i;
      want = Want::kKeyOrEnd;
    } else if (c == '[') {
      stack.push_back('[');
      ++i;
      want = Want::kValueOrEnd;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      while (i < s.size() &&
             absl::string_view("+-.eE0123456789").find(s[i]) != absl::string_view::npos)
        ++i;
      want = Want::kCommaOrEnd;
    } else if (absl::StartsWith(s.substr(i), "true") || absl::StartsWith(s.substr(i), "null")) {
      i += 4;
      want = Want::kCommaOrEnd;
    } else if (absl::StartsWith(s.substr(i), "false")) {
      i += 5;
      want = Want::kCommaOrEnd;
    } else {
      return i;
    }
  }
}

// proto3 cannot tell an unset scalar from one set to its default, so "missing" covers both.
absl::Status ValidateEndpoint(const Endpoint& endpoint, absl::string_view field) {
  if (endpoint.host().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".host is missing; set the host name or address to connect to"));
  }
  if (endpoint.port() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".port is missing or 0; set a port 1..65535"));
  }
  if (endpoint.port() > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".port: ", endpoint.port(), " is not a port (1..65535)"));
  }
  return absl::OkStatus();
}

// Text between `before` and the next `after` in `message`, if `before` occurs.
bool Between(absl::string_view message, absl::string_view before, absl::string_view after,
             std::string* out) {
  size_t start = message.find(before);
  if (start == absl::string_view::npos) return false;
  start += before.size();
  size_t end = message.find(after, start);
  if (end == absl::string_view::npos) return false;
  *out = std::string(message.substr(start, end - start));
  return true;
}

// "transport \"websocket\"" for the plugin that takes config message `type`, else empty.
std::string PluginOfConfig(absl::string_view type,
                           const std::vector<Registry::PluginInfo>& plugins) {
  for (const Registry::PluginInfo& plugin : plugins) {
    if (plugin.config_type->full_name() == type) {
      return absl::StrCat(plugin.family, " \"", plugin.name, "\"");
    }
  }
  return "";
}

// Every message type linked into the program, for suggestions when no registry is at hand.
std::vector<std::string> LinkedMessageTypes() {
  std::vector<std::string> names;
  pb::DescriptorPool::internal_generated_database()->FindAllMessageNames(&names);
  names.erase(std::remove_if(names.begin(), names.end(),
                             [](const std::string& name) {
                               return absl::StartsWith(name, "google.protobuf.");
                             }),
              names.end());
  std::sort(names.begin(), names.end());
  return names;
}

// "; did you mean <type>, the config of transport \"x\"?" for a typed_config type nobody knows,
// or the list of what the registered plugins take. `spell` writes a type name the way the input
// would (text: [type.googleapis.com/x.Y], JSON: "type.googleapis.com/x.Y").
std::string UnknownTypeHelp(absl::string_view type_url,
                            const std::vector<Registry::PluginInfo>& plugins, bool have_registry,
                            const std::function<std::string(absl::string_view)>& spell) {
  size_t slash = type_url.rfind('/');
  absl::string_view prefix =
      slash == absl::string_view::npos ? "type.googleapis.com/" : type_url.substr(0, slash + 1);
  absl::string_view name = slash == absl::string_view::npos ? type_url : type_url.substr(slash + 1);
  std::vector<std::string> candidates;
  for (const Registry::PluginInfo& plugin : plugins) {
    candidates.push_back(plugin.config_type->full_name());
  }
  if (!have_registry) candidates = LinkedMessageTypes();
  std::string meant = ClosestMatch(name, candidates);
  if (!meant.empty()) {
    std::string plugin = PluginOfConfig(meant, plugins);
    return absl::StrCat("; did you mean ", spell(absl::StrCat(prefix, meant)),
                        plugin.empty() ? "" : absl::StrCat(", the config of ", plugin), "?");
  }
  if (plugins.empty()) return "";
  std::vector<std::string> known;
  for (const Registry::PluginInfo& plugin : plugins) {
    known.push_back(absl::StrCat(plugin.config_type->full_name(), " (", plugin.family, " \"",
                                 plugin.name, "\")"));
  }
  return absl::StrCat("; the registered plugins take: ", absl::StrJoin(known, ", "));
}

// Every message type a pipeline can contain: Pipeline's own tree and each plugin's config tree.
void CollectMessageTree(const pb::Descriptor* descriptor,
                        std::vector<const pb::Descriptor*>* seen) {
  if (std::find(seen->begin(), seen->end(), descriptor) != seen->end()) return;
  seen->push_back(descriptor);
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const pb::Descriptor* type = descriptor->field(i)->message_type();
    if (type != nullptr && !absl::StartsWith(type->full_name(), "google.protobuf.")) {
      CollectMessageTree(type, seen);
    }
  }
}

// Protobuf's parse errors say what is wrong but not what would be right. For an unknown type in a
// typed_config or an unknown field, returns what to add: the closest known name and the plugin
// whose config it is (from `registry`, when given), e.g. "; did you mean
// [type.googleapis.com/hublink.transports.WebSocketConfig], the config of transport
// \"websocket\"?". Empty when there is nothing to add.
std::string ParseErrorHelp(absl::string_view message, const Registry* registry) {
  std::vector<Registry::PluginInfo> plugins;
  if (registry != nullptr) plugins = registry->Plugins();
  std::string url, type, field;
  // Text format: Could not find type "type.googleapis.com/x.Y" stored in google.protobuf.Any.
  if (Between(message, "Could not find type \"", "\"", &url)) {
    return UnknownTypeHelp(url, plugins, registry != nullptr,
                           [](absl::string_view u) { return absl::StrCat("[", u, "]"); });
  }
  // JSON: invalid value Invalid type URL, unknown type: x.Y for type Any
  if (Between(message, "unknown type: ", " for type Any", &url)) {
    return UnknownTypeHelp(url, plugins, registry != nullptr,
                           [](absl::string_view u) { return absl::StrCat("\"", u, "\""); });
  }
  // Text format: Message type "x.Y" has no field named "z".
  if (Between(message, "Message type \"", "\"", &type) &&
      Between(message, "has no field named \"", "\"", &field)) {
    const pb::Descriptor* descriptor =
        pb::DescriptorPool::generated_pool()->FindMessageTypeByName(type);
    if (descriptor == nullptr) return "";
    std::vector<std::string> fields;
    for (int i = 0; i < descriptor->field_count(); ++i) {
      fields.push_back(descriptor->field(i)->name());
    }
    std::string meant = ClosestMatch(field, fields);
    std::string plugin = PluginOfConfig(type, plugins);
    return absl::StrCat(
        meant.empty() ? absl::StrCat("; its fields: ", absl::StrJoin(fields, ", "))
                      : absl::StrCat("; did you mean \"", meant, "\"?"),
        plugin.empty() ? "" : absl::StrCat(" (", type, " is the config of ", plugin, ")"));
  }
  // JSON: "z: Cannot find field." names neither the message nor where it is, so look for the
  // closest field of any message a pipeline can hold.
  size_t cannot = message.find(": Cannot find field");
  if (cannot != absl::string_view::npos) {
    field = std::string(message.substr(0, cannot));
    std::vector<const pb::Descriptor*> types;
    CollectMessageTree(Pipeline::descriptor(), &types);
    for (const Registry::PluginInfo& plugin : plugins)
      CollectMessageTree(plugin.config_type, &types);
    std::vector<std::string> names;
    std::vector<const pb::Descriptor*> owners;
    for (const pb::Descriptor* descriptor : types) {
      for (int i = 0; i < descriptor->field_count(); ++i) {
        names.push_back(descriptor->field(i)->json_name());
        owners.push_back(descriptor);
      }
    }
    std::string meant = ClosestMatch(field, names);
    if (meant.empty()) return "";
    const pb::Descriptor* owner =
        owners[std::find(names.begin(), names.end(), meant) - names.begin()];
    std::string plugin = PluginOfConfig(owner->full_name(), plugins);
    return absl::StrCat("; did you mean \"", meant, "\" (a field of ", owner->full_name(),
                        plugin.empty() ? "" : absl::StrCat(", the config of ", plugin), ")?");
  }
  return "";
}

// Protobuf ends its messages with a period; ours continue after it with "; ...".
std::string WithHelp(absl::string_view message, const Registry* registry) {
  std::string help = ParseErrorHelp(message, registry);
  if (help.empty()) return std::string(message);
  absl::string_view base = message;
  if (absl::EndsWith(base, ".")) base.remove_suffix(1);
  return absl::StrCat(base, help);
}

absl::Status ValidatePolicy(const ConnectionPolicy& policy) {
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(policy.connect_timeout(), "policy.connect_timeout"));
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(policy.handshake_timeout(), "policy.handshake_timeout"));
  const ReconnectPolicy& reconnect = policy.reconnect();
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(reconnect.initial_delay(), "policy.reconnect.initial_delay"));
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(reconnect.max_delay(), "policy.reconnect.max_delay"));
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(reconnect.stable_after(), "policy.reconnect.stable_after"));
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(reconnect.give_up_after(), "policy.reconnect.give_up_after"));
  if (reconnect.multiplier() != 0 && reconnect.multiplier() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy.reconnect.multiplier: ", reconnect.multiplier(),
                     " would shrink the delay; use >= 1"));
  }
  if (reconnect.jitter() < 0 || reconnect.jitter() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy.reconnect.jitter: ", reconnect.jitter(), " is outside 0..1"));
  }
  return absl::OkStatus();
}

// The plugin's config as its factory's own message type: typed_config unpacked, or the type's
// defaults.
absl::StatusOr<std::unique_ptr<pb::Message>> UnpackConfig(const PluginConfig& plugin,
                                                          const pb::Descriptor* type) {
  const pb::Message* prototype = pb::MessageFactory::generated_factory()->GetPrototype(type);
  if (prototype == nullptr) {
    return absl::InternalError(
        absl::StrCat("config type ", type->full_name(), " is not linked in"));
  }
  std::unique_ptr<pb::Message> config(prototype->New());
  if (plugin.has_typed_config() && !plugin.typed_config().UnpackTo(config.get())) {
    return absl::InvalidArgumentError(
        absl::StrCat("typed_config does not decode as ", type->full_name()));
  }
  return config;
}

// Finds and configures one plugin of any family; errors are prefixed with the field path and name.
template <typename Configured, typename Factory>
absl::StatusOr<std::unique_ptr<Configured>> ConfigurePlugin(
    const PluginConfig& plugin, absl::string_view field,
    absl::StatusOr<const Factory*> (Registry::*find)(absl::string_view, absl::string_view) const,
    const Registry& registry, const Factory** found = nullptr) {
  std::string where = plugin.name().empty() ? std::string(field)
                                            : absl::StrCat(field, " (\"", plugin.name(), "\")");
  absl::StatusOr<const Factory*> factory =
      (registry.*find)(plugin.name(), plugin.typed_config().type_url());
  if (!factory.ok()) return Annotate(factory.status(), where);
  absl::StatusOr<std::unique_ptr<pb::Message>> config =
      UnpackConfig(plugin, (*factory)->config_type());
  if (!config.ok()) return Annotate(config.status(), where);
  auto configured = (*factory)->Configure(**config);
  if (!configured.ok()) return Annotate(configured.status(), where);
  if (found != nullptr) *found = *factory;
  return std::move(configured).value();
}

}  // namespace

absl::StatusOr<Pipeline> ParsePipelineText(absl::string_view text, absl::string_view source,
                                           const Registry* registry) {
  Pipeline pipeline;
  pb::TextFormat::Parser parser;
  CollectFirstError errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &pipeline)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", WithHelp(errors.error(), registry)));
  }
  return pipeline;
}

absl::StatusOr<Pipeline> ParsePipelineJson(absl::string_view json, absl::string_view source,
                                           const Registry* registry) {
  Pipeline pipeline;
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = pb::util::JsonStringToMessage(std::string(json), &pipeline, options);
  if (!status.ok()) {
    size_t at = FirstJsonSyntaxError(json);
    std::string position =
        at == absl::string_view::npos ? "" : absl::StrCat(Position(json, at), ": ");
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", position.empty() ? " " : position,
                     WithHelp(status.message().as_string(), registry)));
  }
  return pipeline;
}

absl::StatusOr<Pipeline> ReadPipelineFile(const std::string& path, const Registry* registry) {
  HUBLINK_ASSIGN_OR_RETURN(std::string contents, ReadFileContents(path, "pipeline file"));
  if (absl::EndsWith(path, ".json")) return ParsePipelineJson(contents, path, registry);
  return ParsePipelineText(contents, path, registry);
}

std::string PipelineToText(const Pipeline& pipeline) {
  pb::TextFormat::Printer printer;
  printer.SetExpandAny(true);
  std::string text;
  printer.PrintToString(pipeline, &text);
  return text;
}

absl::StatusOr<std::unique_ptr<ResolvedPipeline>> ResolvedPipeline::Resolve(
    const Pipeline& config, const Registry& registry, absl::string_view source) {
  auto fail = [&](const absl::Status& status) {
    // A program that resolves without loading the pipeline's libraries cannot know their plugins.
    if (status.code() == absl::StatusCode::kNotFound && !config.plugin_libraries().empty()) {
      return Annotate(
          absl::NotFoundError(absl::StrCat(
              status.message(),
              " (this pipeline lists plugin_libraries: the program must load them while it "
              "builds its registry, see plugins/plugin_library.h)")),
          source);
    }
    return Annotate(status, source);
  };
  std::unique_ptr<ResolvedPipeline> resolved(new ResolvedPipeline());
  resolved->config_ = config;

  // plugin_libraries are not loaded here: a Registry is immutable, so the program loads them while
  // it builds `registry` (plugins/plugin_library.h), before parsing and resolving.
  auto resolve_stack = [&](const Endpoint& endpoint,
                           const pb::RepeatedPtrField<PluginConfig>& transports,
                           absl::string_view prefix) -> absl::Status {
    HUBLINK_RETURN_IF_ERROR(ValidateEndpoint(endpoint, absl::StrCat(prefix, "endpoint")));
    if (transports.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix,
                       "transports is missing; a stack needs at least a base transport such as "
                       "\"tcp\""));
    }
    ResolvedStack stack;
    stack.endpoint = endpoint;
    for (int i = 0; i < transports.size(); ++i) {
      std::string field = absl::StrCat(prefix, "transports[", i, "]");
      const TransportFactory* factory = nullptr;
      HUBLINK_ASSIGN_OR_RETURN(
          std::unique_ptr<ConfiguredTransport> layer,
          ConfigurePlugin<ConfiguredTransport>(transports[i], field, &Registry::FindTransport,
                                               registry, &factory));
      bool is_base = factory->kind() == TransportFactory::Kind::kBase;
      if (i == 0 && !is_base) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, " (\"", factory->name(),
                         "\"): the first transport must be a base transport that owns "
                         "the socket (such as \"tcp\"); \"",
                         factory->name(), "\" wraps another transport"));
      }
      if (i > 0 && is_base) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, " (\"", factory->name(),
            "\"): only the first transport may be a base transport; \"", factory->name(),
            "\" opens its own socket and cannot run over \"", stack.names.back(), "\""));
      }
      stack.names.emplace_back(factory->name());
      stack.layers.push_back(std::move(layer));
    }
    resolved->stacks_.push_back(std::move(stack));
    return absl::OkStatus();
  };

  if (absl::Status status = resolve_stack(config.endpoint(), config.transports(), "");
      !status.ok()) {
    return fail(status);
  }
  for (int i = 0; i < config.alternatives_size(); ++i) {
    const Stack& alternative = config.alternatives(i);
    absl::Status status = resolve_stack(alternative.endpoint(), alternative.transports(),
                                        absl::StrCat("alternatives[", i, "].").c_str());
    if (!status.ok()) return fail(status);
  }
  if (absl::Status status = ValidatePolicy(config.policy()); !status.ok()) return fail(status);

  if (config.has_protocol()) {
    auto protocol = ConfigurePlugin<ConfiguredProtocol>(config.protocol(), "protocol",
                                                        &Registry::FindProtocol, registry);
    if (!protocol.ok()) return fail(protocol.status());
    resolved->protocol_ = std::move(protocol).value();
  }
  if (config.has_signer()) {
    auto signer =
        ConfigurePlugin<Signer>(config.signer(), "signer", &Registry::FindSigner, registry);
    if (!signer.ok()) return fail(signer.status());
    resolved->signer_ = std::move(signer).value();
  }
  return resolved;
}

std::vector<absl::Status> ValidatePipeline(const Pipeline& config, const Registry& registry) {
  std::vector<absl::Status> problems;
  auto note = [&problems](const absl::Status& status) {
    if (!status.ok()) problems.push_back(status);
  };
  // Resolve's checks, each on its own: a stack with a bad layer still has its other layers and
  // its order checked.
  auto check_stack = [&](const Endpoint& endpoint,
                         const pb::RepeatedPtrField<PluginConfig>& transports,
                         const std::string& prefix) {
    note(ValidateEndpoint(endpoint, absl::StrCat(prefix, "endpoint")));
    if (transports.empty()) {
      note(absl::InvalidArgumentError(
          absl::StrCat(prefix,
                       "transports is missing; a stack needs at least a base transport such as "
                       "\"tcp\"")));
    }
    for (int i = 0; i < transports.size(); ++i) {
      std::string field = absl::StrCat(prefix, "transports[", i, "]");
      const TransportFactory* factory = nullptr;
      auto layer = ConfigurePlugin<ConfiguredTransport>(
          transports[i], field, &Registry::FindTransport, registry, &factory);
      if (!layer.ok()) {
        note(layer.status());
        continue;
      }
      bool is_base = factory->kind() == TransportFactory::Kind::kBase;
      if (i == 0 && !is_base) {
        note(absl::InvalidArgumentError(absl::StrCat(
            field, " (\"", factory->name(),
            "\"): the first transport must be a base transport that owns the socket (such as "
            "\"tcp\"); \"",
            factory->name(), "\" wraps another transport")));
      }
      if (i > 0 && is_base) {
        note(absl::InvalidArgumentError(
            absl::StrCat(field, " (\"", factory->name(),
                         "\"): only the first transport may be a base transport; \"",
                         factory->name(), "\" opens its own socket")));
      }
    }
  };
  check_stack(config.endpoint(), config.transports(), "");
  for (int i = 0; i < config.alternatives_size(); ++i) {
    check_stack(config.alternatives(i).endpoint(), config.alternatives(i).transports(),
                absl::StrCat("alternatives[", i, "]."));
  }
  note(ValidatePolicy(config.policy()));
  if (config.has_protocol()) {
    note(ConfigurePlugin<ConfiguredProtocol>(config.protocol(), "protocol", &Registry::FindProtocol,
                                             registry)
             .status());
  }
  if (config.has_signer()) {
    note(ConfigurePlugin<Signer>(config.signer(), "signer", &Registry::FindSigner, registry)
             .status());
  }
  return problems;
}

const Endpoint& ResolvedPipeline::stack_endpoint(int index) const {
  return stacks_.at(index).endpoint;
}

std::string ResolvedPipeline::DescribeStack(int index) const {
  return absl::StrJoin(stacks_.at(index).names, " > ");
}

bool ResolvedPipeline::StackHasLayer(int index, absl::string_view name) const {
  const std::vector<std::string>& names = stacks_.at(index).names;
  return std::find(names.begin(), names.end(), name) != names.end();
}

absl::StatusOr<std::unique_ptr<Transport>> ResolvedPipeline::CreateStack(ConnectContext& context,
                                                                         int index) const {
  if (index < 0 || index >= stack_count()) {
    return absl::OutOfRangeError(
        absl::StrCat("pipeline: no stack ", index, "; it has ", stack_count()));
  }
  if (context.signer() == nullptr) context.set_signer(signer_.get());
  const ResolvedStack& stack = stacks_[index];
  std::unique_ptr<Transport> top;
  for (size_t i = 0; i < stack.layers.size(); ++i) {
    auto layer = stack.layers[i]->Create(context, std::move(top));
    if (!layer.ok()) return Annotate(layer.status(), stack.names[i]);
    top = std::move(layer).value();
  }
  return top;
}

absl::StatusOr<std::unique_ptr<ResolvedPipeline>> LoadPipelineFile(const std::string& path,
                                                                   const Registry& registry) {
  HUBLINK_ASSIGN_OR_RETURN(Pipeline pipeline, ReadPipelineFile(path, &registry));
  return ResolvedPipeline::Resolve(pipeline, registry, path);
}

}  // namespace hublink
