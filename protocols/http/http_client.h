// A small blocking HTTP/1.1 client for the device services (dynamic registration, firmware
// download) on top of a hublink pipeline whose protocol is "http": the same transports as MQTT
// (tcp > tls with verification, an http_connect or socks5 proxy when the pipeline has one).
//
//   absl::StatusOr<hublink::Pipeline> config =
//       hublink::http::HttpsPipeline("ap-guangzhou.gateway.tencentdevices.com", 443, "");
//   auto client = hublink::http::HttpClient::Create(*config, hublink::BuiltinRegistry());
//   hublink::http::Request request;
//   request.target = "/device/register";   // Host comes from the endpoint
//   absl::StatusOr<hublink::http::Response> response =
//       (*client)->Fetch(request, {absl::Now() + absl::Seconds(10)});
//
// Fetch() opens a fresh connection for each request, runs the client's own EventLoop on the calling
// thread until the response is complete or the deadline passes, and closes the connection. One
// thread at a time per HttpClient.
#ifndef HUBLINK_PROTOCOLS_HTTP_HTTP_CLIENT_H_
#define HUBLINK_PROTOCOLS_HTTP_HTTP_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "plugins/event_loop.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "protocols/http/codec.h"

namespace hublink {
namespace http {

struct FetchOptions {
  // The whole exchange (connect, handshakes, request, response) must end by then.
  absl::Time deadline = absl::InfiniteFuture();
  // Receives the body as it arrives instead of Response::body (see ResponseParser::BodySink).
  ResponseParser::BodySink body_sink;
  // Sees the final response's headers before any body (see ResponseParser::set_headers_callback).
  ResponseParser::HeadersCallback on_headers;
  // Called at each handshake milestone of the connection ("tcp", "tls", "http"), for -v logs.
  ConnectContext::StageObserver stage_observer;
};

class HttpClient {
 public:
  // `config` must name the "http" protocol; kInvalidArgument otherwise. `registry` must outlive the
  // client.
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(const Pipeline& config,
                                                            const Registry& registry,
                                                            absl::string_view source = "http");

  // Sends `request` and returns the response, whatever its status code. An empty request.host
  // becomes the endpoint's host, with ":port" unless the port is 80 or 443. Errors: the stack's
  // (kUnavailable, kUnauthenticated for TLS verification, ...), kDataLoss for a malformed or cut
  // response, kDeadlineExceeded.
  absl::StatusOr<Response> Fetch(Request request, const FetchOptions& options = FetchOptions());

  const ResolvedPipeline& pipeline() const { return *pipeline_; }

 private:
  HttpClient(std::unique_ptr<ResolvedPipeline> pipeline, std::unique_ptr<EventLoop> loop)
      : pipeline_(std::move(pipeline)), loop_(std::move(loop)) {}

  std::unique_ptr<ResolvedPipeline> pipeline_;
  std::unique_ptr<EventLoop> loop_;
};

// tcp > tls (verified: `ca_file`, or the system roots when empty; SNI `host`) + http, to host:port.
// `insecure` skips verification (for tests against self-made certificates only).
absl::StatusOr<Pipeline> HttpsPipeline(absl::string_view host, uint32_t port,
                                       absl::string_view ca_file, bool insecure = false);

}  // namespace http
}  // namespace hublink

#endif  // HUBLINK_PROTOCOLS_HTTP_HTTP_CLIENT_H_
