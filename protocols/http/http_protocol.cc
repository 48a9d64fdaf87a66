#include "protocols/http/http_protocol.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "plugins/status_macros.h"
#include "protocols/http/http.pb.h"
#include "transports/http/http_syntax.h"

namespace hublink {
namespace http {

void HttpExchange::Start(Request request, ResponseParser::BodySink sink, Done done,
                         ResponseParser::HeadersCallback on_headers) {
  request_ = std::move(request);
  done_ = std::move(done);
  parser_ = std::make_unique<ResponseParser>(options_.limits, request_.method == "HEAD");
  if (sink) parser_->set_body_sink(std::move(sink));
  if (on_headers) parser_->set_headers_callback(std::move(on_headers));
}

void HttpExchange::OnLinkOpen(ProtocolLink& link) {
  link_ = &link;
  if (finished_) return;
  if (!parser_) {
    absl::Status status = absl::FailedPreconditionError("http: link opened before Start()");
    Finish(status);
    link.Close(status);
    return;
  }
  Request request = request_;
  std::vector<std::pair<std::string, std::string>> headers = options_.headers;
  bool has_connection = false;
  for (const auto& header : request.headers) {
    has_connection |= absl::EqualsIgnoreCase(header.first, "connection");
  }
  headers.insert(headers.end(), request.headers.begin(), request.headers.end());
  if (!has_connection) headers.emplace_back("Connection", "close");
  request.headers = std::move(headers);
  absl::StatusOr<std::string> bytes = SerializeRequest(request);
  absl::Status status = bytes.ok() ? link.Write(*bytes) : bytes.status();
  if (!status.ok()) {
    Finish(status);
    link.Close(status);
    return;
  }
  link.context().ReportStage("http", absl::StrCat(request.method, " ", Sanitize(request.target)));
}

void HttpExchange::OnLinkData(absl::string_view bytes) {
  if (finished_ || !parser_) return;
  absl::StatusOr<bool> done = parser_->Feed(bytes);
  if (!done.ok()) {
    Finish(done.status());
    if (link_ != nullptr) link_->Close(done.status());
    return;
  }
  if (!*done) return;
  Finish(parser_->TakeResponse());
  if (link_ != nullptr) link_->Close(absl::OkStatus());
}

void HttpExchange::OnLinkClosed(const absl::Status& status) {
  link_ = nullptr;
  if (finished_) return;
  if (!status.ok()) {
    Finish(Annotate(status, parser_ && parser_->headers_done()
                                ? absl::StrCat("http: connection lost after ",
                                               parser_->body_bytes(), " body bytes")
                                : "http: connection lost before the response"));
    return;
  }
  if (!parser_) {
    Finish(absl::UnavailableError("http: connection closed before a request was sent"));
    return;
  }
  absl::Status eof = parser_->FinishAtEof();
  if (!eof.ok()) {
    Finish(eof);
    return;
  }
  Finish(parser_->TakeResponse());
}

void HttpExchange::Finish(absl::StatusOr<Response> result) {
  if (finished_) return;
  finished_ = true;
  if (done_) {
    Done done = std::move(done_);
    done(std::move(result));
  }
}

}  // namespace http

namespace {

class ConfiguredHttp : public ConfiguredProtocol {
 public:
  explicit ConfiguredHttp(http::ExchangeOptions options) : options_(std::move(options)) {}
  absl::StatusOr<std::unique_ptr<Protocol>> Create(EventLoop&) override {
    return std::unique_ptr<Protocol>(new http::HttpExchange(options_));
  }

 private:
  const http::ExchangeOptions options_;
};

class HttpFactory : public ProtocolFactory {
 public:
  absl::string_view name() const override { return "http"; }
  const google::protobuf::Descriptor* config_type() const override {
    return protocols::HttpConfig::descriptor();
  }
  absl::StatusOr<std::unique_ptr<ConfiguredProtocol>> Configure(
      const google::protobuf::Message& message) const override {
    const auto& config = static_cast<const protocols::HttpConfig&>(message);
    http::ExchangeOptions options;
    for (const auto& header : config.headers()) {
      HUBLINK_RETURN_IF_ERROR(http::ValidateHeader(header.name(), header.value(), "http: headers"));
      if (absl::EqualsIgnoreCase(header.name(), "host") ||
          absl::EqualsIgnoreCase(header.name(), "content-length") ||
          absl::EqualsIgnoreCase(header.name(), "transfer-encoding")) {
        return absl::InvalidArgumentError(
            absl::StrCat("http: headers: ", header.name(), " is computed and may not be set"));
      }
      options.headers.emplace_back(header.name(), header.value());
    }
    if (config.headers().empty()) options.headers.emplace_back("User-Agent", "hublink");
    if (config.max_header_bytes() != 0) options.limits.max_header_bytes = config.max_header_bytes();
    if (config.max_headers() != 0) options.limits.max_headers = config.max_headers();
    if (config.max_body_bytes() != 0) options.limits.max_body_bytes = config.max_body_bytes();
    return std::unique_ptr<ConfiguredProtocol>(new ConfiguredHttp(std::move(options)));
  }
};

}  // namespace

void RegisterHttpProtocol(Registry::Builder& builder) {
  builder.AddProtocol(std::make_unique<HttpFactory>());
}

}  // namespace hublink
