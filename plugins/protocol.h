// Protocols: the application protocol spoken over a transport stack (mqtt, http, ...).
//
// A Protocol is a session state machine that outlives single connections: it sees each new link
// (one attempt's open transport stack), speaks its handshake over it (asking the signer for
// credentials at every attempt), and keeps what must survive a reconnect (in-flight messages,
// subscriptions). It never touches sockets: bytes go out through ProtocolLink::Write and come in
// through OnLinkData, so tests feed it bytes. The code that owns the transports and the Protocol
// (the *owner*: hublink::Client for mqtt, http::HttpClient for http, a test) drives it and decides
// when to reconnect.
//
// Lifecycle, per link; links follow one another, never overlap:
//   OnLinkOpen(link) -> OnLinkData()* / OnLinkWritable()* / link.Write()* -> OnLinkClosed(status)
// - OnLinkOpen runs once the whole transport stack has reported OnOpen (every handshake done). The
//   protocol may Write (its own handshake: CONNECT, a request) and Close from inside it.
// - OnLinkData runs only between OnLinkOpen and OnLinkClosed, with the bytes the top transport
//   handed up, in order and in any split: the protocol reassembles its frames. Bytes read past
//   the transports' handshakes come as the first OnLinkData, after OnLinkOpen, never inside it.
//   hublink::Client stops delivering data once the protocol has called Close() (http::HttpClient
//   keeps delivering it), so a protocol that closes ignores what still arrives, as Session and
//   HttpExchange do.
// - OnLinkWritable runs after link.Write() returned kResourceExhausted (or BufferedBytes() went
//   over the transport's soft limit) and the queue below drained under its low-water mark.
// - OnLinkClosed runs exactly once per link: after the peer closed, a transport failed, the
//   protocol's own Close() finished, or the owner ended the link (hublink::Client's destructor,
//   with kCancelled, right after asking the session for its DISCONNECT). `status` is OK for an orderly end and otherwise says why
//   (hublink::Client passes the protocol's own Close() reason back; a close by the broker is
//   kUnavailable). After it `link` is gone: no Write, no Close, no context(). hublink::Client
//   calls it only for a link that opened; http::HttpClient also calls it (non-OK) when the stack
//   failed before opening, without an OnLinkOpen, so that the exchange learns why: a protocol
//   must accept OnLinkClosed without a link.
//
// Threads: everything runs on the thread of the EventLoop passed to ConfiguredProtocol::Create:
// the On* callbacks, the owner's calls into the protocol (hublink::Client posts what the
// application calls from other threads), and the protocol's timers, which it arms on that loop.
// Create() itself, and the protocol's constructor, may run on another thread before the owner
// first hands the protocol to the loop (hublink::Client creates it on the caller's thread), so a
// constructor may arm nothing that can fire yet. Nothing here is thread-safe.
//
// Re-entrancy: ProtocolLink::Write and ProtocolLink::Close never call back into the protocol
// synchronously. Write only queues (transports never call back from inside Write()). Close
// returns at once: OnLinkClosed follows from a later turn of the loop (hublink::Client: an
// orderly close after the transports' goodbyes; a non-OK one abandons the transports from a
// posted task). So a protocol may Write and Close from inside any of its callbacks and keep using
// its own state afterwards. It must not, from its callbacks, destroy itself or ask its owner to
// (hublink::Client's own teardown is posted for that reason).
//
// Writing: Write has the contract of Transport::Write on the top transport: kFailedPrecondition
// when the link is no longer writable, kResourceExhausted (nothing queued) above the hard limit.
// Between Close(non-OK) and OnLinkClosed, hublink::Client still passes writes to the transports,
// which are then abandoned with whatever was queued; do not write after Close().
//
// Ownership: the owner owns the Protocol and every link. A link and its context() are valid from
// OnLinkOpen until OnLinkClosed returns. The EventLoop given to Create outlives the protocol; so
// does the ConfiguredProtocol that created it (the owner keeps the ResolvedPipeline). The owner
// may destroy the protocol outside its callbacks at any time, even with a link open and no
// OnLinkClosed delivered (http::HttpClient does when a close does not finish within 1 s): the
// destructor cancels the protocol's timers and must not touch the link.
//
// Typed access: an owner that needs more than this interface (hublink::Client drives an
// mqtt::Session's Publish/Subscribe) asks for it with As<T>() (plugins/typed_access.h); a
// protocol offers what it implements by overriding FindInterface.
//
// Error codes, in the statuses a protocol passes to Close() and reports, follow docs/errors.md;
// messages start with the protocol's name ("mqtt: no CONNACK from the broker within 10s").
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
  // Same contract as Transport::Write on the top transport: queues, never blocks, never calls back
  // into the protocol.
  virtual absl::Status Write(absl::string_view bytes) = 0;
  // Transport::BufferedBytes of the top transport: above its soft limit, wait for OnLinkWritable.
  virtual size_t BufferedBytes() const = 0;
  // Transport::AboveSoftLimit of the top transport: while true, OnLinkWritable is owed.
  virtual bool AboveSoftLimit() const { return false; }
  // Ends this link: OK for a goodbye the protocol already sent (the transports then say theirs),
  // non-OK for a protocol failure (malformed input, keep-alive timeout, refused handshake: the
  // transports are abandoned). Returns at once; OnLinkClosed follows from a later loop turn.
  // Idempotent. The owner reconnects or not.
  virtual void Close(const absl::Status& reason) = 0;
  // The attempt's context: signer, server clock offset, endpoint, deadline. Valid as the link is.
  virtual ConnectContext& context() = 0;
};

class Protocol : public TypedAccess {
 public:
  ~Protocol() override = default;
  // A new link is open (every transport handshake done). The protocol starts its handshake on it.
  // `link` stays valid until OnLinkClosed() returns.
  virtual void OnLinkOpen(ProtocolLink& link) = 0;
  // Bytes from the peer, in order, in any split (see the lifecycle above).
  virtual void OnLinkData(absl::string_view bytes) = 0;
  // The link takes writes again after backpressure.
  virtual void OnLinkWritable() {}
  // The link is gone (peer, transport error, or the protocol's own Close()). No more use of it.
  virtual void OnLinkClosed(const absl::Status& status) = 0;
};

// Per-pipeline product of a ProtocolFactory: the validated config; makes the session object.
class ConfiguredProtocol {
 public:
  virtual ~ConfiguredProtocol() = default;
  // One Protocol per owner (hublink::Client makes one for its life, http::HttpClient one per
  // request). `loop` is the loop it will run on and outlives it; see Threads above for where
  // Create itself runs.
  virtual absl::StatusOr<std::unique_ptr<Protocol>> Create(EventLoop& loop) = 0;
};

// Registered under a unique name in a Registry. Stateless; Configure() is called once per pipeline.
class ProtocolFactory {
 public:
  virtual ~ProtocolFactory() = default;
  virtual absl::string_view name() const = 0;  // e.g. "mqtt"
  virtual const google::protobuf::Descriptor* config_type() const = 0;
  // Validates `config` (of config_type(); a default instance when the pipeline gave none). Errors
  // are kInvalidArgument and say which field is wrong.
  virtual absl::StatusOr<std::unique_ptr<ConfiguredProtocol>> Configure(
      const google::protobuf::Message& config) const = 0;
};

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_PROTOCOL_H_
