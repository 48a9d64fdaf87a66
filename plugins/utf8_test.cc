#include "plugins/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace hublink {
namespace {

// Valid under both rule sets: the problem is empty and IsValidUtf8 agrees.
void ExpectValid(const std::string& text) {
  for (const Utf8Rules& rules : {Utf8Rules(), MqttUtf8Rules()}) {
    EXPECT_EQ(Utf8Problem(text, rules), "") << text;
    EXPECT_TRUE(IsValidUtf8(text, rules)) << text;
  }
}

// Invalid under both rule sets, with this reason.
void ExpectInvalid(const std::string& text, const std::string& problem) {
  for (const Utf8Rules& rules : {Utf8Rules(), MqttUtf8Rules()}) {
    EXPECT_EQ(Utf8Problem(text, rules), problem);
    EXPECT_FALSE(IsValidUtf8(text, rules)) << problem;
  }
}

TEST(Utf8Test, WellFormedText) {
  ExpectValid("");
  ExpectValid("plain ascii");
  ExpectValid("\x7F");
  ExpectValid("h\xC3\xA9llo \xE4\xBD\xA0 \xF0\x9F\x98\x80");  // 2, 3 and 4 bytes
  ExpectValid("\xC2\x80");                                    // U+0080, the smallest two-byte
  ExpectValid("\xE0\xA0\x80");                                // U+0800, the smallest three-byte
  ExpectValid("\xED\x9F\xBF");                                // U+D7FF, just below the surrogates
  ExpectValid("\xEE\x80\x80");                                // U+E000, just above them
  ExpectValid("\xEF\xBF\xBF");                                // U+FFFF (a noncharacter, but valid)
  ExpectValid("\xF0\x90\x80\x80");                            // U+10000
  ExpectValid("\xF4\x8F\xBF\xBF");                            // U+10FFFF, the last code point
}

TEST(Utf8Test, OverlongForms) {
  ExpectInvalid("\xC0\xAF", "invalid UTF-8: byte 0xC0 at byte 0 cannot start a character");
  ExpectInvalid("\xC1\xBF", "invalid UTF-8: byte 0xC1 at byte 0 cannot start a character");
  ExpectInvalid("ab\xE0\x80\xAF", "invalid UTF-8: overlong encoding at byte 2");
  ExpectInvalid("\xE0\x9F\xBF", "invalid UTF-8: overlong encoding at byte 0");  // U+07FF in 3
  ExpectInvalid("\xF0\x80\x80\x80", "invalid UTF-8: overlong encoding at byte 0");
  ExpectInvalid("\xF0\x8F\xBF\xBF", "invalid UTF-8: overlong encoding at byte 0");  // U+FFFF in 4
}

TEST(Utf8Test, Surrogates) {
  ExpectInvalid("\xED\xA0\x80", "contains a UTF-16 surrogate U+D800 at byte 0");
  ExpectInvalid("x\xED\xBF\xBF", "contains a UTF-16 surrogate U+DFFF at byte 1");
  // A CESU-8 pair (U+1F600 as two encoded surrogates) is not UTF-8 either.
  ExpectInvalid("\xED\xA0\xBD\xED\xB8\x80", "contains a UTF-16 surrogate U+D83D at byte 0");
}

TEST(Utf8Test, AboveU10FFFF) {
  ExpectInvalid("\xF4\x90\x80\x80", "invalid UTF-8: code point above U+10FFFF at byte 0");
  ExpectInvalid("\xF5\x80\x80\x80", "invalid UTF-8: byte 0xF5 at byte 0 cannot start a character");
  ExpectInvalid("\xF8\x88\x80\x80\x80",
                "invalid UTF-8: byte 0xF8 at byte 0 cannot start a character");  // old 5-byte form
  ExpectInvalid("\xFF", "invalid UTF-8: byte 0xFF at byte 0 cannot start a character");
}

TEST(Utf8Test, TruncatedAndBrokenSequences) {
  ExpectInvalid("\xC3", "invalid UTF-8: truncated character at byte 0");
  ExpectInvalid("ab\xE4\xBD", "invalid UTF-8: truncated character at byte 2");
  ExpectInvalid("\xF0\x9F\x98", "invalid UTF-8: truncated character at byte 0");
  ExpectInvalid(
      "\xE4"
      "a"
      "\xA0",
      "invalid UTF-8: byte 0x61 at byte 1 is not a continuation byte");
  ExpectInvalid("\xF0\x9F\x98\xC3\xA9",
                "invalid UTF-8: byte 0xC3 at byte 3 is not a continuation byte");
  ExpectInvalid("\x80", "invalid UTF-8: byte 0x80 at byte 0 cannot start a character");  // lone
}

// U+0000 is UTF-8 (a WebSocket close reason may hold it); MQTT strings may not.
TEST(Utf8Test, NulIsARuleOfTheProtocol) {
  const std::string with_nul("abc\0def", 7);
  EXPECT_TRUE(IsValidUtf8(with_nul));
  EXPECT_EQ(Utf8Problem(with_nul), "");
  EXPECT_FALSE(IsValidUtf8(with_nul, MqttUtf8Rules()));
  EXPECT_EQ(Utf8Problem(with_nul, MqttUtf8Rules()), "contains U+0000 at byte 3");
  // The first problem is the one named.
  EXPECT_EQ(Utf8Problem(std::string("\0\xFF", 2), MqttUtf8Rules()), "contains U+0000 at byte 0");
}

}  // namespace
}  // namespace hublink
