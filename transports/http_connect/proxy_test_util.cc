#include "transports/http_connect/proxy_test_util.h"

#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/message.h"
#include "plugins/pipeline.h"
#include "transports/http_connect/dial_test.pb.h"
#include "transports/tcp/tcp_transport.h"

namespace hublink {
namespace testing {
namespace {

using transports::testing::DialConfig;

// tcp, with a context of its own that names the proxy; everything else forwards.
class DialTransport : public Transport {
 public:
  DialTransport(const ConnectContext& outer, const std::string& host, uint16_t port)
      : context_(outer.loop(), host, port) {
    context_.set_deadline(outer.deadline());
    if (outer.connect_timeout().has_value()) context_.set_connect_timeout(*outer.connect_timeout());
    context_.set_signer(outer.signer());
  }
  absl::Status Init(ConfiguredTransport& tcp) {
    absl::StatusOr<std::unique_ptr<Transport>> inner = tcp.Create(context_, nullptr);
    if (!inner.ok()) return inner.status();
    inner_ = std::move(inner).value();
    return absl::OkStatus();
  }
  void Open(TransportListener* listener) override { inner_->Open(listener); }
  absl::Status Write(absl::string_view bytes) override { return inner_->Write(bytes); }
  void Close() override { inner_->Close(); }
  size_t BufferedBytes() const override { return inner_->BufferedBytes(); }

 private:
  ConnectContext context_;  // outlives inner_, declared first
  std::unique_ptr<Transport> inner_;
};

class ConfiguredDial : public ConfiguredTransport {
 public:
  ConfiguredDial(DialConfig config, Registry registry, std::unique_ptr<ConfiguredTransport> tcp)
      : config_(std::move(config)), registry_(std::move(registry)), tcp_(std::move(tcp)) {}
  absl::StatusOr<std::unique_ptr<Transport>> Create(ConnectContext& context,
                                                    std::unique_ptr<Transport> lower) override {
    if (lower != nullptr) return absl::InvalidArgumentError("dial: is a base transport");
    auto transport = std::make_unique<DialTransport>(context, config_.host(), config_.port());
    absl::Status ok = transport->Init(*tcp_);
    if (!ok.ok()) return ok;
    return std::unique_ptr<Transport>(std::move(transport));
  }

 private:
  const DialConfig config_;
  Registry registry_;
  std::unique_ptr<ConfiguredTransport> tcp_;
};

class DialFactory : public TransportFactory {
 public:
  absl::string_view name() const override { return "dial"; }
  const google::protobuf::Descriptor* config_type() const override {
    return DialConfig::descriptor();
  }
  Kind kind() const override { return Kind::kBase; }
  absl::StatusOr<std::unique_ptr<ConfiguredTransport>> Configure(
      const google::protobuf::Message& message) const override {
    const auto& config = static_cast<const DialConfig&>(message);
    if (config.host().empty() || config.port() == 0 || config.port() > 65535) {
      return absl::InvalidArgumentError("dial: host and port (1..65535) are required");
    }
    Registry::Builder builder;
    RegisterTcpTransport(builder);
    absl::StatusOr<Registry> registry = std::move(builder).Build();
    if (!registry.ok()) return registry.status();
    absl::StatusOr<const TransportFactory*> tcp = registry->FindTransport("tcp");
    if (!tcp.ok()) return tcp.status();
    const google::protobuf::Message* defaults =
        google::protobuf::MessageFactory::generated_factory()->GetPrototype((*tcp)->config_type());
    absl::StatusOr<std::unique_ptr<ConfiguredTransport>> configured = (*tcp)->Configure(*defaults);
    if (!configured.ok()) return configured.status();
    return std::unique_ptr<ConfiguredTransport>(
        new ConfiguredDial(config, std::move(registry).value(), std::move(configured).value()));
  }
};

absl::StatusOr<int> FreePort() { return PickFreePort(); }

std::string NewDir(const std::string& stem) {
  static std::atomic<int> instance{0};
  std::string dir = absl::StrCat(TempDir(), "/", stem, "_", getpid(), "_", instance++);
  mkdir(dir.c_str(), 0755);
  return dir;
}

}  // namespace

void RegisterDialTransport(Registry::Builder& builder) {
  builder.AddTransport(std::make_unique<DialFactory>());
}

std::string DialLayerText(int port) {
  return absl::StrFormat(
      "transports { name: \"dial\" typed_config { "
      "[type.googleapis.com/hublink.transports.testing.DialConfig] { host: \"127.0.0.1\" port: %d "
      "} } }\n",
      port);
}

ProxyDaemon::~ProxyDaemon() {
  if (process_ != nullptr) process_->Stop();
  if (!private_dir_.empty()) (void)RunCommand(absl::StrCat("rm -rf '", private_dir_, "'"));
  if (!shm_prefix_.empty()) (void)RunCommand(absl::StrCat("rm -f /dev/shm/", shm_prefix_, "-*"));
}

std::string ProxyDaemon::Log() const {
  absl::StatusOr<std::string> log = ReadFile(log_file_);
  return log.ok() ? *log : "(no log)";
}

absl::Status ProxyDaemon::WaitUntilListening(const std::string& what) {
  if (WaitForPort(port_, absl::Seconds(20))) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat(what, " did not listen on 127.0.0.1:", port_, "; log:\n", Log()));
}

absl::StatusOr<std::unique_ptr<ProxyDaemon>> ProxyDaemon::StartTinyproxy(
    const TinyproxyOptions& options) {
  std::unique_ptr<ProxyDaemon> daemon(new ProxyDaemon());
  absl::StatusOr<int> port = FreePort();
  if (!port.ok()) return port.status();
  daemon->port_ = *port;
  std::string dir = NewDir("tinyproxy");
  daemon->log_file_ = dir + "/tinyproxy.log";
  // Runs in the foreground (-d) as the current user (no User/Group lines: it warns and stays).
  std::string conf = absl::StrCat("Port ", *port, "\nListen 127.0.0.1\nTimeout 60\nLogFile \"",
                                  daemon->log_file_, "\"\nPidFile \"", dir,
                                  "/tinyproxy.pid\"\nLogLevel Info\nMaxClients 50\n"
                                  "Allow 127.0.0.1\n");
  for (int p : options.connect_ports) absl::StrAppend(&conf, "ConnectPort ", p, "\n");
  if (!options.user.empty()) {
    absl::StrAppend(&conf, "BasicAuth ", options.user, " ", options.password, "\n");
  }
  std::string conf_file = dir + "/tinyproxy.conf";
  absl::Status written = WriteFile(conf_file, conf);
  if (!written.ok()) return written;
  Subprocess::Options process_options;
  process_options.output_file = dir + "/tinyproxy.out";
  auto process = Subprocess::Start({"tinyproxy", "-d", "-c", conf_file}, process_options);
  if (!process.ok()) return process.status();
  daemon->process_ = std::move(process).value();
  absl::Status listening = daemon->WaitUntilListening("tinyproxy");
  if (!listening.ok()) return listening;
  return daemon;
}

absl::StatusOr<std::unique_ptr<ProxyDaemon>> ProxyDaemon::StartSquid(const SquidOptions& options) {
  std::unique_ptr<ProxyDaemon> daemon(new ProxyDaemon());
  absl::StatusOr<int> port = FreePort();
  if (!port.ok()) return port.status();
  daemon->port_ = *port;
  char templ[] = "/tmp/hublink_squid_XXXXXX";
  if (mkdtemp(templ) == nullptr) return absl::InternalError("mkdtemp for squid failed");
  std::string dir = templ;
  daemon->private_dir_ = dir;
  // squid refuses to run as root and switches to cache_effective_user (Debian: proxy); that user
  // writes the logs and its auth helper reads the htpasswd file.
  struct passwd* proxy_user = getpwnam("proxy");
  if (proxy_user == nullptr) return absl::FailedPreconditionError("no `proxy` user for squid");
  if (chown(dir.c_str(), proxy_user->pw_uid, proxy_user->pw_gid) != 0 ||
      chmod(dir.c_str(), 0755) != 0) {
    // Inside Bazel's linux-sandbox only uid 0 is mapped in the user namespace: chown to another
    // user fails with EINVAL, and squid could not setuid() to it either.
    return absl::FailedPreconditionError(
        absl::StrCat("chown ", dir, " to the proxy user for squid: ", strerror(errno),
                     " (squid needs a real non-root user; run this test outside the sandbox)"));
  }
  daemon->log_file_ = dir + "/cache.log";
  // A unique service name keeps concurrent squids' shared memory segments apart.
  daemon->shm_prefix_ = absl::StrCat("hlsq", getpid(), "x", *port);
  std::string conf =
      absl::StrCat("http_port 127.0.0.1:", *port, "\nvisible_hostname localhost\n", "pid_filename ",
                   dir, "/squid.pid\ncache_log ", dir, "/cache.log\naccess_log stdio:", dir,
                   "/access.log\ncache_store_log none\ncoredump_dir ", dir,
                   "\ncache deny all\nicp_port 0\nhtcp_port 0\npinger_enable off\n"
                   "dns_nameservers 127.0.0.1\nshutdown_lifetime 0 seconds\n"
                   "acl CONNECT method CONNECT\n");
  if (options.allowed_ports.empty()) {
    absl::StrAppend(&conf, "acl allowed_ports port 1-65535\n");
  } else {
    absl::StrAppend(&conf, "acl allowed_ports port ", absl::StrJoin(options.allowed_ports, " "),
                    "\n");
  }
  absl::StrAppend(&conf, "http_access deny CONNECT !allowed_ports\n");
  if (!options.user.empty()) {
    std::string htpasswd = dir + "/htpasswd";
    absl::StatusOr<std::string> made = RunCommand(absl::StrCat(
        "htpasswd -b -c '", htpasswd, "' '", options.user, "' '", options.password, "' 2>&1"));
    if (!made.ok()) return made.status();
    chmod(htpasswd.c_str(), 0644);
    absl::StrAppend(&conf, "auth_param basic program /usr/lib/squid/basic_ncsa_auth ", htpasswd,
                    "\nauth_param basic children 1 startup=1 idle=1\n"
                    "auth_param basic realm hublink-test\n"
                    "acl authed proxy_auth REQUIRED\nhttp_access allow authed\n");
  } else {
    absl::StrAppend(&conf, "http_access allow all\n");
  }
  absl::StrAppend(&conf, "http_access deny all\n");
  std::string conf_file = dir + "/squid.conf";
  absl::Status written = WriteFile(conf_file, conf);
  if (!written.ok()) return written;
  chmod(conf_file.c_str(), 0644);
  Subprocess::Options process_options;
  process_options.output_file = NewDir("squid") + "/squid.out";
  // -N: foreground, no daemon; -n: the service name for the shared memory segments.
  auto process = Subprocess::Start(
      {"squid", "-N", "-d", "1", "-n", daemon->shm_prefix_, "-f", conf_file}, process_options);
  if (!process.ok()) return process.status();
  daemon->process_ = std::move(process).value();
  absl::Status listening = daemon->WaitUntilListening("squid");
  if (!listening.ok()) {
    absl::StatusOr<std::string> out = ReadFile(process_options.output_file);
    return absl::UnavailableError(
        absl::StrCat(listening.message(), "\nsquid output:\n", out.ok() ? *out : ""));
  }
  return daemon;
}

absl::StatusOr<std::unique_ptr<ProxyDaemon>> ProxyDaemon::StartMicrosocks(
    const MicrosocksOptions& options) {
  std::unique_ptr<ProxyDaemon> daemon(new ProxyDaemon());
  absl::StatusOr<int> port = FreePort();
  if (!port.ok()) return port.status();
  daemon->port_ = *port;
  std::string dir = NewDir("microsocks");
  daemon->log_file_ = dir + "/microsocks.log";
  std::vector<std::string> argv = {"microsocks", "-i", "127.0.0.1", "-p", absl::StrCat(*port)};
  if (!options.user.empty()) {
    argv.insert(argv.end(), {"-u", options.user, "-P", options.password});
  }
  Subprocess::Options process_options;
  process_options.output_file = daemon->log_file_;
  auto process = Subprocess::Start(argv, process_options);
  if (!process.ok()) return process.status();
  daemon->process_ = std::move(process).value();
  absl::Status listening = daemon->WaitUntilListening("microsocks");
  if (!listening.ok()) return listening;
  return daemon;
}

namespace {

class ProxiedPeer : public ConformancePeer {
 public:
  ProxiedPeer(std::unique_ptr<ConformancePeer> inner, std::unique_ptr<ProxyDaemon> proxy,
              std::string text)
      : inner_(std::move(inner)), proxy_(std::move(proxy)), text_(std::move(text)) {}
  std::string pipeline_text() const override { return text_; }
  int closed_connections() override { return inner_->closed_connections(); }

 private:
  std::unique_ptr<ConformancePeer> inner_;
  std::unique_ptr<ProxyDaemon> proxy_;
  std::string text_;
};

}  // namespace

ConformanceTarget ProxiedConformanceTarget(
    std::string name, std::function<void(Registry::Builder&)> register_proxy,
    std::function<absl::StatusOr<std::unique_ptr<ProxyDaemon>>()> start_proxy,
    std::string proxy_layer) {
  return {name,
          [register_proxy](Registry::Builder& builder) {
            RegisterTcpTransport(builder);
            RegisterDialTransport(builder);
            register_proxy(builder);
          },
          [start_proxy, proxy_layer]() -> absl::StatusOr<std::unique_ptr<ConformancePeer>> {
            absl::StatusOr<std::unique_ptr<ConformancePeer>> inner = StartTcpConformancePeer();
            if (!inner.ok()) return inner.status();
            absl::StatusOr<Pipeline> parsed = ParsePipelineText((*inner)->pipeline_text(), "peer");
            if (!parsed.ok()) return parsed.status();
            absl::StatusOr<std::unique_ptr<ProxyDaemon>> proxy = start_proxy();
            if (!proxy.ok()) return proxy.status();
            std::string text = absl::StrCat("endpoint { host: \"", parsed->endpoint().host(),
                                            "\" port: ", parsed->endpoint().port(), " }\n",
                                            DialLayerText((*proxy)->port()), proxy_layer);
            return std::unique_ptr<ConformancePeer>(new ProxiedPeer(
                std::move(inner).value(), std::move(proxy).value(), std::move(text)));
          }};
}

}  // namespace testing
}  // namespace hublink
