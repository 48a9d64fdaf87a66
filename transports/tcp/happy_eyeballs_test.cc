// The tcp transport's connection race (Happy Eyeballs v2, RFC 8305): the order addresses are tried
// in, the staggered attempts, the winner, the losers closed, and the errors that name every
// address. A blackholed address is a loopback listener whose accept queue is full, so the kernel
// drops further SYNs: a connect to it neither succeeds nor fails. Each test pins the addresses in
// TcpConfig.addresses, so the name is never resolved and the order is the test's. No wall-clock
// bounds: a connect timeout far longer than the attempt delay makes success itself the proof.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "plugins/pipeline.h"
#include "tests/test_util.h"
#include "transports/tcp/address_order.h"
#include "transports/tcp/tcp.pb.h"
#include "transports/tcp/tcp_stack_test.h"
#include "transports/tcp/tcp_transport.h"

namespace hublink {
namespace testing {
namespace {

SocketAddress Ip(const std::string& ip, int port = 1883) {
  absl::optional<SocketAddress> address =
      ParseIpLiteral(ip, static_cast<uint16_t>(port), AF_UNSPEC);
  EXPECT_TRUE(address.has_value()) << ip;
  return address.value_or(SocketAddress{});
}

std::vector<std::string> Format(const std::vector<SocketAddress>& addresses) {
  std::vector<std::string> formatted;
  for (const SocketAddress& address : addresses) formatted.push_back(FormatIp(address));
  return formatted;
}

TEST(AddressOrderTest, InterleavesFamiliesStartingWithTheFirstFamily) {
  // The resolver's (RFC 6724) order, IPv6 first: one of each family in turn, then the rest.
  EXPECT_EQ(Format(InterleaveFamilies({Ip("2001:db8::1"), Ip("2001:db8::2"), Ip("2001:db8::3"),
                                       Ip("192.0.2.1"), Ip("192.0.2.2")})),
            (std::vector<std::string>{"[2001:db8::1]", "192.0.2.1", "[2001:db8::2]", "192.0.2.2",
                                      "[2001:db8::3]"}));
  // A resolver (or gai.conf) that put IPv4 first is followed: its first family leads.
  EXPECT_EQ(Format(InterleaveFamilies(
                {Ip("192.0.2.1"), Ip("192.0.2.2"), Ip("192.0.2.3"), Ip("2001:db8::1")})),
            (std::vector<std::string>{"192.0.2.1", "[2001:db8::1]", "192.0.2.2", "192.0.2.3"}));
  // Already interleaved answers come out unchanged.
  EXPECT_EQ(Format(InterleaveFamilies({Ip("::1"), Ip("127.0.0.1"), Ip("::2"), Ip("127.0.0.2")})),
            (std::vector<std::string>{"[::1]", "127.0.0.1", "[::2]", "127.0.0.2"}));
}

TEST(AddressOrderTest, OneFamilyKeepsItsOrder) {
  EXPECT_EQ(Format(InterleaveFamilies({Ip("192.0.2.3"), Ip("192.0.2.1"), Ip("192.0.2.2")})),
            (std::vector<std::string>{"192.0.2.3", "192.0.2.1", "192.0.2.2"}));
  EXPECT_TRUE(InterleaveFamilies({}).empty());
}

TEST(AddressOrderTest, ParsesLiteralsOfTheAllowedFamily) {
  EXPECT_EQ(FormatIpAndPort(Ip("[2001:db8::7]", 8883)), "[2001:db8::7]:8883");
  EXPECT_EQ(FormatIpAndPort(Ip("2001:db8::7", 443)), "[2001:db8::7]:443");
  EXPECT_EQ(FormatIpAndPort(Ip("192.0.2.7", 1883)), "192.0.2.7:1883");
  EXPECT_FALSE(ParseIpLiteral("192.0.2.7", 1, AF_INET6).has_value());
  EXPECT_FALSE(ParseIpLiteral("::1", 1, AF_INET).has_value());
  EXPECT_FALSE(ParseIpLiteral("[::1", 1, AF_UNSPEC).has_value());
  EXPECT_FALSE(ParseIpLiteral("[192.0.2.7]", 1, AF_UNSPEC).has_value());
  EXPECT_FALSE(ParseIpLiteral("hub.example", 1, AF_UNSPEC).has_value());
  EXPECT_FALSE(ParseIpLiteral(absl::string_view("127.0.0.1\0x", 11), 1, AF_UNSPEC).has_value());
}

// How many file descriptors this process has open: a leaked attempt socket shows here.
int OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int count = 0;
  while (readdir(dir) != nullptr) ++count;
  closedir(dir);
  return count;  // includes ".", ".." and the directory's own fd: the same in every count
}

// What a loopback address does when the transport connects to it.
enum class Role {
  kWorking,     // listens and accepts
  kBlackholed,  // listens with a full accept queue: SYNs are dropped, the connect stays pending
  kRefusing,    // bound but not listening: the connect is refused (RST)
};

// Sockets on several loopback addresses sharing one port, as the addresses of one name do.
class Site {
 public:
  // Binds every address on one port; tries another port when one was taken on some address.
  static absl::StatusOr<std::unique_ptr<Site>> Create(
      const std::vector<std::pair<std::string, Role>>& roles) {
    absl::Status last;
    for (int round = 0; round < 20; ++round) {
      auto site = std::unique_ptr<Site>(new Site);
      last = site->Bind(roles);
      if (last.ok()) return site;
      if (!absl::IsAlreadyExists(last)) return last;
    }
    return last;
  }

  ~Site() {
    for (int fd : fillers_) close(fd);
    for (int fd : accepted_) close(fd);
    for (auto& [ip, fd] : fds_) close(fd);
  }

  int port() const { return port_; }

  // Waits (bounded) for a connection on `ip` and accepts it; -1 if none came.
  int Accept(const std::string& ip) {
    pollfd ready{fds_.at(ip), POLLIN, 0};
    if (poll(&ready, 1, 10000) != 1) return -1;
    int fd = accept4(fds_.at(ip), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) accepted_.push_back(fd);
    return fd;
  }

 private:
  Site() = default;

  absl::Status Bind(const std::vector<std::pair<std::string, Role>>& roles) {
    for (const auto& [ip, role] : roles) {
      SocketAddress address = Ip(ip, port_);
      int fd = socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
      fds_[ip] = fd;
      if (bind(fd, reinterpret_cast<const sockaddr*>(&address.storage), address.length) != 0) {
        std::string why = absl::StrCat("bind ", ip, ":", port_, ": ", std::strerror(errno));
        return errno == EADDRINUSE ? absl::AlreadyExistsError(why) : absl::UnavailableError(why);
      }
      if (port_ == 0) {
        sockaddr_storage bound{};
        socklen_t length = sizeof(bound);
        getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
        port_ =
            ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in&>(bound).sin_port
                                             : reinterpret_cast<sockaddr_in6&>(bound).sin6_port);
      }
      if (role == Role::kRefusing) continue;
      if (listen(fd, role == Role::kWorking ? 16 : 0) != 0) {
        return absl::UnavailableError(absl::StrCat("listen ", ip, ": ", std::strerror(errno)));
      }
      if (role == Role::kBlackholed) FillBacklog(Ip(ip, port_));
    }
    return absl::OkStatus();
  }

  // Connections that fill the never-accepting listener's queue. The first one completes (a backlog
  // of 0 still queues one); once it has, the queue is full and later SYNs go unanswered.
  void FillBacklog(const SocketAddress& address) {
    for (int i = 0; i < 4; ++i) {
      int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      connect(fd, reinterpret_cast<const sockaddr*>(&address.storage), address.length);
      fillers_.push_back(fd);
      if (i == 0) {
        pollfd connected{fd, POLLOUT, 0};
        poll(&connected, 1, 5000);
      }
    }
  }

  int port_ = 0;
  std::map<std::string, int> fds_;
  std::vector<int> fillers_;
  std::vector<int> accepted_;
};

// Why ::1 cannot be listened on here, or OK.
absl::Status Ipv6Loopback() {
  absl::StatusOr<std::unique_ptr<Site>> probe = Site::Create({{"::1", Role::kWorking}});
  return probe.status();
}

class HappyEyeballsTest : public TcpStackTest {
 protected:
  static std::string Pinned(const std::vector<std::string>& ips) {
    std::string text;
    for (const std::string& ip : ips) absl::StrAppend(&text, "addresses: \"", ip, "\" ");
    return text;
  }

  absl::StatusOr<std::unique_ptr<ResolvedPipeline>> Resolve(const std::string& config) {
    auto parsed =
        ParsePipelineText(absl::StrCat("endpoint { host: \"hub.test\" port: 1883 }\n",
                                       "transports { typed_config { "
                                       "[type.googleapis.com/hublink.transports.TcpConfig] { ",
                                       config, " } } }\n"),
                          "cfg");
    if (!parsed.ok()) return parsed.status();
    return ResolvedPipeline::Resolve(*parsed, *registry_, "cfg");
  }

  // Opens "tcp" to hub.test:port (never resolved: the config pins the addresses).
  void Start(int port, const std::string& config) {
    auto pipeline = Resolve(config);
    ASSERT_TRUE(pipeline.ok()) << pipeline.status();
    OpenStack(std::move(pipeline).value(), "hub.test", port);
  }

  // Runs until the transport opened or closed. 15 s: far below the 60 s connect timeouts, so a
  // connect that waited out the timeout instead of racing shows as a failure here.
  bool RunUntilOpenOrClosed() {
    return RunUntil(
        *loop_, [&] { return listener_.opened > 0 || listener_.closed.has_value(); },
        absl::Seconds(15));
  }

  std::string Closed() const {
    return listener_.closed ? listener_.closed->ToString() : "not closed";
  }
};

// The case: the first address drops SYNs. Without the race it would eat the whole 60 s
// connect timeout; with it the second address starts after the attempt delay and wins.
TEST_F(HappyEyeballsTest, BlackholedFirstAddressLosesToTheNextOne) {
  auto site = Site::Create({{"127.0.0.2", Role::kBlackholed}, {"127.0.0.1", Role::kWorking}});
  ASSERT_TRUE(site.ok()) << site.status();
  int port = (*site)->port();
  Start(port, Pinned({"127.0.0.2", "127.0.0.1"}) + "connect_timeout { seconds: 60 }");
  ASSERT_TRUE(RunUntilOpenOrClosed()) << "still connecting: the blackholed address held it up";
  ASSERT_EQ(listener_.opened, 1) << Closed();
  EXPECT_EQ(stages_, std::vector<std::string>{
                         absl::StrCat("tcp: connected hub.test:", port, " (127.0.0.1)")});
  int peer = (*site)->Accept("127.0.0.1");
  ASSERT_GE(peer, 0);
  ASSERT_TRUE(transport_->Write("won").ok());
  char buf[8] = {};
  ASSERT_EQ(recv(peer, buf, sizeof(buf), 0), 3);
  EXPECT_EQ(std::string(buf, 3), "won");
}

// RFC 8305's own case: an IPv6 path that drops SYNs, and IPv4 that works.
TEST_F(HappyEyeballsTest, BlackholedIpv6LosesToIpv4) {
  if (absl::Status v6 = Ipv6Loopback(); !v6.ok()) GTEST_SKIP() << "no IPv6 loopback: " << v6;
  auto site = Site::Create({{"::1", Role::kBlackholed}, {"127.0.0.1", Role::kWorking}});
  ASSERT_TRUE(site.ok()) << site.status();
  int port = (*site)->port();
  Start(port, Pinned({"::1", "127.0.0.1"}) + "connect_timeout { seconds: 60 }");
  ASSERT_TRUE(RunUntilOpenOrClosed());
  ASSERT_EQ(listener_.opened, 1) << Closed();
  EXPECT_EQ(stages_, std::vector<std::string>{
                         absl::StrCat("tcp: connected hub.test:", port, " (127.0.0.1)")});
  EXPECT_GE((*site)->Accept("127.0.0.1"), 0);
}

TEST_F(HappyEyeballsTest, BlackholedIpv4LosesToIpv6) {
  if (absl::Status v6 = Ipv6Loopback(); !v6.ok()) GTEST_SKIP() << "no IPv6 loopback: " << v6;
  auto site = Site::Create({{"127.0.0.2", Role::kBlackholed}, {"::1", Role::kWorking}});
  ASSERT_TRUE(site.ok()) << site.status();
  int port = (*site)->port();
  Start(port, Pinned({"127.0.0.2", "[::1]"}) + "connect_timeout { seconds: 60 }");
  ASSERT_TRUE(RunUntilOpenOrClosed());
  ASSERT_EQ(listener_.opened, 1) << Closed();
  EXPECT_EQ(stages_,
            std::vector<std::string>{absl::StrCat("tcp: connected hub.test:", port, " ([::1])")});
  EXPECT_GE((*site)->Accept("::1"), 0);
}

// The attempts still pending when one wins are closed at once, and Close() ends the winner: no
// socket is left behind.
TEST_F(HappyEyeballsTest, LosingAttemptsAreClosedWhenOneWins) {
  auto site = Site::Create({{"127.0.0.2", Role::kBlackholed},
                            {"127.0.0.3", Role::kBlackholed},
                            {"127.0.0.1", Role::kWorking}});
  ASSERT_TRUE(site.ok()) << site.status();
  int before = OpenFds();
  ASSERT_GT(before, 0);
  Start((*site)->port(), Pinned({"127.0.0.2", "127.0.0.3", "127.0.0.1"}) +
                             "connect_timeout { seconds: 60 } "
                             "connection_attempt_delay { nanos: 10000000 }");
  ASSERT_TRUE(RunUntilOpenOrClosed());
  ASSERT_EQ(listener_.opened, 1) << Closed();
  // Two attempts were pending on the blackholed addresses; only the winner's socket is left.
  EXPECT_EQ(OpenFds(), before + 1);
  transport_.reset();
  EXPECT_EQ(OpenFds(), before);
}

// Close() in the middle of the race closes every pending attempt and stops new ones.
TEST_F(HappyEyeballsTest, CloseDuringTheRaceClosesEveryAttempt) {
  auto site = Site::Create({{"127.0.0.2", Role::kBlackholed}, {"127.0.0.3", Role::kBlackholed}});
  ASSERT_TRUE(site.ok()) << site.status();
  int before = OpenFds();
  Start((*site)->port(), Pinned({"127.0.0.2", "127.0.0.3"}) +
                             "connect_timeout { seconds: 60 } "
                             "connection_attempt_delay { nanos: 10000000 }");
  ASSERT_TRUE(RunUntil(*loop_, [&] { return OpenFds() == before + 2; }))
      << "both attempts should be pending; open fds: " << OpenFds() - before;
  transport_->Close();
  EXPECT_EQ(OpenFds(), before);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return listener_.closed.has_value(); }));
  EXPECT_TRUE(listener_.closed->ok()) << *listener_.closed;
  EXPECT_EQ(listener_.opened, 0);
}

// A refused attempt does not wait out the attempt delay: with a 60 s delay, only an immediate
// move to the next address can connect within the test's 15 s.
TEST_F(HappyEyeballsTest, RefusedAddressStartsTheNextAtOnce) {
  auto site = Site::Create({{"127.0.0.3", Role::kRefusing}, {"127.0.0.1", Role::kWorking}});
  ASSERT_TRUE(site.ok()) << site.status();
  int port = (*site)->port();
  Start(port, Pinned({"127.0.0.3", "127.0.0.1"}) +
                  "connect_timeout { seconds: 120 } connection_attempt_delay { seconds: 60 }");
  ASSERT_TRUE(RunUntilOpenOrClosed()) << "the refused attempt waited for the attempt delay";
  ASSERT_EQ(listener_.opened, 1) << Closed();
  EXPECT_EQ(stages_, std::vector<std::string>{
                         absl::StrCat("tcp: connected hub.test:", port, " (127.0.0.1)")});
}

TEST_F(HappyEyeballsTest, EveryAddressRefusedNamesEachOne) {
  auto site = Site::Create({{"127.0.0.3", Role::kRefusing}, {"127.0.0.4", Role::kRefusing}});
  ASSERT_TRUE(site.ok()) << site.status();
  int port = (*site)->port();
  int before = OpenFds();
  Start(port, Pinned({"127.0.0.3", "127.0.0.4"}) + "connect_timeout { seconds: 60 }");
  ASSERT_TRUE(RunUntilOpenOrClosed());
  ASSERT_TRUE(listener_.closed.has_value());
  EXPECT_EQ(listener_.closed->code(), absl::StatusCode::kUnavailable) << *listener_.closed;
  EXPECT_EQ(listener_.closed->message(),
            absl::StrCat("tcp: hub.test:", port, ": every address failed: 127.0.0.3:", port,
                         " connection refused; 127.0.0.4:", port, " connection refused"));
  EXPECT_EQ(OpenFds(), before);
}

TEST_F(HappyEyeballsTest, EveryAddressRefusedAcrossFamilies) {
  if (absl::Status v6 = Ipv6Loopback(); !v6.ok()) GTEST_SKIP() << "no IPv6 loopback: " << v6;
  auto site = Site::Create({{"::1", Role::kRefusing}, {"127.0.0.3", Role::kRefusing}});
  ASSERT_TRUE(site.ok()) << site.status();
  int port = (*site)->port();
  Start(port, Pinned({"::1", "127.0.0.3"}) + "connect_timeout { seconds: 60 }");
  ASSERT_TRUE(RunUntilOpenOrClosed());
  ASSERT_TRUE(listener_.closed.has_value());
  EXPECT_EQ(listener_.closed->code(), absl::StatusCode::kUnavailable) << *listener_.closed;
  EXPECT_EQ(listener_.closed->message(),
            absl::StrCat("tcp: hub.test:", port, ": every address failed: [::1]:", port,
                         " connection refused; 127.0.0.3:", port, " connection refused"));
}

// The connect timeout still caps the race, and its error says what became of each address. The
// refused address comes first so the blackholed one starts at once, whatever the attempt delay.
TEST_F(HappyEyeballsTest, ConnectTimeoutNamesEachAddress) {
  auto site = Site::Create({{"127.0.0.3", Role::kRefusing}, {"127.0.0.2", Role::kBlackholed}});
  ASSERT_TRUE(site.ok()) << site.status();
  int port = (*site)->port();
  int before = OpenFds();
  Start(port, Pinned({"127.0.0.3", "127.0.0.2"}) + "connect_timeout { seconds: 1 }");
  ASSERT_TRUE(RunUntilOpenOrClosed());
  ASSERT_TRUE(listener_.closed.has_value());
  EXPECT_EQ(listener_.closed->code(), absl::StatusCode::kDeadlineExceeded) << *listener_.closed;
  EXPECT_EQ(listener_.closed->message(),
            absl::StrCat("tcp: hub.test:", port, ": connect timed out after 1s: 127.0.0.3:", port,
                         " connection refused; 127.0.0.2:", port, " timed out"));
  EXPECT_EQ(OpenFds(), before) << "the pending attempt was not closed";
}

// The configured delay is the one used: with 60 s, the second address is still untried when a
// short connect timeout ends the race.
TEST_F(HappyEyeballsTest, AttemptDelayIsConfigurable) {
  auto site = Site::Create({{"127.0.0.2", Role::kBlackholed}, {"127.0.0.1", Role::kWorking}});
  ASSERT_TRUE(site.ok()) << site.status();
  int port = (*site)->port();
  Start(port, Pinned({"127.0.0.2", "127.0.0.1"}) +
                  "connect_timeout { nanos: 500000000 } connection_attempt_delay { seconds: 60 }");
  ASSERT_TRUE(RunUntilOpenOrClosed());
  ASSERT_TRUE(listener_.closed.has_value());
  EXPECT_EQ(listener_.closed->message(),
            absl::StrCat("tcp: hub.test:", port, ": connect timed out after 500ms: 127.0.0.2:",
                         port, " timed out; 127.0.0.1:", port, " not tried"));
}

TEST_F(HappyEyeballsTest, AttemptDelayIsValidated) {
  for (const auto& [config, error] : std::vector<std::pair<std::string, std::string>>{
           {"connection_attempt_delay { nanos: 5000000 }",
            "tcp: connection_attempt_delay: 5ms is below the minimum of 10ms (RFC 8305); leave it "
            "unset for the default, 250ms"},
           {"connection_attempt_delay { seconds: -1 }",
            "tcp: connection_attempt_delay: -1s is below the minimum of 10ms (RFC 8305); leave it "
            "unset for the default, 250ms"}}) {
    auto pipeline = Resolve(config);
    ASSERT_FALSE(pipeline.ok()) << config;
    EXPECT_EQ(pipeline.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(pipeline.status().message(), absl::StrCat("cfg: transports[0]: ", error));
  }
  for (const char* config :
       {"connection_attempt_delay { nanos: 10000000 }", "connection_attempt_delay { seconds: 0 }",
        "connection_attempt_delay { seconds: 5 }"}) {
    EXPECT_TRUE(Resolve(config).ok()) << config << ": " << Resolve(config).status();
  }
}

TEST_F(HappyEyeballsTest, PinnedAddressesAreValidated) {
  for (const auto& [config, error] : std::vector<std::pair<std::string, std::string>>{
           {"addresses: \"127.0.0.1\" addresses: \"hub.example\"",
            "tcp: addresses[1]: \"hub.example\" is not an IPv4 or IPv6 address (names go in the "
            "endpoint or host)"},
           {"addresses: \"[::1\"",
            "tcp: addresses[0]: \"[::1\" is not an IPv4 or IPv6 address (names go in the "
            "endpoint or host)"},
           {"addresses: \"127.0.0.1:1883\"",
            "tcp: addresses[0]: \"127.0.0.1:1883\" is not an IPv4 or IPv6 address (names go in "
            "the endpoint or host)"},
           {"family: IPV4 addresses: \"::1\"",
            "tcp: addresses[0]: ::1 does not fit family IPV4 (drop the address or the family)"},
           {"family: IPV6 addresses: \"::1\" addresses: \"127.0.0.1\"",
            "tcp: addresses[1]: 127.0.0.1 does not fit family IPV6 (drop the address or the "
            "family)"}}) {
    auto pipeline = Resolve(config);
    ASSERT_FALSE(pipeline.ok()) << config;
    EXPECT_EQ(pipeline.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(pipeline.status().message(), absl::StrCat("cfg: transports[0]: ", error));
  }
  EXPECT_TRUE(Resolve("family: IPV6 addresses: \"[2001:db8::7]\" addresses: \"::1\"").ok());
}

// One address (an IP literal, or a name with one answer) keeps the errors it had before the race.
TEST_F(HappyEyeballsTest, OneAddressKeepsItsPlainError) {
  auto site = Site::Create({{"127.0.0.3", Role::kRefusing}});
  ASSERT_TRUE(site.ok()) << site.status();
  int port = (*site)->port();
  Start(port, Pinned({"127.0.0.3"}));
  ASSERT_TRUE(RunUntilOpenOrClosed());
  ASSERT_TRUE(listener_.closed.has_value());
  EXPECT_EQ(listener_.closed->message(),
            absl::StrCat("tcp: hub.test:", port, " (127.0.0.3): connection refused"));
}

}  // namespace
}  // namespace testing
}  // namespace hublink
