// A bare-socket probe of the steps a connect takes (TCP, TLS, WebSocket
// upgrade, MQTT CONNECT/CONNACK), timed one by one with blocking calls,
// TCP_NODELAY and no client library. If a step is slow here too, the peer (the
// broker) is what makes it slow.
//
//   connect_probe --transport=wss --port=N --ca_file=ca.pem --count=50
//   [--pause_ms=1]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"

namespace hublink {
namespace bench {
namespace {

struct Steps {
  double tcp_ms = 0, tls_ms = 0, upgrade_ms = 0, connack_ms = 0, total_ms = 0;
};

class Probe {
 public:
  Probe(const Flags& flags) : flags_(flags) {
    transport_ = flags.Get("transport", "tcp");
    tls_ = transport_ == "tls" || transport_ == "wss";
    ws_ = transport_ == "ws" || transport_ == "wss";
    port_ = static_cast<int>(flags.GetInt("port", 1883));
    pause_ = absl::Milliseconds(flags.GetDouble("pause_ms", 0));
    if (tls_) {
      ctx_ = SSL_CTX_new(TLS_method());
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
      if (!SSL_CTX_load_verify_locations(ctx_, flags.Get("ca_file").c_str(), nullptr)) {
        std::fprintf(stderr, "probe: cannot load --ca_file\n");
      }
    }
  }
  ~Probe() {
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  }

  bool Once(int index, Steps* steps) {
    const absl::Time start = absl::Now();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    int one = flags_.GetInt("nodelay", 1);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval timeout = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port_));
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    absl::Time mark = absl::Now();
    steps->tcp_ms = absl::ToDoubleMilliseconds(mark - start);
    SSL* ssl = nullptr;
    if (ok && tls_) {
      ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      SSL_set_tlsext_host_name(ssl, "localhost");
      ok = SSL_connect(ssl) == 1;
      if (!ok) ERR_print_errors_fp(stderr);
      absl::Time now = absl::Now();
      steps->tls_ms = absl::ToDoubleMilliseconds(now - mark);
      mark = now;
    }
    fd_ = fd;
    ssl_ = ssl;
    if (ok && ws_) {
      // --pause_ms: what a client that sends its request a moment after
      // connecting sees.
      if (pause_ > absl::ZeroDuration()) absl::SleepFor(pause_);
      ok = Send(absl::StrCat("GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:", port_,
                             "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"));
      std::string response;
      while (ok && response.find("\r\n\r\n") == std::string::npos) ok = Receive(&response);
      ok = ok && response.compare(0, 12, "HTTP/1.1 101") == 0;
      if (!ok) std::fprintf(stderr, "probe: upgrade: %s\n", response.c_str());
      absl::Time now = absl::Now();
      steps->upgrade_ms = absl::ToDoubleMilliseconds(now - mark);
      mark = now;
    }
    if (ok) {
      std::string client_id = absl::StrCat("probe-", getpid(), "-", index);
      std::string packet = {
          0x10, static_cast<char>(12 + client_id.size()), 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60,
          0,    static_cast<char>(client_id.size())};
      packet += client_id;
      if (ws_) {
        // One masked binary frame; the all-zero key leaves the payload as is.
        std::string frame = {
            static_cast<char>(0x82), static_cast<char>(0x80 | packet.size()), 0, 0, 0, 0};
        packet = frame + packet;
      }
      ok = Send(packet);
      std::string reply;
      const size_t want = ws_ ? 6 : 4;  // CONNACK, behind a 2-byte frame header over ws
      while (ok && reply.size() < want) ok = Receive(&reply);
      ok = ok && static_cast<uint8_t>(reply[want - 4]) == 0x20 && reply[want - 1] == 0;
      absl::Time now = absl::Now();
      steps->connack_ms = absl::ToDoubleMilliseconds(now - mark);
      steps->total_ms = absl::ToDoubleMilliseconds(now - start);
    }
    if (ssl != nullptr) {
      SSL_shutdown(ssl);
      SSL_free(ssl);
    }
    close(fd);
    return ok;
  }

 private:
  bool Send(const std::string& bytes) {
    if (ssl_ != nullptr)
      return SSL_write(ssl_, bytes.data(), bytes.size()) == static_cast<int>(bytes.size());
    return write(fd_, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  }
  bool Receive(std::string* into) {
    char buffer[4096];
    int n = ssl_ != nullptr ? SSL_read(ssl_, buffer, sizeof(buffer))
                            : static_cast<int>(read(fd_, buffer, sizeof(buffer)));
    if (n <= 0) return false;
    into->append(buffer, static_cast<size_t>(n));
    return true;
  }

  const Flags& flags_;
  std::string transport_;
  bool tls_ = false, ws_ = false;
  int port_ = 0;
  absl::Duration pause_;
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
};

// Blocking TCP connection with CONNECT/CONNACK done; -1 on failure.
int RawMqttConnect(int port, const std::string& client_id) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct timeval timeout = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  std::string packet = {
      0x10, static_cast<char>(12 + client_id.size()), 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60,
      0,    static_cast<char>(client_id.size())};
  packet += client_id;
  char reply[4];
  if (write(fd, packet.data(), packet.size()) != static_cast<ssize_t>(packet.size()) ||
      recv(fd, reply, sizeof(reply), MSG_WAITALL) != 4 || reply[0] != 0x20 || reply[3] != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// PUBLISH QoS 0 with a 2-byte remaining length (payloads up to ~16 KiB).
std::string RawPublish(const std::string& topic, size_t size) {
  size_t remaining = 2 + topic.size() + size;
  std::string packet;
  packet.push_back(0x30);
  while (true) {
    uint8_t byte = remaining % 128;
    remaining /= 128;
    if (remaining > 0) byte |= 0x80;
    packet.push_back(static_cast<char>(byte));
    if (remaining == 0) break;
  }
  packet.push_back(static_cast<char>(topic.size() >> 8));
  packet.push_back(static_cast<char>(topic.size() & 0xFF));
  packet += topic;
  packet.append(size, 'x');
  return packet;
}

int Flood(const Flags& flags) {
  const int port = static_cast<int>(flags.GetInt("port", 1883));
  const int64_t count = flags.GetInt("count", 200000);
  const size_t size = static_cast<size_t>(flags.GetInt("size", 64));
  const pid_t broker = static_cast<pid_t>(flags.GetInt("broker_pid", 0));
  const absl::Duration cap = absl::Seconds(flags.GetDouble("seconds", 5));
  const std::string run = flags.Get("run_id", "0");
  const std::string topic = absl::StrCat("f/", run);
  int sub = RawMqttConnect(port, absl::StrCat("fs", run));
  int pub = RawMqttConnect(port, absl::StrCat("fp", run));
  if (sub < 0 || pub < 0) {
    std::fprintf(stderr, "probe: flood: connect failed\n");
    return 2;
  }
  std::string subscribe = {
      static_cast<char>(0x82),        static_cast<char>(5 + topic.size()), 0, 1, 0,
      static_cast<char>(topic.size())};
  subscribe += topic;
  subscribe.push_back(0);
  char suback[5];
  if (write(sub, subscribe.data(), subscribe.size()) != static_cast<ssize_t>(subscribe.size()) ||
      recv(sub, suback, sizeof(suback), MSG_WAITALL) != 5 ||
      static_cast<uint8_t>(suback[0]) != 0x90) {
    std::fprintf(stderr, "probe: flood: subscribe failed\n");
    return 2;
  }

  const std::string one = RawPublish(topic, size);
  std::string batch;
  while (batch.size() + one.size() <= (64 << 10)) batch += one;
  const int64_t per_batch = static_cast<int64_t>(batch.size() / one.size());

  // The subscriber counts whole packets: every one it gets is `one.size()` bytes.
  std::atomic<int64_t> received_bytes{0};
  std::atomic<int64_t> last_nanos{0};
  const int64_t want_bytes = count * static_cast<int64_t>(one.size());
  const absl::Time start = absl::Now();
  const absl::Duration broker0 = ProcessCpuOf(broker);
  std::thread reader([&] {
    char buffer[1 << 16];
    while (received_bytes.load() < want_bytes && absl::Now() < start + cap + absl::Seconds(1)) {
      ssize_t n = read(sub, buffer, sizeof(buffer));
      if (n <= 0) break;
      received_bytes.fetch_add(n);
      last_nanos.store(absl::ToUnixNanos(absl::Now()));
    }
  });
  // Stay at most --window_batches batches ahead of the subscriber: an unbounded backlog would
  // measure the broker's queue management rather than its forwarding rate.
  const int64_t ahead = flags.GetInt("window_batches", 4) * per_batch;
  int64_t sent = 0;
  while (sent < count && absl::Now() < start + cap) {
    while (sent - received_bytes.load() / static_cast<int64_t>(one.size()) > ahead &&
           absl::Now() < start + cap) {
      std::this_thread::yield();
    }
    if (write(pub, batch.data(), batch.size()) != static_cast<ssize_t>(batch.size())) break;
    sent += per_batch;
  }
  reader.join();
  const absl::Time end = absl::Now();
  const absl::Duration broker_cpu = ProcessCpuOf(broker) - broker0;
  const int64_t received = received_bytes.load() / static_cast<int64_t>(one.size());
  const double seconds = absl::ToDoubleSeconds(
      (last_nanos.load() > 0 ? absl::FromUnixNanos(last_nanos.load()) : end) - start);
  close(pub);
  close(sub);
  Result result;
  result.Add("sent", sent)
      .Add("received", received)
      .Add("seconds", seconds)
      .Add("msgs_per_s", seconds > 0 ? received / seconds : 0.0)
      .Add("mb_per_s", seconds > 0 ? received * static_cast<double>(size) / seconds / 1e6 : 0.0)
      .Add("broker_cpu_pct",
           100.0 * absl::ToDoubleSeconds(broker_cpu) / absl::ToDoubleSeconds(end - start))
      .Add("broker_cpu_s", absl::ToDoubleSeconds(broker_cpu));
  result.Print();
  return received > 0 ? 0 : 2;
}

int Main(const Flags& flags) {
  if (flags.Has("flood")) return Flood(flags);
  Probe probe(flags);
  const int64_t count = flags.GetInt("count", 50);
  const absl::Time deadline = absl::Now() + absl::Seconds(flags.GetDouble("seconds", 30));
  std::vector<double> tcp, tls, upgrade, connack, total;
  int64_t failures = 0;
  for (int64_t i = 0; i < count && absl::Now() < deadline; ++i) {
    Steps steps;
    if (!probe.Once(static_cast<int>(i), &steps)) {
      ++failures;
      continue;
    }
    tcp.push_back(steps.tcp_ms);
    tls.push_back(steps.tls_ms);
    upgrade.push_back(steps.upgrade_ms);
    connack.push_back(steps.connack_ms);
    total.push_back(steps.total_ms);
  }
  Result result;
  result.Add("n", static_cast<int64_t>(total.size()))
      .Add("failures", failures)
      .Add("tcp_ms", Percentile(tcp, 50))
      .Add("tls_ms", Percentile(tls, 50))
      .Add("upgrade_ms", Percentile(upgrade, 50))
      .Add("connack_ms", Percentile(connack, 50))
      .Add("p50_ms", Percentile(total, 50))
      .Add("max_ms", Percentile(total, 100));
  result.Print();
  return total.empty() ? 2 : 0;
}

}  // namespace
}  // namespace bench
}  // namespace hublink

int main(int argc, char** argv) { return hublink::bench::Main(hublink::bench::Flags(argc, argv)); }
