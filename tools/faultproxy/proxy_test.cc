// The proxy on real loopback sockets: the test holds both ends (the client it connects through the
// proxy, and the upstream end the proxy opens to a listener the test owns), and drives faults
// through the real control port. Waits are on conditions (status counters, bytes, EOF) with
// bounded timeouts; latency and bandwidth timing is covered with injected time in fault_test.
#include "tools/faultproxy/proxy.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "tools/faultproxy/proxy_test_util.h"

namespace hublink {
namespace faultproxy {
namespace {

using testing::Accept;
using testing::Connect;
using testing::ControlClient;
using ::testing::HasSubstr;
using testing::ReadEnd;
using testing::ReadN;
using testing::RunningProxy;
using ::testing::StartsWith;
using testing::StatusValue;
using testing::WaitFor;
using testing::WriteAll;

std::string Pattern(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// A client connected through the proxy and the upstream end of the same connection.
struct Pair {
  int client = -1;
  int upstream = -1;
  ~Pair() {
    if (client >= 0) close(client);
    if (upstream >= 0) close(upstream);
  }
};

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<hublink::testing::LoopbackListener> listener =
        hublink::testing::ListenOnLoopback();
    ASSERT_TRUE(listener.ok()) << listener.status();
    listener_ = listener->fd;
    upstream_port_ = listener->port;
  }
  void TearDown() override {
    control_.reset();
    proxy_.reset();
    if (listener_ >= 0) close(listener_);
  }

  void StartProxy(ProxyOptions options = {}) {
    absl::StatusOr<std::unique_ptr<RunningProxy>> proxy =
        RunningProxy::Start(upstream_port_, options);
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    proxy_ = std::move(proxy).value();
    control_ = std::make_unique<ControlClient>(proxy_->control_port());
    ASSERT_TRUE(control_->ok());
  }

  std::unique_ptr<Pair> Open() {
    auto pair = std::make_unique<Pair>();
    pair->client = Connect(proxy_->port());
    EXPECT_GE(pair->client, 0) << std::strerror(errno);
    pair->upstream = Accept(listener_);
    EXPECT_GE(pair->upstream, 0) << "the proxy did not connect upstream";
    return pair;
  }

  std::string Command(const std::string& line) { return control_->Command(line); }
  int64_t Value(const std::string& key, const std::string& segment = "") {
    return StatusValue(Command("status"), segment, key);
  }
  bool WaitValue(const std::string& key, int64_t want, const std::string& segment = "") {
    return WaitFor([&] { return Value(key, segment) == want; });
  }

  int listener_ = -1;
  int upstream_port_ = 0;
  std::unique_ptr<RunningProxy> proxy_;
  std::unique_ptr<ControlClient> control_;
};

TEST_F(ProxyTest, ForwardsARealEchoPeerBothWaysAndPassesTheClose) {
  StartProxy();
  std::thread echo([this] {
    int fd = Accept(listener_);
    if (fd < 0) return;
    char buffer[65536];
    for (;;) {
      ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0 || !WriteAll(fd, std::string(buffer, static_cast<size_t>(n)))) break;
    }
    close(fd);  // after the client's FIN
  });
  int client = Connect(proxy_->port());
  ASSERT_GE(client, 0);
  const std::string payload = Pattern(1 << 20, 1);
  std::thread writer([&] { WriteAll(client, payload); });
  std::string echoed = ReadN(client, payload.size());
  writer.join();
  EXPECT_TRUE(echoed == payload) << "echoed " << echoed.size() << " bytes, not the same";
  shutdown(client, SHUT_WR);
  EXPECT_EQ(ReadEnd(client), 0);  // the echo peer's close came back through
  echo.join();
  close(client);
  EXPECT_TRUE(WaitValue("conns", 0));
  std::string status = Command("status");
  EXPECT_EQ(StatusValue(status, "", "up"), 1 << 20);
  EXPECT_EQ(StatusValue(status, "", "down"), 1 << 20);
  EXPECT_EQ(StatusValue(status, "", "accepted"), 1);
}

TEST_F(ProxyTest, HalfCloseKeepsTheOtherDirection) {
  StartProxy();
  auto pair = Open();
  shutdown(pair->client, SHUT_WR);
  EXPECT_EQ(ReadEnd(pair->upstream), 0);
  ASSERT_TRUE(WriteAll(pair->upstream, "late"));
  EXPECT_EQ(ReadN(pair->client, 4), "late");
  shutdown(pair->upstream, SHUT_WR);
  EXPECT_EQ(ReadEnd(pair->client), 0);
  EXPECT_TRUE(WaitValue("conns", 0));
}

TEST_F(ProxyTest, BlackholeDiscardsButKeepsTheConnectionOpenUntilClear) {
  StartProxy();
  auto pair = Open();
  ASSERT_TRUE(WriteAll(pair->upstream, "before"));
  EXPECT_EQ(ReadN(pair->client, 6), "before");

  EXPECT_EQ(Command("blackhole dir=down"), "ok id=1");
  ASSERT_TRUE(WriteAll(pair->upstream, Pattern(1000, 2)));
  ASSERT_TRUE(WaitValue("dropped_down", 1000));  // the proxy read them and threw them away
  char c;
  EXPECT_EQ(recv(pair->client, &c, 1, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
  // Still connected: the other direction works, and nobody saw a FIN or RST.
  ASSERT_TRUE(WriteAll(pair->client, "ping"));
  EXPECT_EQ(ReadN(pair->upstream, 4), "ping");
  EXPECT_EQ(Value("conns"), 1);

  EXPECT_EQ(Command("clear"), "ok cleared=1");
  ASSERT_TRUE(WriteAll(pair->upstream, "after"));
  EXPECT_EQ(ReadN(pair->client, 5), "after");
}

TEST_F(ProxyTest, BlackholeBothWaysAlsoHoldsBackTheFin) {
  StartProxy();
  auto pair = Open();
  EXPECT_EQ(Command("blackhole"), "ok id=1");
  ASSERT_TRUE(WriteAll(pair->client, "lost"));
  shutdown(pair->client, SHUT_WR);
  ASSERT_TRUE(WaitValue("dropped_up", 4));
  char c;
  EXPECT_EQ(recv(pair->upstream, &c, 1, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);  // neither the bytes nor the FIN
  EXPECT_EQ(Command("clear"), "ok cleared=1");
  EXPECT_EQ(ReadEnd(pair->upstream), 0);  // the FIN goes through once the hole closes
}

TEST_F(ProxyTest, ResetSendsRstBothWays) {
  StartProxy();
  auto pair = Open();
  ASSERT_TRUE(WriteAll(pair->client, "x"));
  EXPECT_EQ(ReadN(pair->upstream, 1), "x");
  EXPECT_EQ(Command("reset"), "ok id=1 reset=1");
  EXPECT_EQ(ReadEnd(pair->client), -ECONNRESET);
  EXPECT_EQ(ReadEnd(pair->upstream), -ECONNRESET);
  std::string status = Command("status");
  EXPECT_EQ(StatusValue(status, "", "conns"), 0);
  EXPECT_EQ(StatusValue(status, "", "resets"), 1);
  EXPECT_EQ(StatusValue(status, "", "faults"), 0);  // one-shot
}

TEST_F(ProxyTest, TimedResetAlsoResetsNewConnections) {
  StartProxy();
  auto pair = Open();
  EXPECT_EQ(Command("reset for=1h"), "ok id=1 reset=1");
  EXPECT_EQ(ReadEnd(pair->client), -ECONNRESET);
  int late = Connect(proxy_->port());
  ASSERT_GE(late, 0);
  EXPECT_EQ(ReadEnd(late), -ECONNRESET);
  close(late);
  EXPECT_EQ(Value("resets"), 2);
  pollfd p{listener_, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0);  // the late one never reached the upstream
  EXPECT_EQ(Command("clear"), "ok cleared=1");
  auto after = Open();
  ASSERT_TRUE(WriteAll(after->client, "ok"));
  EXPECT_EQ(ReadN(after->upstream, 2), "ok");
}

TEST_F(ProxyTest, FaultsTargetOneConnection) {
  StartProxy();
  auto first = Open();
  auto second = Open();
  EXPECT_EQ(Command("blackhole conn=1 dir=down"), "ok id=1");
  ASSERT_TRUE(WriteAll(first->upstream, "a"));
  ASSERT_TRUE(WriteAll(second->upstream, "b"));
  EXPECT_EQ(ReadN(second->client, 1), "b");
  EXPECT_TRUE(WaitValue("dropped_down", 1, "conn id=1"));
  EXPECT_EQ(Value("dropped_down", "conn id=2"), 0);

  EXPECT_EQ(Command("latency delay=1ms conn=2"), "ok id=2");
  EXPECT_EQ(Command("reset conn=2"), "ok id=3 reset=1");
  EXPECT_EQ(ReadEnd(second->client), -ECONNRESET);
  ASSERT_TRUE(WriteAll(first->client, "still"));
  EXPECT_EQ(ReadN(first->upstream, 5), "still");
  // A fault aimed at one connection ends with it: only the blackhole on conn 1 is left.
  std::string status = Command("status");
  EXPECT_EQ(StatusValue(status, "", "conns"), 1);
  EXPECT_EQ(StatusValue(status, "", "faults"), 1);
  EXPECT_THAT(status, HasSubstr("| fault id=1 fault=blackhole dir=down conn=1 |"));
}

TEST_F(ProxyTest, SegmentsOfOneByteAreSeparateWrites) {
  StartProxy();
  auto pair = Open();
  EXPECT_EQ(Command("segment size=1"), "ok id=1");
  const std::string down = Pattern(64, 3);
  ASSERT_TRUE(WriteAll(pair->upstream, down));  // one write
  std::string got;
  int reads = 0;
  while (got.size() < down.size()) {
    std::string part = ReadN(pair->client, 1);
    if (part.empty()) break;
    char more[64];
    ssize_t n = recv(pair->client, more, sizeof(more), MSG_DONTWAIT);
    got += part;
    if (n > 0) got.append(more, static_cast<size_t>(n));
    ++reads;
  }
  EXPECT_TRUE(got == down);
  // Each byte left the proxy in a write of its own (how many reads the client needed depends on
  // its scheduling, so it is only reported).
  EXPECT_EQ(Value("writes_down", "conn id=1"), 64);
  RecordProperty("client_reads", reads);

  const std::string up = Pattern(100, 4);
  ASSERT_TRUE(WriteAll(pair->client, up));
  EXPECT_TRUE(ReadN(pair->upstream, up.size()) == up);
  EXPECT_EQ(Value("writes_up", "conn id=1"), 100);
}

TEST_F(ProxyTest, LatencyBandwidthAndSegmentsKeepTheBytesIntact) {
  StartProxy();
  auto pair = Open();
  EXPECT_EQ(Command("latency delay=5ms jitter=5ms"), "ok id=1");
  EXPECT_EQ(Command("bandwidth rate=2m dir=up"), "ok id=2");
  EXPECT_EQ(Command("segment size=700 dir=up"), "ok id=3");
  const std::string payload = Pattern(100000, 5);
  std::thread writer([&] {
    for (size_t i = 0; i < payload.size(); i += 1000)
      WriteAll(pair->client, payload.substr(i, 1000));
  });
  std::string got = ReadN(pair->upstream, payload.size());
  writer.join();
  EXPECT_TRUE(got == payload) << got.size();
  EXPECT_GE(Value("writes_up", "conn id=1"), 143);  // 100000 / 700, rounded up
}

TEST_F(ProxyTest, CloseAfterPassesExactlyNBytesThenFin) {
  StartProxy();
  auto pair = Open();
  ASSERT_TRUE(WriteAll(pair->upstream, "12345"));
  EXPECT_EQ(ReadN(pair->client, 5), "12345");
  // Counted from when the fault is applied.
  EXPECT_EQ(Command("close_after bytes=10 dir=down"), "ok id=1");
  ASSERT_TRUE(WriteAll(pair->upstream, "abcdefghijklmnopqrstuvwxy"));
  EXPECT_EQ(ReadN(pair->client, 25), "abcdefghij");
  EXPECT_EQ(ReadEnd(pair->client), 0);
  EXPECT_EQ(ReadEnd(pair->upstream), 0);
  std::string status = Command("status");
  EXPECT_EQ(StatusValue(status, "", "closed_after"), 1);
  EXPECT_EQ(StatusValue(status, "", "dropped_down"), 15);
  EXPECT_EQ(StatusValue(status, "", "conns"), 0);
}

TEST_F(ProxyTest, CloseAfterForNewConnectionsWithRst) {
  StartProxy();
  EXPECT_EQ(Command("close_after bytes=3 how=rst dir=up"), "ok id=1");
  auto pair = Open();
  ASSERT_TRUE(WriteAll(pair->client, "abcdef"));
  int end;
  do {
    end = ReadEnd(pair->upstream);
  } while (end == 1);
  EXPECT_EQ(end, -ECONNRESET);
  EXPECT_EQ(ReadEnd(pair->client), -ECONNRESET);
  EXPECT_EQ(Value("closed_after"), 1);
  EXPECT_EQ(Value("faults"), 1);  // still armed for the next connection
}

TEST_F(ProxyTest, RefuseResetsNewConnectionsUntilCleared) {
  StartProxy();
  auto kept = Open();
  EXPECT_EQ(Command("refuse"), "ok id=1");
  int refused = Connect(proxy_->port());  // the kernel completes the handshake...
  ASSERT_GE(refused, 0);
  EXPECT_EQ(ReadEnd(refused), -ECONNRESET);  // ...then the proxy accepts and resets it
  close(refused);
  EXPECT_EQ(Value("refused"), 1);
  pollfd p{listener_, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0);                // nothing reached the upstream
  ASSERT_TRUE(WriteAll(kept->client, "old"));  // existing connections are untouched
  EXPECT_EQ(ReadN(kept->upstream, 3), "old");

  EXPECT_EQ(Command("clear"), "ok cleared=1");
  auto pair = Open();
  ASSERT_TRUE(WriteAll(pair->client, "new"));
  EXPECT_EQ(ReadN(pair->upstream, 3), "new");
}

TEST_F(ProxyTest, RefuseWithUnbindGivesConnectionRefused) {
  StartProxy();
  EXPECT_EQ(Command("refuse mode=unbind"), "ok id=1");
  EXPECT_THAT(Command("status"), HasSubstr(" listening=unbound "));
  EXPECT_EQ(Connect(proxy_->port()), -1);
  EXPECT_EQ(errno, ECONNREFUSED);
  EXPECT_EQ(Command("clear"), "ok cleared=1");
  auto pair = Open();  // same port again
  ASSERT_TRUE(WriteAll(pair->client, "back"));
  EXPECT_EQ(ReadN(pair->upstream, 4), "back");
}

TEST_F(ProxyTest, RefuseWithPauseLeavesConnectionsInTheBacklog) {
  StartProxy();
  EXPECT_EQ(Command("refuse mode=pause"), "ok id=1");
  EXPECT_THAT(Command("status"), HasSubstr(" listening=paused "));
  int client = Connect(proxy_->port());
  ASSERT_GE(client, 0);
  ASSERT_TRUE(WriteAll(client, "queued"));
  EXPECT_EQ(Value("accepted"), 0);
  EXPECT_EQ(Command("clear"), "ok cleared=1");
  int upstream = Accept(listener_);
  ASSERT_GE(upstream, 0);
  EXPECT_EQ(ReadN(upstream, 6), "queued");
  close(upstream);
  close(client);
}

TEST_F(ProxyTest, StallLeavesBytesInTheKernelSoTheSenderBacksUp) {
  StartProxy();
  auto pair = Open();
  EXPECT_EQ(Command("stall dir=down"), "ok id=1");
  // The upstream writes until its socket is full: the proxy is not reading.
  fcntl(pair->upstream, F_SETFL, fcntl(pair->upstream, F_GETFL) | O_NONBLOCK);
  const std::string block = Pattern(65536, 6);
  size_t sent = 0;
  for (;;) {
    ssize_t n = send(pair->upstream, block.data(), block.size(), MSG_NOSIGNAL);
    if (n < 0) {
      ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
      break;
    }
    sent += static_cast<size_t>(n);
    ASSERT_LT(sent, size_t{256} << 20) << "no backpressure";
  }
  std::string status = Command("status");
  EXPECT_EQ(StatusValue(status, "conn id=1", "down"), 0);
  EXPECT_EQ(StatusValue(status, "conn id=1", "queued_down"), 0);  // nothing read into the proxy
  // The other direction still flows.
  fcntl(pair->upstream, F_SETFL, fcntl(pair->upstream, F_GETFL) & ~O_NONBLOCK);
  ASSERT_TRUE(WriteAll(pair->client, "up"));
  EXPECT_EQ(ReadN(pair->upstream, 2), "up");

  EXPECT_EQ(Command("clear"), "ok cleared=1");
  std::string got = ReadN(pair->client, sent);
  ASSERT_EQ(got.size(), sent);
  for (size_t i = 0; i < sent; i += block.size()) {
    size_t n = std::min(block.size(), sent - i);
    ASSERT_TRUE(got.compare(i, n, block, 0, n) == 0) << "at " << i;
  }
}

TEST_F(ProxyTest, BuffersAreCapped) {
  ProxyOptions options;
  options.max_buffer = 4096;
  StartProxy(options);
  auto pair = Open();
  EXPECT_EQ(Command("latency delay=1h dir=down"), "ok id=1");  // everything read stays queued
  fcntl(pair->upstream, F_SETFL, fcntl(pair->upstream, F_GETFL) | O_NONBLOCK);
  const std::string block(65536, 'q');
  size_t sent = 0;
  for (;;) {
    ssize_t n = send(pair->upstream, block.data(), block.size(), MSG_NOSIGNAL);
    if (n < 0) break;
    sent += static_cast<size_t>(n);
    ASSERT_LT(sent, size_t{256} << 20) << "no backpressure";
  }
  EXPECT_TRUE(WaitValue("queued_down", 4096, "conn id=1"));
  EXPECT_EQ(Value("queued_down", "conn id=1"), 4096);
}

TEST_F(ProxyTest, UnreachableUpstreamResetsTheClient) {
  absl::StatusOr<int> dead = hublink::testing::PickFreePort();
  ASSERT_TRUE(dead.ok());
  upstream_port_ = *dead;
  StartProxy();
  int client = Connect(proxy_->port());
  ASSERT_GE(client, 0);
  EXPECT_EQ(ReadEnd(client), -ECONNRESET);
  close(client);
}

TEST_F(ProxyTest, ScheduleAppliesFaultsAndCanBeSwitchedOff) {
  ProxyOptions options;
  absl::StatusOr<std::vector<ScheduleEntry>> schedule =
      ParseSchedule("every=1h,start=0s,for=30m,fault=blackhole,dir=down");
  ASSERT_TRUE(schedule.ok());
  options.schedule = *schedule;
  StartProxy(options);
  ASSERT_TRUE(WaitValue("faults", 1));
  EXPECT_THAT(Command("status"), HasSubstr("| fault id=1 fault=blackhole dir=down for=30m left="));
  auto pair = Open();
  ASSERT_TRUE(WriteAll(pair->upstream, "abc"));
  EXPECT_TRUE(WaitValue("dropped_down", 3));
  EXPECT_EQ(Command("schedule off"), "ok schedule=off");
  EXPECT_EQ(Value("faults"), 0);
  ASSERT_TRUE(WriteAll(pair->upstream, "x"));
  EXPECT_EQ(ReadN(pair->client, 1), "x");
  EXPECT_EQ(Command("schedule on"), "ok schedule=on");
  EXPECT_TRUE(WaitValue("faults", 1));
}

TEST_F(ProxyTest, ControlProtocol) {
  StartProxy();
  EXPECT_THAT(Command("help"), StartsWith("ok commands: status | clear"));
  EXPECT_EQ(Command("frobnicate"), "error unknown command \"frobnicate\" (try help)");
  EXPECT_THAT(Command("latency delay=200"), StartsWith("error \"delay=200\": not a duration"));
  EXPECT_EQ(Command("apply fault=latency delay=50ms jitter=5ms dir=up"), "ok id=1");
  EXPECT_THAT(Command("status"),
              HasSubstr(" faults=1 | fault id=1 fault=latency delay=50ms jitter=5ms dir=up"));
  EXPECT_EQ(Command("blackhole conn=7"), "error no connection 7");
  EXPECT_EQ(Command("remove 1"), "ok removed=1");
  EXPECT_EQ(Command("remove 1"), "error no active fault 1");
  EXPECT_EQ(Command("remove"), "error usage: remove ID");
  EXPECT_EQ(Command("blackhole for=1h"), "ok id=2");
  EXPECT_THAT(Command("status"), HasSubstr("fault=blackhole dir=both for=1h left="));
  EXPECT_EQ(Command("schedule on"), "error no --schedule was given");
  EXPECT_EQ(Command("clear"), "ok cleared=1");
  // Several commands in one write, blank lines and comments skipped, replies in order.
  ASSERT_TRUE(control_->Send("status\r\n\n# a comment\nstall dir=up\nclear\n"));
  EXPECT_THAT(control_->ReadLine(), StartsWith("ok conns=0 "));
  EXPECT_EQ(control_->ReadLine(), "ok id=3");
  EXPECT_EQ(control_->ReadLine(), "ok cleared=1");
  EXPECT_EQ(Command("quit"), "ok bye");
  EXPECT_EQ(ReadEnd(control_->fd()), 0);

  ControlClient other(proxy_->control_port());
  ASSERT_TRUE(other.Send(std::string(5000, 'x')));
  EXPECT_EQ(other.ReadLine(), "error line longer than 4096 bytes");
  EXPECT_EQ(ReadEnd(other.fd()), 0);
}

TEST_F(ProxyTest, FaultsExpireOnTheirOwn) {
  StartProxy();
  EXPECT_EQ(Command("blackhole for=1ms"), "ok id=1");
  EXPECT_TRUE(WaitValue("faults", 0));
}

}  // namespace
}  // namespace faultproxy
}  // namespace hublink
