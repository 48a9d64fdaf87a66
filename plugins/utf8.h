// UTF-8 validation (RFC 3629) for text a protocol requires to be UTF-8: WebSocket close reasons and
// text frames (RFC 6455 8.1), MQTT strings (MQTT 3.1.1 1.5.3). One validator, so that every layer
// agrees on what is valid: no overlong forms (C0 AF for '/'), no UTF-16 surrogates (U+D800..DFFF),
// nothing above U+10FFFF, no truncated sequence. U+0000 is valid UTF-8; a protocol that forbids it
// (MQTT) says so with `Utf8Rules::allow_nul = false`.
//
//   if (!IsValidUtf8(reason)) return Fail(kCloseInvalidPayload, "reason is not valid UTF-8");
//   std::string problem = Utf8Problem(topic, MqttUtf8Rules());
//   if (!problem.empty()) return absl::InvalidArgumentError(absl::StrCat("mqtt: topic: ", problem));
#ifndef HUBLINK_PLUGINS_UTF8_H_
#define HUBLINK_PLUGINS_UTF8_H_

#include <string>

#include "absl/strings/string_view.h"

namespace hublink {

struct Utf8Rules {
  // U+0000 is allowed by UTF-8 and WebSocket, forbidden in MQTT strings.
  bool allow_nul = true;
};

// Rules for MQTT 3.1.1 strings: well-formed UTF-8 without U+0000.
inline Utf8Rules MqttUtf8Rules() {
  Utf8Rules rules;
  rules.allow_nul = false;
  return rules;
}

// Why `text` breaks `rules`, naming the first offending byte's offset, or "" when it does not:
//   "invalid UTF-8: byte 0xC0 at byte 0 cannot start a character"   (also 0xC1 and 0xF5..0xFF)
//   "invalid UTF-8: truncated character at byte 2"                  (the text ends inside one)
//   "invalid UTF-8: byte 0x61 at byte 1 is not a continuation byte"
//   "invalid UTF-8: overlong encoding at byte 0"
//   "contains a UTF-16 surrogate U+D800 at byte 0"
//   "invalid UTF-8: code point above U+10FFFF at byte 0"
//   "contains U+0000 at byte 3"                                     (only without allow_nul)
// The caller prefixes its stage and field ("mqtt: topic: ...").
std::string Utf8Problem(absl::string_view text, const Utf8Rules& rules = Utf8Rules());

// Utf8Problem(text, rules).empty(), without building a message.
bool IsValidUtf8(absl::string_view text, const Utf8Rules& rules = Utf8Rules());

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_UTF8_H_
