# Shared prelude of the local-hub shell tests (sourced, not run): free loopback ports, the local hub
# started on them and stopped on exit, and the PASS/FAIL bookkeeping each test reports with.
# Needs bash with `set -euo pipefail` in the sourcing script.

failures=0
passes=0
# check NAME CONDITION-COMMAND...: prints PASS or FAIL and counts it; never exits the test.
check() {
  local name="$1"
  shift
  if "$@"; then
    echo "PASS: $name"
    passes=$((passes + 1))
  else
    echo "FAIL: $name"
    failures=$((failures + 1))
  fi
}

# Below the ephemeral range, so that no outgoing connection takes the port before the hub binds it.
local_hub_test_lib_dir=$(dirname "${BASH_SOURCE[0]}")
free_port() { /usr/bin/python3 "$local_hub_test_lib_dir/../free_port.py"; }

# Background processes the test starts; the exit trap kills them before it stops the hub.
pids=()
local_hub_https_started=0

# start_local_hub HUB_SCRIPT PLUGIN DIR: starts the hub in DIR on free ports. Sets mqtt_port,
# ws_port, wss_port, hub_dir and the array hub (the local_hub.sh command line; run "${hub[@]}" SUBCOMMAND),
# and installs an EXIT trap that stops everything it started.
start_local_hub() {
  local hub_script="$1" plugin="$2"
  hub_dir="$3"
  mqtt_port=$(free_port) ws_port=$(free_port) wss_port=$(free_port)
  hub=("$hub_script" --dir "$hub_dir" --plugin "$plugin" --mqtt-port "$mqtt_port" --ws-port "$ws_port"
    --wss-port "$wss_port")
  "${hub[@]}" start >/dev/null
  trap stop_local_hub EXIT
}

# start_local_hub_https: the hub's HTTPS server (dynamic registration, firmware) on a free port, read
# back into https_port.
start_local_hub_https() {
  local_hub_https_started=1
  "${hub[@]}" https-start 0 >/dev/null
  # shellcheck disable=SC2034  # read by the sourcing test
  https_port="$(tr -d '[:space:]' <"$hub_dir/https.port")"
}

stop_local_hub() {
  local p
  for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
  if ((local_hub_https_started)); then
    "${hub[@]}" https-stop >/dev/null 2>&1 || true
  fi
  "${hub[@]}" stop >/dev/null 2>&1 || true
}
