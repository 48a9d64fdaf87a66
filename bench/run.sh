#!/bin/bash
# One command for the whole hublink / Paho C benchmark: builds the binaries (-c opt, in its own
# Bazel output base), starts one mosquitto with TCP, WS, TLS and WSS listeners on 127.0.0.1, runs
# every row, prints a Markdown table, and stops the broker.
#
#   bench/run.sh            # full run, under 5 minutes
#   bench/run.sh --quick    # smaller counts, about a minute
#   bench/run.sh --rows=latency,connect --reps=5
#   bench/run.sh --micro    # only the micro-benchmarks (WebSocket masking/framing, MQTT codec,
#                           # BoringSSL AEAD seal/open)
set -euo pipefail
cd "$(dirname "$0")/.."
OUTPUT_BASE="${BENCH_OUTPUT_BASE:-$HOME/.cache/bazel-bench}"
BAZEL=(bazel --output_base="$OUTPUT_BASE")
TARGETS=(//bench:driver //bench:hublink_bench //bench:paho_bench //bench:connect_probe
         //bench:nodelay_shim.so //bench:micro_benchmark)
TMP="$(mktemp -d /tmp/hublink-bench.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
# --symlink_prefix=/: no bazel-* links, so a shared checkout's links stay whoever's they were.
BUILD=("${BAZEL[@]}" build -c opt --jobs="${BENCH_JOBS:-2}" --symlink_prefix=/)
BIN="$("${BAZEL[@]}" info -c opt bazel-bin 2>/dev/null)/bench"
if [[ " $* " == *" --micro "* ]]; then
  "${BUILD[@]}" //bench:micro_benchmark >&2
  exec "$BIN/micro_benchmark" --benchmark_min_time=0.2
fi
# The shared row's client: the same hublink_bench with protobuf and Abseil as shared libraries. Both
# builds write the same path, so this one is built first and copied aside.
"${BUILD[@]}" --config=shared_deps //bench:hublink_bench >&2
cp "$BIN/hublink_bench" "$TMP/hublink_bench_shared"
"${BUILD[@]}" "${TARGETS[@]}" >&2

echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r)"
echo "Clients: hublink $(git rev-parse --short HEAD 2>/dev/null || echo '?'), Paho C $(dpkg-query -W -f='${Version}' libpaho-mqtt1.3 2>/dev/null || echo '?'); broker: $(mosquitto -h 2>/dev/null | head -1 || true)"
export TEST_TMPDIR="$TMP"
# CPU ticks (all, steal) from /proc/stat: on a shared VM the run competes with other work.
cpu_ticks() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $9}' /proc/stat; }
read -r total0 steal0 < <(cpu_ticks)
echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
"$BIN/driver" --hublink_bin="$BIN/hublink_bench" --hublink_shared_bin="$TMP/hublink_bench_shared" \
  --paho_bin="$BIN/paho_bench" \
  --probe_bin="$BIN/connect_probe" --shim="$BIN/nodelay_shim.so" "$@" || status=$?
if ((status == 2)); then exit 2; fi  # bad usage (an unknown row or transport): nothing was measured
read -r total1 steal1 < <(cpu_ticks)
echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg); CPU steal during the run: $(( (steal1 - steal0) * 100 / (total1 - total0 + 1) ))%"
echo
"$BIN/micro_benchmark" --benchmark_min_time=0.1 2>/dev/null | sed 's/^/    /' || true
exit $status
