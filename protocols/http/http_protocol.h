// "http": HTTP/1.1 as a hublink protocol plugin, on any transport stack (tcp > tls, or through a
// proxy: tcp > http_connect > tls). Each connection carries one request and its response
// (`Connection: close`): the uses here (device registration, firmware downloads) are one-shot, and
// a fresh connection per request keeps resumption after a cut the same code path as a first try.
//
// The plugin's Protocol is an HttpExchange (reached with `protocol->As<http::HttpExchange>()`,
// plugins/typed_access.h): the owner hands it the request with Start() before the
// link opens; it writes the request when the link opens, feeds the reply to the pure codec
// (codec.h) and reports the response or the error exactly once. HttpClient (http_client.h) drives
// it over a pipeline for blocking callers.
#ifndef HUBLINK_PROTOCOLS_HTTP_HTTP_PROTOCOL_H_
#define HUBLINK_PROTOCOLS_HTTP_HTTP_PROTOCOL_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "plugins/protocol.h"
#include "plugins/registry.h"
#include "protocols/http/codec.h"

namespace hublink {

void RegisterHttpProtocol(Registry::Builder& builder);

namespace http {

struct ExchangeOptions {
  std::vector<std::pair<std::string, std::string>> headers;  // before each request's own
  ParserLimits limits;
};

class HttpExchange : public Protocol {
 public:
  using Done = std::function<void(absl::StatusOr<Response>)>;
  static constexpr absl::string_view kInterfaceId = "hublink.http.HttpExchange";

  explicit HttpExchange(ExchangeOptions options) : options_(std::move(options)) {}

  // The one request of this exchange. `done` runs once, on the loop thread, with the response (any
  // status code: 404 is a response, not an error) or why there is none. `sink`, when set, receives
  // the body as it arrives (see ResponseParser::set_body_sink); `on_headers` sees the headers first.
  void Start(Request request, ResponseParser::BodySink sink, Done done,
             ResponseParser::HeadersCallback on_headers = nullptr);
  bool finished() const { return finished_; }

  void OnLinkOpen(ProtocolLink& link) override;
  void OnLinkData(absl::string_view bytes) override;
  void OnLinkClosed(const absl::Status& status) override;

 protected:
  void* FindInterface(absl::string_view id) override {
    return OfferInterface<HttpExchange>(this, id);
  }

 private:
  void Finish(absl::StatusOr<Response> result);

  const ExchangeOptions options_;
  Request request_;
  Done done_;
  std::unique_ptr<ResponseParser> parser_;
  ProtocolLink* link_ = nullptr;
  bool finished_ = false;
};

}  // namespace http
}  // namespace hublink

#endif  // HUBLINK_PROTOCOLS_HTTP_HTTP_PROTOCOL_H_
