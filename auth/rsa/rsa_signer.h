// "rsa" (config hublink.auth.RsaSignerConfig): Tencent IoT Hub certificate-device credentials, an
// RSASSA-PKCS1-v1_5 SHA-256 signature of the username with the device's private key. The PEM key
// file is read and parsed once, at Configure(); every Sign() reuses the parsed key.
#ifndef HUBLINK_AUTH_RSA_RSA_SIGNER_H_
#define HUBLINK_AUTH_RSA_RSA_SIGNER_H_

#include "plugins/registry.h"

namespace hublink {

void RegisterRsaSigner(Registry::Builder& builder);

}  // namespace hublink

#endif  // HUBLINK_AUTH_RSA_RSA_SIGNER_H_
