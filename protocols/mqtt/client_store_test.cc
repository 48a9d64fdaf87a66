// hublink::Client with MqttConfig.store.file (issue 13): what the client accepted into the durable
// store survives the client, and the next client on the same directory sends it after CONNACK, in
// order, each message in the phase it had reached (PUBLISH with DUP, PUBREL past PUBREC).
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "protocols/mqtt/client.h"
#include "protocols/mqtt/codec.h"
#include "protocols/mqtt/file_store/file_store.h"
#include "protocols/mqtt/mqtt_protocol.h"
#include "tests/test_util.h"
#include "transports/tcp/tcp_transport.h"

namespace hublink {
namespace {

const Registry& TestRegistry() {
  static const Registry* registry = [] {
    Registry::Builder builder;
    RegisterTcpTransport(builder);
    RegisterMqttProtocol(builder);
    return new Registry(*std::move(builder).Build());
  }();
  return *registry;
}

std::shared_ptr<const ResolvedPipeline> MakePipeline(int port, absl::string_view mqtt_fields) {
  std::string text = absl::StrCat(
      "endpoint { host: \"127.0.0.1\" port: ", port, " }\n", "transports { name: \"tcp\" }\n",
      "protocol { name: \"mqtt\" typed_config { [type.googleapis.com/hublink.protocols.MqttConfig] "
      "{",
      mqtt_fields, "} } }\n",
      "policy { handshake_timeout { seconds: 2 } reconnect { initial_delay { nanos: 50000000 } "
      "max_delay { nanos: 200000000 } } }\n");
  absl::StatusOr<Pipeline> config = ParsePipelineText(text, "test");
  EXPECT_TRUE(config.ok()) << config.status();
  auto resolved = ResolvedPipeline::Resolve(*config, TestRegistry());
  EXPECT_TRUE(resolved.ok()) << resolved.status();
  return std::shared_ptr<const ResolvedPipeline>(std::move(resolved).value());
}

std::string StoreFields(const std::string& dir, absl::string_view extra = "") {
  return absl::StrCat("client_id: \"pub\" store { file { path: \"", dir, "\" ", extra, " } }");
}

std::string FreshDir(absl::string_view name) {
  static int n = 0;
  return absl::StrCat(testing::TempDir(), "/", name, "_", getpid(), "_", n++);
}

// Messages a subscriber client received, waited on from the test thread.
class Received {
 public:
  void Add(const mqtt::Message& m) {
    std::lock_guard<std::mutex> lock(mutex_);
    payloads_.push_back(std::string(m.payload));
  }
  bool WaitFor(size_t count, absl::Duration timeout = absl::Seconds(20)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (payloads_.size() >= count) return true;
      }
      absl::SleepFor(absl::Milliseconds(5));  // polling a condition, bounded by the deadline
    }
    return false;
  }
  std::vector<std::string> Get() {
    std::lock_guard<std::mutex> lock(mutex_);
    return payloads_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> payloads_;
};

// (b) Publishes accepted into the file store while the broker is unreachable survive the client;
// a new client on the same directory delivers them all, in order, after its CONNACK.
TEST(ClientStore, AcceptedPublishesSurviveTheClientAndGoOutInOrder) {
  auto broker = testing::MosquittoBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  const int port = (*broker)->tcp_port();
  const std::string dir = FreshDir("outbox");
  constexpr int kCount = 200;

  Received received;
  auto sub = Client::Create(MakePipeline(port, "client_id: \"sub\""), Client::Options());
  ASSERT_TRUE(sub.ok()) << sub.status();
  (*sub)->Connect();
  ASSERT_TRUE((*sub)
                  ->Subscribe("outbox/#", 1, [&](const mqtt::Message& m) { received.Add(m); })
                  .get()
                  .ok());

  {
    // Nothing listens on this port: every publish waits in the store.
    int dead_port = *testing::PickFreePort();
    auto pub = Client::Create(MakePipeline(dead_port, StoreFields(dir)), Client::Options());
    ASSERT_TRUE(pub.ok()) << pub.status();
    (*pub)->Connect();
    // A second client on the same directory is refused: the store is locked.
    auto second = Client::Create(MakePipeline(dead_port, StoreFields(dir)), Client::Options());
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
    std::vector<std::future<absl::Status>> done;
    for (int i = 0; i < kCount; ++i) {
      done.push_back((*pub)->Publish("outbox/t", absl::StrCat("m", i), 1));
    }
    EXPECT_EQ((*pub)->Pending().get(), static_cast<size_t>(kCount)) << "all in the store";
    pub->reset();  // destroyed with the broker out of reach
    for (auto& f : done) {
      absl::Status s = f.get();
      EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
    }
  }
  {
    auto stored = mqtt::FileMessageStore::Open([&] {
      mqtt::FileStoreConfig c;
      c.set_path(dir);
      return c;
    }());
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ((*stored)->size(), static_cast<size_t>(kCount));
  }

  auto pub = Client::Create(MakePipeline(port, StoreFields(dir)), Client::Options());
  ASSERT_TRUE(pub.ok()) << pub.status();
  (*pub)->Connect();
  ASSERT_TRUE(received.WaitFor(kCount));
  // The sentinel goes after everything recovered: once it is acknowledged, the store is empty.
  ASSERT_TRUE((*pub)->Publish("outbox/t", "last", 1).get().ok());
  EXPECT_EQ((*pub)->Pending().get(), 0u);
  ASSERT_TRUE(received.WaitFor(kCount + 1));
  std::vector<std::string> got = received.Get();
  ASSERT_EQ(got.size(), static_cast<size_t>(kCount + 1));
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(got[i], absl::StrCat("m", i)) << i;
  EXPECT_EQ(got[kCount], "last");
  EXPECT_TRUE((*pub)->Disconnect().get().ok());
  pub->reset();
  auto stored = mqtt::FileMessageStore::Open([&] {
    mqtt::FileStoreConfig c;
    c.set_path(dir);
    return c;
  }());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*stored)->size(), 0u);
}

// A broker of our own on a raw socket: answers CONNECT with CONNACK (session present) and records
// what the client sends next, decoded.
class ScriptedBroker {
 public:
  ScriptedBroker() {
    listener_ = *testing::ListenOnLoopback();
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedBroker() {
    stop_ = true;
    ::shutdown(listener_.fd, SHUT_RDWR);
    if (conn_ >= 0) ::shutdown(conn_, SHUT_RDWR);
    thread_.join();
    ::close(listener_.fd);
    if (conn_ >= 0) ::close(conn_);
  }
  int port() const { return listener_.port; }
  std::vector<std::string> WaitFor(size_t count, absl::Duration timeout = absl::Seconds(10)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (packets_.size() >= count) return packets_;
      }
      absl::SleepFor(absl::Milliseconds(5));  // polling a condition, bounded by the deadline
    }
    std::lock_guard<std::mutex> lock(mutex_);
    return packets_;
  }

 private:
  void Serve() {
    int fd = ::accept(listener_.fd, nullptr, nullptr);
    if (fd < 0) return;
    conn_ = fd;
    mqtt::Decoder decoder(1 << 20, mqtt::Decoder::Role::kServer);
    char buf[4096];
    while (!stop_) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) return;
      absl::Status fed = decoder.Feed(absl::string_view(buf, n), [&](const mqtt::Packet& p) {
        std::string out;
        std::string text;
        switch (p.type) {
          case mqtt::PacketType::kConnect:
            mqtt::AppendConnack(/*session_present=*/true, 0, &out);
            text = "CONNECT";
            break;
          case mqtt::PacketType::kPublish:
            text = absl::StrCat("PUBLISH ", p.payload, " id=", p.packet_id, " dup=", p.dup ? 1 : 0,
                                " qos=", p.qos);
            break;
          case mqtt::PacketType::kPubrel:
            text = absl::StrCat("PUBREL id=", p.packet_id);
            break;
          default:
            text = absl::StrCat("type ", static_cast<int>(p.type));
        }
        if (!out.empty()) (void)!::write(fd, out.data(), out.size());
        std::lock_guard<std::mutex> lock(mutex_);
        packets_.push_back(text);
        return absl::OkStatus();
      });
      if (!fed.ok()) return;
    }
  }

  testing::LoopbackListener listener_;
  std::atomic<bool> stop_{false};
  std::atomic<int> conn_{-1};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> packets_;
};

// (c) A store left by a process that died mid-flow: a QoS 2 message past PUBREC (PUBREL is what
// goes again), QoS 1 and QoS 2 messages awaiting their acknowledgement (PUBLISH again with DUP and
// the same id), and a queued one (a new PUBLISH), in that original order, after CONNACK with the
// session present.
TEST(ClientStore, RecoveredPhasesResumeWhereTheyStopped) {
  const std::string dir = FreshDir("phases");
  {
    mqtt::FileStoreConfig c;
    c.set_path(dir);
    auto store = mqtt::FileMessageStore::Open(c);
    ASSERT_TRUE(store.ok()) << store.status();
    auto add = [&](uint64_t seq, uint8_t qos, mqtt::StoredMessage::Phase phase, uint16_t id) {
      mqtt::StoredMessage m;
      m.seq = seq;
      m.qos = qos;
      m.topic = "t";
      m.payload = absl::StrCat("s", seq);
      ASSERT_TRUE((*store)->Add(m).ok());
      if (phase != mqtt::StoredMessage::Phase::kQueued) {
        ASSERT_TRUE((*store)->SetPhase(seq, phase, id).ok());
      }
    };
    add(1, 2, mqtt::StoredMessage::Phase::kAwaitingComp, 11);
    add(2, 1, mqtt::StoredMessage::Phase::kAwaitingAck, 12);
    add(3, 2, mqtt::StoredMessage::Phase::kAwaitingAck, 13);
    add(4, 1, mqtt::StoredMessage::Phase::kQueued, 0);
  }
  ScriptedBroker broker;
  auto client =
      Client::Create(MakePipeline(broker.port(), StoreFields(dir, "") + " clean_session: false"),
                     Client::Options());
  ASSERT_TRUE(client.ok()) << client.status();
  (*client)->Connect();
  std::vector<std::string> packets = broker.WaitFor(5);
  ASSERT_EQ(packets.size(), 5u) << ::testing::PrintToString(packets);
  EXPECT_EQ(packets[0], "CONNECT");
  EXPECT_EQ(packets[1], "PUBREL id=11");
  EXPECT_EQ(packets[2], "PUBLISH s2 id=12 dup=1 qos=1");
  EXPECT_EQ(packets[3], "PUBLISH s3 id=13 dup=1 qos=2");
  EXPECT_EQ(packets[4].substr(0, 11), "PUBLISH s4 ");
  EXPECT_NE(packets[4].find("dup=0 qos=1"), std::string::npos) << packets[4];
  client->reset();
}

// Store health reaches Options::on_store_event; a message the file store drops under DROP_OLDEST
// completes with kResourceExhausted, and one it rejects (full, REJECT_NEW) fails at once.
TEST(ClientStore, StoreEventsAndOverflowReachTheApplication) {
  for (bool drop_oldest : {true, false}) {
    const std::string dir = FreshDir("full");
    std::mutex mutex;
    std::vector<mqtt::FileStoreEvent::Kind> kinds;
    Client::Options options;
    options.on_store_event = [&](const mqtt::FileStoreEvent& e) {
      std::lock_guard<std::mutex> lock(mutex);
      kinds.push_back(e.kind);
    };
    auto client = Client::Create(
        MakePipeline(*testing::PickFreePort(),
                     StoreFields(dir, absl::StrCat("max_messages: 2 overflow: ",
                                                   drop_oldest ? "DROP_OLDEST" : "REJECT_NEW"))),
        std::move(options));
    ASSERT_TRUE(client.ok()) << client.status();
    std::future<absl::Status> first = (*client)->Publish("t", "1", 1);
    std::future<absl::Status> second = (*client)->Publish("t", "2", 1);
    std::future<absl::Status> third = (*client)->Publish("t", "3", 1);
    EXPECT_EQ((*client)->Pending().get(), 2u);
    if (drop_oldest) {
      absl::Status s = first.get();
      EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
      EXPECT_NE(s.message().find("dropped by the store's overflow policy"), std::string::npos) << s;
      std::lock_guard<std::mutex> lock(mutex);
      EXPECT_NE(std::find(kinds.begin(), kinds.end(), mqtt::FileStoreEvent::Kind::kMessageDropped),
                kinds.end());
    } else {
      absl::Status s = third.get();
      EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
      std::lock_guard<std::mutex> lock(mutex);
      EXPECT_NE(std::find(kinds.begin(), kinds.end(), mqtt::FileStoreEvent::Kind::kStoreFull),
                kinds.end());
    }
    client->reset();
  }
}

// A store that cannot be opened fails Create with the store's status.
TEST(ClientStore, CreateFailsWhenTheStoreDoesNotOpen) {
  const std::string file = FreshDir("not_a_dir");
  ASSERT_TRUE(testing::WriteFile(file, "x").ok());
  auto client = Client::Create(MakePipeline(1, StoreFields(file + "/sub")), Client::Options());
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.status().message().find("file_store"), std::string::npos) << client.status();
}

}  // namespace
}  // namespace hublink
