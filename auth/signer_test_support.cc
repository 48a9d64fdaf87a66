#include "auth/signer_test_support.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "plugins/status_macros.h"

namespace hublink {
namespace auth {
namespace testing {

absl::StatusOr<std::unique_ptr<Signer>> ConfigureSigner(
    const std::function<void(Registry::Builder&)>& register_fn, absl::string_view name,
    const google::protobuf::Message& config) {
  Registry::Builder builder;
  register_fn(builder);
  HUBLINK_ASSIGN_OR_RETURN(Registry registry, std::move(builder).Build());
  HUBLINK_ASSIGN_OR_RETURN(
      const SignerFactory* by_type,
      registry.FindSigner(
          "", absl::StrCat("type.googleapis.com/", config.GetDescriptor()->full_name())));
  HUBLINK_ASSIGN_OR_RETURN(const SignerFactory* by_name, registry.FindSigner(name));
  if (by_type != by_name) {
    return absl::InternalError(absl::StrCat("name ", name, " and config type ",
                                            config.GetDescriptor()->full_name(),
                                            " find different factories"));
  }
  return by_type->Configure(config);
}

LogCapture::LogCapture() : previous_level_(MinLogLevel()) {
  SetMinLogLevel(LogLevel::kDebug);
  previous_sink_ =
      SetLogSink([this](const LogRecord& record) { lines_.push_back(FormatLogRecord(record)); });
}

LogCapture::~LogCapture() {
  SetLogSink(std::move(previous_sink_));
  SetMinLogLevel(previous_level_);
}

std::vector<std::string> FindLeaks(const std::vector<std::string>& haystacks,
                                   const std::vector<std::string>& needles) {
  std::vector<std::string> leaks;
  for (size_t i = 0; i < needles.size(); ++i) {
    if (needles[i].empty()) continue;
    for (const std::string& haystack : haystacks) {
      if (haystack.find(needles[i]) != std::string::npos) {
        leaks.push_back(absl::StrCat("needle ", i, " in: ", haystack));
      }
    }
  }
  return leaks;
}

}  // namespace testing
}  // namespace auth
}  // namespace hublink
