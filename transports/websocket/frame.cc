#include "transports/websocket/frame.h"

#include <openssl/rand.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "plugins/utf8.h"

namespace hublink {
namespace websocket {

void Mask(char* data, size_t size, const uint8_t key[4], size_t phase) {
  uint8_t pattern[8];
  for (size_t i = 0; i < 8; ++i) pattern[i] = key[(phase + i) & 3];
  uint64_t k;
  std::memcpy(&k, pattern, sizeof(k));
  size_t i = 0;
  // Four independent 64-bit words per round; memcpy keeps unaligned access defined and compiles to
  // plain loads and stores (or vector ones).
  for (; i + 32 <= size; i += 32) {
    uint64_t w[4];
    std::memcpy(w, data + i, sizeof(w));
    w[0] ^= k;
    w[1] ^= k;
    w[2] ^= k;
    w[3] ^= k;
    std::memcpy(data + i, w, sizeof(w));
  }
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, data + i, sizeof(w));
    w ^= k;
    std::memcpy(data + i, &w, sizeof(w));
  }
  for (; i < size; ++i) data[i] = static_cast<char>(data[i] ^ pattern[i & 7]);
}

void FillSecureRandom(uint8_t* out, size_t size) {
  size_t filled = 0;
  while (filled < size) {
    const ssize_t n = getrandom(out + filled, size - filled, 0);
    if (n > 0) {
      filled += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      // No getrandom(2) (ENOSYS under an old kernel or a seccomp filter): BoringSSL's CSPRNG.
      RAND_bytes(out + filled, size - filled);
      return;
    }
  }
}

void MaskKeySource::Next(uint8_t key[4]) {
  if (used_ + 4 > sizeof(block_)) {
    FillSecureRandom(block_, sizeof(block_));
    used_ = 0;
  }
  std::memcpy(key, block_ + used_, 4);
  // Spent key material is wiped so a memory dump cannot replay past masks.
  std::memset(block_ + used_, 0, 4);
  used_ += 4;
}

size_t EncodeClientFrameHeader(Opcode opcode, bool fin, uint64_t payload_size, const uint8_t key[4],
                               uint8_t* out) {
  size_t n = 0;
  out[n++] = static_cast<uint8_t>((fin ? 0x80 : 0x00) | opcode);
  if (payload_size <= 125) {
    out[n++] = static_cast<uint8_t>(0x80 | payload_size);
  } else if (payload_size <= 0xFFFF) {
    out[n++] = 0x80 | 126;
    out[n++] = static_cast<uint8_t>(payload_size >> 8);
    out[n++] = static_cast<uint8_t>(payload_size);
  } else {
    out[n++] = 0x80 | 127;
    for (int shift = 56; shift >= 0; shift -= 8)
      out[n++] = static_cast<uint8_t>(payload_size >> shift);
  }
  std::memcpy(out + n, key, 4);
  return n + 4;
}

void AppendClientFrame(Opcode opcode, absl::string_view payload, MaskKeySource& keys,
                       std::string* out) {
  uint8_t key[4];
  keys.Next(key);
  uint8_t header[kMaxFrameHeaderSize];
  size_t header_size = EncodeClientFrameHeader(opcode, true, payload.size(), key, header);
  size_t start = out->size();
  out->append(reinterpret_cast<const char*>(header), header_size);
  out->append(payload.data(), payload.size());
  Mask(&(*out)[start + header_size], payload.size(), key);
}

std::string ClosePayload(uint16_t code, absl::string_view reason) {
  size_t limit = kMaxControlPayload - 2;
  if (reason.size() > limit) {
    // Never cut inside a UTF-8 sequence: the peer must be able to validate the reason.
    while (limit > 0 && (static_cast<uint8_t>(reason[limit]) & 0xC0) == 0x80) --limit;
    reason = reason.substr(0, limit);
  }
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(reason.data(), reason.size());
  return payload;
}

bool IsValidCloseCode(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

absl::string_view CloseCodeName(uint16_t code) {
  switch (code) {
    case 1000:
      return "normal closure";
    case 1001:
      return "going away";
    case 1002:
      return "protocol error";
    case 1003:
      return "unsupported data";
    case 1007:
      return "invalid payload data";
    case 1008:
      return "policy violation";
    case 1009:
      return "message too big";
    case 1010:
      return "mandatory extension";
    case 1011:
      return "internal server error";
    case 1012:
      return "service restart";
    case 1013:
      return "try again later";
    case 1014:
      return "bad gateway";
    default:
      return "";
  }
}

absl::Status FrameDecoder::Fail(uint16_t code, absl::string_view message) {
  state_ = State::kFailed;
  close_code_ = code;
  std::string text =
      absl::StrCat("websocket: ", code == kCloseMessageTooBig ? "" : "protocol error: ", message,
                   " (closing with ", code, ")");
  // The peer broke the protocol, an oversize message included (docs/errors.md).
  return absl::DataLossError(text);
}

absl::Status FrameDecoder::Feed(absl::string_view bytes, Handler& handler) {
  if (state_ == State::kFailed) {
    return absl::FailedPreconditionError("websocket: frame decoder used after a protocol error");
  }
  while (!bytes.empty() && !stopped_) {
    if (state_ == State::kHeader) {
      // First the two fixed bytes, which say how long the rest of the header is.
      size_t need = 2;
      if (header_size_ >= 2) {
        uint8_t len7 = header_[1] & 0x7F;
        need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
      }
      size_t take = std::min(need - header_size_, bytes.size());
      std::memcpy(header_ + header_size_, bytes.data(), take);
      header_size_ += take;
      bytes.remove_prefix(take);
      if (header_size_ == 2 && need == 2) {
        absl::Status early =
            OnHeader(handler);  // checks the fixed bytes; completes when no extended length
        if (!early.ok()) return early;
        continue;
      }
      if (header_size_ == need) {
        absl::Status done = OnHeader(handler);
        if (!done.ok()) return done;
      }
      continue;
    }
    // kPayload
    size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size()));
    absl::string_view chunk = bytes.substr(0, take);
    bytes.remove_prefix(take);
    remaining_ -= take;
    bool control = (opcode_ & 0x8) != 0;
    if (control) {
      control_.append(chunk.data(), chunk.size());
    } else {
      handler.OnMessageData(message_opcode_, chunk, fin_ && remaining_ == 0);
    }
    if (remaining_ == 0) {
      state_ = State::kHeader;
      header_size_ = 0;
      if (control) {
        absl::Status finished = FinishControl(handler);
        if (!finished.ok()) return finished;
      } else if (fin_) {
        in_message_ = false;
        message_size_ = 0;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status FrameDecoder::FinishControl(Handler& handler) {
  if (opcode_ == kClose) {
    if (control_.size() == 1) return Fail(kCloseProtocolError, "CLOSE frame with a 1-byte payload");
    if (control_.size() >= 2) {
      uint16_t code = static_cast<uint16_t>((static_cast<uint8_t>(control_[0]) << 8) |
                                            static_cast<uint8_t>(control_[1]));
      if (!IsValidCloseCode(code)) {
        return Fail(kCloseProtocolError,
                    absl::StrCat("CLOSE frame with invalid close code ", code));
      }
      if (!IsValidUtf8(absl::string_view(control_).substr(2))) {
        return Fail(kCloseInvalidPayload, "CLOSE frame reason is not valid UTF-8");
      }
    }
  }
  std::string payload = std::move(control_);
  control_.clear();
  handler.OnControl(opcode_, payload);
  return absl::OkStatus();
}

absl::Status FrameDecoder::OnHeader(Handler& handler) {
  const uint8_t b0 = header_[0];
  const uint8_t b1 = header_[1];
  const uint8_t len7 = b1 & 0x7F;
  if (header_size_ == 2) {
    if (b0 & 0x70) {
      return Fail(kCloseProtocolError, absl::StrCat("reserved bits set (RSV",
                                                    (b0 & 0x40)   ? "1"
                                                    : (b0 & 0x20) ? "2"
                                                                  : "3",
                                                    ") but no extension was negotiated"));
    }
    uint8_t opcode = b0 & 0x0F;
    if (opcode != kContinuation && opcode != kText && opcode != kBinary && opcode != kClose &&
        opcode != kPing && opcode != kPong) {
      return Fail(kCloseProtocolError, absl::StrCat("unknown opcode 0x", absl::Hex(opcode)));
    }
    if (b1 & 0x80)
      return Fail(kCloseProtocolError, "server frame is masked (servers must not mask)");
    fin_ = (b0 & 0x80) != 0;
    opcode_ = static_cast<Opcode>(opcode);
    if (opcode & 0x8) {
      if (!fin_) return Fail(kCloseProtocolError, "fragmented control frame");
      if (len7 > kMaxControlPayload) {
        return Fail(kCloseProtocolError, "control frame payload over 125 bytes");
      }
    } else if (opcode == kContinuation) {
      if (!in_message_)
        return Fail(kCloseProtocolError, "continuation frame with no message in progress");
    } else if (in_message_) {
      return Fail(kCloseProtocolError, "new data frame inside a fragmented message");
    }
    if (len7 >= 126) return absl::OkStatus();  // the extended length follows
  }
  uint64_t length = len7;
  if (len7 == 126) {
    length = (uint64_t{header_[2]} << 8) | header_[3];
  } else if (len7 == 127) {
    length = 0;
    for (int i = 2; i < 10; ++i) length = (length << 8) | header_[i];
    if (length >> 63) return Fail(kCloseProtocolError, "64-bit frame length with the top bit set");
  }
  remaining_ = length;
  bool control = (opcode_ & 0x8) != 0;
  if (!control) {
    if (opcode_ != kContinuation) {
      in_message_ = true;
      message_opcode_ = opcode_;
      message_size_ = 0;
    }
    if (length > max_message_bytes_ - std::min(message_size_, max_message_bytes_)) {
      return Fail(kCloseMessageTooBig,
                  absl::StrCat("received message of at least ", message_size_ + length,
                               " bytes exceeds max_message_bytes (", max_message_bytes_, ")"));
    }
    message_size_ += length;
  }
  state_ = State::kPayload;
  if (remaining_ == 0) {
    // Nothing to read: finish the frame now (the caller's loop may have no bytes left to drive it).
    state_ = State::kHeader;
    header_size_ = 0;
    if (control) return FinishControl(handler);
    if (fin_) {
      handler.OnMessageData(message_opcode_, absl::string_view(), true);
      in_message_ = false;
      message_size_ = 0;
    }
  }
  return absl::OkStatus();
}

}  // namespace websocket
}  // namespace hublink
