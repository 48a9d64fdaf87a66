#include "examples/tap_plugin/tap_transport.h"

#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "examples/tap_plugin/tap.pb.h"
#include "plugins/log.h"
#include "plugins/transport_end.h"

namespace acme {
namespace {

std::atomic<uint64_t> bytes_down{0}, bytes_up{0}, writes{0}, reads{0};

// [plugin-authoring.md transport begins]
// Wrapping transports own the layer below and listen to it; this one forwards everything.
class TapTransport : public hublink::Transport, private hublink::TransportListener {
 public:
  TapTransport(const tap::TapConfig& config, hublink::EventLoop& loop,
               std::unique_ptr<hublink::Transport> lower)
      : config_(config), lower_(std::move(lower)), end_(loop) {}

  void Open(hublink::TransportListener* listener) override {
    if (end_.listener() != nullptr) {
      // A second Open() is API misuse. The layer below refuses it too and ends the connection,
      // which reaches the first listener through OnClosed below: a pass-through layer gets that
      // for free. A different second listener is ours to tell, from the loop (never from inside
      // Open()), and not at all if this transport is destroyed first.
      if (listener != end_.listener()) {
        end_.Post([listener] {
          listener->OnClosed(absl::FailedPreconditionError("tap: Open() called twice"));
        });
      }
      lower_->Open(this);
      return;
    }
    end_.set_listener(listener);
    lower_->Open(this);
  }
  absl::Status Write(absl::string_view bytes) override {
    absl::Status status = lower_->Write(bytes);
    if (status.ok()) {
      bytes_down += bytes.size();
      ++writes;
      Preview("down", bytes);
    }
    return status;
  }
  void Close() override { lower_->Close(); }
  size_t BufferedBytes() const override { return lower_->BufferedBytes(); }
  bool AboveSoftLimit() const override { return lower_->AboveSoftLimit(); }

 private:
  void OnOpen() override {
    HLOG(INFO) << "[" << config_.label() << "] open";
    end_.listener()->OnOpen();
  }
  void OnData(absl::string_view bytes) override {
    bytes_up += bytes.size();
    ++reads;
    Preview("up", bytes);
    end_.listener()->OnData(bytes);
  }
  void OnClosed(const absl::Status& status) override {
    HLOG(INFO) << "[" << config_.label() << "] closed: " << status;
    end_.Deliver(status);  // once, whatever the layer below does
  }
  void OnWritable() override { end_.listener()->OnWritable(); }

  void Preview(absl::string_view direction, absl::string_view bytes) const {
    if (config_.preview_bytes() == 0) return;
    HLOG(INFO) << "[" << config_.label() << "] " << direction << " " << bytes.size()
               << " bytes: " << absl::BytesToHexString(bytes.substr(0, config_.preview_bytes()));
  }

  const tap::TapConfig config_;
  std::unique_ptr<hublink::Transport> lower_;
  // The listener and its one OnClosed; tasks posted through it never outlive this transport.
  hublink::TransportEnd end_;
};
// [plugin-authoring.md transport ends]

class ConfiguredTap : public hublink::ConfiguredTransport {
 public:
  explicit ConfiguredTap(tap::TapConfig config) : config_(std::move(config)) {}
  absl::StatusOr<std::unique_ptr<hublink::Transport>> Create(
      hublink::ConnectContext& context, std::unique_ptr<hublink::Transport> lower) override {
    return std::unique_ptr<hublink::Transport>(
        new TapTransport(config_, context.loop(), std::move(lower)));
  }

 private:
  const tap::TapConfig config_;
};

class TapFactory : public hublink::TransportFactory {
 public:
  absl::string_view name() const override { return "tap"; }
  const google::protobuf::Descriptor* config_type() const override {
    return tap::TapConfig::descriptor();
  }
  Kind kind() const override { return Kind::kWrapping; }
  absl::StatusOr<std::unique_ptr<hublink::ConfiguredTransport>> Configure(
      const google::protobuf::Message& message) const override {
    const auto& config = static_cast<const tap::TapConfig&>(message);
    if (config.preview_bytes() > 4096) {
      return absl::InvalidArgumentError("tap: preview_bytes: at most 4096");
    }
    return std::unique_ptr<hublink::ConfiguredTransport>(new ConfiguredTap(config));
  }
};

}  // namespace

TapCounters GetTapCounters() {
  return {bytes_down.load(), bytes_up.load(), writes.load(), reads.load()};
}

void RegisterTapTransport(hublink::Registry::Builder& builder) {
  builder.AddTransport(std::make_unique<TapFactory>());
}

}  // namespace acme
