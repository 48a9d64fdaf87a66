#include "protocols/mqtt/session.h"

#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/signer.h"
#include "protocols/mqtt/codec.h"
#include "tests/test_util.h"

// Counts heap allocations on this thread, so a test can prove the QoS 0 paths allocate nothing.
namespace {
thread_local long allocations = 0;
}
void* operator new(size_t size) {
  ++allocations;
  void* p = std::malloc(size ? size : 1);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace hublink {
namespace mqtt {
namespace {

using ::hublink::testing::RunUntil;

class FakeLink : public ProtocolLink {
 public:
  explicit FakeLink(EventLoop& loop) : context_(loop, "broker.test", 1883) {}
  absl::Status Write(absl::string_view bytes) override {
    if (closed.has_value()) return absl::FailedPreconditionError("closed");
    if (refuse_writes) return absl::ResourceExhaustedError("full");
    written.append(bytes.data(), bytes.size());
    ++writes;
    if (soft_limit_after_writes >= 0 && writes >= soft_limit_after_writes) above_soft_limit = true;
    return absl::OkStatus();
  }
  size_t BufferedBytes() const override { return buffered; }
  bool AboveSoftLimit() const override { return above_soft_limit; }
  void Close(const absl::Status& reason) override {
    if (!closed.has_value()) closed = reason;
  }
  ConnectContext& context() override { return context_; }

  ConnectContext context_;
  std::string written;
  absl::optional<absl::Status> closed;
  bool refuse_writes = false;
  bool above_soft_limit = false;     // the transports owe an OnLinkWritable
  int soft_limit_after_writes = -1;  // >= 0: above_soft_limit turns true once writes reaches it
  int writes = 0;                    // accepted Write() calls
  size_t buffered = 0;  // what BufferedBytes() reports: bytes not yet handed to the kernel
};

// What the session wrote, decoded the way a broker would.
struct Sent {
  PacketType type;
  uint16_t id = 0;
  bool dup = false;
  uint8_t qos = 0;
  bool retain = false;
  std::string topic;
  std::string payload;
  ConnectFields connect;
  std::vector<std::pair<std::string, uint8_t>> subscribe;
  std::vector<std::string> unsubscribe;
};

class CountingSigner : public Signer {
 public:
  absl::StatusOr<Credentials> Sign(const SignRequest& request) override {
    ++calls;
    last = request;
    if (fail) return absl::UnauthenticatedError("hmac: key expired");
    Credentials c;
    c.client_id = "signed-" + std::to_string(calls);
    c.username = "user-" + std::to_string(calls);
    c.password = "secret-" + std::to_string(calls);
    return c;
  }
  int calls = 0;
  bool fail = false;
  SignRequest last;
};

// What the session told its owner, with the session's state at that moment.
class RecordingObserver : public SessionObserver {
 public:
  void OnSessionUp(bool session_present) override {
    ++ups;
    events.push_back("up");
  }
  void OnSubscriptionLost(absl::string_view filter, const absl::Status& status) override {
    events.push_back("lost " + std::string(filter));
  }
  void OnPermanentError(const absl::Status& status) override {
    permanent.push_back(status);
    events.push_back("permanent");
  }
  int ups = 0;
  std::vector<std::string> events;
  std::vector<absl::Status> permanent;
};

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_ = *EventLoop::Create();
    options_.client_id = "dev1";
    options_.username = "u";
    options_.password = "p";
    // These tests read each packet as the session writes it; coalesced writes (the default) have
    // tests of their own, which run the loop turn that flushes them.
    options_.coalesce_writes = false;
  }

  Session& session() {
    if (session_ == nullptr) {
      if (store_ == nullptr) store_ = std::make_unique<MemoryMessageStore>();
      session_ = std::make_unique<Session>(clock_, options_, std::move(store_));
      session_->set_observer(&observer_);
    }
    return *session_;
  }

  // Opens a new link and returns what the session sent on it (the CONNECT).
  std::vector<Sent> Open() {
    link_ = std::make_unique<FakeLink>(*loop_);
    if (signer_ != nullptr) link_->context_.set_signer(signer_.get());
    session().OnLinkOpen(*link_);
    return TakeSent();
  }

  std::vector<Sent> Connack(bool session_present = false, uint8_t rc = 0) {
    std::string bytes;
    AppendConnack(session_present, rc, &bytes);
    session().OnLinkData(bytes);
    return TakeSent();
  }

  void CloseLink(absl::Status status = absl::UnavailableError("tcp: reset")) {
    session().OnLinkClosed(status);
  }

  std::vector<Sent> Feed(const std::string& bytes) {
    session().OnLinkData(bytes);
    return TakeSent();
  }

  std::vector<Sent> TakeSent() {
    std::vector<Sent> out;
    if (link_ == nullptr) return out;
    // With coalesce_writes, what this turn wrote reaches the link at its end.
    if (options_.coalesce_writes) loop_->RunOnce(absl::ZeroDuration());
    Decoder decoder(64 << 20, Decoder::Role::kServer);
    absl::Status status = decoder.Feed(link_->written, [&](const Packet& p) {
      Sent s;
      s.type = p.type;
      s.id = p.packet_id;
      s.dup = p.dup;
      s.qos = p.qos;
      s.retain = p.retain;
      s.topic = std::string(p.topic);
      s.payload = std::string(p.payload);
      if (p.type == PacketType::kConnect) s.connect = *ParseConnect(p);
      if (p.type == PacketType::kSubscribe) s.subscribe = *ParseSubscribe(p);
      if (p.type == PacketType::kUnsubscribe) s.unsubscribe = *ParseUnsubscribe(p);
      out.push_back(std::move(s));
      return absl::OkStatus();
    });
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(decoder.buffered(), 0u);
    link_->written.clear();
    return out;
  }

  std::string Ack(PacketType type, uint16_t id) {
    std::string s;
    AppendAck(type, id, &s);
    return s;
  }
  std::string Pub(absl::string_view topic, absl::string_view payload, uint8_t qos, uint16_t id,
                  bool dup = false) {
    std::string s;
    EXPECT_TRUE(AppendPublish({topic, payload, qos, false, dup, id}, &s).ok());
    return s;
  }

  std::unique_ptr<EventLoop> loop_;
  // Every session timer runs in virtual time: tests advance it, nothing waits on the wall clock.
  ManualClock clock_;
  RecordingObserver observer_;
  std::unique_ptr<MessageStore> store_ = std::make_unique<MemoryMessageStore>();
  SessionOptions options_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<FakeLink> link_;
  std::unique_ptr<CountingSigner> signer_;
};

TEST_F(SessionTest, ConnectCarriesConfiguredCredentials) {
  options_.keep_alive = absl::Seconds(45);
  options_.clean_session = false;
  std::vector<Sent> sent = Open();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].type, PacketType::kConnect);
  EXPECT_EQ(sent[0].connect.client_id, "dev1");
  EXPECT_EQ(sent[0].connect.username.value_or("-"), "u");
  EXPECT_EQ(sent[0].connect.password.value_or("-"), "p");
  EXPECT_EQ(sent[0].connect.keep_alive_seconds, 45);
  EXPECT_FALSE(sent[0].connect.clean_session);
  EXPECT_FALSE(session().up());
  Connack();
  EXPECT_TRUE(session().up());
}

TEST_F(SessionTest, SignerIsAskedAtEveryAttemptWithServerTimeAndHost) {
  signer_ = std::make_unique<CountingSigner>();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    link_ = std::make_unique<FakeLink>(*loop_);
    link_->context_.set_signer(signer_.get());
    link_->context_.set_server_clock_offset(absl::Hours(2));
    session().OnLinkOpen(*link_);
    std::vector<Sent> sent = TakeSent();
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].connect.client_id, "signed-" + std::to_string(attempt));
    EXPECT_EQ(sent[0].connect.username.value_or(""), "user-" + std::to_string(attempt));
    EXPECT_EQ(sent[0].connect.password.value_or(""), "secret-" + std::to_string(attempt));
    EXPECT_EQ(signer_->calls, attempt);
    EXPECT_EQ(signer_->last.host, "broker.test");
    EXPECT_LT(absl::AbsDuration(signer_->last.now - (absl::Now() + absl::Hours(2))),
              absl::Seconds(5));
    CloseLink();
  }
}

TEST_F(SessionTest, SignerFailureClosesTheLinkWithItsReason) {
  signer_ = std::make_unique<CountingSigner>();
  signer_->fail = true;
  Open();
  ASSERT_TRUE(link_->closed.has_value());
  EXPECT_EQ(link_->closed->code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(link_->closed->message(), "mqtt: signer: hmac: key expired");
}

TEST_F(SessionTest, ConnackRefusalsMapToActionableErrors) {
  struct {
    uint8_t rc;
    absl::StatusCode code;
    const char* prefix;
  } cases[] = {
      {1, absl::StatusCode::kFailedPrecondition,
       "mqtt: broker refused the connection: unacceptable"},
      {2, absl::StatusCode::kInvalidArgument,
       "mqtt: broker rejected client id \"dev1\" (CONNACK 2)"},
      {3, absl::StatusCode::kUnavailable, "mqtt: broker unavailable (CONNACK 3)"},
      {4, absl::StatusCode::kUnauthenticated, "mqtt: broker refused credentials (CONNACK 4)"},
      {5, absl::StatusCode::kPermissionDenied,
       "mqtt: broker refused the connection: not authorized"},
  };
  for (const auto& c : cases) {
    Open();
    Connack(false, c.rc);
    ASSERT_TRUE(link_->closed.has_value()) << c.rc;
    EXPECT_EQ(link_->closed->code(), c.code);
    EXPECT_EQ(link_->closed->message().substr(0, strlen(c.prefix)), c.prefix);
    EXPECT_EQ(link_->closed->message().find("\"p\""), absl::string_view::npos);
    EXPECT_FALSE(session().up());
    CloseLink(*link_->closed);
  }
}

TEST_F(SessionTest, PacketsBeforeConnackAreAProtocolError) {
  Open();
  Feed(Ack(PacketType::kPuback, 1));
  ASSERT_TRUE(link_->closed.has_value());
  EXPECT_EQ(link_->closed->message(), "mqtt: PUBACK before CONNACK");
}

TEST_F(SessionTest, MalformedInputClosesTheLinkWithTheDecoderError) {
  Open();
  Connack();
  Feed(std::string("\x30\x03\x00\x05\x61", 5));
  ASSERT_TRUE(link_->closed.has_value());
  EXPECT_EQ(link_->closed->code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(link_->closed->message(),
            "mqtt: PUBLISH: topic: truncated string: length 5 but only 1 bytes left in the packet");
}

TEST_F(SessionTest, Qos0Qos1Qos2OutgoingFlows) {
  Open();
  Connack();
  std::vector<absl::Status> done(3, absl::UnknownError("pending"));
  session().Publish("t/0", "zero", 0, false, [&](const absl::Status& s) { done[0] = s; });
  session().Publish("t/1", "one", 1, true, [&](const absl::Status& s) { done[1] = s; });
  session().Publish("t/2", "two", 2, false, [&](const absl::Status& s) { done[2] = s; });
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0].qos, 0);
  EXPECT_EQ(sent[1].qos, 1);
  EXPECT_TRUE(sent[1].retain);
  EXPECT_EQ(sent[2].qos, 2);
  EXPECT_TRUE(done[0].ok());
  EXPECT_EQ(done[1].code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(session().inflight(), 2u);

  EXPECT_TRUE(Feed(Ack(PacketType::kPuback, sent[1].id)).empty());
  EXPECT_TRUE(done[1].ok());
  sent = Feed(Ack(PacketType::kPubrec, sent[2].id));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].type, PacketType::kPubrel);
  EXPECT_EQ(done[2].code(), absl::StatusCode::kUnknown) << "QoS 2 completes on PUBCOMP, not PUBREC";
  Feed(Ack(PacketType::kPubcomp, sent[0].id));
  EXPECT_TRUE(done[2].ok());
  EXPECT_EQ(session().inflight(), 0u);
}

TEST_F(SessionTest, InflightWindowHoldsBackFurtherPublishes) {
  options_.max_inflight = 2;
  Open();
  Connack();
  for (int i = 0; i < 5; ++i) session().Publish("t", std::to_string(i), 1, false, nullptr);
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(session().queued(), 3u);
  sent = Feed(Ack(PacketType::kPuback, sent[0].id));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].payload, "2");
}

TEST_F(SessionTest, PacketIdsSkipIdsStillInUse) {
  options_.max_inflight = 65535;
  options_.max_queued_messages = 1 << 20;
  Open();
  Connack();
  session().Publish("t", "held", 1, false, nullptr);  // packet id 1, never acknowledged
  std::vector<Sent> first = TakeSent();
  ASSERT_EQ(first[0].id, 1);
  // Cycle through every other id, acknowledging each at once.
  for (int i = 0; i < 65534; ++i) {
    session().Publish("t", "x", 1, false, nullptr);
    std::vector<Sent> sent = TakeSent();
    ASSERT_EQ(sent.size(), 1u);
    session().OnLinkData(Ack(PacketType::kPuback, sent[0].id));
  }
  session().Publish("t", "wrapped", 1, false, nullptr);
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].id, 2) << "id 1 is still in flight and must be skipped";
}

TEST_F(SessionTest, UnackedPublishesResentWithDupWhenTheSessionSurvived) {
  options_.clean_session = false;
  Open();
  Connack();
  absl::Status q1 = absl::UnknownError("pending"), q2 = q1;
  session().Publish("a", "1", 1, false, [&](const absl::Status& s) { q1 = s; });
  session().Publish("b", "2", 2, false, [&](const absl::Status& s) { q2 = s; });
  session().Publish("c", "3", 2, false, nullptr);
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 3u);
  Feed(Ack(PacketType::kPubrec, sent[2].id));  // "c" is now waiting for PUBCOMP
  CloseLink();
  EXPECT_FALSE(q1.ok());

  Open();
  std::vector<Sent> resent = Connack(/*session_present=*/true);
  ASSERT_EQ(resent.size(), 3u);
  EXPECT_EQ(resent[0].type, PacketType::kPublish);
  EXPECT_TRUE(resent[0].dup);
  EXPECT_EQ(resent[0].id, sent[0].id);
  EXPECT_EQ(resent[1].type, PacketType::kPublish);
  EXPECT_TRUE(resent[1].dup);
  EXPECT_EQ(resent[1].id, sent[1].id);
  EXPECT_EQ(resent[2].type, PacketType::kPubrel);
  EXPECT_EQ(resent[2].id, sent[2].id);
  Feed(Ack(PacketType::kPuback, sent[0].id));
  EXPECT_TRUE(q1.ok());
}

TEST_F(SessionTest, UnackedPublishesResentAsNewWhenTheSessionWasLost) {
  Open();
  Connack();
  absl::Status c3 = absl::UnknownError("pending");
  session().Publish("a", "1", 1, false, nullptr);
  session().Publish("b", "2", 2, false, nullptr);
  session().Publish("c", "3", 2, false, [&](const absl::Status& s) { c3 = s; });
  std::vector<Sent> sent = TakeSent();
  Feed(Ack(PacketType::kPubrec, sent[2].id));
  TakeSent();
  CloseLink();
  session().Publish("d", "4", 1, false, nullptr);  // queued while down: goes after the re-sent ones

  Open();
  std::vector<Sent> resent = Connack(/*session_present=*/false);
  ASSERT_EQ(resent.size(), 3u);
  EXPECT_EQ(resent[0].topic, "a");
  EXPECT_FALSE(resent[0].dup);
  EXPECT_EQ(resent[1].topic, "b");
  EXPECT_FALSE(resent[1].dup);
  EXPECT_EQ(resent[2].topic, "d");
  // The broker had accepted "c" (PUBREC): re-sending it could deliver it twice; its fate is
  // unknown.
  EXPECT_EQ(c3.code(), absl::StatusCode::kAborted);
}

TEST_F(SessionTest, IncomingQos2DuplicatesAreNotDeliveredTwice) {
  Open();
  Connack();
  std::vector<std::string> got;
  session().Subscribe(
      "in/#", 2, [&](const Message& m) { got.emplace_back(m.payload); }, nullptr);
  TakeSent();
  std::vector<Sent> sent = Feed(Pub("in/x", "once", 2, 5));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].type, PacketType::kPubrec);
  sent = Feed(Pub("in/x", "once", 2, 5, /*dup=*/true));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].type, PacketType::kPubrec);
  EXPECT_EQ(got.size(), 1u);
  sent = Feed(Ack(PacketType::kPubrel, 5));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].type, PacketType::kPubcomp);
  Feed(Pub("in/x", "again", 2, 5));  // id 5 released: a new message
  EXPECT_EQ(got, (std::vector<std::string>{"once", "again"}));
}

TEST_F(SessionTest, IncomingQos1IsAcknowledgedAfterTheHandler) {
  Open();
  Connack();
  int calls = 0;
  session().Subscribe(
      "a/+", 1,
      [&](const Message& m) {
        ++calls;
        EXPECT_TRUE(link_->written.empty()) << "PUBACK must follow delivery";
      },
      nullptr);
  TakeSent();
  std::vector<Sent> sent = Feed(Pub("a/b", "x", 1, 9));
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].type, PacketType::kPuback);
  EXPECT_EQ(sent[0].id, 9);
}

TEST_F(SessionTest, SubscriptionsDispatchRestoreAndReportRefusals) {
  Open();
  Connack();
  std::vector<std::string> wild, sys, exact;
  absl::Status ok_done = absl::UnknownError("pending"), refused = ok_done;
  session().Subscribe(
      "#", 0, [&](const Message& m) { wild.emplace_back(m.topic); },
      [&](const absl::Status& s) { ok_done = s; });
  session().Subscribe(
      "$sys/+/r", 1, [&](const Message& m) { sys.emplace_back(m.topic); }, nullptr);
  session().Subscribe(
      "a/b", 1, [&](const Message& m) { exact.emplace_back(m.topic); }, nullptr);
  session().Subscribe("forbidden/#", 0, nullptr, [&](const absl::Status& s) { refused = s; });
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 4u);
  const uint8_t granted[] = {0};
  const uint8_t granted1[] = {1};
  const uint8_t failure[] = {kSubackFailure};
  std::string acks;
  AppendSuback(sent[0].id, granted, &acks);
  AppendSuback(sent[1].id, granted1, &acks);
  AppendSuback(sent[2].id, granted1, &acks);
  AppendSuback(sent[3].id, failure, &acks);
  Feed(acks);
  EXPECT_TRUE(ok_done.ok());
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(refused.message(),
            "mqtt: broker refused subscription to \"forbidden/#\" (SUBACK 0x80)");

  Feed(Pub("$sys/op/r", "", 0, 0));
  Feed(Pub("a/b", "", 0, 0));
  EXPECT_EQ(wild, (std::vector<std::string>{"a/b"})) << "'#' must not match $ topics";
  EXPECT_EQ(sys, (std::vector<std::string>{"$sys/op/r"}));
  EXPECT_EQ(exact, (std::vector<std::string>{"a/b"}));

  // Every subscription (but the refused one) comes back after a reconnect, in one SUBSCRIBE.
  CloseLink();
  Open();
  std::vector<Sent> restored = Connack();
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_EQ(restored[0].type, PacketType::kSubscribe);
  EXPECT_EQ(restored[0].subscribe,
            (std::vector<std::pair<std::string, uint8_t>>{{"#", 0}, {"$sys/+/r", 1}, {"a/b", 1}}));
}

TEST_F(SessionTest, ManySubscriptionsRestoredWithinThePacketSizeLimit) {
  options_.max_packet_size = 1024;
  Open();
  Connack();
  for (int i = 0; i < 500; ++i) {
    session().Subscribe("devices/" + std::to_string(i) + "/data", 1, nullptr, nullptr);
  }
  TakeSent();
  CloseLink();
  Open();
  std::vector<Sent> restored = Connack();
  size_t filters = 0;
  for (const Sent& s : restored) {
    EXPECT_EQ(s.type, PacketType::kSubscribe);
    filters += s.subscribe.size();
  }
  EXPECT_EQ(filters, 500u);
  EXPECT_GT(restored.size(), 1u);
}

TEST_F(SessionTest, UnsubscribeStopsDispatchAndWaitsForUnsuback) {
  Open();
  Connack();
  int calls = 0;
  session().Subscribe(
      "x", 0, [&](const Message&) { ++calls; }, nullptr);
  TakeSent();
  absl::Status done = absl::UnknownError("pending");
  session().Unsubscribe("x", [&](const absl::Status& s) { done = s; });
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].unsubscribe, std::vector<std::string>{"x"});
  Feed(Pub("x", "", 0, 0));
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(done.code(), absl::StatusCode::kUnknown);
  Feed(Ack(PacketType::kUnsuback, sent[0].id));
  EXPECT_TRUE(done.ok());
  session().Unsubscribe("never", [&](const absl::Status& s) { done = s; });
  EXPECT_EQ(done.code(), absl::StatusCode::kNotFound);
}

TEST_F(SessionTest, OfflineQueueIsSentInOrderAfterConnect) {
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) {
    session().Publish("q", std::to_string(i), i % 2, false, [&, i](const absl::Status& s) {
      if (s.ok()) order.push_back(i);
    });
  }
  EXPECT_EQ(session().queued(), 5u);
  Open();
  std::vector<Sent> sent = Connack();
  ASSERT_EQ(sent.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(sent[i].payload, std::to_string(i));
  for (const Sent& s : sent) {
    if (s.qos == 1) Feed(Ack(PacketType::kPuback, s.id));
  }
  EXPECT_EQ(order.size(), 5u);
}

TEST_F(SessionTest, OfflineQueueDropsOldestOrRejectsNew) {
  options_.max_queued_messages = 3;
  options_.max_queued_bytes = 1000;
  std::vector<std::string> results;
  auto record = [&](std::string name) {
    return [&results, name](const absl::Status& s) {
      results.push_back(name + ":" + std::string(absl::StatusCodeToString(s.code())));
    };
  };
  for (int i = 0; i < 5; ++i)
    session().Publish("t", std::to_string(i), 1, false, record(std::to_string(i)));
  EXPECT_EQ(results, (std::vector<std::string>{"0:RESOURCE_EXHAUSTED", "1:RESOURCE_EXHAUSTED"}));
  EXPECT_EQ(session().queued(), 3u);
  // Bytes bound: one big message pushes out everything older.
  session().Publish("t", std::string(998, 'x'), 1, false, record("big"));
  EXPECT_EQ(session().queued(), 1u);

  session_.reset();
  results.clear();
  options_.overflow = QueueOverflow::kRejectNew;
  for (int i = 0; i < 5; ++i)
    session().Publish("t", std::to_string(i), 1, false, record(std::to_string(i)));
  EXPECT_EQ(results, (std::vector<std::string>{"3:RESOURCE_EXHAUSTED", "4:RESOURCE_EXHAUSTED"}));
  EXPECT_EQ(session().queued(), 3u);
}

// A link that went silent (it takes no more bytes) must not let QoS 0 publishes pile up: they wait
// in the same bounded queue as QoS 1/2, and what does not fit completes with kResourceExhausted
// naming the limit, so a publisher that waits on completions is held back (issue 15).
TEST_F(SessionTest, Qos0OnALinkThatTakesNoBytesStaysWithinTheQueueLimits) {
  options_.max_queued_bytes = 10000;
  for (QueueOverflow overflow : {QueueOverflow::kDropOldest, QueueOverflow::kRejectNew}) {
    SCOPED_TRACE(overflow == QueueOverflow::kDropOldest ? "drop oldest" : "reject new");
    options_.overflow = overflow;
    session_.reset();
    Open();
    Connack();
    link_->refuse_writes = true;
    const std::string payload(2000, 'p');
    int ok = 0;
    std::vector<absl::Status> refused;
    for (int i = 0; i < 50; ++i) {
      session().Publish("t", payload, 0, false, [&](const absl::Status& s) {
        if (s.ok()) {
          ++ok;
        } else {
          refused.push_back(s);
        }
      });
      ASSERT_LE(session().queued_bytes(), options_.max_queued_bytes);
    }
    EXPECT_EQ(ok, 0);
    EXPECT_EQ(session().queued(), 4u);  // 4 x 2001 bytes fit in 10000
    ASSERT_EQ(refused.size(), 46u);
    for (const absl::Status& s : refused) {
      EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
      EXPECT_NE(s.message().find("offline queue full"), std::string::npos) << s;
    }
    EXPECT_TRUE(TakeSent().empty());
    // The link takes bytes again: what was kept goes out, in order, and completes.
    link_->refuse_writes = false;
    session().OnLinkWritable();
    EXPECT_EQ(ok, 4);
    EXPECT_EQ(TakeSent().size(), 4u);
    EXPECT_EQ(session().queued_bytes(), 0u);
  }
}

// A link above its soft limit (the tcp transport's high-water mark) owes an OnLinkWritable. QoS 0
// data then waits in the session's bounded queue instead of piling up in the transports' buffers
// up to their hard limit, and completes only when handed on, so a publisher that waits on its
// completions is paced by what the link drains (issue 15, goal 5). Control packets still go.
TEST_F(SessionTest, DataWaitsWhileTheLinkIsAboveItsSoftLimit) {
  for (bool coalesce : {false, true}) {
    SCOPED_TRACE(coalesce ? "coalesced writes" : "one write per packet");
    options_.coalesce_writes = coalesce;
    session_.reset();
    Open();
    Connack();
    link_->above_soft_limit = true;
    std::vector<std::string> done;
    for (int i = 0; i < 4; ++i) {
      session().Publish("t", std::to_string(i), i == 3 ? 1 : 0, false,
                        [&, i](const absl::Status& s) {
                          done.push_back(absl::StrCat(i, ":", absl::StatusCodeToString(s.code())));
                        });
    }
    session().Subscribe(
        "in/#", 1, [](const Message&) {}, nullptr);
    std::vector<Sent> sent = TakeSent();
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].type, PacketType::kSubscribe);
    loop_->RunOnce(absl::ZeroDuration());  // deferred completions, if any were due
    EXPECT_TRUE(done.empty());
    EXPECT_EQ(session().queued(), 4u);
    // Drained under the low-water mark: what waited goes out in order and completes.
    link_->above_soft_limit = false;
    session().OnLinkWritable();
    sent = TakeSent();
    ASSERT_EQ(sent.size(), 4u);
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(sent[i].type, PacketType::kPublish);
      EXPECT_EQ(sent[i].payload, std::to_string(i));
    }
    ASSERT_TRUE(RunUntil(*loop_, [&] { return done.size() == 3u; }));
    EXPECT_EQ(done, (std::vector<std::string>{"0:OK", "1:OK", "2:OK"}));
    EXPECT_EQ(session().queued(), 0u);
  }
}

// PublishTaking: a message that has to wait keeps the caller's buffer instead of a copy of it
// (the Client's hand-off slots, which would otherwise hold a burst a second time); one that goes
// out at once leaves the buffer alone.
TEST_F(SessionTest, PublishTakingMovesAWaitingPayloadAndLeavesASentOne) {
  MessageStore* store = store_.get();
  Open();
  Connack();
  const std::string big(4096, 'x');
  std::string sent_now = big;
  session().PublishTaking("t", sent_now, 0, false, nullptr);
  EXPECT_EQ(sent_now, big);
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].payload, big);

  link_->above_soft_limit = true;
  std::string waits = big;
  const char* const buffer = waits.data();
  session().PublishTaking("t", waits, 0, false, nullptr);
  EXPECT_TRUE(waits.empty());
  ASSERT_EQ(session().queued(), 1u);
  // The caller's buffer itself, not a copy, is what waits.
  ASSERT_EQ(store->Sequences().size(), 1u);
  const StoredMessage* stored = store->Find(store->Sequences()[0]);
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored->payload.data(), buffer);
  link_->above_soft_limit = false;
  session().OnLinkWritable();
  sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].payload, big);

  // Plain Publish still copies: the caller's string is untouched.
  link_->above_soft_limit = true;
  std::string kept = big;
  session().Publish("t", kept, 0, false, nullptr);
  EXPECT_EQ(kept, big);
  EXPECT_EQ(session().queued(), 1u);
}

// Handing queued data on stops as soon as the link goes over its soft limit again, and what is
// left waits for the next OnLinkWritable.
TEST_F(SessionTest, PumpingQueuedDataStopsAtTheLinksSoftLimit) {
  Open();
  Connack();
  link_->above_soft_limit = true;
  int done = 0;
  for (int i = 0; i < 5; ++i) {
    session().Publish("t", std::to_string(i), 0, false, [&](const absl::Status& s) {
      EXPECT_TRUE(s.ok()) << s;
      ++done;
    });
  }
  ASSERT_EQ(session().queued(), 5u);
  link_->above_soft_limit = false;
  link_->soft_limit_after_writes = link_->writes + 2;
  session().OnLinkWritable();
  EXPECT_EQ(TakeSent().size(), 2u);
  EXPECT_EQ(session().queued(), 3u);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return done == 2; }));
  link_->above_soft_limit = false;
  link_->soft_limit_after_writes = -1;
  session().OnLinkWritable();
  EXPECT_EQ(TakeSent().size(), 3u);
  EXPECT_EQ(session().queued(), 0u);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return done == 5; }));
}

// One loop turn's packets go down as one write at the end of the turn: the broker reads them in one
// read() instead of one per packet (issue 15).
TEST_F(SessionTest, CoalescedWritesGoDownOnceAtTheEndOfTheLoopTurn) {
  options_.coalesce_writes = true;
  Open();  // CONNECT is written at once, never batched (its buffer is wiped)
  EXPECT_EQ(link_->writes, 1);
  Connack();
  link_->writes = 0;
  int done = 0;
  for (int i = 0; i < 10; ++i)
    session().Publish("t", std::to_string(i), i % 2, false, [&](const absl::Status&) { ++done; });
  EXPECT_EQ(link_->writes, 0);
  EXPECT_EQ(done, 5);  // QoS 0: in the batch, which the link gets this turn
  ASSERT_TRUE(RunUntil(*loop_, [&] { return link_->writes > 0; }));
  EXPECT_EQ(link_->writes, 1);
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(sent[i].type, PacketType::kPublish);
    EXPECT_EQ(sent[i].payload, std::to_string(i));
  }
  // What handling the link's data produces leaves when that handling ends, with whatever the batch
  // held: the answer to a message waits for no later turn.
  link_->writes = 0;
  session().Subscribe(
      "in", 1, [&](const Message&) { session().Publish("echo", "e", 1, false, nullptr); }, nullptr);
  session().Publish("t", "before", 0, false, nullptr);
  session().OnLinkData(Pub("in", "x", 1, 7));
  EXPECT_EQ(link_->writes, 1);
  sent = TakeSent();
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(sent[0].type, PacketType::kSubscribe);
  EXPECT_EQ(sent[1].payload, "before");
  EXPECT_EQ(sent[2].topic, "echo");
  EXPECT_EQ(sent[3].type, PacketType::kPuback);
  EXPECT_EQ(sent[3].id, 7);
  // A packet of kMaxBatch bytes or more goes as it is, after what the batch holds.
  session().Publish("t", "a", 0, false, nullptr);
  session().Publish("t", std::string(Session::kMaxBatch, 'b'), 0, false, nullptr);
  EXPECT_EQ(link_->writes, 3);
  sent = TakeSent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].payload, "a");
  EXPECT_EQ(sent[1].payload.size(), Session::kMaxBatch);
}

TEST_F(SessionTest, CoalescedBatchRefusedByTheLinkWaitsForWritableAndHoldsBackTheRest) {
  options_.coalesce_writes = true;
  Open();
  Connack();
  link_->writes = 0;
  link_->refuse_writes = true;
  int done = 0;
  session().Publish("t", "0", 0, false, [&](const absl::Status&) { ++done; });
  ASSERT_TRUE(RunUntil(*loop_, [&] { return session().publishes_sent() == 1; }));
  loop_->RunOnce(absl::ZeroDuration());  // the flush ran and was refused
  // The batch is kept; what comes next waits in the bounded queue, not in the batch.
  for (int i = 1; i < 4; ++i)
    session().Publish("t", std::to_string(i), 0, false, [&](const absl::Status&) { ++done; });
  EXPECT_EQ(session().queued(), 3u);
  EXPECT_EQ(done, 1);
  link_->refuse_writes = false;
  session().OnLinkWritable();
  EXPECT_EQ(done, 4);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return link_->writes >= 2; }));
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(sent[i].payload, std::to_string(i));
}

TEST_F(SessionTest, DisconnectFlushesTheBatchFirst) {
  options_.coalesce_writes = true;
  Open();
  Connack();
  session().Publish("t", "last", 0, false, nullptr);
  session().Disconnect();
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].payload, "last");
  EXPECT_EQ(sent[1].type, PacketType::kDisconnect);
  ASSERT_TRUE(link_->closed.has_value());
  EXPECT_TRUE(link_->closed->ok());
}

TEST_F(SessionTest, MaxPacketSizeBothDirections) {
  options_.max_packet_size = 4096;
  Open();
  Connack();
  absl::Status done;
  session().Publish("t", std::string(4096, 'x'), 0, false,
                    [&](const absl::Status& s) { done = s; });
  EXPECT_EQ(done.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(done.message(),
            "mqtt: PUBLISH to \"t\" would be 4102 bytes, above max_packet_size 4096");
  session().Publish("t", std::string(4000, 'x'), 0, false,
                    [&](const absl::Status& s) { done = s; });
  EXPECT_TRUE(done.ok());
  TakeSent();
  Feed(Pub("t", std::string(5000, 'y'), 0, 0));
  ASSERT_TRUE(link_->closed.has_value());
  EXPECT_EQ(link_->closed->code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(link_->closed->message(),
            "mqtt: incoming PUBLISH of 5006 bytes exceeds max_packet_size 4096 (topic \"t\")");
}

TEST_F(SessionTest, DefaultMaxPacketSizeIsFarAboveTwoKibibytes) {
  Open();
  Connack();
  absl::Status done = absl::UnknownError("pending");
  session().Publish("t", std::string(1 << 20, 'x'), 1, false,
                    [&](const absl::Status& s) { done = s; });
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].payload.size(), 1u << 20);
  std::vector<std::string> got;
  session().Subscribe(
      "big", 0, [&](const Message& m) { got.emplace_back(m.payload); }, nullptr);
  Feed(Pub("big", std::string(1 << 20, 'y'), 0, 0));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].size(), 1u << 20);
}

TEST_F(SessionTest, BackpressuredWritesResumeOnWritable) {
  Open();
  Connack();
  link_->refuse_writes = true;
  int done = 0;
  for (int i = 0; i < 3; ++i)
    session().Publish("t", "x", 0, false, [&](const absl::Status&) { ++done; });
  EXPECT_EQ(done, 0);
  EXPECT_EQ(session().queued(), 3u);
  link_->refuse_writes = false;
  session().OnLinkWritable();
  EXPECT_EQ(done, 3);
  EXPECT_EQ(TakeSent().size(), 3u);
}

TEST_F(SessionTest, KeepAlivePingsAndDeclaresASilentBrokerDead) {
  options_.keep_alive = absl::Seconds(1);
  options_.ping_timeout = absl::Milliseconds(400);
  Open();
  Connack();
  // Heard nothing for keep-alive - ping timeout: PINGREQ, so that an unanswered one still ends
  // within one keep-alive of the last sign of life.
  clock_.Advance(absl::Milliseconds(599));
  EXPECT_TRUE(TakeSent().empty());
  clock_.Advance(absl::Milliseconds(1));
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].type, PacketType::kPingreq);
  clock_.Advance(absl::Milliseconds(399));
  EXPECT_FALSE(link_->closed.has_value());
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(link_->closed.has_value());
  EXPECT_EQ(link_->closed->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(link_->closed->message().find("no answer to PINGREQ"), std::string::npos);
  EXPECT_LE(clock_.firings(), 3);
}

TEST_F(SessionTest, KeepAliveAnsweredKeepsTheLinkUp) {
  options_.keep_alive = absl::Seconds(1);
  options_.ping_timeout = absl::Milliseconds(400);
  Open();
  Connack();
  int pings = 0;
  for (int step = 0; step < 200 && !link_->closed.has_value(); ++step) {  // 10 s of virtual time
    clock_.Advance(absl::Milliseconds(50));
    for (const Sent& s : TakeSent()) {
      if (s.type == PacketType::kPingreq) {
        ++pings;
        std::string resp;
        AppendPingresp(&resp);
        session().OnLinkData(resp);
      }
    }
  }
  EXPECT_FALSE(link_->closed.has_value()) << *link_->closed;
  EXPECT_GE(pings, 15);
  EXPECT_LE(pings, 17);
}

TEST_F(SessionTest, MissingConnackTimesOut) {
  options_.connack_timeout = absl::Milliseconds(200);
  Open();
  clock_.Advance(absl::Milliseconds(199));
  EXPECT_FALSE(link_->closed.has_value());
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(link_->closed.has_value());
  EXPECT_EQ(link_->closed->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(link_->closed->message(), "mqtt: no CONNACK from the broker within 200ms");
}

TEST_F(SessionTest, ConnackTimeoutTakesWhatIsLeftOfTheHandshakeDeadline) {
  link_ = std::make_unique<FakeLink>(*loop_);
  link_->context_.set_deadline(loop_->Now() + absl::Seconds(5));
  session().OnLinkOpen(*link_);
  clock_.Advance(absl::Seconds(4));
  EXPECT_FALSE(link_->closed.has_value());
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(link_->closed.has_value());
  EXPECT_EQ(link_->closed->code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(SessionTest, DisconnectSendsDisconnectAndClosesCleanly) {
  Open();
  Connack();
  session().Publish("t", "kept", 1, false, nullptr);
  TakeSent();
  session().Disconnect();
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].type, PacketType::kDisconnect);
  ASSERT_TRUE(link_->closed.has_value());
  EXPECT_TRUE(link_->closed->ok());
  CloseLink(absl::OkStatus());
  EXPECT_EQ(session().inflight(), 1u) << "unacknowledged messages survive a disconnect";
}

TEST_F(SessionTest, FailPendingResolvesEveryCompletion) {
  std::vector<absl::Status> results;
  for (int i = 0; i < 3; ++i) {
    session().Publish("t", "x", 1, false, [&](const absl::Status& s) { results.push_back(s); });
  }
  session().Subscribe("s", 0, nullptr, [&](const absl::Status& s) { results.push_back(s); });
  session().FailPending(absl::UnavailableError("gave up"));
  ASSERT_EQ(results.size(), 4u);
  for (const auto& s : results) EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(session().queued(), 0u);
}

TEST_F(SessionTest, HandlersMayPublishAndDisconnectReentrantly) {
  Open();
  Connack();
  session().Subscribe(
      "in", 1,
      [&](const Message& m) {
        session().Publish("out", m.payload, 0, false, nullptr);
        if (m.payload == "bye") session().Disconnect();
      },
      nullptr);
  TakeSent();
  std::string both = Pub("in", "hi", 1, 1) + Pub("in", "bye", 1, 2) + Pub("in", "late", 1, 3);
  std::vector<Sent> sent = Feed(both);
  // "hi" echoed and acked; "bye" echoed, then DISCONNECT, then nothing else.
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(sent[0].topic, "out");
  EXPECT_EQ(sent[1].type, PacketType::kPuback);
  EXPECT_EQ(sent[2].topic, "out");
  EXPECT_EQ(sent[3].type, PacketType::kDisconnect);
}

// Issue 11 #6: a peer that stops reading fills the write queue; PINGREQ cannot even be written.
// The link must be declared dead within keep-alive + ping timeout, with a handful of timer firings
// (not a timer re-armed in the past over and over).
TEST_F(SessionTest, KeepAliveDeclaresAPeerThatStopsReadingDeadWithoutSpinning) {
  options_.keep_alive = absl::Seconds(10);
  options_.ping_timeout = absl::Seconds(4);
  Open();
  Connack();
  link_->refuse_writes = true;
  // The broker keeps talking (it is not dead, it just stopped reading): bytes arrive, yet our
  // PINGREQ never leaves, so nothing proves the link works.
  std::string resp;
  AppendPingresp(&resp);
  clock_.Advance(absl::Seconds(7));
  session().OnLinkData(resp);
  clock_.Advance(absl::Seconds(7));
  EXPECT_FALSE(clock_.runaway()) << "the keep-alive timer spins";
  ASSERT_TRUE(link_->closed.has_value()) << "still not declared dead after keep-alive + timeout";
  EXPECT_EQ(link_->closed->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(link_->closed->message().find("PINGREQ"), std::string::npos) << *link_->closed;
  EXPECT_LE(clock_.firings(), 4);
}

// The same with a transport that still accepts writes into its buffer: the PINGREQ is "written"
// but never leaves the buffer. Bytes from the broker prove it sends, not that it reads; without a
// PINGRESP while our bytes are still queued, the link is dead at keep-alive + ping timeout.
TEST_F(SessionTest, KeepAliveDeclaresAPeerThatStopsReadingDeadWhileItsBufferHoldsThePing) {
  options_.keep_alive = absl::Seconds(10);
  options_.ping_timeout = absl::Seconds(4);
  Open();
  Connack();
  session().Subscribe("in", 0, nullptr, nullptr);
  TakeSent();
  link_->buffered = 1000;  // nothing drains
  clock_.Advance(absl::Seconds(6));
  ASSERT_EQ(TakeSent().size(), 1u);  // the PINGREQ, into the buffer
  clock_.Advance(absl::Seconds(1));
  Feed(Pub("in", "still talking", 0, 0));
  clock_.Advance(absl::Seconds(3));
  ASSERT_TRUE(link_->closed.has_value()) << "still not declared dead after keep-alive + timeout";
  EXPECT_EQ(link_->closed->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(link_->closed->message().find("not reading"), std::string::npos) << *link_->closed;
  EXPECT_LE(clock_.firings(), 3);
}

// Drained buffers: any byte after the PINGREQ still counts as an answer (a busy broker's PINGRESP
// may queue behind data).
TEST_F(SessionTest, AnyByteAfterTheDrainedPingreqCountsAsAnAnswer) {
  options_.keep_alive = absl::Seconds(10);
  options_.ping_timeout = absl::Seconds(4);
  Open();
  Connack();
  session().Subscribe("in", 0, nullptr, nullptr);
  TakeSent();
  clock_.Advance(absl::Seconds(6));
  ASSERT_EQ(TakeSent().size(), 1u);
  clock_.Advance(absl::Seconds(1));
  Feed(Pub("in", "busy", 0, 0));
  clock_.Advance(absl::Seconds(3));
  EXPECT_FALSE(link_->closed.has_value()) << *link_->closed;
}

TEST_F(SessionTest, PingreqHeldByBackpressureGoesOutWhenWritable) {
  options_.keep_alive = absl::Seconds(10);
  options_.ping_timeout = absl::Seconds(4);
  Open();
  Connack();
  link_->refuse_writes = true;
  clock_.Advance(absl::Seconds(6));
  EXPECT_LE(clock_.firings(), 2);
  link_->refuse_writes = false;
  session().OnLinkWritable();
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].type, PacketType::kPingreq);
  std::string resp;
  AppendPingresp(&resp);
  session().OnLinkData(resp);
  clock_.Advance(absl::Seconds(5));
  EXPECT_FALSE(link_->closed.has_value());
}

// Issue 11 #8: acknowledgements, SUBSCRIBE and UNSUBSCRIBE are never lost to backpressure; they
// go out first when the link takes bytes again, ahead of queued data.
TEST_F(SessionTest, ControlPacketsSurviveBackpressureAndGoFirst) {
  Open();
  Connack();
  session().Subscribe("in/#", 2, nullptr, nullptr);
  session().Subscribe("gone", 0, nullptr, nullptr);
  session().Publish("out/2", "q2", 2, false, nullptr);
  std::vector<Sent> before = TakeSent();
  ASSERT_EQ(before.size(), 3u);
  uint16_t out_id = before[2].id;
  link_->refuse_writes = true;
  Feed(Pub("in/1", "a", 1, 7));            // PUBACK 7
  Feed(Pub("in/2", "b", 2, 8));            // PUBREC 8
  Feed(Ack(PacketType::kPubrel, 8));       // PUBCOMP 8
  Feed(Ack(PacketType::kPubrec, out_id));  // PUBREL out_id
  absl::Status subscribed = absl::UnknownError("pending");
  session().Subscribe("new", 1, nullptr, [&](const absl::Status& s) { subscribed = s; });
  absl::Status unsubscribed = absl::UnknownError("pending");
  session().Unsubscribe("gone", [&](const absl::Status& s) { unsubscribed = s; });
  session().Publish("data", "d", 1, false, nullptr);
  EXPECT_EQ(unsubscribed.code(), absl::StatusCode::kUnknown) << "UNSUBSCRIBE was never sent";
  link_->refuse_writes = false;
  session().OnLinkWritable();
  std::vector<Sent> sent = TakeSent();
  std::vector<PacketType> types;
  for (const Sent& p : sent) types.push_back(p.type);
  ASSERT_EQ(types,
            (std::vector<PacketType>{PacketType::kPuback, PacketType::kPubrec, PacketType::kPubcomp,
                                     PacketType::kPubrel, PacketType::kSubscribe,
                                     PacketType::kUnsubscribe, PacketType::kPublish}));
  EXPECT_EQ(sent[0].id, 7);
  EXPECT_EQ(sent[3].id, out_id);
  const uint8_t granted[] = {1};
  std::string suback;
  AppendSuback(sent[4].id, granted, &suback);
  Feed(suback + Ack(PacketType::kUnsuback, sent[5].id));
  EXPECT_TRUE(subscribed.ok()) << subscribed;
  EXPECT_TRUE(unsubscribed.ok()) << unsubscribed;
}

// Issue 11 #5: user code that runs while CONNACK is handled (here: the completion of a QoS 0
// publish queued while offline) sees a session that is already up and announced to its owner, and
// may disconnect: the owner hears "up" once, before, and nothing runs on the closed link after.
TEST_F(SessionTest, ConnackCompletionsRunAfterTheOwnerHeardUpAndMayDisconnect) {
  std::vector<std::string> seen;
  session().Publish("t", "x", 0, false, [&](const absl::Status& s) {
    seen.push_back(absl::StrCat("done ", s.ok(), " up ", session().up(), " heard ", observer_.ups));
    session().Disconnect();
  });
  session().Publish("t", "y", 1, false, nullptr);
  Open();
  std::vector<Sent> sent = Connack();
  EXPECT_EQ(seen, (std::vector<std::string>{"done 1 up 1 heard 1"}));
  EXPECT_EQ(observer_.ups, 1);
  ASSERT_TRUE(link_->closed.has_value());
  EXPECT_TRUE(link_->closed->ok());
  ASSERT_GE(sent.size(), 2u);
  EXPECT_EQ(sent.back().type, PacketType::kDisconnect);
}

// A completion that destroys the session: the remaining completions still run, nothing touches
// the dead session.
TEST_F(SessionTest, CompletionsMayDestroyTheSession) {
  int calls = 0;
  for (int i = 0; i < 3; ++i) {
    session().Publish("t", "x", 0, false, [&](const absl::Status&) {
      ++calls;
      session_.reset();
    });
  }
  Open();
  Connack();
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(session_, nullptr);
}

// Issue 11 #11: a QoS 2 message whose PUBREL went out may or may not have been delivered when the
// broker comes back without the session: kAborted, never OK (and not re-sent: that could deliver
// it twice).
TEST_F(SessionTest, Qos2AwaitingPubcompIsAbortedWhenTheSessionWasLost) {
  Open();
  Connack();
  absl::Status done = absl::UnknownError("pending");
  session().Publish("c", "3", 2, false, [&](const absl::Status& s) { done = s; });
  std::vector<Sent> sent = TakeSent();
  Feed(Ack(PacketType::kPubrec, sent[0].id));
  CloseLink();
  Open();
  std::vector<Sent> after = Connack(/*session_present=*/false);
  EXPECT_TRUE(after.empty());
  EXPECT_EQ(done.code(), absl::StatusCode::kAborted) << done;
  EXPECT_EQ(done.message(),
            absl::StrCat("mqtt: QoS 2 message id ", sent[0].id,
                         " to \"c\": the broker dropped the session after PUBREL; it may or may "
                         "not have been delivered"));
  EXPECT_EQ(session().inflight(), 0u);
}

// Issue 11 #12: the QoS 2 packet id is recorded before the handler runs, so a handler that
// disconnects does not get the broker's DUP re-delivery a second time.
TEST_F(SessionTest, IncomingQos2IsRecordedBeforeTheHandlerRuns) {
  options_.clean_session = false;
  Open();
  Connack();
  int calls = 0;
  session().Subscribe(
      "in", 2,
      [&](const Message&) {
        ++calls;
        session().Disconnect();
      },
      nullptr);
  TakeSent();
  Feed(Pub("in", "once", 2, 5));
  ASSERT_TRUE(link_->closed.has_value());
  CloseLink(absl::OkStatus());
  Open();
  Connack(/*session_present=*/true);
  TakeSent();
  std::vector<Sent> sent = Feed(Pub("in", "once", 2, 5, /*dup=*/true));
  EXPECT_EQ(calls, 1) << "delivered twice";
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].type, PacketType::kPubrec);
}

// Issue 11 #13: in-flight messages put back in the queue after a lost session keep their place
// (they were accepted under the limits, and the window bounds them: at most max_inflight beyond
// offline_queue) and count towards the queue, so the overflow policy applies to what comes next.
TEST_F(SessionTest, RequeuedInflightMessagesAreKeptAndCountTowardsTheQueueLimits) {
  options_.max_inflight = 3;
  options_.max_queued_messages = 2;
  std::vector<std::string> results;
  auto record = [&](int i) {
    return [&results, i](const absl::Status& s) {
      results.push_back(absl::StrCat(i, ":", absl::StatusCodeToString(s.code())));
    };
  };
  Open();
  Connack();
  for (int i = 0; i < 5; ++i) session().Publish("t", std::to_string(i), 1, false, record(i));
  EXPECT_EQ(session().inflight(), 3u);
  EXPECT_EQ(session().queued(), 2u);
  CloseLink();
  Open();
  link_->refuse_writes = true;  // nothing drains: the requeued messages stay queued
  Connack(/*session_present=*/false);
  EXPECT_TRUE(results.empty()) << results[0];
  EXPECT_EQ(session().queued(), 5u) << "3 requeued ahead of 2 queued";
  EXPECT_EQ(session().inflight(), 0u);
  session().Publish("t", "5", 1, false, record(5));
  // Drop-oldest makes room for the new message within max_messages = 2.
  EXPECT_EQ(results, (std::vector<std::string>{"0:RESOURCE_EXHAUSTED", "1:RESOURCE_EXHAUSTED",
                                               "2:RESOURCE_EXHAUSTED", "3:RESOURCE_EXHAUSTED"}));
  EXPECT_EQ(session().queued(), 2u);
  link_->refuse_writes = false;
  session().OnLinkWritable();
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].payload, "4");
  EXPECT_EQ(sent[1].payload, "5");
}

// Issue 11 #14: a persistent session holding a PUBLISH above max_packet_size makes the broker
// re-deliver it at every connection. The third link in a row that fails on the same packet reports
// a permanent error naming the topic and the size.
TEST_F(SessionTest, OversizePublishRedeliveredOnEveryLinkIsAPermanentError) {
  options_.clean_session = false;
  options_.max_packet_size = 128;
  std::string big = Pub("big/topic", std::string(300, 'x'), 1, 9);
  for (int link = 1; link <= 3; ++link) {
    Open();
    Connack(/*session_present=*/true);
    TakeSent();
    // Split right after the topic, as a stream may deliver it.
    Feed(big.substr(0, 16));
    Feed(big.substr(16));
    ASSERT_TRUE(link_->closed.has_value()) << link;
    absl::Status closed = *link_->closed;
    CloseLink(closed);
    if (link < 3) {
      EXPECT_EQ(closed.code(), absl::StatusCode::kDataLoss) << closed;
      EXPECT_EQ(closed.message(), absl::StrCat("mqtt: incoming PUBLISH of ", big.size(),
                                               " bytes exceeds max_packet_size 128 (topic "
                                               "\"big/topic\")"));
      EXPECT_TRUE(observer_.permanent.empty());
    } else {
      EXPECT_EQ(closed.code(), absl::StatusCode::kDataLoss) << closed;
      ASSERT_EQ(observer_.permanent.size(), 1u);
      EXPECT_EQ(observer_.permanent[0], closed);
      EXPECT_EQ(closed.message(),
                absl::StrCat("mqtt: 3 connections in a row ended on the same PUBLISH to "
                             "\"big/topic\" of ",
                             big.size(),
                             " bytes, above max_packet_size 128: the broker's session holds a "
                             "message this client cannot take and re-delivers it at every "
                             "connection; raise max_packet_size or clear the session "
                             "(clean_session: true)"));
    }
  }
}

// Only links that end on the same oversize packet count, in a row; anything else in between
// starts the count again. Smaller messages re-delivered ahead of it do not matter.
TEST_F(SessionTest, OversizeCountResetsWhenALinkEndsOtherwise) {
  options_.clean_session = false;
  options_.max_packet_size = 128;
  std::string big = Pub("big", std::string(300, 'x'), 1, 9);
  for (int link = 1; link <= 6; ++link) {
    Open();
    Connack(true);
    Feed(Pub("small", "ok", 0, 0));
    if (link == 3) {
      CloseLink(absl::UnavailableError("tcp: reset"));  // ends for another reason
      continue;
    }
    if (link == 5) {
      Feed(Pub("other", std::string(400, 'x'), 1, 10));  // a different oversize packet
    } else {
      Feed(big);
    }
    ASSERT_TRUE(link_->closed.has_value());
    CloseLink(*link_->closed);
  }
  EXPECT_TRUE(observer_.permanent.empty());
  Open();
  Connack(true);
  Feed(big);
  CloseLink(*link_->closed);
  EXPECT_TRUE(observer_.permanent.empty()) << "6 and 7 are only two in a row";
  Open();
  Connack(true);
  Feed(big);
  CloseLink(*link_->closed);
  ASSERT_EQ(observer_.permanent.size(), 1u);
  EXPECT_NE(observer_.permanent[0].message().find("\"big\""), std::string::npos);
}

// A MessageStore that fails on demand, as a durable one may (disk full, I/O error).
class FailingStore : public MemoryMessageStore {
 public:
  absl::Status SetPhase(uint64_t seq, StoredMessage::Phase phase, uint16_t packet_id) override {
    if (fail_set_phase) return absl::UnavailableError("disk: I/O error");
    return MemoryMessageStore::SetPhase(seq, phase, packet_id);
  }
  bool fail_set_phase = false;
};

// Issue 11 #15: SetPhase failures reach the publisher's completion.
TEST_F(SessionTest, StoreFailureBeforeSendingReachesTheCompletion) {
  auto store = std::make_unique<FailingStore>();
  FailingStore* failing = store.get();
  store_ = std::move(store);
  absl::Status done = absl::UnknownError("pending");
  session().Publish("t", "x", 1, false, [&](const absl::Status& s) { done = s; });
  failing->fail_set_phase = true;
  Open();
  std::vector<Sent> sent = Connack();
  EXPECT_EQ(done.code(), absl::StatusCode::kUnavailable) << done;
  EXPECT_EQ(done.message(),
            "mqtt: store: could not record the message to \"t\" as sent, so it was not sent: disk: "
            "I/O error");
  EXPECT_TRUE(sent.empty());
  EXPECT_EQ(session().queued(), 0u);
  EXPECT_EQ(failing->size(), 0u);
}

TEST_F(SessionTest, StoreFailureOnPubrecReachesTheCompletion) {
  auto store = std::make_unique<FailingStore>();
  FailingStore* failing = store.get();
  store_ = std::move(store);
  Open();
  Connack();
  absl::Status done = absl::UnknownError("pending");
  session().Publish("t", "x", 2, false, [&](const absl::Status& s) { done = s; });
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  failing->fail_set_phase = true;
  std::vector<Sent> rel = Feed(Ack(PacketType::kPubrec, sent[0].id));
  ASSERT_EQ(rel.size(), 1u);
  EXPECT_EQ(rel[0].type, PacketType::kPubrel) << "the broker's flow is still finished";
  EXPECT_EQ(done.code(), absl::StatusCode::kUnavailable) << done;
  EXPECT_NE(done.message().find("disk: I/O error"), std::string::npos);
  // The PUBCOMP still frees the packet id quietly.
  Feed(Ack(PacketType::kPubcomp, sent[0].id));
  EXPECT_EQ(session().inflight(), 0u);
  EXPECT_FALSE(link_->closed.has_value());
}

// Like FileMessageStore with overflow DROP_OLDEST: Add makes room by removing the oldest queued
// message itself, behind the session's back.
class DropOldestStore : public MemoryMessageStore {
 public:
  explicit DropOldestStore(size_t max) : max_(max) {}
  absl::Status Add(StoredMessage message) override {
    while (size() >= max_) {
      bool dropped = false;
      for (uint64_t seq : Sequences()) {
        if (Find(seq)->phase == StoredMessage::Phase::kQueued) {
          Remove(seq);
          dropped = true;
          break;
        }
      }
      if (!dropped) return absl::ResourceExhaustedError("store full");
    }
    return MemoryMessageStore::Add(std::move(message));
  }

 private:
  size_t max_;
};

// Issue 13: a message the store drops under its own overflow policy completes with
// kResourceExhausted at once, and the queue's byte count stays right.
TEST_F(SessionTest, MessageDroppedByTheStoreCompletesWithResourceExhausted) {
  store_ = std::make_unique<DropOldestStore>(2);
  std::vector<absl::Status> done(3, absl::UnknownError("pending"));
  session().Publish("t", "aaaa", 1, false, [&](const absl::Status& s) { done[0] = s; });
  session().Publish("t", "bb", 1, false, [&](const absl::Status& s) { done[1] = s; });
  EXPECT_EQ(session().queued_bytes(), 8u);
  session().Publish("t", "c", 1, false, [&](const absl::Status& s) { done[2] = s; });
  EXPECT_EQ(done[0].code(), absl::StatusCode::kResourceExhausted) << done[0];
  EXPECT_NE(done[0].message().find("dropped by the store's overflow policy"), std::string::npos)
      << done[0];
  EXPECT_EQ(done[1].code(), absl::StatusCode::kUnknown) << "still pending";
  EXPECT_EQ(session().queued(), 2u);
  EXPECT_EQ(session().queued_bytes(), 5u);  // "t"+"bb", "t"+"c"
  Open();
  std::vector<Sent> sent = Connack();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].payload, "bb");
  EXPECT_EQ(sent[1].payload, "c");
  Feed(Ack(PacketType::kPuback, sent[0].id) + Ack(PacketType::kPuback, sent[1].id));
  EXPECT_TRUE(done[1].ok()) << done[1];
  EXPECT_TRUE(done[2].ok()) << done[2];
  EXPECT_EQ(session().queued_bytes(), 0u);
}

// A queued message that vanished from the store by the time it is due (Pump) completes with the
// same error instead of being skipped silently.
TEST_F(SessionTest, QueuedMessageMissingFromTheStoreWhenDueCompletes) {
  auto store = std::make_unique<MemoryMessageStore>();
  MemoryMessageStore* raw = store.get();
  store_ = std::move(store);
  absl::Status first = absl::UnknownError("pending"), second = absl::UnknownError("pending");
  session().Publish("t", "one", 1, false, [&](const absl::Status& s) { first = s; });
  session().Publish("t", "two", 1, false, [&](const absl::Status& s) { second = s; });
  raw->Remove(raw->Sequences().front());
  Open();
  std::vector<Sent> sent = Connack();
  EXPECT_EQ(first.code(), absl::StatusCode::kResourceExhausted) << first;
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].payload, "two");
  EXPECT_EQ(session().queued_bytes(), 0u);
  Feed(Ack(PacketType::kPuback, sent[0].id));
  EXPECT_TRUE(second.ok()) << second;
}

TEST_F(SessionTest, FailPendingKeepingTheStoreSendsItsMessagesOnTheNextLink) {
  absl::Status done = absl::UnknownError("pending");
  session().Publish("t", "kept", 1, false, [&](const absl::Status& s) { done = s; });
  session().FailPending(absl::UnavailableError("gave up"), /*keep_stored=*/true);
  EXPECT_EQ(done.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(session().queued(), 1u);
  EXPECT_EQ(session().queued_bytes(), 5u);
  Open();
  std::vector<Sent> sent = Connack();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].payload, "kept");
  Feed(Ack(PacketType::kPuback, sent[0].id));
  EXPECT_EQ(session().store().size(), 0u);
}

TEST_F(SessionTest, ReplaceStoreRecoversItsMessagesAndOnlyBeforeUse) {
  auto store = std::make_unique<MemoryMessageStore>();
  StoredMessage m;
  m.seq = 41;
  m.qos = 1;
  m.topic = "t";
  m.payload = "recovered";
  ASSERT_TRUE(store->Add(m).ok());
  ASSERT_TRUE(session().ReplaceStore(std::move(store)).ok());
  EXPECT_EQ(session().queued(), 1u);
  absl::Status later = absl::UnknownError("pending");
  session().Publish("t", "later", 1, false, [&](const absl::Status& s) { later = s; });
  EXPECT_EQ(session().ReplaceStore(std::make_unique<MemoryMessageStore>()).code(),
            absl::StatusCode::kFailedPrecondition);
  Open();
  std::vector<Sent> sent = Connack();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].payload, "recovered");
  EXPECT_EQ(sent[1].payload, "later");
  EXPECT_EQ(session().store().Find(42)->payload, "later") << "sequence numbers continue";
}

// Tencent IoT Hub (MQTT 3.1.1) drops the connection on QoS 2, retain or a will; the profile says so
// in MqttConfig.broker and the session refuses them before anything reaches the wire.
TEST_F(SessionTest, PublishesBeyondTheBrokersCapabilitiesFailAtOnceNamingTheBroker) {
  protocols::MqttConfig config;
  config.mutable_broker()->set_name("Tencent IoT Hub");
  config.mutable_broker()->set_max_qos(1);
  config.mutable_broker()->set_retain_available(false);
  absl::StatusOr<SessionOptions> options = SessionOptionsFromConfig(config);
  ASSERT_TRUE(options.ok()) << options.status();
  options_ = *options;
  Open();
  Connack();
  std::vector<absl::Status> done(4, absl::UnknownError("pending"));
  session().Publish("t/2", "two", 2, false, [&](const absl::Status& s) { done[0] = s; });
  session().Publish("t/r", "kept", 0, true, [&](const absl::Status& s) { done[1] = s; });
  session().Subscribe(
      "t/#", 2, [](const Message&) {}, [&](const absl::Status& s) { done[2] = s; });
  session().Publish("t/1", "one", 1, false, [&](const absl::Status& s) { done[3] = s; });
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u) << "only the QoS 1 publish goes out";
  EXPECT_EQ(sent[0].qos, 1);
  EXPECT_EQ(done[0].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(done[0].message(),
            "mqtt: the broker (Tencent IoT Hub) does not support QoS 2; use QoS 1 or lower");
  EXPECT_EQ(done[1].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(done[1].message(),
            "mqtt: the broker (Tencent IoT Hub) does not support retained messages");
  EXPECT_EQ(done[2].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(done[3].code(), absl::StatusCode::kUnknown) << "waits for PUBACK";
}

TEST(SessionOptions, BrokerCapabilities) {
  protocols::MqttConfig config;
  absl::StatusOr<SessionOptions> o = SessionOptionsFromConfig(config);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->max_qos, 2);
  EXPECT_TRUE(o->retain_available);
  EXPECT_EQ(o->broker, "the broker");
  config.mutable_will()->set_topic("dev/gone");
  config.mutable_broker()->set_will_available(true);
  EXPECT_TRUE(SessionOptionsFromConfig(config).ok());
  config.mutable_broker()->set_will_available(false);
  EXPECT_EQ(SessionOptionsFromConfig(config).status().message(),
            "mqtt: will: the broker does not support will messages; remove it");
  config.mutable_broker()->set_name("Tencent IoT Hub");
  EXPECT_EQ(SessionOptionsFromConfig(config).status().message(),
            "mqtt: will: the broker (Tencent IoT Hub) does not support will messages; remove it");
  config.clear_will();
  config.mutable_broker()->set_max_qos(3);
  EXPECT_EQ(SessionOptionsFromConfig(config).status().message(),
            "mqtt: broker.max_qos: 3 is not 0..2");
}

TEST(SessionOptions, ConfigValidation) {
  protocols::MqttConfig config;
  absl::StatusOr<SessionOptions> o = SessionOptionsFromConfig(config);
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(o->clean_session);
  EXPECT_EQ(o->keep_alive, absl::Seconds(60));
  EXPECT_EQ(o->ping_timeout, absl::Seconds(30));
  EXPECT_GT(o->max_packet_size, 1u << 20);
  config.mutable_keep_alive()->set_seconds(70000);
  EXPECT_EQ(SessionOptionsFromConfig(config).status().message(),
            "mqtt: keep_alive: 19h26m40s is above MQTT's 65535 s");
  config.mutable_keep_alive()->set_seconds(10);
  config.mutable_ping_timeout()->set_seconds(10);
  EXPECT_FALSE(SessionOptionsFromConfig(config).ok());
  config.clear_ping_timeout();
  config.mutable_will()->set_topic("a/+");
  EXPECT_EQ(SessionOptionsFromConfig(config).status().code(), absl::StatusCode::kInvalidArgument);
  config.mutable_will()->set_topic("a/b");
  config.set_max_inflight(70000);
  EXPECT_FALSE(SessionOptionsFromConfig(config).ok());
  config.clear_max_inflight();
  config.mutable_store()->mutable_file();
  EXPECT_EQ(SessionOptionsFromConfig(config).status().message(), "mqtt: store.file.path: required");
  config.mutable_store()->mutable_file()->set_path("/tmp/x");
  ASSERT_TRUE(SessionOptionsFromConfig(config).ok());
  EXPECT_EQ(SessionOptionsFromConfig(config)->file_store->path(), "/tmp/x");
}

}  // namespace
}  // namespace mqtt
}  // namespace hublink

namespace hublink {
namespace mqtt {
namespace {

// A store that already holds messages (what a durable store hands back after a restart) is picked
// up by a new session: in-flight ones go again with DUP on a surviving session, queued ones after
// them.
TEST(SessionRecovery, MessagesInTheStoreAreSentAfterConnect) {
  auto loop = *EventLoop::Create();
  auto store = std::make_unique<MemoryMessageStore>();
  StoredMessage inflight;
  inflight.seq = 7;
  inflight.packet_id = 300;
  inflight.phase = StoredMessage::Phase::kAwaitingAck;
  inflight.qos = 1;
  inflight.topic = "r";
  inflight.payload = "in-flight";
  ASSERT_TRUE(store->Add(inflight).ok());
  StoredMessage queued = inflight;
  queued.seq = 9;
  queued.packet_id = 0;
  queued.phase = StoredMessage::Phase::kQueued;
  queued.payload = "queued";
  ASSERT_TRUE(store->Add(queued).ok());
  SessionOptions options;
  options.client_id = "dev";
  options.clean_session = false;
  Session session(*loop, options, std::move(store));
  EXPECT_EQ(session.inflight(), 1u);
  EXPECT_EQ(session.queued(), 1u);
  FakeLink link(*loop);
  session.OnLinkOpen(link);
  link.written.clear();
  std::string connack;
  AppendConnack(true, 0, &connack);
  session.OnLinkData(connack);
  loop->RunOnce(absl::ZeroDuration());  // the end of the turn flushes what it wrote
  Decoder decoder(1 << 20, Decoder::Role::kServer);
  std::vector<std::string> sent;
  ASSERT_TRUE(decoder
                  .Feed(link.written,
                        [&](const Packet& p) {
                          sent.push_back(std::string(p.payload) + "/" +
                                         std::to_string(p.packet_id) + "/" + std::to_string(p.dup));
                          return absl::OkStatus();
                        })
                  .ok());
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0], "in-flight/300/1");
  EXPECT_EQ(sent[1].substr(0, 7), "queued/");
  EXPECT_NE(sent[1], "queued/300/0") << "a new id, not one in use";
}

}  // namespace
}  // namespace mqtt
}  // namespace hublink

namespace hublink {
namespace mqtt {
namespace {

// A link that only counts bytes, so the test measures the session and not a growing test buffer.
class CountingLink : public ProtocolLink {
 public:
  explicit CountingLink(EventLoop& loop) : context_(loop, "broker.test", 1883) {}
  absl::Status Write(absl::string_view bytes) override {
    bytes_ += bytes.size();
    return absl::OkStatus();
  }
  size_t BufferedBytes() const override { return 0; }
  void Close(const absl::Status&) override { closed_ = true; }
  ConnectContext& context() override { return context_; }
  ConnectContext context_;
  size_t bytes_ = 0;
  bool closed_ = false;
};

TEST(SessionAllocations, Qos0PublishAndDeliveryAllocateNothingInSteadyState) {
  auto loop = *EventLoop::Create();
  SessionOptions options;
  options.client_id = "dev";
  Session session(*loop, options);
  CountingLink link(*loop);
  session.OnLinkOpen(link);
  std::string connack;
  AppendConnack(false, 0, &connack);
  session.OnLinkData(connack);
  ASSERT_TRUE(session.up());
  size_t delivered = 0;
  session.Subscribe(
      "dev/+/in", 0, [&](const Message& m) { delivered += m.payload.size(); }, nullptr);
  std::string incoming;
  ASSERT_TRUE(
      AppendPublish({"dev/1/in", std::string(100, 'i'), 0, false, false, 0}, &incoming).ok());
  const std::string payload(100, 'o');
  // Ten publishes per loop turn; the turn's end flushes them (coalesce_writes) in one write.
  auto run = [&](int n) {
    for (int i = 0; i < n; ++i) {
      session.Publish("dev/1/out", payload, 0, false, nullptr);
      session.OnLinkData(incoming);
      if (i % 10 == 9) loop->RunOnce(absl::ZeroDuration());
    }
  };
  run(100);  // warm-up: buffers reach their steady-state capacity
  size_t bytes_before = link.bytes_;
  long before = allocations;
  run(1000);
  long used = allocations - before;
  // Nothing per message; the task posted for the end-of-turn flush is one per turn.
  EXPECT_LE(used, 100) << "allocations for 1000 QoS 0 publishes + 1000 deliveries in 100 turns";
  EXPECT_EQ(link.bytes_ - bytes_before, 1000 * (2 + 2 + 9 + 100));
  EXPECT_EQ(delivered, 100u * 1100);
  EXPECT_FALSE(link.closed_);
}

}  // namespace
}  // namespace mqtt
}  // namespace hublink
