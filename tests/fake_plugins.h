// Stand-in plugins for testing the registry and pipeline validation: they are configured for real
// but make transports that only remember their layering. Not for connecting anywhere.
#ifndef HUBLINK_TESTS_FAKE_PLUGINS_H_
#define HUBLINK_TESTS_FAKE_PLUGINS_H_

#include <memory>
#include <string>

#include "plugins/registry.h"

namespace hublink {
namespace testing {

// "fake_base" (base, FakeBaseConfig), "fake_wrap" (wrapping, FakeWrapConfig), "fake_protocol"
// (FakeProtocolConfig), "fake_signer" (FakeSignerConfig).
void RegisterFakePlugins(Registry::Builder& builder);

// The names of the layers from the top transport down, e.g. "fake_wrap(a)>fake_base(b)". Only for
// transports made by the fake factories.
std::string DescribeFakeStack(const Transport& top);

std::unique_ptr<TransportFactory> MakeFakeTransportFactory(std::string name, bool base);

}  // namespace testing
}  // namespace hublink

#endif  // HUBLINK_TESTS_FAKE_PLUGINS_H_
