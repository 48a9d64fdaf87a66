// Shared by the WebSocket tests against real servers: the Node.js `ws` peer
// (tests/peers/ws_peer.js, plain or TLS), one connection through a pipeline on a private loop, and
// the conformance peer built on ws_peer.js.
#ifndef HUBLINK_TRANSPORTS_WEBSOCKET_WS_TEST_PEERS_H_
#define HUBLINK_TRANSPORTS_WEBSOCKET_WS_TEST_PEERS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "plugins/connect_context.h"
#include "plugins/event_loop.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "tests/conformance.h"
#include "tests/test_util.h"

namespace hublink {
namespace websocket {
namespace testing {

// A file of the test's runfiles, by workspace-relative path.
std::string Runfile(absl::string_view relative);

// A text-format pipeline to 127.0.0.1:port: `lower` (text-format transports, default plain tcp),
// then websocket with `websocket_fields` (WebSocketConfig text).
std::string WsPipeline(int port, absl::string_view websocket_fields = "",
                       absl::string_view lower = "transports { name: \"tcp\" }\n");

// ws_peer.js in one mode, on a port of its choosing; over TLS when cert and key files are given.
class NodeWsPeer {
 public:
  static absl::StatusOr<std::unique_ptr<NodeWsPeer>> Start(const std::string& mode,
                                                           const std::string& cert_file = "",
                                                           const std::string& key_file = "");
  int port() const { return port_; }
  // One line per finished connection: "closed <code>".
  std::vector<std::string> Events() const;

 private:
  NodeWsPeer() = default;
  std::string port_file_, events_file_, log_file_;
  int port_ = 0;
  std::unique_ptr<hublink::testing::Subprocess> process_;
};

// One connection through a pipeline, on a private loop.
class Connection {
 public:
  // `register_plugins` defaults to tcp + websocket.
  explicit Connection(std::function<void(Registry::Builder&)> register_plugins = nullptr);
  // Builds and opens the stack (ASSERTs inside: wrap in ASSERT_NO_FATAL_FAILURE).
  void Open(const std::string& pipeline_text);

  bool AwaitOpenOrClose();
  bool AwaitData(size_t size);
  bool AwaitClosed();

  EventLoop& loop() { return *loop_; }
  Transport& transport() { return *transport_; }
  ConnectContext& context() { return *context_; }

  hublink::testing::RecordingListener events;
  std::vector<std::string> stages;

 private:
  std::function<void(Registry::Builder&)> register_plugins_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<ResolvedPipeline> pipeline_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<ConnectContext> context_;
  std::unique_ptr<Transport> transport_;
};

// The conformance protocol over WebSocket, served by ws_peer.js; `lower` as for WsPipeline.
class NodeConformancePeer : public hublink::testing::ConformancePeer {
 public:
  NodeConformancePeer(std::unique_ptr<NodeWsPeer> peer, std::string lower)
      : peer_(std::move(peer)), lower_(std::move(lower)) {}
  std::string pipeline_text() const override;
  int closed_connections() override { return static_cast<int>(peer_->Events().size()); }

 private:
  std::unique_ptr<NodeWsPeer> peer_;
  std::string lower_;
};

// An MQTT 3.1.1 CONNECT (clean session, keep-alive 60 s) for `client_id`, encoded by hand: these
// tests do not depend on the MQTT codec.
std::string MqttConnect(absl::string_view client_id);

}  // namespace testing
}  // namespace websocket
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_WEBSOCKET_WS_TEST_PEERS_H_
