// The tap's conformance test, written as a plugin author outside hublink writes theirs: in the
// plugin's own namespace, with hublink's suite (//tests:conformance) linked in and instantiated;
// docs/plugin-authoring.md shows this file whole.
#include "examples/tap_plugin/tap_transport.h"

#include "gtest/gtest.h"
#include "tests/conformance.h"
#include "tests/tls_conformance_peer.h"

namespace acme {
namespace {

using ::hublink::testing::PluginOverTcpTarget;
using ::hublink::testing::TargetName;
using ::hublink::testing::TlsOverPluginTarget;
using ::hublink::testing::TransportConformanceTest;

// The tap as a pipeline names it, with its config.
constexpr char kTapTransport[] =
    "transports { typed_config { [type.googleapis.com/acme.tap.TapConfig] { label: \"t\" } } }";

// tcp > tap against the suite's TCP peer, and tcp > tap > tls against its TLS peer: the same cases
// with TLS over the tap, which must then hand the handshake, records split anywhere and
// close_notify through unchanged, both ways.
INSTANTIATE_TEST_SUITE_P(
    Tap, TransportConformanceTest,
    ::testing::Values(PluginOverTcpTarget("TcpTap", RegisterTapTransport, kTapTransport),
                      TlsOverPluginTarget("TcpTapTls", RegisterTapTransport, kTapTransport)),
    TargetName);

}  // namespace
}  // namespace acme
