// Pipelines: the config that composes a connection at run time, loaded and validated once.
//
//   absl::StatusOr<std::unique_ptr<ResolvedPipeline>> pipeline =
//       LoadPipelineFile("device.textproto", registry);        // or .json
//   ConnectContext context(*loop, pipeline->endpoint().host(), pipeline->endpoint().port());
//   absl::StatusOr<std::unique_ptr<Transport>> top = (*pipeline)->CreateStack(context);
//
// Validation happens in Resolve(): every plugin is found in the registry and configured (so a bad
// key file or an unknown field fails here, not at the first connect); the first transport of each
// stack must be a base transport and no later one may be. Errors name the source, the field path,
// and the plugin:
//   "device.textproto: transports[1] (\"tls\"): tls: ca_file: /x.pem: No such file or directory"
#ifndef HUBLINK_PLUGINS_PIPELINE_H_
#define HUBLINK_PLUGINS_PIPELINE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "plugins/connect_context.h"
#include "plugins/pipeline.pb.h"
#include "plugins/protocol.h"
#include "plugins/registry.h"
#include "plugins/signer.h"
#include "plugins/transport.h"

namespace hublink {

// Parses without validating. `source` names the text in errors (a file name). Errors carry
// line:column.
absl::StatusOr<Pipeline> ParsePipelineText(absl::string_view text, absl::string_view source);
absl::StatusOr<Pipeline> ParsePipelineJson(absl::string_view json, absl::string_view source);
// Reads `path`; a ".json" file is JSON, anything else text format.
absl::StatusOr<Pipeline> ReadPipelineFile(const std::string& path);

// Renders a pipeline as text format (what --dump_pipeline writes); ParsePipelineText reads it back.
std::string PipelineToText(const Pipeline& pipeline);

class ResolvedPipeline {
 public:
  // Validates `config` against `registry` and configures every plugin once.
  static absl::StatusOr<std::unique_ptr<ResolvedPipeline>> Resolve(
      const Pipeline& config, const Registry& registry, absl::string_view source = "pipeline");

  const Pipeline& config() const { return config_; }
  const Endpoint& endpoint() const { return config_.endpoint(); }

  // Number of transport stacks: the primary one (index 0), then config().alternatives().
  int stack_count() const { return static_cast<int>(stacks_.size()); }
  const Endpoint& stack_endpoint(int index) const;
  // "tcp > tls > websocket", for logs.
  std::string DescribeStack(int index = 0) const;

  // Builds one attempt's transports for stack `index`, lowest first, and returns the top one
  // (unopened).
  absl::StatusOr<std::unique_ptr<Transport>> CreateStack(ConnectContext& context,
                                                         int index = 0) const;

  // Null when the pipeline names none.
  ConfiguredProtocol* protocol() const { return protocol_.get(); }
  Signer* signer() const { return signer_.get(); }

 private:
  struct ResolvedStack {
    Endpoint endpoint;
    std::vector<std::string> names;
    std::vector<std::unique_ptr<ConfiguredTransport>> layers;
  };
  ResolvedPipeline() = default;

  Pipeline config_;
  std::vector<ResolvedStack> stacks_;
  std::unique_ptr<ConfiguredProtocol> protocol_;
  std::unique_ptr<Signer> signer_;
};

// ReadPipelineFile + Resolve, with the file's path in every error.
absl::StatusOr<std::unique_ptr<ResolvedPipeline>> LoadPipelineFile(const std::string& path,
                                                                   const Registry& registry);

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_PIPELINE_H_
