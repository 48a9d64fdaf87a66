#!/usr/bin/env bash
# The local hub end to end: local_hub.sh starts a real mosquitto with hub_plugin.so; independent clients
# (mosquitto_pub/mosquitto_sub over TCP, Python paho over TCP, WS and WSS) connect with credentials this
# script computes with the openssl CLI, the way the IoT Hub documents them.
# usage: local_hub_test.sh LOCAL_HUB_SH HUB_PLUGIN_SO HUB_CLIENT_PY
# `check && pass || fail` is meant throughout: pass and fail always succeed.
# shellcheck disable=SC2015
set -uo pipefail

abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
LOCAL_HUB="$(abs "${1:?local_hub.sh}")"
PLUGIN="$(abs "${2:?hub_plugin.so}")"
CLIENT="$(abs "${3:?hub_client.py}")"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"

passed=0
failed=0
pass() {
  echo "PASS: $1"
  passed=$((passed + 1))
}
fail() {
  echo "FAIL: $1" >&2
  failed=$((failed + 1))
}
finish() {
  echo "$passed passed, $failed failed"
  ((failed == 0 && passed > 0))
  exit $?
}

PY=""
for candidate in /usr/bin/python3 python3; do
  if "$candidate" -c 'import paho.mqtt.client' 2>/dev/null; then
    PY="$candidate"
    break
  fi
done
if [[ -z "$PY" ]]; then
  fail "python3 with paho-mqtt (Debian python3-paho-mqtt; tools/bootstrap.sh installs it)"
  finish
fi
for tool in mosquitto_pub mosquitto_sub openssl; do
  command -v "$tool" >/dev/null || { fail "$tool on PATH"; finish; }
done

# Three free ports. The websockets listeners bind every interface, so probe the wildcard address.
read -r MQTT_PORT WS_PORT WSS_PORT < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("", 0))
print(*[s.getsockname()[1] for s in socks])
')
export LOCAL_HUB_DIR="$TMP/hub" LOCAL_HUB_PLUGIN="$PLUGIN"
export LOCAL_HUB_MQTT_PORT="$MQTT_PORT" LOCAL_HUB_WS_PORT="$WS_PORT" LOCAL_HUB_WSS_PORT="$WSS_PORT"
HUB_LOG="$LOCAL_HUB_DIR/mosquitto.log"
CA="$LOCAL_HUB_DIR/tls/ca.crt"
trap '"$LOCAL_HUB" stop >/dev/null 2>&1' EXIT

# --- credentials, computed independently of the plugin --------------------------------------------------
NEVER=92233720368547758
connid() { openssl rand -hex 3 | cut -c1-5; }
# hex HMAC of $1 keyed with the base64 secret $2, digest $3 (sha1 or sha256).
hmac_hex() {
  local key
  key="$(printf '%s' "$2" | openssl base64 -d -A | od -An -tx1 -v | tr -d ' \n')"
  printf '%s' "$1" | openssl dgst "-$3" -mac HMAC -macopt "hexkey:$key" | awk '{print $NF}'
}
rsa_hex() { printf '%s' "$1" | openssl dgst -sha256 -sign "$2" | od -An -tx1 -v | tr -d ' \n'; }
secret_of() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["key_deviceinfo"]["deviceSecret"])' "$1"; }
log_has() { grep -qF -- "$1" "$HUB_LOG"; }
wait_for_file() {
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -f "$1" ]] && return 0
    sleep 0.05
  done
  return 1
}

client() { "$PY" "$CLIENT" --ca "$CA" "$@"; }
# client_as CLIENT_ID USERNAME PASSWORD TRANSPORT ACTION...
client_as() {
  local id="$1" user="$2" password="$3" transport="$4"
  shift 4
  local port="$MQTT_PORT"
  [[ "$transport" == ws ]] && port="$WS_PORT"
  [[ "$transport" == wss ]] && port="$WSS_PORT"
  client --transport "$transport" --port "$port" --client-id "$id" --username "$user" --password "$password" "$@"
}
# mosquitto_pub as CLIENT_ID USERNAME PASSWORD; output in $TMP/pub.out.
pub_tcp() {
  mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -i "$1" -u "$2" -P "$3" -t "$4" -m "hello" -q 1 >"$TMP/pub.out" 2>&1
}

# --- start ----------------------------------------------------------------------------------------------
if "$LOCAL_HUB" start >"$TMP/start.out" 2>&1; then
  pass "start"
else
  fail "start: $(cat "$TMP/start.out")"
  finish
fi
grep -q "ALL interfaces" "$TMP/start.out" && grep -qF "$CA" "$TMP/start.out" && grep -q "127.0.0.1:$MQTT_PORT" "$TMP/start.out" &&
  pass "start prints ports, the CA file and the all-interfaces warning" || fail "start output: $(cat "$TMP/start.out")"
opened="$(grep -oE "listen socket on port [0-9]+" "$HUB_LOG" | awk '{print $NF}' | sort -n | tr '\n' ' ')"
expected="$(printf '%s\n' "$MQTT_PORT" "$WS_PORT" "$WSS_PORT" | sort -n | tr '\n' ' ')"
[[ "$opened" == "$expected" ]] && pass "the hub listens on its three ports only" ||
  fail "listen sockets on ports '$opened', expected '$expected'"
"$LOCAL_HUB" status >/dev/null && pass "status: running" || fail "status while running"
"$LOCAL_HUB" start >"$TMP/start2.out" 2>&1
grep -q "already running" "$TMP/start2.out" && pass "second start: already running" || fail "second start"
openssl verify -CAfile "$CA" "$LOCAL_HUB_DIR/tls/server.crt" >/dev/null &&
  openssl x509 -in "$LOCAL_HUB_DIR/tls/server.crt" -noout -ext subjectAltName | grep -q "IP Address:127.0.0.1" &&
  pass "server certificate signed by the local CA for 127.0.0.1" || fail "server certificate"

# --- devices (registered while the hub runs: the plugin re-reads the registry) ----------------------------
P1=HUBTEST001
P2=HUBTEST002
"$LOCAL_HUB" register-key "$P1" dev01 >/dev/null && "$LOCAL_HUB" register-key "$P1" dev02 >/dev/null &&
  "$LOCAL_HUB" register-cert "$P2" cdev01 >/dev/null && pass "register devices" || fail "register devices"
"$LOCAL_HUB" register-key "$P1" dev01 >/dev/null 2>&1 && fail "registering a device twice" ||
  pass "registering a device twice is refused"
"$LOCAL_HUB" register-key "bad/pid" x >/dev/null 2>&1 && fail "a bad productId" || pass "a bad productId is refused"
DEV1_INFO="$LOCAL_HUB_DIR/devices/${P1}_dev01/device_info.json"
CDEV_DIR="$LOCAL_HUB_DIR/devices/${P2}_cdev01"
SECRET1="$(secret_of "$DEV1_INFO")"
SECRET2="$(secret_of "$LOCAL_HUB_DIR/devices/${P1}_dev02/device_info.json")"
"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["auth_mode"] == "CERT"; assert d["cert_deviceinfo"]["devCertFile"] == "cdev01_cert.crt"' \
  "$CDEV_DIR/device_info.json" && [[ -f "$CDEV_DIR/certs/cdev01_cert.crt" && -f "$CDEV_DIR/certs/cdev01_private.key" ]] &&
  openssl verify -CAfile "$CA" "$CDEV_DIR/certs/cdev01_cert.crt" >/dev/null &&
  pass "CERT device_info.json and certs/ in the C SDK layout" || fail "CERT device files"

ID1="${P1}dev01"
U1="$ID1;12010126;$(connid);$NEVER"
PW1="$(hmac_hex "$U1" "$SECRET1" sha1);hmacsha1"
U1b="$ID1;21010406;$(connid);$(($(date +%s) + 600))"
PW1b="$(hmac_hex "$U1b" "$SECRET1" sha256);hmacsha256"
CID="${P2}cdev01"
UC="$CID;21010406;$(connid);$(($(date +%s) + 600))"
PWC="$(rsa_hex "$UC" "$CDEV_DIR/certs/cdev01_private.key");rsa-sha256"

# --- accepted -------------------------------------------------------------------------------------------
pub_tcp "$ID1" "$U1" "$PW1" "$P1/dev01/data" && pass "KEY device, hmacsha1, expiry never: mosquitto_pub over TCP" ||
  fail "KEY device over TCP: $(cat "$TMP/pub.out")"
client_as "$ID1" "$U1b" "$PW1b" tcp connect >/dev/null && pass "KEY device, hmacsha256, expiry now+600 over TCP" ||
  fail "hmacsha256"
client_as "$ID1" "$U1" "$PW1" ws pubsub "$P1/dev01/data" >/dev/null && pass "KEY device over WS: publish and receive" ||
  fail "KEY device over WS"
client_as "$ID1" "$U1" "$PW1" wss pubsub "$P1/dev01/data" >/dev/null &&
  pass "KEY device over WSS (local CA): publish and receive" || fail "KEY device over WSS"
client_as "$CID" "$UC" "$PWC" wss pubsub "$P2/cdev01/data" >/dev/null &&
  pass "CERT device, rsa-sha256 over WSS: publish and receive" || fail "CERT device over WSS"
"$PY" "$CLIENT" --transport wss --port "$WSS_PORT" --client-id "$ID1" --username "$U1" --password "$PW1" \
  --timeout 5 connect >/dev/null 2>&1 && fail "WSS without the local CA must not verify" ||
  pass "WSS without the local CA fails verification"

# --- refused ----------------------------------------------------------------------------------------------
expect_refused() {  # NAME LOG_TEXT CLIENT_ID USERNAME PASSWORD
  local name="$1" text="$2"
  if pub_tcp "$3" "$4" "$5" "$P1/dev01/data"; then
    fail "$name: accepted"
  elif ! grep -q "not authori" "$TMP/pub.out"; then
    fail "$name: $(cat "$TMP/pub.out")"
  elif ! log_has "$text"; then
    fail "$name: no log line '$text'"
  else
    pass "$name"
  fi
}
WRONG="$(openssl rand -base64 16)"
expect_refused "wrong secret" "bad signature (hmacsha1) for device $P1/dev01" "$ID1" "$U1" \
  "$(hmac_hex "$U1" "$WRONG" sha1);hmacsha1"
expect_refused "another device's secret" "bad signature (hmacsha1) for device $P1/dev01" "$ID1" "$U1" \
  "$(hmac_hex "$U1" "$SECRET2" sha1);hmacsha1"
UX="${P1}nobody;12010126;$(connid);$NEVER"
expect_refused "unknown device" "unknown device" "${P1}nobody" "$UX" "$(hmac_hex "$UX" "$SECRET1" sha1);hmacsha1"
UE="$ID1;12010126;$(connid);$(($(date +%s) - 10))"
expect_refused "expired expiry" "signature expired" "$ID1" "$UE" "$(hmac_hex "$UE" "$SECRET1" sha1);hmacsha1"
for bad in "$ID1;12010126;$(connid)" "$ID1;12010126;abcd;$NEVER" "$ID1;12010126;ab-de;$NEVER" \
  "$ID1;12010126;$(connid);12x4" "$ID1;;$(connid);$NEVER" "$ID1;12010126;$(connid);$NEVER;extra"; do
  expect_refused "malformed username '$bad'" "malformed username" "$ID1" "$bad" "$(hmac_hex "$bad" "$SECRET1" sha1);hmacsha1"
done
U2="${P1}dev02;12010126;$(connid);$NEVER"
expect_refused "username's client id differs from the MQTT client id" "differs from the MQTT client id" "$ID1" \
  "$U2" "$(hmac_hex "$U2" "$SECRET2" sha1);hmacsha1"
expect_refused "CERT device with an HMAC password" "must sign with rsa-sha256" "$CID" "$UC" \
  "$(hmac_hex "$UC" "$SECRET1" sha1);hmacsha1"
expect_refused "CERT device signed by another key" "bad signature (rsa-sha256)" "$CID" "$UC" \
  "$(rsa_hex "$UC" "$LOCAL_HUB_DIR/tls/server.key");rsa-sha256"
expect_refused "malformed password" "malformed password" "$ID1" "$U1" "$(hmac_hex "$U1" "$SECRET1" sha1)"
expect_refused "wrong console password" "bad password for console account" "whoever" "console" "not-it"
client_as "$ID1" "$U1" "${PW1/;hmacsha1/;hmacsha256}" ws connect >/dev/null
[[ $? == 2 ]] && pass "wrong password over WS: CONNACK refused" || fail "wrong password over WS"
grep -qF -- "$SECRET1" "$HUB_LOG" && fail "a device secret appears in the hub log" || pass "no secret in the hub log"
grep -qF -- "$(cat "$LOCAL_HUB_DIR/console.password")" "$HUB_LOG" && fail "the console password appears in the log" ||
  pass "no console password in the hub log"

# --- ACL ----------------------------------------------------------------------------------------------------
for topic in "$P1/dev02/data" "$P1/dev02/control" "#" "$P1/+/data" "\$sys/operation/result/$P1/dev02" \
  "$P1/dev01/event"; do
  client_as "$ID1" "$U1" "$PW1" tcp subscribe "$topic" --expect-denied >/dev/null &&
    pass "subscribe to '$topic' denied" || fail "subscribe to '$topic' not denied"
done
for topic in "$P1/dev01/control" "$P1/dev01/data" "\$rrpc/rxd/$P1/dev01/+" "\$ota/update/$P1/dev01" \
  "\$shadow/operation/result/$P1/dev01" "\$broadcast/rxd/$P1/dev01"; do
  client_as "$ID1" "$U1" "$PW1" tcp subscribe "$topic" >/dev/null && pass "subscribe to '$topic' granted" ||
    fail "subscribe to '$topic' refused"
done
# A publish the ACL drops is still acknowledged in MQTT 3.1.1, so watch as the console: dev01 publishes to
# dev02's topics first, then to its own event topic; only the last may arrive.
CONSOLE_PW="$(cat "$LOCAL_HUB_DIR/console.password")"
rm -f "$TMP/ready"
client --port "$MQTT_PORT" --client-id watcher --username console --password "$CONSOLE_PW" recv --count 1 \
  --ready-file "$TMP/ready" --topic "$P1/dev02/data" --topic "$P1/dev02/control" --topic "$P1/dev01/event" \
  >"$TMP/watch.out" 2>&1 &
watcher=$!
wait_for_file "$TMP/ready"
client_as "$ID1" "$U1" "$PW1" tcp publish "$P1/dev02/data" forged "$P1/dev02/control" forged \
  "$P1/dev01/event" mine >/dev/null
wait "$watcher"
if grep -q "^message $P1/dev01/event mine$" "$TMP/watch.out" && ! grep -q forged "$TMP/watch.out"; then
  pass "publishes to another device's topics are dropped, its own event topic passes"
else
  fail "publish ACL: $(cat "$TMP/watch.out")"
fi
log_has "denied publish of '$P1/dev02/data' to device $P1/dev01" && pass "denied publish logged" ||
  fail "denied publish not logged"

# --- time service -------------------------------------------------------------------------------------------
for transport in tcp ws wss; do
  client_as "$ID1" "$U1" "$PW1" "$transport" time --pid "$P1" --dn dev01 >"$TMP/time.out" 2>&1 &&
    pass "\$sys time request answered over $transport: $(grep '^message' "$TMP/time.out" | cut -d' ' -f3)" ||
    fail "time over $transport: $(cat "$TMP/time.out")"
done
client_as "$CID" "$UC" "$PWC" wss time --pid "$P2" --dn cdev01 >/dev/null 2>&1 &&
  pass "\$sys time request answered for the CERT device" || fail "time for the CERT device"

# --- console downlink -------------------------------------------------------------------------------------------
rm -f "$TMP/ready"
client_as "$ID1" "$U1" "$PW1" wss recv --topic "$P1/dev01/control" --ready-file "$TMP/ready" >"$TMP/down.out" 2>&1 &
device=$!
wait_for_file "$TMP/ready"
"$LOCAL_HUB" console-pub "$P1/dev01/control" '{"action":"downlink","n":1}' >/dev/null
if wait "$device" && grep -qF "message $P1/dev01/control {\"action\":\"downlink\",\"n\":1}" "$TMP/down.out"; then
  pass "console-pub reaches the device over WSS"
else
  fail "console downlink over WSS: $(cat "$TMP/down.out")"
fi
# mosquitto_sub as the device; it gives no sign of having subscribed, so the console repeats until it exits.
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -i "$ID1" -u "$U1" -P "$PW1" -t "$P1/dev01/data" -C 1 -W 10 \
  >"$TMP/sub.out" 2>&1 &
device=$!
for ((i = 0; i < 50; i++)); do
  [[ -s "$TMP/sub.out" ]] && break
  "$LOCAL_HUB" console-pub "$P1/dev01/data" "downlink-$i" >/dev/null
  sleep 0.1
done
wait "$device" && grep -q "^downlink-" "$TMP/sub.out" && pass "console-pub reaches mosquitto_sub over TCP" ||
  fail "console downlink over TCP: $(cat "$TMP/sub.out")"

# --- stop ----------------------------------------------------------------------------------------------------
hub_pid="$(cat "$LOCAL_HUB_DIR/mosquitto.pid")"
"$LOCAL_HUB" stop >/dev/null && [[ ! -e "/proc/$hub_pid" ]] && pass "stop ends the recorded PID" || fail "stop"
"$LOCAL_HUB" status >/dev/null
[[ $? == 3 ]] && pass "status after stop: not running (exit 3)" || fail "status after stop"
"$LOCAL_HUB" stop >"$TMP/stop2.out" 2>&1
grep -q "not running" "$TMP/stop2.out" && pass "stop when stopped" || fail "stop when stopped"

finish
