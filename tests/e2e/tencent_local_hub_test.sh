#!/usr/bin/env bash
# End to end, as a user runs it: the local hub (real mosquitto + the IoT Hub plugin), the device sample and
# the hublink CLI. A KEY device over WS and WSS and a CERT device over WSS connect, sync time, publish, and
# receive a downlink sent with `hublink pub`; a wrong secret is refused with a clear message.
#   args: local_hub.sh hub_plugin.so mqtt_sample hublink
set -euo pipefail
# shellcheck source=tests/e2e/local_hub_test_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/local_hub_test_lib.sh"
hub_script="$(realpath "$1")"
plugin="$(realpath "$2")"
sample="$(realpath "$3")"
hublink="$(realpath "$4")"

work="${TEST_TMPDIR:-$(mktemp -d)}/e2e"
mkdir -p "$work"
start_local_hub "$hub_script" "$plugin" "$work/hub"

"${hub[@]}" register-key E2EPROD001 keydev >/dev/null
"${hub[@]}" register-cert E2EPROD001 certdev >/dev/null
console_password="$(cat "$work/hub/console.password")"

# run_device NAME DEVICE_INFO TARGET-FLAGS...: the sample publishes 2 messages and must get one downlink.
run_device() {
  local name="$1" device_info="$2"
  shift 2
  local log="$work/$name.log"
  "$sample" --device_info="$device_info" "$@" --count=2 --interval_ms=300 --expect_messages=1 \
    >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 200); do
    grep -q "subscribe success, topic: E2EPROD001/.*/data" "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  local topic
  topic="$(sed -n 's/.*subscribe success, topic: \(E2EPROD001\/[a-z]*\/data\).*/\1/p' "$log" | head -1)"
  local pub_status=0
  if [[ -n "$topic" ]]; then
    "$hublink" pub --host=127.0.0.1 --port="$mqtt_port" --username=console \
      --password="$console_password" --topic="$topic" --message="downlink for $name" --qos=1 \
      >"$work/$name.pub.log" 2>&1 || pub_status=$?
  fi
  local status=0
  wait "$pid" || status=$?
  check "$name: sample exits 0" test "$status" -eq 0
  check "$name: hublink pub as console exits 0" test "$pub_status" -eq 0
  check "$name: time synced" grep -q "sync ntp time success" "$log"
  check "$name: published" grep -q "publish success, count 1" "$log"
  check "$name: downlink received" grep -q "payload:downlink for $name" "$log"
  check "$name: transport stages logged" grep -q "mqtt: CONNACK accepted" "$log"
  if ((status != 0)); then sed 's/^/    /' "$log"; fi
}

key_info="$work/hub/devices/E2EPROD001_keydev/device_info.json"
cert_info="$work/hub/devices/E2EPROD001_certdev/device_info.json"
ca="$work/hub/tls/ca.crt"
run_device key_ws "$key_info" --transport=ws --host=127.0.0.1 --port="$ws_port"
run_device key_wss "$key_info" --transport=wss --host=localhost --port="$wss_port" --ca_file="$ca"
run_device cert_wss "$cert_info" --transport=wss --host=localhost --port="$wss_port" --ca_file="$ca"
check "key_ws: went over websocket" grep -q "websocket: upgrade 101" "$work/key_ws.log"
check "key_wss: went over tls" grep -q "tls: handshake done" "$work/key_wss.log"

# Without the hub's CA the default (system roots) must refuse the hub's self-signed certificate.
set +e
"$sample" --device_info="$key_info" --transport=wss --host=localhost --port="$wss_port" --count=1 \
  >"$work/noca.log" 2>&1
noca=$?
set -e
check "wss without the hub CA is refused" test "$noca" -ne 0
check "wss without the hub CA says why" grep -q "certificate verify failed" "$work/noca.log"

# A wrong secret: same device, another (valid base64) secret.
sed 's/"deviceSecret": *"[^"]*"/"deviceSecret": "d3Jvbmcgc2VjcmV0IQ=="/' "$key_info" >"$work/wrong.json"
set +e
"$hublink" pub --device_info="$work/wrong.json" --transport=ws --host=127.0.0.1 --port="$ws_port" \
  --topic=E2EPROD001/keydev/data --message=x --qos=1 >"$work/wrong.log" 2>&1
wrong=$?
set -e
check "wrong secret: hublink pub exits 1" test "$wrong" -eq 1
check "wrong secret: says the broker refused" grep -q "refused the connection: not authorized (CONNACK 5)" "$work/wrong.log"
check "wrong secret: secret not echoed" bash -c "! grep -q d3Jvbmcgc2VjcmV0IQ== '$work/wrong.log'"

# hublink sub as the device receives what the console publishes.
"$hublink" sub --device_info="$key_info" --transport=wss --host=localhost --port="$wss_port" \
  --ca_file="$ca" --topic=E2EPROD001/keydev/control --count=1 --timeout=20 >"$work/sub.out" 2>"$work/sub.err" &
sub_pid=$!
for _ in $(seq 1 100); do
  grep -q "hublink: connected" "$work/sub.err" && break
  sleep 0.1
done
for _ in $(seq 1 20); do
  kill -0 "$sub_pid" 2>/dev/null || break
  "$hublink" pub --host=127.0.0.1 --port="$mqtt_port" --username=console --password="$console_password" \
    --topic=E2EPROD001/keydev/control --message="turn on" --qos=1 >/dev/null 2>&1 || true
  sleep 0.3
done
sub_status=0
wait "$sub_pid" || sub_status=$?
check "hublink sub (device over wss) exits 0" test "$sub_status" -eq 0
check "hublink sub prints topic and payload" grep -qx "E2EPROD001/keydev/control turn on" "$work/sub.out"

echo "$passes passed, $failures failed"
((failures == 0))
