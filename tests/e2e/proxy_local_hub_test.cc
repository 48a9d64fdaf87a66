// Issue 14 part 1, end to end: `hublink pub --proxy=...` and `HTTPS_PROXY=... hublink pub` reach
// the local hub (real mosquitto + the IoT Hub plugin) over wss through real tinyproxy and squid.
//
// For each case the real `hublink` binary publishes one QoS 1 message as a KEY device (the hub
// checks its signature), with the hub's CA, and must exit 0; an independent subscriber
// (mosquitto_sub as the hub's console account on the plain MQTT listener) must see the message;
// and the proxy's own log must show a CONNECT to the hub's wss port, so the message cannot have
// gone around the proxy. The subprocess's environment is stripped of every proxy variable first,
// so the machine's proxies play no part. With `-v` (when this hublink has it), the per-attempt
// timing lines of hublink's stderr are printed into the test log.
//
// squid switches to the `proxy` user, which Bazel's sandbox cannot map: the target is no-sandbox
// (see //transports/http_connect:http_connect_squid_test).
//   args: local_hub.sh hub_plugin.so hublink
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_test_main.h"
#include "tests/test_util.h"
#include "transports/http_connect/proxy_test_util.h"

extern char** environ;

namespace hublink {
namespace {

using ::hublink::testing::ProxyDaemon;
using ::hublink::testing::ReadFile;
using ::hublink::testing::RunCommand;
using ::hublink::testing::Subprocess;
using ::hublink::testing::WaitFor;

// proxy_test_util links the conformance suite, which this test does not instantiate.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TransportConformanceTest);

std::string g_hub_script, g_plugin, g_hublink;  // from argv

constexpr char kProduct[] = "PROXYHUB01";
constexpr char kDevice[] = "dev01";
constexpr char kProxyUser[] = "hubdev";
constexpr char kProxyPassword[] = "pr0xy-s3cret";

// Every variable hublink (or libc) might take a proxy from; none is inherited.
constexpr const char* kProxyVariables[] = {"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                                           "ALL_PROXY",   "all_proxy",   "NO_PROXY",   "no_proxy"};

std::string FileText(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  return text.ok() ? *text : "";
}

// The executable `name` would run as, searched on PATH like execvp does; empty if none.
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "", ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// The tools this test drives, each with the Debian package that provides it. tools/bootstrap.sh
// (run by .ci/run) installs them all.
std::string MissingTools() {
  struct Tool {
    const char* name;
    const char* package;
  };
  const Tool tools[] = {{"tinyproxy", "tinyproxy"},
                        {"squid", "squid"},
                        {"htpasswd", "apache2-utils"},
                        {"mosquitto", "mosquitto"},
                        {"mosquitto_sub", "mosquitto-clients"},
                        {"openssl", "openssl"},
                        {"stdbuf", "coreutils"}};
  std::string missing;
  for (const Tool& tool : tools) {
    // local_hub.sh also looks for /usr/sbin/mosquitto; the proxies are run from PATH.
    bool fallback =
        std::string(tool.name) == "mosquitto" && access("/usr/sbin/mosquitto", X_OK) == 0;
    if (FindOnPath(tool.name).empty() && !fallback) {
      absl::StrAppend(&missing, "  ", tool.name, " not found on PATH: install the Debian package `",
                      tool.package, "` (tools/bootstrap.sh, which .ci/run runs, lists it)\n");
    }
  }
  if (access("/usr/lib/squid/basic_ncsa_auth", X_OK) != 0) {
    absl::StrAppend(
        &missing, "  /usr/lib/squid/basic_ncsa_auth missing: install the Debian package `squid`\n");
  }
  return missing;
}

// The local hub on free ports in this test's directory, stopped by its own script (which kills
// only the PID it recorded).
class LocalHub {
 public:
  static absl::StatusOr<std::unique_ptr<LocalHub>> Start() {
    std::unique_ptr<LocalHub> hub(new LocalHub());
    hub->dir_ = absl::StrCat(testing::TempDir(), "/hub");
    for (int* port : {&hub->mqtt_port_, &hub->ws_port_, &hub->wss_port_}) {
      absl::StatusOr<int> free = testing::PickFreePort();
      if (!free.ok()) return free.status();
      *port = *free;
    }
    hub->base_ =
        absl::StrCat(g_hub_script, " --dir ", hub->dir_, " --plugin ", g_plugin, " --mqtt-port ",
                     hub->mqtt_port_, " --ws-port ", hub->ws_port_, " --wss-port ", hub->wss_port_);
    absl::StatusOr<std::string> started = RunCommand(hub->base_ + " start 2>&1");
    if (!started.ok()) return started.status();
    hub->started_ = true;
    absl::StatusOr<std::string> registered =
        RunCommand(absl::StrCat(hub->base_, " register-key ", kProduct, " ", kDevice, " 2>&1"));
    if (!registered.ok()) return registered.status();
    absl::StatusOr<std::string> password = ReadFile(hub->dir_ + "/console.password");
    if (!password.ok()) return password.status();
    hub->console_password_ = std::string(absl::StripTrailingAsciiWhitespace(*password));
    return hub;
  }
  ~LocalHub() {
    if (started_) (void)RunCommand(base_ + " stop >/dev/null 2>&1");
  }

  std::string device_info() const {
    return absl::StrCat(dir_, "/devices/", kProduct, "_", kDevice, "/device_info.json");
  }
  std::string ca_file() const { return dir_ + "/tls/ca.crt"; }
  std::string log() const { return FileText(dir_ + "/mosquitto.log"); }
  int mqtt_port() const { return mqtt_port_; }
  int wss_port() const { return wss_port_; }
  const std::string& console_password() const { return console_password_; }

 private:
  LocalHub() = default;
  std::string dir_, base_, console_password_;
  int mqtt_port_ = 0, ws_port_ = 0, wss_port_ = 0;
  bool started_ = false;
};

// Runs argv with exactly `env` as its environment, stdout and stderr into files; waits at most
// `timeout`, then kills it. Returns the waitpid status, or -1 if it had to be killed.
int RunWithEnv(const std::vector<std::string>& argv, const std::vector<std::string>& env,
               const std::string& out_file, const std::string& err_file, absl::Duration timeout) {
  std::vector<char*> args, envp;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    int out = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(devnull, 0);
    dup2(out, 1);
    dup2(err, 2);
    execve(args[0], args.data(), envp.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  if (pid < 0) return -1;
  int status = 0;
  bool exited = WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (exited) return status;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// This process's environment without any proxy variable, plus `extra`.
std::vector<std::string> CleanEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view entry(*e);
    absl::string_view name = entry.substr(0, entry.find('='));
    bool proxy = false;
    for (const char* variable : kProxyVariables) proxy |= name == variable;
    if (!proxy) env.emplace_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// Lines of `text` containing `needle`.
int CountLines(const std::string& text, const std::string& needle) {
  int count = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n'))
    count += absl::StrContains(line, needle);
  return count;
}

enum class ProxyKind { kTinyproxy, kSquid };
enum class Via { kFlag, kEnvironment };

struct Case {
  const char* name;
  ProxyKind proxy;
  Via via;
  bool basic_auth;
};

std::ostream& operator<<(std::ostream& out, const Case& c) { return out << c.name; }

class ProxyLocalHubTest : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() {
    std::string missing = MissingTools();
    if (!missing.empty()) {
      *setup_failure_ = "missing tools:\n" + missing;
      return;
    }
    absl::StatusOr<std::unique_ptr<LocalHub>> hub = LocalHub::Start();
    if (!hub.ok()) {
      *setup_failure_ = absl::StrCat("the local hub did not start: ", hub.status().ToString());
      return;
    }
    hub_ = hub->release();
    // `-v` (one timing line per connect attempt) is asked for when this hublink accepts it;
    // --dump_pipeline makes the probe exit before connecting.
    std::string dir = testing::TempDir();
    int probe =
        RunWithEnv({g_hublink, "pub", "-v", "--dump_pipeline=/dev/null", "--host=127.0.0.1",
                    "--port=1", "--topic=t", "--message=x"},
                   CleanEnvironment({}), dir + "/probe.out", dir + "/probe.err", absl::Seconds(20));
    verbose_ = probe != -1 && WIFEXITED(probe) && WEXITSTATUS(probe) == 0;
    if (!verbose_) {
      std::string said = FileText(dir + "/probe.err");
      std::cout << "note: this hublink does not accept -v yet (" << said.substr(0, said.find('\n'))
                << "); running without it, so no phase timings are printed\n";
    }
  }
  static void TearDownTestSuite() {
    delete hub_;
    hub_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(setup_failure_->empty()) << *setup_failure_; }

  static LocalHub* hub_;
  static bool verbose_;
  static std::string* setup_failure_;
};

LocalHub* ProxyLocalHubTest::hub_ = nullptr;
bool ProxyLocalHubTest::verbose_ = false;
std::string* ProxyLocalHubTest::setup_failure_ = new std::string();

TEST_P(ProxyLocalHubTest, PubReachesTheHubOverWssThroughTheProxy) {
  const Case& c = GetParam();
  const std::string user = c.basic_auth ? kProxyUser : "";
  const std::string password = c.basic_auth ? kProxyPassword : "";
  absl::StatusOr<std::unique_ptr<ProxyDaemon>> proxy =
      c.proxy == ProxyKind::kTinyproxy ? ProxyDaemon::StartTinyproxy({user, password, {}})
                                       : ProxyDaemon::StartSquid({user, password, {}});
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  // squid logs each CONNECT in its access log (beside cache.log) when the tunnel ends; tinyproxy
  // logs the request line in its one log.
  const std::string access_log =
      c.proxy == ProxyKind::kSquid
          ? (*proxy)->log_file().substr(0, (*proxy)->log_file().rfind('/')) + "/access.log"
          : (*proxy)->log_file();
  const std::string connect_line = absl::StrCat("CONNECT 127.0.0.1:", hub_->wss_port());

  const std::string dir = absl::StrCat(testing::TempDir(), "/", c.name);
  mkdir(dir.c_str(), 0755);
  const std::string topic = absl::StrCat(kProduct, "/", kDevice, "/data");
  const std::string message = absl::StrCat("{\"case\": \"", c.name, "\"}");

  // The independent subscriber: the console account on the hub's plain MQTT listener, QoS 1.
  const std::string sub_log = dir + "/mosquitto_sub.log";
  Subprocess::Options sub_options;
  sub_options.output_file = sub_log;
  // -d prints SUBACK once subscribed, -v "topic payload" per message; -C 1 exits after one.
  // stdbuf: its stdout is a file, which stdio would otherwise hold back until exit.
  std::vector<std::string> sub_argv = {
      "stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", absl::StrCat(hub_->mqtt_port())};
  sub_argv.insert(sub_argv.end(), {"-i", absl::StrCat("console-sub-", c.name), "-u", "console",
                                   "-P", hub_->console_password(), "-t", topic, "-q", "1"});
  sub_argv.insert(sub_argv.end(), {"-d", "-v", "-C", "1", "-W", "40"});
  auto sub = Subprocess::Start(sub_argv, sub_options);
  ASSERT_TRUE(sub.ok()) << sub.status();
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(FileText(sub_log), "received SUBACK"); },
                      absl::Seconds(10)))
      << "mosquitto_sub did not subscribe:\n"
      << FileText(sub_log) << "\nhub log:\n"
      << hub_->log();

  const std::string credentials =
      c.basic_auth ? absl::StrCat(kProxyUser, ":", kProxyPassword, "@") : "";
  const std::string proxy_url =
      absl::StrCat("http://", credentials, "127.0.0.1:", (*proxy)->port());
  std::vector<std::string> argv = {g_hublink,
                                   "pub",
                                   "--device_info=" + hub_->device_info(),
                                   "--transport=wss",
                                   "--host=127.0.0.1",
                                   absl::StrCat("--port=", hub_->wss_port()),
                                   "--ca_file=" + hub_->ca_file(),
                                   "--topic=" + topic,
                                   "--message=" + message,
                                   "--qos=1",
                                   "--timeout=20"};
  if (verbose_) argv.push_back("-v");
  std::vector<std::string> extra_env;
  if (c.via == Via::kFlag) {
    argv.push_back("--proxy=" + proxy_url);
  } else {
    extra_env.push_back("HTTPS_PROXY=" + proxy_url);
  }
  const std::string out_file = dir + "/hublink.out", err_file = dir + "/hublink.err";
  absl::Time start = absl::Now();
  int status = RunWithEnv(argv, CleanEnvironment(extra_env), out_file, err_file, absl::Seconds(30));
  absl::Duration took = absl::Now() - start;
  const std::string err = FileText(err_file);
  ASSERT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "hublink pub " << (status == -1 ? "was still running after 30 s" : "failed") << " (status "
      << status << "); stderr:\n"
      << err << "\nproxy log:\n"
      << FileText(access_log) << "\n"
      << (*proxy)->Log() << "\nhub log:\n"
      << hub_->log();
  std::cout << "[" << c.name << "] hublink pub exited 0 in " << absl::FormatDuration(took) << "\n";
  for (absl::string_view line : absl::StrSplit(err, '\n')) {
    if (absl::StrContains(line, " ms")) std::cout << "[" << c.name << "] " << line << "\n";
  }
  if (c.basic_auth) {
    EXPECT_FALSE(absl::StrContains(err + FileText(out_file), kProxyPassword))
        << "the proxy password was printed:\n"
        << err;
  }

  // The subscriber got it: "topic payload" (-v), then exits after one message (-C 1).
  const std::string expected = absl::StrCat(topic, " ", message);
  EXPECT_TRUE(
      WaitFor([&] { return CountLines(FileText(sub_log), expected) > 0; }, absl::Seconds(10)))
      << "mosquitto_sub did not receive \"" << expected << "\":\n"
      << FileText(sub_log);

  // The proxy carried it: its log has the CONNECT to the hub's wss port (squid writes the line
  // once the tunnel has closed, i.e. shortly after hublink exited).
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string log = FileText(access_log);
        if (c.proxy == ProxyKind::kTinyproxy) return CountLines(log, connect_line) > 0;
        // A tunnel squid opened (not a 407 it answered), by the authenticated user when asked.
        for (absl::string_view line : absl::StrSplit(log, '\n')) {
          if (absl::StrContains(line, connect_line) && absl::StrContains(line, "TCP_TUNNEL/200") &&
              (!c.basic_auth || absl::StrContains(line, absl::StrCat(" ", kProxyUser, " ")))) {
            return true;
          }
        }
        return false;
      },
      absl::Seconds(10)))
      << "no \"" << connect_line << "\" in the proxy's log " << access_log << ":\n"
      << FileText(access_log);
}

INSTANTIATE_TEST_SUITE_P(
    Proxies, ProxyLocalHubTest,
    ::testing::Values(Case{"tinyproxy_flag", ProxyKind::kTinyproxy, Via::kFlag, false},
                      Case{"tinyproxy_env_basic_auth", ProxyKind::kTinyproxy, Via::kEnvironment,
                           true},
                      Case{"squid_flag_basic_auth", ProxyKind::kSquid, Via::kFlag, true},
                      Case{"squid_env", ProxyKind::kSquid, Via::kEnvironment, false}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace hublink

int main(int argc, char** argv) {
  return hublink::testing::RunTestsWithArgs(
      argc, argv, "proxy_local_hub_test LOCAL_HUB_SH HUB_PLUGIN_SO HUBLINK",
      {&hublink::g_hub_script, &hublink::g_plugin, &hublink::g_hublink});
}
