// The Tencent IoT Hub credential layout, shared by every signer that produces Tencent credentials
// (auth/hmac, auth/rsa): they differ only in how the password is computed from the username.
//
//   client id: <productId><deviceName>
//   username:  <clientId>;<sdkappid>;<connid>;<expiry>
//   password:  <lowercase hex of a signature over the username>;<scheme>
//
// The signature and <scheme> are the subclass's (hmac: HMAC-SHA1 or HMAC-SHA256 keyed by the
// device secret; rsa: an RSA SHA-256 signature with the device's private key).
//
// The connid is 5 characters from [a-zA-Z0-9], fresh from BoringSSL's CSPRNG at every Sign(); the
// expiry is the C SDK's "never" or SignRequest::now + ttl, where `now` is the server-corrected time
// of the attempt (ConnectContext::ServerNow()), so a device whose clock is off still signs an
// expiry the hub accepts.
#ifndef HUBLINK_AUTH_TENCENT_CREDENTIALS_H_
#define HUBLINK_AUTH_TENCENT_CREDENTIALS_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "auth/tencent_identity.pb.h"
#include "plugins/signer.h"

namespace hublink {
namespace auth {

// What the C SDK sends as sdkappid.
inline constexpr absl::string_view kDefaultSdkAppId = "21010406";
// The C SDK's "never expires": it prints LONG_MAX into a buffer that keeps 17 digits on 64-bit
// Linux. The hub has always accepted it, and matching it byte for byte keeps captures comparable
// with the SDK's.
inline constexpr absl::string_view kNeverExpires = "92233720368547758";
inline constexpr size_t kConnIdLength = 5;
inline constexpr absl::string_view kConnIdAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

// kConnIdLength characters from kConnIdAlphabet, uniformly distributed: bytes from RAND_bytes,
// those that would bias a modulo-62 mapping rejected. kInternal only if the CSPRNG keeps returning
// rejected bytes far beyond any plausible run (never seen in practice).
absl::StatusOr<std::string> RandomConnId();

// A validated TencentIdentity: builds the client id, username and expiry. Cheap to copy.
class TencentLayout {
 public:
  // kInvalidArgument naming the field when the identity is unusable. `stage` prefixes every error
  // this layout reports ("hmac", "rsa").
  static absl::StatusOr<TencentLayout> Create(const TencentIdentity& identity,
                                              absl::string_view stage);

  const std::string& stage() const { return stage_; }
  const std::string& client_id() const { return client_id_; }
  const std::string& sdkappid() const { return sdkappid_; }
  const absl::optional<absl::Duration>& ttl() const { return ttl_; }

  // kNeverExpires without a ttl, else the Unix seconds of `now` + ttl.
  std::string Expiry(absl::Time now) const;
  std::string Username(absl::string_view connid, absl::string_view expiry) const;

 private:
  TencentLayout() = default;
  std::string stage_;
  std::string client_id_;
  std::string sdkappid_;
  absl::optional<absl::Duration> ttl_;
};

// Base of the signers that produce Tencent credentials. A subclass only computes the password.
//
// Tools that must reproduce a given CONNECT (e.g. `hublink sign --connid --expiry`) configure the
// signer as usual, then ask the Signer for this interface (plugins/typed_access.h) and call
// SignWith():
//
//   if (auto* tencent = signer->As<hublink::auth::TencentSigner>()) {
//     credentials = tencent->SignWith(connid, tencent->layout().Expiry(absl::Now()));
//   }
//
// Every subclass offers it (FindInterface below); a subclass that offers interfaces of its own
// falls back to TencentSigner::FindInterface for this one.
class TencentSigner : public Signer {
 public:
  static constexpr absl::string_view kInterfaceId = "hublink.auth.TencentSigner";

  explicit TencentSigner(TencentLayout layout) : layout_(std::move(layout)) {}

  // A fresh connid, and the expiry from request.now.
  absl::StatusOr<Credentials> Sign(const SignRequest& request) final;
  // Credentials for a chosen connid (kConnIdLength characters of kConnIdAlphabet) and expiry
  // (decimal digits, e.g. kNeverExpires); kInvalidArgument otherwise.
  absl::StatusOr<Credentials> SignWith(absl::string_view connid, absl::string_view expiry) const;

  const TencentLayout& layout() const { return layout_; }

 protected:
  // The complete password for `username`, scheme suffix included. Never put the key or the result
  // in an error message or a log line.
  virtual absl::StatusOr<std::string> Password(absl::string_view username) const = 0;

  void* FindInterface(absl::string_view id) override {
    return OfferInterface<TencentSigner>(this, id);
  }

 private:
  TencentLayout layout_;
};

}  // namespace auth
}  // namespace hublink

#endif  // HUBLINK_AUTH_TENCENT_CREDENTIALS_H_
