// What the Tencent service samples (shadow_sample, ota_sample, data_template_sample,
// gateway_sample) share: the connection flags, a connected hublink::Client for the device, and two
// ways to talk to the loop-thread-only service clients (profiles/tencent/*.h) from main():
// CallOnLoop runs a request on the loop and waits for its callback, Mailbox carries what the
// service's handlers receive (deltas, controls, updates) back to main().
#ifndef HUBLINK_EXAMPLES_SAMPLE_SUPPORT_H_
#define HUBLINK_EXAMPLES_SAMPLE_SUPPORT_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "plugins/registry.h"
#include "profiles/tencent/tencent_profile.h"
#include "protocols/mqtt/client.h"
#include "tools/cli/connection_flags.h"
#include "tools/cli/flags.h"

namespace hublink {
namespace examples {

// Parses `argv` into `parser` (which the sample has filled with its own flags; the connection
// flags and --plugin are added here). Prints the problem and the usage and returns false when the
// arguments are wrong or --device_info is missing.
struct SampleFlags {
  cli::ConnectionFlags connection;
  std::vector<std::string> plugin_paths;
};
bool ParseSampleFlags(absl::string_view name, int argc, char** argv, cli::FlagParser& parser,
                      SampleFlags& flags);

// A device connected to its hub: the registry (built-ins and --plugin libraries), the device's
// identity from --device_info, and the client, connected (CONNACK received) within `timeout`.
struct Device {
  std::unique_ptr<Registry> registry;
  tencent::DeviceInfo info;
  std::unique_ptr<Client> client;
};
absl::StatusOr<Device> ConnectDevice(const SampleFlags& flags, absl::Duration timeout);
// ConnectDevice with the samples' 30 s. On failure it logs the C SDK samples' "Cloud Device
// Construct Failed: <why>" and returns nullopt (the sample then exits 1).
absl::optional<Device> ConnectSampleDevice(const SampleFlags& flags);

// Runs `start` on the client's loop thread, handing it a `done` to call once (from any thread),
// and waits up to `timeout` for it. T is absl::Status or an absl::StatusOr; a timeout is
// kDeadlineExceeded naming `what`.
template <typename T>
T CallOnLoop(Client& client, absl::string_view what, absl::Duration timeout,
             std::function<void(std::function<void(T)>)> start) {
  auto promise = std::make_shared<std::promise<T>>();
  auto called = std::make_shared<std::atomic<bool>>(false);
  std::future<T> result = promise->get_future();
  client.loop().Post([start = std::move(start), promise, called] {
    start([promise, called](T value) {
      if (!called->exchange(true)) promise->set_value(std::move(value));
    });
  });
  if (result.wait_for(absl::ToChronoMicroseconds(timeout)) != std::future_status::ready) {
    return absl::DeadlineExceededError(
        absl::StrCat(what, ": no answer within ", absl::FormatDuration(timeout)));
  }
  return result.get();
}

// Runs `fn` on the loop thread and waits for it (to create and destroy the service clients there).
void RunOnLoop(Client& client, std::function<void()> fn);

// Messages from the loop thread's handlers to main(), in order. std::mutex, per the project's
// locking policy (plugins/event_loop.h).
template <typename T>
class Mailbox {
 public:
  void Put(T value) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(value));
    }
    changed_.notify_all();
  }
  // The oldest message, or nullopt when none arrives within `timeout`.
  absl::optional<T> Take(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!changed_.wait_for(lock, absl::ToChronoMicroseconds(timeout),
                           [this] { return !queue_.empty(); })) {
      return absl::nullopt;
    }
    T value = std::move(queue_.front());
    queue_.pop_front();
    return value;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<T> queue_;  // guarded by mutex_
};

// Sends DISCONNECT and waits up to 5 s for the close.
void Disconnect(Client& client);

}  // namespace examples
}  // namespace hublink

#endif  // HUBLINK_EXAMPLES_SAMPLE_SUPPORT_H_
