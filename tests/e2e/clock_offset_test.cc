// The server clock offset reaches the signature: against the local hub (which refuses expired
// signatures), a device whose signatures live 60 s is refused when told the server is two hours
// behind its clock, and accepted with the offset the $sys time service measures.
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "profiles/tencent/tencent_profile.h"
#include "protocols/mqtt/client.h"
#include "tests/e2e/e2e_test_main.h"
#include "tests/test_util.h"

namespace hublink {
namespace {

std::string g_hub_script, g_plugin;  // from argv

class LocalHub {
 public:
  static std::unique_ptr<LocalHub> Start() {
    auto hub = std::unique_ptr<LocalHub>(new LocalHub());
    hub->dir_ = absl::StrCat(testing::TempDir(), "/hub");
    hub->mqtt_port_ = *testing::PickFreePort();
    int ws = *testing::PickFreePort(), wss = *testing::PickFreePort();
    hub->base_ =
        absl::StrCat(g_hub_script, " --dir ", hub->dir_, " --plugin ", g_plugin, " --mqtt-port ",
                     hub->mqtt_port_, " --ws-port ", ws, " --wss-port ", wss);
    auto started = testing::RunCommand(hub->base_ + " start");
    EXPECT_TRUE(started.ok()) << started.status();
    return hub;
  }
  ~LocalHub() { (void)testing::RunCommand(base_ + " stop"); }

  std::string RegisterKeyDevice(const std::string& product, const std::string& device) {
    auto registered =
        testing::RunCommand(absl::StrCat(base_, " register-key ", product, " ", device));
    EXPECT_TRUE(registered.ok()) << registered.status();
    return absl::StrCat(dir_, "/devices/", product, "_", device, "/device_info.json");
  }
  int mqtt_port() const { return mqtt_port_; }

 private:
  std::string dir_, base_;
  int mqtt_port_ = 0;
};

// std::mutex and std::condition_variable, per plugins/event_loop.h's locking policy.
struct Outcome {
  std::mutex mutex;
  std::condition_variable changed;
  bool connected = false;
  absl::Status refused;
};

// Connects with signatures valid for 60 s, after telling the client the server's clock offset.
void ConnectWithOffset(const LocalHub& hub, const tencent::DeviceInfo& device,
                       absl::Duration offset, Outcome& outcome) {
  tencent::ProfileOptions options;
  options.set_transport(tencent::ProfileOptions::TCP);
  options.set_host("127.0.0.1");
  options.set_port(hub.mqtt_port());
  options.set_signature_ttl_seconds(60);
  auto pipeline = tencent::BuildPipeline(device, options);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  Registry::Builder builder;
  RegisterBuiltinPlugins(builder);
  Registry registry = std::move(builder).Build().value();
  Client::Options client_options;
  client_options.on_event = [&outcome](const ConnectionEvent& event) {
    {
      std::lock_guard<std::mutex> lock(outcome.mutex);
      if (event.kind == ConnectionEvent::Kind::kConnected) outcome.connected = true;
      if (event.kind == ConnectionEvent::Kind::kReconnecting && outcome.refused.ok()) {
        outcome.refused = event.reason;
      }
    }
    outcome.changed.notify_all();
  };
  auto client = Client::Create(*pipeline, registry, std::move(client_options));
  ASSERT_TRUE(client.ok()) << client.status();
  (*client)->SetServerClockOffset(offset);
  (*client)->Connect();
  std::unique_lock<std::mutex> lock(outcome.mutex);
  outcome.changed.wait_for(lock, std::chrono::seconds(20),
                           [&outcome] { return outcome.connected || !outcome.refused.ok(); });
}

TEST(ClockOffsetTest, ExpiryIsComputedInServerTime) {
  auto hub = LocalHub::Start();
  auto device = tencent::ReadDeviceInfo(hub->RegisterKeyDevice("CLOCK00001", "dev"));
  ASSERT_TRUE(device.ok()) << device.status();

  Outcome behind;
  ConnectWithOffset(*hub, *device, -absl::Hours(2), behind);
  {
    std::lock_guard<std::mutex> lock(behind.mutex);
    EXPECT_FALSE(behind.connected) << "a signature that expired 2 h ago was accepted";
    EXPECT_TRUE(absl::StrContains(behind.refused.message(), "CONNACK 5")) << behind.refused;
  }

  Outcome in_sync;
  ConnectWithOffset(*hub, *device, absl::ZeroDuration(), in_sync);
  std::lock_guard<std::mutex> lock(in_sync.mutex);
  EXPECT_TRUE(in_sync.connected) << in_sync.refused;
}

}  // namespace
}  // namespace hublink

int main(int argc, char** argv) {
  return hublink::testing::RunTestsWithArgs(argc, argv,
                                            "clock_offset_test LOCAL_HUB_SH HUB_PLUGIN_SO",
                                            {&hublink::g_hub_script, &hublink::g_plugin});
}
