#include "auth/tencent_credentials.h"

#include <openssl/rand.h>

#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "plugins/duration.h"
#include "plugins/log.h"
#include "plugins/status_macros.h"

namespace hublink {
namespace auth {
namespace {

// The largest multiple of the alphabet size that fits a byte: bytes at or above it are redrawn, so
// every character is equally likely (248 = 4 * 62).
constexpr unsigned kAcceptBelow = 256 / kConnIdAlphabet.size() * kConnIdAlphabet.size();
// Each byte is rejected with probability 8/256; 64 rounds of 16 bytes all but rule out running dry.
constexpr int kMaxRounds = 64;
constexpr size_t kBytesPerRound = 16;

// Before this, a ttl-based expiry is almost certainly from an unset device clock (or a caller that
// left SignRequest::now default), and the hub will reject the signature as expired.
const absl::Time kPlausibleClockFloor = absl::FromUnixSeconds(1577836800);  // 2020-01-01

// A field of the username must not contain the ';' separator, whitespace or control characters.
absl::Status CheckField(absl::string_view stage, absl::string_view field, absl::string_view value) {
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(stage, ": identity.", field, ": is required"));
  }
  for (char c : value) {
    if (c == ';' || !absl::ascii_isgraph(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          absl::StrCat(stage, ": identity.", field, ": \"", absl::CHexEscape(value),
                       "\" contains ';', whitespace or a non-ASCII character"));
    }
  }
  return absl::OkStatus();
}

bool AllDigits(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> RandomConnId() {
  std::string connid;
  connid.reserve(kConnIdLength);
  uint8_t bytes[kBytesPerRound];
  for (int round = 0; round < kMaxRounds; ++round) {
    RAND_bytes(bytes, sizeof(bytes));
    for (uint8_t b : bytes) {
      if (b >= kAcceptBelow) continue;
      connid.push_back(kConnIdAlphabet[b % kConnIdAlphabet.size()]);
      if (connid.size() == kConnIdLength) return connid;
    }
  }
  return absl::InternalError("connid: the CSPRNG returned only out-of-range bytes");
}

absl::StatusOr<TencentLayout> TencentLayout::Create(const TencentIdentity& identity,
                                                    absl::string_view stage) {
  HUBLINK_RETURN_IF_ERROR(CheckField(stage, "product_id", identity.product_id()));
  HUBLINK_RETURN_IF_ERROR(CheckField(stage, "device_name", identity.device_name()));
  TencentLayout layout;
  layout.stage_ = std::string(stage);
  layout.client_id_ = absl::StrCat(identity.product_id(), identity.device_name());
  if (identity.sdkappid().empty()) {
    layout.sdkappid_ = std::string(kDefaultSdkAppId);
  } else if (!AllDigits(identity.sdkappid()) || identity.sdkappid().size() > 20) {
    return absl::InvalidArgumentError(
        absl::StrCat(stage, ": identity.sdkappid: \"", absl::CHexEscape(identity.sdkappid()),
                     "\" must be decimal digits (default ", kDefaultSdkAppId, ")"));
  } else {
    layout.sdkappid_ = identity.sdkappid();
  }
  if (identity.has_ttl()) {
    const absl::Duration ttl = ToDuration(identity.ttl());
    if (ttl < absl::Seconds(1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(stage, ": identity.ttl: ", absl::FormatDuration(ttl),
                       " must be at least 1s (leave it unset for a signature that never expires)"));
    }
    layout.ttl_ = ttl;
  }
  return layout;
}

std::string TencentLayout::Expiry(absl::Time now) const {
  if (!ttl_.has_value()) return std::string(kNeverExpires);
  if (now < kPlausibleClockFloor) {
    HLOG(WARNING) << stage_ << ": signing an expiry from a clock that reads "
                  << absl::FormatTime(now, absl::UTCTimeZone())
                  << "; the hub will reject it as expired unless the clock is set";
  }
  return absl::StrCat(absl::ToUnixSeconds(now + *ttl_));
}

std::string TencentLayout::Username(absl::string_view connid, absl::string_view expiry) const {
  return absl::StrCat(client_id_, ";", sdkappid_, ";", connid, ";", expiry);
}

absl::StatusOr<Credentials> TencentSigner::Sign(const SignRequest& request) {
  HUBLINK_ASSIGN_OR_RETURN(std::string connid, RandomConnId());
  return SignWith(connid, layout_.Expiry(request.now));
}

absl::StatusOr<Credentials> TencentSigner::SignWith(absl::string_view connid,
                                                    absl::string_view expiry) const {
  if (connid.size() != kConnIdLength ||
      connid.find_first_not_of(kConnIdAlphabet) != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(layout_.stage(), ": connid \"",
                                                   absl::CHexEscape(connid), "\" must be ",
                                                   kConnIdLength, " characters from [a-zA-Z0-9]"));
  }
  if (expiry.empty() || expiry.size() > 20 || !AllDigits(expiry)) {
    return absl::InvalidArgumentError(absl::StrCat(
        layout_.stage(), ": expiry \"", absl::CHexEscape(expiry),
        "\" must be Unix seconds in decimal digits (\"", kNeverExpires, "\" = never)"));
  }
  Credentials credentials;
  credentials.client_id = layout_.client_id();
  credentials.username = layout_.Username(connid, expiry);
  HUBLINK_ASSIGN_OR_RETURN(credentials.password, Password(credentials.username));
  HLOG(DEBUG) << layout_.stage() << ": signed username " << credentials.username;
  return credentials;
}

}  // namespace auth
}  // namespace hublink
