#!/usr/bin/env bash
# Runs one of the Tencent service samples against the local hub (tools/local_hub), so that
# `bazel run //examples:shadow_sample` (ota_sample, data_template_sample, gateway_sample) needs no
# cloud account: starts the hub unless it runs already, registers the sample's devices on first
# use, runs the sample over WSS with the hub's CA, plays the cloud console's part (a desired state,
# a firmware push, a control message) once the sample waits for it, and stops the hub if it started
# it. With --device_info among the arguments it runs the sample alone, against whatever hub the
# flags name (the real IoT Hub by default).
#   args: SAMPLE BINARY LOCAL_HUB_SH HUB_PLUGIN [DATA_TEMPLATE_JSON] -- [sample flags]
# State lives in LOCAL_HUB_DIR (default: <repo>/.local_hub, as for tools/main.sh); the hub's ports
# come from LOCAL_HUB_*_PORT (defaults in tools/local_hub/README.md).
set -euo pipefail
sample="$1" binary="$(realpath "$2")" hub_script="$(realpath "$3")" plugin="$(realpath "$4")"
shift 4
template=""
if [[ "${1:-}" != "--" && $# -gt 0 ]]; then
  template="$(realpath "$1")"
  shift
fi
[[ "${1:-}" == "--" ]] && shift
for arg in "$@"; do
  if [[ "$arg" == --device_info=* || "$arg" == --device_info ]]; then
    exec "$binary" ${template:+--template="$template"} "$@"
  fi
done

hub=("$hub_script" --plugin "$plugin")
dir="${LOCAL_HUB_DIR:-}"
if [[ -z "$dir" ]]; then
  [[ -n "${BUILD_WORKSPACE_DIRECTORY:-}" ]] || {
    echo "$sample: run it with bazel run, or set LOCAL_HUB_DIR" >&2
    exit 2
  }
  dir="$BUILD_WORKSPACE_DIRECTORY/.local_hub"
fi
export LOCAL_HUB_DIR="$dir"

started_hub=false started_https=false sample_pid=""
cleanup() {
  if [[ -n "$sample_pid" ]]; then kill "$sample_pid" 2>/dev/null || true; fi
  if $started_https; then "${hub[@]}" https-stop >/dev/null || true; fi
  if $started_hub; then "${hub[@]}" stop >/dev/null || true; fi
}
trap cleanup EXIT
if ! "${hub[@]}" status >/dev/null 2>&1; then
  echo "== $sample: starting the local hub (state in $dir)"
  "${hub[@]}" start >/dev/null
  started_hub=true
fi
# shellcheck disable=SC1091
source "$dir/ports.env"

# register PID DN: the device's device_info.json, registered on first use.
register() {
  local info="$dir/devices/$1_$2/device_info.json"
  [[ -f "$info" ]] || "${hub[@]}" register-key "$1" "$2" >/dev/null
  echo "$info"
}
# wait_for PATTERN: the sample's log has a line matching it (up to 30 s, or until the sample ends).
log="$dir/$sample.log"
wait_for() {
  local i
  for ((i = 0; i < 300; i++)); do
    grep -q -- "$1" "$log" && return 0
    kill -0 "$sample_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

product=DEMO000001
flags=(--transport=wss --host=localhost --port="$HUB_WSS_PORT" --ca_file="$dir/tls/ca.crt")
case "$sample" in
  shadow_sample)
    device=dev01
    flags+=(--device_info="$(register "$product" "$device")" --expect_deltas=1)
    ;;
  ota_sample)
    device=ota01
    flags+=(--device_info="$(register "$product" "$device")" --download_dir="$dir/ota_sample")
    mkdir -p "$dir/ota_sample"
    # The firmware server (port LOCAL_HUB_HTTPS_PORT, default 18444); left running if it was.
    https_out="$("${hub[@]}" https-start)"
    [[ "$https_out" == *"already running"* ]] || started_https=true
    # The next version after the one the sample keeps in version.txt (1.0.0 on the first run).
    current="$(cat "$dir/ota_sample/version.txt" 2>/dev/null || echo 1.0.0)"
    next="$(awk -F. -v OFS=. '{ $NF = $NF + 1; print }' <<<"$current")"
    ;;
  data_template_sample)
    device=light01
    flags+=(--device_info="$(register "$product" "$device")" --template="$template"
      --expect_controls=1)
    # A control sent while the lamp is offline: the hub holds it, the sample's get_status gets it.
    echo "== console: control color=2 to $product/$device while it is offline"
    "${hub[@]}" console-pub "\$thing/down/property/$product/$device" \
      '{"method":"control","clientToken":"console-0","params":{"color":2}}' >/dev/null
    ;;
  gateway_sample)
    device=gateway01
    flags+=(--device_info="$(register "$product" "$device")"
      --subdev_info="$(register SUBDEMO001 sub01)" --subdev_info="$(register SUBDEMO001 sub02)")
    ;;
  *)
    echo "local_hub_sample.sh: unknown sample $sample" >&2
    exit 2
    ;;
esac

: >"$log"
echo "== $sample: $product/$device on the local hub over wss (log: $log)"
"$binary" "${flags[@]}" "$@" > >(tee -a "$log") 2> >(tee -a "$log" >&2) &
sample_pid=$!

# The console's part, once the sample waits for it.
case "$sample" in
  shadow_sample)
    if wait_for "shadow update success"; then
      echo "== console: desired updateCount 100 in $product/$device's shadow"
      "${hub[@]}" shadow-desire "$product" "$device" '{"updateCount":100}' >/dev/null
    fi
    ;;
  ota_sample)
    if wait_for "waiting for update_firmware"; then
      firmware="$dir/ota_sample/new-firmware.src"
      head -c 300000 /dev/urandom >"$firmware"
      echo "== console: firmware $next (300000 bytes) pushed to $product/$device"
      "${hub[@]}" ota-push "$product" "$device" "$firmware" "$next" >/dev/null
    fi
    ;;
  data_template_sample)
    if wait_for "waiting for control"; then
      echo "== console: control power_switch=1, brightness=80 to $product/$device"
      "${hub[@]}" console-pub "\$thing/down/property/$product/$device" \
        '{"method":"control","clientToken":"console-1","params":{"power_switch":1,"brightness":80}}' >/dev/null
    fi
    ;;
esac

status=0
wait "$sample_pid" || status=$?
sample_pid=""
if ((status == 0)); then
  echo "== $sample done"
else
  echo "== $sample FAILED (exit $status); log: $log" >&2
fi
exit "$status"
