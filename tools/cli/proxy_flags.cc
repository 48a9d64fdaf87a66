#include "tools/cli/proxy_flags.h"

#include <arpa/inet.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "plugins/status_macros.h"
#include "transports/http_connect/http_connect.pb.h"
#include "transports/socks5/socks5.pb.h"
#include "transports/tcp/tcp.pb.h"
#include "transports/tls/tls.pb.h"

namespace hublink {
namespace cli {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view text, absl::string_view what) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    int high = i + 2 < text.size() ? HexValue(text[i + 1]) : -1;
    int low = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
    if (high < 0 || low < 0) {
      return absl::InvalidArgumentError(absl::StrCat("--proxy: the ", what, " has a bad % escape"));
    }
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

// The URL as it may be shown: any password replaced by "***".
std::string Redacted(absl::string_view url) {
  size_t scheme = url.find("://");
  size_t start = scheme == absl::string_view::npos ? 0 : scheme + 3;
  size_t at = url.find('@', start);
  if (at == absl::string_view::npos) return std::string(url);
  size_t colon = url.substr(0, at).find(':', start);
  if (colon == absl::string_view::npos) return std::string(url);
  return absl::StrCat(url.substr(0, colon + 1), "***", url.substr(at));
}

bool ParseIp(absl::string_view text, unsigned char* bytes, int* family) {
  std::string copy(absl::StripPrefix(absl::StripSuffix(text, "]"), "["));
  if (inet_pton(AF_INET, copy.c_str(), bytes) == 1) {
    *family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, copy.c_str(), bytes) == 1) {
    *family = AF_INET6;
    return true;
  }
  return false;
}

bool CidrContains(absl::string_view cidr, absl::string_view host) {
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(cidr, '/');
  unsigned char net[16], addr[16];
  int net_family = 0, addr_family = 0, bits = 0;
  if (!ParseIp(parts.first, net, &net_family) || !ParseIp(host, addr, &addr_family) ||
      net_family != addr_family || !absl::SimpleAtoi(parts.second, &bits)) {
    return false;
  }
  const int max_bits = net_family == AF_INET ? 32 : 128;
  if (bits < 0 || bits > max_bits) return false;
  for (int i = 0; i < bits; ++i) {
    const unsigned char mask = 0x80 >> (i % 8);
    if ((net[i / 8] & mask) != (addr[i / 8] & mask)) return false;
  }
  return true;
}

// An empty value counts as unset, as curl has it.
absl::optional<std::string> FirstSet(const GetEnv& env, std::initializer_list<const char*> names,
                                     const char** which) {
  for (const char* name : names) {
    absl::optional<std::string> value = env(name);
    if (value.has_value() && !value->empty()) {
      *which = name;
      return value;
    }
  }
  return absl::nullopt;
}

}  // namespace

absl::optional<std::string> ProcessEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return absl::nullopt;
  return std::string(value);
}

absl::StatusOr<ProxyUrl> ParseProxyUrl(absl::string_view url) {
  ProxyUrl proxy;
  absl::string_view rest = url;
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--proxy: \"", Redacted(url), "\": ", why));
  };
  size_t scheme_end = rest.find("://");
  std::string scheme = scheme_end == absl::string_view::npos
                           ? "http"
                           : absl::AsciiStrToLower(rest.substr(0, scheme_end));
  if (scheme_end != absl::string_view::npos) rest.remove_prefix(scheme_end + 3);
  if (scheme == "http") {
    proxy.kind = ProxyUrl::Kind::kHttp;
  } else if (scheme == "socks5") {
    proxy.kind = ProxyUrl::Kind::kSocks5;
  } else if (scheme == "socks5h") {
    proxy.kind = ProxyUrl::Kind::kSocks5h;
  } else {
    return bad(absl::StrCat("scheme \"", scheme, "\" is not http, socks5 or socks5h"));
  }
  rest = rest.substr(0, rest.find('/'));  // a trailing "/" or path means nothing for a proxy
  size_t at = rest.rfind('@');
  if (at != absl::string_view::npos) {
    absl::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    size_t colon = userinfo.find(':');
    HUBLINK_ASSIGN_OR_RETURN(proxy.username, PercentDecode(userinfo.substr(0, colon), "user name"));
    if (colon != absl::string_view::npos) {
      HUBLINK_ASSIGN_OR_RETURN(proxy.password,
                               PercentDecode(userinfo.substr(colon + 1), "password"));
    }
  }
  size_t port_colon = rest.rfind(':');
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
    size_t close = rest.find(']');
    if (close == absl::string_view::npos) return bad("unclosed [ in the host");
    proxy.host = std::string(rest.substr(1, close - 1));
    port_colon =
        close + 1 < rest.size() && rest[close + 1] == ':' ? close + 1 : absl::string_view::npos;
  } else {
    proxy.host = std::string(rest.substr(0, port_colon));
  }
  if (proxy.host.empty()) return bad("no host");
  if (port_colon == absl::string_view::npos) {
    proxy.port = proxy.kind == ProxyUrl::Kind::kHttp ? 80 : 1080;  // the schemes' usual ports
  } else if (!absl::SimpleAtoi(rest.substr(port_colon + 1), &proxy.port) || proxy.port < 1 ||
             proxy.port > 65535) {
    return bad("the port is not 1..65535");
  }
  return proxy;
}

bool NoProxyMatches(absl::string_view no_proxy, absl::string_view host) {
  std::string lower_host = absl::AsciiStrToLower(absl::StripSuffix(host, "."));
  for (absl::string_view entry :
       absl::StrSplit(no_proxy, absl::ByAnyChar(", "), absl::SkipEmpty())) {
    std::string pattern = absl::AsciiStrToLower(entry);
    if (pattern == "*") return true;
    if (absl::StrContains(pattern, '/')) {
      if (CidrContains(pattern, lower_host)) return true;
      continue;
    }
    unsigned char bytes[16];
    int family;
    if (ParseIp(pattern, bytes, &family)) {
      unsigned char host_bytes[16];
      int host_family;
      if (ParseIp(lower_host, host_bytes, &host_family) && host_family == family &&
          std::memcmp(bytes, host_bytes, family == AF_INET ? 4 : 16) == 0) {
        return true;
      }
      continue;
    }
    absl::string_view domain = absl::StripPrefix(absl::StripPrefix(pattern, "*"), ".");
    if (lower_host == domain || absl::EndsWith(lower_host, absl::StrCat(".", domain))) return true;
  }
  return false;
}

absl::StatusOr<absl::optional<ProxyUrl>> ChooseProxy(const absl::optional<std::string>& flag,
                                                     bool no_proxy_flag, bool secure,
                                                     absl::string_view host, const GetEnv& env) {
  if (no_proxy_flag) return absl::optional<ProxyUrl>();
  if (flag.has_value()) {
    if (flag->empty()) return absl::optional<ProxyUrl>();
    HUBLINK_ASSIGN_OR_RETURN(ProxyUrl proxy, ParseProxyUrl(*flag));
    return absl::optional<ProxyUrl>(std::move(proxy));
  }
  const char* which = nullptr;
  absl::optional<std::string> url =
      secure ? FirstSet(env, {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}, &which)
             : FirstSet(env, {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"}, &which);
  if (!url.has_value()) return absl::optional<ProxyUrl>();
  const char* no_proxy_name = nullptr;
  absl::optional<std::string> no_proxy = FirstSet(env, {"no_proxy", "NO_PROXY"}, &no_proxy_name);
  if (no_proxy.has_value() && NoProxyMatches(*no_proxy, host)) return absl::optional<ProxyUrl>();
  absl::StatusOr<ProxyUrl> proxy = ParseProxyUrl(*url);
  if (!proxy.ok()) {
    // Say which variable held it: the user did not type --proxy.
    return absl::InvalidArgumentError(
        absl::StrCat(which, ": ", absl::StripPrefix(proxy.status().message(), "--proxy: ")));
  }
  return absl::optional<ProxyUrl>(*std::move(proxy));
}

namespace {

absl::Status InsertProxyIntoStack(const ProxyUrl& proxy,
                                  google::protobuf::RepeatedPtrField<PluginConfig>& stack) {
  if (stack.empty()) return absl::OkStatus();
  PluginConfig& base = stack[0];
  transports::TcpConfig tcp;
  if (base.has_typed_config() && !base.typed_config().UnpackTo(&tcp)) {
    return absl::InvalidArgumentError(absl::StrCat("--proxy: the first transport (\"", base.name(),
                                                   "\") is not tcp; put the proxy layer in "
                                                   "the pipeline file instead"));
  }
  tcp.set_host(proxy.host);
  tcp.set_port(proxy.port);
  base.mutable_typed_config()->PackFrom(tcp);
  PluginConfig layer;
  if (proxy.kind == ProxyUrl::Kind::kHttp) {
    transports::HttpConnectConfig config;
    config.set_username(proxy.username);
    if (!proxy.password.empty()) config.set_password(proxy.password);
    layer.set_name("http_connect");
    layer.mutable_typed_config()->PackFrom(config);
  } else {
    transports::Socks5Config config;
    config.set_username(proxy.username);
    if (!proxy.password.empty()) config.set_password(proxy.password);
    config.set_remote_dns(proxy.kind == ProxyUrl::Kind::kSocks5h);
    layer.set_name("socks5");
    layer.mutable_typed_config()->PackFrom(config);
  }
  stack.Add(std::move(layer));
  // Move the new layer from the end to right above the base.
  for (int i = stack.size() - 1; i > 1; --i) stack.SwapElements(i, i - 1);
  return absl::OkStatus();
}

}  // namespace

absl::Status InsertProxy(const ProxyUrl& proxy, Pipeline& pipeline) {
  HUBLINK_RETURN_IF_ERROR(InsertProxyIntoStack(proxy, *pipeline.mutable_transports()));
  for (Stack& alternative : *pipeline.mutable_alternatives()) {
    HUBLINK_RETURN_IF_ERROR(InsertProxyIntoStack(proxy, *alternative.mutable_transports()));
  }
  return absl::OkStatus();
}

Pipeline MaskProxyPassword(const Pipeline& pipeline, const ProxyUrl& proxy) {
  Pipeline masked = pipeline;
  if (proxy.password.empty()) return masked;
  auto mask = [&](google::protobuf::RepeatedPtrField<PluginConfig>& stack) {
    for (PluginConfig& layer : stack) {
      transports::HttpConnectConfig http;
      transports::Socks5Config socks;
      if (layer.typed_config().Is<transports::HttpConnectConfig>() &&
          layer.typed_config().UnpackTo(&http) && http.password() == proxy.password) {
        http.set_password("***");
        layer.mutable_typed_config()->PackFrom(http);
      } else if (layer.typed_config().Is<transports::Socks5Config>() &&
                 layer.typed_config().UnpackTo(&socks) && socks.password() == proxy.password) {
        socks.set_password("***");
        layer.mutable_typed_config()->PackFrom(socks);
      }
    }
  };
  mask(*masked.mutable_transports());
  for (Stack& alternative : *masked.mutable_alternatives()) mask(*alternative.mutable_transports());
  return masked;
}

}  // namespace cli
}  // namespace hublink
