#!/usr/bin/env bash
# A Tencent service sample end to end, as `bazel run //examples:<sample>` runs it, against a local
# hub of its own (state in $TEST_TMPDIR, free ports): the run exits 0 and prints each expected line.
#   args: local_hub_sample.sh SAMPLE BINARY LOCAL_HUB_SH HUB_PLUGIN [TEMPLATE] -- EXPECTED_LINE...
set -euo pipefail
wrapper="$1"
shift
wrapper_args=()
while (($#)) && [[ "$1" != "--" ]]; do
  wrapper_args+=("$1")
  shift
done
shift  # --
# Below the ephemeral range, so that no outgoing connection takes the port before the hub binds it.
free_port() { /usr/bin/python3 "$(dirname "$0")/../tests/free_port.py"; }
export LOCAL_HUB_DIR="${TEST_TMPDIR:-$(mktemp -d)}/hub"
export LOCAL_HUB_MQTT_PORT LOCAL_HUB_WS_PORT LOCAL_HUB_WSS_PORT
LOCAL_HUB_MQTT_PORT=$(free_port) LOCAL_HUB_WS_PORT=$(free_port) LOCAL_HUB_WSS_PORT=$(free_port)
export LOCAL_HUB_HTTPS_PORT=0
rm -rf "$LOCAL_HUB_DIR"

status=0
output="$("$wrapper" "${wrapper_args[@]}" -- 2>&1)" || status=$?
echo "$output"
failures=0
if ((status != 0)); then
  echo "FAIL: ${wrapper_args[0]} exited $status"
  failures=1
fi
for expected in "$@"; do
  if grep -qF -- "$expected" <<<"$output"; then
    echo "PASS: printed: $expected"
  else
    echo "FAIL: expected a line with: $expected"
    failures=$((failures + 1))
  fi
done
if ((failures)); then
  for f in "$LOCAL_HUB_DIR"/*.log; do
    echo "--- $f"
    tail -n 30 "$f"
  done
  exit 1
fi
# The hub it started is stopped again.
if "$(dirname "$(realpath "${wrapper_args[2]}")")/local_hub.sh" status >/dev/null 2>&1; then
  echo "FAIL: the local hub still runs after the sample"
  exit 1
fi
