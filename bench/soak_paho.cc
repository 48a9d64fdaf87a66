// The soak client (soak_client.h) over Eclipse Paho C's asynchronous API (Debian
// libpaho-mqtt-dev): MQTT 3.1.1, cleansession 0, automatic reconnect with the soak's
// min/max retry interval, the soak's keep-alive and connect timeout, sendWhileDisconnected with a
// large buffer, and persistence NONE (in-flight messages are kept in memory across reconnects,
// not on disk), as the benchmark uses it.
#include <MQTTAsync.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "bench/bench_util.h"
#include "bench/notification.h"
#include "bench/soak_client.h"

namespace hublink {
namespace bench {
namespace {

class PahoSoakConnection : public SoakConnection {
 public:
  PahoSoakConnection(const SoakSettings& settings, SoakListener* listener)
      : settings_(settings), listener_(listener) {
    std::string scheme = settings.transport == "tls" ? "ssl" : settings.transport;
    std::string uri = absl::StrCat(scheme, "://", settings.host, ":", settings.port);
    MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer;
    create.MQTTVersion = MQTTVERSION_3_1_1;
    create.sendWhileDisconnected = 1;
    create.maxBufferedMessages = 1 << 20;
    int rc = MQTTAsync_createWithOptions(&handle_, uri.c_str(), settings.client_id.c_str(),
                                         MQTTCLIENT_PERSISTENCE_NONE, nullptr, &create);
    if (rc != MQTTASYNC_SUCCESS) Die("create", rc);
    rc = MQTTAsync_setCallbacks(handle_, this, &PahoSoakConnection::Lost,
                                &PahoSoakConnection::Arrived, nullptr);
    if (rc != MQTTASYNC_SUCCESS) Die("setCallbacks", rc);
    rc = MQTTAsync_setConnected(handle_, this, &PahoSoakConnection::Connected);
    if (rc != MQTTASYNC_SUCCESS) Die("setConnected", rc);
  }

  ~PahoSoakConnection() override { MQTTAsync_destroy(&handle_); }

  void Start() override {
    const bool ws = settings_.transport == "ws" || settings_.transport == "wss";
    const bool tls = settings_.transport == "tls" || settings_.transport == "wss";
    MQTTAsync_connectOptions options = MQTTAsync_connectOptions_initializer;
    if (ws) options = MQTTAsync_connectOptions_initializer_ws;
    options.keepAliveInterval = settings_.keep_alive_s;
    options.cleansession = 0;
    options.maxInflight = settings_.max_inflight;
    options.MQTTVersion = MQTTVERSION_3_1_1;
    options.connectTimeout = static_cast<int>(absl::ToInt64Seconds(settings_.connect_timeout));
    options.automaticReconnect = 1;
    options.minRetryInterval = settings_.retry_min_s;
    options.maxRetryInterval = settings_.retry_max_s;
    options.context = this;
    options.onSuccess = [](void* context, MQTTAsync_successData*) {
      static_cast<PahoSoakConnection*>(context)->Up("connect onSuccess");
    };
    options.onFailure = [](void* context, MQTTAsync_failureData* failure) {
      auto* self = static_cast<PahoSoakConnection*>(context);
      self->listener_->OnEvent("reconnecting",
                               absl::StrCat("connect failed: ", failure ? failure->code : 0, " ",
                                            failure && failure->message ? failure->message : ""));
    };
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    if (tls) {
      ssl.trustStore = settings_.ca_file.c_str();
      ssl.enableServerCertAuth = 1;
      ssl.verify = 1;
      options.ssl = &ssl;
    }
    int rc = MQTTAsync_connect(handle_, &options);
    if (rc != MQTTASYNC_SUCCESS) {
      listener_->OnEvent("reconnecting", absl::StrCat("MQTTAsync_connect: ", rc));
    }
  }

  bool Subscribe(const std::string& filter, int qos, absl::Duration timeout) override {
    struct Wait {
      Notification done;
      bool ok = false;
    };
    // Heap-allocated: Paho may call back after a timed-out wait returned.
    auto* wait = new Wait;
    MQTTAsync_responseOptions options = MQTTAsync_responseOptions_initializer;
    options.context = wait;
    options.onSuccess = [](void* context, MQTTAsync_successData* data) {
      auto* wait = static_cast<Wait*>(context);
      wait->ok = data == nullptr || data->alt.qos != 0x80;
      wait->done.Notify();
    };
    options.onFailure = [](void* context, MQTTAsync_failureData*) {
      static_cast<Wait*>(context)->done.Notify();
    };
    if (MQTTAsync_subscribe(handle_, filter.c_str(), qos, &options) != MQTTASYNC_SUCCESS) {
      delete wait;
      return false;
    }
    if (!wait->done.WaitForNotificationWithTimeout(timeout)) return false;  // leaked, bounded
    bool ok = wait->ok;
    delete wait;
    return ok;
  }

  void Publish(const std::string& topic, absl::string_view payload, int qos,
               uint64_t seq) override {
    MQTTAsync_message message = MQTTAsync_message_initializer;
    message.payload = const_cast<char*>(payload.data());
    message.payloadlen = static_cast<int>(payload.size());
    message.qos = qos;
    message.retained = 0;
    auto* pending = new Pending{listener_, seq};
    MQTTAsync_responseOptions options = MQTTAsync_responseOptions_initializer;
    options.context = pending;
    options.onSuccess = [](void* context, MQTTAsync_successData*) {
      auto* pending = static_cast<Pending*>(context);
      pending->listener->OnCompleted(pending->seq, true, "");
      delete pending;
    };
    options.onFailure = [](void* context, MQTTAsync_failureData* failure) {
      auto* pending = static_cast<Pending*>(context);
      pending->listener->OnCompleted(
          pending->seq, false,
          absl::StrCat("paho onFailure ", failure ? failure->code : 0, " ",
                       failure && failure->message ? failure->message : ""));
      delete pending;
    };
    int rc = MQTTAsync_sendMessage(handle_, topic.c_str(), &message, &options);
    if (rc != MQTTASYNC_SUCCESS) {
      listener_->OnCompleted(seq, false, absl::StrCat("MQTTAsync_sendMessage ", rc));
      delete pending;
    }
  }

  void Stop() override {
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
  struct Pending {
    SoakListener* listener;
    uint64_t seq;
  };

  // Paho reports a connection twice on the first connect (onSuccess and the connected callback):
  // one "connected" per CONNACK.
  void Up(const char* how) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (up_) return;
      up_ = true;
    }
    listener_->OnEvent("connected", how);
  }

  static void Connected(void* context, char* cause) {
    static_cast<PahoSoakConnection*>(context)->Up(cause ? cause : "connected");
  }

  static void Lost(void* context, char* cause) {
    auto* self = static_cast<PahoSoakConnection*>(context);
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->up_ = false;
    }
    self->listener_->OnEvent("lost", cause ? cause : "connection lost");
  }

  static int Arrived(void* context, char* topic, int, MQTTAsync_message* message) {
    auto* self = static_cast<PahoSoakConnection*>(context);
    self->listener_->OnMessage(absl::string_view(static_cast<const char*>(message->payload),
                                                 static_cast<size_t>(message->payloadlen)),
                               message->qos, message->dup != 0);
    MQTTAsync_freeMessage(&message);
    MQTTAsync_free(topic);
    return 1;
  }

  static void Die(const char* what, int rc) {
    std::fprintf(stderr, "soak: paho: %s: %d\n", what, rc);
    std::exit(2);
  }

  const SoakSettings settings_;
  SoakListener* const listener_;
  MQTTAsync handle_ = nullptr;
  std::mutex mu_;  // std::mutex: plugins/event_loop.h's locking policy
  bool up_ = false;
};

class PahoSoakFactory : public SoakFactory {
 public:
  const char* name() const override { return "paho"; }
  std::unique_ptr<SoakConnection> Make(const SoakSettings& settings,
                                       SoakListener* listener) override {
    return std::make_unique<PahoSoakConnection>(settings, listener);
  }
};

}  // namespace
}  // namespace bench
}  // namespace hublink

int main(int argc, char** argv) {
  hublink::bench::Flags flags(argc, argv);
  int code;
  {
    hublink::bench::PahoSoakFactory factory;
    code = hublink::bench::RunSoakClient(flags, factory);
  }
  // As paho_bench: end before exit handlers tear OpenSSL down under Paho's threads.
  std::fflush(nullptr);
  std::_Exit(code);
}
