// HTTP/1.1 client wire format (RFC 9112) as pure code: a request serializer and an incremental
// response parser. No sockets: the "http" protocol plugin (http_protocol.h) feeds the parser the
// bytes its transport stack hands up, in any split, and tests and the fuzzer feed it directly.
//
// The parser handles what a client meets when it downloads firmware or registers a device: a
// status line, headers, and a body delimited by Content-Length, chunked transfer coding, or the end
// of the connection; interim 1xx responses are skipped. Every size is bounded (ParserLimits) and
// every malformed input fails with kDataLoss naming what was wrong, as docs/errors.md says for a
// peer's protocol violation.
#ifndef HUBLINK_PROTOCOLS_HTTP_CODEC_H_
#define HUBLINK_PROTOCOLS_HTTP_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hublink {
namespace http {

struct Request {
  std::string method = "GET";
  std::string target = "/";  // origin-form: path and query, e.g. "/device/register"
  std::string host;          // the Host header: "name" or "name:port"
  // Extra headers, in order. Host, Content-Length and Transfer-Encoding are computed here and may
  // not be given.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// The request bytes, ending with the body. Content-Length is sent whenever there is a body or the
// method usually carries one (POST, PUT, PATCH). kInvalidArgument for a bad method, target, host or
// header (so that config or signer input cannot inject lines).
absl::StatusOr<std::string> SerializeRequest(const Request& request);

struct Response {
  int status_code = 0;
  std::string reason;
  // Names lower-cased, in the order received; repeated names stay separate entries.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // empty when a body sink took it

  // The first value of header `name` (any case), or null.
  const std::string* Find(absl::string_view name) const;
};

struct ParserLimits {
  size_t max_header_bytes = 16 * 1024;  // status line + headers (+ trailers), together
  size_t max_headers = 100;
  uint64_t max_body_bytes = 16 * 1024 * 1024;  // kept in memory; a body sink bounds itself
};

class ResponseParser {
 public:
  // Called with each piece of the body as it is decoded (chunk framing removed), after the headers
  // were parsed (response() has the status and headers by then). A non-OK return fails Feed() with
  // that status. With a sink, Response::body stays empty and max_body_bytes does not apply: the
  // sink decides how much it takes (a firmware download knows the file size it expects).
  using BodySink = std::function<absl::Status(absl::string_view piece)>;

  explicit ResponseParser(ParserLimits limits = ParserLimits(), bool head_request = false);

  void set_body_sink(BodySink sink) { sink_ = std::move(sink); }
  // Called once the final (non-1xx) response's headers are parsed, before any body: a download
  // checks the status and Content-Range here. A non-OK return fails Feed() with that status.
  using HeadersCallback = std::function<absl::Status(const Response& response)>;
  void set_headers_callback(HeadersCallback callback) { on_headers_ = std::move(callback); }

  // Consumes `bytes`. Returns true once the response is complete (bytes after it are kept for
  // TakeLeftover()), false while more are needed, or the first error (kDataLoss for malformed input,
  // kResourceExhausted for a limit); after an error, further calls return the same error.
  absl::StatusOr<bool> Feed(absl::string_view bytes);
  // The peer closed the connection: completes a body delimited by the close, otherwise kDataLoss
  // saying where the response was cut (headers, Content-Length body, chunk).
  absl::Status FinishAtEof();

  bool headers_done() const { return state_ > State::kHeaders; }
  bool done() const { return state_ == State::kDone; }
  const Response& response() const { return response_; }
  Response TakeResponse() { return std::move(response_); }
  std::string TakeLeftover() { return std::move(leftover_); }
  // Body bytes decoded so far (including what a sink took).
  uint64_t body_bytes() const { return body_bytes_; }

 private:
  enum class State {
    kStatusLine,
    kHeaders,
    kBody,          // Content-Length bytes remain
    kChunkSize,     // reading "<hex>[;ext]\r\n"
    kChunkData,     // chunk_remaining_ bytes of data
    kChunkDataEnd,  // the CRLF after a chunk's data
    kTrailers,      // after the last chunk
    kUntilClose,    // no length: the body ends with the connection
    kDone,
  };

  absl::Status Fail(absl::Status status);
  // Takes one CRLF-terminated line from buffer_ (false when incomplete). Lines count against the
  // header limit; a bare LF is accepted, as RFC 9112 §2.2 allows.
  absl::StatusOr<bool> TakeLine(std::string* line);
  absl::Status OnStatusLine(absl::string_view line);
  absl::Status OnHeaderLine(absl::string_view line);
  absl::Status OnHeadersDone();
  absl::Status EmitBody(absl::string_view piece);

  const ParserLimits limits_;
  const bool head_request_;
  BodySink sink_;
  HeadersCallback on_headers_;
  State state_ = State::kStatusLine;
  absl::Status error_;
  std::string buffer_;  // unconsumed input
  size_t header_bytes_ = 0;
  uint64_t body_remaining_ = 0;
  uint64_t chunk_remaining_ = 0;
  uint64_t body_bytes_ = 0;
  Response response_;
  std::string leftover_;
};

}  // namespace http
}  // namespace hublink

#endif  // HUBLINK_PROTOCOLS_HTTP_CODEC_H_
