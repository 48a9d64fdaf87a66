// The fixture the tcp transport's tests share: a registry with "tcp", an event loop, and a stack
// opened on a context that records every connect stage it reports.
#ifndef HUBLINK_TRANSPORTS_TCP_TCP_STACK_TEST_H_
#define HUBLINK_TRANSPORTS_TCP_TCP_STACK_TEST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "gtest/gtest.h"
#include "plugins/pipeline.h"
#include "tests/test_util.h"
#include "transports/tcp/tcp_transport.h"

namespace hublink {
namespace testing {

class TcpStackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Registry::Builder builder;
    RegisterTcpTransport(builder);
    registry_ = std::make_unique<Registry>(std::move(builder).Build().value());
    loop_ = std::move(EventLoop::Create()).value();
  }

  // Creates `pipeline`'s stack on a context to host:port (with the policy's connect timeout, if
  // given) and opens it; the stages it reports go to stages_, its events to listener_.
  void OpenStack(std::unique_ptr<ResolvedPipeline> pipeline, const std::string& host, int port,
                 absl::optional<absl::Duration> policy_connect_timeout = absl::nullopt) {
    pipeline_ = std::move(pipeline);
    context_ = std::make_unique<ConnectContext>(*loop_, host, port);
    if (policy_connect_timeout) context_->set_connect_timeout(*policy_connect_timeout);
    context_->set_stage_observer([this](absl::string_view layer, absl::string_view detail) {
      stages_.push_back(absl::StrCat(layer, ": ", detail));
    });
    transport_ = pipeline_->CreateStack(*context_).value();
    transport_->Open(&listener_);
  }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<ResolvedPipeline> pipeline_;
  std::unique_ptr<ConnectContext> context_;
  RecordingListener listener_;
  std::unique_ptr<Transport> transport_;
  std::vector<std::string> stages_;
};

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_TCP_TCP_STACK_TEST_H_
