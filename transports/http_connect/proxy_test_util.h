// Test helpers for proxy tunnels (http_connect, socks5): a base transport that connects to the
// proxy instead of the endpoint, real proxies from Debian (tinyproxy, squid, microsocks) started on
// loopback with configs in the test's directory, and conformance targets through them.
#ifndef HUBLINK_TRANSPORTS_HTTP_CONNECT_PROXY_TEST_UTIL_H_
#define HUBLINK_TRANSPORTS_HTTP_CONNECT_PROXY_TEST_UTIL_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "plugins/registry.h"
#include "tests/conformance.h"
#include "tests/test_util.h"

namespace hublink {
namespace testing {

// Registers "dial" (DialConfig): tcp to DialConfig.host:port instead of the attempt's endpoint;
// the layers above see the endpoint. Stands in for a proxy address in the tcp layer's config.
void RegisterDialTransport(Registry::Builder& builder);
// `transports { name: "dial" ... }` for 127.0.0.1:port.
std::string DialLayerText(int port);

// A proxy daemon on 127.0.0.1:port(), stopped (by its PID) and cleaned up on destruction.
class ProxyDaemon {
 public:
  ~ProxyDaemon();
  int port() const { return port_; }
  const std::string& log_file() const { return log_file_; }
  std::string Log() const;  // its log so far, for failure messages

  // tinyproxy 1.11 (CONNECT; Basic auth when user is set; ConnectPort lines when ports are given,
  // otherwise every port is allowed).
  struct TinyproxyOptions {
    std::string user;
    std::string password;
    std::vector<int> connect_ports;
  };
  static absl::StatusOr<std::unique_ptr<ProxyDaemon>> StartTinyproxy(
      const TinyproxyOptions& options);

  // squid (CONNECT; Basic auth through basic_ncsa_auth and an htpasswd file when user is set;
  // CONNECT only to allowed_ports when given). squid drops root for the `proxy` user, which cannot
  // reach $TEST_TMPDIR under /root: its files live in a fresh directory under /tmp, removed after.
  struct SquidOptions {
    std::string user;
    std::string password;
    std::vector<int> allowed_ports;
  };
  static absl::StatusOr<std::unique_ptr<ProxyDaemon>> StartSquid(const SquidOptions& options);

  // microsocks (SOCKS5; username/password when user is set).
  struct MicrosocksOptions {
    std::string user;
    std::string password;
  };
  static absl::StatusOr<std::unique_ptr<ProxyDaemon>> StartMicrosocks(
      const MicrosocksOptions& options);

 private:
  ProxyDaemon() = default;
  absl::Status WaitUntilListening(const std::string& what);

  std::unique_ptr<Subprocess> process_;
  int port_ = 0;
  std::string log_file_;
  std::string private_dir_;  // removed on destruction (squid's /tmp directory)
  std::string shm_prefix_;   // squid's shared memory segments, removed if left behind
};

// A conformance target: `register_proxy` registers the tunnel plugin, `start_proxy` starts a proxy,
// and `proxy_layer` is the text of the tunnel's transports {...} entry. The pipeline is
// dial(proxy) > tunnel > the conformance peer's endpoint.
ConformanceTarget ProxiedConformanceTarget(
    std::string name, std::function<void(Registry::Builder&)> register_proxy,
    std::function<absl::StatusOr<std::unique_ptr<ProxyDaemon>>()> start_proxy,
    std::string proxy_layer);

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_HTTP_CONNECT_PROXY_TEST_UTIL_H_
