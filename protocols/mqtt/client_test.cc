// hublink::Client against a real mosquitto on 127.0.0.1: round trips at every QoS and payload size,
// broker restarts under load, a frozen broker, and refused credentials.
#include "protocols/mqtt/client.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "protocols/mqtt/mqtt_protocol.h"
#include "tests/test_util.h"
#include "tools/faultproxy/proxy_test_util.h"
#include "transports/tcp/tcp_transport.h"
#include "transports/websocket/websocket_transport.h"

namespace hublink {
namespace {

using ::hublink::testing::Subprocess;

enum class Via { kTcp, kWebSocket };

std::string ViaName(const ::testing::TestParamInfo<Via>& info) {
  return info.param == Via::kTcp ? "Tcp" : "WebSocket";
}

// mosquitto with a config of our own (persistence, password files), restartable on the same port.
class Broker {
 public:
  static std::unique_ptr<Broker> Start(std::vector<std::string> extra = {}) {
    static int instance = 0;
    auto broker = std::unique_ptr<Broker>(new Broker());
    broker->dir_ = absl::StrCat(testing::TempDir(), "/broker_", getpid(), "_", instance++);
    mkdir(broker->dir_.c_str(), 0755);
    // A port picked free can be taken by a parallel test before mosquitto binds it: try again with
    // fresh ports, a bounded number of times.
    auto launch = [&]() -> bool {
      broker->port_ = *testing::PickFreePort();
      broker->ws_port_ = *testing::PickFreePort();
      std::vector<std::string> conf = {"user root",
                                       "log_dest stderr",
                                       "log_type error",
                                       "log_type warning",
                                       "log_type notice",
                                       "max_queued_messages 0",
                                       "max_inflight_messages 100",
                                       absl::StrCat("listener ", broker->port_, " 127.0.0.1"),
                                       absl::StrCat("listener ", broker->ws_port_, " 127.0.0.1"),
                                       "protocol websockets"};
      bool anonymous_set = false;
      for (auto& line : extra) anonymous_set |= line.rfind("allow_anonymous", 0) == 0;
      // mosquitto 2 refuses anonymous clients by default.
      if (!anonymous_set) conf.push_back("allow_anonymous true");
      for (auto& line : extra) conf.push_back(absl::StrReplaceAll(line, {{"$DIR", broker->dir_}}));
      EXPECT_TRUE(
          testing::WriteFile(broker->dir_ + "/mosquitto.conf", absl::StrJoin(conf, "\n") + "\n")
              .ok());
      return broker->Launch();
    };
    for (int attempt = 1; attempt <= 3; ++attempt) {
      if (launch()) return broker;
      if (broker->process_ != nullptr) broker->Kill();
    }
    ADD_FAILURE() << "mosquitto did not start (3 tries); see " << broker->dir_ << "/mosquitto.log";
    return nullptr;
  }

  bool Launch() {
    Subprocess::Options options;
    options.output_file = dir_ + "/mosquitto.log";
    auto process = Subprocess::Start({"mosquitto", "-c", dir_ + "/mosquitto.conf"}, options);
    if (!process.ok()) return false;
    process_ = std::move(process).value();
    return testing::WaitForPort(port_) && testing::WaitForPort(ws_port_);
  }
  // SIGTERM: mosquitto saves its persistence database and exits.
  void Terminate() { process_->Stop(); }
  void Kill() {
    process_->Signal(SIGKILL);
    process_->Stop();
  }
  void Signal(int sig) { process_->Signal(sig); }
  int port() const { return port_; }
  int ws_port() const { return ws_port_; }
  int port(Via via) const { return via == Via::kTcp ? port_ : ws_port_; }
  const std::string& dir() const { return dir_; }

 private:
  Broker() = default;
  std::string dir_;
  int port_ = 0;
  int ws_port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

const Registry& TestRegistry() {
  static const Registry* registry = [] {
    Registry::Builder builder;
    RegisterTcpTransport(builder);
    RegisterWebSocketTransport(builder);
    RegisterMqttProtocol(builder);
    return new Registry(*std::move(builder).Build());
  }();
  return *registry;
}

std::shared_ptr<const ResolvedPipeline> MakePipeline(int port, absl::string_view mqtt_fields,
                                                     absl::string_view policy = "",
                                                     Via via = Via::kTcp) {
  std::string text = absl::StrCat(
      "endpoint { host: \"127.0.0.1\" port: ", port, " }\n",  //
      "transports { name: \"tcp\" }\n",
      via == Via::kWebSocket ? "transports { name: \"websocket\" }\n" : "",
      "protocol { name: \"mqtt\" typed_config { [type.googleapis.com/hublink.protocols.MqttConfig] "
      "{",
      mqtt_fields, "} } }\n",
      "policy { handshake_timeout { seconds: 2 } reconnect { initial_delay { nanos: 100000000 } ",
      "max_delay { seconds: 1 } ", policy, " } }\n");
  absl::StatusOr<Pipeline> config = ParsePipelineText(text, "test");
  EXPECT_TRUE(config.ok()) << config.status();
  auto resolved = ResolvedPipeline::Resolve(*config, TestRegistry());
  EXPECT_TRUE(resolved.ok()) << resolved.status();
  return std::shared_ptr<const ResolvedPipeline>(std::move(resolved).value());
}

// Connection events from the loop thread, waited on from the test thread.
class Events {
 public:
  void operator()(const ConnectionEvent& event) {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back({event, absl::Now()});
    cv_.notify_all();
  }
  std::function<void(const ConnectionEvent&)> Sink() {
    return [this](const ConnectionEvent& e) { (*this)(e); };
  }
  // Waits until `count` events of `kind` happened; returns the time of the last one.
  absl::optional<absl::Time> WaitFor(ConnectionEvent::Kind kind, int count = 1,
                                     absl::Duration timeout = absl::Seconds(10)) {
    std::unique_lock<std::mutex> lock(mutex_);
    absl::optional<absl::Time> when;
    cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout), [&] {
      int seen = 0;
      for (const auto& e : events_) {
        if (e.first.kind == kind && ++seen == count) {
          when = e.second;
          return true;
        }
      }
      return false;
    });
    return when;
  }
  std::vector<std::pair<ConnectionEvent, absl::Time>> Snapshot() {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::pair<ConnectionEvent, absl::Time>> events_;
};

std::unique_ptr<Client> MakeClient(std::shared_ptr<const ResolvedPipeline> pipeline,
                                   Events* events) {
  Client::Options options;
  if (events != nullptr) options.on_event = events->Sink();
  options.seed = 42;
  auto client = Client::Create(std::move(pipeline), options);
  EXPECT_TRUE(client.ok()) << client.status();
  return std::move(client).value();
}

// future.get() with a bound, so a broken test fails instead of hanging.
absl::Status Await(std::future<absl::Status>& future, absl::Duration timeout = absl::Seconds(30)) {
  if (future.wait_for(absl::ToChronoMilliseconds(timeout)) != std::future_status::ready) {
    return absl::DeadlineExceededError("test: completion did not arrive");
  }
  return future.get();
}
absl::Status Await(std::future<absl::Status>&& future, absl::Duration timeout = absl::Seconds(30)) {
  return Await(future, timeout);
}

template <typename Pred>
bool WaitUntil(Pred pred, absl::Duration timeout) {
  absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return pred();
}

// A client on a loop this test drives, with the reconnect policy and the MQTT keep-alive in virtual
// time (a ManualClock): delays and timeouts are exact, and nothing waits for them. Real I/O with
// the broker still takes real time, so the test runs the loop until a condition holds (bounded).
class DrivenClient {
 public:
  explicit DrivenClient(std::shared_ptr<const ResolvedPipeline> pipeline) {
    loop_ = *EventLoop::Create();
    Client::Options options;
    options.loop = loop_.get();
    options.clock = &clock_;
    options.seed = 42;
    options.on_event = [this](const ConnectionEvent& event) {
      events_.push_back({event, clock_.Now()});
    };
    auto client = Client::Create(std::move(pipeline), options);
    EXPECT_TRUE(client.ok()) << client.status();
    client_ = std::move(client).value();
  }
  ~DrivenClient() { client_.reset(); }  // on the loop thread, with the loop idle

  Client& client() { return *client_; }
  mqtt::ManualClock& clock() { return clock_; }
  EventLoop& loop() { return *loop_; }
  // Events with the virtual time they happened at.
  const std::vector<std::pair<ConnectionEvent, absl::Time>>& events() const { return events_; }

  int Count(ConnectionEvent::Kind kind) const {
    int n = 0;
    for (const auto& e : events_) n += e.first.kind == kind;
    return n;
  }
  // Runs the loop (real I/O, virtual time standing still) until `done`, for at most `timeout`.
  bool RunUntil(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(10)) {
    return testing::RunUntil(*loop_, done, timeout);
  }
  bool WaitFor(ConnectionEvent::Kind kind, int count = 1) {
    return RunUntil([&] { return Count(kind) >= count; });
  }
  absl::Status Await(std::future<absl::Status>& future) {
    if (!RunUntil([&] {
          return future.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
        })) {
      return absl::DeadlineExceededError("test: completion did not arrive");
    }
    return future.get();
  }
  // Moves virtual time to the next timer (a reconnect delay, a keep-alive deadline) and runs it.
  void AdvanceToNextTimer() {
    ASSERT_GT(clock_.pending(), 0u) << "nothing is waiting on a timer";
    clock_.AdvanceToNextTimer();
    loop_->RunOnce(absl::ZeroDuration());
  }

 private:
  std::unique_ptr<EventLoop> loop_;
  mqtt::ManualClock clock_;
  std::vector<std::pair<ConnectionEvent, absl::Time>> events_;
  std::unique_ptr<Client> client_;
};

class ClientOverTransport : public ::testing::TestWithParam<Via> {};

TEST_P(ClientOverTransport, RoundTripsAtEveryQosAndPayloadSize) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  Events sub_events, pub_events;
  auto subscriber =
      MakeClient(MakePipeline(broker->port(GetParam()), R"(client_id: "rt-sub")", "", GetParam()),
                 &sub_events);
  auto publisher =
      MakeClient(MakePipeline(broker->port(GetParam()), R"(client_id: "rt-pub")", "", GetParam()),
                 &pub_events);

  std::mutex mutex;
  std::map<std::string, std::pair<std::string, int>> received;  // topic -> payload, qos
  std::future<absl::Status> subscribed =
      subscriber->Subscribe("rt/#", 2, [&](const mqtt::Message& m) {
        std::lock_guard<std::mutex> lock(mutex);
        received[std::string(m.topic)] = {std::string(m.payload), m.qos};
      });
  subscriber->Connect();
  ASSERT_EQ(subscribed.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  ASSERT_TRUE(Await(subscribed).ok());
  publisher->Connect();
  ASSERT_TRUE(pub_events.WaitFor(ConnectionEvent::Kind::kConnected).has_value());

  // mosquitto 2.0.11 sends websocket clients one 4 KiB frame per 100 ms service tick (~40 KiB/s,
  // measured with strace), so over WebSocket 1 MiB goes to the subscriber once, at QoS 1, instead
  // of at every QoS (about 26 s per MiB). Publishing towards the broker runs at full speed either
  // way.
  const bool websocket = GetParam() == Via::kWebSocket;
  std::vector<std::future<absl::Status>> acks;
  std::map<std::string, std::string> sent;
  for (int qos = 0; qos <= 2; ++qos) {
    std::vector<size_t> sizes = {0, 1, 2049, 65536};
    if (!websocket || qos == 1) sizes.push_back(1 << 20);
    for (size_t size : sizes) {
      std::string topic = absl::StrCat("rt/q", qos, "/", size);
      std::string payload(size, '\0');
      for (size_t i = 0; i < size; ++i) payload[i] = static_cast<char>((i * 31 + qos) & 0xFF);
      sent[topic] = payload;
      acks.push_back(publisher->Publish(topic, payload, qos));
    }
  }
  for (auto& ack : acks) {
    ASSERT_EQ(ack.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    EXPECT_TRUE(Await(ack).ok());
  }
  bool all = WaitUntil(
      [&] {
        std::lock_guard<std::mutex> lock(mutex);
        return received.size() == sent.size();
      },
      websocket ? absl::Seconds(90) : absl::Seconds(20));
  std::lock_guard<std::mutex> lock(mutex);
  std::vector<std::string> missing;
  for (const auto& entry : sent) {
    if (!received.count(entry.first)) missing.push_back(entry.first);
  }
  ASSERT_TRUE(all) << "missing: " << absl::StrJoin(missing, ", ");
  for (const auto& [topic, payload] : sent) {
    ASSERT_TRUE(received.count(topic)) << topic;
    EXPECT_EQ(received[topic].first.size(), payload.size()) << topic;
    EXPECT_TRUE(received[topic].first == payload) << topic;
    EXPECT_EQ(received[topic].second, topic[4] - '0') << topic;
  }
}

// The broker goes down and comes back while a publisher has 10,000 QoS 1 messages to send. Every
// completion must succeed and the subscriber must see every message at least once. `graceful` stops
// mosquitto with SIGTERM (it saves sessions and queued messages, so both clients find their
// sessions again: the DUP re-send path); otherwise SIGKILL with no persistence (new sessions:
// re-send as new).
void RestartUnderLoad(bool graceful, Via via) {
  std::vector<std::string> conf;
  if (graceful) {
    conf = {"persistence true", "persistence_location $DIR/", "autosave_interval 0"};
  }
  auto broker = Broker::Start(conf);
  ASSERT_NE(broker, nullptr);
  Events sub_events, pub_events;
  std::string session = graceful ? "clean_session: false" : "";
  auto subscriber = MakeClient(
      MakePipeline(broker->port(via), absl::StrCat(R"(client_id: "load-sub" )", session), "", via),
      &sub_events);
  auto publisher = MakeClient(
      MakePipeline(broker->port(via),
                   absl::StrCat(R"(client_id: "load-pub" max_inflight: 100 )", session), "", via),
      &pub_events);

  constexpr int kMessages = 10000;
  std::mutex mutex;
  std::vector<int> counts(kMessages, 0);
  std::atomic<int> unique{0}, total{0};
  auto subscribed = subscriber->Subscribe("load/t", 1, [&](const mqtt::Message& m) {
    int n = std::stoi(std::string(m.payload));
    std::lock_guard<std::mutex> lock(mutex);
    if (counts[n]++ == 0) ++unique;
    ++total;
  });
  subscriber->Connect();
  ASSERT_TRUE(Await(subscribed).ok());
  publisher->Connect();
  ASSERT_TRUE(pub_events.WaitFor(ConnectionEvent::Kind::kConnected).has_value());

  std::atomic<int> ok{0}, failed{0};
  std::mutex error_mutex;
  std::string first_error;
  absl::Time start = absl::Now();
  for (int i = 0; i < kMessages; ++i) {
    publisher->Publish("load/t", std::to_string(i), 1, false, [&](const absl::Status& s) {
      if (s.ok()) {
        ++ok;
      } else {
        ++failed;
        std::lock_guard<std::mutex> lock(error_mutex);
        if (first_error.empty()) first_error = s.ToString();
      }
    });
    // Pace the publisher a little so the outage lands in the middle of the run.
    if (i % 500 == 499) absl::SleepFor(absl::Milliseconds(20));
    if (i == kMessages / 3) {
      ASSERT_TRUE(WaitUntil([&] { return unique.load() > 1000; }, absl::Seconds(10)));
      if (graceful) {
        broker->Terminate();
      } else {
        broker->Kill();
      }
      absl::SleepFor(absl::Milliseconds(300));
      ASSERT_TRUE(broker->Launch());
    }
  }
  EXPECT_TRUE(WaitUntil([&] { return ok + failed == kMessages; }, absl::Seconds(60)))
      << ok << " ok, " << failed << " failed";
  EXPECT_EQ(failed.load(), 0) << first_error;
  bool all = false;
  if (graceful) {
    all = WaitUntil([&] { return unique.load() == kMessages; }, absl::Seconds(30));
  } else {
    // Wait until deliveries stop: what the killed broker lost never comes.
    int last = -1;
    for (int i = 0; i < 60 && unique.load() != kMessages && unique.load() != last; ++i) {
      last = unique.load();
      absl::SleepFor(absl::Milliseconds(500));
    }
    all = unique.load() == kMessages;
  }
  absl::Duration elapsed = absl::Now() - start;
  int duplicates = total - unique;
  std::printf("%s restart: %d/%d completions ok, subscriber got %d unique, %d duplicates, %s\n",
              graceful ? "graceful" : "SIGKILL", ok.load(), kMessages, unique.load(), duplicates,
              absl::FormatDuration(elapsed).c_str());
  ::testing::Test::RecordProperty("unique", unique.load());
  ::testing::Test::RecordProperty("duplicates", duplicates);
  EXPECT_TRUE(pub_events.WaitFor(ConnectionEvent::Kind::kReconnected).has_value());
  EXPECT_TRUE(sub_events.WaitFor(ConnectionEvent::Kind::kReconnected).has_value());
  if (graceful) {
    EXPECT_TRUE(all) << "missing " << kMessages - unique.load() << " messages";
  } else if (!all) {
    // Without persistence a killed broker loses what it had acknowledged but not yet forwarded, and
    // a message re-sent after the restart finds no subscriber until the subscriber has
    // re-subscribed. No client can recover either; report it.
    std::printf("SIGKILL restart: %d acknowledged messages never reached the subscriber\n",
                kMessages - unique.load());
  }
}

TEST_P(ClientOverTransport, BrokerStoppedAndRestartedUnderLoadLosesNothing) {
  RestartUnderLoad(true, GetParam());
}

TEST_P(ClientOverTransport, BrokerKilledAndRestartedUnderLoadCompletesEveryPublish) {
  RestartUnderLoad(false, GetParam());
}

// Keep-alive 2 s (ping timeout 1 s): the last sign of life is the connection itself, so PINGREQ
// goes out 1 s later and the broker is dead 1 s after that, exactly, in virtual time.
TEST_P(ClientOverTransport, FrozenBrokerIsDetectedWithinOneKeepAliveAndReconnects) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  DrivenClient c(MakePipeline(broker->port(GetParam()),
                              R"(client_id: "frozen" keep_alive { seconds: 2 })", "", GetParam()));
  c.client().Connect();
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kConnected));
  absl::Time frozen = c.clock().Now();
  broker->Signal(SIGSTOP);
  // Virtual time in small steps, with the loop run in between (the close is posted).
  for (int step = 0; step < 100 && c.Count(ConnectionEvent::Kind::kLost) == 0; ++step) {
    c.clock().Advance(absl::Milliseconds(50));
    c.loop().RunOnce(absl::ZeroDuration());
  }
  ASSERT_EQ(c.Count(ConnectionEvent::Kind::kLost), 1) << "a frozen broker was never declared dead";
  for (const auto& e : c.events()) {
    if (e.first.kind != ConnectionEvent::Kind::kLost) continue;
    EXPECT_EQ(e.second - frozen, absl::Seconds(2));
    EXPECT_EQ(e.first.reason.code(), absl::StatusCode::kDeadlineExceeded) << e.first.reason;
    EXPECT_NE(e.first.reason.message().find("no answer to PINGREQ within 1s"), std::string::npos)
        << e.first.reason;
  }
  broker->Signal(SIGCONT);
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kReconnecting));
  c.AdvanceToNextTimer();
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kReconnected));
  EXPECT_TRUE(c.client().connected());
  auto ack = c.client().Publish("after/freeze", "x", 1);
  EXPECT_TRUE(c.Await(ack).ok());
}

TEST_P(ClientOverTransport, WrongCredentialsGiveAClearErrorAndBackOff) {
  auto broker_dir = testing::TempDir() + "/passwd_" + std::to_string(getpid());
  mkdir(broker_dir.c_str(), 0755);
  std::string passwd = broker_dir + "/passwd";
  ASSERT_TRUE(
      testing::RunCommand("mosquitto_passwd -c -b " + passwd + " device secret-right").ok());
  auto broker = Broker::Start({"allow_anonymous false", "password_file " + passwd});
  ASSERT_NE(broker, nullptr);

  // The right password connects.
  Events good_events;
  auto good =
      MakeClient(MakePipeline(broker->port(GetParam()),
                              R"(client_id: "good" username: "device" password: "secret-right")",
                              "", GetParam()),
                 &good_events);
  good->Connect();
  ASSERT_TRUE(good_events.WaitFor(ConnectionEvent::Kind::kConnected).has_value());

  // The wrong one is refused, and retried only when the backoff delay (virtual) has passed.
  DrivenClient c(MakePipeline(broker->port(GetParam()),
                              R"(client_id: "bad" username: "device" password: "secret-wrong")",
                              "multiplier: 2 jitter: 0.1", GetParam()));
  c.client().Connect();
  for (int refused = 1; refused <= 6; ++refused) {
    ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kReconnecting, refused)) << refused;
    EXPECT_EQ(c.Count(ConnectionEvent::Kind::kReconnecting), refused) << "an attempt without delay";
    if (refused < 6) c.AdvanceToNextTimer();
  }
  std::vector<absl::Duration> delays;
  std::vector<absl::Time> times;
  for (const auto& e : c.events()) {
    EXPECT_NE(e.first.kind, ConnectionEvent::Kind::kConnected);
    if (e.first.kind != ConnectionEvent::Kind::kReconnecting) continue;
    delays.push_back(e.first.delay);
    times.push_back(e.second);
    // mosquitto answers a bad password with CONNACK 5 (not authorized) for MQTT 3.1.1 clients;
    // either refusal must be reported as such, naming the client id.
    EXPECT_TRUE(e.first.reason.code() == absl::StatusCode::kUnauthenticated ||
                e.first.reason.code() == absl::StatusCode::kPermissionDenied)
        << e.first.reason;
    EXPECT_NE(e.first.reason.message().find("(CONNACK"), std::string::npos) << e.first.reason;
    EXPECT_NE(e.first.reason.message().find("\"bad\""), std::string::npos) << e.first.reason;
    EXPECT_EQ(e.first.reason.message().find("secret-wrong"), std::string::npos);
  }
  ASSERT_EQ(delays.size(), 6u);
  // 0.1, 0.2, 0.4, 0.8 s (+-10%), then capped at 1 s (+-10%); each retry exactly one delay later.
  for (size_t i = 0; i < delays.size(); ++i) {
    absl::Duration nominal = std::min(absl::Milliseconds(100) * (1 << i), absl::Seconds(1));
    EXPECT_GE(delays[i], nominal * 0.9) << i;
    EXPECT_LE(delays[i], nominal * 1.1) << i;
    if (i > 0) EXPECT_EQ(times[i] - times[i - 1], delays[i - 1]) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, ClientOverTransport,
                         ::testing::Values(Via::kTcp, Via::kWebSocket), ViaName);

TEST(ClientTest, GivesUpOnlyWhenConfiguredAndFailsPendingPublishes) {
  int port = *testing::PickFreePort();  // nothing listens here
  DrivenClient c(MakePipeline(port, R"(client_id: "x")", "max_attempts: 3"));
  auto queued = c.client().Publish("t", "x", 1);
  c.client().Connect();
  for (int refused = 1; refused <= 2; ++refused) {
    ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kReconnecting, refused));
    c.AdvanceToNextTimer();
  }
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kGaveUp));
  EXPECT_EQ(c.Count(ConnectionEvent::Kind::kReconnecting), 2);
  EXPECT_EQ(c.clock().pending(), 0u) << "no retry scheduled after giving up";
  absl::Status status = c.Await(queued);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("gave up reconnecting after 3 failed attempts"),
            std::string::npos)
      << status;
  EXPECT_NE(status.message().find("connection refused"), std::string::npos) << status;
}

TEST(ClientTest, GivesUpAfterTheConfiguredTime) {
  int port = *testing::PickFreePort();
  DrivenClient c(MakePipeline(port, R"(client_id: "x")", "give_up_after { nanos: 300000000 }"));
  auto queued = c.client().Publish("t", "x", 1);
  c.client().Connect();
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kReconnecting));
  absl::Time first_failure = c.events().front().second;
  // Retries after 0.1 and 0.2 s (+-20%); the failure at or after 0.3 s gives up.
  while (c.Count(ConnectionEvent::Kind::kGaveUp) == 0) {
    int failures = c.Count(ConnectionEvent::Kind::kReconnecting);
    ASSERT_LE(failures, 3);
    c.AdvanceToNextTimer();
    ASSERT_TRUE(c.RunUntil([&] {
      return c.Count(ConnectionEvent::Kind::kReconnecting) > failures ||
             c.Count(ConnectionEvent::Kind::kGaveUp) > 0;
    }));
  }
  absl::Time gave_up = c.events().back().second;
  EXPECT_GE(gave_up - first_failure, absl::Milliseconds(300));
  EXPECT_LT(gave_up - first_failure, absl::Milliseconds(300) + absl::Milliseconds(480));
  EXPECT_EQ(c.Await(queued).code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(c.client().connected());
}

// A pipeline whose primary stack is tcp to `primary_host`:`primary_port` and whose alternative is
// websocket to 127.0.0.1:`alternative_port`, with `policy` added.
std::shared_ptr<const ResolvedPipeline> FallbackPipeline(absl::string_view primary_host,
                                                         int primary_port, int alternative_port,
                                                         absl::string_view policy = "") {
  std::string text = absl::StrCat(
      "endpoint { host: \"", primary_host, "\" port: ", primary_port, " }\n",
      "transports { name: \"tcp\" }\n",
      "alternatives { endpoint { host: \"127.0.0.1\" port: ", alternative_port, " }\n",
      "  transports { name: \"tcp\" } transports { name: \"websocket\" } }\n",
      "protocol { name: \"mqtt\" typed_config { "
      "[type.googleapis.com/hublink.protocols.MqttConfig] { client_id: \"fallback\" } } }\n",
      "policy { reconnect { initial_delay { nanos: 50000000 } } ", policy, " }\n");
  absl::StatusOr<Pipeline> config = ParsePipelineText(text, "test");
  EXPECT_TRUE(config.ok()) << config.status();
  auto resolved = ResolvedPipeline::Resolve(*config, TestRegistry());
  EXPECT_TRUE(resolved.ok()) << resolved.status();
  return std::shared_ptr<const ResolvedPipeline>(std::move(resolved).value());
}

TEST(ClientTest, FailsOverToAnAlternativeStack) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  int dead_port = *testing::PickFreePort();  // the primary stack: nothing listens there
  Events events;
  auto client = MakeClient(FallbackPipeline("127.0.0.1", dead_port, broker->ws_port()), &events);
  client->Connect();
  ASSERT_TRUE(events.WaitFor(ConnectionEvent::Kind::kConnected).has_value());
  auto snapshot = events.Snapshot();
  ASSERT_GE(snapshot.size(), 2u);
  EXPECT_EQ(snapshot[0].first.kind, ConnectionEvent::Kind::kReconnecting);
  EXPECT_NE(snapshot[0].first.reason.message().find("connection refused"), std::string::npos);
  EXPECT_EQ(snapshot[0].first.endpoint,
            absl::StrCat("127.0.0.1:", broker->ws_port(), " (tcp > websocket)"));
  EXPECT_EQ(snapshot.back().first.endpoint,
            absl::StrCat("127.0.0.1:", broker->ws_port(), " (tcp > websocket)"));
  EXPECT_TRUE(Await(client->Publish("alt/t", "x", 1)).ok());
}

// Issue 19: errors from Create(config, registry, ...) name the file the config came from.
TEST(ClientTest, CreateFromAConfigNamesItsSourceInErrors) {
  absl::StatusOr<Pipeline> config = ParsePipelineText(
      "endpoint { host: \"127.0.0.1\" port: 1883 }\n"
      "transports { name: \"tcp\" } transports { name: \"websockt\" }\n"
      "protocol { name: \"mqtt\" }\n",
      "device.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  auto client = Client::Create(*config, TestRegistry(), Client::Options(), "device.textproto");
  ASSERT_FALSE(client.ok());
  EXPECT_TRUE(absl::StartsWith(client.status().message(), "device.textproto: transports[1]"))
      << client.status();
}

std::vector<std::string> PhaseNames(const std::vector<ConnectPhase>& phases) {
  std::vector<std::string> names;
  for (const ConnectPhase& phase : phases) names.push_back(phase.name);
  return names;
}

// Issue 14 part 4: each attempt's phases in its event, and the counters in Stats().
TEST(ClientTest, ReportsEachAttemptsPhasesAndCountsWhatItDid) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  int dead_port = *testing::PickFreePort();  // the primary stack: nothing listens there
  Events events;
  auto client = MakeClient(FallbackPipeline("localhost", dead_port, broker->ws_port()), &events);
  std::future<absl::Status> subscribed =
      client->Subscribe("timed/echo", 1, [](const mqtt::Message&) {});
  client->Connect();
  ASSERT_TRUE(events.WaitFor(ConnectionEvent::Kind::kConnected).has_value());
  ASSERT_TRUE(Await(subscribed).ok());
  ASSERT_TRUE(Await(client->Publish("timed/echo", "x", 1)).ok());

  auto snapshot = events.Snapshot();
  ASSERT_EQ(snapshot[0].first.kind, ConnectionEvent::Kind::kReconnecting);
  // The refused attempt ended in its tcp phase, after resolving "localhost".
  const std::vector<ConnectPhase>& failed = snapshot[0].first.phases;
  ASSERT_EQ(PhaseNames(failed), (std::vector<std::string>{"dns", "tcp"}));
  EXPECT_TRUE(failed[0].done);
  EXPECT_FALSE(failed[1].done);
  EXPECT_TRUE(absl::StrContains(DescribeConnectPhases(failed), "tcp failed after "))
      << DescribeConnectPhases(failed);
  const ConnectionEvent& connected = snapshot.back().first;
  ASSERT_EQ(connected.kind, ConnectionEvent::Kind::kConnected);
  ASSERT_EQ(PhaseNames(connected.phases),
            (std::vector<std::string>{"dns", "tcp", "ws", "connack"}));
  for (const ConnectPhase& phase : connected.phases) {
    EXPECT_TRUE(phase.done) << phase.name;
    EXPECT_GE(phase.duration, absl::ZeroDuration()) << phase.name;
  }
  std::string line = DescribeConnectPhases(connected.phases);
  EXPECT_TRUE(absl::StartsWith(line, "dns ")) << line;
  EXPECT_TRUE(absl::StrContains(line, " ms \u00b7 tcp ")) << line;

  // The echo comes back as a received PUBLISH; wait for it to be counted.
  ClientStats stats;
  ASSERT_TRUE(WaitUntil(
      [&] {
        stats = client->Stats().get();
        return stats.messages_in >= 1;
      },
      absl::Seconds(10)));
  EXPECT_EQ(stats.attempts, 2u);
  EXPECT_EQ(stats.connects, 1u);
  EXPECT_EQ(stats.reconnects, 0u);
  EXPECT_EQ(stats.failures, 1u);
  EXPECT_EQ(stats.failures_by_phase, (std::map<std::string, uint64_t>{{"tcp", 1}}));
  EXPECT_EQ(stats.losses, 0u);
  EXPECT_EQ(stats.messages_out, 1u);
  EXPECT_EQ(stats.messages_in, 1u);
  EXPECT_EQ(stats.queued, 0u);
  EXPECT_EQ(stats.inflight, 0u);
  EXPECT_TRUE(stats.connected);
  // CONNECT, SUBSCRIBE, PUBLISH, PUBACK, each at least 2 bytes, in WebSocket frames.
  EXPECT_GT(stats.bytes_out, 20u);
  EXPECT_GT(stats.bytes_in, 20u);  // the 101 response alone is longer
  EXPECT_EQ(PhaseNames(stats.last_connect), PhaseNames(connected.phases));
  EXPECT_EQ(stats.endpoint, absl::StrCat("127.0.0.1:", broker->ws_port(), " (tcp > websocket)"));

  // A loss is counted, and the attempt after it is a reconnect.
  broker->Kill();
  ASSERT_TRUE(events.WaitFor(ConnectionEvent::Kind::kLost).has_value());
  ASSERT_TRUE(broker->Launch());
  ASSERT_TRUE(events.WaitFor(ConnectionEvent::Kind::kReconnected).has_value());
  stats = client->Stats().get();
  EXPECT_EQ(stats.losses, 1u);
  EXPECT_EQ(stats.reconnects, 1u);
  EXPECT_EQ(stats.connects, 2u);
  EXPECT_EQ(stats.attempts, stats.connects + stats.failures);
}

// Issue 14 part 3: the stack that reached CONNACK is where the next process starts.
TEST(ClientTest, RemembersTheStackThatWorkedAcrossRestarts) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  int dead_port = *testing::PickFreePort();
  std::string state = absl::StrCat(testing::TempDir(), "/stack_state_", getpid());
  std::string policy = absl::StrCat("state_file: \"", state, "\"");
  const std::string alternative =
      absl::StrCat("127.0.0.1:", broker->ws_port(), " (tcp > websocket)");
  {
    Events events;
    auto client =
        MakeClient(FallbackPipeline("127.0.0.1", dead_port, broker->ws_port(), policy), &events);
    client->Connect();
    ASSERT_TRUE(events.WaitFor(ConnectionEvent::Kind::kConnected).has_value());
    EXPECT_EQ(events.Snapshot()[0].first.kind, ConnectionEvent::Kind::kReconnecting);
  }
  absl::StatusOr<std::string> recorded = testing::ReadFile(state);
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  EXPECT_EQ(*recorded, absl::StrCat("1\n", alternative, "\n"));
  {
    // The next process goes straight to the stack that worked: no refused attempt first.
    Events events;
    auto client =
        MakeClient(FallbackPipeline("127.0.0.1", dead_port, broker->ws_port(), policy), &events);
    client->Connect();
    ASSERT_TRUE(events.WaitFor(ConnectionEvent::Kind::kConnected).has_value());
    auto snapshot = events.Snapshot();
    EXPECT_EQ(snapshot[0].first.kind, ConnectionEvent::Kind::kConnected);
    EXPECT_EQ(snapshot[0].first.endpoint, alternative);
    EXPECT_EQ(client->Stats().get().failures, 0u);
  }
  {
    // A state file written for other stacks (the pipeline was edited) is not applied.
    int other_port = *testing::PickFreePort();
    Events events;
    auto client = MakeClient(FallbackPipeline("127.0.0.1", dead_port, other_port, policy), &events);
    client->Connect();
    ASSERT_TRUE(events.WaitFor(ConnectionEvent::Kind::kReconnecting).has_value());
    EXPECT_EQ(events.Snapshot()[0].first.endpoint,
              absl::StrCat("127.0.0.1:", other_port, " (tcp > websocket)"))
        << "the first attempt went to the primary stack, then moved on";
  }
}

// Issue 14 part 3: connected on the alternative, the client re-probes the primary now and then
// and moves back once it answers.
TEST(ClientTest, ReprobesThePrimaryAndReturnsWhenItAnswers) {
  auto alternative = Broker::Start();
  ASSERT_NE(alternative, nullptr);
  auto primary = Broker::Start();
  ASSERT_NE(primary, nullptr);
  primary->Kill();  // its port is known; nothing listens there until Launch()
  DrivenClient c(FallbackPipeline("127.0.0.1", primary->port(), alternative->ws_port(),
                                  "reprobe_interval { seconds: 10 }"));
  c.client().Connect();
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kReconnecting));
  c.AdvanceToNextTimer();
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kConnected));
  const std::string primary_stack = absl::StrCat("127.0.0.1:", primary->port(), " (tcp)");
  // Still down at the first re-probe: the client stays where it is.
  c.AdvanceToNextTimer();
  ASSERT_TRUE(c.RunUntil([&] { return c.clock().pending() >= 2; }))
      << "the next re-probe (besides the keep-alive) was not armed after a failed one";
  EXPECT_EQ(c.Count(ConnectionEvent::Kind::kReturning), 0);
  EXPECT_TRUE(c.client().connected());
  ASSERT_TRUE(primary->Launch());
  // The keep-alive ping is due before the next re-probe: run timers until the client returns.
  for (int i = 0; i < 4 && c.Count(ConnectionEvent::Kind::kReturning) == 0; ++i) {
    c.AdvanceToNextTimer();
    c.RunUntil([&] { return c.Count(ConnectionEvent::Kind::kReturning) > 0; },
               absl::Milliseconds(500));
  }
  ASSERT_EQ(c.Count(ConnectionEvent::Kind::kReturning), 1);
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kReconnected));
  const ConnectionEvent& returning = c.events()[c.events().size() - 2].first;
  EXPECT_EQ(returning.kind, ConnectionEvent::Kind::kReturning);
  EXPECT_EQ(returning.endpoint, primary_stack);
  EXPECT_EQ(c.events().back().first.endpoint, primary_stack);
  EXPECT_EQ(c.Count(ConnectionEvent::Kind::kLost), 0) << "a planned move is not a loss";
  std::future<ClientStats> stats_future = c.client().Stats();
  ASSERT_TRUE(c.RunUntil(
      [&] { return stats_future.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }));
  ClientStats stats = stats_future.get();
  EXPECT_EQ(stats.losses, 0u);
  EXPECT_EQ(stats.endpoint, primary_stack);
  std::future<absl::Status> published = c.client().Publish("fallback/t", "x", 1);
  EXPECT_TRUE(c.Await(published).ok());
}

TEST(ClientTest, BackoffGrowsWhileFailingAndResetsAfterAStablePeriod) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  broker->Kill();  // the port is known; nothing listens until Launch()
  DrivenClient c(MakePipeline(broker->port(), R"(client_id: "stable")",
                              "multiplier: 2 jitter: 0.1 stable_after { nanos: 500000000 }"));
  c.client().Connect();
  for (int refused = 1; refused <= 3; ++refused) {
    ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kReconnecting, refused));
    if (refused < 3) c.AdvanceToNextTimer();
  }
  ASSERT_TRUE(broker->Launch());
  c.AdvanceToNextTimer();
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kConnected));
  c.clock().Advance(absl::Milliseconds(500));  // stable_after, in virtual time
  broker->Kill();
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kLost));
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kReconnecting, 4));
  std::vector<absl::Duration> delays;
  for (const auto& e : c.events()) {
    if (e.first.kind == ConnectionEvent::Kind::kReconnecting) delays.push_back(e.first.delay);
  }
  ASSERT_EQ(delays.size(), 4u);
  // 0.1, 0.2, 0.4 s (+-10%) while refused; after a stable connection it starts again at 0.1 s.
  for (size_t i = 1; i < 3; ++i) EXPECT_GT(delays[i], delays[i - 1] * 1.5);
  EXPECT_LE(delays[3], absl::Milliseconds(110));
  EXPECT_GE(delays[3], absl::Milliseconds(90));
}

// Just short of stable_after, the backoff carries on growing.
TEST(ClientTest, BackoffKeepsGrowingAfterAShortConnection) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  broker->Kill();
  DrivenClient c(MakePipeline(broker->port(), R"(client_id: "short")",
                              "multiplier: 2 jitter: 0.1 stable_after { nanos: 500000000 }"));
  c.client().Connect();
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kReconnecting));
  ASSERT_TRUE(broker->Launch());
  c.AdvanceToNextTimer();
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kConnected));
  c.clock().Advance(absl::Milliseconds(499));
  broker->Kill();
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kReconnecting, 2));
  std::vector<absl::Duration> delays;
  for (const auto& e : c.events()) {
    if (e.first.kind == ConnectionEvent::Kind::kReconnecting) delays.push_back(e.first.delay);
  }
  ASSERT_EQ(delays.size(), 2u);
  EXPECT_GE(delays[1], absl::Milliseconds(180));
  EXPECT_LE(delays[1], absl::Milliseconds(220));
}

// Not a benchmark (bench/ has those): a sanity number for the report, with every message accounted
// for.
TEST(ClientTest, ThroughputToARealBroker) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  auto subscriber = MakeClient(MakePipeline(broker->port(), R"(client_id: "tp-sub")"), nullptr);
  std::atomic<int> got{0};
  auto subscribed = subscriber->Subscribe("tp/#", 1, [&](const mqtt::Message&) { ++got; });
  subscriber->Connect();
  ASSERT_TRUE(Await(subscribed).ok());
  auto publisher =
      MakeClient(MakePipeline(broker->port(), R"(client_id: "tp-pub" max_inflight: 256)"), nullptr);
  publisher->Connect();
  const std::string payload(64, 'p');
  for (int qos = 0; qos <= 1; ++qos) {
    const int n = qos == 0 ? 50000 : 20000;
    got = 0;
    std::atomic<int> done{0}, failed{0};
    absl::Time start = absl::Now();
    for (int i = 0; i < n; ++i) {
      publisher->Publish(absl::StrCat("tp/", qos), payload, qos, false, [&](const absl::Status& s) {
        if (!s.ok()) ++failed;
        ++done;
      });
    }
    ASSERT_TRUE(WaitUntil([&] { return done.load() == n; }, absl::Seconds(60)));
    absl::Duration acked = absl::Now() - start;
    // QoS 0 may be dropped by the broker under load; QoS 1 may not.
    bool all = WaitUntil([&] { return got.load() == n; }, absl::Seconds(qos == 0 ? 5 : 30));
    absl::Duration delivered = absl::Now() - start;
    EXPECT_EQ(failed.load(), 0);
    if (qos == 1) {
      EXPECT_TRUE(all) << got.load();
    }
    std::printf(
        "QoS %d, %d x 64 B over TCP: completions %.0f msg/s, subscriber got %d (%.0f msg/s)\n", qos,
        n, n / absl::ToDoubleSeconds(acked), got.load(),
        got.load() / absl::ToDoubleSeconds(delivered));
  }
}

TEST(ClientTest, PublishWhileDisconnectedIsQueuedAndSentOnConnect) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  Events events;
  auto subscriber = MakeClient(MakePipeline(broker->port(), R"(client_id: "q-sub")"), nullptr);
  std::atomic<int> got{0};
  auto subscribed = subscriber->Subscribe("q/#", 1, [&](const mqtt::Message&) { ++got; });
  subscriber->Connect();
  ASSERT_TRUE(Await(subscribed).ok());

  auto publisher = MakeClient(MakePipeline(broker->port(), R"(client_id: "q-pub")"), &events);
  std::vector<std::future<absl::Status>> acks;
  for (int i = 0; i < 50; ++i) acks.push_back(publisher->Publish("q/x", std::to_string(i), i % 3));
  EXPECT_EQ(acks[0].wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  publisher->Connect();
  for (auto& ack : acks) EXPECT_TRUE(Await(ack).ok());
  EXPECT_TRUE(WaitUntil([&] { return got.load() == 50; }, absl::Seconds(10))) << got.load();

  // Disconnect resolves after DISCONNECT; a later publish waits for the next Connect.
  EXPECT_TRUE(Await(publisher->Disconnect()).ok());
  EXPECT_TRUE(events.WaitFor(ConnectionEvent::Kind::kDisconnected).has_value());
  EXPECT_FALSE(publisher->connected());
  auto later = publisher->Publish("q/x", "later", 1);
  EXPECT_EQ(later.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  publisher->Connect();
  EXPECT_TRUE(Await(later).ok());
}

TEST(ClientTest, UnsubscribeAndSubackFailure) {
  // mosquitto's acl_file grants every SUBSCRIBE and filters at delivery; this plugin refuses
  // "secret/..." subscriptions outright, so mosquitto answers SUBACK 0x80.
  std::string plugin = "protocols/mqtt/testdata/deny_subscribe_plugin.so";
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
  auto broker = Broker::Start({absl::StrCat("plugin ", cwd, "/", plugin)});
  ASSERT_NE(broker, nullptr);
  auto client = MakeClient(MakePipeline(broker->port(), R"(client_id: "acl")"), nullptr);
  std::atomic<int> got{0};
  auto allowed = client->Subscribe("allowed/x", 1, [&](const mqtt::Message&) { ++got; });
  std::atomic<int> sentinels{0};
  auto sentinel =
      client->Subscribe("allowed/sentinel", 1, [&](const mqtt::Message&) { ++sentinels; });
  auto refused = client->Subscribe("secret/#", 1, [&](const mqtt::Message&) {});
  client->Connect();
  EXPECT_TRUE(Await(allowed).ok());
  absl::Status status = Await(refused);
  std::printf("subscribe to secret/#: %s\n", status.ToString().c_str());
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_TRUE(Await(client->Publish("allowed/x", "1", 1)).ok());
  EXPECT_TRUE(WaitUntil([&] { return got.load() == 1; }, absl::Seconds(5)));
  EXPECT_TRUE(Await(client->Unsubscribe("allowed/x")).ok());
  EXPECT_TRUE(Await(client->Publish("allowed/x", "2", 1)).ok());
  // No sleep: a message published after it on a topic still subscribed arrives after it would
  // have (the broker keeps one publisher's order per subscriber).
  EXPECT_TRUE(Await(sentinel).ok());
  EXPECT_TRUE(Await(client->Publish("allowed/sentinel", "s", 1)).ok());
  EXPECT_TRUE(WaitUntil([&] { return sentinels.load() == 1; }, absl::Seconds(5)));
  EXPECT_EQ(got.load(), 1);
}

TEST(ClientTest, RunsOnACallerDrivenLoop) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  auto loop = *EventLoop::Create();
  Client::Options options;
  options.loop = loop.get();
  std::vector<std::string> events;
  options.on_event = [&](const ConnectionEvent& e) {
    events.push_back(DescribeConnectionEvent(e));
  };
  auto client = *Client::Create(MakePipeline(broker->port(), R"(client_id: "driven")"), options);
  std::string got;
  client->Subscribe("driven/t", 0, [&](const mqtt::Message& m) { got = std::string(m.payload); });
  client->Connect();
  absl::Status published = absl::UnknownError("pending");
  client->Publish("driven/t", "hello", 0, false, [&](const absl::Status& s) { published = s; });
  ASSERT_TRUE(testing::RunUntil(
      *loop, [&] { return got == "hello"; }, absl::Seconds(10)));
  EXPECT_TRUE(published.ok());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0], "connected (session present: 0)");
  bool disconnected = false;
  client->Disconnect();
  client->Publish("driven/t", "x", 0, false, nullptr);
  ASSERT_TRUE(testing::RunUntil(*loop, [&] {
    disconnected = !events.empty() && events.back() == "disconnected";
    return disconnected;
  }));
  client.reset();  // on the loop thread, with the loop idle
}

TEST(ClientTest, PublishesHandedOffBeyondTheOfflineQueueLimitsFailAtOnce) {
  // A caller-driven loop nobody runs yet: every publish from this thread waits in the hand-off
  // FIFO, which is what a publisher faster than the loop sees.
  auto loop = *EventLoop::Create();
  Client::Options options;
  options.loop = loop.get();
  int port = *testing::PickFreePort();
  auto client = *Client::Create(
      MakePipeline(port,
                   R"(client_id: "handoff" offline_queue { max_messages: 4 max_bytes: 100 })"),
      options);
  std::vector<absl::Status> results(7, absl::UnknownError("not resolved"));
  auto publish = [&](int i, size_t payload_size) {
    client->Publish("h/t", std::string(payload_size, 'x'), 1, false,
                    [&results, i](const absl::Status& s) { results[i] = s; });
  };
  for (int i = 0; i < 4; ++i) publish(i, 10);  // 4 messages, 52 bytes: fit
  publish(4, 1);                               // a fifth message: over max_messages
  EXPECT_EQ(results[4].code(), absl::StatusCode::kResourceExhausted) << results[4];
  EXPECT_TRUE(absl::StrContains(results[4].message(),
                                "4 publishes (52 bytes) are waiting for the event loop"))
      << results[4];
  EXPECT_TRUE(absl::StrContains(results[4].message(), "offline_queue limits")) << results[4];
  for (int i = 0; i < 4; ++i) EXPECT_EQ(results[i].code(), absl::StatusCode::kUnknown);

  // The loop takes them into the session's queue (no broker: they wait there, not failed).
  auto pending = client->Pending();
  ASSERT_TRUE(testing::RunUntil(*loop, [&] {
    return pending.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }));
  EXPECT_EQ(pending.get(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(results[i].code(), absl::StatusCode::kUnknown) << i;

  // The FIFO is empty again; the byte limit applies to what waits in it. From another thread,
  // since this one has run the loop and would now publish straight into the session.
  std::thread([&] {
    publish(5, 80);  // 83 bytes: fits alone
    publish(6, 20);  // 83 + 23 > 100
  }).join();
  EXPECT_EQ(results[6].code(), absl::StatusCode::kResourceExhausted) << results[6];
  EXPECT_TRUE(absl::StrContains(results[6].message(), "\"h/t\" rejected")) << results[6];
  EXPECT_EQ(results[5].code(), absl::StatusCode::kUnknown);
  client.reset();  // the loop is idle; pending completions resolve as cancelled
  EXPECT_EQ(results[5].code(), absl::StatusCode::kCancelled) << results[5];
}

TEST(ClientTest, DestroyingTheClientCancelsPendingCompletions) {
  int port = *testing::PickFreePort();
  auto client = MakeClient(MakePipeline(port, R"(client_id: "gone")"), nullptr);
  auto pending = client->Publish("t", "x", 1);
  // Many more handed off from another thread: each is resolved exactly once, however far the loop
  // got with them.
  std::atomic<int> resolved{0}, cancelled{0};
  std::thread publisher([&] {
    for (int i = 0; i < 1000; ++i) {
      client->Publish("t", absl::StrCat(i), 1, false, [&](const absl::Status& status) {
        ++resolved;
        if (status.code() == absl::StatusCode::kCancelled) ++cancelled;
      });
    }
  });
  publisher.join();
  client.reset();
  EXPECT_EQ(Await(pending).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(resolved.load(), 1000);
  EXPECT_EQ(cancelled.load(), 1000);
}

// Issue 11 #5: user code that runs while CONNACK is handled (here the completion of a QoS 0
// publish queued while offline) calls Disconnect(). The client must end disconnected: not
// connected(), kConnected before kDisconnected and never after, and it must connect and disconnect
// normally afterwards.
void ExpectDisconnectDuringConnackEndsCleanly(bool from_stage_observer) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  Events events;
  Client::Options options;
  options.on_event = events.Sink();
  options.seed = 42;
  Client* raw = nullptr;
  std::atomic<bool> disconnect_once{true};
  if (from_stage_observer) {
    options.on_stage = [&](absl::string_view layer, absl::string_view detail) {
      if (absl::StartsWith(detail, "CONNACK accepted") && disconnect_once.exchange(false)) {
        raw->Disconnect();
      }
    };
  }
  auto created = Client::Create(
      MakePipeline(broker->port(),
                   from_stage_observer ? R"(client_id: "stage")" : R"(client_id: "reentrant")"),
      options);
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<Client> client = std::move(created).value();
  raw = client.get();
  std::future<absl::Status> published;
  if (!from_stage_observer) {
    client->Publish("t", "x", 0, false, [&](const absl::Status&) {
      if (disconnect_once.exchange(false)) raw->Disconnect();
    });
  }
  client->Connect();
  ASSERT_TRUE(events.WaitFor(ConnectionEvent::Kind::kDisconnected).has_value());
  EXPECT_TRUE(WaitUntil([&] { return !client->connected(); }, absl::Seconds(5)))
      << "stuck connected with no link";
  std::vector<ConnectionEvent::Kind> kinds;
  for (const auto& e : events.Snapshot()) kinds.push_back(e.first.kind);
  EXPECT_EQ(kinds, (std::vector<ConnectionEvent::Kind>{ConnectionEvent::Kind::kConnected,
                                                       ConnectionEvent::Kind::kDisconnected}));
  // The client still works: Connect() connects, Disconnect() resolves.
  client->Connect();
  ASSERT_TRUE(events.WaitFor(ConnectionEvent::Kind::kReconnected, 1, absl::Seconds(10)).has_value())
      << "Connect() after the disconnect did nothing";
  EXPECT_TRUE(Await(client->Publish("t", "y", 1), absl::Seconds(10)).ok());
  EXPECT_TRUE(Await(client->Disconnect(), absl::Seconds(10)).ok());
  EXPECT_FALSE(client->connected());
}

TEST(ClientTest, DisconnectFromACompletionDuringConnackEndsCleanly) {
  ExpectDisconnectDuringConnackEndsCleanly(false);
}

TEST(ClientTest, DisconnectFromTheStageObserverDuringConnackEndsCleanly) {
  ExpectDisconnectDuringConnackEndsCleanly(true);
}

// Events are user code too: Disconnect() from the kLost event stops reconnecting and resolves.
TEST(ClientTest, DisconnectFromTheLostEventStopsReconnecting) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  Events events;
  Client* raw = nullptr;
  std::promise<std::future<absl::Status>> disconnect_promise;
  auto disconnect_future = disconnect_promise.get_future();
  Client::Options options;
  options.seed = 42;
  options.on_event = [&](const ConnectionEvent& event) {
    events(event);
    if (event.kind == ConnectionEvent::Kind::kLost) disconnect_promise.set_value(raw->Disconnect());
  };
  auto client = *Client::Create(MakePipeline(broker->port(), R"(client_id: "lost")"), options);
  raw = client.get();
  client->Connect();
  ASSERT_TRUE(events.WaitFor(ConnectionEvent::Kind::kConnected).has_value());
  broker->Kill();
  ASSERT_EQ(disconnect_future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  std::future<absl::Status> disconnected = disconnect_future.get();
  EXPECT_TRUE(Await(disconnected, absl::Seconds(5)).ok());
  ASSERT_TRUE(
      events.WaitFor(ConnectionEvent::Kind::kDisconnected, 1, absl::Seconds(5)).has_value());
  for (const auto& e : events.Snapshot()) {
    EXPECT_NE(e.first.kind, ConnectionEvent::Kind::kReconnecting)
        << DescribeConnectionEvent(e.first);
  }
  EXPECT_FALSE(client->connected());
}

// Issue 11 #14: a persistent session holding a message above max_packet_size. mosquitto re-delivers
// it at every connection; after 3 connections in a row ended on it the client gives up with a
// permanent kDataLoss naming the topic and size, instead of reconnecting forever.
TEST(ClientTest, OversizeMessageRedeliveredForeverMakesTheClientGiveUp) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  Events events;
  auto small = MakeClient(MakePipeline(broker->port(),
                                       R"(client_id: "small" clean_session: false
                                          max_packet_size: 256)"),
                          &events);
  auto subscribed = small->Subscribe("big/#", 1, [](const mqtt::Message&) {});
  small->Connect();
  ASSERT_TRUE(Await(subscribed).ok());
  auto publisher = MakeClient(MakePipeline(broker->port(), R"(client_id: "big-pub")"), nullptr);
  publisher->Connect();
  EXPECT_TRUE(Await(publisher->Publish("big/t", std::string(1000, 'x'), 1)).ok());
  ASSERT_TRUE(events.WaitFor(ConnectionEvent::Kind::kGaveUp, 1, absl::Seconds(20)).has_value());
  ConnectionEvent gave_up;
  int lost = 0;
  for (const auto& e : events.Snapshot()) {
    if (e.first.kind == ConnectionEvent::Kind::kLost) ++lost;
    if (e.first.kind == ConnectionEvent::Kind::kGaveUp) gave_up = e.first;
  }
  EXPECT_EQ(lost, 3);
  EXPECT_EQ(gave_up.reason.code(), absl::StatusCode::kDataLoss) << gave_up.reason;
  EXPECT_NE(gave_up.reason.message().find("PUBLISH to \"big/t\" of 1012 bytes"), std::string::npos)
      << gave_up.reason;
  EXPECT_FALSE(small->connected());
}

// Issue 11 #6 end to end, over real TCP: a "broker" that answers CONNACK, then never reads again
// but keeps sending. Once every buffer is full, the client must declare it dead at keep-alive +
// ping timeout (virtual time), not spin and not take its messages for PINGRESPs.
TEST(ClientTest, ABrokerThatSendsButStopsReadingIsDeclaredDead) {
  absl::StatusOr<testing::LoopbackListener> listener = testing::ListenOnLoopback();
  ASSERT_TRUE(listener.ok()) << listener.status();
  int small = 4096;
  setsockopt(listener->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  fcntl(listener->fd, F_SETFL, fcntl(listener->fd, F_GETFL) | O_NONBLOCK);
  std::string text = absl::StrCat(
      "endpoint { host: \"127.0.0.1\" port: ", listener->port, " }\n",
      "transports { name: \"tcp\" typed_config { "
      "[type.googleapis.com/hublink.transports.TcpConfig] "
      "{ max_buffered_bytes: 262144 high_water_bytes: 65536 } } }\n",
      "protocol { name: \"mqtt\" typed_config { [type.googleapis.com/hublink.protocols.MqttConfig] "
      "{ client_id: \"stuck\" keep_alive { seconds: 10 } ping_timeout { seconds: 4 } } } }\n");
  absl::StatusOr<Pipeline> config = ParsePipelineText(text, "test");
  ASSERT_TRUE(config.ok()) << config.status();
  auto resolved = ResolvedPipeline::Resolve(*config, TestRegistry());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  DrivenClient c(std::move(resolved).value());
  int got = 0;
  c.client().Subscribe("in", 0, [&](const mqtt::Message&) { ++got; });
  c.client().Connect();
  int fd = -1;
  ASSERT_TRUE(c.RunUntil([&] {
    fd = accept4(listener->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fd >= 0;
  }));
  std::string connect_bytes;
  ASSERT_TRUE(c.RunUntil([&] {
    char buf[512];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) connect_bytes.append(buf, n);
    return connect_bytes.size() >= 2 && connect_bytes.size() >= 2u + connect_bytes[1];
  }));
  ASSERT_EQ(write(fd, "\x20\x02\x00\x00", 4), 4);  // CONNACK; from now on nothing is read
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kConnected));
  // Fill the kernel's buffers and the transport's: until a QoS 0 publish is no longer handed over
  // (the transport is above its soft limit, 64 KiB here; the PINGREQ still gets into its queue).
  const std::string payload(16 << 10, 'x');
  bool refused = false;
  for (int i = 0; i < 4000 && !refused; ++i) {
    // Shared: the completions of publishes still queued run when the client is destroyed, after
    // this iteration's scope.
    auto handed = std::make_shared<bool>(false);
    c.client().Publish("out", payload, 0, false, [handed](const absl::Status&) { *handed = true; });
    refused = !*handed;
    c.loop().RunOnce(absl::ZeroDuration());
  }
  ASSERT_TRUE(refused) << "the buffers never filled";
  // The broker keeps sending (a QoS 0 message to "in") while its reading stays stopped.
  c.clock().Advance(absl::Seconds(7));
  const char publish[] = {0x30, 0x06, 0x00, 0x02, 'i', 'n', 'h', 'i'};
  ASSERT_EQ(write(fd, publish, sizeof(publish)), static_cast<ssize_t>(sizeof(publish)));
  ASSERT_TRUE(c.RunUntil([&] { return got == 1; }));
  c.clock().Advance(absl::Seconds(2));
  c.loop().RunOnce(absl::ZeroDuration());
  EXPECT_EQ(c.Count(ConnectionEvent::Kind::kLost), 0) << "dead before keep-alive + ping timeout";
  long firings = c.clock().firings();
  c.clock().Advance(absl::Seconds(1));
  ASSERT_TRUE(c.WaitFor(ConnectionEvent::Kind::kLost)) << "never declared dead";
  EXPECT_FALSE(c.clock().runaway());
  EXPECT_LE(c.clock().firings() - firings, 2);
  for (const auto& e : c.events()) {
    if (e.first.kind != ConnectionEvent::Kind::kLost) continue;
    EXPECT_EQ(e.first.reason.code(), absl::StatusCode::kDeadlineExceeded) << e.first.reason;
    EXPECT_NE(e.first.reason.message().find("not reading"), std::string::npos) << e.first.reason;
  }
  EXPECT_LE(c.clock().firings(), 6);
  close(fd);
  close(listener->fd);
}

// Loops that spin before sleeping (Options::spin_before_sleep) lose nothing and keep the order.
TEST(ClientTest, ClientsWhoseLoopsSpinDeliverEverythingInOrder) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  Client::Options options;
  options.seed = 42;
  options.spin_before_sleep = absl::Microseconds(200);
  auto subscriber =
      Client::Create(MakePipeline(broker->port(), R"(client_id: "spin-sub")"), options);
  auto publisher =
      Client::Create(MakePipeline(broker->port(), R"(client_id: "spin-pub")"), options);
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  ASSERT_TRUE(publisher.ok()) << publisher.status();
  constexpr int kCount = 2000;
  std::mutex mutex;
  std::vector<int> seen;
  auto subscribed = (*subscriber)->Subscribe("spin/t", 1, [&](const mqtt::Message& message) {
    std::lock_guard<std::mutex> lock(mutex);
    seen.push_back(std::stoi(std::string(message.payload)));
  });
  (*subscriber)->Connect();
  ASSERT_TRUE(Await(subscribed).ok());
  (*publisher)->Connect();
  std::atomic<int> done{0}, failed{0};
  for (int i = 0; i < kCount; ++i) {
    (*publisher)->Publish("spin/t", absl::StrCat(i), 1, false, [&](const absl::Status& status) {
      if (!status.ok()) ++failed;
      ++done;
    });
  }
  ASSERT_TRUE(WaitUntil([&] { return done.load() == kCount; }, absl::Seconds(30)));
  EXPECT_EQ(failed.load(), 0);
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::lock_guard<std::mutex> lock(mutex);
        return seen.size() == static_cast<size_t>(kCount);
      },
      absl::Seconds(30)));
  std::lock_guard<std::mutex> lock(mutex);
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(seen[i], i);
}

// Options::read_moderation. The subscriber runs on a loop this test drives, so each step's packets
// wait in its socket until the test reads them (mosquitto forwards a QoS 1 message before it
// acknowledges it to the publisher). Moderated: a read of two or more packets (a burst of 20), and
// a PUBLISH that follows an earlier one with none of ours in between. Not moderated: requests the
// subscriber answers, however many, and the first message after an answer. Nothing ever with
// read_moderation = 0. Everything arrives, in order.
class ReadModerationTest : public ::testing::TestWithParam<bool> {};

TEST_P(ReadModerationTest, StreamsAreModeratedRequestsAndAnswersAreNot) {
  const bool moderation_on = GetParam();
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  auto loop = *EventLoop::Create();
  Client::Options options;
  options.loop = loop.get();
  if (!moderation_on) options.read_moderation = absl::ZeroDuration();
  auto subscriber =
      *Client::Create(MakePipeline(broker->port(), R"(client_id: "moderated-sub")"), options);
  std::vector<std::string> seen;
  auto subscribed = subscriber->Subscribe("mod/#", 1, [&](const mqtt::Message& m) {
    seen.emplace_back(m.payload);
    if (m.topic == "mod/request") subscriber->Publish("answers", m.payload, 0, false, nullptr);
  });
  subscriber->Connect();
  ASSERT_TRUE(testing::RunUntil(*loop, [&] {
    return subscribed.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }));
  ASSERT_TRUE(subscribed.get().ok());
  loop->RunOnce(absl::ZeroDuration());  // a turn that does not block: any request lapses
  const int64_t moderated_before = loop->moderated_waits();

  auto publisher =
      MakeClient(MakePipeline(broker->port(), R"(client_id: "moderated-pub")"), nullptr);
  publisher->Connect();
  // One message, read alone; then a wait, which a request for moderation would have moderated.
  auto deliver_one = [&](const std::string& topic, const std::string& payload) {
    const size_t count = seen.size();
    ASSERT_TRUE(Await(publisher->Publish(topic, payload, 1)).ok());
    ASSERT_TRUE(testing::RunUntil(*loop, [&] { return seen.size() == count + 1; }));
    loop->RunOnce(absl::Milliseconds(5));
  };
  for (int i = 0; i < 3; ++i) deliver_one("mod/request", absl::StrCat("request ", i));
  deliver_one("mod/t", "after an answer");
  EXPECT_EQ(loop->moderated_waits(), moderated_before) << "a request or answered read moderated";

  deliver_one("mod/t", "unanswered");  // follows an unanswered PUBLISH: a stream
  EXPECT_EQ(loop->moderated_waits(), moderated_before + (moderation_on ? 1 : 0));

  std::vector<std::future<absl::Status>> acked;
  for (int i = 0; i < 20; ++i) acked.push_back(publisher->Publish("mod/t", absl::StrCat(i), 1));
  for (auto& ack : acked) ASSERT_TRUE(Await(ack).ok());
  const int64_t moderated_before_burst = loop->moderated_waits();
  ASSERT_TRUE(testing::RunUntil(*loop, [&] { return seen.size() == 25; }));
  loop->RunOnce(absl::Milliseconds(5));
  if (moderation_on) {
    EXPECT_GT(loop->moderated_waits(), moderated_before_burst);
  } else {
    EXPECT_EQ(loop->moderated_waits(), moderated_before);
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(seen[i + 5], absl::StrCat(i));
  subscriber.reset();  // on the loop thread, with the loop idle
}

// The publisher's side of read_moderation: acknowledgements of a window of QoS 1 publishes are a
// stream even when each read holds one of them (the broker acknowledges as it forwards, so a fast
// publisher meets them one at a time and, without moderation, is woken inside the broker's write
// for every one). faultproxy hands the broker's bytes on in 4-byte segments 30 ms apart, so every
// PUBACK is read alone. Moderated: a read of one PUBACK while two or more of ours still await
// theirs. Not moderated: a single publish and its PUBACK, and the window's last acknowledgements.
TEST_P(ReadModerationTest, AcknowledgementsOfAWindowAreModeratedOneAtATime) {
  const bool moderation_on = GetParam();
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  auto proxy = faultproxy::testing::RunningProxy::Start(broker->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  faultproxy::testing::ControlClient control((*proxy)->control_port());
  ASSERT_TRUE(control.ok());
  auto loop = *EventLoop::Create();
  Client::Options options;
  options.loop = loop.get();
  if (!moderation_on) options.read_moderation = absl::ZeroDuration();
  auto publisher =
      *Client::Create(MakePipeline((*proxy)->port(), R"(client_id: "window-pub")"), options);
  publisher->Connect();
  ASSERT_TRUE(testing::RunUntil(*loop, [&] { return publisher->connected(); }));
  // Every packet the broker sends from here on is a 4-byte PUBACK.
  const std::string reply = control.Command("segment size=4 gap=30ms dir=down");
  ASSERT_TRUE(absl::StartsWith(reply, "ok")) << reply;

  auto publish_and_drain = [&](int count) {
    std::vector<std::future<absl::Status>> acked;
    for (int i = 0; i < count; ++i) {
      acked.push_back(publisher->Publish("window/t", absl::StrCat(i), 1));
    }
    ASSERT_TRUE(testing::RunUntil(*loop, [&] {
      for (auto& ack : acked) {
        if (ack.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return false;
      }
      return true;
    }));
    for (auto& ack : acked) EXPECT_TRUE(ack.get().ok());
  };
  publish_and_drain(1);
  loop->RunOnce(absl::Milliseconds(5));
  const int64_t after_single = loop->moderated_waits();

  publish_and_drain(8);
  const int64_t after_window = loop->moderated_waits();
  loop->RunOnce(absl::Milliseconds(5));  // after the last PUBACK: nothing more is coming
  EXPECT_EQ(loop->moderated_waits(), after_window);
  if (moderation_on) {
    EXPECT_EQ(after_single, 0) << "a single publish and its PUBACK were moderated";
    // PUBACKs 1-6 leave 7 to 2 awaiting (the first has no pace yet); the 7th leaves 1, the 8th
    // none.
    EXPECT_GE(after_window, 1) << "no PUBACK of a window of 8 was moderated";
  } else {
    EXPECT_EQ(after_window, 0);
  }
  publisher.reset();  // on the loop thread, with the loop idle
}

INSTANTIATE_TEST_SUITE_P(OnAndOff, ReadModerationTest, ::testing::Bool());

TEST(ClientTest, NegativeLoopTuningIsRefused) {
  Client::Options options;
  options.read_moderation = -absl::Microseconds(1);
  auto client = Client::Create(MakePipeline(1883, R"(client_id: "negative")"), options);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(client.status().message(), "read_moderation")) << client.status();
}

TEST(ClientTest, PublishesFromSeveralThreadsKeepEachThreadsOrder) {
  auto broker = Broker::Start();
  ASSERT_NE(broker, nullptr);
  auto subscriber = MakeClient(MakePipeline(broker->port(), R"(client_id: "order-sub")"), nullptr);
  constexpr int kThreads = 4, kEach = 2000;
  std::mutex mutex;
  std::map<std::string, std::vector<int>> seen;  // topic -> sequence numbers in arrival order
  auto subscribed = subscriber->Subscribe("order/#", 1, [&](const mqtt::Message& message) {
    std::lock_guard<std::mutex> lock(mutex);
    seen[std::string(message.topic)].push_back(std::stoi(std::string(message.payload)));
  });
  subscriber->Connect();
  ASSERT_TRUE(Await(subscribed).ok());
  auto publisher = MakeClient(
      MakePipeline(broker->port(), R"(client_id: "order-pub" max_inflight: 64)"), nullptr);
  publisher->Connect();
  std::atomic<int> done{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string topic = absl::StrCat("order/", t);
      for (int i = 0; i < kEach; ++i) {
        publisher->Publish(topic, absl::StrCat(i), 1, false, [&](const absl::Status& status) {
          if (!status.ok()) ++failed;
          ++done;
        });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(WaitUntil([&] { return done.load() == kThreads * kEach; }, absl::Seconds(60)));
  EXPECT_EQ(failed.load(), 0);
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::lock_guard<std::mutex> lock(mutex);
        size_t total = 0;
        for (const auto& entry : seen) total += entry.second.size();
        return total == static_cast<size_t>(kThreads * kEach);
      },
      absl::Seconds(30)));
  std::lock_guard<std::mutex> lock(mutex);
  ASSERT_EQ(seen.size(), static_cast<size_t>(kThreads));
  for (const auto& [topic, sequence] : seen) {
    std::vector<int> expected(kEach);
    for (int i = 0; i < kEach; ++i) expected[i] = i;
    EXPECT_EQ(sequence, expected) << topic << " arrived out of order";
  }
}

}  // namespace
}  // namespace hublink
