// bazel run //examples:custom_plugin
//
// Shows that a third party extends hublink without touching it: the "tap" transport (its own
// package, config proto and Register function, in examples/tap_plugin/) is stacked over TCP from a
// text-format pipeline file and talks to a loopback echo server this program starts itself.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "examples/tap_plugin/tap_transport.h"
#include "plugins/builtin.h"
#include "plugins/log.h"
#include "plugins/pipeline.h"

namespace {

// A one-connection echo server on 127.0.0.1, port chosen by the kernel.
class EchoServer {
 public:
  bool Start() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listen_fd_, 1) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return false;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      int fd = accept(listen_fd_, nullptr, nullptr);
      char buf[4096];
      ssize_t n;
      while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0) {
        if (write(fd, buf, static_cast<size_t>(n)) != n) break;
      }
      if (fd >= 0) close(fd);
    });
    return true;
  }
  ~EchoServer() {
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  int port() const { return port_; }

 private:
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

class Printer : public hublink::TransportListener {
 public:
  void OnOpen() override { open = true; }
  void OnData(absl::string_view bytes) override { echoed.append(bytes.data(), bytes.size()); }
  void OnClosed(const absl::Status& status) override {
    closed = true;
    result = status;
  }
  bool open = false, closed = false;
  std::string echoed;
  absl::Status result;
};

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "custom_plugin: %s\n", std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // `bazel run` starts us in the runfiles tree: the pipeline file sits under its workspace path.
  std::string path = argc > 1 ? argv[1] : "examples/tap_plugin/pipeline.textproto";

  hublink::Registry::Builder builder;
  hublink::RegisterBuiltinPlugins(builder);
  // The only line an application adds for a third-party plugin:
  acme::RegisterTapTransport(builder);
  absl::StatusOr<hublink::Registry> registry = std::move(builder).Build();
  if (!registry.ok()) return Fail(registry.status());

  EchoServer echo;
  if (!echo.Start()) return Fail(absl::InternalError("cannot start the loopback echo server"));
  absl::StatusOr<hublink::Pipeline> config = hublink::ReadPipelineFile(path);
  if (!config.ok()) return Fail(config.status());
  config->mutable_endpoint()->set_port(echo.port());
  auto pipeline = hublink::ResolvedPipeline::Resolve(*config, *registry, path);
  if (!pipeline.ok()) return Fail(pipeline.status());
  std::printf("stack: %s -> %s:%d\n", (*pipeline)->DescribeStack().c_str(),
              (*pipeline)->endpoint().host().c_str(), echo.port());

  auto loop = hublink::EventLoop::Create();
  if (!loop.ok()) return Fail(loop.status());
  hublink::ConnectContext context(**loop, (*pipeline)->endpoint().host(), echo.port());
  context.set_stage_observer([](absl::string_view layer, absl::string_view detail) {
    HLOG(INFO) << layer << ": " << detail;
  });
  auto transport = (*pipeline)->CreateStack(context);
  if (!transport.ok()) return Fail(transport.status());

  Printer printer;
  (*transport)->Open(&printer);
  const std::string messages[] = {"hello through a custom plugin\n", "second line\n", "bye\n"};
  std::string sent;
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!printer.open && !printer.closed && absl::Now() < deadline)
    (*loop)->RunOnce(absl::Milliseconds(100));
  if (!printer.open)
    return Fail(printer.closed ? printer.result : absl::DeadlineExceededError("no connection"));
  for (const std::string& message : messages) {
    absl::Status status = (*transport)->Write(message);
    if (!status.ok()) return Fail(status);
    sent += message;
  }
  while (printer.echoed.size() < sent.size() && !printer.closed && absl::Now() < deadline) {
    (*loop)->RunOnce(absl::Milliseconds(100));
  }
  (*transport)->Close();
  while (!printer.closed && absl::Now() < deadline) (*loop)->RunOnce(absl::Milliseconds(100));

  acme::TapCounters counters = acme::GetTapCounters();
  std::printf("echoed: %s", printer.echoed.c_str());
  std::printf("tap counted %llu bytes down in %llu writes, %llu bytes up in %llu reads\n",
              static_cast<unsigned long long>(counters.bytes_down),
              static_cast<unsigned long long>(counters.writes),
              static_cast<unsigned long long>(counters.bytes_up),
              static_cast<unsigned long long>(counters.reads));
  if (printer.echoed != sent || counters.bytes_down != sent.size() ||
      counters.bytes_up != sent.size()) {
    return Fail(absl::DataLossError("echo or tap counts differ from what was sent"));
  }
  std::printf("ok\n");
  return 0;
}
