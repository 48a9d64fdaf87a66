// libFuzzer entry point for the HTTP response parser. Plain C++, so codec_fuzzer_replay_test links
// it without libFuzzer; with clang:
//   clang++ -std=c++17 -fsanitize=fuzzer,address -I. protocols/http/codec_fuzzer.cc
//     protocols/http/codec.cc transports/http/http_syntax.cc -labsl_strings -labsl_status
//     -labsl_int128 -o /tmp/http_fuzzer   (one command)
// Checks: no crash, and feeding the input whole or split at a byte the input picks gives the same
// outcome (done, status code, body).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "protocols/http/codec.h"

namespace {

struct Outcome {
  bool ok = false;
  bool done = false;
  int status_code = 0;
  std::string body;
};

Outcome Run(absl::string_view input, size_t split) {
  hublink::http::ParserLimits limits;
  limits.max_header_bytes = 512;
  limits.max_body_bytes = 1024;
  hublink::http::ResponseParser parser(limits);
  Outcome outcome;
  absl::StatusOr<bool> done = parser.Feed(input.substr(0, split));
  if (done.ok() && !*done) done = parser.Feed(input.substr(split));
  if (done.ok() && !*done) {
    absl::Status eof = parser.FinishAtEof();
    if (!eof.ok()) return outcome;
    done = true;
  }
  if (!done.ok()) return outcome;
  outcome.ok = true;
  outcome.done = *done;
  outcome.status_code = parser.response().status_code;
  outcome.body = parser.response().body;
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t split = data[0] % size;
  absl::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (split > input.size()) split = input.size();
  Outcome whole = Run(input, input.size());
  Outcome parts = Run(input, split);
  if (whole.ok != parts.ok || whole.status_code != parts.status_code || whole.body != parts.body) {
    std::abort();
  }
  return 0;
}
