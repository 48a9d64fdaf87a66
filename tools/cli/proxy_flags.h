// The proxy conventions users expect from command-line tools, turned into pipeline layers:
//   --proxy=http://[user:pass@]host:port     an HTTP CONNECT proxy (http_connect)
//   --proxy=socks5h://[user:pass@]host:port  SOCKS5, the proxy resolves the broker's name
//   --proxy=socks5://[user:pass@]host:port   SOCKS5, the name is resolved here
//   --proxy= (empty) or --no_proxy           no proxy, whatever the environment says
// Without --proxy, the environment decides, as curl does: https_proxy / HTTPS_PROXY for tls and
// wss, http_proxy / HTTP_PROXY for ws and tcp, then all_proxy / ALL_PROXY; NO_PROXY (or no_proxy)
// lists hosts that go direct (names, .domain suffixes, IP addresses, CIDRs, or *).
#ifndef HUBLINK_TOOLS_CLI_PROXY_FLAGS_H_
#define HUBLINK_TOOLS_CLI_PROXY_FLAGS_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "plugins/pipeline.pb.h"

namespace hublink {
namespace cli {

struct ProxyUrl {
  enum class Kind { kHttp, kSocks5, kSocks5h };
  Kind kind = Kind::kHttp;
  std::string host;
  int port = 0;
  std::string username;  // percent-decoded
  std::string password;  // percent-decoded; never in an error or a log line
};

// Parses a proxy URL. Errors quote the URL with its password replaced by "***".
absl::StatusOr<ProxyUrl> ParseProxyUrl(absl::string_view url);

// Whether `host` goes direct under a NO_PROXY list (comma- or space-separated).
bool NoProxyMatches(absl::string_view no_proxy, absl::string_view host);

using GetEnv = std::function<absl::optional<std::string>(const char* name)>;
// The process environment.
absl::optional<std::string> ProcessEnv(const char* name);

// The proxy for a pipeline whose stacks end in a TLS layer (`secure`) or not, to `host`.
// `flag` is --proxy's value when given (absl::nullopt when not given; "" turns proxies off).
absl::StatusOr<absl::optional<ProxyUrl>> ChooseProxy(const absl::optional<std::string>& flag,
                                                     bool no_proxy_flag, bool secure,
                                                     absl::string_view host, const GetEnv& env);

// Puts `proxy` under every stack of `pipeline`: the first transport (tcp) connects to the proxy,
// and an http_connect or socks5 layer right above it tunnels to the endpoint.
absl::Status InsertProxy(const ProxyUrl& proxy, Pipeline& pipeline);

// `pipeline` with the password of every proxy layer that InsertProxy put in replaced by "***", for
// --dump_pipeline: a password from the command line or the environment is not written to a file.
Pipeline MaskProxyPassword(const Pipeline& pipeline, const ProxyUrl& proxy);

}  // namespace cli
}  // namespace hublink

#endif  // HUBLINK_TOOLS_CLI_PROXY_FLAGS_H_
