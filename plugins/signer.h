// Signers: produce the credentials a connection attempt presents, fresh for every attempt.
//
// Tencent IoT Hub's username carries a random connection id and an expiry, so credentials are made
// at every (re)connect, never cached. A signer is configured once per pipeline (keys are loaded and
// parsed then) and called on the loop thread.
//
// The interface is deliberately scheme-neutral; other clouds fit without touching the core:
//   - Azure-style SAS tokens: the signer returns the token as `password` and the hub's expected
//     `username`.
//   - Clouds that authenticate the WebSocket upgrade (AWS SigV4 query strings, signed headers):
//     the signer fills `http_headers` (or `http_query`); the WebSocket transport asks
//     ConnectContext::signer() while building its upgrade request and sends them.
//   - Schemes needing more inputs (a nonce, the server's time) read them from SignRequest, which
//     grows by adding fields, never by changing the call.
//
// A signer with more to offer than Sign() (auth::TencentSigner::SignWith, for tools that reproduce
// a given CONNECT) offers it through TypedAccess (plugins/typed_access.h): callers ask
// `signer->As<auth::TencentSigner>()` and get null from any other signer.
//
// Signers must never log or put into an error message a secret, a key, or the password they
// produce.
#ifndef HUBLINK_PLUGINS_SIGNER_H_
#define HUBLINK_PLUGINS_SIGNER_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "plugins/typed_access.h"

namespace hublink {

struct SignRequest {
  // The best known server time: the device clock corrected by any offset a layer has learned
  // (ConnectContext::ServerNow()). Expiries are computed from this, not from the raw device clock.
  absl::Time now;
  // The endpoint being connected to (some schemes sign the host).
  std::string host;
};

struct Credentials {
  std::string client_id;
  std::string username;
  std::string password;  // secret: never log
  // Extra headers / query parameters for the WebSocket upgrade, for schemes that authenticate it.
  std::vector<std::pair<std::string, std::string>> http_headers;
  std::vector<std::pair<std::string, std::string>> http_query;
};

class Signer : public TypedAccess {
 public:
  ~Signer() override = default;
  // Fresh credentials for one connection attempt.
  virtual absl::StatusOr<Credentials> Sign(const SignRequest& request) = 0;
};

class SignerFactory {
 public:
  virtual ~SignerFactory() = default;
  virtual absl::string_view name() const = 0;  // e.g. "hmac"
  virtual const google::protobuf::Descriptor* config_type() const = 0;
  // Validates `config` and loads what it names (secrets, key files) once. kInvalidArgument for bad
  // config, kNotFound / kPermissionDenied for files, always naming the field or path and never the
  // secret.
  virtual absl::StatusOr<std::unique_ptr<Signer>> Configure(
      const google::protobuf::Message& config) const = 0;
};

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_SIGNER_H_
