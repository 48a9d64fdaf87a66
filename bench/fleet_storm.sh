#!/bin/bash
# Reconnect storm: N idle `hublink fleet` clients on one mosquitto (127.0.0.1); once all N TCP
# connections are established the broker is killed (-9) and started again on the same port, and the
# fleet's reconnect histogram (each client's loss to its CONNACK again) shows how the backoff
# jitter spread the reconnects. Builds -c opt in its own output base, like bench/run.sh.
#
#   bench/fleet_storm.sh [N]      # default 10000
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
[[ "$N" =~ ^[0-9]+$ ]] || { echo "usage: $0 [N]" >&2; exit 2; }
OUTPUT_BASE="${BENCH_OUTPUT_BASE:-$HOME/.cache/bazel-bench}"
BAZEL=(bazel --output_base="$OUTPUT_BASE")
"${BAZEL[@]}" build -c opt --jobs="${BENCH_JOBS:-2}" --symlink_prefix=/ //tools:hublink >&2
HUBLINK="$("${BAZEL[@]}" info -c opt bazel-bin 2>/dev/null)/tools/hublink"

TMP="$(mktemp -d /tmp/hublink-fleet-storm.XXXXXX)"
broker_pid="" fleet_pid=""
cleanup() {
  for pid in $fleet_pid $broker_pid; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$TMP/mosquitto.conf" <<CONF
$( ((EUID == 0)) && echo "user root")
persistence false
allow_anonymous true
max_connections -1
log_dest file $TMP/mosquitto.log
listener $port 127.0.0.1
CONF
mosquitto -c "$TMP/mosquitto.conf" &
broker_pid=$!
for ((i = 0; i < 100; i++)); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
"$HUBLINK" fleet --host=127.0.0.1 --port="$port" --clients="$N" --keep_alive=60 --duration=20s \
  --connect_timeout=60s --json >"$TMP/fleet.json" 2>"$TMP/fleet.err" &
fleet_pid=$!
established=0
for ((i = 0; i < 1200; i++)); do  # at most 120 s
  established="$(ss -tn state established "( dport = :$port )" | tail -n +2 | wc -l)"
  ((established >= N)) && break
  sleep 0.1
done
echo "$established connections established; restarting the broker" >&2
kill -9 "$broker_pid"
wait "$broker_pid" 2>/dev/null || true
mosquitto -c "$TMP/mosquitto.conf" &
broker_pid=$!
status=0
wait "$fleet_pid" || status=$?
fleet_pid=""
python3 - "$TMP/fleet.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
h = r["reconnect"]
print(f"{r['connected']} of {r['clients']} clients connected at the end; {r['losses']} lost their "
      f"connection, {h['count']} reconnected: loss to CONNACK p50 {h['p50_ms']:.0f} ms, "
      f"p90 {h['p90_ms']:.0f} ms, p99 {h['p99_ms']:.0f} ms; failed attempts by phase "
      f"{r['failures_by_phase']}")
for bucket, count in sorted((int(k), v) for k, v in h["buckets"].items()):
    lo, hi = 2 ** ((bucket - 1) / 8) / 1e6, 2 ** (bucket / 8) / 1e6
    print(f"  {lo:6.3f} - {hi:6.3f} s  {count:6d}  {'#' * max(1, count * 60 // max(1, h['count']))}")
PY
exit $status
