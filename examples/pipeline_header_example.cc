// The usage example at the top of plugins/pipeline.h, as a program: the lines between the
// markers are the ones pipeline.h shows, and //examples:pipeline_header_example_test keeps
// the two identical and runs this against mosquitto.
//
//   pipeline_header_example [PIPELINE_FILE]    (default: device.textproto)
//
// Opens the pipeline's transport stack once (every handshake), closes it in order, and exits 0;
// exits 1 with the error when the file is missing or invalid or the stack does not open.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "plugins/builtin.h"
#include "plugins/connect_context.h"
#include "plugins/event_loop.h"
#include "plugins/pipeline.h"
#include "plugins/transport.h"

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "device.textproto";
  // [pipeline.h example begins]
  absl::StatusOr<std::unique_ptr<hublink::ResolvedPipeline>> pipeline =
      hublink::LoadPipelineFile(path, hublink::BuiltinRegistry());  // text, or JSON if ".json"
  if (!pipeline.ok()) {  // names the file, line:column or field path, and the plugin
    std::fprintf(stderr, "%s\n", pipeline.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<hublink::EventLoop>> loop = hublink::EventLoop::Create();
  if (!loop.ok()) {
    std::fprintf(stderr, "%s\n", loop.status().ToString().c_str());
    return 1;
  }
  // One context per attempt; it must outlive every transport of that attempt.
  const hublink::Endpoint& endpoint = (*pipeline)->endpoint();
  hublink::ConnectContext context(**loop, endpoint.host(), endpoint.port());
  context.set_deadline(absl::Now() + absl::Seconds(10));  // for every handshake of the stack
  absl::StatusOr<std::unique_ptr<hublink::Transport>> top = (*pipeline)->CreateStack(context);
  if (!top.ok()) {
    std::fprintf(stderr, "%s\n", top.status().ToString().c_str());
    return 1;
  }
  struct Listener : hublink::TransportListener {  // called on the loop thread
    void OnOpen() override { open = true; }
    void OnData(absl::string_view) override {}  // what the peer sent, in any split
    void OnClosed(const absl::Status& status) override {
      closed = true;
      result = status;
    }
    bool open = false, closed = false;
    absl::Status result;
  } listener;
  (*top)->Open(&listener);  // the layers handshake bottom-up; OnOpen when all are done
  const absl::Time give_up = context.deadline() + absl::Seconds(1);
  while (!listener.open && !listener.closed && absl::Now() < give_up) {
    (*loop)->RunOnce(absl::Milliseconds(100));
  }
  if (!listener.open) {
    if (!listener.closed) listener.result = absl::DeadlineExceededError("stack did not open");
    std::fprintf(stderr, "%s\n", listener.result.ToString().c_str());
    return 1;
  }
  std::printf("open: %s\n", (*pipeline)->DescribeStack().c_str());  // "tcp > websocket"
  (*top)->Close();  // orderly: each layer says goodbye, then OnClosed(OkStatus())
  const absl::Time close_by = absl::Now() + absl::Seconds(10);
  while (!listener.closed && absl::Now() < close_by) (*loop)->RunOnce(absl::Milliseconds(100));
  std::printf("closed: %s\n", listener.result.ToString().c_str());
  return listener.closed && listener.result.ok() ? 0 : 1;
  // [pipeline.h example ends]
}
