#include "transports/websocket/ws_test_peers.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "transports/tcp/tcp_transport.h"
#include "transports/websocket/websocket_transport.h"

namespace hublink {
namespace websocket {
namespace testing {

using hublink::testing::RunUntil;

std::string Runfile(absl::string_view relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", workspace ? workspace : "hublink", "/", relative);
}

std::string WsPipeline(int port, absl::string_view websocket_fields, absl::string_view lower) {
  return absl::StrFormat(
      "endpoint { host: \"127.0.0.1\" port: %d }\n%s"
      "transports { name: \"websocket\" typed_config { "
      "[type.googleapis.com/hublink.transports.WebSocketConfig] { %s } } }\n",
      port, lower, websocket_fields);
}

absl::StatusOr<std::unique_ptr<NodeWsPeer>> NodeWsPeer::Start(const std::string& mode,
                                                              const std::string& cert_file,
                                                              const std::string& key_file) {
  static int instance = 0;
  auto peer = std::unique_ptr<NodeWsPeer>(new NodeWsPeer());
  std::string base =
      absl::StrCat(hublink::testing::TempDir(), "/ws_peer_", getpid(), "_", instance++);
  peer->port_file_ = base + ".port";
  peer->events_file_ = base + ".events";
  peer->log_file_ = base + ".log";
  hublink::testing::Subprocess::Options options;
  options.output_file = peer->log_file_;
  std::vector<std::string> argv = {"node", Runfile("tests/peers/ws_peer.js"), mode,
                                   peer->port_file_, peer->events_file_};
  if (!cert_file.empty()) {
    argv.push_back(cert_file);
    argv.push_back(key_file);
  }
  auto process = hublink::testing::Subprocess::Start(argv, options);
  if (!process.ok()) return process.status();
  peer->process_ = std::move(process).value();
  // Bounded wait for the port file the peer writes once it listens.
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<std::string> port = hublink::testing::ReadFile(peer->port_file_);
    if (port.ok() && absl::SimpleAtoi(*port, &peer->port_)) return peer;
    if (!peer->process_->Running()) break;
    usleep(10 * 1000);
  }
  absl::StatusOr<std::string> log = hublink::testing::ReadFile(peer->log_file_);
  return absl::UnavailableError(
      absl::StrCat("ws_peer.js ", mode, " did not start; log:\n", log.ok() ? *log : "(none)"));
}

std::vector<std::string> NodeWsPeer::Events() const {
  absl::StatusOr<std::string> text = hublink::testing::ReadFile(events_file_);
  if (!text.ok()) return {};
  return absl::StrSplit(*text, '\n', absl::SkipEmpty());
}

Connection::Connection(std::function<void(Registry::Builder&)> register_plugins)
    : register_plugins_(std::move(register_plugins)) {
  if (!register_plugins_) {
    register_plugins_ = [](Registry::Builder& builder) {
      RegisterTcpTransport(builder);
      RegisterWebSocketTransport(builder);
    };
  }
}

void Connection::Open(const std::string& pipeline_text) {
  Registry::Builder builder;
  register_plugins_(builder);
  auto registry = std::move(builder).Build();
  ASSERT_TRUE(registry.ok()) << registry.status();
  registry_ = std::make_unique<Registry>(std::move(registry).value());
  auto config = ParsePipelineText(pipeline_text, "test");
  ASSERT_TRUE(config.ok()) << config.status();
  auto pipeline = ResolvedPipeline::Resolve(*config, *registry_, "test");
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  pipeline_ = std::move(pipeline).value();
  auto loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok());
  loop_ = std::move(loop).value();
  context_ = std::make_unique<ConnectContext>(*loop_, pipeline_->endpoint().host(),
                                              pipeline_->endpoint().port());
  context_->set_stage_observer([this](absl::string_view layer, absl::string_view detail) {
    stages.push_back(absl::StrCat(layer, ": ", detail));
  });
  auto top = pipeline_->CreateStack(*context_);
  ASSERT_TRUE(top.ok()) << top.status();
  transport_ = std::move(top).value();
  transport_->Open(&events);
}

bool Connection::AwaitOpenOrClose() {
  return RunUntil(*loop_, [&] { return events.opened > 0 || events.closed; });
}
bool Connection::AwaitData(size_t size) {
  return RunUntil(*loop_, [&] { return events.data.size() >= size || events.closed; });
}
bool Connection::AwaitClosed() {
  return RunUntil(*loop_, [&] { return events.closed.has_value(); });
}

std::string NodeConformancePeer::pipeline_text() const {
  return WsPipeline(peer_->port(), "path: \"/mqtt\"", lower_);
}

std::string MqttConnect(absl::string_view client_id) {
  // Protocol name "MQTT", level 4, flags: clean session, keep-alive 60 s, then the client id.
  std::string variable = std::string("\x00\x04MQTT\x04\x02\x00\x3C", 10);
  variable.push_back(static_cast<char>(client_id.size() >> 8));
  variable.push_back(static_cast<char>(client_id.size()));
  variable.append(client_id.data(), client_id.size());
  return absl::StrCat(std::string(1, '\x10'), std::string(1, static_cast<char>(variable.size())),
                      variable);
}

}  // namespace testing
}  // namespace websocket
}  // namespace hublink
