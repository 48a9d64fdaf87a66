#include "transports/tls/tls_diagnostics.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hublink {
namespace tls_internal {
namespace {

// The subjectAltName entries of `cert` as "DNS:a", "IP:1.2.3.4". Parsed from DER: this BoringSSL
// build ships no x509v3.h with GENERAL_NAME.
std::vector<std::string> SubjectAltNames(X509* cert) {
  std::vector<std::string> names;
  int index = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
  if (index < 0) return names;
  ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(X509_get_ext(cert, index));
  CBS der, seq;
  CBS_init(&der, ASN1_STRING_get0_data(value), ASN1_STRING_length(value));
  if (!CBS_get_asn1(&der, &seq, CBS_ASN1_SEQUENCE)) return names;
  while (CBS_len(&seq) > 0) {
    CBS name;
    unsigned tag;
    if (!CBS_get_any_asn1(&seq, &name, &tag)) break;
    absl::string_view bytes(reinterpret_cast<const char*>(CBS_data(&name)), CBS_len(&name));
    if (tag == (CBS_ASN1_CONTEXT_SPECIFIC | 2)) {
      names.push_back(absl::StrCat("DNS:", bytes));
    } else if (tag == (CBS_ASN1_CONTEXT_SPECIFIC | 7)) {
      char text[INET6_ADDRSTRLEN] = "?";
      if (bytes.size() == 4) inet_ntop(AF_INET, bytes.data(), text, sizeof(text));
      if (bytes.size() == 16) inet_ntop(AF_INET6, bytes.data(), text, sizeof(text));
      names.push_back(absl::StrCat("IP:", text));
    }
  }
  return names;
}

std::string TimeToString(const ASN1_TIME* time) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (time == nullptr || !ASN1_TIME_print(bio.get(), time)) return "?";
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

}  // namespace

// The OpenSSL error queue, drained: its packed codes, oldest first.
std::vector<uint32_t> TakeErrors() {
  std::vector<uint32_t> codes;
  uint32_t err;
  while ((err = ERR_get_error()) != 0) codes.push_back(err);
  return codes;
}

// Packed error codes as "REASON; REASON".
std::string ReasonsOf(const std::vector<uint32_t>& codes) {
  std::vector<std::string> reasons;
  for (uint32_t err : codes) {
    const char* reason = ERR_reason_error_string(err);
    reasons.push_back(reason != nullptr ? reason : absl::StrCat("error ", err));
  }
  return reasons.empty() ? "unknown error" : absl::StrJoin(reasons, "; ");
}

// The OpenSSL error queue, drained, as "REASON; REASON".
std::string DrainErrors() { return ReasonsOf(TakeErrors()); }

// "CN=x" of a name, or its one-line form when it has no CN.
std::string DescribeName(X509_NAME* name) {
  if (name == nullptr) return "(no name)";
  int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index >= 0) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
    uint8_t* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len >= 0) {
      std::string cn = absl::StrCat("CN=", absl::string_view(reinterpret_cast<char*>(utf8), len));
      OPENSSL_free(utf8);
      return cn;
    }
  }
  char buffer[256];
  X509_NAME_oneline(name, buffer, sizeof(buffer));
  return buffer;
}

// What a user can do about a verification error, as "reason (details)".
std::string DescribeVerifyError(int err, X509* cert, absl::string_view wanted, X509* leaf) {
  std::string who = cert != nullptr ? DescribeName(X509_get_subject_name(cert)) : "?";
  switch (err) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: {
      std::vector<std::string> has = {DescribeName(X509_get_subject_name(leaf))};
      for (std::string& san : SubjectAltNames(leaf)) has.push_back(std::move(san));
      return absl::StrCat(err == X509_V_ERR_HOSTNAME_MISMATCH ? "hostname" : "IP address",
                          " mismatch (wanted ", wanted, ", certificate has ",
                          absl::StrJoin(has, ", "),
                          "; set server_name if the certificate is right)");
    }
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      return absl::StrCat("unknown CA (issuer ",
                          cert ? DescribeName(X509_get_issuer_name(cert)) : std::string("?"),
                          " of ", who, " is not trusted; add it with ca_file or ca_pem)");
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return absl::StrCat("unknown CA (self-signed ", who,
                          " is not trusted; add it with ca_file or ca_pem, or pin it)");
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return absl::StrCat("expired (", who, " notAfter ", TimeToString(X509_get0_notAfter(cert)),
                          "; if that looks wrong, check this device's clock)");
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return absl::StrCat("not yet valid (", who, " notBefore ",
                          TimeToString(X509_get0_notBefore(cert)), "; check this device's clock)");
    default:
      return absl::StrCat(X509_verify_cert_error_string(err), " (", who, ")");
  }
}

absl::Status StatusFromSslError(int ssl_error, absl::string_view what, bool psk,
                                bool client_certificate) {
  const std::vector<uint32_t> codes = TakeErrors();
  const uint32_t packed = codes.empty() ? 0 : codes.front();
  bool bad_signature = false;  // anywhere in the queue: the server's key did not sign
  for (uint32_t e : codes) {
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_BAD_SIGNATURE) {
      bad_signature = true;
    }
  }
  const std::string reasons = ReasonsOf(codes);
  if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN || packed == 0) {
    return absl::UnavailableError(absl::StrCat("tls: ", what, ": peer closed the connection"));
  }
  std::string hint;
  const int lib = ERR_GET_LIB(packed);
  const int reason = ERR_GET_REASON(packed);
  // An alert the peer sent (it ended the connection) vs. something wrong we found in its bytes.
  const bool peer_alert = lib == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET;
  absl::StatusCode code = peer_alert ? absl::StatusCode::kUnavailable : absl::StatusCode::kDataLoss;
  if (reason == ERR_R_MALLOC_FAILURE || (lib == ERR_LIB_SSL && reason == ERR_R_INTERNAL_ERROR)) {
    code = absl::StatusCode::kInternal;
  }
  if (bad_signature) {
    hint = " (the server could not prove it holds the key of its certificate)";
    code = absl::StatusCode::kUnauthenticated;
  }
  if (lib == ERR_LIB_SSL) {
    switch (reason) {
      case SSL_R_TLSV1_ALERT_CERTIFICATE_REQUIRED:
      case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        if (!client_certificate && !psk) {
          hint = " (the server may require a client certificate: set cert_file and key_file)";
        }
        code = reason == SSL_R_TLSV1_ALERT_CERTIFICATE_REQUIRED ? absl::StatusCode::kUnauthenticated
                                                                : absl::StatusCode::kUnavailable;
        break;
      case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
      case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
      case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        hint = " (the server rejected our client certificate)";
        code = absl::StatusCode::kUnauthenticated;
        break;
      case SSL_R_TLSV1_ALERT_UNKNOWN_PSK_IDENTITY:
        hint = " (the server does not know this PSK identity)";
        code = absl::StatusCode::kUnauthenticated;
        break;
      case SSL_R_SSLV3_ALERT_BAD_RECORD_MAC:
      case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
      case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
        if (psk) {
          hint = " (wrong PSK key for this identity?)";
          code = absl::StatusCode::kUnauthenticated;
        }
        break;
      case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
      case SSL_R_UNSUPPORTED_PROTOCOL:
        hint = " (no TLS version in common: check min_version / max_version)";
        code = absl::StatusCode::kUnavailable;
        break;
      case SSL_R_NO_SHARED_CIPHER:
      case SSL_R_TLSV1_ALERT_INSUFFICIENT_SECURITY:
        hint = " (no cipher in common: check cipher_list)";
        code = absl::StatusCode::kUnavailable;
        break;
      case SSL_R_WRONG_VERSION_NUMBER:
      case SSL_R_HTTP_REQUEST:
      case SSL_R_HTTPS_PROXY_REQUEST:
        hint = " (the server does not speak TLS on this port?)";
        code = absl::StatusCode::kDataLoss;
        break;
      default:
        break;
    }
  }
  return absl::Status(code, absl::StrCat("tls: ", what, ": ", reasons, hint));
}

}  // namespace tls_internal
}  // namespace hublink
