// Error text for the tls layer: the OpenSSL error queue, certificate names, and what a failed
// handshake or a failed verification means to a user, with the codes of docs/errors.md.
// Internal to transports/tls.
#ifndef HUBLINK_TRANSPORTS_TLS_TLS_DIAGNOSTICS_H_
#define HUBLINK_TRANSPORTS_TLS_TLS_DIAGNOSTICS_H_

#include <openssl/x509.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace hublink {
namespace tls_internal {

// The OpenSSL error queue, drained: its packed codes, oldest first.
std::vector<uint32_t> TakeErrors();

// Packed error codes as "REASON; REASON".
std::string ReasonsOf(const std::vector<uint32_t>& codes);

// The OpenSSL error queue, drained, as "REASON; REASON".
std::string DrainErrors();

// "CN=x" of a name, or its one-line form when it has no CN.
std::string DescribeName(X509_NAME* name);

// What a user can do about a verification error `err` (X509_V_ERR_*) found at `cert` while
// checking `leaf` for the name `wanted`, as "reason (details)".
std::string DescribeVerifyError(int err, X509* cert, absl::string_view wanted, X509* leaf);

// Turns a failed SSL_* call into a status a user can act on, coded as docs/errors.md says: the
// peer went away kUnavailable; the peer refused who we are (or could not prove who it is)
// kUnauthenticated; the peer broke the protocol (bytes that are not TLS, a malformed or
// unexpected message, a corrupt record) kDataLoss; no version or cipher in common kUnavailable.
// `ssl_error` is SSL_get_error()'s answer, taken before this drains the error queue; `what` names
// the operation ("handshake failed"); `psk` and `client_certificate` say what the config offers,
// for the hints.
absl::Status StatusFromSslError(int ssl_error, absl::string_view what, bool psk,
                                bool client_certificate);

}  // namespace tls_internal
}  // namespace hublink

#endif  // HUBLINK_TRANSPORTS_TLS_TLS_DIAGNOSTICS_H_
