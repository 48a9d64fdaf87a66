// Pipelines: the config that composes a connection at run time, loaded and validated once.
//
// Usage, compiled and run as //examples:pipeline_header_example
// (examples/pipeline_header_example.cc, the body of its main(); `path` names a pipeline file such
// as "device.textproto"; BUILD deps "//plugins:builtin", "//plugins:core", "@system_libs//:absl").
// It opens the transport stack by hand, as a test or a protocol of one's own would; an MQTT
// application hands the pipeline to hublink::Client instead (protocols/mqtt/client.h).
//
//   absl::StatusOr<std::unique_ptr<hublink::ResolvedPipeline>> pipeline =
//       hublink::LoadPipelineFile(path, hublink::BuiltinRegistry());  // text, or JSON if ".json"
//   if (!pipeline.ok()) {  // names the file, line:column or field path, and the plugin
//     std::fprintf(stderr, "%s\n", pipeline.status().ToString().c_str());
//     return 1;
//   }
//   absl::StatusOr<std::unique_ptr<hublink::EventLoop>> loop = hublink::EventLoop::Create();
//   if (!loop.ok()) {
//     std::fprintf(stderr, "%s\n", loop.status().ToString().c_str());
//     return 1;
//   }
//   // One context per attempt; it must outlive every transport of that attempt.
//   const hublink::Endpoint& endpoint = (*pipeline)->endpoint();
//   hublink::ConnectContext context(**loop, endpoint.host(), endpoint.port());
//   context.set_deadline(absl::Now() + absl::Seconds(10));  // for every handshake of the stack
//   absl::StatusOr<std::unique_ptr<hublink::Transport>> top = (*pipeline)->CreateStack(context);
//   if (!top.ok()) {
//     std::fprintf(stderr, "%s\n", top.status().ToString().c_str());
//     return 1;
//   }
//   struct Listener : hublink::TransportListener {  // called on the loop thread
//     void OnOpen() override { open = true; }
//     void OnData(absl::string_view) override {}  // what the peer sent, in any split
//     void OnClosed(const absl::Status& status) override {
//       closed = true;
//       result = status;
//     }
//     bool open = false, closed = false;
//     absl::Status result;
//   } listener;
//   (*top)->Open(&listener);  // the layers handshake bottom-up; OnOpen when all are done
//   const absl::Time give_up = context.deadline() + absl::Seconds(1);
//   while (!listener.open && !listener.closed && absl::Now() < give_up) {
//     (*loop)->RunOnce(absl::Milliseconds(100));
//   }
//   if (!listener.open) {
//     if (!listener.closed) listener.result = absl::DeadlineExceededError("stack did not open");
//     std::fprintf(stderr, "%s\n", listener.result.ToString().c_str());
//     return 1;
//   }
//   std::printf("open: %s\n", (*pipeline)->DescribeStack().c_str());  // "tcp > websocket"
//   (*top)->Close();  // orderly: each layer says goodbye, then OnClosed(OkStatus())
//   const absl::Time close_by = absl::Now() + absl::Seconds(10);
//   while (!listener.closed && absl::Now() < close_by) (*loop)->RunOnce(absl::Milliseconds(100));
//   std::printf("closed: %s\n", listener.result.ToString().c_str());
//   return listener.closed && listener.result.ok() ? 0 : 1;
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
// line:column. An unknown typed_config type or field gets the closest known name ("did you mean
// ...?"); with `registry`, types are matched against its plugins' config types and the error names
// the plugin a config belongs to, otherwise against every message type linked in.
absl::StatusOr<Pipeline> ParsePipelineText(absl::string_view text, absl::string_view source,
                                           const Registry* registry = nullptr);
absl::StatusOr<Pipeline> ParsePipelineJson(absl::string_view json, absl::string_view source,
                                           const Registry* registry = nullptr);
// Reads `path`; a ".json" file is JSON, anything else text format.
absl::StatusOr<Pipeline> ReadPipelineFile(const std::string& path,
                                          const Registry* registry = nullptr);

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
  // Whether stack `index` has a layer of the transport plugin registered as `name`.
  bool StackHasLayer(int index, absl::string_view name) const;

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

// Every problem Resolve would report, where Resolve stops at the first: each stack, plugin and the
// policy are checked on their own (`hublink check` lists them all). Each message starts with the
// field path, as Resolve's do ("transports[1] (\"tls\"): tls: ca_file: ..."), without the source.
// Empty when Resolve would succeed.
std::vector<absl::Status> ValidatePipeline(const Pipeline& config, const Registry& registry);

// ReadPipelineFile + Resolve, with the file's path in every error.
absl::StatusOr<std::unique_ptr<ResolvedPipeline>> LoadPipelineFile(const std::string& path,
                                                                   const Registry& registry);

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_PIPELINE_H_
