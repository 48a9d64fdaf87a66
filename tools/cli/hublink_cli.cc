#include "tools/cli/hublink_cli.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "auth/tencent_credentials.h"
#include "plugins/builtin.h"
#include "plugins/pipeline.h"
#include "plugins/plugin_library.h"
#include "plugins/status_macros.h"
#include "protocols/mqtt/client.h"
#include "protocols/mqtt/mqtt.pb.h"
#include "tools/cli/config_info.h"
#include "tools/cli/connection_flags.h"
#include "tools/cli/flags.h"
#include "tools/cli/fleet.h"
#include "tools/cli/metrics.h"
#include "tools/cli/ota_command.h"
#include "tools/cli/register_command.h"
#include "tools/cli/shadow_command.h"
#include "tools/cli/template_command.h"

namespace hublink {
namespace cli {
namespace {

constexpr const char* kCommands[] = {"pub",   "sub",    "sign",     "plugins", "check",
                                     "fleet", "shadow", "register", "ota",     "template"};

struct CommandFlags {
  ConnectionFlags connection;
  std::vector<std::string> topics;
  std::string message;
  int qos = 0;
  int count = 0;
  int timeout = 0;
  std::string connid;
  std::string expiry;
  std::string dump_pipeline;
  bool retain = false;
  std::string outbox;  // pub: the durable store's directory
  int first_seq = 0;   // pub: {seq} of the first message
  bool message_set = false;
  bool verbose = false;  // pub, sub: every layer's milestones and a timing line per attempt
  int spin_us = 0;       // pub, sub: Client::Options::spin_before_sleep
  // pub, sub: Client::Options::read_moderation, the library's default unless the flag is given
  int read_moderation_us =
      static_cast<int>(absl::ToInt64Microseconds(Client::Options().read_moderation));
  int metrics_port = 0;                   // sub: serve Prometheus metrics on 127.0.0.1:PORT
  std::vector<std::string> plugin_paths;  // every command: --plugin=PATH shared objects
  std::string describe;                   // plugins: one plugin's config, field by field
};

// The shared objects to load: the pipeline file's plugin_libraries, then --plugin flags.
absl::StatusOr<std::vector<PluginLibrary>> PluginLibraries(const CommandFlags& flags,
                                                           const std::string& pipeline_path) {
  std::vector<PluginLibrary> libraries;
  if (!pipeline_path.empty()) {
    HUBLINK_ASSIGN_OR_RETURN(libraries, ReadPluginLibraries(pipeline_path));
  }
  for (const std::string& path : flags.plugin_paths) {
    libraries.push_back(PluginLibraryFromPath(path));
  }
  return libraries;
}

// The built-ins, the caller's own plugins, then the shared objects' (plugins/plugin_library.h:
// the registry is built once the libraries are known, since it is immutable afterwards).
absl::StatusOr<Registry> MakeRegistry(
    const std::function<void(Registry::Builder&)>& register_plugins,
    const std::vector<PluginLibrary>& libraries) {
  return BuildRegistryWithLibraries(
      [&register_plugins](Registry::Builder& builder) {
        RegisterBuiltinPlugins(builder);
        if (register_plugins) register_plugins(builder);
      },
      libraries);
}

// --plugin libraries join the pipeline's own, so a dumped pipeline loads them by itself.
void AddFlagLibraries(const CommandFlags& flags, Pipeline& pipeline) {
  for (const std::string& path : flags.plugin_paths) {
    bool listed = false;
    for (const PluginLibrary& library : pipeline.plugin_libraries()) {
      listed = listed || library.path() == path;
    }
    if (!listed) *pipeline.add_plugin_libraries() = PluginLibraryFromPath(path);
  }
}

// Connection state shared with the client's loop thread. std::mutex and std::condition_variable,
// per plugins/event_loop.h's locking policy.
class Watch {
 public:
  void OnEvent(const ConnectionEvent& event, std::ostream& err) {
    std::lock_guard<std::mutex> lock(mutex_);
    err << "hublink: " << DescribeConnectionEvent(event) << "\n";
    if (event.kind == ConnectionEvent::Kind::kConnected) connected_ = true;
    // A command-line tool reports the first failure instead of retrying forever like a device
    // would.
    if (!connected_ && (event.kind == ConnectionEvent::Kind::kReconnecting ||
                        event.kind == ConnectionEvent::Kind::kGaveUp)) {
      if (failure_.ok())
        failure_ = event.reason.ok() ? absl::UnavailableError("connection failed") : event.reason;
    }
    if (connected_ && event.kind == ConnectionEvent::Kind::kLost && failure_.ok() &&
        !expect_close_) {
      failure_ = event.reason.ok() ? absl::UnavailableError("connection lost") : event.reason;
    }
  }
  // Waits until `done` holds, a failure is recorded, or `deadline`. Returns the failure, or
  // kDeadlineExceeded.
  absl::Status Wait(const std::function<bool()>& done, absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!done() && failure_.ok()) {
      const absl::Duration left = deadline - absl::Now();
      // In steps of at most an hour: an absl::InfiniteFuture() deadline does not overflow the
      // condition variable's clock arithmetic.
      if (left > absl::ZeroDuration() &&
          changed_cv_.wait_for(lock,
                               absl::ToChronoMilliseconds(std::min(left, absl::Hours(1))) +
                                   std::chrono::milliseconds(1),
                               [this] { return changed_; })) {
        changed_ = false;
        continue;
      }
      if (absl::Now() < deadline) continue;
      if (!done()) return absl::DeadlineExceededError("timed out");
    }
    return failure_;
  }
  void Notify() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      changed_ = true;
    }
    changed_cv_.notify_all();
  }
  void ExpectClose() {
    std::lock_guard<std::mutex> lock(mutex_);
    expect_close_ = true;
  }
  std::mutex& mutex() { return mutex_; }

 private:
  std::mutex mutex_;
  std::condition_variable changed_cv_;  // changed_ became true
  // Guarded by mutex_:
  bool connected_ = false;
  bool changed_ = false;
  bool expect_close_ = false;
  absl::Status failure_;
};

int Fail(std::ostream& err, absl::string_view command, const absl::Status& status) {
  err << "hublink " << command << ": " << status.message() << "\n";
  return 1;
}

// The loop-tuning flags: microseconds, 0 for off.
absl::StatusOr<absl::Duration> MicrosecondsFlag(absl::string_view name, int value) {
  if (value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, "=", value, ": must be 0 (off) or more microseconds"));
  }
  return absl::Microseconds(value);
}

absl::StatusOr<std::unique_ptr<Client>> MakeClient(const CommandFlags& flags,
                                                   const Pipeline& pipeline,
                                                   const Registry& registry, Watch& watch,
                                                   std::ostream& err) {
  // Resolved here rather than by Client::Create, so that errors name the file, not "pipeline".
  HUBLINK_ASSIGN_OR_RETURN(
      std::unique_ptr<ResolvedPipeline> resolved,
      ResolvedPipeline::Resolve(pipeline, registry, PipelineSource(flags.connection)));
  Client::Options options;
  HUBLINK_ASSIGN_OR_RETURN(options.spin_before_sleep, MicrosecondsFlag("spin_us", flags.spin_us));
  HUBLINK_ASSIGN_OR_RETURN(options.read_moderation,
                           MicrosecondsFlag("read_moderation_us", flags.read_moderation_us));
  const bool verbose = flags.verbose;
  options.on_event = [&watch, &err, verbose](const ConnectionEvent& event) {
    if (verbose && !event.phases.empty()) {
      std::lock_guard<std::mutex> lock(watch.mutex());
      err << "hublink: connect " << DescribeConnectPhases(event.phases) << "\n";
    }
    watch.OnEvent(event, err);
    watch.Notify();
  };
  if (verbose) {
    options.on_stage = [&watch, &err](absl::string_view layer, absl::string_view detail) {
      std::lock_guard<std::mutex> lock(watch.mutex());
      err << "hublink: " << layer << ": " << detail << "\n";
    };
  }
  return Client::Create(std::shared_ptr<const ResolvedPipeline>(std::move(resolved)),
                        std::move(options));
}

// --outbox=DIR: the pipeline's mqtt protocol gets store { file { path: DIR sync: ALWAYS } }.
absl::Status UseOutbox(const std::string& dir, Pipeline& pipeline) {
  protocols::MqttConfig mqtt;
  if (pipeline.protocol().has_typed_config() &&
      !pipeline.protocol().typed_config().UnpackTo(&mqtt)) {
    return absl::InvalidArgumentError("--outbox: the pipeline's protocol is not mqtt");
  }
  mqtt.mutable_store()->mutable_file()->set_path(dir);
  mqtt.mutable_store()->mutable_file()->set_sync(mqtt::FileStoreConfig::ALWAYS);
  if (pipeline.protocol().name().empty()) pipeline.mutable_protocol()->set_name("mqtt");
  pipeline.mutable_protocol()->mutable_typed_config()->PackFrom(mqtt);
  return absl::OkStatus();
}

// pub --outbox=DIR without --message: delivers what the store holds and exits 0 once it is empty.
int DrainOutbox(const CommandFlags& flags, const Pipeline& pipeline, const Registry& registry,
                std::ostream& out, std::ostream& err) {
  Watch watch;
  auto client = MakeClient(flags, pipeline, registry, watch, err);
  if (!client.ok()) return Fail(err, "pub", client.status());
  size_t held = (*client)->Pending().get();
  (*client)->Connect();
  absl::Time deadline = absl::Now() + absl::Seconds(flags.timeout > 0 ? flags.timeout : 30);
  size_t pending = held;
  absl::Status waited;
  // Pending() answers after a round trip through the loop; asked again every 20 ms until empty.
  while (pending > 0) {
    waited =
        watch.Wait([] { return false; }, std::min(deadline, absl::Now() + absl::Milliseconds(20)));
    if (waited.code() != absl::StatusCode::kDeadlineExceeded) break;
    waited = absl::OkStatus();
    pending = (*client)->Pending().get();
    if (pending > 0 && absl::Now() >= deadline) {
      waited = absl::DeadlineExceededError(absl::StrCat("timed out with ", pending, " of ", held,
                                                        " stored messages not yet acknowledged"));
      break;
    }
  }
  watch.ExpectClose();
  (*client)->Disconnect().wait_for(std::chrono::seconds(5));
  if (!waited.ok()) return Fail(err, "pub", waited);
  out << "published " << held << "\n";
  out.flush();
  return 0;
}

int Publish(const CommandFlags& flags, const Pipeline& pipeline_in, const Registry& registry,
            std::ostream& out, std::ostream& err) {
  if (flags.topics.size() != 1 &&
      !(flags.topics.empty() && !flags.outbox.empty() && !flags.message_set)) {
    return Fail(err, "pub", absl::InvalidArgumentError("--topic: give exactly one"));
  }
  Pipeline pipeline = pipeline_in;
  if (!flags.outbox.empty()) {
    absl::Status outbox = UseOutbox(flags.outbox, pipeline);
    if (!outbox.ok()) return Fail(err, "pub", outbox);
    if (!flags.message_set) return DrainOutbox(flags, pipeline, registry, out, err);
  }
  // Declared before the client: its destructor may still run completions that touch them.
  Watch watch;
  const int count = flags.count > 0 ? flags.count : 1;
  int completed = 0;
  absl::Status first_error;
  auto client = MakeClient(flags, pipeline, registry, watch, err);
  if (!client.ok()) return Fail(err, "pub", client.status());
  (*client)->Connect();
  const bool numbered = flags.message.find("{seq}") != std::string::npos;
  // Client::Publish copies every message into a hand-off queue the loop drains, and nothing bounds
  // that queue: a loop faster than the link (one gone silent) grew it to 516 MB for 200,000 x 2 KB
  // (issue 15). So keep at most a window of publishes outstanding, in messages and bytes: wait for
  // completions (or, with an outbox, where completions wait for the broker, for the loop to have
  // stored the earlier ones), and stop at the first failure. The session's own queue is bounded by
  // MqttConfig.offline_queue and the transports' by their limits.
  constexpr size_t kWindowMessages = 1024;
  constexpr size_t kWindowBytes = 4 << 20;
  const size_t message_bytes = flags.topics[0].size() + flags.message.size() + 16;
  const int window = static_cast<int>(
      std::max<size_t>(1, std::min(kWindowMessages, kWindowBytes / message_bytes)));
  const absl::Duration timeout = absl::Seconds(flags.timeout > 0 ? flags.timeout : 30);
  int issued = 0;
  absl::Status paced;
  for (int i = 0; i < count; ++i) {
    if (!flags.outbox.empty()) {
      if (i > 0 && i % window == 0) (*client)->Pending().wait();
    } else {
      paced = watch.Wait([&] { return i - completed < window || !first_error.ok(); },
                         absl::Now() + timeout);
      if (paced.code() == absl::StatusCode::kDeadlineExceeded) {
        std::lock_guard<std::mutex> lock(watch.mutex());
        paced = absl::DeadlineExceededError(absl::StrCat(
            "timed out with ", completed, " of ", count, " publishes done: none completed for ",
            absl::FormatDuration(timeout), " with ", i - completed,
            " outstanding: the connection takes no bytes (is the broker reading?)"));
      }
    }
    {
      std::lock_guard<std::mutex> lock(watch.mutex());
      if (!first_error.ok()) break;
    }
    if (!paced.ok()) break;
    std::string message =
        numbered ? absl::StrReplaceAll(
                       flags.message,
                       {{"{seq}", absl::StrCat(static_cast<int64_t>(flags.first_seq) + i)}})
                 : flags.message;
    (*client)->Publish(flags.topics[0], message, flags.qos, flags.retain,
                       [&](const absl::Status& status) {
                         {
                           std::lock_guard<std::mutex> lock(watch.mutex());
                           ++completed;
                           if (!status.ok() && first_error.ok()) first_error = status;
                         }
                         watch.Notify();
                       });
    ++issued;
  }
  if (!flags.outbox.empty()) {
    // Every publish above is now in the store (fdatasync'ed) or failed: what a caller may forget.
    (*client)->Pending().wait();
    std::lock_guard<std::mutex> lock(watch.mutex());
    if (first_error.ok()) {
      out << "accepted " << count << "\n";
      out.flush();
    }
  }
  absl::Status waited = paced;
  if (waited.ok()) {
    waited =
        watch.Wait([&] { return completed == issued || !first_error.ok(); }, absl::Now() + timeout);
  }
  if (waited.code() == absl::StatusCode::kDeadlineExceeded && paced.ok()) {
    std::lock_guard<std::mutex> lock(watch.mutex());
    waited = absl::DeadlineExceededError(
        absl::StrCat("timed out with ", completed, " of ", count, " publishes done"));
  }
  if (waited.ok()) {
    std::lock_guard<std::mutex> lock(watch.mutex());
    waited = first_error;
  }
  watch.ExpectClose();
  (*client)->Disconnect().wait_for(std::chrono::seconds(5));
  if (!waited.ok()) return Fail(err, "pub", waited);
  out << "published " << count << " message" << (count == 1 ? "" : "s") << " to " << flags.topics[0]
      << "\n";
  return 0;
}

int Subscribe(const CommandFlags& flags, const Pipeline& pipeline, const Registry& registry,
              std::ostream& out, std::ostream& err) {
  if (flags.topics.empty()) return Fail(err, "sub", absl::InvalidArgumentError("--topic: missing"));
  Watch watch;  // before the client, which calls back into it until destroyed
  int received = 0;
  auto client = MakeClient(flags, pipeline, registry, watch, err);
  if (!client.ok()) return Fail(err, "sub", client.status());
  std::unique_ptr<MetricsServer> metrics;  // after the client: stops serving before it goes
  if (flags.metrics_port != 0) {
    if (flags.metrics_port < 0 || flags.metrics_port > 65535) {
      return Fail(err, "sub", absl::InvalidArgumentError("--metrics_port: not a port (1..65535)"));
    }
    Client* raw = client->get();
    auto started = MetricsServer::Start("127.0.0.1", static_cast<uint16_t>(flags.metrics_port),
                                        [raw] { return RenderPrometheus(raw->Stats().get()); });
    if (!started.ok()) return Fail(err, "sub", started.status());
    metrics = std::move(started).value();
    std::lock_guard<std::mutex> lock(watch.mutex());
    err << "hublink: metrics on http://127.0.0.1:" << metrics->port() << "/metrics\n";
  }
  for (const std::string& topic : flags.topics) {
    (*client)->Subscribe(
        topic, flags.qos,
        [&](const mqtt::Message& message) {
          {
            std::lock_guard<std::mutex> lock(watch.mutex());
            if (flags.count > 0 && received >= flags.count) return;
            out << message.topic << " " << message.payload << "\n";
            out.flush();
            ++received;
          }
          watch.Notify();
        },
        [&err, &watch, topic](const absl::Status& status) {
          if (!status.ok()) {
            std::lock_guard<std::mutex> lock(watch.mutex());
            err << "hublink sub: " << topic << ": " << status.message() << "\n";
          }
        });
  }
  (*client)->Connect();
  absl::Time deadline =
      flags.timeout > 0 ? absl::Now() + absl::Seconds(flags.timeout) : absl::InfiniteFuture();
  absl::Status waited =
      watch.Wait([&] { return flags.count > 0 && received >= flags.count; }, deadline);
  watch.ExpectClose();
  (*client)->Disconnect().wait_for(std::chrono::seconds(5));
  if (waited.code() == absl::StatusCode::kDeadlineExceeded) {
    if (flags.count <= 0) return 0;  // ran for --timeout, as asked
    return Fail(
        err, "sub",
        absl::DeadlineExceededError(absl::StrCat("timed out after ", flags.timeout, "s with ",
                                                 received, " of ", flags.count, " messages")));
  }
  if (!waited.ok()) return Fail(err, "sub", waited);
  return 0;
}

int Sign(const CommandFlags& flags, const Pipeline& pipeline, const Registry& registry,
         std::ostream& out, std::ostream& err) {
  auto resolved = ResolvedPipeline::Resolve(pipeline, registry, PipelineSource(flags.connection));
  if (!resolved.ok()) return Fail(err, "sign", resolved.status());
  Signer* signer = (*resolved)->signer();
  if (signer == nullptr) {
    return Fail(err, "sign", absl::InvalidArgumentError("the pipeline has no signer"));
  }
  absl::StatusOr<Credentials> credentials;
  if (!flags.connid.empty() || !flags.expiry.empty()) {
    auto* tencent = signer->As<auth::TencentSigner>();
    if (tencent == nullptr) {
      return Fail(err, "sign",
                  absl::InvalidArgumentError(
                      "--connid/--expiry: the pipeline's signer is not a Tencent signer"));
    }
    std::string connid = flags.connid;
    if (connid.empty()) {
      auto random = auth::RandomConnId();
      if (!random.ok()) return Fail(err, "sign", random.status());
      connid = *random;
    }
    std::string expiry =
        flags.expiry.empty() ? tencent->layout().Expiry(absl::Now()) : flags.expiry;
    credentials = tencent->SignWith(connid, expiry);
  } else {
    credentials = signer->Sign(SignRequest{absl::Now(), pipeline.endpoint().host()});
  }
  if (!credentials.ok()) return Fail(err, "sign", credentials.status());
  out << "client_id: " << credentials->client_id << "\n";
  out << "username: " << credentials->username << "\n";
  out << "password: " << credentials->password << "\n";
  return 0;
}

int ListPlugins(const Registry& registry, std::ostream& out) {
  // One column for the config types, two spaces past the longest name of any family.
  size_t width = 0;
  for (const std::vector<std::string>& names :
       {registry.TransportNames(), registry.ProtocolNames(), registry.SignerNames()}) {
    for (const std::string& name : names) width = std::max(width, name.size() + 2);
  }
  auto row = [&out, width](absl::string_view name, const google::protobuf::Descriptor* type,
                           absl::string_view note) {
    std::string padded(name);
    padded.resize(width, ' ');
    out << "  " << padded << type->full_name() << note << "\n";
  };
  out << "transports:\n";
  for (const std::string& name : registry.TransportNames()) {
    const TransportFactory* factory = *registry.FindTransport(name);
    row(name, factory->config_type(),
        factory->kind() == TransportFactory::Kind::kBase ? "  (base)" : "");
  }
  out << "protocols:\n";
  for (const std::string& name : registry.ProtocolNames()) {
    row(name, (*registry.FindProtocol(name))->config_type(), "");
  }
  out << "signers:\n";
  for (const std::string& name : registry.SignerNames()) {
    row(name, (*registry.FindSigner(name))->config_type(), "");
  }
  return 0;
}

// What each command does, as the usage lines say it.
absl::string_view Summary(absl::string_view command) {
  if (command == "pub") return "publish --message to --topic (--count times)";
  if (command == "sub") return "print \"topic payload\" for each message on --topic (repeatable)";
  if (command == "sign") return "print the client id, username and password a device would send";
  if (command == "fleet") return "many clients at once: connect, publish, summarize";
  if (command == "shadow") return "get|update|delete a Tencent device's shadow (JSON on stdout)";
  if (command == "template") {
    return "report|event|report-info|get-status|clear-control: Tencent IoT Explorer data template";
  }
  if (command == "register") return "Tencent dynamic registration: write device_info.json";
  if (command == "ota") return "Tencent OTA: report the version, download an update (Range, MD5)";
  if (command == "check") return "validate a pipeline file without connecting: hublink check FILE";
  return "list the registered plugins (--describe=NAME: one plugin's config, field by field)";
}

// Each command takes the flags it uses and no others, so `--help` lists only those and a flag
// meant for another command is a usage error instead of being silently ignored.
void RegisterFlags(absl::string_view command, CommandFlags& flags, FlagParser& parser) {
  parser.AddList("plugin", &flags.plugin_paths,
                 "load plugins from this shared object (repeatable; see "
                 "docs/plugin-authoring.md)");
  if (command == "check") return;
  if (command == "plugins") {
    parser.AddString("describe", &flags.describe,
                     "print NAME's kind, config message, and every field with its type, default "
                     "and comment");
    return;
  }
  flags.connection.Register(parser);
  if (command == "pub" || command == "sub") {
    parser.AddList(
        "topic", &flags.topics,
        command == "pub" ? "topic to publish to" : "topic filter to subscribe to (repeatable)");
    parser.AddInt("qos", &flags.qos, "0, 1 or 2");
    parser.AddBool("verbose", &flags.verbose,
                   "(or -v) print each layer's milestones and one timing line per connection "
                   "attempt");
    parser.AddInt(
        "spin_us", &flags.spin_us,
        "after reading from the broker, poll this many microseconds before sleeping (default "
        "0): a busy subscriber then costs the broker less per message, for more CPU here");
    parser.AddInt(
        "read_moderation_us", &flags.read_moderation_us,
        absl::StrCat("while the broker streams at this client (never for a request and its "
                     "answer), let its writes pile up this many microseconds before the next read "
                     "(default ",
                     absl::ToInt64Microseconds(Client::Options().read_moderation),
                     ", 0 off): cheaper for the broker and for this process, up to that much "
                     "later per streamed message"));
  }
  if (command == "pub") {
    parser.AddString("message", &flags.message, "payload to publish");
    parser.AddInt("count", &flags.count, "how many times to publish (default 1)");
    parser.AddInt("timeout", &flags.timeout, "seconds to wait for every publish (default 30)");
    parser.AddBool("retain", &flags.retain, "set the retain flag");
    parser.AddString("outbox", &flags.outbox,
                     "durable outbox directory (file store, sync ALWAYS): prints \"accepted N\" "
                     "once every message is on disk; without --message, delivers what it holds");
    parser.AddInt("first_seq", &flags.first_seq,
                  "{seq} in --message is replaced by first_seq + the message's index (default 0)");
  }
  if (command == "sub") {
    parser.AddInt("count", &flags.count, "exit after this many messages");
    parser.AddInt("timeout", &flags.timeout, "seconds to wait, then exit");
    parser.AddInt("metrics_port", &flags.metrics_port,
                  "serve the client's counters in Prometheus text format on "
                  "http://127.0.0.1:PORT/metrics");
  }
  if (command == "sign") {
    parser.AddString("connid", &flags.connid, "use this 5-character connection id");
    parser.AddString("expiry", &flags.expiry, "use this expiry (Unix seconds)");
  }
  parser.AddString("dump_pipeline", &flags.dump_pipeline,
                   "write the pipeline to FILE (- for stdout) and exit");
}

std::string Usage() {
  std::string usage =
      "usage: hublink pub|sub|sign|plugins|fleet|shadow|register|ota|template [flags]   "
      "(hublink COMMAND --help: its flags)\n";
  for (const char* command : kCommands) {
    std::string padded(command);
    padded.resize(9, ' ');
    absl::StrAppend(&usage, "  ", padded, Summary(command), "\n");
  }
  return usage;
}

// --plugin=PATH (or --plugin PATH) for the commands that parse their own flags: taken out of
// `args`, loaded and checked here, and handed to the command inside its registration callback. The
// plugin_libraries of a --pipeline file come first, as for the other commands: the command builds
// its registry before it reads the file, so they must be in the callback too.
absl::StatusOr<std::function<void(Registry::Builder&)>> TakePluginFlags(
    std::vector<std::string>& args,
    const std::function<void(Registry::Builder&)>& register_plugins) {
  std::vector<PluginLibrary> libraries;
  std::vector<std::string> kept;
  std::string pipeline_path;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--") {
      kept.insert(kept.end(), args.begin() + i, args.end());
      break;
    }
    if (absl::StartsWith(args[i], "--plugin=")) {
      libraries.push_back(PluginLibraryFromPath(args[i].substr(9)));
    } else if (args[i] == "--plugin" && i + 1 < args.size()) {
      libraries.push_back(PluginLibraryFromPath(args[++i]));
    } else {
      if (absl::StartsWith(args[i], "--pipeline=")) pipeline_path = args[i].substr(11);
      if (args[i] == "--pipeline" && i + 1 < args.size()) pipeline_path = args[i + 1];
      kept.push_back(args[i]);
    }
  }
  args = std::move(kept);
  if (!pipeline_path.empty()) {
    HUBLINK_ASSIGN_OR_RETURN(std::vector<PluginLibrary> from_file,
                             ReadPluginLibraries(pipeline_path));
    libraries.insert(libraries.begin(), from_file.begin(), from_file.end());
  }
  if (libraries.empty()) return register_plugins;
  // Loads them, and reports a bad library or a clash now, while the error can still be returned.
  HUBLINK_RETURN_IF_ERROR(MakeRegistry(register_plugins, libraries).status());
  return [register_plugins, libraries](Registry::Builder& builder) {
    if (register_plugins) register_plugins(builder);
    // Loaded and checked above; registering again into another builder cannot fail differently.
    for (const PluginLibrary& library : libraries) {
      RegisterPluginLibrary(library, builder).IgnoreError();
    }
  };
}

int Check(const CommandFlags& flags, const std::vector<std::string>& positional,
          const std::function<void(Registry::Builder&)>& register_plugins, std::ostream& out,
          std::ostream& err) {
  if (positional.size() != 1) {
    err << "hublink check: give one pipeline file: hublink check [--plugin=PATH] FILE\n";
    return 2;
  }
  absl::StatusOr<std::vector<PluginLibrary>> libraries = PluginLibraries(flags, positional[0]);
  if (!libraries.ok()) return Fail(err, "check", libraries.status());
  absl::StatusOr<Registry> registry = MakeRegistry(register_plugins, *libraries);
  if (!registry.ok()) {
    err << positional[0] << ": " << registry.status().message() << "\n";
    return 1;
  }
  return CheckPipelineFile(positional[0], *registry, out, err);
}

}  // namespace

int RunHublink(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return RunHublink(args, out, err, nullptr);
}

int RunHublink(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
               const std::function<void(Registry::Builder&)>& register_plugins) {
  if (args.empty() || args[0] == "--help" || args[0] == "help") {
    (args.empty() ? err : out) << Usage();
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  if (std::find(std::begin(kCommands), std::end(kCommands), command) == std::end(kCommands)) {
    err << "hublink: unknown command \"" << command << "\"\n" << Usage();
    return 2;
  }
  if (command == "register" || command == "fleet" || command == "shadow" || command == "ota" ||
      command == "template") {
    std::vector<std::string> own(args.begin() + 1, args.end());
    absl::StatusOr<std::function<void(Registry::Builder&)>> with_libraries =
        TakePluginFlags(own, register_plugins);
    if (!with_libraries.ok()) return Fail(err, command, with_libraries.status());
    if (command == "register") return RunRegister(own, out, err, *with_libraries);
    if (command == "ota") return RunOta(own, out, err, *with_libraries);
    if (command == "fleet") return RunFleet(own, out, err, *with_libraries);
    if (command == "shadow") return RunShadow(own, out, err, *with_libraries);
    if (command == "template") return RunTemplate(own, out, err, *with_libraries);
  }
  CommandFlags flags;
  FlagParser parser;
  RegisterFlags(command, flags, parser);
  std::vector<std::string> rest(args.begin() + 1, args.end());
  for (std::string& arg : rest) {
    if (arg == "--") break;
    if (arg == "-v") arg = "--verbose";
  }
  for (const std::string& arg : rest) {
    if (arg == "--") break;
    if (command == "pub" && (arg == "--message" || arg.rfind("--message=", 0) == 0)) {
      flags.message_set = true;
    }
    if (arg == "--help" || arg == "-h") {
      out << "usage: hublink " << command << " [flags]\n  " << Summary(command) << "\n";
      std::string usage = parser.Usage();
      if (!usage.empty()) out << "flags:\n" << usage;
      return 0;
    }
  }
  std::vector<std::string> positional;
  absl::Status parsed = parser.Parse(rest, &positional);
  if (command == "check" && parsed.ok()) {
    return Check(flags, positional, register_plugins, out, err);
  }
  if (!parsed.ok() || !positional.empty()) {
    err << "hublink " << command << ": "
        << (parsed.ok() ? absl::StrCat("unexpected argument \"", positional[0], "\"")
                        : std::string(parsed.message()))
        << "\nflags:\n"
        << parser.Usage();
    return 2;
  }
  if (flags.qos < 0 || flags.qos > 2) {
    return Fail(err, command, absl::InvalidArgumentError("--qos: must be 0, 1 or 2"));
  }
  absl::StatusOr<std::vector<PluginLibrary>> libraries =
      PluginLibraries(flags, flags.connection.pipeline);
  if (!libraries.ok()) return Fail(err, command, libraries.status());
  absl::StatusOr<Registry> registry = MakeRegistry(register_plugins, *libraries);
  if (!registry.ok()) return Fail(err, command, registry.status());
  if (command == "plugins" && !flags.describe.empty()) {
    absl::Status described = DescribePlugin(*registry, flags.describe, out);
    return described.ok() ? 0 : Fail(err, command, described);
  }
  if (command == "plugins") return ListPlugins(*registry, out);

  absl::StatusOr<Pipeline> pipeline = BuildPipeline(flags.connection, nullptr, &*registry);
  if (!pipeline.ok()) return Fail(err, command, pipeline.status());
  AddFlagLibraries(flags, *pipeline);
  if (!flags.dump_pipeline.empty()) {
    absl::Status written = WritePipeline(*pipeline, flags.dump_pipeline, out, &flags.connection);
    return written.ok() ? 0 : Fail(err, command, written);
  }
  if (command == "sign") return Sign(flags, *pipeline, *registry, out, err);
  if (command == "pub") return Publish(flags, *pipeline, *registry, out, err);
  return Subscribe(flags, *pipeline, *registry, out, err);
}

}  // namespace cli
}  // namespace hublink
