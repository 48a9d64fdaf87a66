// The transport conformance suite for tcp > tls against a threaded BoringSSL peer
// (tests/tls_conformance_peer.h).
#include "tests/conformance.h"
#include "tests/tls_conformance_peer.h"

namespace hublink {
namespace testing {

INSTANTIATE_TEST_SUITE_P(Tls, TransportConformanceTest, ::testing::Values(TlsConformanceTarget()),
                         TargetName);

}  // namespace testing
}  // namespace hublink
