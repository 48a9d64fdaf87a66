// "hmac" (config hublink.auth.HmacSignerConfig): Tencent IoT Hub key-device credentials, HMAC-SHA1
// or HMAC-SHA256 over the username keyed by the base64-decoded device secret. The secret is read
// and decoded once, at Configure(); the decoded key is wiped when the signer is destroyed.
#ifndef HUBLINK_AUTH_HMAC_HMAC_SIGNER_H_
#define HUBLINK_AUTH_HMAC_HMAC_SIGNER_H_

#include "plugins/registry.h"

namespace hublink {

void RegisterHmacSigner(Registry::Builder& builder);

}  // namespace hublink

#endif  // HUBLINK_AUTH_HMAC_HMAC_SIGNER_H_
