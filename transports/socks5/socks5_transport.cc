#include "transports/socks5/socks5_transport.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "auth/secret_file.h"
#include "plugins/log.h"
#include "plugins/status_macros.h"
#include "transports/http_connect/tunnel_transport.h"
#include "transports/socks5/socks5.pb.h"
#include "transports/socks5/socks5_codec.h"

namespace hublink {
namespace {

using transports::Socks5Config;

struct Settings {
  Settings() = default;
  Settings(const Settings&) = delete;
  Settings& operator=(const Settings&) = delete;
  ~Settings() { auth::Wipe(password); }

  std::string username;
  std::string password;
  bool remote_dns = true;
  absl::optional<absl::Duration> handshake_timeout;
};

// A local lookup runs on a short-lived thread (getaddrinfo blocks). The thread and the transport
// share this; the transport's destructor clears `loop` under the mutex, so the thread posts its
// answer only while the transport (and so the loop) is alive.
struct Lookup {
  std::mutex mutex;
  EventLoop* loop = nullptr;
  std::function<void()> on_done;  // runs on the loop, guarded by the transport's WeakGuard
  bool done = false;
  int gai_error = 0;
  socks5::Destination destination;
};

void RunLookup(std::shared_ptr<Lookup> lookup, std::string host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  socks5::Destination destination;
  destination.port = port;
  if (rc == 0) {
    rc = EAI_NONAME;
    for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
      if (ai->ai_family == AF_INET) {
        destination.type = socks5::kIpv4;
        destination.address.assign(
            reinterpret_cast<const char*>(&reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr),
            4);
      } else if (ai->ai_family == AF_INET6) {
        destination.type = socks5::kIpv6;
        destination.address.assign(
            reinterpret_cast<const char*>(&reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr),
            16);
      } else {
        continue;
      }
      rc = 0;
      break;
    }
  }
  if (result != nullptr) freeaddrinfo(result);
  std::lock_guard<std::mutex> lock(lookup->mutex);
  lookup->done = true;
  lookup->gai_error = rc;
  lookup->destination = std::move(destination);
  if (lookup->loop != nullptr) lookup->loop->Post(lookup->on_done);
}

class Socks5Transport : public TunnelTransport {
 public:
  Socks5Transport(const Settings& settings, ConnectContext& context,
                  std::unique_ptr<Transport> lower)
      : TunnelTransport("socks5", context, std::move(lower), settings.handshake_timeout),
        settings_(settings) {}

  ~Socks5Transport() override {
    if (lookup_ != nullptr) {
      std::lock_guard<std::mutex> lock(lookup_->mutex);
      lookup_->loop = nullptr;
    }
  }

 private:
  bool Prepare() override {
    absl::StatusOr<socks5::Destination> destination =
        socks5::DestinationFor(context().host(), context().port());
    if (!destination.ok()) {
      absl::Status error = destination.status();
      loop().Post(guard().Wrap([this, error] { PrepareDone(error); }));
      return false;
    }
    if (destination->type != socks5::kDomainName || settings_.remote_dns) {
      destination_ = std::move(destination).value();
      return true;
    }
    // remote_dns false: resolve here, off the loop thread.
    lookup_ = std::make_shared<Lookup>();
    lookup_->loop = &loop();
    lookup_->on_done = guard().Wrap([this] { OnLookedUp(); });
    std::thread(RunLookup, lookup_, context().host(), context().port()).detach();
    return false;
  }

  void OnLookedUp() {
    socks5::Destination destination;
    int error;
    {
      std::lock_guard<std::mutex> lock(lookup_->mutex);
      error = lookup_->gai_error;
      destination = lookup_->destination;
    }
    if (error != 0) {
      PrepareDone(absl::UnavailableError(absl::StrCat(
          "socks5: cannot resolve ", context().host(), " locally: ", gai_strerror(error),
          " (remote_dns: true lets the proxy resolve it)")));
      return;
    }
    HLOG(DEBUG) << "socks5: " << context().host() << " resolved locally to "
                << socks5::Describe(destination);
    destination_ = std::move(destination);
    PrepareDone(absl::OkStatus());
  }

  void StartHandshake() override {
    std::string password;
    password.reserve(settings_.password.size());
    password.append(settings_.password);
    handshake_ = std::make_unique<socks5::ClientHandshake>(destination_, settings_.username,
                                                           std::move(password));
    std::string greeting = handshake_->Greeting();
    SendHandshake(greeting);
  }

  void OnHandshakeData(absl::string_view bytes) override {
    std::string out;
    absl::StatusOr<bool> done = handshake_->Feed(bytes, &out);
    if (!out.empty()) SendHandshake(out);
    if (!done.ok()) {
      Fail(done.status());
      return;
    }
    if (!*done || !handshaking()) return;
    HandshakeDone(handshake_->TakeLeftover(),
                  absl::StrCat("tunnel to ", socks5::Describe(destination_), " (",
                               handshake_->method(), ", bound ", handshake_->bound(), ")"));
  }

  std::string HandshakeProgress() const override {
    if (!handshake_) {
      return lookup_ != nullptr ? absl::StrCat("resolving ", context().host(), " locally")
                                : "no answer yet";
    }
    return absl::StrCat(handshake_->bytes_seen(), " bytes of the proxy's answers received");
  }

  const Settings& settings_;
  socks5::Destination destination_;
  std::shared_ptr<Lookup> lookup_;
  std::unique_ptr<socks5::ClientHandshake> handshake_;
};

class ConfiguredSocks5 : public ConfiguredTransport {
 public:
  explicit ConfiguredSocks5(std::unique_ptr<Settings> settings) : settings_(std::move(settings)) {}
  absl::StatusOr<std::unique_ptr<Transport>> Create(ConnectContext& context,
                                                    std::unique_ptr<Transport> lower) override {
    if (lower == nullptr) {
      return absl::InvalidArgumentError(
          "socks5: is a wrapping transport and needs the connection to the proxy below it (tcp)");
    }
    return std::unique_ptr<Transport>(new Socks5Transport(*settings_, context, std::move(lower)));
  }

 private:
  const std::unique_ptr<Settings> settings_;
};

absl::StatusOr<std::unique_ptr<Settings>> MakeSettings(const Socks5Config& config) {
  auto s = std::make_unique<Settings>();
  s->username = config.username();
  HUBLINK_ASSIGN_OR_RETURN(
      s->password,
      LoadProxyPassword("socks5", config.password_source_case() == Socks5Config::kPasswordFile,
                        config.password_source_case() == Socks5Config::kPasswordFile
                            ? config.password_file()
                            : config.password()));
  HUBLINK_RETURN_IF_ERROR(socks5::ValidateCredentials(s->username, s->password));
  s->remote_dns = !config.has_remote_dns() || config.remote_dns();
  HUBLINK_ASSIGN_OR_RETURN(
      s->handshake_timeout,
      ProxyHandshakeTimeout("socks5", config.has_handshake_timeout(), config.handshake_timeout()));
  return s;
}

class Socks5Factory : public TransportFactory {
 public:
  absl::string_view name() const override { return "socks5"; }
  const google::protobuf::Descriptor* config_type() const override {
    return Socks5Config::descriptor();
  }
  Kind kind() const override { return Kind::kWrapping; }
  absl::StatusOr<std::unique_ptr<ConfiguredTransport>> Configure(
      const google::protobuf::Message& message) const override {
    HUBLINK_ASSIGN_OR_RETURN(std::unique_ptr<Settings> settings,
                             MakeSettings(static_cast<const Socks5Config&>(message)));
    return std::unique_ptr<ConfiguredTransport>(new ConfiguredSocks5(std::move(settings)));
  }
};

}  // namespace

void RegisterSocks5Transport(Registry::Builder& builder) {
  builder.AddTransport(std::make_unique<Socks5Factory>());
}

}  // namespace hublink
