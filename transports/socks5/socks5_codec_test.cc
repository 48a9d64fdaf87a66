#include "transports/socks5/socks5_codec.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace hublink {
namespace socks5 {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

TEST(Socks5DestinationTest, LiteralsBecomeAddressesAndNamesStayNames) {
  absl::StatusOr<Destination> v4 = DestinationFor("127.0.0.1", 1883);
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->type, kIpv4);
  EXPECT_EQ(v4->address, Bytes({127, 0, 0, 1}));
  EXPECT_EQ(Describe(*v4), "127.0.0.1:1883");
  absl::StatusOr<Destination> v6 = DestinationFor("[::1]", 443);
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->type, kIpv6);
  EXPECT_EQ(v6->address.size(), 16u);
  EXPECT_EQ(Describe(*v6), "[::1]:443");
  absl::StatusOr<Destination> name = DestinationFor("broker.example", 8883);
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(name->type, kDomainName);
  EXPECT_EQ(Describe(*name), "broker.example:8883");
  EXPECT_EQ(DestinationFor(std::string(256, 'a'), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Socks5CredentialsTest, LengthsFollowRfc1929) {
  EXPECT_TRUE(ValidateCredentials("", "").ok());
  EXPECT_TRUE(ValidateCredentials("u", "p").ok());
  EXPECT_EQ(ValidateCredentials("", "p").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateCredentials("u", "").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateCredentials(std::string(256, 'u'), "p").code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status long_password = ValidateCredentials("u", std::string(256, 'q'));
  EXPECT_EQ(long_password.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(absl::StrContains(long_password.message(), "qqq"));
}

// Runs a handshake against a scripted proxy: `answers` is everything the proxy says, fed split at
// `split`. Returns the result and what the client sent after the greeting.
struct Outcome {
  absl::StatusOr<bool> result = false;
  std::string sent;
  std::string leftover;
  std::string bound;
};
Outcome Drive(ClientHandshake& handshake, const std::string& answers, size_t split) {
  Outcome run;
  run.result = handshake.Feed(absl::string_view(answers).substr(0, split), &run.sent);
  if (run.result.ok()) {
    absl::StatusOr<bool> rest = handshake.Feed(absl::string_view(answers).substr(split), &run.sent);
    run.result = rest;
  }
  if (run.result.ok() && *run.result) {
    run.leftover = handshake.TakeLeftover();
    run.bound = handshake.bound();
  }
  return run;
}

TEST(Socks5HandshakeTest, UsernamePasswordSplitAtEveryOffset) {
  // Method 2, auth OK, CONNECT OK bound to 10.1.2.3:4660, then the endpoint's first bytes.
  const std::string answers = Bytes({5, 2, 1, 0, 5, 0, 0, 1, 10, 1, 2, 3, 0x12, 0x34}) + "HELLO\n";
  const std::string expected_sent = Bytes({1, 5}) + "alice" + Bytes({6}) + "s3cret" +
                                    Bytes({5, 1, 0, 3, 14}) + "broker.example" +
                                    Bytes({0x07, 0x5b});
  for (size_t split = 0; split <= answers.size(); ++split) {
    ClientHandshake handshake(*DestinationFor("broker.example", 1883), "alice", "s3cret");
    EXPECT_EQ(handshake.Greeting(), Bytes({5, 2, 0, 2}));
    Outcome run = Drive(handshake, answers, split);
    ASSERT_TRUE(run.result.ok()) << split << ": " << run.result.status();
    ASSERT_TRUE(*run.result) << split;
    EXPECT_EQ(run.sent, expected_sent) << split;
    EXPECT_EQ(run.leftover, "HELLO\n") << split;
    EXPECT_EQ(run.bound, "10.1.2.3:4660");
    EXPECT_STREQ(handshake.method(), "username/password");
  }
}

TEST(Socks5HandshakeTest, NoAuthWithIpv6ReplyAndIpv4Request) {
  std::string answers = Bytes({5, 0, 5, 0, 0, 4});
  answers += std::string(15, '\0') + Bytes({1, 0, 80});
  for (size_t split = 0; split <= answers.size(); ++split) {
    ClientHandshake handshake(*DestinationFor("127.0.0.1", 1883), "", "");
    EXPECT_EQ(handshake.Greeting(), Bytes({5, 1, 0}));
    Outcome run = Drive(handshake, answers, split);
    ASSERT_TRUE(run.result.ok()) << run.result.status();
    ASSERT_TRUE(*run.result);
    EXPECT_EQ(run.sent, Bytes({5, 1, 0, 1, 127, 0, 0, 1, 0x07, 0x5b}));
    EXPECT_EQ(run.leftover, "");
    EXPECT_EQ(run.bound, "[::1]:80");
  }
}

TEST(Socks5HandshakeTest, DomainNameInTheReply) {
  const std::string answers = Bytes({5, 0, 5, 0, 0, 3, 4}) + "host" + Bytes({0, 1}) + "x";
  for (size_t split = 0; split <= answers.size(); ++split) {
    ClientHandshake handshake(*DestinationFor("h", 1), "", "");
    Outcome run = Drive(handshake, answers, split);
    ASSERT_TRUE(run.result.ok()) << run.result.status();
    ASSERT_TRUE(*run.result);
    EXPECT_EQ(run.bound, "host:1");
    EXPECT_EQ(run.leftover, "x");
  }
}

struct Failure {
  std::string answers;
  bool credentials;
  absl::StatusCode code;
  std::string message;
};

TEST(Socks5HandshakeTest, EveryFailureSplitAtEveryOffsetMapsToItsCode) {
  const std::string connect_ok_prefix = Bytes({5, 0});
  std::vector<Failure> failures = {
      {"HTTP/1.1 400 Bad Request\r\n", false, absl::StatusCode::kDataLoss,
       "socks5: the proxy's answer is not SOCKS5 (version byte 0x48, which looks like HTTP"},
      {Bytes({5, 0xff}), false, absl::StatusCode::kUnauthenticated,
       "socks5: the proxy requires authentication; set username and password"},
      {Bytes({5, 0xff}), true, absl::StatusCode::kUnauthenticated,
       "accepts none of the offered authentication methods"},
      {Bytes({5, 2}), false, absl::StatusCode::kDataLoss,
       "authentication method 0x02, which was not offered"},
      {Bytes({5, 2, 1, 1}), true, absl::StatusCode::kUnauthenticated,
       "socks5: the proxy refused username \"alice\" and its password (RFC 1929 status 1)"},
      {Bytes({5, 2, 9, 0}), true, absl::StatusCode::kDataLoss,
       "malformed username/password answer"},
      {Bytes({5, 0, 4, 0}), false, absl::StatusCode::kDataLoss, "malformed CONNECT reply"},
      {Bytes({5, 0, 5, 0, 0, 9, 0}), false, absl::StatusCode::kDataLoss, "unknown address type"},
  };
  const std::pair<int, absl::StatusCode> replies[] = {
      {1, absl::StatusCode::kUnavailable},     {2, absl::StatusCode::kPermissionDenied},
      {3, absl::StatusCode::kUnavailable},     {4, absl::StatusCode::kUnavailable},
      {5, absl::StatusCode::kUnavailable},     {6, absl::StatusCode::kDeadlineExceeded},
      {7, absl::StatusCode::kInvalidArgument}, {8, absl::StatusCode::kInvalidArgument},
      {0x42, absl::StatusCode::kDataLoss},
  };
  for (const auto& [reply, code] : replies) {
    failures.push_back({Bytes({5, 0, 5, reply, 0, 1, 0, 0, 0, 0, 0, 0}), false, code,
                        absl::StrCat("socks5: the proxy could not connect to broker.example:1883: ",
                                     ReplyName(reply), " (reply ", reply, ")")});
  }
  for (const Failure& failure : failures) {
    for (size_t split = 0; split <= failure.answers.size(); ++split) {
      ClientHandshake handshake(*DestinationFor("broker.example", 1883),
                                failure.credentials ? "alice" : "",
                                failure.credentials ? "pw-canary-91" : "");
      Outcome run = Drive(handshake, failure.answers, split);
      ASSERT_FALSE(run.result.ok()) << failure.message << " split " << split;
      EXPECT_EQ(run.result.status().code(), failure.code) << run.result.status();
      EXPECT_TRUE(absl::StrContains(run.result.status().message(), failure.message))
          << run.result.status() << "\nwanted: " << failure.message;
      EXPECT_FALSE(absl::StrContains(run.result.status().message(), "pw-canary"));
    }
  }
  EXPECT_EQ(ReplyName(6), "TTL expired");
  EXPECT_EQ(ReplyName(7), "command not supported");
  EXPECT_EQ(ReplyName(8), "address type not supported");
}

}  // namespace
}  // namespace socks5
}  // namespace hublink
