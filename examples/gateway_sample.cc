// bazel run //examples:gateway_sample           (the local hub: started, a gateway and two
//                                               sub-devices registered)
// bazel run //examples:gateway_sample -- --device_info=gateway.json --subdev_info=sub1.json
//     [--subdev_info=sub2.json ...]
//
// The Tencent C SDK's gateway_sample, on hublink: a gateway device brings its sub-devices online
// over its own MQTT connection, binding the ones the hub does not list as bound yet (signed with
// each sub-device's secret, so --subdev_info files must be KEY devices), subscribes to each
// sub-device's <pid>/<dn>/data and publishes to it through the gateway's connection, receives the
// messages back, and takes the sub-devices offline. profiles/tencent/gateway.h does the protocol.
#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "examples/sample_support.h"
#include "plugins/log.h"
#include "profiles/tencent/gateway.h"

namespace {

using hublink::examples::CallOnLoop;
using hublink::tencent::GatewayClient;
using hublink::tencent::SubDevice;
using SubDevices = absl::StatusOr<std::vector<SubDevice>>;

std::string Name(const SubDevice& sub) {
  return absl::StrCat(sub.product_id, "/", sub.device_name);
}

}  // namespace

int main(int argc, char** argv) {
  hublink::examples::SampleFlags flags;
  std::vector<std::string> subdev_files;
  hublink::cli::FlagParser parser;
  parser.AddList("subdev_info", &subdev_files,
                 "a sub-device's device_info.json (repeatable; KEY devices: bind is signed with "
                 "their secret)");
  if (!hublink::examples::ParseSampleFlags("gateway_sample", argc, argv, parser, flags)) return 2;
  if (subdev_files.empty()) {
    std::cerr << "gateway_sample: --subdev_info: give at least one sub-device\n";
    return 2;
  }
  std::vector<hublink::tencent::DeviceInfo> subdev_infos;
  for (const std::string& file : subdev_files) {
    absl::StatusOr<hublink::tencent::DeviceInfo> info = hublink::tencent::ReadDeviceInfo(file);
    if (!info.ok()) {
      HLOG(ERROR) << info.status().message();
      return 1;
    }
    if (info->key_deviceinfo().device_secret().empty()) {
      HLOG(ERROR) << file << ": not a KEY device (no key_deviceinfo.deviceSecret); bind needs it";
      return 1;
    }
    subdev_infos.push_back(*std::move(info));
  }

  absl::optional<hublink::examples::Device> device = hublink::examples::ConnectSampleDevice(flags);
  if (!device.has_value()) return 1;
  hublink::Client& client = *device->client;
  const absl::Duration timeout = absl::Seconds(10);

  std::unique_ptr<GatewayClient> gateway;
  absl::Status status = CallOnLoop<absl::Status>(
      client, "subscribe to $gateway/operation/result/...", timeout, [&](auto done) {
        gateway = GatewayClient::Attach(client, device->info.product_id(),
                                        device->info.device_name(), {}, std::move(done));
      });
  // One request to the gateway service, waited for.
  auto request = [&](absl::string_view what, const SubDevice& sub,
                     void (GatewayClient::*operation)(const SubDevice&, GatewayClient::Callback)) {
    absl::Status result =
        CallOnLoop<absl::Status>(client, absl::StrCat(what, " ", Name(sub)), timeout,
                                 [&](auto done) { ((*gateway).*operation)(sub, std::move(done)); });
    if (result.ok()) HLOG(INFO) << what << " " << Name(sub) << ": success";
    return result;
  };

  std::vector<SubDevice> subs;
  for (const auto& info : subdev_infos) subs.push_back({info.product_id(), info.device_name()});
  std::vector<SubDevice> online;
  SubDevices bound =
      status.ok()
          ? CallOnLoop<SubDevices>(client, "describe_sub_devices", timeout,
                                   [&](auto done) { gateway->DescribeSubDevices(std::move(done)); })
          : SubDevices(status);
  if (!bound.ok()) status = bound.status();
  for (size_t i = 0; status.ok() && i < subs.size(); ++i) {
    const SubDevice& sub = subs[i];
    if (std::find(bound->begin(), bound->end(), sub) == bound->end()) {
      std::string secret = subdev_infos[i].key_deviceinfo().device_secret();
      status =
          CallOnLoop<absl::Status>(client, absl::StrCat("bind ", Name(sub)), timeout,
                                   [&](auto done) { gateway->Bind(sub, secret, std::move(done)); });
      if (!status.ok()) break;
      HLOG(INFO) << "bind " << Name(sub) << ": success";
    } else {
      HLOG(INFO) << Name(sub) << " is bound to this gateway already";
    }
    status = request("online", sub, &GatewayClient::Online);
    if (status.ok()) online.push_back(sub);
  }

  // Each online sub-device's data topic, through the gateway's connection: subscribe, publish, and
  // wait for the message to come back.
  hublink::examples::Mailbox<std::string> received;
  int round_trips = 0;
  for (const SubDevice& sub : online) {
    if (!status.ok()) break;
    std::string topic = absl::StrCat(sub.product_id, "/", sub.device_name, "/data");
    std::future<absl::Status> subscribed =
        client.Subscribe(topic, 1, [&received](const hublink::mqtt::Message& message) {
          HLOG(INFO) << "received on " << message.topic << ": " << message.payload;
          received.Put(std::string(message.payload));
        });
    status = subscribed.wait_for(std::chrono::seconds(10)) == std::future_status::ready
                 ? subscribed.get()
                 : absl::DeadlineExceededError("no SUBACK within 10 s");
    if (!status.ok()) {
      status =
          absl::Status(status.code(), absl::StrCat("subscribe ", topic, ": ", status.message()));
      break;
    }
    std::string payload =
        absl::StrCat(R"({"action":"gateway_test","sub_device":")", Name(sub), R"("})");
    std::future<absl::Status> acked = client.Publish(topic, payload, 1);
    status = acked.wait_for(std::chrono::seconds(10)) == std::future_status::ready
                 ? acked.get()
                 : absl::DeadlineExceededError("no PUBACK within 10 s");
    if (!status.ok()) {
      status = absl::Status(status.code(), absl::StrCat("publish ", topic, ": ", status.message()));
      break;
    }
    HLOG(INFO) << "published for " << Name(sub) << " through the gateway: " << payload;
    absl::optional<std::string> echo = received.Take(absl::Seconds(10));
    if (!echo.has_value() || *echo != payload) {
      status = absl::DeadlineExceededError(
          absl::StrCat("the message published for ", Name(sub), " did not come back within 10 s"));
      break;
    }
    ++round_trips;
    client.Unsubscribe(topic).wait_for(std::chrono::seconds(10));
  }

  // Offline, whatever happened above, for every sub-device that went online.
  for (const SubDevice& sub : online) {
    absl::Status offline = request("offline", sub, &GatewayClient::Offline);
    if (!offline.ok() && status.ok()) status = offline;
  }
  if (!status.ok()) HLOG(ERROR) << status.message();
  hublink::examples::RunOnLoop(client, [&] { gateway.reset(); });
  hublink::examples::Disconnect(client);
  std::cout << "gateway_sample: " << (status.ok() ? "done" : "FAILED") << ", " << online.size()
            << " sub-device" << (online.size() == 1 ? "" : "s") << " online and offline again, "
            << round_trips << " message" << (round_trips == 1 ? "" : "s") << " through the gateway"
            << std::endl;
  return status.ok() ? 0 : 1;
}
