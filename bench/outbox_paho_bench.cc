// Paho C's durable outbox for comparison with //bench:outbox_bench: QoS 1 throughput with
// MQTTCLIENT_PERSISTENCE_DEFAULT (one file per in-flight message in --dir) over tcp. A binary of
// its own because Paho links the system OpenSSL and hublink links BoringSSL; outbox_bench runs it
// against the same mosquitto and prints its row.
//
//   outbox_paho_bench --port=P [--count=N] [--payload=BYTES] [--dir=DIR]
#include <MQTTAsync.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "bench/notification.h"

namespace {

std::atomic<int> done{0};
std::atomic<int> failed{0};
hublink::bench::Notification connected;
hublink::bench::Notification all_done;
int total = 0;

void OnPublished(bool ok) {
  if (!ok) ++failed;
  if (++done == total) all_done.Notify();
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, count = 20000, payload_size = 64;
  std::string dir = "/tmp";
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--port=")) {
      if (!absl::SimpleAtoi(arg, &port)) return 2;
    } else if (absl::ConsumePrefix(&arg, "--count=")) {
      if (!absl::SimpleAtoi(arg, &count) || count <= 0) return 2;
    } else if (absl::ConsumePrefix(&arg, "--payload=")) {
      if (!absl::SimpleAtoi(arg, &payload_size) || payload_size < 0) return 2;
    } else if (absl::ConsumePrefix(&arg, "--dir=")) {
      dir = std::string(arg);
    } else {
      return 2;
    }
  }
  if (port == 0) return 2;
  total = count;
  std::string persist = absl::StrCat(dir, "/outbox_paho_", getpid());
  std::string uri = absl::StrCat("tcp://127.0.0.1:", port);
  MQTTAsync handle;
  MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer;
  create.MQTTVersion = MQTTVERSION_3_1_1;
  create.maxBufferedMessages = 1 << 20;
  int rc = MQTTAsync_createWithOptions(&handle, uri.c_str(), "outbox-paho",
                                       MQTTCLIENT_PERSISTENCE_DEFAULT,
                                       const_cast<char*>(persist.c_str()), &create);
  if (rc != MQTTASYNC_SUCCESS) return 1;
  MQTTAsync_connectOptions options = MQTTAsync_connectOptions_initializer;
  options.cleansession = 1;
  options.maxInflight = 64;
  options.onSuccess = [](void*, MQTTAsync_successData*) { connected.Notify(); };
  if (MQTTAsync_connect(handle, &options) != MQTTASYNC_SUCCESS ||
      !connected.WaitForNotificationWithTimeout(absl::Seconds(10))) {
    std::fprintf(stderr, "paho: no connection\n");
    return 1;
  }
  std::string payload(payload_size, 'x');
  absl::Time start = absl::Now();
  for (int i = 0; i < count; ++i) {
    MQTTAsync_message message = MQTTAsync_message_initializer;
    message.payload = payload.data();
    message.payloadlen = static_cast<int>(payload.size());
    message.qos = 1;
    MQTTAsync_responseOptions response = MQTTAsync_responseOptions_initializer;
    response.onSuccess = [](void*, MQTTAsync_successData*) { OnPublished(true); };
    response.onFailure = [](void*, MQTTAsync_failureData*) { OnPublished(false); };
    // Paho refuses beyond maxInflight while connected only with a full buffer; retry briefly.
    for (int attempt = 0; attempt < 10000; ++attempt) {
      rc = MQTTAsync_sendMessage(handle, "bench/outbox", &message, &response);
      if (rc == MQTTASYNC_SUCCESS) break;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    if (rc != MQTTASYNC_SUCCESS) OnPublished(false);
  }
  if (!all_done.WaitForNotificationWithTimeout(absl::Minutes(10))) {
    std::fprintf(stderr, "paho: timed out with %d of %d\n", done.load(), count);
    return 1;
  }
  double rate = count / absl::ToDoubleSeconds(absl::Now() - start);
  MQTTAsync_disconnectOptions disconnect = MQTTAsync_disconnectOptions_initializer;
  MQTTAsync_disconnect(handle, &disconnect);
  MQTTAsync_destroy(&handle);
  (void)!std::system(absl::StrCat("rm -rf '", persist, "'").c_str());
  if (failed > 0) std::fprintf(stderr, "paho: %d publishes failed\n", failed.load());
  std::printf("%.0f\n", rate);
  return 0;
}
