// The benchmark scenarios (scenarios.h) run through Eclipse Paho C's
// asynchronous API (Debian libpaho-mqtt-dev, -lpaho-mqtt3as), as an application
// would use it: one MQTTAsync handle per connection, no persistence,
// MQTT 3.1.1, the library's default socket options (run it under
// nodelay_shim.so to force TCP_NODELAY).
#include <MQTTAsync.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "bench/bench_util.h"
#include "bench/notification.h"
#include "bench/scenarios.h"

namespace hublink {
namespace bench {
namespace {

class PahoConnection : public Connection {
 public:
  PahoConnection(const Target& target, const std::string& client_id, int max_inflight,
                 ConnectionListener* listener)
      : target_(target), max_inflight_(max_inflight), listener_(listener) {
    std::string scheme = target.transport == "tls" ? "ssl" : target.transport;
    std::string uri = absl::StrCat(scheme, "://", target.host, ":", target.port);
    MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer;
    create.MQTTVersion = MQTTVERSION_3_1_1;
    // Paho refuses sends beyond this many queued commands (default 100) even
    // while connected; the benchmark's own window bounds the queue, as it does
    // for hublink.
    create.maxBufferedMessages = 1 << 20;
    int rc = MQTTAsync_createWithOptions(&handle_, uri.c_str(), client_id.c_str(),
                                         MQTTCLIENT_PERSISTENCE_NONE, nullptr, &create);
    if (rc != MQTTASYNC_SUCCESS) Die("create", rc);
    rc = MQTTAsync_setCallbacks(handle_, this, nullptr, &PahoConnection::Arrived, nullptr);
    if (rc != MQTTASYNC_SUCCESS) Die("setCallbacks", rc);
  }

  ~PahoConnection() override { MQTTAsync_destroy(&handle_); }

  void StartConnect() override {
    const bool ws = target_.transport == "ws" || target_.transport == "wss";
    const bool tls = target_.transport == "tls" || target_.transport == "wss";
    MQTTAsync_connectOptions options = MQTTAsync_connectOptions_initializer;
    if (ws) options = MQTTAsync_connectOptions_initializer_ws;
    options.keepAliveInterval = 60;
    options.cleansession = 1;
    options.maxInflight = max_inflight_;
    options.MQTTVersion = MQTTVERSION_3_1_1;
    options.context = this;
    options.onSuccess = [](void* context, MQTTAsync_successData*) {
      auto* self = static_cast<PahoConnection*>(context);
      self->connected_ = true;
      self->settled_.Notify();
    };
    options.onFailure = [](void* context, MQTTAsync_failureData* failure) {
      auto* self = static_cast<PahoConnection*>(context);
      std::fprintf(stderr, "bench: paho: connect failed: %d %s\n", failure ? failure->code : 0,
                   failure && failure->message ? failure->message : "");
      self->settled_.Notify();
    };
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    if (tls) {
      ssl.trustStore = target_.ca_file.c_str();
      ssl.enableServerCertAuth = 1;
      ssl.verify = 1;  // host name check, as hublink does
      options.ssl = &ssl;
    }
    int rc = MQTTAsync_connect(handle_, &options);
    if (rc != MQTTASYNC_SUCCESS) {
      std::fprintf(stderr, "bench: paho: MQTTAsync_connect: %d\n", rc);
      settled_.Notify();
    }
  }

  bool WaitConnected(absl::Duration timeout) override {
    return settled_.WaitForNotificationWithTimeout(timeout) && connected_;
  }

  bool Subscribe(const std::string& filter, int qos, absl::Duration timeout) override {
    struct Wait {
      Notification done;
      bool ok = false;
    } wait;
    MQTTAsync_responseOptions options = MQTTAsync_responseOptions_initializer;
    options.context = &wait;
    options.onSuccess = [](void* context, MQTTAsync_successData* data) {
      auto* wait = static_cast<Wait*>(context);
      wait->ok = data == nullptr || data->alt.qos != 0x80;
      wait->done.Notify();
    };
    options.onFailure = [](void* context, MQTTAsync_failureData*) {
      static_cast<Wait*>(context)->done.Notify();
    };
    if (MQTTAsync_subscribe(handle_, filter.c_str(), qos, &options) != MQTTASYNC_SUCCESS) {
      return false;
    }
    // `wait` lives on this stack: wait for the callback even past the timeout's
    // intent.
    if (!wait.done.WaitForNotificationWithTimeout(timeout)) {
      wait.done.WaitForNotification();
    }
    return wait.ok;
  }

  void Publish(const std::string& topic, absl::string_view payload, int qos) override {
    MQTTAsync_message message = MQTTAsync_message_initializer;
    message.payload = const_cast<char*>(payload.data());
    message.payloadlen = static_cast<int>(payload.size());
    message.qos = qos;
    message.retained = 0;
    MQTTAsync_responseOptions options = MQTTAsync_responseOptions_initializer;
    options.context = listener_;
    options.onSuccess = [](void* context, MQTTAsync_successData*) {
      static_cast<ConnectionListener*>(context)->OnPublished(true);
    };
    options.onFailure = [](void* context, MQTTAsync_failureData*) {
      static_cast<ConnectionListener*>(context)->OnPublished(false);
    };
    int rc = MQTTAsync_sendMessage(handle_, topic.c_str(), &message, &options);
    if (rc != MQTTASYNC_SUCCESS) {
      if (errors_++ < 3) std::fprintf(stderr, "bench: paho: MQTTAsync_sendMessage: %d\n", rc);
      listener_->OnPublished(false);
    }
  }

  void Disconnect() override {
    Notification done;
    MQTTAsync_disconnectOptions options = MQTTAsync_disconnectOptions_initializer;
    options.timeout = 1000;
    options.context = &done;
    options.onSuccess = [](void* context, MQTTAsync_successData*) {
      static_cast<Notification*>(context)->Notify();
    };
    options.onFailure = [](void* context, MQTTAsync_failureData*) {
      static_cast<Notification*>(context)->Notify();
    };
    if (MQTTAsync_disconnect(handle_, &options) == MQTTASYNC_SUCCESS) {
      done.WaitForNotificationWithTimeout(absl::Seconds(5));
    }
  }

 private:
  static int Arrived(void* context, char* topic, int topic_len, MQTTAsync_message* message) {
    auto* self = static_cast<PahoConnection*>(context);
    size_t length = topic_len > 0 ? static_cast<size_t>(topic_len) : std::strlen(topic);
    self->listener_->OnMessage(absl::string_view(topic, length),
                               absl::string_view(static_cast<const char*>(message->payload),
                                                 static_cast<size_t>(message->payloadlen)));
    MQTTAsync_freeMessage(&message);
    MQTTAsync_free(topic);
    return 1;
  }

  static void Die(const char* what, int rc) {
    std::fprintf(stderr, "bench: paho: %s: %d\n", what, rc);
    std::exit(2);
  }

  const Target target_;
  const int max_inflight_;
  ConnectionListener* const listener_;
  MQTTAsync handle_ = nullptr;
  Notification settled_;
  bool connected_ = false;  // written before settled_.Notify()
  int errors_ = 0;
};

class PahoFactory : public ConnectionFactory {
 public:
  std::unique_ptr<Connection> Make(const Target& target, const std::string& client_id,
                                   int max_inflight, ConnectionListener* listener) override {
    return std::make_unique<PahoConnection>(target, client_id, max_inflight, listener);
  }
};

}  // namespace
}  // namespace bench
}  // namespace hublink

int main(int argc, char** argv) {
  hublink::bench::Flags flags(argc, argv);
  int code;
  {
    hublink::bench::PahoFactory factory;
    code = hublink::bench::RunScenario(flags, factory);
  }
  // The peer's exit is not hublink's to test: Paho C's background thread can still be inside the
  // system OpenSSL while the exit handlers tear OpenSSL down (a SEGV seen under ASan), and both
  // leave allocations behind that LeakSanitizer would report as this process's. The result is
  // printed and flushed; end here, before any exit handler runs. hublink_bench exits normally,
  // so hublink's own leaks still fail the suite.
  std::fflush(nullptr);
  std::_Exit(code);
}
