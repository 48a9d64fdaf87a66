#include "plugins/builtin.h"

#include "transports/tcp/tcp_transport.h"

namespace hublink {

void RegisterBuiltinPlugins(Registry::Builder& builder) { RegisterTcpTransport(builder); }

}  // namespace hublink
