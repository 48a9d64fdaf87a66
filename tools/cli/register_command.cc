#include "tools/cli/register_command.h"

#include <sys/stat.h>

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "profiles/tencent/dynreg.h"
#include "protocols/http/http_client.h"
#include "tools/cli/flags.h"
#include "tools/cli/proxy_flags.h"
#include "tools/cli/service_command_util.h"

namespace hublink {
namespace cli {
namespace {

constexpr const char* kProxyUnset = "\x01unset";

struct RegisterFlags {
  std::string product_id;
  std::string product_secret;
  std::string device_name;
  std::string region = "china";
  std::string host;
  int port = 443;
  std::string ca_file;
  bool insecure = false;
  std::string algorithm = "hmacsha256";
  std::string out;
  bool force = false;
  int timeout = 15;
  std::string proxy = kProxyUnset;
  bool no_proxy = false;
  bool verbose = false;
};

int Usage(std::ostream& err, absl::string_view problem, const FlagParser& parser) {
  return PrintUsageError(err, "register", problem, /*usage=*/"", parser);
}

int Fail(std::ostream& err, const absl::Status& status) {
  err << "hublink register: " << status.ToString() << "\n";
  return 1;
}

}  // namespace

int RunRegister(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                const std::function<void(Registry::Builder&)>& register_plugins) {
  RegisterFlags flags;
  FlagParser parser;
  parser.AddString("product_id", &flags.product_id, "the product's id (the console's ProductId)");
  parser.AddString("product_secret", &flags.product_secret,
                   "the product's secret for dynamic registration (at least 16 characters)");
  parser.AddString("device_name", &flags.device_name, "the name this device registers as");
  parser.AddString("region", &flags.region,
                   "china (default) or us-east: the registration host, and the region written "
                   "to --out");
  parser.AddString("host", &flags.host,
                   "registration host instead of the region's (also the host signed)");
  parser.AddInt("port", &flags.port, "HTTPS port (default 443)");
  parser.AddString("ca_file", &flags.ca_file, "trust anchors instead of the system roots");
  parser.AddBool("insecure", &flags.insecure,
                 "skip server verification (tests only: the reply carries the device secret)");
  parser.AddString("algorithm", &flags.algorithm, "hmacsha256 (default) or hmacsha1");
  parser.AddString("out", &flags.out, "where to write device_info.json (required)");
  parser.AddBool("force", &flags.force, "overwrite --out if it exists");
  parser.AddInt("timeout", &flags.timeout, "seconds for the whole exchange (default 15)");
  parser.AddString("proxy", &flags.proxy,
                   "http://[user:pass@]host:port or socks5[h]://...; empty: none (default: "
                   "HTTPS_PROXY, ALL_PROXY)");
  parser.AddBool("no_proxy", &flags.no_proxy, "ignore proxy environment variables");
  parser.AddBool("verbose", &flags.verbose, "(or -v) print each connection milestone on stderr");
  std::vector<std::string> rest = args;
  for (std::string& arg : rest) {
    if (arg == "--") break;
    if (arg == "-v") arg = "--verbose";
  }
  if (WantsHelp(rest)) {
    out << "usage: hublink register --product_id=P --product_secret=S --device_name=D "
           "--out=FILE [flags]\n"
        << "  Tencent dynamic registration: get this device's credentials, write "
           "device_info.json\nflags:\n"
        << parser.Usage();
    return 0;
  }
  std::vector<std::string> positional;
  absl::Status parsed = parser.Parse(rest, &positional);
  if (!parsed.ok()) return Usage(err, parsed.message(), parser);
  if (!positional.empty()) return Usage(err, "takes no positional arguments", parser);
  for (const auto& [value, name] :
       {std::make_pair(&flags.product_id, "--product_id"),
        std::make_pair(&flags.product_secret, "--product_secret"),
        std::make_pair(&flags.device_name, "--device_name"), std::make_pair(&flags.out, "--out")}) {
    if (value->empty()) return Usage(err, absl::StrCat(name, ": required"), parser);
  }
  if (flags.port <= 0 || flags.port > 65535) return Usage(err, "--port: 1..65535", parser);
  if (flags.timeout <= 0) return Usage(err, "--timeout: must be positive", parser);
  tencent::DynregParams params;
  if (flags.algorithm == "hmacsha1") {
    params.algorithm = tencent::DynregAlgorithm::kHmacSha1;
  } else if (flags.algorithm != "hmacsha256") {
    return Usage(err, "--algorithm: hmacsha256 or hmacsha1", parser);
  }
  struct stat st;
  if (!flags.force && stat(flags.out.c_str(), &st) == 0) {
    return Usage(err,
                 absl::StrCat("--out: ", flags.out,
                              " exists; the hub hands out a device's secret once, so hublink does "
                              "not overwrite it (--force to do so)"),
                 parser);
  }

  if (flags.host.empty()) {
    absl::StatusOr<std::string> host = tencent::DynregHost(flags.region);
    if (!host.ok()) return Fail(err, host.status());
    flags.host = *host;
  }
  params.product_id = flags.product_id;
  params.product_secret = flags.product_secret;
  params.device_name = flags.device_name;
  params.host = flags.host;

  absl::StatusOr<Registry> registry = BuildCommandRegistry(register_plugins);
  if (!registry.ok()) return Fail(err, registry.status());
  absl::StatusOr<Pipeline> pipeline =
      http::HttpsPipeline(flags.host, flags.port, flags.ca_file, flags.insecure);
  if (!pipeline.ok()) return Fail(err, pipeline.status());
  if (flags.insecure) {
    err << "hublink register: WARNING: --insecure: the server is not verified, and its reply "
           "carries the device's secret\n";
  }
  absl::optional<std::string> proxy_flag;
  if (flags.proxy != kProxyUnset) proxy_flag = flags.proxy;
  absl::StatusOr<absl::optional<ProxyUrl>> proxy =
      ChooseProxy(proxy_flag, flags.no_proxy, /*secure=*/true, flags.host, ProcessEnv);
  if (!proxy.ok()) return Fail(err, proxy.status());
  if (proxy->has_value()) {
    absl::Status inserted = InsertProxy(**proxy, *pipeline);
    if (!inserted.ok()) return Fail(err, inserted);
  }
  absl::StatusOr<std::unique_ptr<http::HttpClient>> client =
      http::HttpClient::Create(*pipeline, *registry, "hublink register");
  if (!client.ok()) return Fail(err, client.status());

  const std::string region = flags.region.empty() ? "china" : flags.region;
  absl::StatusOr<tencent::DynregResult> result = tencent::RegisterDevice(
      params, region, **client, absl::Now() + absl::Seconds(flags.timeout),
      flags.verbose ? ConnectContext::StageObserver(
                          [&err](absl::string_view layer, absl::string_view detail) {
                            err << "hublink: " << layer << ": " << detail << "\n";
                          })
                    : ConnectContext::StageObserver());
  if (!result.ok()) return Fail(err, result.status());
  absl::Status written = tencent::WriteDeviceInfoFile(*result, flags.out);
  if (!written.ok()) return Fail(err, written);
  out << "registered " << result->device.auth_mode() << " device " << flags.product_id << "/"
      << flags.device_name << "; device_info.json: " << flags.out << "\n";
  return 0;
}

}  // namespace cli
}  // namespace hublink
