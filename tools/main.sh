#!/usr/bin/env bash
# The main job, with no cloud account: start the local IoT hub (a real mosquitto that checks credentials
# like Tencent IoT Hub), register a demo key device, run the C SDK's sample flow (examples/mqtt_sample)
# against it over WebSocket over TLS with the hub's CA, send it one downlink the way the cloud console
# would (hublink pub as the console account), and stop the hub. Exit 0 when the sample published and
# received.
#
# Options: --transport=wss|ws (default wss), --count=N (publishes, default 5). The state (CA, registry,
# device files) lives in .local_hub/ and is reused by the next run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/bootstrap.sh  # idempotent: only installs what is missing

transport=wss
count=5
for arg in "$@"; do
  case "$arg" in
    --transport=*) transport="${arg#*=}" ;;
    --count=*) count="${arg#*=}" ;;
    *) echo "main.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

bazel build //examples:mqtt_sample //tools:hublink //tools/local_hub:hub_plugin.so
bin="$(bazel info bazel-bin)"
hub=(tools/local_hub/local_hub.sh --plugin "$bin/tools/local_hub/hub_plugin.so")
export LOCAL_HUB_DIR="${LOCAL_HUB_DIR:-$PWD/.local_hub}"

started_hub=false
if ! "${hub[@]}" status >/dev/null 2>&1; then
  "${hub[@]}" start
  started_hub=true
fi
sample_pid=""
cleanup() {
  [[ -n "$sample_pid" ]] && kill "$sample_pid" 2>/dev/null || true
  if $started_hub; then "${hub[@]}" stop || true; fi
}
trap cleanup EXIT

product=DEMO000001
device=dev01
device_info="$LOCAL_HUB_DIR/devices/${product}_${device}/device_info.json"
[[ -f "$device_info" ]] || "${hub[@]}" register-key "$product" "$device"
# shellcheck disable=SC1091
source "$LOCAL_HUB_DIR/ports.env"

case "$transport" in
  wss) target=(--transport=wss --host=localhost --port="$HUB_WSS_PORT" --ca_file="$LOCAL_HUB_DIR/tls/ca.crt") ;;
  ws) target=(--transport=ws --host=127.0.0.1 --port="$HUB_WS_PORT") ;;
  *) echo "main.sh: --transport must be wss or ws" >&2; exit 2 ;;
esac

log="$LOCAL_HUB_DIR/mqtt_sample.log"
: >"$log"
echo "== mqtt_sample: $product/$device over $transport, $count publishes, expecting one downlink"
"$bin/examples/mqtt_sample" --device_info="$device_info" "${target[@]}" --count="$count" \
  --expect_messages=1 > >(tee -a "$log") 2> >(tee -a "$log" >&2) &
sample_pid=$!

# The console sends its downlink once the sample has subscribed (bounded wait).
for _ in $(seq 1 300); do
  grep -q "subscribe success, topic: $product/$device/data" "$log" && break
  kill -0 "$sample_pid" 2>/dev/null || break
  sleep 0.1
done
if grep -q "subscribe success, topic: $product/$device/data" "$log"; then
  echo "== console: downlink to $product/$device/data"
  "$bin/tools/hublink" pub --host=127.0.0.1 --port="$HUB_MQTT_PORT" --transport=tcp \
    --username=console --password="$(cat "$LOCAL_HUB_DIR/console.password")" \
    --topic="$product/$device/data" --message="mqtt over websocket cloud publish data" --qos=1
fi

status=0
wait "$sample_pid" || status=$?
sample_pid=""
if ((status == 0)); then
  echo "== main job done: the sample published $count messages and received the downlink"
else
  echo "== main job FAILED (mqtt_sample exit $status); log: $log" >&2
fi
exit "$status"
