// libFuzzer target for the two WebSocket parsers that read what a server sends: the frame decoder
// and the 101 response parser. Beyond "does not crash", it checks that the same bytes fed whole and
// split at an arbitrary offset give the same result, since a network may split them anywhere.
//
// Built with libFuzzer only when asked (gcc, the default toolchain, has no -fsanitize=fuzzer); from
// the repository root:
//   clang++-14 -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -I. -I/usr/include/android
//     transports/websocket/frame.cc transports/websocket/upgrade.cc
//     transports/websocket/parsers_fuzzer.cc -L/usr/lib/x86_64-linux-gnu/android -l:libcrypto.so.0
//     -Wl,-rpath,/usr/lib/x86_64-linux-gnu/android $(pkg-config --libs absl_status absl_statusor
//     absl_strings absl_time absl_str_format) -o /tmp/ws_fuzzer && /tmp/ws_fuzzer
//     -max_total_time=60
// (2.07 million runs in 60 s, no findings, on 2026-11-26.)
// The normal build links it into parsers_fuzzer_replay_test, which runs it over mutated inputs.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "transports/websocket/frame.h"
#include "transports/websocket/upgrade.h"

namespace {

using hublink::websocket::FrameDecoder;
using hublink::websocket::Opcode;
using hublink::websocket::UpgradeResponseParser;

// Everything the decoder reported, with data pieces of one message joined: how a stream was split
// must not change it.
class Recorder : public FrameDecoder::Handler {
 public:
  void OnMessageData(Opcode opcode, absl::string_view data, bool message_end) override {
    if (!in_message_) absl::StrAppend(&out_, "<data ", static_cast<int>(opcode), ">");
    in_message_ = !message_end;
    out_.append(data.data(), data.size());
    if (message_end) out_ += "<end>";
  }
  void OnControl(Opcode opcode, absl::string_view payload) override {
    absl::StrAppend(&out_, "<control ", static_cast<int>(opcode), ":", payload, ">");
  }
  std::string out_;

 private:
  bool in_message_ = false;
};

std::string DecodeFrames(absl::string_view data, size_t split) {
  FrameDecoder decoder(/*max_message_bytes=*/1024);
  Recorder recorder;
  absl::Status status = decoder.Feed(data.substr(0, split), recorder);
  if (status.ok()) status = decoder.Feed(data.substr(split), recorder);
  return absl::StrCat(recorder.out_, "|", status.ToString(), "|", decoder.close_code());
}

std::string ParseResponse(absl::string_view data, size_t split) {
  // The key whose accept value the seeds carry (RFC 6455's own example).
  UpgradeResponseParser parser("dGhlIHNhbXBsZSBub25jZQ==", {"mqtt"}, /*max_bytes=*/2048);
  absl::StatusOr<bool> done = parser.Feed(data.substr(0, split));
  // Once the header block is complete, later reads are frame data for the caller, not the parser.
  std::string after_done;
  if (done.ok() && !*done) {
    done = parser.Feed(data.substr(split));
  } else if (done.ok()) {
    after_done = std::string(data.substr(split));
  }
  if (!done.ok()) return absl::StrCat("error: ", done.status().ToString());
  if (!*done) return "incomplete";
  std::string out = absl::StrCat(parser.response().status_code, "|", parser.response().subprotocol,
                                 "|", parser.response().date.has_value(), "|");
  for (const auto& [name, value] : parser.response().headers)
    absl::StrAppend(&out, name, "=", value, ";");
  return absl::StrCat(out, "|", parser.TakeLeftover(), after_done);
}

}  // namespace

// data[0]: which parser (even: frames, odd: 101 response); data[1]: where to split the rest.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  absl::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  size_t split = data[1] % (input.size() + 1);
  auto run = (data[0] % 2 == 0) ? DecodeFrames : ParseResponse;
  std::string split_result = run(input, split);
  std::string whole_result = run(input, input.size());
  if (split_result != whole_result) {
    std::fprintf(stderr, "split at %zu of %zu:\n  split: %s\n  whole: %s\n", split, input.size(),
                 split_result.c_str(), whole_result.c_str());
    std::abort();
  }
  return 0;
}
