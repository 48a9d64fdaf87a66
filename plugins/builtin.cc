#include "plugins/builtin.h"

#include <cstdio>
#include <cstdlib>

#include "auth/hmac/hmac_signer.h"
#include "auth/rsa/rsa_signer.h"
#include "protocols/http/http_protocol.h"
#include "protocols/mqtt/mqtt_protocol.h"
#include "transports/http_connect/http_connect_transport.h"
#include "transports/socks5/socks5_transport.h"
#include "transports/tcp/tcp_transport.h"
#include "transports/tls/tls_transport.h"
#include "transports/websocket/websocket_transport.h"

namespace hublink {

void RegisterBuiltinPlugins(Registry::Builder& builder) {
  RegisterTcpTransport(builder);
  RegisterTlsTransport(builder);
  RegisterWebSocketTransport(builder);
  RegisterHttpConnectTransport(builder);
  RegisterSocks5Transport(builder);
  RegisterMqttProtocol(builder);
  RegisterHttpProtocol(builder);
  RegisterHmacSigner(builder);
  RegisterRsaSigner(builder);
}

const Registry& BuiltinRegistry() {
  static const Registry* registry = [] {
    Registry::Builder builder;
    RegisterBuiltinPlugins(builder);
    absl::StatusOr<Registry> built = std::move(builder).Build();
    if (!built.ok()) {  // two built-ins with one name: a bug in this file, not a user error
      std::fprintf(stderr, "hublink: built-in plugins: %s\n", built.status().ToString().c_str());
      std::abort();
    }
    return new Registry(*std::move(built));
  }();
  return *registry;
}

}  // namespace hublink
