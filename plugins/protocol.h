// Protocols: the application protocol spoken over a transport stack (mqtt, ...).
//
// A Protocol is a session state machine that outlives single connections: it sees each new link
// (one attempt's open transport stack), speaks its handshake over it (asking the signer for
// credentials at every attempt), and keeps what must survive a reconnect (in-flight messages,
// subscriptions). It never touches sockets: bytes go out through ProtocolLink::Write and come in
// through OnLinkData, so tests feed it bytes. The code that owns the transports (a Client) drives
// it and decides when to reconnect.
#ifndef HUBLINK_PLUGINS_PROTOCOL_H_
#define HUBLINK_PLUGINS_PROTOCOL_H_

#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "plugins/connect_context.h"
#include "plugins/event_loop.h"
#include "plugins/typed_access.h"

namespace hublink {

// The open transport stack of one attempt, as a protocol sees it.
class ProtocolLink {
 public:
  virtual ~ProtocolLink() = default;
  // Same contract as Transport::Write on the top transport.
  virtual absl::Status Write(absl::string_view bytes) = 0;
  virtual size_t BufferedBytes() const = 0;
  // Ends this link: OK for a goodbye the protocol already sent, non-OK for a protocol failure
  // (malformed input, keep-alive timeout, refused handshake). The owner closes the transports and
  // reconnects or not.
  virtual void Close(const absl::Status& reason) = 0;
  // The attempt's context: signer, server clock offset, endpoint.
  virtual ConnectContext& context() = 0;
};

class Protocol : public TypedAccess {
 public:
  ~Protocol() override = default;
  // A new link is open (every transport handshake done). The protocol starts its handshake on it.
  // `link` stays valid until OnLinkClosed().
  virtual void OnLinkOpen(ProtocolLink& link) = 0;
  virtual void OnLinkData(absl::string_view bytes) = 0;
  virtual void OnLinkWritable() {}
  // The link is gone (peer, transport error, or the protocol's own Close()). No more writes on it.
  virtual void OnLinkClosed(const absl::Status& status) = 0;
};

// Per-pipeline product of a ProtocolFactory: the validated config; makes the session object.
class ConfiguredProtocol {
 public:
  virtual ~ConfiguredProtocol() = default;
  virtual absl::StatusOr<std::unique_ptr<Protocol>> Create(EventLoop& loop) = 0;
};

class ProtocolFactory {
 public:
  virtual ~ProtocolFactory() = default;
  virtual absl::string_view name() const = 0;  // e.g. "mqtt"
  virtual const google::protobuf::Descriptor* config_type() const = 0;
  virtual absl::StatusOr<std::unique_ptr<ConfiguredProtocol>> Configure(
      const google::protobuf::Message& config) const = 0;
};

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_PROTOCOL_H_
