#include "transports/websocket/websocket_transport.h"

#include <openssl/mem.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "plugins/duration.h"
#include "plugins/log.h"
#include "plugins/signer.h"
#include "plugins/status_macros.h"
#include "plugins/transport_end.h"
#include "transports/websocket/frame.h"
#include "transports/websocket/upgrade.h"
#include "transports/websocket/websocket.pb.h"

namespace hublink {
namespace {

using transports::WebSocketConfig;
using websocket::Opcode;

constexpr size_t kDefaultMaxResponseBytes = 16 * 1024;
constexpr uint64_t kDefaultMaxMessageBytes = 16ull << 20;
constexpr absl::Duration kDefaultUpgradeTimeout = absl::Seconds(10);
constexpr absl::Duration kDefaultCloseTimeout = absl::Seconds(1);
// Coalesced writes are flushed early once this much is pending, and a single write this large
// becomes its own frame without a copy into the coalescing buffer.
constexpr size_t kCoalesceLimit = 64 * 1024;

// Bytes that were written (an MQTT CONNECT's password, a signed upgrade's credentials) are wiped
// before their storage is released or reused.
void Wipe(std::string& bytes) {
  if (!bytes.empty()) OPENSSL_cleanse(&bytes[0], bytes.size());
}
void Wipe(std::vector<std::pair<std::string, std::string>>& pairs) {
  for (auto& [name, value] : pairs) {
    Wipe(name);
    Wipe(value);
  }
}

// The config with defaults applied, validated once per pipeline.
struct Settings {
  std::string path;
  std::vector<std::string> subprotocols;
  bool allow_missing_subprotocol = false;
  std::string origin;
  std::string user_agent;
  std::vector<std::pair<std::string, std::string>> headers;
  bool signed_upgrade = false;
  size_t max_response_bytes = kDefaultMaxResponseBytes;
  uint64_t max_message_bytes = kDefaultMaxMessageBytes;
  absl::optional<absl::Duration> upgrade_timeout;
  absl::Duration ping_interval = absl::ZeroDuration();  // zero: no client pings
  absl::Duration pong_timeout = absl::ZeroDuration();
  absl::Duration close_timeout = kDefaultCloseTimeout;
  bool coalesce = true;
};

// What a server's CLOSE means for the layer above: 1000 is a clean end of stream (like TCP's FIN);
// anything else is the server's reason for ending the connection, with its code and text.
absl::Status StatusForServerClose(absl::string_view payload) {
  if (payload.size() < 2) {
    return absl::UnavailableError("websocket: server closed the connection (no close code)");
  }
  uint16_t code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                        static_cast<uint8_t>(payload[1]));
  if (code == websocket::kCloseNormal) return absl::OkStatus();
  // Server text goes into logs and errors: no control characters (it is already valid UTF-8).
  std::string reason(payload.substr(2));
  for (char& c : reason) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  absl::string_view name = websocket::CloseCodeName(code);
  std::string message = absl::StrCat("websocket: server closed the connection: ", code,
                                     name.empty() ? "" : absl::StrCat(" (", name, ")"),
                                     reason.empty() ? "" : absl::StrCat(" \"", reason, "\""));
  switch (code) {
    case 1008:  // policy violation: usually an authorization decision
    case 3003:  // IANA: forbidden
      return absl::PermissionDeniedError(message);
    case 3000:  // IANA: unauthorized
      return absl::UnauthenticatedError(message);
    case websocket::kCloseProtocolError:
    case websocket::kCloseUnsupportedData:
    case websocket::kCloseInvalidPayload:
    case websocket::kCloseMessageTooBig:
    case 1010:
      return absl::DataLossError(message);
    default:
      return absl::UnavailableError(message);
  }
}

class WebSocketTransport : public Transport,
                           private TransportListener,
                           private websocket::FrameDecoder::Handler {
 public:
  WebSocketTransport(const Settings& settings, ConnectContext& context,
                     std::unique_ptr<Transport> lower)
      : settings_(settings),
        context_(context),
        loop_(context.loop()),
        lower_(std::move(lower)),
        decoder_(settings.max_message_bytes),
        pending_(websocket::kMaxFrameHeaderSize, '\0') {}

  ~WebSocketTransport() override {
    Wipe(pending_);
    for (Control& control : controls_) Wipe(control.payload);
  }

  void Open(TransportListener* listener) override {
    if (opened_) {
      // API misuse: the connection ends with kFailedPrecondition. The first listener hears it
      // (the second Open() does not take it over), and so does a different second listener;
      // both from the loop, never from here.
      absl::Status misuse = absl::FailedPreconditionError("websocket: Open() called twice");
      if (listener != nullptr && listener != end_.listener()) {
        end_.Post([listener, misuse] { listener->OnClosed(misuse); });
      }
      end_.Post([this, misuse] { Abort(misuse); });
      return;
    }
    opened_ = true;
    end_.set_listener(listener);
    if (state_ != State::kIdle) {
      // Closed before it was opened: report that end now that there is someone to tell.
      end_.Post(
          [this] { Deliver(absl::FailedPreconditionError("websocket: Open() after Close()")); });
      return;
    }
    state_ = State::kOpening;
    lower_->Open(this);
  }

  absl::Status Write(absl::string_view bytes) override {
    if (state_ != State::kOpen) {
      return absl::FailedPreconditionError(
          absl::StrCat("websocket: write on a ", StateName(), " connection"));
    }
    if (bytes.empty()) return absl::OkStatus();
    if (!settings_.coalesce) return WriteFrame(bytes);
    if (PendingSize() + bytes.size() > kCoalesceLimit) {
      // Keep frames and the copy bounded: send what is pending now, in order.
      HUBLINK_RETURN_IF_ERROR(FlushOutgoing());
      if (bytes.size() >= kCoalesceLimit) return WriteFrame(bytes);
    }
    AppendPending(bytes);
    if (!flush_posted_) {
      flush_posted_ = true;
      end_.Post([this] {
        flush_posted_ = false;
        if (state_ == State::kOpen) (void)FlushOutgoing();
      });
    }
    return absl::OkStatus();
  }

  void Close() override {
    switch (state_) {
      case State::kIdle:
      case State::kOpening:
      case State::kUpgrading:
        if (state_ != State::kIdle) lower_->Close();
        state_ = State::kClosed;
        end_.CancelTimers();
        end_.Post([this] { Deliver(absl::OkStatus()); });
        return;
      case State::kOpen: {
        // Bytes written before Close() reach the server ahead of the CLOSE frame; when the layer
        // below is full, both wait for its OnWritable(), bounded by close_timeout.
        state_ = State::kClosing;
        close_requested_ = true;
        end_.Cancel(ping_timer_);
        end_.Cancel(pong_timer_);
        end_.RunAfter(close_timer_, settings_.close_timeout, [this] {
          if (!close_handed_below_) {
            CloseBelow(absl::DeadlineExceededError(absl::StrCat(
                "websocket: close timed out after ", absl::FormatDuration(settings_.close_timeout),
                ": the layer below never took the CLOSE frame (", PendingSize(),
                " bytes of data still waiting ahead of it)")));
            return;
          }
          HLOG(DEBUG) << "websocket: no CLOSE echo within " << settings_.close_timeout
                      << "; closing below";
          CloseBelow(absl::OkStatus());
        });
        (void)FlushOutgoing();
        return;
      }
      case State::kClosing:
      case State::kClosingBelow:
      case State::kClosed:
        return;
    }
  }

  size_t BufferedBytes() const override { return PendingSize() + lower_->BufferedBytes(); }
  bool AboveSoftLimit() const override {
    return state_ == State::kOpen && (write_blocked_ || lower_->AboveSoftLimit());
  }

 private:
  enum class State { kIdle, kOpening, kUpgrading, kOpen, kClosing, kClosingBelow, kClosed };

  const char* StateName() const {
    switch (state_) {
      case State::kIdle:
      case State::kOpening:
      case State::kUpgrading:
        return "not yet open";
      case State::kOpen:
        return "open";
      case State::kClosing:
      case State::kClosingBelow:
        return "closing";
      case State::kClosed:
        return "closed";
    }
    return "?";
  }

  size_t PendingSize() const { return pending_.size() - websocket::kMaxFrameHeaderSize; }

  // --- The layer below (TransportListener) ---

  void OnOpen() override {
    if (state_ != State::kOpening) return;
    state_ = State::kUpgrading;
    context_.BeginPhase("ws");
    absl::Time deadline;
    if (settings_.upgrade_timeout.has_value()) {
      deadline = std::min(loop_.Now() + *settings_.upgrade_timeout, context_.deadline());
    } else {
      deadline = context_.deadline() == absl::InfiniteFuture()
                     ? loop_.Now() + kDefaultUpgradeTimeout
                     : context_.deadline();
    }
    end_.RunAt(upgrade_timer_, deadline, [this] {
      Abort(absl::DeadlineExceededError(
          absl::StrCat("websocket: no upgrade response from ", Endpoint(), " in time (",
                       parser_ ? parser_->bytes_seen() : 0, " bytes received)")));
    });

    websocket::UpgradeRequest request;
    request.host = context_.host();
    request.port = context_.port();
    request.path = settings_.path;
    request.subprotocols = settings_.subprotocols;
    request.origin = settings_.origin;
    request.user_agent = settings_.user_agent;
    request.headers = settings_.headers;
    if (settings_.signed_upgrade) {
      absl::Status signed_ok = AddSignedHeaders(request);
      if (!signed_ok.ok()) {
        Abort(signed_ok);
        return;
      }
    }
    std::string key = websocket::GenerateKey();
    parser_ = std::make_unique<websocket::UpgradeResponseParser>(
        key, settings_.subprotocols, settings_.max_response_bytes,
        settings_.allow_missing_subprotocol);
    std::string upgrade = websocket::BuildUpgradeRequest(request, key);
    absl::Status sent = lower_->Write(upgrade);
    Wipe(upgrade);
    Wipe(request.headers);
    Wipe(request.query);
    if (!sent.ok()) Abort(Annotate(sent, "websocket: sending the upgrade request"));
  }

  absl::Status AddSignedHeaders(websocket::UpgradeRequest& request) {
    Signer* signer = context_.signer();
    if (signer == nullptr) {
      return absl::InvalidArgumentError(
          "websocket: signed_upgrade is set but the pipeline has no signer");
    }
    SignRequest sign_request;
    sign_request.now = context_.ServerNow();
    sign_request.host = context_.host();
    absl::StatusOr<Credentials> credentials = signer->Sign(sign_request);
    if (!credentials.ok()) return Annotate(credentials.status(), "websocket: signing the upgrade");
    // Moved, not copied: the caller wipes `request` once the upgrade went out.
    absl::Status valid;
    for (auto& [name, value] : credentials->http_headers) {
      valid = websocket::ValidateHeader(name, value, "websocket: signer header");
      if (valid.ok() && websocket::IsReservedHeader(name)) {
        valid = absl::InvalidArgumentError(
            absl::StrCat("websocket: signer header ", name, " is computed by the transport"));
      }
      if (!valid.ok()) break;
    }
    if (valid.ok()) {
      request.headers.reserve(request.headers.size() + credentials->http_headers.size());
      for (auto& header : credentials->http_headers) request.headers.push_back(std::move(header));
      request.query = std::move(credentials->http_query);
    }
    Wipe(credentials->http_headers);
    Wipe(credentials->http_query);
    return valid;
  }

  void OnData(absl::string_view bytes) override {
    if (state_ == State::kUpgrading) {
      absl::StatusOr<bool> done = parser_->Feed(bytes);
      if (!done.ok()) {
        Abort(done.status());
        return;
      }
      if (!*done) return;
      OnUpgraded();
      return;
    }
    if (state_ == State::kOpen || state_ == State::kClosing) Decode(bytes);
  }

  void OnUpgraded() {
    end_.Cancel(upgrade_timer_);
    const websocket::UpgradeResponse& response = parser_->response();
    if (response.date.has_value()) {
      // Date has whole seconds and was stamped when the server answered: the server's clock is on
      // average half a second past it on arrival.
      context_.set_server_clock_offset(*response.date + absl::Milliseconds(500) - loop_.Now());
    }
    std::string leftover = parser_->TakeLeftover();
    state_ = State::kOpen;
    context_.EndPhase("ws");
    context_.ReportStage(
        "websocket",
        absl::StrCat("upgrade 101 GET ", settings_.path,
                     response.subprotocol.empty() ? "" : " subprotocol ", response.subprotocol));
    StartPingTimer();
    end_.listener()->OnOpen();
    // Frames that came with the 101 (a greeting, a CONNACK) go up after OnOpen, in order.
    if (!leftover.empty() && (state_ == State::kOpen || state_ == State::kClosing))
      Decode(leftover);
  }

  void OnClosed(const absl::Status& status) override {
    switch (state_) {
      case State::kIdle:
      case State::kClosed:
        return;
      case State::kOpening:
        Finish(status);
        return;
      case State::kUpgrading:
        Finish(status.ok()
                   ? absl::UnavailableError(absl::StrCat(
                         "websocket: ", Endpoint(), " closed the connection during the upgrade (",
                         parser_ ? parser_->bytes_seen() : 0, " bytes of response received)"))
                   : Annotate(status, "websocket: during the upgrade"));
        return;
      case State::kOpen:
        Finish(
            status.ok()
                ? absl::UnavailableError(
                      "websocket: connection closed without a CLOSE frame (abnormal closure, 1006)")
                : status);
        return;
      case State::kClosing:
        Finish(absl::OkStatus());  // we were closing anyway; the echo no longer matters
        return;
      case State::kClosingBelow:
        Finish(close_status_);
        return;
    }
  }

  void OnWritable() override {
    write_blocked_ = false;
    switch (state_) {
      case State::kOpen:
        if (!FlushOutgoing().ok()) return;
        end_.listener()->OnWritable();
        return;
      case State::kClosing:
        (void)FlushOutgoing();
        return;
      case State::kClosingBelow:
        (void)FlushControls();
        if (close_below_deferred_ && controls_.empty()) {
          close_below_deferred_ = false;
          lower_->Close();
        }
        return;
      default:
        return;
    }
  }

  // --- Frames from the server (FrameDecoder::Handler) ---

  void Decode(absl::string_view bytes) {
    absl::Status decoded = decoder_.Feed(bytes, *this);
    if (!decoded.ok() && state_ != State::kClosingBelow && state_ != State::kClosed) {
      HLOG(WARNING) << decoded;
      SendClose(decoder_.close_code(), decoded.message());
      CloseBelow(decoded);
    }
  }

  void OnMessageData(Opcode opcode, absl::string_view data, bool /*message_end*/) override {
    if (state_ != State::kOpen && state_ != State::kClosing) return;
    if (opcode == websocket::kText) {
      // MQTT over WebSocket is binary only (MQTT 3.1.1 section 6); text would corrupt the packet
      // stream.
      absl::Status error = absl::DataLossError(
          "websocket: server sent a text frame; MQTT over WebSocket uses binary frames (closing "
          "with 1003)");
      decoder_.stop();
      SendClose(websocket::kCloseUnsupportedData, "binary frames only");
      CloseBelow(error);
      return;
    }
    if (!data.empty()) end_.listener()->OnData(data);
  }

  void OnControl(Opcode opcode, absl::string_view payload) override {
    if (opcode == websocket::kPing) {
      // Answered now, not with the next write: servers time out unanswered pings.
      if (!close_sent_) WriteControl(websocket::kPong, payload);
      return;
    }
    if (opcode == websocket::kPong) {
      if (pong_timer_ != 0 && payload == ping_payload_) end_.Cancel(pong_timer_);
      return;
    }
    // CLOSE: nothing after it is read.
    decoder_.stop();
    if (state_ == State::kClosing) {
      end_.Cancel(close_timer_);
      if (!close_sent_) {
        // The server closed first while our data still waited: it reads no more of it; echo.
        DropPending();
        close_sent_ = true;
        WriteControl(websocket::kClose, payload.substr(0, std::min<size_t>(payload.size(), 2)));
      }
      CloseBelow(absl::OkStatus());
      return;
    }
    absl::Status status = StatusForServerClose(payload);
    HLOG(INFO) << "websocket: server sent CLOSE"
               << (payload.size() >= 2 ? absl::StrCat(" ", (static_cast<uint8_t>(payload[0]) << 8) |
                                                               static_cast<uint8_t>(payload[1]))
                                       : "")
               << (status.ok() ? "" : absl::StrCat(": ", status.message()));
    // Echo the code (RFC 6455 section 5.5.1); pending writes are dropped, the server reads no more
    // data.
    DropPending();
    if (!close_sent_) {
      close_sent_ = true;
      WriteControl(websocket::kClose, payload.substr(0, std::min<size_t>(payload.size(), 2)));
    }
    CloseBelow(status);
  }

  // --- Writing ---
  //
  // Three things wait to go below, in this order: control frames (PONG, PING, CLOSE) that the layer
  // below refused, the coalesced data, then, after Close(), our CLOSE frame. Control frames are
  // never dropped for backpressure: they wait for OnWritable() and go out before further data.

  absl::Status WriteFrame(absl::string_view payload) {
    // Queued control frames go first; if they cannot, neither can this.
    HUBLINK_RETURN_IF_ERROR(FlushControls());
    std::string frame;
    frame.reserve(payload.size() + websocket::kMaxFrameHeaderSize);
    websocket::AppendClientFrame(websocket::kBinary, payload, keys_, &frame);
    absl::Status written = lower_->Write(frame);
    Wipe(frame);  // masked, but the key is right in front of it
    if (written.code() == absl::StatusCode::kResourceExhausted) write_blocked_ = true;
    return written;
  }

  // Appends to the coalescing buffer; when it must grow, the old storage is wiped, not just freed.
  void AppendPending(absl::string_view bytes) {
    if (pending_.size() + bytes.size() > pending_.capacity()) {
      std::string grown;
      grown.reserve(std::max(pending_.capacity() * 2, pending_.size() + bytes.size()));
      grown.append(pending_);
      Wipe(pending_);
      pending_.swap(grown);
    }
    pending_.append(bytes.data(), bytes.size());
  }

  void DropPending() {
    Wipe(pending_);
    pending_.resize(websocket::kMaxFrameHeaderSize);
  }

  // Everything that waits, in order. Returns kResourceExhausted while the layer below is full.
  absl::Status FlushOutgoing() {
    HUBLINK_RETURN_IF_ERROR(FlushControls());
    if (state_ == State::kOpen || state_ == State::kClosing) {
      HUBLINK_RETURN_IF_ERROR(FlushPending());
    }
    if (close_requested_ && !close_sent_) SendClose(websocket::kCloseNormal, "");
    return controls_.empty()
               ? absl::OkStatus()
               : absl::ResourceExhaustedError("websocket: control frames wait for the layer below");
  }

  // Sends the coalesced bytes as one frame, built in place: the header goes into the room reserved
  // in front of them and the payload is masked where it lies.
  absl::Status FlushPending() {
    size_t size = PendingSize();
    if (size == 0) return absl::OkStatus();
    if (!controls_.empty()) {
      write_blocked_ = true;
      return absl::ResourceExhaustedError(
          "websocket: control frames wait for the layer below; wait for OnWritable()");
    }
    uint8_t key[4];
    keys_.Next(key);
    uint8_t header[websocket::kMaxFrameHeaderSize];
    size_t header_size =
        websocket::EncodeClientFrameHeader(websocket::kBinary, true, size, key, header);
    size_t start = websocket::kMaxFrameHeaderSize - header_size;
    std::memcpy(&pending_[start], header, header_size);
    char* payload = &pending_[websocket::kMaxFrameHeaderSize];
    websocket::Mask(payload, size, key);
    absl::Status written = lower_->Write(absl::string_view(pending_).substr(start));
    if (written.code() == absl::StatusCode::kResourceExhausted) {
      // Nothing was queued below: unmask and keep the bytes for the next OnWritable().
      websocket::Mask(payload, size, key);
      write_blocked_ = true;
      return written;
    }
    DropPending();
    return written;
  }

  // Queues a control frame and sends what the layer below takes. At most one of each kind waits:
  // a newer PONG replaces an unsent one (RFC 6455 section 5.5.3), and PING and CLOSE go once.
  void WriteControl(Opcode opcode, absl::string_view payload) {
    if (opcode == websocket::kPong) {
      for (auto it = controls_.begin(); it != controls_.end(); ++it) {
        if (it->opcode == websocket::kPong) {
          Wipe(it->payload);
          controls_.erase(it);
          break;
        }
      }
    }
    controls_.push_back({opcode, std::string(payload)});
    (void)FlushControls();
  }

  // Sends queued control frames in order until the layer below refuses one (kResourceExhausted:
  // it stays first in line for OnWritable()). Any other refusal means the layer below is closing:
  // nothing can be sent any more, and the frame is dropped.
  absl::Status FlushControls() {
    while (!controls_.empty()) {
      Control& control = controls_.front();
      std::string frame;
      websocket::AppendClientFrame(control.opcode, control.payload, keys_, &frame);
      absl::Status written = lower_->Write(frame);
      Wipe(frame);
      if (written.code() == absl::StatusCode::kResourceExhausted) {
        write_blocked_ = true;
        return written;
      }
      if (!written.ok()) {
        HLOG(DEBUG) << "websocket: control frame not sent: " << written;
      } else if (control.opcode == websocket::kClose) {
        close_handed_below_ = true;
      }
      Wipe(control.payload);
      controls_.erase(controls_.begin());
    }
    return absl::OkStatus();
  }

  void SendClose(uint16_t code, absl::string_view reason) {
    if (close_sent_) return;
    close_sent_ = true;
    WriteControl(websocket::kClose, websocket::ClosePayload(code, reason));
  }

  // --- Keep-alive ---

  void StartPingTimer() {
    if (settings_.ping_interval <= absl::ZeroDuration()) return;
    end_.RunAfter(ping_timer_, settings_.ping_interval, [this] {
      if (state_ != State::kOpen) return;
      if (pong_timer_ == 0) {
        ++ping_count_;
        ping_payload_ = absl::StrCat("hublink-", ping_count_);
        WriteControl(websocket::kPing, ping_payload_);
        end_.RunAfter(pong_timer_, settings_.pong_timeout, [this] {
          Abort(absl::DeadlineExceededError(
              absl::StrCat("websocket: no PONG from ", Endpoint(), " within ",
                           absl::FormatDuration(settings_.pong_timeout),
                           " of our PING; the connection is presumed dead")));
        });
      }
      StartPingTimer();
    });
  }

  // --- Ending ---

  // Orderly end: closes the layer below once the control frames waiting for it (a CLOSE, its echo)
  // went, and reports `status` once it has closed. Bounded by close_timeout.
  void CloseBelow(const absl::Status& status) {
    if (state_ == State::kClosingBelow || state_ == State::kClosed) return;
    state_ = State::kClosingBelow;
    close_status_ = status;
    decoder_.stop();
    end_.CancelTimers();
    DropPending();
    if (controls_.empty()) {
      lower_->Close();
    } else {
      close_below_deferred_ = true;
    }
    end_.RunAfter(close_timer_, settings_.close_timeout, [this] {
      if (close_below_deferred_) {
        close_below_deferred_ = false;
        if (close_status_.ok()) {
          close_status_ = absl::DeadlineExceededError(absl::StrCat(
              "websocket: close timed out after ", absl::FormatDuration(settings_.close_timeout),
              ": the layer below never took the CLOSE frame"));
        }
        lower_->Close();
      }
      Finish(close_status_);
    });
  }

  // Immediate end for failures where waiting helps nobody (refused or timed-out upgrade, a dead
  // link): the layer below is closed in the background and its report ignored.
  void Abort(const absl::Status& status) {
    if (state_ == State::kClosed) return;
    lower_->Close();
    Finish(status);
  }

  void Finish(const absl::Status& status) {
    if (state_ == State::kClosed && end_.delivered()) return;
    state_ = State::kClosed;
    end_.Finish(status);  // cancels the timers, tells the listener once
  }

  void Deliver(const absl::Status& status) {
    state_ = State::kClosed;
    // With no listener yet (Close() before Open()), Open() reports the end later.
    end_.Deliver(status);
  }

  std::string Endpoint() const { return absl::StrCat(context_.host(), ":", context_.port()); }

  const Settings settings_;
  ConnectContext& context_;
  EventLoop& loop_;
  std::unique_ptr<Transport> lower_;
  State state_ = State::kIdle;

  std::unique_ptr<websocket::UpgradeResponseParser> parser_;
  websocket::FrameDecoder decoder_;
  websocket::MaskKeySource keys_;
  // kMaxFrameHeaderSize reserved bytes, then the coalesced payload.
  std::string pending_;
  struct Control {
    Opcode opcode;
    std::string payload;
  };
  // Control frames the layer below refused, in order; sent before any further data.
  std::vector<Control> controls_;
  bool opened_ = false;
  bool flush_posted_ = false;
  // The layer below refused a write; OnWritable() will come.
  bool write_blocked_ = false;
  // Close() was called: our CLOSE goes after the data written before it.
  bool close_requested_ = false;
  // Our CLOSE frame (or the echo of the server's) is queued or sent; nothing follows it.
  bool close_sent_ = false;
  // The layer below accepted our CLOSE frame.
  bool close_handed_below_ = false;
  // CloseBelow() waits for queued control frames before closing the layer below.
  bool close_below_deferred_ = false;
  absl::Status close_status_;

  EventLoop::TimerId upgrade_timer_ = 0;
  EventLoop::TimerId ping_timer_ = 0;
  EventLoop::TimerId pong_timer_ = 0;
  EventLoop::TimerId close_timer_ = 0;
  uint64_t ping_count_ = 0;
  std::string ping_payload_;
  // The listener, OnClosed once, the timers above, deferred work; last, so that it is destroyed
  // first and no task or timer of this transport runs during or after its destruction.
  TransportEnd end_{loop_};
};

class ConfiguredWebSocket : public ConfiguredTransport {
 public:
  explicit ConfiguredWebSocket(Settings settings) : settings_(std::move(settings)) {}
  absl::StatusOr<std::unique_ptr<Transport>> Create(ConnectContext& context,
                                                    std::unique_ptr<Transport> lower) override {
    if (lower == nullptr) {
      return absl::InvalidArgumentError(
          "websocket: is a wrapping transport and needs a transport below it (tcp or tls)");
    }
    return std::unique_ptr<Transport>(new WebSocketTransport(settings_, context, std::move(lower)));
  }

 private:
  const Settings settings_;
};

absl::StatusOr<Settings> MakeSettings(const WebSocketConfig& config) {
  Settings s;
  s.path = config.path().empty() ? "/" : config.path();
  if (s.path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("websocket: path: must start with '/' (got \"", s.path, "\")"));
  }
  for (char c : s.path) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '#') {
      return absl::InvalidArgumentError(
          "websocket: path: must not contain spaces, control characters or '#' (percent-encode "
          "them)");
    }
  }
  if (config.no_subprotocol() && config.subprotocols_size() > 0) {
    return absl::InvalidArgumentError(
        "websocket: no_subprotocol is set but subprotocols lists some");
  }
  for (int i = 0; i < config.subprotocols_size(); ++i) {
    HUBLINK_RETURN_IF_ERROR(websocket::ValidateHeader(
        config.subprotocols(i), "", absl::StrCat("websocket: subprotocols[", i, "]")));
    s.subprotocols.push_back(config.subprotocols(i));
  }
  if (s.subprotocols.empty() && !config.no_subprotocol()) s.subprotocols = {"mqtt"};
  s.allow_missing_subprotocol = config.allow_missing_subprotocol();
  HUBLINK_RETURN_IF_ERROR(
      websocket::ValidateHeader("Origin", config.origin(), "websocket: origin"));
  HUBLINK_RETURN_IF_ERROR(
      websocket::ValidateHeader("User-Agent", config.user_agent(), "websocket: user_agent"));
  s.origin = config.origin();
  s.user_agent = config.user_agent();
  for (int i = 0; i < config.headers_size(); ++i) {
    const auto& header = config.headers(i);
    std::string field = absl::StrCat("websocket: headers[", i, "]");
    HUBLINK_RETURN_IF_ERROR(websocket::ValidateHeader(header.name(), header.value(), field));
    if (websocket::IsReservedHeader(header.name())) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": ", header.name(), " is computed by the transport and cannot be set"));
    }
    if (absl::EqualsIgnoreCase(header.name(), "origin") ||
        absl::EqualsIgnoreCase(header.name(), "user-agent")) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": use the ",
                       absl::AsciiStrToLower(header.name()) == "origin" ? "origin" : "user_agent",
                       " field for ", header.name()));
    }
    s.headers.emplace_back(header.name(), header.value());
  }
  s.signed_upgrade = config.signed_upgrade();
  if (config.max_response_bytes() != 0) {
    if (config.max_response_bytes() < 64) {
      return absl::InvalidArgumentError(
          "websocket: max_response_bytes: at least 64 (a 101 needs ~130)");
    }
    s.max_response_bytes = config.max_response_bytes();
  }
  if (config.max_message_bytes() != 0) s.max_message_bytes = config.max_message_bytes();
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(config.upgrade_timeout(), "websocket: upgrade_timeout"));
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(config.ping_interval(), "websocket: ping_interval"));
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(config.pong_timeout(), "websocket: pong_timeout"));
  HUBLINK_RETURN_IF_ERROR(
      ValidateNonNegativeDuration(config.close_timeout(), "websocket: close_timeout"));
  if (config.has_upgrade_timeout()) s.upgrade_timeout = ToDuration(config.upgrade_timeout());
  if (config.has_ping_interval()) s.ping_interval = ToDuration(config.ping_interval());
  s.pong_timeout = config.has_pong_timeout() ? ToDuration(config.pong_timeout()) : s.ping_interval;
  if (config.has_pong_timeout() && s.ping_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("websocket: pong_timeout is set but ping_interval is not");
  }
  if (s.ping_interval > absl::ZeroDuration() && s.pong_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("websocket: pong_timeout: must be positive");
  }
  if (config.has_close_timeout()) s.close_timeout = ToDuration(config.close_timeout());
  s.coalesce = !config.has_coalesce_writes() || config.coalesce_writes();
  return s;
}

class WebSocketFactory : public TransportFactory {
 public:
  absl::string_view name() const override { return "websocket"; }
  const google::protobuf::Descriptor* config_type() const override {
    return WebSocketConfig::descriptor();
  }
  Kind kind() const override { return Kind::kWrapping; }
  absl::StatusOr<std::unique_ptr<ConfiguredTransport>> Configure(
      const google::protobuf::Message& message) const override {
    HUBLINK_ASSIGN_OR_RETURN(Settings settings,
                             MakeSettings(static_cast<const WebSocketConfig&>(message)));
    return std::unique_ptr<ConfiguredTransport>(new ConfiguredWebSocket(std::move(settings)));
  }
};

}  // namespace

void RegisterWebSocketTransport(Registry::Builder& builder) {
  builder.AddTransport(std::make_unique<WebSocketFactory>());
}

}  // namespace hublink
