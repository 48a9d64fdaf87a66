#include "plugins/pipeline.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
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

absl::Status ValidateEndpoint(const Endpoint& endpoint, absl::string_view field) {
  if (endpoint.host().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".host: missing"));
  }
  if (endpoint.port() == 0 || endpoint.port() > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".port: ", endpoint.port(), " is not a port (1..65535)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateDuration(const pb::Duration& duration, absl::string_view field) {
  if (duration.seconds() < 0 || duration.nanos() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be negative"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePolicy(const ConnectionPolicy& policy) {
  HUBLINK_RETURN_IF_ERROR(ValidateDuration(policy.connect_timeout(), "policy.connect_timeout"));
  HUBLINK_RETURN_IF_ERROR(ValidateDuration(policy.handshake_timeout(), "policy.handshake_timeout"));
  const ReconnectPolicy& reconnect = policy.reconnect();
  HUBLINK_RETURN_IF_ERROR(
      ValidateDuration(reconnect.initial_delay(), "policy.reconnect.initial_delay"));
  HUBLINK_RETURN_IF_ERROR(ValidateDuration(reconnect.max_delay(), "policy.reconnect.max_delay"));
  HUBLINK_RETURN_IF_ERROR(
      ValidateDuration(reconnect.stable_after(), "policy.reconnect.stable_after"));
  HUBLINK_RETURN_IF_ERROR(
      ValidateDuration(reconnect.give_up_after(), "policy.reconnect.give_up_after"));
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

absl::StatusOr<Pipeline> ParsePipelineText(absl::string_view text, absl::string_view source) {
  Pipeline pipeline;
  pb::TextFormat::Parser parser;
  CollectFirstError errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &pipeline)) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":", errors.error()));
  }
  return pipeline;
}

absl::StatusOr<Pipeline> ParsePipelineJson(absl::string_view json, absl::string_view source) {
  Pipeline pipeline;
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = pb::util::JsonStringToMessage(std::string(json), &pipeline, options);
  if (!status.ok()) {
    size_t at = FirstJsonSyntaxError(json);
    std::string position =
        at == absl::string_view::npos ? "" : absl::StrCat(Position(json, at), ": ");
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", position.empty() ? " " : position, status.message().as_string()));
  }
  return pipeline;
}

absl::StatusOr<Pipeline> ReadPipelineFile(const std::string& path) {
  HUBLINK_ASSIGN_OR_RETURN(std::string contents, ReadFileContents(path, "pipeline file"));
  if (absl::EndsWith(path, ".json")) return ParsePipelineJson(contents, path);
  return ParsePipelineText(contents, path);
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
  auto fail = [&](const absl::Status& status) { return Annotate(status, source); };
  std::unique_ptr<ResolvedPipeline> resolved(new ResolvedPipeline());
  resolved->config_ = config;

  if (!config.plugin_libraries().empty()) {
    return fail(
        absl::UnimplementedError("plugin_libraries: loading plugins from shared objects is not "
                                 "supported yet; register them in "
                                 "code with their Register function"));
  }
  auto resolve_stack = [&](const Endpoint& endpoint,
                           const pb::RepeatedPtrField<PluginConfig>& transports,
                           absl::string_view prefix) -> absl::Status {
    HUBLINK_RETURN_IF_ERROR(ValidateEndpoint(endpoint, absl::StrCat(prefix, "endpoint")));
    if (transports.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix,
                       "transports: missing; a stack needs at least a base transport such as "
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

const Endpoint& ResolvedPipeline::stack_endpoint(int index) const {
  return stacks_.at(index).endpoint;
}

std::string ResolvedPipeline::DescribeStack(int index) const {
  return absl::StrJoin(stacks_.at(index).names, " > ");
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
  HUBLINK_ASSIGN_OR_RETURN(Pipeline pipeline, ReadPipelineFile(path));
  return ResolvedPipeline::Resolve(pipeline, registry, path);
}

}  // namespace hublink
