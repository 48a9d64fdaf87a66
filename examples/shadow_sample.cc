// bazel run //examples:shadow_sample            (the local hub: started, a demo device registered, a
//                                               desired change sent from the console)
// bazel run //examples:shadow_sample -- --device_info=device_info.json [--count=N] [--expect_deltas=N]
//
// The Tencent C SDK's shadow_sample, on hublink: the device keeps one property, "updateCount", in
// its shadow. It gets the whole document, then reports updateCount = 0, 1, ... (each update checked
// against the version the last reply gave), and handles deltas between updates: a desired value
// set in the console becomes the device's value, reported with "desired": null so the hub clears
// it. profiles/tencent/shadow.h does the protocol; this file is the device's logic.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "examples/sample_support.h"
#include "plugins/log.h"
#include "profiles/tencent/json_util.h"
#include "profiles/tencent/shadow.h"

namespace {

using hublink::examples::CallOnLoop;
using hublink::tencent::ShadowClient;
using hublink::tencent::ShadowDocument;
using Result = absl::StatusOr<ShadowDocument>;

// The delta's updateCount, when it holds a whole number.
absl::optional<int64_t> DeltaCount(const std::string& delta_json) {
  absl::StatusOr<google::protobuf::Value> delta = hublink::tencent::ParseJsonValue(delta_json);
  if (!delta.ok() || !delta->has_struct_value()) return absl::nullopt;
  const google::protobuf::Value* count =
      hublink::tencent::JsonField(delta->struct_value(), "updateCount");
  if (count == nullptr || !count->has_number_value()) return absl::nullopt;
  double value = count->number_value();
  if (value != static_cast<double>(static_cast<int64_t>(value))) return absl::nullopt;
  return static_cast<int64_t>(value);
}

}  // namespace

int main(int argc, char** argv) {
  hublink::examples::SampleFlags flags;
  int count = 3;
  int interval_ms = 1000;
  int expect_deltas = 0;
  hublink::cli::FlagParser parser;
  parser.AddInt("count", &count, "how many times to report updateCount (default 3)");
  parser.AddInt("interval_ms", &interval_ms,
                "how long to wait for a delta between two reports (default 1000)");
  parser.AddInt("expect_deltas", &expect_deltas,
                "exit non-zero unless this many deltas arrived and were handled (waits up to 10 s "
                "after the reports for them)");
  if (!hublink::examples::ParseSampleFlags("shadow_sample", argc, argv, parser, flags)) return 2;

  absl::optional<hublink::examples::Device> device = hublink::examples::ConnectSampleDevice(flags);
  if (!device.has_value()) return 1;
  hublink::Client& client = *device->client;
  const absl::Duration timeout = absl::Seconds(10);

  // The shadow client lives on the loop thread; deltas come back here through the mailbox.
  std::unique_ptr<ShadowClient> shadow;
  hublink::examples::Mailbox<ShadowDocument> deltas;
  absl::Status subscribed = CallOnLoop<absl::Status>(
      client, "subscribe to the shadow's result topic", timeout,
      [&](std::function<void(absl::Status)> done) {
        shadow = ShadowClient::Attach(client, device->info.product_id(), device->info.device_name(),
                                      {}, std::move(done));
        shadow->set_delta_handler([&deltas](const ShadowDocument& delta) { deltas.Put(delta); });
      });
  int exit_code = 0;
  int64_t update_count = 0;
  int64_t version = 0;  // the document's version as the last reply said: each update checks it
  int handled = 0;
  std::string last_report = "none";
  auto fail = [&exit_code](absl::string_view what, const absl::Status& status) {
    HLOG(ERROR) << what << " failed: " << status.message();
    exit_code = 1;
  };
  // Reports `reported` (a JSON object), clearing desired when the device acted on a delta.
  auto report = [&](const std::string& reported, bool clear_desired) -> bool {
    Result result = CallOnLoop<Result>(client, "shadow update", timeout, [&](auto done) {
      shadow->Update(reported, version, clear_desired, std::move(done));
    });
    if (!result.ok() && hublink::tencent::ShadowConflictVersion(result.status()).has_value()) {
      // Someone else moved the document on: take the hub's version and report again.
      version = *hublink::tencent::ShadowConflictVersion(result.status());
      HLOG(WARNING) << "version conflict, retrying at version " << version;
      result = CallOnLoop<Result>(client, "shadow update", timeout, [&](auto done) {
        shadow->Update(reported, version, clear_desired, std::move(done));
      });
    }
    if (!result.ok()) {
      fail("shadow update", result.status());
      return false;
    }
    version = result->version;
    last_report = reported;
    HLOG(INFO) << "shadow update success: reported " << reported
               << (clear_desired ? " (desired cleared)" : "") << ", version " << version;
    return true;
  };
  // A delta: the console wants another updateCount; the device takes it and says so.
  auto handle_delta = [&](const ShadowDocument& delta) -> bool {
    HLOG(INFO) << "shadow delta: " << delta.state_json << " at version " << delta.version;
    absl::optional<int64_t> wanted = DeltaCount(delta.state_json);
    if (wanted.has_value()) update_count = *wanted;
    version = delta.version;  // the desired change moved the document on
    ++handled;
    return report(absl::StrCat("{\"updateCount\":", update_count, "}"), /*clear_desired=*/true);
  };

  if (!subscribed.ok()) {
    fail("subscribe", subscribed);
  } else {
    Result document = CallOnLoop<Result>(client, "shadow get", timeout,
                                         [&](auto done) { shadow->Get(std::move(done)); });
    if (!document.ok()) {
      fail("shadow get", document.status());
    } else {
      version = document->version;
      HLOG(INFO) << "shadow document: " << document->payload_json;
    }
  }
  for (int n = 0; exit_code == 0 && n < count; ++n) {
    if (!report(absl::StrCat("{\"updateCount\":", update_count, "}"), false)) break;
    ++update_count;
    // Like the SDK sample's yield between updates: deltas are handled as they arrive.
    if (absl::optional<ShadowDocument> delta = deltas.Take(absl::Milliseconds(interval_ms))) {
      if (!handle_delta(*delta)) break;
    }
  }
  while (exit_code == 0 && handled < expect_deltas) {
    absl::optional<ShadowDocument> delta = deltas.Take(absl::Seconds(10));
    if (!delta.has_value()) {
      HLOG(ERROR) << "expected " << expect_deltas << " deltas, handled " << handled
                  << " (none within 10 s)";
      exit_code = 1;
      break;
    }
    if (!handle_delta(*delta)) break;
  }
  if (exit_code == 0) {
    Result document = CallOnLoop<Result>(client, "shadow get", timeout,
                                         [&](auto done) { shadow->Get(std::move(done)); });
    if (!document.ok()) {
      fail("shadow get", document.status());
    } else {
      HLOG(INFO) << "shadow document: " << document->payload_json;
    }
  }
  hublink::examples::RunOnLoop(client, [&] { shadow.reset(); });
  hublink::examples::Disconnect(client);
  std::cout << "shadow_sample: " << (exit_code == 0 ? "done" : "FAILED") << ", last report "
            << last_report << ", version " << version << ", " << handled << " delta"
            << (handled == 1 ? "" : "s") << " handled" << std::endl;
  return exit_code;
}
