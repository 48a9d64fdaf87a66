#!/bin/bash
# The soak (bench/README.md, "Soak"): hublink and Paho C side by side over tcp, ws, tls and wss,
# through one mosquitto behind the faultproxy, for a given time under a seeded storm of faults.
# Builds -c opt in its own Bazel output base (as bench/run.sh), prints the table, exits 0 when
# hublink lost nothing and always came back.
#
#   bench/soak.sh                 # 10 minutes
#   bench/soak.sh --minutes=2
#   bench/soak.sh --seconds=70 --keep_alive=2 --transports=tcp,wss --seed=7
set -euo pipefail
cd "$(dirname "$0")/.."
OUTPUT_BASE="${BENCH_OUTPUT_BASE:-$HOME/.cache/bazel-bench}"
BAZEL=(bazel --output_base="$OUTPUT_BASE")
TARGETS=(//bench:soak //bench:soak_hublink //bench:soak_paho)
# --symlink_prefix=/: no bazel-* links, so a shared checkout's links stay whoever's they were.
"${BAZEL[@]}" build -c opt --jobs="${BENCH_JOBS:-2}" --symlink_prefix=/ "${TARGETS[@]}" >&2
BIN="$("${BAZEL[@]}" info -c opt bazel-bin 2>/dev/null)/bench"

echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r)"
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); clients: hublink $(git rev-parse --short HEAD 2>/dev/null || echo '?'), Paho C $(dpkg-query -W -f='${Version}' libpaho-mqtt1.3 2>/dev/null || echo '?'); broker: $(mosquitto -h 2>/dev/null | head -1 || true)"
echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
TMP="$(mktemp -d /tmp/hublink-soak.XXXXXX)"
# Kept when SOAK_KEEP=1 (the event files and client logs are under it).
if [[ "${SOAK_KEEP:-0}" != 1 ]]; then trap 'rm -rf "$TMP"' EXIT; fi
export TEST_TMPDIR="$TMP"
status=0
"$BIN/soak" --hublink_bin="$BIN/soak_hublink" --paho_bin="$BIN/soak_paho" "$@" || status=$?
echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
