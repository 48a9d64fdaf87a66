// Transports: the byte-stream layers of a connection (tcp, tls, websocket, ...).
//
// A connection is a stack built bottom-up for each attempt: a *base* transport (tcp) owns the
// socket; each *wrapping* transport (tls, websocket) owns the transport below it and is a pure
// state machine over bytes (no fds, no blocking). Bytes written go down; bytes read come up through
// TransportListener.
//
// Lifecycle of one Transport, all on the loop thread:
//   Open(listener) -> OnOpen() -> OnData()* / Write()* -> OnClosed(status)   (exactly once)
// - A wrapping transport opens the layer below first and starts its own handshake when that
//   reports OnOpen(), so handshakes run bottom-up. It reports OnOpen() only when its own handshake
//   is done, and hands up (OnData) any bytes it read past its handshake.
// - Close() is orderly: the layer says goodbye in its own protocol (close_notify, a CLOSE frame),
//   closes the layer below, then reports OnClosed(OkStatus()). A peer close or an error reports
//   OnClosed (non-OK, or OK for a clean end of stream) without Close() being called.
// - Write() before OnOpen(), after Close() or after OnClosed() fails with kFailedPrecondition.
// - Callbacks never run from inside Open(), Write() or Close(); a transport defers them through
//   the loop. Do not destroy a transport from inside its own callback: post the destruction.
// - Destroying a transport at any time abandons the connection at once (socket closed, no
//   goodbye).
//
// Error codes, in every status a transport returns or reports, follow the one table in
// docs/errors.md (peer protocol violation kDataLoss, unreachable or reset kUnavailable, time limits
// kDeadlineExceeded, bad config kInvalidArgument, ...); the message starts with the layer's name.
#ifndef HUBLINK_PLUGINS_TRANSPORT_H_
#define HUBLINK_PLUGINS_TRANSPORT_H_

#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "plugins/connect_context.h"

namespace hublink {

// What a transport tells the layer above it.
class TransportListener {
 public:
  virtual ~TransportListener() = default;
  // This layer and every layer below finished their handshakes; Write() may be called.
  virtual void OnOpen() = 0;
  // Bytes for the layer above, in order. Any split is possible: layers above must reassemble.
  virtual void OnData(absl::string_view bytes) = 0;
  // The connection is over. OK: orderly close (ours or the peer's); otherwise the reason, prefixed
  // by the layer that failed, e.g. "tcp: 127.0.0.1:1883: connection refused".
  virtual void OnClosed(const absl::Status& status) = 0;
  // The bytes queued below dropped under the low-water mark after Write() reported backpressure.
  virtual void OnWritable() {}
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Starts connecting (base) or opens the layer below, then handshakes (wrapping). `listener` must
  // outlive this transport or until OnClosed() was delivered.
  virtual void Open(TransportListener* listener) = 0;

  // Queues `bytes` for the peer; never blocks. kFailedPrecondition before OnOpen() or after close.
  // Returns kResourceExhausted (and queues nothing) when the write queue is over its hard limit;
  // the caller waits for OnWritable().
  virtual absl::Status Write(absl::string_view bytes) = 0;

  // Starts an orderly close; OnClosed() follows. Idempotent.
  virtual void Close() = 0;

  // Bytes accepted by Write() that no layer has yet handed to the kernel. Callers use it to pace
  // themselves: above the soft limit they should wait for OnWritable().
  virtual size_t BufferedBytes() const = 0;

  // True while OnWritable() is owed: the bytes queued in this layer or below went over the soft
  // limit (the base transport's high-water mark) or a Write() was refused, and OnWritable() follows
  // once they drain under the low-water mark. Writes are still accepted up to the hard limit; a
  // caller that paces itself (mqtt::Session holds QoS 0 data) waits for OnWritable() instead.
  // Layers that never pace may keep the default; a wrapping layer forwards the layer below's.
  virtual bool AboveSoftLimit() const { return false; }
};

// Per-pipeline product of a TransportFactory: holds the parsed, validated config and anything worth
// keeping across attempts (a TLS session cache, a loaded certificate), and makes one Transport per
// attempt.
class ConfiguredTransport {
 public:
  virtual ~ConfiguredTransport() = default;
  // `lower` is null for a base transport and the layer below for a wrapping one (which takes
  // ownership). `context` outlives the returned transport.
  virtual absl::StatusOr<std::unique_ptr<Transport>> Create(ConnectContext& context,
                                                            std::unique_ptr<Transport> lower) = 0;
};

// Registered under a unique name in a Registry. Stateless; Configure() is called once per pipeline.
class TransportFactory {
 public:
  enum class Kind { kBase, kWrapping };

  virtual ~TransportFactory() = default;
  // The name a pipeline config uses, e.g. "tcp".
  virtual absl::string_view name() const = 0;
  // The config message this plugin takes, e.g. TcpConfig::descriptor(). Pipelines name it in
  // typed_config.
  virtual const google::protobuf::Descriptor* config_type() const = 0;
  // kBase owns a socket and must come first in a stack; kWrapping runs over another transport.
  virtual Kind kind() const = 0;
  // Validates `config` (of config_type(); a default instance when the pipeline gave none). Errors
  // are kInvalidArgument and say which field is wrong.
  virtual absl::StatusOr<std::unique_ptr<ConfiguredTransport>> Configure(
      const google::protobuf::Message& config) const = 0;
};

}  // namespace hublink

#endif  // HUBLINK_PLUGINS_TRANSPORT_H_
