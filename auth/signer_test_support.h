// Test helpers shared by the signer tests: configuring a signer through a real Registry, and
// capturing every log line so tests can prove no secret is ever written.
#ifndef HUBLINK_AUTH_SIGNER_TEST_SUPPORT_H_
#define HUBLINK_AUTH_SIGNER_TEST_SUPPORT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "plugins/log.h"
#include "plugins/registry.h"
#include "plugins/signer.h"

namespace hublink {
namespace auth {
namespace testing {

// Registers plugins with `register_fn`, finds the signer by the config's type URL (and checks
// `name` maps to the same factory), and configures it.
absl::StatusOr<std::unique_ptr<Signer>> ConfigureSigner(
    const std::function<void(Registry::Builder&)>& register_fn, absl::string_view name,
    const google::protobuf::Message& config);

// Records every log line, debug included, while alive; restores the previous sink and level after.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  std::vector<std::string> lines_;
  LogSink previous_sink_;
  LogLevel previous_level_;
};

// Every (haystack, needle) pair where the needle occurs, as "needle <n> in: <haystack>"; empty
// needles are skipped. Tests expect this to be empty.
std::vector<std::string> FindLeaks(const std::vector<std::string>& haystacks,
                                   const std::vector<std::string>& needles);

}  // namespace testing
}  // namespace auth
}  // namespace hublink

#endif  // HUBLINK_AUTH_SIGNER_TEST_SUPPORT_H_
