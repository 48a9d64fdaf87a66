// faultproxy's socket half: a TCP proxy on hublink's EventLoop that forwards one listening port to
// one upstream and applies the faults of fault.h per connection and direction, changed at run time
// through a line-based control port and/or a seeded schedule. Everything runs on the loop thread.
#ifndef HUBLINK_TOOLS_FAULTPROXY_PROXY_H_
#define HUBLINK_TOOLS_FAULTPROXY_PROXY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "plugins/event_loop.h"
#include "tools/faultproxy/fault.h"

namespace hublink {
namespace faultproxy {

struct Address {
  std::string host = "127.0.0.1";  // an IPv4 literal or "localhost"
  int port = 0;
  std::string ToString() const;
};
// "HOST:PORT" or ":PORT" / "PORT" (host 127.0.0.1).
absl::StatusOr<Address> ParseAddress(absl::string_view text);

struct ProxyOptions {
  Address listen;    // port 0 = the kernel picks (see Proxy::listen_port())
  Address upstream;  // where every accepted connection is forwarded
  Address control;   // the control port; port 0 = picked
  bool enable_control = true;
  std::vector<ScheduleEntry> schedule;
  uint64_t seed = 1;
  size_t max_buffer = 256 * 1024;  // bytes queued per direction before the source is not read
  int max_connections = 1000;      // more are accepted and reset at once
  int max_control_clients = 16;
};

class Proxy {
 public:
  // Binds the listening and control sockets and starts the schedule. Call on the loop's thread, or
  // before anything runs the loop.
  static absl::StatusOr<std::unique_ptr<Proxy>> Create(EventLoop* loop, ProxyOptions options);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  int listen_port() const { return listen_port_; }
  int control_port() const { return control_port_; }

  // Runs one control command and returns its reply line ("ok ..." / "error ..."), no newline.
  std::string Execute(absl::string_view line);
  // The schedule's timeline for its first `horizon`, one line per activation (for --dry_run).
  static std::string DescribeSchedule(const std::vector<ScheduleEntry>& schedule, uint64_t seed,
                                      absl::Duration horizon);

 private:
  struct Flow;
  struct Conn;
  struct ControlClient;
  struct ActiveFault {
    uint64_t id;
    Fault fault;
    absl::Time expires;
    EventLoop::TimerId timer = 0;
    bool scheduled = false;
  };

  Proxy(EventLoop* loop, ProxyOptions options);
  absl::Status Bind(const Address& address, int* fd, int* port);
  absl::Status WatchListener();
  void OnAccept();
  void RefuseOne(int fd, RefuseMode mode);
  void StartConn(int client_fd);
  void OnConnEvent(uint64_t id, int side, uint32_t ready);
  bool ReadFrom(Conn& c, int side);  // false: the connection is gone
  bool Pump(Conn& c, int dir);       // false: the connection is gone
  bool Settle(Conn& c);              // EOFs, close_after, interest; false: gone
  bool CanRead(const Conn& c, int side) const;
  void UpdateInterest(Conn& c);
  bool Reconfigure(Conn& c);  // false: the connection is gone
  void OnTimer(uint64_t id, int dir);
  void Destroy(uint64_t id, bool rst);
  bool Matches(const Fault& f, uint64_t conn) const;

  uint64_t AddFault(const Fault& fault, bool scheduled, std::string* detail);
  bool RemoveFault(uint64_t id);
  void ApplyRefuse();
  void ScheduleStart();
  void ScheduleStop();
  void ScheduleArm();
  void ScheduleFire(const ScheduleClock::Event& event);

  void OnControlAccept();
  void OnControlEvent(int fd, uint32_t ready);
  void CloseControl(int fd);
  std::string Status() const;

  EventLoop* const loop_;
  const ProxyOptions options_;
  int listen_fd_ = -1;
  int listen_port_ = 0;
  bool listen_watched_ = false;
  EventLoop::TimerId rebind_timer_ = 0;
  int control_fd_ = -1;
  int control_port_ = 0;
  uint32_t upstream_ip_ = 0;  // network order

  uint64_t next_conn_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Conn>> conns_;
  uint64_t next_fault_id_ = 1;
  std::map<uint64_t, ActiveFault> faults_;
  absl::flat_hash_map<int, std::unique_ptr<ControlClient>> controls_;

  std::unique_ptr<ScheduleClock> schedule_;
  bool schedule_on_ = false;
  absl::Time schedule_t0_;
  EventLoop::TimerId schedule_timer_ = 0;

  // Totals since start.
  uint64_t accepted_ = 0, refused_ = 0, resets_ = 0, closed_after_ = 0;
  uint64_t bytes_[2] = {0, 0};    // written to the destination
  uint64_t dropped_[2] = {0, 0};  // discarded by blackhole / close_after
};

}  // namespace faultproxy
}  // namespace hublink

#endif  // HUBLINK_TOOLS_FAULTPROXY_PROXY_H_
