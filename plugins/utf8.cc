#include "plugins/utf8.h"

#include <cstddef>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace hublink {
namespace {

// The first place `text` breaks the rules; kind == kValid when it does not. Kept apart from the
// message so that IsValidUtf8 allocates nothing.
struct Finding {
  enum Kind {
    kValid,
    kBadLead,
    kTruncated,
    kBadContinuation,
    kOverlong,
    kSurrogate,
    kTooHigh,
    kNul
  };
  Kind kind = kValid;
  size_t at = 0;       // byte offset of the character (of the bad byte for kBadContinuation)
  uint32_t value = 0;  // the offending byte, or the code point for kSurrogate
};

Finding Scan(absl::string_view text, const Utf8Rules& rules) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      if (c == 0 && !rules.allow_nul) return {Finding::kNul, i, 0};
      ++i;
      continue;
    }
    size_t length;
    uint32_t cp;
    // C0 and C1 could only start an overlong two-byte form, F5..FF only a code point past
    // U+10FFFF: RFC 3629 excludes them as lead bytes.
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4, cp = c & 0x07;
    } else {
      return {Finding::kBadLead, i, c};
    }
    if (i + length > n) return {Finding::kTruncated, i, 0};
    for (size_t k = 1; k < length; ++k) {
      const unsigned char cc = p[i + k];
      if ((cc & 0xC0) != 0x80) return {Finding::kBadContinuation, i + k, cc};
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((length == 3 && cp < 0x800) || (length == 4 && cp < 0x10000)) {
      return {Finding::kOverlong, i, 0};
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) return {Finding::kSurrogate, i, cp};
    if (cp > 0x10FFFF) return {Finding::kTooHigh, i, 0};
    i += length;
  }
  return {};
}

}  // namespace

std::string Utf8Problem(absl::string_view text, const Utf8Rules& rules) {
  const Finding f = Scan(text, rules);
  switch (f.kind) {
    case Finding::kValid:
      return "";
    case Finding::kBadLead:
      return absl::StrFormat("invalid UTF-8: byte 0x%02X at byte %d cannot start a character",
                             f.value, f.at);
    case Finding::kTruncated:
      return absl::StrCat("invalid UTF-8: truncated character at byte ", f.at);
    case Finding::kBadContinuation:
      return absl::StrFormat("invalid UTF-8: byte 0x%02X at byte %d is not a continuation byte",
                             f.value, f.at);
    case Finding::kOverlong:
      return absl::StrCat("invalid UTF-8: overlong encoding at byte ", f.at);
    case Finding::kSurrogate:
      return absl::StrFormat("contains a UTF-16 surrogate U+%04X at byte %d", f.value, f.at);
    case Finding::kTooHigh:
      return absl::StrCat("invalid UTF-8: code point above U+10FFFF at byte ", f.at);
    case Finding::kNul:
      return absl::StrCat("contains U+0000 at byte ", f.at);
  }
  return "invalid UTF-8";
}

bool IsValidUtf8(absl::string_view text, const Utf8Rules& rules) {
  return Scan(text, rules).kind == Finding::kValid;
}

}  // namespace hublink
