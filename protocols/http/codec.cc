#include "protocols/http/codec.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "transports/http/http_syntax.h"

namespace hublink {
namespace http {
namespace {

bool IsComputedHeader(absl::string_view name) {
  return absl::EqualsIgnoreCase(name, "host") || absl::EqualsIgnoreCase(name, "content-length") ||
         absl::EqualsIgnoreCase(name, "transfer-encoding");
}

absl::Status Malformed(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("http: malformed response: ", what));
}

// Content-Length is 1*DIGIT; repeated values must agree (RFC 9110 §8.6).
absl::StatusOr<uint64_t> ParseContentLength(absl::string_view value) {
  uint64_t length = 0;
  bool first = true;
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    part = absl::StripAsciiWhitespace(part);
    uint64_t n = 0;
    if (part.empty() || part.size() > 19 ||
        !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        !absl::SimpleAtoi(part, &n)) {
      return Malformed(absl::StrCat("Content-Length \"", Sanitize(value), "\" is not a number"));
    }
    if (!first && n != length) {
      return Malformed(absl::StrCat("conflicting Content-Length values \"", Sanitize(value), "\""));
    }
    length = n;
    first = false;
  }
  return length;
}

}  // namespace

absl::StatusOr<std::string> SerializeRequest(const Request& request) {
  if (request.method.empty() ||
      !std::all_of(request.method.begin(), request.method.end(), IsTokenChar)) {
    return absl::InvalidArgumentError("http: request method must be an HTTP token");
  }
  if (request.target.empty() || request.target[0] != '/' ||
      std::any_of(request.target.begin(), request.target.end(),
                  [](char c) { return c <= 0x20 || c >= 0x7f; })) {
    return absl::InvalidArgumentError(
        "http: request target must start with '/' and hold no spaces or control characters");
  }
  if (request.host.empty()) return absl::InvalidArgumentError("http: request host is empty");
  absl::Status host_ok = ValidateHeader("Host", request.host, "http: request");
  if (!host_ok.ok() || absl::StrContains(request.host, ' ')) {
    return absl::InvalidArgumentError("http: request host holds spaces or line breaks");
  }
  std::string out = absl::StrCat(request.method, " ", request.target,
                                 " HTTP/1.1\r\nHost: ", request.host, "\r\n");
  for (const auto& [name, value] : request.headers) {
    absl::Status ok = ValidateHeader(name, value, "http: request");
    if (!ok.ok()) return ok;
    if (IsComputedHeader(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("http: request header ", name, " is computed and may not be set"));
    }
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  }
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
      request.method == "PATCH") {
    absl::StrAppend(&out, "Content-Length: ", request.body.size(), "\r\n");
  }
  absl::StrAppend(&out, "\r\n", request.body);
  return out;
}

const std::string* Response::Find(absl::string_view name) const {
  for (const auto& header : headers) {
    if (absl::EqualsIgnoreCase(header.first, name)) return &header.second;
  }
  return nullptr;
}

ResponseParser::ResponseParser(ParserLimits limits, bool head_request)
    : limits_(limits), head_request_(head_request) {}

absl::Status ResponseParser::Fail(absl::Status status) {
  error_ = status;
  buffer_.clear();
  return status;
}

absl::StatusOr<bool> ResponseParser::TakeLine(std::string* line) {
  size_t end = buffer_.find('\n');
  // The limit counts what is buffered too, so a peer cannot grow the buffer without a newline.
  size_t length = end == std::string::npos ? buffer_.size() : end + 1;
  if (header_bytes_ + length > limits_.max_header_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("http: response header block over ", limits_.max_header_bytes, " bytes"));
  }
  if (end == std::string::npos) return false;
  header_bytes_ += length;
  size_t stop = end > 0 && buffer_[end - 1] == '\r' ? end - 1 : end;
  line->assign(buffer_, 0, stop);
  buffer_.erase(0, end + 1);
  return true;
}

absl::Status ResponseParser::OnStatusLine(absl::string_view line) {
  // HTTP-version SP 3DIGIT SP [reason]
  if (!absl::StartsWith(line, "HTTP/1.") || line.size() < 12 || line[8] != ' ' ||
      (line.size() > 12 && line[12] != ' ')) {
    return Malformed(absl::StrCat("status line \"", Sanitize(line), "\" is not HTTP/1.x"));
  }
  int code = 0;
  absl::string_view digits = line.substr(9, 3);
  if (!std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(digits, &code) || code < 100) {
    return Malformed(absl::StrCat("status code in \"", Sanitize(line), "\""));
  }
  response_ = Response();
  response_.status_code = code;
  if (line.size() > 13) response_.reason = std::string(line.substr(13));
  return absl::OkStatus();
}

absl::Status ResponseParser::OnHeaderLine(absl::string_view line) {
  if (line[0] == ' ' || line[0] == '\t') {
    return Malformed("obsolete header line folding");  // RFC 9112 §5.2: reject
  }
  size_t colon = line.find(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return Malformed(absl::StrCat("header line \"", Sanitize(line), "\" has no name"));
  }
  absl::string_view name = line.substr(0, colon);
  if (!std::all_of(name.begin(), name.end(), IsTokenChar)) {
    return Malformed(absl::StrCat("header name \"", Sanitize(name), "\" is not a token"));
  }
  if (response_.headers.size() >= limits_.max_headers) {
    return absl::ResourceExhaustedError(
        absl::StrCat("http: response has more than ", limits_.max_headers, " headers"));
  }
  absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
  if (std::any_of(value.begin(), value.end(), [](char c) { return c == '\0' || c == '\r'; })) {
    return Malformed(absl::StrCat("header ", Sanitize(name), " holds a NUL or CR"));
  }
  response_.headers.emplace_back(absl::AsciiStrToLower(name), std::string(value));
  return absl::OkStatus();
}

absl::Status ResponseParser::OnHeadersDone() {
  const int code = response_.status_code;
  if (code < 200) {  // interim response (100 Continue, 103 Early Hints): the real one follows
    if (code == 101) return Malformed("unexpected 101 Switching Protocols");
    state_ = State::kStatusLine;
    return absl::OkStatus();
  }
  if (on_headers_) {
    absl::Status status = on_headers_(response_);
    if (!status.ok()) return status;
  }
  if (head_request_ || code == 204 || code == 304) {
    state_ = State::kDone;
    return absl::OkStatus();
  }
  const std::string* coding = response_.Find("transfer-encoding");
  std::string length_values;
  bool has_length = false;
  for (const auto& [name, value] : response_.headers) {
    if (name != "content-length") continue;
    if (has_length) length_values += ",";
    length_values += value;
    has_length = true;
  }
  if (coding != nullptr) {
    // Only "chunked" (last) is decoded; anything else would hand the caller encoded bytes.
    absl::string_view last = *coding;
    size_t comma = last.rfind(',');
    if (comma != absl::string_view::npos) last = last.substr(comma + 1);
    last = absl::StripAsciiWhitespace(last);
    if (!absl::EqualsIgnoreCase(last, "chunked") || absl::StrContains(*coding, ',')) {
      return Malformed(absl::StrCat("unsupported Transfer-Encoding \"", Sanitize(*coding), "\""));
    }
    if (has_length) {  // RFC 9112 §6.3: a sign of request smuggling; refuse
      return Malformed("both Transfer-Encoding and Content-Length");
    }
    state_ = State::kChunkSize;
    return absl::OkStatus();
  }
  if (has_length) {
    absl::StatusOr<uint64_t> length = ParseContentLength(length_values);
    if (!length.ok()) return length.status();
    if (!sink_ && *length > limits_.max_body_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("http: response body of ", *length,
                                                       " bytes is over the limit of ",
                                                       limits_.max_body_bytes));
    }
    body_remaining_ = *length;
    state_ = *length == 0 ? State::kDone : State::kBody;
    return absl::OkStatus();
  }
  state_ = State::kUntilClose;
  return absl::OkStatus();
}

absl::Status ResponseParser::EmitBody(absl::string_view piece) {
  if (piece.empty()) return absl::OkStatus();
  if (!sink_ && piece.size() > limits_.max_body_bytes - body_bytes_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("http: response body over the limit of ", limits_.max_body_bytes, " bytes"));
  }
  body_bytes_ += piece.size();
  if (sink_) return sink_(piece);
  response_.body.append(piece.data(), piece.size());
  return absl::OkStatus();
}

absl::StatusOr<bool> ResponseParser::Feed(absl::string_view bytes) {
  if (!error_.ok()) return error_;
  if (state_ == State::kDone) {
    leftover_.append(bytes.data(), bytes.size());
    return true;
  }
  buffer_.append(bytes.data(), bytes.size());
  std::string line;
  while (true) {
    switch (state_) {
      case State::kStatusLine:
      case State::kHeaders:
      case State::kChunkSize:
      case State::kChunkDataEnd:
      case State::kTrailers: {
        absl::StatusOr<bool> got = TakeLine(&line);
        if (!got.ok()) return Fail(got.status());
        if (!*got) return false;
        absl::Status status;
        if (state_ == State::kStatusLine) {
          status = OnStatusLine(line);
          if (status.ok()) state_ = State::kHeaders;
        } else if (state_ == State::kHeaders) {
          status = line.empty() ? OnHeadersDone() : OnHeaderLine(line);
        } else if (state_ == State::kChunkSize) {
          // chunk-size [; ext] — extensions are ignored, as RFC 9112 §7.1.1 allows.
          absl::string_view size = line;
          size = size.substr(0, size.find(';'));
          size = absl::StripAsciiWhitespace(size);
          uint64_t n = 0;
          if (size.empty() || size.size() > 15 ||
              !std::all_of(size.begin(), size.end(), absl::ascii_isxdigit) ||
              !absl::SimpleHexAtoi(size, &n)) {
            status = Malformed(absl::StrCat("chunk size \"", Sanitize(line), "\""));
          } else if (n == 0) {
            state_ = State::kTrailers;
          } else {
            chunk_remaining_ = n;
            state_ = State::kChunkData;
          }
        } else if (state_ == State::kChunkDataEnd) {
          if (!line.empty()) status = Malformed("chunk data longer than its size");
          state_ = State::kChunkSize;
        } else {  // trailers: checked like headers, then dropped
          if (line.empty()) {
            state_ = State::kDone;
          } else if (line[0] == ' ' || line[0] == '\t' || line.find(':') == std::string::npos ||
                     line.find(':') == 0) {
            status = Malformed(absl::StrCat("trailer line \"", Sanitize(line), "\""));
          }
        }
        if (!status.ok()) return Fail(status);
        break;
      }
      case State::kBody:
      case State::kChunkData: {
        uint64_t& remaining = state_ == State::kBody ? body_remaining_ : chunk_remaining_;
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining, buffer_.size()));
        absl::Status status = EmitBody(absl::string_view(buffer_).substr(0, n));
        if (!status.ok()) return Fail(status);
        buffer_.erase(0, n);
        remaining -= n;
        if (remaining > 0) return false;
        state_ = state_ == State::kBody ? State::kDone : State::kChunkDataEnd;
        break;
      }
      case State::kUntilClose: {
        absl::Status status = EmitBody(buffer_);
        buffer_.clear();
        if (!status.ok()) return Fail(status);
        return false;
      }
      case State::kDone:
        leftover_ = std::move(buffer_);
        buffer_.clear();
        return true;
    }
  }
}

absl::Status ResponseParser::FinishAtEof() {
  if (!error_.ok()) return error_;
  switch (state_) {
    case State::kDone:
      return absl::OkStatus();
    case State::kUntilClose:
      state_ = State::kDone;
      return absl::OkStatus();
    case State::kStatusLine:
      return Fail(absl::DataLossError(buffer_.empty() && response_.status_code == 0
                                          ? "http: connection closed before a response"
                                          : "http: connection closed inside the status line"));
    case State::kHeaders:
      return Fail(absl::DataLossError("http: connection closed inside the response headers"));
    case State::kBody:
      return Fail(absl::DataLossError(absl::StrCat("http: connection closed after ", body_bytes_,
                                                   " body bytes, ", body_remaining_,
                                                   " short of Content-Length")));
    default:
      return Fail(absl::DataLossError(absl::StrCat(
          "http: connection closed inside the chunked body after ", body_bytes_, " bytes")));
  }
}

}  // namespace http
}  // namespace hublink
