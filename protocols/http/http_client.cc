#include "protocols/http/http_client.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "plugins/status_macros.h"
#include "protocols/http/http.pb.h"
#include "protocols/http/http_protocol.h"
#include "transports/tcp/tcp.pb.h"
#include "transports/tls/tls.pb.h"

namespace hublink {
namespace http {
namespace {

// Joins one attempt's top transport to the exchange: the TransportListener of the stack and the
// ProtocolLink the exchange writes to.
class Link : public TransportListener, public ProtocolLink {
 public:
  Link(HttpExchange& exchange, ConnectContext& context) : exchange_(exchange), context_(context) {}
  void set_top(Transport* top) { top_ = top; }
  bool closed() const { return closed_; }

  void OnOpen() override {
    open_ = true;
    exchange_.OnLinkOpen(*this);
  }
  void OnData(absl::string_view bytes) override { exchange_.OnLinkData(bytes); }
  void OnClosed(const absl::Status& status) override {
    closed_ = true;
    if (open_) {
      exchange_.OnLinkClosed(status);
    } else {
      // The stack never opened (refused, TLS verification, deadline): the exchange has no link.
      exchange_.OnLinkClosed(status.ok() ? absl::UnavailableError("closed during the handshakes")
                                         : status);
    }
  }
  void OnWritable() override { exchange_.OnLinkWritable(); }

  absl::Status Write(absl::string_view bytes) override { return top_->Write(bytes); }
  size_t BufferedBytes() const override { return top_->BufferedBytes(); }
  bool AboveSoftLimit() const override { return top_->AboveSoftLimit(); }
  void Close(const absl::Status&) override {
    if (!close_requested_) {
      close_requested_ = true;
      top_->Close();
    }
  }
  ConnectContext& context() override { return context_; }

 private:
  HttpExchange& exchange_;
  ConnectContext& context_;
  Transport* top_ = nullptr;
  bool open_ = false;
  bool closed_ = false;
  bool close_requested_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(const Pipeline& config,
                                                               const Registry& registry,
                                                               absl::string_view source) {
  if (config.protocol().name() != "http") {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": protocol: an HTTP client needs the \"http\" protocol, not \"",
                     config.protocol().name(), "\""));
  }
  HUBLINK_ASSIGN_OR_RETURN(std::unique_ptr<ResolvedPipeline> pipeline,
                           ResolvedPipeline::Resolve(config, registry, source));
  HUBLINK_ASSIGN_OR_RETURN(std::unique_ptr<EventLoop> loop, EventLoop::Create());
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(pipeline), std::move(loop)));
}

absl::StatusOr<Response> HttpClient::Fetch(Request request, const FetchOptions& options) {
  const Endpoint& endpoint = pipeline_->endpoint();
  if (request.host.empty()) {
    request.host = endpoint.host().find(':') != std::string::npos
                       ? absl::StrCat("[", endpoint.host(), "]")  // an IPv6 literal
                       : endpoint.host();
    if (endpoint.port() != 80 && endpoint.port() != 443) {
      absl::StrAppend(&request.host, ":", endpoint.port());
    }
  }
  HUBLINK_ASSIGN_OR_RETURN(std::unique_ptr<Protocol> protocol,
                           pipeline_->protocol()->Create(*loop_));
  auto* exchange = protocol->As<HttpExchange>();
  if (exchange == nullptr) {
    return absl::InvalidArgumentError("http: the pipeline's protocol is not the http plugin");
  }
  absl::optional<absl::StatusOr<Response>> result;
  exchange->Start(
      std::move(request), options.body_sink,
      [&result](absl::StatusOr<Response> r) { result = std::move(r); }, options.on_headers);

  // Declared in this order so that the transports go first, then the link, then the context.
  ConnectContext context(*loop_, endpoint.host(), endpoint.port());
  context.set_deadline(options.deadline);
  if (options.stage_observer) context.set_stage_observer(options.stage_observer);
  Link link(*exchange, context);
  HUBLINK_ASSIGN_OR_RETURN(std::unique_ptr<Transport> top, pipeline_->CreateStack(context));
  link.set_top(top.get());
  top->Open(&link);

  // Bounded by the deadline; each turn waits at most 100 ms so a passed deadline is seen promptly.
  while (!result.has_value()) {
    absl::Time now = absl::Now();
    if (now >= options.deadline) {
      result = absl::DeadlineExceededError(absl::StrCat("http: no complete response from ",
                                                        endpoint.host(), ":", endpoint.port(),
                                                        " by the deadline"));
      break;
    }
    loop_->RunOnce(std::min(options.deadline - now, absl::Milliseconds(100)));
  }
  // An orderly close (TLS close_notify) when it comes quickly; otherwise the stack is abandoned.
  if (!link.closed()) {
    link.Close(absl::OkStatus());
    const absl::Time close_by = absl::Now() + absl::Seconds(1);
    while (!link.closed() && absl::Now() < close_by) loop_->RunOnce(absl::Milliseconds(50));
  }
  top.reset();
  // Work the destroyed transports posted (deferred callbacks) must not outlive this call.
  for (int i = 0; i < 10 && loop_->RunOnce(absl::ZeroDuration()) > 0; ++i) {
  }
  return *std::move(result);
}

absl::StatusOr<Pipeline> HttpsPipeline(absl::string_view host, uint32_t port,
                                       absl::string_view ca_file, bool insecure) {
  if (host.empty()) return absl::InvalidArgumentError("http: host is empty");
  if (port == 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("http: port ", port, " is out of range"));
  }
  Pipeline pipeline;
  pipeline.mutable_endpoint()->set_host(std::string(host));
  pipeline.mutable_endpoint()->set_port(port);
  PluginConfig* tcp = pipeline.add_transports();
  tcp->set_name("tcp");
  tcp->mutable_typed_config()->PackFrom(transports::TcpConfig());
  transports::TlsConfig tls;
  tls.add_alpn("http/1.1");
  tls.set_ca_file(std::string(ca_file));
  tls.set_insecure_skip_verify(insecure);
  PluginConfig* tls_layer = pipeline.add_transports();
  tls_layer->set_name("tls");
  tls_layer->mutable_typed_config()->PackFrom(tls);
  pipeline.mutable_protocol()->set_name("http");
  pipeline.mutable_protocol()->mutable_typed_config()->PackFrom(protocols::HttpConfig());
  return pipeline;
}

}  // namespace http
}  // namespace hublink
