// RFC 6455 framing as pure code: masked client frames out, an incremental decoder for server frames
// in.
#ifndef HUBLINK_TRANSPORTS_WEBSOCKET_FRAME_H_
#define HUBLINK_TRANSPORTS_WEBSOCKET_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace hublink {
namespace websocket {

enum Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close codes (RFC 6455 section 7.4.1) this client sends.
enum CloseCode : uint16_t {
  kCloseNormal = 1000,
  kCloseGoingAway = 1001,
  kCloseProtocolError = 1002,
  kCloseUnsupportedData = 1003,
  kCloseInvalidPayload = 1007,
  kCloseMessageTooBig = 1009,
  kCloseInternalError = 1011,
};

constexpr size_t kMaxFrameHeaderSize = 14;  // 2 + 8 (64-bit length) + 4 (mask key)
constexpr size_t kMaxControlPayload = 125;

// XORs `size` bytes with the 4-byte mask `key` (in wire order), starting at mask byte `phase`
// (0..3). Works 8 bytes at a time; no alignment needed.
void Mask(char* data, size_t size, const uint8_t key[4], size_t phase = 0);

// Fills `out` from the kernel's CSPRNG (getrandom(2)), or BoringSSL's where the system call is
// missing. RFC 6455 wants the handshake nonce and the mask keys from a strong source of entropy;
// the kernel's is one, and it spares a plain ws connection BoringSSL's DRBG, whose code and state a
// program without TLS would otherwise page in only for this (peak RSS of a ws client 0.3 MB lower).
void FillSecureRandom(uint8_t* out, size_t size);

// Mask keys from FillSecureRandom (RFC 6455 section 10.3: unpredictable to the application),
// fetched in blocks of 64 keys so a frame costs no system call.
class MaskKeySource {
 public:
  void Next(uint8_t key[4]);

 private:
  uint8_t block_[256];
  size_t used_ = sizeof(block_);
};

// Writes the header of a masked client frame into `out` (kMaxFrameHeaderSize bytes of room) and
// returns its size.
size_t EncodeClientFrameHeader(Opcode opcode, bool fin, uint64_t payload_size, const uint8_t key[4],
                               uint8_t* out);
// Appends a complete masked frame (header + masked payload) to `out`.
void AppendClientFrame(Opcode opcode, absl::string_view payload, MaskKeySource& keys,
                       std::string* out);
// A CLOSE frame's payload: the code, then the reason cut to fit 125 bytes at a UTF-8 boundary.
std::string ClosePayload(uint16_t code, absl::string_view reason);

// Whether a peer may send `code` in a CLOSE frame (1005, 1006, 1015 and unassigned ranges may not).
bool IsValidCloseCode(uint16_t code);
// "normal closure", "going away", ... for messages; empty when the code has no registered name.
absl::string_view CloseCodeName(uint16_t code);

// Decodes server frames from any split of the byte stream. Data payloads are handed on as they
// arrive (a message need not be buffered whole); control frames are handed on complete.
class FrameDecoder {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // A piece of a data message. `opcode` is the message's (text or binary) for every piece;
    // `message_end` marks its last piece (which may be empty).
    virtual void OnMessageData(Opcode opcode, absl::string_view data, bool message_end) = 0;
    // A complete PING, PONG or CLOSE (close payload already validated).
    virtual void OnControl(Opcode opcode, absl::string_view payload) = 0;
  };

  explicit FrameDecoder(uint64_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

  // Decodes `bytes`, calling `handler`. On a protocol violation returns an error and close_code()
  // says which code to close with; the decoder then refuses further input. The handler may call
  // stop() to make Feed() return at once (after a CLOSE, nothing more is read).
  absl::Status Feed(absl::string_view bytes, Handler& handler);
  void stop() { stopped_ = true; }
  uint16_t close_code() const { return close_code_; }

 private:
  absl::Status Fail(uint16_t code, absl::string_view message);
  absl::Status OnHeader(Handler& handler);
  absl::Status FinishControl(Handler& handler);

  enum class State { kHeader, kPayload, kFailed };
  const uint64_t max_message_bytes_;
  State state_ = State::kHeader;
  uint8_t header_[kMaxFrameHeaderSize];
  size_t header_size_ = 0;
  // The frame being read.
  Opcode opcode_ = kContinuation;
  bool fin_ = false;
  uint64_t remaining_ = 0;
  std::string control_;  // payload of a control frame so far
  // The data message in progress, across fragments.
  bool in_message_ = false;
  Opcode message_opcode_ = kBinary;
  uint64_t message_size_ = 0;
  bool stopped_ = false;
  uint16_t close_code_ = 0;
};

}  // namespace websocket
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_WEBSOCKET_FRAME_H_
