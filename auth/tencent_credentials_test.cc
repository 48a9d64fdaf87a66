#include "auth/tencent_credentials.h"

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "plugins/connect_context.h"
#include "plugins/event_loop.h"
#include "plugins/log.h"

namespace hublink {
namespace auth {
namespace {

// A TencentSigner whose "signature" is readable, so these tests see exactly what the layout hands
// to Password() (the real schemes are tested in auth/hmac and auth/rsa against openssl).
class EchoSigner : public TencentSigner {
 public:
  using TencentSigner::TencentSigner;

 protected:
  absl::StatusOr<std::string> Password(absl::string_view username) const override {
    return absl::StrCat("signed(", username, ");echo");
  }
};

TencentIdentity ExampleIdentity() {
  TencentIdentity identity;
  identity.set_product_id("ABCDEFGHIJ");
  identity.set_device_name("dev01");
  return identity;
}

TencentLayout MustCreate(const TencentIdentity& identity) {
  absl::StatusOr<TencentLayout> layout = TencentLayout::Create(identity, "test");
  EXPECT_TRUE(layout.ok()) << layout.status();
  return *std::move(layout);
}

bool IsConnIdChar(char c) { return kConnIdAlphabet.find(c) != absl::string_view::npos; }

TEST(TencentLayoutTest, WorkedExampleUsernameFromTheFactsFile) {
  TencentLayout layout = MustCreate(ExampleIdentity());
  EXPECT_EQ(layout.client_id(), "ABCDEFGHIJdev01");
  EXPECT_EQ(layout.sdkappid(), "21010406");
  EXPECT_EQ(layout.Username("a1B2c", "1700000000"), "ABCDEFGHIJdev01;21010406;a1B2c;1700000000");
}

TEST(TencentLayoutTest, NeverExpiresIsTheCSdksSeventeenDigits) {
  TencentLayout layout = MustCreate(ExampleIdentity());
  EXPECT_FALSE(layout.ttl().has_value());
  EXPECT_EQ(layout.Expiry(absl::FromUnixSeconds(1700000000)), "92233720368547758");
  // LONG_MAX is 9223372036854775807; the SDK's buffer keeps its first 17 digits.
  EXPECT_EQ(std::string(kNeverExpires), absl::StrCat(INT64_MAX).substr(0, 17));
}

TEST(TencentLayoutTest, TtlExpiryCountsFromNowInWholeSeconds) {
  TencentIdentity identity = ExampleIdentity();
  identity.mutable_ttl()->set_seconds(600);
  TencentLayout layout = MustCreate(identity);
  EXPECT_EQ(layout.Expiry(absl::FromUnixSeconds(1700000000)), "1700000600");
  EXPECT_EQ(layout.Expiry(absl::FromUnixMillis(1700000000999)), "1700000600");
}

TEST(TencentLayoutTest, CustomSdkAppId) {
  TencentIdentity identity = ExampleIdentity();
  identity.set_sdkappid("12010126");
  EXPECT_EQ(MustCreate(identity).Username("a1B2c", "1"), "ABCDEFGHIJdev01;12010126;a1B2c;1");
}

TEST(TencentLayoutTest, InvalidIdentitiesNameTheField) {
  struct Case {
    std::string name;
    std::function<void(TencentIdentity&)> edit;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"no product", [](TencentIdentity& i) { i.clear_product_id(); },
       "test: identity.product_id: is required"},
      {"no device", [](TencentIdentity& i) { i.clear_device_name(); },
       "test: identity.device_name: is required"},
      {"separator", [](TencentIdentity& i) { i.set_device_name("dev;01"); },
       "test: identity.device_name: \"dev;01\" contains ';'"},
      {"space", [](TencentIdentity& i) { i.set_product_id("ABC DEF"); },
       "test: identity.product_id: \"ABC DEF\" contains ';', whitespace"},
      {"sdkappid", [](TencentIdentity& i) { i.set_sdkappid("21x"); },
       "test: identity.sdkappid: \"21x\" must be decimal digits"},
      {"zero ttl", [](TencentIdentity& i) { i.mutable_ttl(); },
       "test: identity.ttl: 0 must be at least 1s"},
      {"negative ttl", [](TencentIdentity& i) { i.mutable_ttl()->set_seconds(-5); },
       "test: identity.ttl: -5s must be at least 1s"},
  };
  for (const Case& c : cases) {
    TencentIdentity identity = ExampleIdentity();
    c.edit(identity);
    absl::StatusOr<TencentLayout> layout = TencentLayout::Create(identity, "test");
    ASSERT_FALSE(layout.ok()) << c.name;
    EXPECT_EQ(layout.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(layout.status().message().find(c.expected), absl::string_view::npos)
        << c.name << ": " << layout.status();
  }
}

TEST(RandomConnIdTest, FiveCharactersFromTheAlphabet) {
  for (int i = 0; i < 200; ++i) {
    absl::StatusOr<std::string> connid = RandomConnId();
    ASSERT_TRUE(connid.ok()) << connid.status();
    ASSERT_EQ(connid->size(), 5u);
    for (char c : *connid) EXPECT_TRUE(IsConnIdChar(c)) << *connid;
  }
}

TEST(RandomConnIdTest, DiffersBetweenCalls) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(*RandomConnId());
  // 62^5 ≈ 9.2e8 values: a birthday collision among 1000 draws has probability ~5e-4, two ~1e-7.
  EXPECT_GE(seen.size(), 998u);
}

// Catches the classic `byte % 62` bias: the first 256 % 62 = 8 characters would come up 5/4 as
// often.
TEST(RandomConnIdTest, UniformWithoutModuloBias) {
  std::map<char, int> counts;
  constexpr int kDraws = 4000;
  for (int i = 0; i < kDraws; ++i) {
    const std::string connid =
        *RandomConnId();  // not `: *RandomConnId()`: the StatusOr would die first
    for (char c : connid) ++counts[c];
  }
  ASSERT_EQ(counts.size(), kConnIdAlphabet.size());  // every character shows up
  const double total = kDraws * kConnIdLength;
  int first_eight = 0;
  for (int i = 0; i < 8; ++i) first_eight += counts[kConnIdAlphabet[i]];
  // Unbiased: mean 2580.6, sd ≈ 48.6; biased: ≈ 3153. ±6 sd.
  const double expected = total * 8 / kConnIdAlphabet.size();
  EXPECT_NEAR(first_eight, expected, 6 * 48.6);
  for (const auto& [c, n] : counts) EXPECT_NEAR(n, total / kConnIdAlphabet.size(), 120) << c;
}

TEST(TencentSignerTest, SignMakesAFreshConnIdAndUsesRequestNow) {
  TencentIdentity identity = ExampleIdentity();
  identity.mutable_ttl()->set_seconds(3600);
  EchoSigner signer(MustCreate(identity));
  SignRequest request;
  request.now = absl::FromUnixSeconds(1700000000);
  std::set<std::string> connids;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<Credentials> credentials = signer.Sign(request);
    ASSERT_TRUE(credentials.ok()) << credentials.status();
    EXPECT_EQ(credentials->client_id, "ABCDEFGHIJdev01");
    std::vector<std::string> fields = absl::StrSplit(credentials->username, ';');
    ASSERT_EQ(fields.size(), 4u) << credentials->username;
    EXPECT_EQ(fields[0], "ABCDEFGHIJdev01");
    EXPECT_EQ(fields[1], "21010406");
    EXPECT_EQ(fields[2].size(), 5u);
    EXPECT_EQ(fields[3], "1700003600");
    EXPECT_EQ(credentials->password, absl::StrCat("signed(", credentials->username, ");echo"));
    EXPECT_TRUE(credentials->http_headers.empty());
    connids.insert(fields[2]);
  }
  EXPECT_GE(connids.size(), 19u);
}

// The caller passes ConnectContext::ServerNow(): once a lower layer has learned the server's clock,
// the expiry follows the server, not the device.
TEST(TencentSignerTest, ExpiryFollowsTheServerCorrectedClock) {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok()) << loop.status();
  ConnectContext context(**loop, "127.0.0.1", 1883);
  context.set_server_clock_offset(absl::Hours(2));
  TencentIdentity identity = ExampleIdentity();
  identity.mutable_ttl()->set_seconds(60);
  EchoSigner signer(MustCreate(identity));
  const int64_t device_now = absl::ToUnixSeconds(absl::Now());
  SignRequest request;
  request.now = context.ServerNow();
  absl::StatusOr<Credentials> credentials = signer.Sign(request);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  std::vector<std::string> fields = absl::StrSplit(credentials->username, ';');
  ASSERT_EQ(fields.size(), 4u);
  int64_t expiry = 0;
  ASSERT_TRUE(absl::SimpleAtoi(fields[3], &expiry));
  EXPECT_NEAR(expiry - device_now, 2 * 3600 + 60, 5);
}

TEST(TencentSignerTest, SignWithReproducesAGivenConnIdAndExpiry) {
  EchoSigner signer(MustCreate(ExampleIdentity()));
  absl::StatusOr<Credentials> credentials = signer.SignWith("a1B2c", "1700000000");
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_EQ(credentials->username, "ABCDEFGHIJdev01;21010406;a1B2c;1700000000");
  credentials = signer.SignWith("zzzzz", kNeverExpires);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_EQ(credentials->username, "ABCDEFGHIJdev01;21010406;zzzzz;92233720368547758");
}

TEST(TencentSignerTest, SignWithRejectsMalformedConnIdAndExpiry) {
  EchoSigner signer(MustCreate(ExampleIdentity()));
  for (absl::string_view connid : {"", "a1B2", "a1B2c3", "a1-2c", "a1;2c"}) {
    absl::StatusOr<Credentials> credentials = signer.SignWith(connid, "1700000000");
    ASSERT_FALSE(credentials.ok()) << connid;
    EXPECT_EQ(credentials.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(credentials.status().message().find("test: connid"), absl::string_view::npos)
        << credentials.status();
  }
  for (absl::string_view expiry : {"", "-1", "17e8", "1700000000;x", "123456789012345678901"}) {
    absl::StatusOr<Credentials> credentials = signer.SignWith("a1B2c", expiry);
    ASSERT_FALSE(credentials.ok()) << expiry;
    EXPECT_EQ(credentials.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(credentials.status().message().find("test: expiry"), absl::string_view::npos)
        << credentials.status();
  }
}

TEST(TencentSignerTest, WarnsWhenTheClockCannotBeRight) {
  std::vector<std::string> lines;
  LogSink previous = SetLogSink([&](const LogRecord& r) {
    if (r.level == LogLevel::kWarning) lines.emplace_back(r.message);
  });
  TencentIdentity identity = ExampleIdentity();
  identity.mutable_ttl()->set_seconds(600);
  TencentLayout layout = MustCreate(identity);
  EXPECT_EQ(layout.Expiry(absl::UnixEpoch()), "600");
  EXPECT_EQ(layout.Expiry(absl::FromUnixSeconds(1700000000)), "1700000600");
  SetLogSink(previous);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("test: signing an expiry from a clock that reads 1970-01-01"),
            std::string::npos)
      << lines[0];
}

}  // namespace
}  // namespace auth
}  // namespace hublink
