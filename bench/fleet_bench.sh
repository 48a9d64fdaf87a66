#!/bin/bash
# Idle connections held by one process, hublink (`hublink fleet`) and Paho C (bench/paho_fleet.cc,
# one MQTTAsync per connection) side by side against one mosquitto on 127.0.0.1: RSS per
# connection, connect rate, CPU per connection per minute idle (keep-alive 60 s, so about one
# PINGREQ each a minute); then a publish load, hublink and right after it Paho with the same
# parameters against the same broker: N clients (ramped at 1,000 connects per second) each
# publishing 64 bytes at QoS 1 once a second, p50/p99 publish-to-PUBACK, CPU per message, RSS.
# Builds -c opt in its own output base, like bench/run.sh. Prints Markdown tables and the load
# average before and after (the numbers mean little on a loaded machine).
#
#   bench/fleet_bench.sh                      # 10,000 tcp, 2,000 wss, 60 s idle, 1,000 publishing
#   bench/fleet_bench.sh --tcp=2000 --wss=500 --hold=20 --publishers=200 --publish_for=10
#   bench/fleet_bench.sh --tcp=0 --wss=0 --publishers=1000     # the publish load only (0 skips)
set -euo pipefail
cd "$(dirname "$0")/.."

tcp_clients=10000 wss_clients=2000 hold=60 publishers=1000 publish_for=30
for arg in "$@"; do
  case "$arg" in
    --tcp=*) tcp_clients="${arg#*=}" ;;
    --wss=*) wss_clients="${arg#*=}" ;;
    --hold=*) hold="${arg#*=}" ;;
    --publishers=*) publishers="${arg#*=}" ;;
    --publish_for=*) publish_for="${arg#*=}" ;;
    *) echo "usage: $0 [--tcp=N] [--wss=N] [--hold=S] [--publishers=N] [--publish_for=S]" >&2; exit 2 ;;
  esac
done

OUTPUT_BASE="${BENCH_OUTPUT_BASE:-$HOME/.cache/bazel-bench}"
BAZEL=(bazel --output_base="$OUTPUT_BASE")
"${BAZEL[@]}" build -c opt --jobs="${BENCH_JOBS:-2}" --symlink_prefix=/ //tools:hublink \
  //bench:paho_fleet >&2
BIN="$("${BAZEL[@]}" info -c opt bazel-bin 2>/dev/null)"
HUBLINK="$BIN/tools/hublink"
PAHO="$BIN/bench/paho_fleet"

TMP="$(mktemp -d /tmp/hublink-fleet-bench.XXXXXX)"
broker_pid=""
cleanup() {
  if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# Both the broker and the clients (which raise their own soft limit) get the hard limit.
ulimit -n "$(ulimit -Hn)"
echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r), open-file limit $(ulimit -n)"
echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Clients: hublink $(git rev-parse --short HEAD 2>/dev/null || echo '?'), Paho C $(dpkg-query -W -f='${Version}' libpaho-mqtt1.3 2>/dev/null || echo '?'); broker: $(mosquitto -h 2>/dev/null | head -1 || true)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tcp_port="$(free_port)" wss_port="$(free_port)"

# A throwaway CA and a server certificate for 127.0.0.1.
(
  cd "$TMP"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=fleet-bench-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext \
    -out server.crt 2>/dev/null
)
# As root, mosquitto otherwise drops to the `mosquitto` user, who cannot read $TMP.
cat >"$TMP/mosquitto.conf" <<EOF
$( ((EUID == 0)) && echo "user root")
persistence false
per_listener_settings false
allow_anonymous true
max_connections -1
max_keepalive 65535
log_dest file $TMP/mosquitto.log
log_type error
log_type warning
listener $tcp_port 127.0.0.1
listener $wss_port 127.0.0.1
protocol websockets
certfile $TMP/server.crt
keyfile $TMP/server.key
EOF
mosquitto -c "$TMP/mosquitto.conf" &
broker_pid=$!
up=0
for ((i = 0; i < 100; i++)); do
  kill -0 "$broker_pid" 2>/dev/null || break
  if (exec 3<>"/dev/tcp/127.0.0.1/$tcp_port") 2>/dev/null; then up=1; break; fi
  sleep 0.05
done
if ((!up)); then
  echo "bench: mosquitto did not start; its log:" >&2
  cat "$TMP/mosquitto.log" >&2 2>/dev/null || true
  exit 1
fi

results="$TMP/results.jsonl"
run() {  # run LABEL TRANSPORT COMMAND...
  local label="$1" transport="$2"
  shift 2
  local line
  line="$("$@" 2>"$TMP/last.err" | tr -d '\n')" || true
  if [[ -z "$line" ]]; then
    echo "bench: $label $transport produced no summary; stderr:" >&2
    tail -5 "$TMP/last.err" >&2
    line='{}'
  fi
  printf '{"label": "%s", "transport": "%s", "run": %s}\n' "$label" "$transport" "$line" >>"$results"
  sed -n '/open-file limit/p' "$TMP/last.err" >&2
  sleep 2  # let the broker finish closing the previous fleet's sockets
}

hublink_idle() {  # N TRANSPORT
  local n="$1" transport="$2" port="$tcp_port" extra=()
  if [[ "$transport" == wss ]]; then port="$wss_port"; extra=(--ca_file="$TMP/ca.crt"); fi
  run hublink "$transport" timeout $((hold + 300)) "$HUBLINK" fleet --host=127.0.0.1 --port="$port" \
    --transport="$transport" "${extra[@]}" --clients="$n" --threads=1 --keep_alive=60 \
    --duration="${hold}s" --connect_timeout=120s --client_id='hublink-fleet-{i}' --json
}
paho_idle() {  # N TRANSPORT
  local n="$1" transport="$2" port="$tcp_port"
  [[ "$transport" == wss ]] && port="$wss_port"
  run paho "$transport" timeout $((hold + 300)) "$PAHO" --host=127.0.0.1 --port="$port" \
    --transport="$transport" --ca_file="$TMP/ca.crt" --clients="$n" --hold="$hold"
}

echo "Idle: $tcp_clients tcp and $wss_clients wss connections held ${hold} s; publish: $publishers clients, QoS 1, 1/s, ${publish_for} s" >&2
if ((tcp_clients > 0)); then
  hublink_idle "$tcp_clients" tcp
  paho_idle "$tcp_clients" tcp
fi
if ((wss_clients > 0)); then
  hublink_idle "$wss_clients" wss
  paho_idle "$wss_clients" wss
fi
if ((publishers > 0)); then
  # The same load from both: one process, keep-alive 60 s, 1,000 connects per second (seeded
  # jitter), each client's first publish at a seeded phase within its first second, then one a
  # second; `publish_for` seconds counted once every client is up.
  run hublink-publish tcp timeout $((publish_for + 300)) "$HUBLINK" fleet --host=127.0.0.1 \
    --port="$tcp_port" --clients="$publishers" --threads=1 --keep_alive=60 --connect_rate=1000 \
    --interval=1s --qos=1 --size=64 --duration="${publish_for}s" --client_id='hublink-pub-{i}' --json
  run paho-publish tcp timeout $((publish_for + 300)) "$PAHO" --host=127.0.0.1 \
    --port="$tcp_port" --transport=tcp --clients="$publishers" --connect_rate=1000 \
    --interval=1s --qos=1 --size=64 --hold="$publish_for" --client_id='paho-pub-{i}'
fi
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$results" "$hold" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
hold = float(sys.argv[2])
if any(not row["label"].endswith("-publish") for row in rows):
    print()
    print("| library | transport | connections held | RSS per connection | connections per GB of RSS | connect rate | CPU per connection per idle minute |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
for row in rows:
    r = row["run"]
    if row["label"].endswith("-publish") or not r:
        continue
    n = r.get("connected", 0)
    per = r.get("rss_per_connection_kib", 0)
    idle = r.get("cpu_hold_s", r.get("cpu_idle_s", 0))
    per_min = idle / n / (hold / 60) * 1e6 if n else 0
    print(f"| {row['label']} | {row['transport']} | {n} of {r.get('clients')} | {per:.1f} KiB | "
          f"{(1048576 / per if per > 0 else 0):,.0f} | {r.get('connect_rate_per_s', 0):,.0f}/s | "
          f"{per_min:.1f} µs |")
publish = {row["label"]: row["run"] for row in rows if row["label"].endswith("-publish")}
def pub_row(name, r):
    ack = r.get("publish_ack", {})
    rss = r.get("rss_per_connection_kib", 0)
    return (f"| {name} | {r.get('connected', 0)} of {r.get('clients', 0)} | "
            f"{r.get('messages_per_s', 0):,.0f} | {ack.get('p50_ms', 0):.2f} ms | "
            f"{ack.get('p99_ms', 0):.2f} ms | {r.get('cpu_us_per_message', 0):.1f} µs | "
            f"{rss:.1f} KiB | {r.get('messages_acked', 0):,} of {r.get('messages_sent', 0):,} |")
if publish:
    print()
    print("| publish load, tcp, QoS 1, 1/s | clients | msgs/s | publish to PUBACK p50 | p99 | "
          "CPU per message | RSS per connection | acknowledged |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, name in (("hublink-publish", "hublink"), ("paho-publish", "Paho")):
        if publish.get(label):
            print(pub_row(name, publish[label]))
    h, p = publish.get("hublink-publish") or {}, publish.get("paho-publish") or {}
    def ratio(key, sub=None):
        a = (h.get(key, {}) or {}).get(sub, 0) if sub else h.get(key, 0)
        b = (p.get(key, {}) or {}).get(sub, 0) if sub else p.get(key, 0)
        return f"{b / a:.2f}x" if a and b else "n/a"
    if h and p:
        print(f"| Paho / hublink | | | {ratio('publish_ack', 'p50_ms')} | "
              f"{ratio('publish_ack', 'p99_ms')} | {ratio('cpu_us_per_message')} | "
              f"{ratio('rss_per_connection_kib')} | |")
    if p.get("messages_sent"):
        print()
        print(f"Paho's application timer thread (paces the publishes, runs MQTTAsync_sendMessage): "
              f"{p.get('cpu_timer_thread_s', 0):.2f} s CPU over the whole run, "
              f"{p.get('cpu_timer_thread_s', 0) * 1e6 / p['messages_sent']:.1f} µs per message sent.")
EOF
