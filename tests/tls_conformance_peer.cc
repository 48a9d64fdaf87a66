#include "tests/tls_conformance_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <list>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "plugins/status_macros.h"
#include "tests/test_util.h"
#include "transports/tcp/tcp_transport.h"
#include "transports/tls/tls_transport.h"

namespace hublink {
namespace testing {
namespace {

constexpr absl::string_view kHello = "HELLO\n";
constexpr absl::string_view kQuit = "QUIT\n";

class Connection : public TlsPeerConnection {
 public:
  Connection(SSL* ssl, int fd, const std::atomic<bool>& stop) : ssl_(ssl), fd_(fd), stop_(stop) {}

  int Read(char* buffer, int size) override {
    // Bounded: 600 polls of 100 ms, so a stuck test cannot hang a thread for ever.
    for (int i = 0; i < 600 && !stop_.load(); ++i) {
      if (SSL_pending(ssl_) == 0) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 100) == 0) continue;
      }
      int n = SSL_read(ssl_, buffer, size);
      if (n > 0) return n;
      int err = SSL_get_error(ssl_, n);
      ERR_clear_error();
      if (err == SSL_ERROR_WANT_READ) continue;
      if (err == SSL_ERROR_ZERO_RETURN) return 0;
      if (err == SSL_ERROR_SYSCALL && n == 0) return 0;  // EOF without close_notify
      return -1;
    }
    return -1;
  }

  bool Write(absl::string_view bytes) override {
    while (!bytes.empty()) {
      int n =
          SSL_write(ssl_, bytes.data(), static_cast<int>(std::min<size_t>(bytes.size(), 1 << 20)));
      if (n <= 0) {
        ERR_clear_error();
        return false;
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

 private:
  SSL* ssl_;
  int fd_;
  const std::atomic<bool>& stop_;
};

class TlsConformancePeer : public ConformancePeer {
 public:
  explicit TlsConformancePeer(TlsConformancePeerOptions options) : options_(std::move(options)) {}

  ~TlsConformancePeer() override {
    stop_.store(true);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (int fd : live_fds_) shutdown(fd, SHUT_RDWR);  // unblocks handshakes and reads
    }
    if (accept_thread_.joinable()) accept_thread_.join();
    for (std::thread& t : connection_threads_) t.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }

  absl::Status Start() {
    // The peer writes through SSL_set_fd's plain write(): a client that vanished must not kill the
    // test.
    signal(SIGPIPE, SIG_IGN);
    static std::atomic<int> instance{0};
    std::string dir = absl::StrCat(TempDir(), "/tls_peer_", getpid(), "_", instance.fetch_add(1));
    mkdir(dir.c_str(), 0755);
    absl::StatusOr<TestCertificates> certs = MakeTestCertificates(dir, {"127.0.0.1", "localhost"});
    if (!certs.ok()) return certs.status();
    ca_file_ = certs->ca_file;

    ctx_.reset(SSL_CTX_new(TLS_method()));
    if (!SSL_CTX_use_certificate_chain_file(ctx_.get(), certs->cert_file.c_str()) ||
        !SSL_CTX_use_PrivateKey_file(ctx_.get(), certs->key_file.c_str(), SSL_FILETYPE_PEM)) {
      return absl::InternalError("tls peer: cannot load the generated certificate");
    }
    if (!options_.alpn.empty()) {
      SSL_CTX_set_alpn_select_cb(ctx_.get(), SelectAlpn, this);
    }

    absl::StatusOr<LoopbackListener> listener = ListenOnLoopback();
    if (!listener.ok()) return Annotate(listener.status(), "tls peer");
    listen_fd_ = listener->fd;
    port_ = listener->port;
    accept_thread_ = std::thread([this] { AcceptLoop(); });
    return absl::OkStatus();
  }

  std::string pipeline_text() const override {
    return absl::StrFormat(
        "endpoint { host: \"127.0.0.1\" port: %d }\n"
        "transports { name: \"tcp\" }\n%s\n"
        "transports { name: \"tls\" typed_config { "
        "[type.googleapis.com/hublink.transports.TlsConfig] "
        "{ ca_file: \"%s\" } } }\n%s\n",
        port_, options_.lower_transports, ca_file_, options_.upper_transports);
  }
  int closed_connections() override { return closed_.load(); }

 private:
  static int SelectAlpn(SSL*, const uint8_t** out, uint8_t* out_len, const uint8_t* in,
                        unsigned in_len, void* arg) {
    auto* self = static_cast<TlsConformancePeer*>(arg);
    for (unsigned i = 0; i < in_len;) {
      unsigned len = in[i];
      absl::string_view offered(reinterpret_cast<const char*>(in + i + 1), len);
      for (const std::string& mine : self->options_.alpn) {
        if (mine == offered) {
          *out = in + i + 1;
          *out_len = static_cast<uint8_t>(len);
          return SSL_TLSEXT_ERR_OK;
        }
      }
      i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
  }

  void AcceptLoop() {
    while (!stop_.load()) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard<std::mutex> lock(mutex_);
      live_fds_.insert(fd);
      connection_threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  void Serve(int fd) {
    bssl::UniquePtr<SSL> ssl(SSL_new(ctx_.get()));
    SSL_set_fd(ssl.get(), fd);
    if (SSL_accept(ssl.get()) == 1) {
      Connection connection(ssl.get(), fd, stop_);
      options_.handler(connection);
      SSL_shutdown(ssl.get());
      ::shutdown(fd, SHUT_WR);
      // Wait (bounded) for the client's end so closing cannot turn into a reset that eats our last
      // bytes.
      char buffer[4096];
      for (int i = 0; i < 20 && !stop_.load(); ++i) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) == 0) continue;
        if (recv(fd, buffer, sizeof(buffer), 0) <= 0) break;
      }
    }
    ERR_clear_error();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_fds_.erase(fd);
      close(fd);
    }
    closed_.fetch_add(1);
  }

  TlsConformancePeerOptions options_;
  bssl::UniquePtr<SSL_CTX> ctx_;
  std::string ca_file_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> closed_{0};
  std::mutex mutex_;
  std::set<int> live_fds_;
  std::list<std::thread> connection_threads_;
  std::thread accept_thread_;
};

}  // namespace

void ServeConformanceProtocol(TlsPeerConnection& connection) {
  if (!connection.Write(kHello)) return;
  std::string seen;  // tail of the stream, to find QUIT across reads
  char buffer[65536];
  while (true) {
    int n = connection.Read(buffer, sizeof(buffer));
    if (n <= 0) return;
    if (!connection.Write(absl::string_view(buffer, n))) return;
    seen.append(buffer, n);
    if (absl::StrContains(seen, kQuit)) return;
    if (seen.size() > 16) seen.erase(0, seen.size() - 16);
  }
}

absl::StatusOr<std::unique_ptr<ConformancePeer>> StartTlsConformancePeer(
    TlsConformancePeerOptions options) {
  auto peer = std::make_unique<TlsConformancePeer>(std::move(options));
  absl::Status started = peer->Start();
  if (!started.ok()) return started;
  return std::unique_ptr<ConformancePeer>(std::move(peer));
}

ConformanceTarget TlsConformanceTarget() {
  return {"Tls",
          [](Registry::Builder& builder) {
            RegisterTcpTransport(builder);
            RegisterTlsTransport(builder);
          },
          [] { return StartTlsConformancePeer(); }};
}

ConformanceTarget TlsOverPluginTarget(std::string name,
                                      std::function<void(Registry::Builder&)> register_plugins,
                                      std::string plugin_transports) {
  return {std::move(name),
          [register_plugins = std::move(register_plugins)](Registry::Builder& builder) {
            RegisterTcpTransport(builder);
            register_plugins(builder);
            RegisterTlsTransport(builder);
          },
          [plugin_transports = std::move(plugin_transports)] {
            TlsConformancePeerOptions options;
            options.lower_transports = plugin_transports;
            return StartTlsConformancePeer(std::move(options));
          }};
}

}  // namespace testing
}  // namespace hublink
