// Issue 16, end to end against the local hub (real mosquitto + the IoT Hub plugin): a KEY device
// built by the Tencent profile serves RRPC and listens for broadcasts while the hub's console
// account plays the cloud: it sends an RRPC request on $rrpc/rxd/<pid>/<dn>/<processId> and must
// get the device's answer on $rrpc/txd/<pid>/<dn>/<processId>; it broadcasts on
// $broadcast/rxd/<pid>/<dn> and the device must get it. The profile refuses QoS 2 and retain before
// they reach the hub, and the connection stays up. As a gateway, the device binds a sub-device
// (signed with its secret), lists it, brings it online and offline, and unbinds it. With a data
// template, its report and event are answered by the hub, a control and an action from the
// console by its handlers, and get_status / clear_control / report_info by the hub.
//   args: local_hub.sh hub_plugin.so
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "plugins/builtin.h"
#include "profiles/tencent/data_template.h"
#include "profiles/tencent/gateway.h"
#include "profiles/tencent/rrpc.h"
#include "protocols/mqtt/client.h"
#include "tests/e2e/e2e_test_main.h"
#include "tests/test_util.h"
#include "tools/cli/connection_flags.h"

namespace hublink {
namespace {

using ::hublink::testing::ReadFile;
using ::hublink::testing::RunCommand;
using ::hublink::testing::WaitFor;

std::string g_hub_script, g_plugin;  // from argv

constexpr char kProduct[] = "SERVICES01";
constexpr char kDevice[] = "lamp";

absl::Status Await(std::future<absl::Status> future, const char* what) {
  if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return absl::DeadlineExceededError(absl::StrCat(what, ": nothing within 10 s"));
  }
  return future.get();
}

class LocalHub {
 public:
  ~LocalHub() {
    if (started_) (void)RunCommand(base_ + " stop >/dev/null 2>&1");
  }
  // A state dir of its own per test (`name`): each test starts a fresh hub.
  absl::Status Start(absl::string_view name) {
    dir_ = absl::StrCat(testing::TempDir(), "/", name);
    int ports[3];
    for (int& port : ports) {
      absl::StatusOr<int> free = testing::PickFreePort();
      if (!free.ok()) return free.status();
      port = *free;
    }
    mqtt_port_ = ports[0];
    base_ = absl::StrCat(g_hub_script, " --dir ", dir_, " --plugin ", g_plugin, " --mqtt-port ",
                         ports[0], " --ws-port ", ports[1], " --wss-port ", ports[2]);
    absl::StatusOr<std::string> started = RunCommand(base_ + " start 2>&1");
    if (!started.ok()) return started.status();
    started_ = true;
    absl::StatusOr<std::string> registered =
        RunCommand(absl::StrCat(base_, " register-key ", kProduct, " ", kDevice, " 2>&1"));
    if (!registered.ok()) return registered.status();
    absl::StatusOr<std::string> password = ReadFile(dir_ + "/console.password");
    if (!password.ok()) return password.status();
    console_password_ = std::string(absl::StripTrailingAsciiWhitespace(*password));
    return absl::OkStatus();
  }
  std::string device_info() const {
    return absl::StrCat(dir_, "/devices/", kProduct, "_", kDevice, "/device_info.json");
  }
  int mqtt_port() const { return mqtt_port_; }
  // The registered device over plain MQTT on loopback.
  cli::ConnectionFlags DeviceFlags() const {
    cli::ConnectionFlags flags;
    flags.device_info = device_info();
    flags.transport = "tcp";
    flags.host = "127.0.0.1";
    flags.port = mqtt_port_;
    flags.no_proxy = true;
    return flags;
  }
  // The hub's console account (the cloud's side of a service) as `client_id`.
  cli::ConnectionFlags ConsoleFlags(absl::string_view client_id) const {
    cli::ConnectionFlags flags;
    flags.host = "127.0.0.1";
    flags.port = mqtt_port_;
    flags.client_id = std::string(client_id);
    flags.username = "console";
    flags.password = console_password_;
    flags.no_proxy = true;
    return flags;
  }
  const std::string& base() const { return base_; }

 private:
  std::string dir_, base_, console_password_;
  int mqtt_port_ = 0;
  bool started_ = false;
};

absl::StatusOr<std::unique_ptr<Client>> MakeClient(const cli::ConnectionFlags& flags) {
  absl::StatusOr<Pipeline> pipeline = cli::BuildPipeline(flags, nullptr, &BuiltinRegistry());
  if (!pipeline.ok()) return pipeline.status();
  return Client::Create(*pipeline, BuiltinRegistry(), Client::Options(), "test");
}

// Messages a handler collected on the loop thread.
struct Inbox {
  std::mutex mutex;
  std::vector<std::pair<std::string, std::string>> messages;
  void Add(absl::string_view topic, absl::string_view payload) {
    std::lock_guard<std::mutex> lock(mutex);
    messages.emplace_back(std::string(topic), std::string(payload));
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mutex);
    return messages.size();
  }
  std::pair<std::string, std::string> at(size_t i) {
    std::lock_guard<std::mutex> lock(mutex);
    return messages.at(i);
  }
};

TEST(ServicesLocalHubTest, RrpcBroadcastAndRefusalsAgainstTheLocalHub) {
  LocalHub hub;
  absl::Status started = hub.Start("rrpc_hub");
  ASSERT_TRUE(started.ok()) << started;

  Inbox requests, broadcasts, answers;  // before the clients, whose handlers use them
  absl::StatusOr<std::unique_ptr<Client>> device = MakeClient(hub.DeviceFlags());
  ASSERT_TRUE(device.ok()) << device.status();
  absl::StatusOr<std::unique_ptr<Client>> console =
      MakeClient(hub.ConsoleFlags("console-services-e2e"));
  ASSERT_TRUE(console.ok()) << console.status();

  std::promise<absl::Status> rrpc_subscribed, broadcast_subscribed;
  tencent::ServeRrpc(
      **device, kProduct, kDevice,
      [&requests](const tencent::RrpcRequest& request, tencent::RrpcResponder respond) {
        requests.Add(request.process_id, request.payload);
        respond.Reply(absl::StrCat("{\"echo\":", request.payload, "}"));
      },
      [&rrpc_subscribed](const absl::Status& s) { rrpc_subscribed.set_value(s); });
  tencent::SubscribeBroadcast(
      **device, kProduct, kDevice,
      [&broadcasts](absl::string_view payload) { broadcasts.Add("", payload); },
      [&broadcast_subscribed](const absl::Status& s) { broadcast_subscribed.set_value(s); });
  (*device)->Connect();
  (*console)->Connect();
  std::future<absl::Status> console_subscribed = (*console)->Subscribe(
      absl::StrCat("$rrpc/txd/", kProduct, "/", kDevice, "/+"), 0,
      [&answers](const mqtt::Message& m) { answers.Add(m.topic, m.payload); });
  ASSERT_TRUE(Await(rrpc_subscribed.get_future(), "device SUBACK for $rrpc/rxd").ok());
  ASSERT_TRUE(Await(broadcast_subscribed.get_future(), "device SUBACK for $broadcast").ok());
  ASSERT_TRUE(Await(std::move(console_subscribed), "console SUBACK for $rrpc/txd").ok());

  // The cloud calls the device: request on rxd/<processId>, answer on txd/<processId>.
  const std::string request_topic = absl::StrCat("$rrpc/rxd/", kProduct, "/", kDevice, "/1001");
  ASSERT_TRUE(
      Await((*console)->Publish(request_topic, R"({"cmd":"ping"})", 1), "console request").ok());
  ASSERT_TRUE(WaitFor([&] { return answers.size() >= 1; }, absl::Seconds(10)))
      << "no RRPC answer on $rrpc/txd";
  EXPECT_EQ(answers.at(0).first, absl::StrCat("$rrpc/txd/", kProduct, "/", kDevice, "/1001"));
  EXPECT_EQ(answers.at(0).second, R"({"echo":{"cmd":"ping"}})");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests.at(0).first, "1001");

  // A product broadcast reaches the device.
  ASSERT_TRUE(Await((*console)->Publish(absl::StrCat("$broadcast/rxd/", kProduct, "/", kDevice),
                                        "firmware 2.0 tonight", 1),
                    "console broadcast")
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return broadcasts.size() >= 1; }, absl::Seconds(10))) << "no broadcast";
  EXPECT_EQ(broadcasts.at(0).second, "firmware 2.0 tonight");

  // What the hub does not support is refused with a message that says so; the link stays up.
  const std::string data = absl::StrCat(kProduct, "/", kDevice, "/data");
  absl::Status qos2 = Await((*device)->Publish(data, "x", 2), "QoS 2 publish");
  EXPECT_EQ(qos2.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(qos2.message(),
            "mqtt: the broker (Tencent IoT Hub) does not support QoS 2; use QoS 1 or lower");
  absl::Status retained = Await((*device)->Publish(data, "x", 1, true), "retained publish");
  EXPECT_EQ(retained.message(),
            "mqtt: the broker (Tencent IoT Hub) does not support retained messages");
  EXPECT_TRUE(Await((*device)->Publish(data, "x", 1), "QoS 1 publish").ok());
  EXPECT_TRUE((*device)->connected());

  (*device)->Disconnect().wait_for(std::chrono::seconds(5));
  (*console)->Disconnect().wait_for(std::chrono::seconds(5));
}

// Runs `call` on the client's loop (where a GatewayClient lives) and waits for its completion.
absl::Status OnLoop(Client& client,
                    std::function<void(std::function<void(const absl::Status&)>)> call) {
  auto promise = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> future = promise->get_future();
  client.loop().Post([call, promise] {
    call([promise](const absl::Status& status) { promise->set_value(status); });
  });
  return Await(std::move(future), "gateway operation");
}

// The device as a gateway: bind (signed with the sub-device's secret), describe, online, offline,
// unbind, against the local hub's bookkeeping (tools/local_hub/shadow_service.py).
TEST(ServicesLocalHubTest, GatewayBindsAndBringsSubDevicesOnline) {
  LocalHub hub;
  absl::Status started = hub.Start("gateway_hub");
  ASSERT_TRUE(started.ok()) << started;
  ASSERT_TRUE(RunCommand(absl::StrCat(hub.base(), " register-key SUBPROD001 sensor1 ",
                                      "MDEyMzQ1Njc4OWFiY2RlZg== 2>&1"))
                  .ok());
  absl::StatusOr<std::unique_ptr<Client>> device = MakeClient(hub.DeviceFlags());
  ASSERT_TRUE(device.ok()) << device.status();
  Client& client = **device;
  auto gateway = std::make_shared<std::unique_ptr<tencent::GatewayClient>>();
  // The SUBACK comes once connected: attach, connect, then wait for it.
  auto subscribed = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> subscribed_future = subscribed->get_future();
  client.loop().Post([&client, gateway, subscribed] {
    *gateway = tencent::GatewayClient::Attach(
        client, kProduct, kDevice, {},
        [subscribed](const absl::Status& s) { subscribed->set_value(s); });
  });
  client.Connect();
  ASSERT_TRUE(Await(std::move(subscribed_future), "SUBACK for $gateway/operation/result").ok());
  const tencent::SubDevice sensor{"SUBPROD001", "sensor1"};

  auto describe = [&]() -> absl::StatusOr<std::vector<tencent::SubDevice>> {
    auto promise =
        std::make_shared<std::promise<absl::StatusOr<std::vector<tencent::SubDevice>>>>();
    auto future = promise->get_future();
    client.loop().Post([gateway, promise] {
      (*gateway)->DescribeSubDevices(
          [promise](absl::StatusOr<std::vector<tencent::SubDevice>> list) {
            promise->set_value(std::move(list));
          });
    });
    if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      return absl::DeadlineExceededError("describe_sub_devices: nothing within 10 s");
    }
    return future.get();
  };
  auto op = [&](const char* what, const std::string& secret = "") {
    return OnLoop(client, [gateway, sensor, what, secret](auto done) {
      std::string name = what;
      if (name == "bind") (*gateway)->Bind(sensor, secret, done);
      if (name == "unbind") (*gateway)->Unbind(sensor, done);
      if (name == "online") (*gateway)->Online(sensor, done);
      if (name == "offline") (*gateway)->Offline(sensor, done);
    });
  };

  absl::StatusOr<std::vector<tencent::SubDevice>> listed = describe();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->empty());
  absl::Status refused = op("online");
  EXPECT_EQ(refused.message(), "gateway: online SUBPROD001/sensor1 refused by the hub (result 1)");
  absl::Status forged = op("bind", "not-the-secret");
  EXPECT_EQ(forged.message(), "gateway: bind SUBPROD001/sensor1 refused by the hub (result 2)");
  EXPECT_TRUE(op("bind", "MDEyMzQ1Njc4OWFiY2RlZg==").ok());
  listed = describe();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(*listed, (std::vector<tencent::SubDevice>{sensor}));
  EXPECT_TRUE(op("online").ok());
  // Online, the sub-device's messages go through the gateway's connection.
  Inbox seen;
  absl::StatusOr<std::unique_ptr<Client>> console =
      MakeClient(hub.ConsoleFlags("console-gateway-e2e"));
  ASSERT_TRUE(console.ok()) << console.status();
  (*console)->Connect();
  ASSERT_TRUE(Await((*console)->Subscribe(
                        "SUBPROD001/sensor1/data", 1,
                        [&seen](const mqtt::Message& m) { seen.Add(m.topic, m.payload); }),
                    "console SUBACK")
                  .ok());
  ASSERT_TRUE(Await(client.Publish("SUBPROD001/sensor1/data", R"({"temperature":21})", 1),
                    "sub-device publish")
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return seen.size() >= 1; }, absl::Seconds(10)))
      << "the sub-device's message did not get through the gateway";
  EXPECT_EQ(seen.at(0).second, R"({"temperature":21})");
  (*console)->Disconnect().wait_for(std::chrono::seconds(5));
  EXPECT_TRUE(op("offline").ok());
  EXPECT_TRUE(op("unbind").ok());
  listed = describe();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->empty());

  std::promise<void> released;
  client.loop().Post([gateway, &released] {
    gateway->reset();
    released.set_value();
  });
  released.get_future().wait();
  client.Disconnect().wait_for(std::chrono::seconds(5));
}

constexpr char kLightTemplate[] = R"({"version":"1.0","properties":[
  {"id":"power_switch","mode":"rw","define":{"type":"bool","mapping":{"0":"off","1":"on"}}},
  {"id":"brightness","mode":"rw","define":{"type":"int","min":"0","max":"100"}}],
 "events":[{"id":"status_report","type":"info","params":[
  {"id":"status","define":{"type":"bool","mapping":{"0":"normal","1":"fault"}}}]}],
 "actions":[{"id":"light_blink","input":[{"id":"time","define":{"type":"int","min":"0","max":"10"}}],
  "output":[{"id":"result","define":{"type":"bool","mapping":{"0":"fail","1":"ok"}}}]}]})";

// The data template: a report and an event answered by the local hub, a control and an action
// from the console answered by the device's handlers; report_info acknowledged; get_status
// returns the reported values and the held control until clear_control drops it.
TEST(ServicesLocalHubTest, DataTemplateReportEventControlAndAction) {
  LocalHub hub;
  absl::Status started = hub.Start("template_hub");
  ASSERT_TRUE(started.ok()) << started;
  absl::StatusOr<tencent::DataTemplate> tmpl = tencent::ParseDataTemplate(kLightTemplate, "light");
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();

  Inbox replies, controls;  // before the clients
  absl::StatusOr<std::unique_ptr<Client>> device = MakeClient(hub.DeviceFlags());
  ASSERT_TRUE(device.ok()) << device.status();
  absl::StatusOr<std::unique_ptr<Client>> console =
      MakeClient(hub.ConsoleFlags("console-template-e2e"));
  ASSERT_TRUE(console.ok()) << console.status();
  Client& client = **device;
  auto light = std::make_shared<std::unique_ptr<tencent::TemplateClient>>();
  auto subscribed = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> subscribed_future = subscribed->get_future();
  client.loop().Post([&client, light, subscribed, &controls, t = *tmpl] {
    *light = tencent::TemplateClient::Attach(
        client, kProduct, kDevice, t, {},
        [subscribed](const absl::Status& s) { subscribed->set_value(s); });
    (*light)->set_control_handler([&controls](const std::string& params) {
      controls.Add("control", params);
      return tencent::TemplateClient::Reply{0, "applied"};
    });
    (*light)->set_action_handler([&controls](const std::string& id, const std::string& params) {
      controls.Add(id, params);
      return tencent::TemplateClient::Reply{0, "blinked", R"({"result":1})"};
    });
  });
  client.Connect();
  (*console)->Connect();
  std::future<absl::Status> console_subscribed = (*console)->Subscribe(
      absl::StrCat("$thing/up/+/", kProduct, "/", kDevice), 0,
      [&replies](const mqtt::Message& m) { replies.Add(m.topic, m.payload); });
  ASSERT_TRUE(Await(std::move(subscribed_future), "device SUBACKs for $thing/down").ok());
  ASSERT_TRUE(Await(std::move(console_subscribed), "console SUBACK for $thing/up").ok());

  EXPECT_TRUE(OnLoop(client, [light](auto done) {
                (*light)->ReportProperties(R"({"power_switch":1,"brightness":40})", done);
              }).ok());
  EXPECT_TRUE(OnLoop(client, [light](auto done) {
                (*light)->PostEvent("status_report", R"({"status":0})", done);
              }).ok());
  absl::Status out_of_range = OnLoop(
      client, [light](auto done) { (*light)->ReportProperties(R"({"brightness":140})", done); });
  EXPECT_EQ(out_of_range.message(), "template: params.brightness: 140 is above max 100");

  const std::string down = absl::StrCat("/", kProduct, "/", kDevice);
  ASSERT_TRUE(Await((*console)->Publish(absl::StrCat("$thing/down/property", down),
                                        R"({"method":"control","clientToken":"console-1",)"
                                        R"("params":{"brightness":70}})",
                                        1),
                    "console control")
                  .ok());
  ASSERT_TRUE(Await((*console)->Publish(absl::StrCat("$thing/down/action", down),
                                        R"({"method":"action","clientToken":"console-2",)"
                                        R"("actionId":"light_blink","params":{"time":2}})",
                                        1),
                    "console action")
                  .ok());
  // The console sees: report, event_post (the device's uplinks), control_reply, action_reply.
  auto has = [&](const std::string& topic_kind, const std::string& fragment) {
    for (size_t i = 0; i < replies.size(); ++i) {
      auto [topic, payload] = replies.at(i);
      if (topic == absl::StrCat("$thing/up/", topic_kind, down) &&
          payload.find(fragment) != std::string::npos) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(WaitFor(
      [&] {
        return has("property", R"({"method":"control_reply","clientToken":"console-1","code":0,)"
                               R"("status":"applied"})") &&
               has("action", R"("clientToken":"console-2","code":0,"status":"blinked",)"
                             R"("response":{"result":1}})");
      },
      absl::Seconds(10)))
      << "control_reply / action_reply not seen by the console";
  EXPECT_TRUE(has("property", R"("method":"report")"));
  EXPECT_TRUE(has("event", R"("method":"event_post")"));
  ASSERT_EQ(controls.size(), 2u);
  EXPECT_EQ(controls.at(0).second, R"({"brightness":70})");
  EXPECT_EQ(controls.at(1).first, "light_blink");

  // report_info, then get_status: the hub holds the console's control until the device clears
  // it, and has the values reported above.
  EXPECT_TRUE(OnLoop(client, [light](auto done) {
                (*light)->ReportInfo(R"({"module_hardinfo":"x86_64","fw_ver":"1.0.0",)"
                                     R"("mac":"02:00:00:00:00:01",)"
                                     R"("device_label":{"room":"lab"}})",
                                     done);
              }).ok());
  auto get_status = [&]() -> absl::StatusOr<tencent::TemplateClient::DeviceStatus> {
    auto promise =
        std::make_shared<std::promise<absl::StatusOr<tencent::TemplateClient::DeviceStatus>>>();
    auto future = promise->get_future();
    client.loop().Post([light, promise] {
      (*light)->GetStatus([promise](absl::StatusOr<tencent::TemplateClient::DeviceStatus> status) {
        promise->set_value(std::move(status));
      });
    });
    // The client's own timeout (10 s) answers first; this bound only keeps a hung test finite.
    if (future.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      return absl::DeadlineExceededError("get_status: no answer within 30 s");
    }
    return future.get();
  };
  absl::StatusOr<tencent::TemplateClient::DeviceStatus> status = get_status();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->reported_json, R"({"brightness":40,"power_switch":1})");
  EXPECT_EQ(status->control_json, R"({"brightness":70})");
  EXPECT_TRUE(OnLoop(client, [light](auto done) { (*light)->ClearControl(done); }).ok());
  status = get_status();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->reported_json, R"({"brightness":40,"power_switch":1})");
  EXPECT_EQ(status->control_json, "") << "clear_control dropped the held control";
  EXPECT_TRUE(
      WaitFor([&] { return has("property", R"("method":"report_info")"); }, absl::Seconds(10)))
      << "the console did not see report_info";

  std::promise<void> released;
  client.loop().Post([light, &released] {
    light->reset();
    released.set_value();
  });
  released.get_future().wait();
  client.Disconnect().wait_for(std::chrono::seconds(5));
  (*console)->Disconnect().wait_for(std::chrono::seconds(5));
}

}  // namespace
}  // namespace hublink

int main(int argc, char** argv) {
  return hublink::testing::RunTestsWithArgs(argc, argv,
                                            "services_local_hub_test LOCAL_HUB_SH HUB_PLUGIN_SO",
                                            {&hublink::g_hub_script, &hublink::g_plugin});
}
