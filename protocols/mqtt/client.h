// hublink::Client: the application's handle on one device connection. Created from a resolved
// pipeline (transports, the "mqtt" protocol, an optional signer, the reconnect policy), it builds a
// fresh transport stack and ConnectContext for every attempt, drives the MQTT session over it, and
// reconnects with exponential backoff and jitter until told to stop (or the policy says give up).
//
// Usage, compiled and run as //examples:client_header_example (examples/client_header_example.cc,
// the body of its main(); `path` names a pipeline file such as "device.textproto"). Its BUILD
// deps: "//plugins:builtin", "//plugins:core", "//protocols/mqtt:client", "@system_libs//:absl";
// its includes: <chrono> <cstdio> <future> <memory> <string> <utility>, "absl/status/status.h",
// "absl/status/statusor.h", "plugins/builtin.h", "plugins/pipeline.h", "protocols/mqtt/client.h".
//
//   absl::StatusOr<std::unique_ptr<hublink::ResolvedPipeline>> pipeline =
//       hublink::LoadPipelineFile(path, hublink::BuiltinRegistry());
//   if (!pipeline.ok()) {  // the error names the file, the field and the plugin
//     std::fprintf(stderr, "%s\n", pipeline.status().ToString().c_str());
//     return 1;
//   }
//   absl::StatusOr<std::unique_ptr<hublink::Client>> client =
//       hublink::Client::Create(std::move(pipeline).value());
//   if (!client.ok()) {
//     std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
//     return 1;
//   }
//   // Runs on the client's loop thread. m.topic and m.payload point into the receive
//   // buffer, valid only during this call: copy what you keep. Never block on a client
//   // future in here: that deadlocks.
//   (*client)->Subscribe("dev/control", 1, [](const hublink::mqtt::Message& m) {
//     std::printf("%s: %s\n", std::string(m.topic).c_str(), std::string(m.payload).c_str());
//   });
//   (*client)->Connect();
//   // QoS 1: resolves on PUBACK. While the broker is unreachable the message waits in
//   // the queue, so wait with a deadline rather than get().
//   std::future<absl::Status> acked = (*client)->Publish("dev/data", "{\"t\":21}", 1);
//   absl::Status published = acked.wait_for(std::chrono::seconds(5)) == std::future_status::ready
//                                ? acked.get()
//                                : absl::DeadlineExceededError("no PUBACK within 5 s");
//   std::printf("publish: %s\n", published.ToString().c_str());
//   absl::Status closed = (*client)->Disconnect().get();  // resolves once the socket is closed
//   if (!closed.ok()) std::fprintf(stderr, "disconnect: %s\n", closed.ToString().c_str());
//   return published.ok() && closed.ok() ? 0 : 1;
//
// Threading: every method may be called from any thread; work is posted onto the client's EventLoop
// and runs there in call order (called on the loop thread itself, it runs at once). Handlers,
// completions and events run on the loop thread; they may call the client but must not destroy it.
// Handlers, completions and events run after the state change they report (an event handler
// calling Disconnect() from kConnected or kLost finds the client connected or waiting, as told). By
// default the client runs its own loop thread; with Options::loop it uses the caller's loop,
// which the caller drives (Run or RunOnce) — then do not block on a returned future from the loop
// thread, and destroy the client on the loop thread (or while the loop is not running).
//
// Never block on a future the client returned (get(), wait(), wait_for()) inside a message
// handler, a completion or an event handler, in either mode: they run on the loop thread, the
// thread that would resolve that future, so it cannot resolve while they wait (a wait_for(3s)
// there always times out, a get() hangs for good). In there, use the forms that take an
// mqtt::Completion, or post the waiting to a thread of your own.
//
// Received messages: the mqtt::Message a handler gets (its `topic` and `payload` string_views)
// points into the client's receive buffer and is valid only during that handler call; copy what
// you keep (std::string(m.payload)) before returning or before handing it to another thread.
//
// Lifetimes: the Registry is only read while a pipeline is resolved (LoadPipelineFile,
// ResolvedPipeline::Resolve, Create(config, registry)). The ResolvedPipeline owns the configured
// plugins that Resolve made and keeps no pointer to the Registry or its factories, and the client
// holds the pipeline (shared_ptr) for as long as it lives, so a Registry may be destroyed once
// those calls return (BuiltinRegistry() never is). What must stay is the plugins' code: do not
// unload a library whose plugins a live pipeline uses.
//
// Why the Client lives in protocols/mqtt rather than the core: its API (QoS, topic filters, message
// handlers) is MQTT's publish/subscribe model, reached through mqtt::Session, the pub/sub facet of
// the "mqtt" Protocol (asked for with As<mqtt::Session>(), plugins/typed_access.h). The core
// Protocol interface stays minimal; if a second pub/sub protocol appears, the facet
// (Publish/Subscribe/Unsubscribe/Disconnect/SessionObserver) can move to plugins/ unchanged.
#ifndef HUBLINK_PROTOCOLS_MQTT_CLIENT_H_
#define HUBLINK_PROTOCOLS_MQTT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "plugins/event_loop.h"
#include "plugins/pipeline.h"
#include "plugins/registry.h"
#include "protocols/mqtt/session.h"

namespace hublink {
namespace mqtt {
struct FileStoreEvent;  // protocols/mqtt/file_store/file_store.h
}  // namespace mqtt

struct ConnectionEvent {
  enum class Kind {
    kConnected,     // first CONNACK accepted
    kLost,          // an established connection ended; `reason` says why
    kReconnecting,  // the next attempt starts in `delay`; `reason` is the failure before it
    kReconnected,   // CONNACK accepted again after a loss
    // The policy's max_attempts / give_up_after was reached (`reason`: kUnavailable naming the last
    // failure), or the session hit a failure no reconnect can fix (`reason` is that failure, e.g.
    // kDataLoss for an oversize message the broker re-delivers at every connection; see
    // MqttConfig.max_packet_size). Pending completions fail with `reason`; with
    // MqttConfig.store.file the messages stay in the store and go out after a later Connect() (or
    // from the next client on the store).
    kGaveUp,
    kDisconnected,  // Disconnect() finished
    // Connected on an alternative stack, a re-probe (policy.reprobe_interval) got through the
    // primary one: the client sends DISCONNECT and connects there (`endpoint`); kReconnected
    // follows, or the usual kReconnecting when that attempt fails.
    kReturning,
  };
  Kind kind;
  absl::Status reason;
  absl::Duration delay = absl::ZeroDuration();
  // kReconnecting: which retry comes next, counting from 1 after each stable connection
  // (consecutive failures so far).
  int attempt = 0;
  bool session_present = false;
  // Where the event happened, or for kReconnecting where the next attempt goes:
  // "127.0.0.1:1883 (tcp > websocket)". With alternatives in the pipeline, an attempt that fails
  // before CONNACK moves on to the next stack; a lost connection retries the stack that worked.
  std::string endpoint;
  // The handshake phases of the attempt this event reports, as its layers timed them
  // (ConnectContext::BeginPhase): kConnected / kReconnected, the attempt that reached CONNACK;
  // kReconnecting / kGaveUp after an attempt that failed before CONNACK, that attempt, whose last
  // phase not done is where it failed. Empty for other events.
  std::vector<ConnectPhase> phases;
};

const char* ConnectionEventKindName(ConnectionEvent::Kind kind);
// "reconnecting in 1.20 s (retry 3): tcp: 127.0.0.1:1883: connection refused"
std::string DescribeConnectionEvent(const ConnectionEvent& event);
// One line per attempt, e.g.
//   dns 0.1 ms · tcp 0.2 ms · tls 1.3 ms (resumed) · ws 2.0 ms · connack 0.3 ms
// and for a failed one, ending where it failed:
//   dns 0.1 ms · tcp 0.2 ms · tls failed after 12 ms
std::string DescribeConnectPhases(const std::vector<ConnectPhase>& phases);

// Counters of one client since Create (Client::Stats()).
struct ClientStats {
  uint64_t attempts = 0;    // connection attempts started
  uint64_t connects = 0;    // attempts that reached CONNACK
  uint64_t reconnects = 0;  // of those, the ones after a lost connection
  uint64_t failures = 0;    // attempts that ended before CONNACK (a Disconnect() excluded)
  // failures by the phase the attempt ended in ("dns", "tcp", "proxy", "tls", "ws", "connack", a
  // custom layer's phase), or "setup" when it failed before any phase began (building the stack).
  std::map<std::string, uint64_t> failures_by_phase;
  uint64_t losses = 0;    // established connections that ended without Disconnect()
  uint64_t bytes_in = 0;  // on the wire, as the base transport (tcp) counted them
  uint64_t bytes_out = 0;
  uint64_t messages_in = 0;   // PUBLISH packets received
  uint64_t messages_out = 0;  // PUBLISH packets sent, re-sends included
  size_t queued = 0;          // publishes waiting for a connection or a free in-flight slot
  size_t inflight = 0;        // QoS 1/2 publishes sent and not yet acknowledged
  bool connected = false;
  std::string endpoint;  // where the client is connected, or where its next attempt goes
  std::vector<ConnectPhase> last_connect;  // the phases of the latest attempt that reached CONNACK
};

class Client {
 public:
  struct Options {
    // Null: the client creates a loop and runs it on a thread of its own.
    EventLoop* loop = nullptr;
    // For the loop the client creates (with your own `loop`, call its set_spin_before_sleep): after
    // reading from the broker, poll for up to this long before sleeping. Off by default. A few tens of
    // microseconds make a busy subscriber cheaper for the broker (it no longer pays a wake-up per
    // message) and faster, at up to this much client CPU per burst; see EventLoop.
    absl::Duration spin_before_sleep = absl::ZeroDuration();
    // When the broker streams at this client (a read with two or more PUBLISH or two or more
    // acknowledgements, or a PUBLISH after an earlier one with none of ours in between), the
    // loop's next sleep lets its writes pile up for up to this long before looking at them
    // (EventLoop::ModerateNextWait), rather than waking at each one. Long enough for the socket's
    // receive buffer to fill, it also makes the broker's kernel merge its writes into a few large
    // TCP segments, whose sending then runs in this client's read instead of in the broker.
    // Measured against mosquitto over tcp, 64 B QoS 0 messages, broker CPU per forwarded message:
    // 25 µs unmoderated, 19 µs with 50 µs (1.1 TCP segments per message), 16.6-16.9 µs with 1 ms
    // (0.2 segments; Paho, a slower reader whose window stays closed, 16.6), at 15 % more
    // messages per second and a quarter of the client's CPU of 50 µs. A request-response exchange
    // (a command and its answer, a ping and its pong) is never moderated; in a stream a message
    // may wait up to this long plus the kernel's timer slack (50 µs by default). Acknowledgements
    // of a window of our QoS 1/2 publishes are a stream too, even one per read, while two or more
    // are still awaited; their wait is also capped at half the time the broker needs, at the pace
    // measured, to acknowledge the rest, so a window-bound publisher never runs dry (not over a
    // WebSocket layer, where mosquitto's front end stalls a publisher that goes quiet). Zero turns
    // it off. Also applies to a loop you pass in `loop`.
    absl::Duration read_moderation = absl::Milliseconds(1);
    // Connection-state events, on the loop thread. The client logs every event: at DEBUG when
    // this is set (the handler reports them its own way), else at INFO (WARNING for kLost,
    // kReconnecting, kGaveUp).
    std::function<void(const ConnectionEvent&)> on_event;
    // Handshake milestones of every layer ("tcp", "connected ..."), on the loop thread.
    ConnectContext::StageObserver on_stage;
    // Seeds the backoff jitter; 0 = random.
    uint64_t seed = 0;
    // Null: the loop's clock. Otherwise the clock (a ManualClock in tests) for the reconnect policy
    // (backoff, stable_after, give_up_after) and the MQTT session's keep-alive, ping and CONNACK
    // timers; it must outlive the client and be driven on the loop thread. Transports keep their
    // own timeouts on the loop.
    mqtt::Clock* clock = nullptr;
    // With MqttConfig.store.file: the durable store's health (include
    // protocols/mqtt/file_store/file_store.h): kRecordsDropped / kSegmentDropped at recovery (these
    // arrive during Create, on the calling thread), kStoreFull, kMessageDropped (DROP_OLDEST made
    // room; that publish completes with kResourceExhausted), kWriteFailed, kSyncFailed (also from
    // the BATCH flush timer), kCompacted; later ones on the loop thread. Every event is logged
    // (kCompacted at INFO, the others at WARNING) whether or not this is set.
    std::function<void(const mqtt::FileStoreEvent&)> on_store_event;
  };

  // With MqttConfig.store.file the durable store is opened here and everything it holds is sent
  // after the first CONNACK, in its original order; an error opening it (e.g. kFailedPrecondition:
  // another process holds its lock) fails Create with that status.
  static absl::StatusOr<std::unique_ptr<Client>> Create(
      std::shared_ptr<const ResolvedPipeline> pipeline, Options options);
  static absl::StatusOr<std::unique_ptr<Client>> Create(
      std::shared_ptr<const ResolvedPipeline> pipeline) {
    return Create(std::move(pipeline), Options());
  }
  // Resolves `config` against `registry` first; its errors start with `source` (the file the
  // config came from, so that "device.textproto: transports[1] ..." says where to look).
  static absl::StatusOr<std::unique_ptr<Client>> Create(const Pipeline& config,
                                                        const Registry& registry, Options options,
                                                        absl::string_view source = "pipeline");

  // Abandons the connection (after a best-effort DISCONNECT) and resolves every pending completion
  // with kCancelled.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Starts connecting (no-op when already connecting or connected) and keeps the connection up.
  void Connect();
  // Sends DISCONNECT, closes, stops reconnecting. Resolves when closed. Unacknowledged publishes
  // stay queued for the next Connect().
  std::future<absl::Status> Disconnect();

  // Resolves when the QoS flow completes (QoS 0: handed to the transport, which waits while the
  // transports are over their soft limit; 1: PUBACK; 2: PUBCOMP).
  // Publishes made while disconnected are queued (bounded, see MqttConfig.offline_queue).
  // From other threads, publishes the loop has not taken yet are bounded by the same limits: one
  // that does not fit fails at once with kResourceExhausted. That is backpressure, not loss of
  // earlier messages: bound what you have outstanding (wait for completions, as `hublink pub`
  // does with at most 1,024 messages or 4 MiB) instead of publishing in a tight loop.
  // `topic` and `payload` are copied before the call returns. The callback form allocates nothing
  // in steady state (QoS 0): the copies land in reused buffers of a hand-off queue.
  std::future<absl::Status> Publish(absl::string_view topic, absl::string_view payload, int qos = 0,
                                    bool retain = false);
  void Publish(absl::string_view topic, absl::string_view payload, int qos, bool retain,
               mqtt::Completion done);

  // Resolves on SUBACK (kPermissionDenied for 0x80). The subscription is restored after every
  // reconnect.
  std::future<absl::Status> Subscribe(std::string filter, int qos, mqtt::MessageHandler handler);
  void Subscribe(std::string filter, int qos, mqtt::MessageHandler handler, mqtt::Completion done);
  std::future<absl::Status> Unsubscribe(std::string filter);

  // The server's clock minus the local one, e.g. from Tencent's $sys time service. Every later
  // connection attempt signs with it (expiries in server time); the system clock is never touched.
  // Without it, an offset a layer learned (the WebSocket 101 Date header) is used.
  void SetServerClockOffset(absl::Duration offset);

  // Resolves once every call made before it (from this thread) has been handled on the loop, with
  // the number of publishes then waiting (queued or in flight, messages recovered from a durable
  // store included). Each earlier Publish is by then recorded in the store (with
  // MqttConfig.store.file: on disk, and with sync ALWAYS durable) or has completed with its error.
  std::future<size_t> Pending();

  // The client's counters, as of when the loop handles the call (bytes of the attempt in progress
  // included).
  std::future<ClientStats> Stats();

  // True between CONNACK and the loss of that connection.
  bool connected() const;
  EventLoop& loop();

  class Impl;

 private:
  explicit Client(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace hublink

#endif  // HUBLINK_PROTOCOLS_MQTT_CLIENT_H_
