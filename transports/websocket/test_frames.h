// Test helpers: what a WebSocket server puts on the wire, and reading the client's masked frames
// back.
#ifndef HUBLINK_TRANSPORTS_WEBSOCKET_TEST_FRAMES_H_
#define HUBLINK_TRANSPORTS_WEBSOCKET_TEST_FRAMES_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "transports/websocket/frame.h"
#include "transports/websocket/upgrade.h"

namespace hublink {
namespace websocket {
namespace testing {

// An unmasked server frame; `first_byte` is FIN|RSV|opcode.
inline std::string ServerFrame(uint8_t first_byte, absl::string_view payload) {
  std::string out(1, static_cast<char>(first_byte));
  if (payload.size() <= 125) {
    out.push_back(static_cast<char>(payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    out.push_back(126);
    out.push_back(static_cast<char>(payload.size() >> 8));
    out.push_back(static_cast<char>(payload.size()));
  } else {
    out.push_back(127);
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>(uint64_t{payload.size()} >> shift));
    }
  }
  out.append(payload.data(), payload.size());
  return out;
}

inline std::string CloseFrame(uint16_t code, absl::string_view reason) {
  return ServerFrame(0x88, ClosePayload(code, reason));
}

// The Sec-WebSocket-Key of a complete request, or "".
inline std::string RequestKey(absl::string_view request) {
  absl::string_view marker = "Sec-WebSocket-Key: ";
  size_t at = request.find(marker);
  if (at == absl::string_view::npos) return "";
  size_t end = request.find("\r\n", at);
  return std::string(request.substr(at + marker.size(), end - at - marker.size()));
}

inline std::string SwitchingProtocols(absl::string_view key, absl::string_view extra_headers = "") {
  return absl::StrCat(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
      "Sec-WebSocket-Accept: ", ComputeAccept(key), "\r\nSec-WebSocket-Protocol: mqtt\r\n",
      extra_headers, "\r\n");
}

struct ClientFrame {
  uint8_t first_byte;
  bool masked;
  uint8_t key[4];
  std::string payload;  // unmasked
  uint8_t opcode() const { return first_byte & 0x0F; }
  bool fin() const { return first_byte & 0x80; }
};

// Removes the complete client frames at the front of `buffer` and returns them.
inline std::vector<ClientFrame> TakeClientFrames(std::string& buffer) {
  std::vector<ClientFrame> frames;
  size_t pos = 0;
  while (buffer.size() - pos >= 2) {
    const auto* b = reinterpret_cast<const uint8_t*>(buffer.data() + pos);
    size_t available = buffer.size() - pos;
    uint64_t length = b[1] & 0x7F;
    size_t header = 2;
    if (length == 126) {
      if (available < 4) break;
      length = uint64_t{b[2]} << 8 | b[3];
      header = 4;
    } else if (length == 127) {
      if (available < 10) break;
      length = 0;
      for (int i = 2; i < 10; ++i) length = length << 8 | b[i];
      header = 10;
    }
    bool masked = b[1] & 0x80;
    if (masked) header += 4;
    if (available < header + length) break;
    ClientFrame frame;
    frame.first_byte = b[0];
    frame.masked = masked;
    std::memset(frame.key, 0, 4);
    if (masked) std::memcpy(frame.key, b + header - 4, 4);
    frame.payload = buffer.substr(pos + header, length);
    if (masked) Mask(&frame.payload[0], frame.payload.size(), frame.key);
    frames.push_back(std::move(frame));
    pos += header + length;
  }
  buffer.erase(0, pos);
  return frames;
}

}  // namespace testing
}  // namespace websocket
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_WEBSOCKET_TEST_FRAMES_H_
