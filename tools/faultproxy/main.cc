// faultproxy: a fault-injecting TCP proxy for tests (see tools/faultproxy/README.md).
//
//   bazel run //tools/faultproxy -- --listen=127.0.0.1:18830 --upstream=127.0.0.1:1883 \
//       --control=127.0.0.1:18831 --schedule='every=30s,for=5s,fault=blackhole' --seed=7
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "plugins/event_loop.h"
#include "plugins/log.h"
#include "tools/faultproxy/fault.h"
#include "tools/faultproxy/proxy.h"

namespace hublink {
namespace faultproxy {
namespace {

constexpr char kUsage[] =
    "usage: faultproxy --upstream=HOST:PORT [--listen=HOST:PORT] [--control=HOST:PORT]\n"
    "                  [--schedule=SPEC] [--seed=N] [--max_buffer=BYTES] [--max_connections=N]\n"
    "                  [--dry_run=DURATION]\n"
    "  --listen           where clients connect (default 127.0.0.1:0, the port is printed)\n"
    "  --upstream         where connections are forwarded (required)\n"
    "  --control          the control port (one command per line; off unless given)\n"
    "  --schedule         'every=30s,for=5s,fault=blackhole;every=45s,for=1s,fault=reset'\n"
    "  --seed             seeds latency jitter and schedule splay (default 1)\n"
    "  --max_buffer       bytes queued per direction before the source is not read (262144)\n"
    "  --max_connections  more are accepted and reset at once (1000)\n"
    "  --dry_run          print the schedule's activations for this long and exit\n";

int Usage(const std::string& error) {
  std::cerr << "faultproxy: " << error << "\n" << kUsage;
  return 2;
}

int Main(int argc, char** argv) {
  ProxyOptions options;
  bool have_upstream = false;
  std::string schedule_text;
  absl::Duration dry_run = absl::ZeroDuration();
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    size_t eq = arg.find('=');
    if (!absl::StartsWith(arg, "--") || eq == std::string::npos) {
      return Usage(absl::StrCat("expected --flag=value, got \"", arg, "\""));
    }
    std::string name = arg.substr(2, eq - 2);
    std::string value = arg.substr(eq + 1);
    if (name == "listen" || name == "upstream" || name == "control") {
      absl::StatusOr<Address> address = ParseAddress(value);
      if (!address.ok()) return Usage(absl::StrCat("--", name, ": ", address.status().message()));
      if (name == "listen") options.listen = *address;
      if (name == "upstream") options.upstream = *address, have_upstream = true;
      if (name == "control") options.control = *address, options.enable_control = true;
    } else if (name == "schedule") {
      schedule_text = value;
    } else if (name == "seed") {
      if (!absl::SimpleAtoi(value, &options.seed)) return Usage("--seed: not a number");
    } else if (name == "max_buffer") {
      uint64_t n;
      if (!absl::SimpleAtoi(value, &n) || n == 0)
        return Usage("--max_buffer: not a positive number");
      options.max_buffer = static_cast<size_t>(n);
    } else if (name == "max_connections") {
      if (!absl::SimpleAtoi(value, &options.max_connections) || options.max_connections <= 0) {
        return Usage("--max_connections: not a positive number");
      }
    } else if (name == "dry_run") {
      absl::StatusOr<absl::Duration> d = ParseDurationWord("--dry_run", value);
      if (!d.ok()) return Usage(std::string(d.status().message()));
      dry_run = *d;
    } else {
      return Usage(absl::StrCat("unknown flag --", name));
    }
  }
  // The control port is opt-in.
  bool control_given = false;
  for (int i = 1; i < argc; ++i) control_given |= absl::StartsWith(argv[i], "--control=");
  options.enable_control = control_given;

  absl::StatusOr<std::vector<ScheduleEntry>> schedule = ParseSchedule(schedule_text);
  if (!schedule.ok()) return Usage(absl::StrCat("--schedule: ", schedule.status().message()));
  options.schedule = *schedule;
  if (dry_run > absl::ZeroDuration()) {
    std::cout << Proxy::DescribeSchedule(options.schedule, options.seed, dry_run);
    return 0;
  }
  if (!have_upstream) return Usage("--upstream is required");

  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  if (!loop.ok()) {
    std::cerr << "faultproxy: " << loop.status() << "\n";
    return 1;
  }
  absl::StatusOr<std::unique_ptr<Proxy>> proxy = Proxy::Create(loop->get(), options);
  if (!proxy.ok()) {
    std::cerr << "faultproxy: " << proxy.status() << "\n";
    return 1;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  int signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  EventLoop* event_loop = loop->get();
  if (signal_fd >= 0) {
    (void)event_loop->Watch(signal_fd, EventLoop::kReadable,
                            [event_loop](uint32_t) { event_loop->Stop(); });
  }
  // One line on stdout for scripts that let the kernel pick ports.
  std::cout << "faultproxy listen=" << options.listen.host << ":" << (*proxy)->listen_port()
            << " upstream=" << options.upstream.ToString();
  if (options.enable_control) {
    std::cout << " control=" << options.control.host << ":" << (*proxy)->control_port();
  }
  std::cout << std::endl;
  event_loop->Run();
  HLOG(INFO) << "faultproxy: stopping";
  if (signal_fd >= 0) {
    event_loop->Unwatch(signal_fd);
    close(signal_fd);
  }
  proxy->reset();
  return 0;
}

}  // namespace
}  // namespace faultproxy
}  // namespace hublink

int main(int argc, char** argv) { return hublink::faultproxy::Main(argc, argv); }
