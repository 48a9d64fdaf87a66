// libFuzzer target for the MQTT decoder. Checks more than "does not crash": feeding the same bytes
// whole and split at an arbitrary offset must yield the same packets and the same error.
//
// Built with libFuzzer only when asked (gcc, the default toolchain, has no -fsanitize=fuzzer); from
// the repository root:
//   clang++-14 -std=c++17 -g -O1 -fsanitize=fuzzer,address -I. protocols/mqtt/codec.cc
//     protocols/mqtt/codec_fuzzer.cc $(pkg-config --libs absl_status absl_statusor absl_str_format)
//     -o /tmp/mqtt_codec_fuzzer && /tmp/mqtt_codec_fuzzer -max_total_time=60
// The normal build links it into codec_fuzzer_replay_test, which runs it over generated inputs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocols/mqtt/codec.h"

namespace {

using hublink::mqtt::Decoder;
using hublink::mqtt::Packet;

// A packet's fields flattened into a string, so two decodings compare with ==.
std::string Describe(const Packet& p) {
  std::string s;
  s += std::to_string(static_cast<int>(p.type)) + "," + std::to_string(p.flags) + "," +
       std::to_string(p.packet_id) + "," + std::to_string(p.size) + "," +
       std::to_string(p.session_present) + std::to_string(p.return_code) + std::to_string(p.dup) +
       std::to_string(p.qos) + std::to_string(p.retain) + "|";
  s.append(p.topic.data(), p.topic.size());
  s += "|";
  s.append(p.payload.data(), p.payload.size());
  s += "|";
  s.append(p.return_codes.data(), p.return_codes.size());
  s += "|";
  s.append(p.body.data(), p.body.size());
  return s;
}

std::string Run(Decoder::Role role, absl::string_view data, size_t split) {
  Decoder decoder(4096, role);
  std::string out;
  auto record = [&](const Packet& p) {
    out += Describe(p);
    out += "\n";
    return absl::OkStatus();
  };
  absl::Status status = decoder.Feed(data.substr(0, split), record);
  if (status.ok()) status = decoder.Feed(data.substr(split), record);
  out += status.ToString();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  absl::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t split = input.empty() ? 0 : data[0] % (input.size() + 1);
  for (Decoder::Role role : {Decoder::Role::kClient, Decoder::Role::kServer}) {
    std::string whole = Run(role, input, input.size());
    std::string split_result = Run(role, input, split);
    if (whole != split_result) std::abort();
  }
  return 0;
}
