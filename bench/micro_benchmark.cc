// Micro-benchmarks of the per-message hot paths (bench/run.sh --micro, or bazel
// run -c opt):
//   - WebSocket: masking against memcpy over the same buffer sizes (masking is
//   the only per-byte
//     work on the send path; memcpy is the floor any copy pays), framing
//     (header + copy + mask) and decoding server frames;
//   - MQTT 3.1.1: encoding and decoding PUBLISH and PUBACK, in ns per packet;
//   - TLS record crypto: BoringSSL's EVP_AEAD seal and open (AES-128-GCM,
//     AES-256-GCM, ChaCha20-Poly1305) at record-sized inputs, in bytes/s: the
//     bulk rate that bounds tls and wss throughput per core (issue 15).
#include <openssl/aead.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "benchmark/benchmark.h"
#include "protocols/mqtt/codec.h"
#include "transports/websocket/frame.h"

namespace hublink {
namespace {

const uint8_t kKey[4] = {0x37, 0xFA, 0x21, 0x3D};

void BM_WsMask(benchmark::State& state) {
  std::string buffer(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) {
    websocket::Mask(&buffer[0], buffer.size(), kKey);
    benchmark::DoNotOptimize(buffer.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_WsMask)->Arg(64)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

void BM_Memcpy(benchmark::State& state) {
  std::string source(static_cast<size_t>(state.range(0)), 'x');
  std::string target(source.size(), 'y');
  for (auto _ : state) {
    std::memcpy(&target[0], source.data(), source.size());
    benchmark::DoNotOptimize(target.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Memcpy)->Arg(64)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

// A whole client frame: header, mask key from the CSPRNG block, copy and mask.
void BM_WsAppendClientFrame(benchmark::State& state) {
  std::string payload(static_cast<size_t>(state.range(0)), 'x');
  std::string frame;
  websocket::MaskKeySource keys;
  for (auto _ : state) {
    frame.clear();
    websocket::AppendClientFrame(websocket::kBinary, payload, keys, &frame);
    benchmark::DoNotOptimize(frame.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_WsAppendClientFrame)->Arg(64)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

class NullFrameHandler : public websocket::FrameDecoder::Handler {
 public:
  void OnMessageData(websocket::Opcode, absl::string_view data, bool) override {
    bytes += data.size();
  }
  void OnControl(websocket::Opcode, absl::string_view) override {}
  size_t bytes = 0;
};

// Server frames (unmasked) with range(0)-byte payloads, 64 KiB of them per
// Feed() as a socket read brings. Payloads are handed on as views, so the cost
// is per frame, not per byte.
void BM_WsDecodeServerFrames(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  std::string frame;
  frame.push_back(static_cast<char>(0x82));
  if (size < 126) {
    frame.push_back(static_cast<char>(size));
  } else {
    frame.push_back(126);
    frame.push_back(static_cast<char>(size >> 8));
    frame.push_back(static_cast<char>(size & 0xFF));
  }
  frame.append(size, 'x');
  std::string stream;
  while (stream.size() + frame.size() <= (64 << 10)) stream += frame;
  const int64_t frames = static_cast<int64_t>(stream.size() / frame.size());
  websocket::FrameDecoder decoder(1 << 20);
  NullFrameHandler handler;
  for (auto _ : state) {
    absl::Status status = decoder.Feed(stream, handler);
    if (!status.ok()) state.SkipWithError("decode failed");
  }
  benchmark::DoNotOptimize(handler.bytes);
  state.SetItemsProcessed(state.iterations() * frames);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(stream.size()));
}
BENCHMARK(BM_WsDecodeServerFrames)->Arg(64)->Arg(4096);

void BM_MqttEncodePublish(benchmark::State& state) {
  const std::string payload(static_cast<size_t>(state.range(0)), 'x');
  mqtt::PublishPacket packet;
  packet.topic = "devices/sensor-0042/data";
  packet.payload = payload;
  packet.qos = static_cast<uint8_t>(state.range(1));
  packet.packet_id = 7;
  std::string out;
  for (auto _ : state) {
    out.clear();
    absl::Status status = mqtt::AppendPublish(packet, &out);
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MqttEncodePublish)->Args({64, 0})->Args({64, 1})->Args({4096, 0});

void BM_MqttEncodePuback(benchmark::State& state) {
  std::string out;
  uint16_t id = 1;
  for (auto _ : state) {
    out.clear();
    mqtt::AppendAck(mqtt::PacketType::kPuback, id, &out);
    id = static_cast<uint16_t>(id % 65535 + 1);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MqttEncodePuback);

// A 64 KiB read full of PUBLISH packets (QoS range(1), payload range(0)),
// decoded in one Feed(): the subscriber's receive path. Reported per packet.
void BM_MqttDecodePublishStream(benchmark::State& state) {
  const std::string payload(static_cast<size_t>(state.range(0)), 'x');
  mqtt::PublishPacket packet;
  packet.topic = "devices/sensor-0042/data";
  packet.payload = payload;
  packet.qos = static_cast<uint8_t>(state.range(1));
  packet.packet_id = 7;
  std::string one;
  if (!mqtt::AppendPublish(packet, &one).ok()) std::abort();
  std::string stream;
  while (stream.size() + one.size() <= (64 << 10)) stream += one;
  const int64_t packets = static_cast<int64_t>(stream.size() / one.size());
  mqtt::Decoder decoder(1 << 20, mqtt::Decoder::Role::kClient);
  size_t bytes = 0;
  for (auto _ : state) {
    absl::Status status = decoder.Feed(stream, [&](const mqtt::Packet& p) {
      bytes += p.payload.size();
      return absl::OkStatus();
    });
    if (!status.ok()) state.SkipWithError("decode failed");
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(state.iterations() * packets);
}
BENCHMARK(BM_MqttDecodePublishStream)->Args({64, 0})->Args({64, 1})->Args({4096, 0});

// One PUBLISH split in two reads at its middle: the reassembly path.
void BM_MqttDecodeSplitPublish(benchmark::State& state) {
  const std::string payload(static_cast<size_t>(state.range(0)), 'x');
  mqtt::PublishPacket packet;
  packet.topic = "devices/sensor-0042/data";
  packet.payload = payload;
  std::string one;
  if (!mqtt::AppendPublish(packet, &one).ok()) std::abort();
  const absl::string_view first = absl::string_view(one).substr(0, one.size() / 2);
  const absl::string_view second = absl::string_view(one).substr(one.size() / 2);
  mqtt::Decoder decoder(1 << 20, mqtt::Decoder::Role::kClient);
  size_t bytes = 0;
  auto on_packet = [&](const mqtt::Packet& p) {
    bytes += p.payload.size();
    return absl::OkStatus();
  };
  for (auto _ : state) {
    absl::Status a = decoder.Feed(first, on_packet);
    absl::Status b = decoder.Feed(second, on_packet);
    if (!a.ok() || !b.ok()) state.SkipWithError("decode failed");
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MqttDecodeSplitPublish)->Arg(64)->Arg(4096);

// ---- TLS record crypto (BoringSSL EVP_AEAD). range(0) picks the AEAD, range(1)
// is the plaintext size: 64 B (a small MQTT message), 4 KiB, 16 KiB (a full TLS
// record). 5 bytes of additional data, as a TLS 1.3 record header. A failed
// seal or open aborts, so a broken setup cannot report a rate for doing nothing.

struct AeadCase {
  const char* name;
  const EVP_AEAD* (*aead)();
};
const AeadCase kAeads[] = {{"aes-128-gcm", EVP_aead_aes_128_gcm},
                           {"aes-256-gcm", EVP_aead_aes_256_gcm},
                           {"chacha20-poly1305", EVP_aead_chacha20_poly1305}};

[[noreturn]] void AeadFail(const char* what) {
  std::fprintf(stderr, "micro_benchmark: EVP_AEAD_CTX_%s failed\n", what);
  std::abort();
}

// A context with a fixed key, and the nonce and additional data of one record.
class AeadSetup {
 public:
  explicit AeadSetup(const benchmark::State& state)
      : aead_(kAeads[state.range(0)].aead()),
        nonce_(EVP_AEAD_nonce_length(aead_), 0x5A),
        ad_{0x17, 0x03, 0x03, 0x40, 0x11},
        plaintext_(static_cast<size_t>(state.range(1)), 0x78),
        out_(plaintext_.size() + EVP_AEAD_max_overhead(aead_)) {
    std::vector<uint8_t> key(EVP_AEAD_key_length(aead_), 0x42);
    if (!EVP_AEAD_CTX_init(ctx_.get(), aead_, key.data(), key.size(), EVP_AEAD_DEFAULT_TAG_LENGTH,
                           nullptr)) {
      AeadFail("init");
    }
  }

  // Seals plaintext_ into out_; returns the ciphertext length.
  size_t Seal() {
    size_t out_len = 0;
    if (!EVP_AEAD_CTX_seal(ctx_.get(), out_.data(), &out_len, out_.size(), nonce_.data(),
                           nonce_.size(), plaintext_.data(), plaintext_.size(), ad_.data(),
                           ad_.size())) {
      AeadFail("seal");
    }
    return out_len;
  }
  // Opens `sealed` into plaintext_ (same size); aborts unless it authenticates.
  void Open(const std::vector<uint8_t>& sealed) {
    size_t out_len = 0;
    if (!EVP_AEAD_CTX_open(ctx_.get(), plaintext_.data(), &out_len, plaintext_.size(),
                           nonce_.data(), nonce_.size(), sealed.data(), sealed.size(), ad_.data(),
                           ad_.size()) ||
        out_len != plaintext_.size()) {
      AeadFail("open");
    }
  }

  const std::vector<uint8_t>& out() const { return out_; }
  const std::vector<uint8_t>& plaintext() const { return plaintext_; }

 private:
  const EVP_AEAD* aead_;
  bssl::ScopedEVP_AEAD_CTX ctx_;
  // One nonce for every record: fine for timing, never for real traffic.
  std::vector<uint8_t> nonce_;
  std::vector<uint8_t> ad_;
  std::vector<uint8_t> plaintext_;
  std::vector<uint8_t> out_;
};

void AeadArgs(benchmark::internal::Benchmark* b) {
  for (int64_t aead = 0; aead < 3; ++aead) {
    for (int64_t size : {64, 4 << 10, 16 << 10}) b->Args({aead, size});
  }
  b->ArgNames({"aead", "bytes"});
}

void BM_TlsAeadSeal(benchmark::State& state) {
  AeadSetup setup(state);
  size_t sealed = 0;
  for (auto _ : state) {
    sealed = setup.Seal();
    benchmark::DoNotOptimize(setup.out().data());
    benchmark::ClobberMemory();
  }
  if (sealed != setup.out().size()) AeadFail("seal (short output)");
  state.SetLabel(kAeads[state.range(0)].name);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(1));
}
BENCHMARK(BM_TlsAeadSeal)->Apply(AeadArgs);

void BM_TlsAeadOpen(benchmark::State& state) {
  AeadSetup setup(state);
  const std::vector<uint8_t> sealed(setup.out().begin(), setup.out().begin() + setup.Seal());
  for (auto _ : state) {
    setup.Open(sealed);
    benchmark::DoNotOptimize(setup.plaintext().data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(kAeads[state.range(0)].name);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(1));
}
BENCHMARK(BM_TlsAeadOpen)->Apply(AeadArgs);

}  // namespace
}  // namespace hublink

BENCHMARK_MAIN();
