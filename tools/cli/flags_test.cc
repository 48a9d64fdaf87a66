#include "tools/cli/flags.h"

#include "gtest/gtest.h"

namespace hublink {
namespace cli {
namespace {

struct Parsed {
  std::string host;
  int port = 0;
  bool insecure = false;
  std::vector<std::string> topics;
  std::vector<std::string> positional;
};

absl::Status ParseInto(const std::vector<std::string>& args, Parsed& parsed) {
  FlagParser parser;
  parser.AddString("host", &parsed.host, "host");
  parser.AddInt("port", &parsed.port, "port");
  parser.AddBool("insecure", &parsed.insecure, "skip verification");
  parser.AddList("topic", &parsed.topics, "topic");
  return parser.Parse(args, &parsed.positional);
}

TEST(FlagParserTest, BothSpellingsRepeatsAndPositionals) {
  Parsed parsed;
  ASSERT_TRUE(ParseInto({"--host=a.b", "--port", "443", "--insecure", "--topic=x/#", "--topic", "y",
                         "extra", "--", "--not-a-flag"},
                        parsed)
                  .ok());
  EXPECT_EQ(parsed.host, "a.b");
  EXPECT_EQ(parsed.port, 443);
  EXPECT_TRUE(parsed.insecure);
  EXPECT_EQ(parsed.topics, (std::vector<std::string>{"x/#", "y"}));
  EXPECT_EQ(parsed.positional, (std::vector<std::string>{"extra", "--not-a-flag"}));
}

TEST(FlagParserTest, BooleansTakeExplicitValuesAndNoPrefix) {
  Parsed parsed;
  ASSERT_TRUE(ParseInto({"--insecure=true", "--noinsecure"}, parsed).ok());
  EXPECT_FALSE(parsed.insecure);
  EXPECT_EQ(ParseInto({"--insecure=maybe"}, parsed).message(),
            "--insecure: \"maybe\" is not true or false");
}

TEST(FlagParserTest, ErrorsNameTheFlag) {
  Parsed parsed;
  EXPECT_EQ(ParseInto({"--hots=a"}, parsed).message(), "unknown flag --hots");
  EXPECT_EQ(ParseInto({"--port=80x"}, parsed).message(), "--port: \"80x\" is not a whole number");
  EXPECT_EQ(ParseInto({"--host"}, parsed).message(), "--host needs a value");
  EXPECT_EQ(ParseInto({"--nohost"}, parsed).message(), "unknown flag --nohost");
}

TEST(FlagParserTest, UsageListsEveryFlag) {
  Parsed parsed;
  FlagParser parser;
  parser.AddString("host", &parsed.host, "the host");
  parser.AddBool("insecure", &parsed.insecure, "skip");
  EXPECT_EQ(parser.Usage(), "  --host=VALUE            the host\n  --insecure              skip\n");
}

}  // namespace
}  // namespace cli
}  // namespace hublink
