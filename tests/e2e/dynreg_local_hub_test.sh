#!/usr/bin/env bash
# Issue 16, dynamic registration end to end: the local hub's HTTPS endpoint (https_server.py) opens a
# product with `local_hub.sh register-product`; `hublink register` signs POST /device/register, verifies
# the hub's certificate, decrypts the reply and writes device_info.json; `hublink pub --device_info=` with
# that file then connects over WSS and publishes, and the console account receives the message.
# Refusals: a wrong product secret (signature), an unknown product, a second registration of one device,
# and an untrusted server certificate.
#   args: local_hub.sh hub_plugin.so hublink
set -euo pipefail
# shellcheck source=tests/e2e/local_hub_test_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/local_hub_test_lib.sh"
hub_script="$(realpath "$1")"
plugin="$(realpath "$2")"
hublink="$(realpath "$3")"

work="${TEST_TMPDIR:-$(mktemp -d)}/dynreg"
rm -rf "$work"
mkdir -p "$work"
start_local_hub "$hub_script" "$plugin" "$work/hub"
start_local_hub_https
ca="$work/hub/tls/ca.crt"

secret="$("${hub[@]}" register-product DYNPROD001 2>/dev/null)"
check "register-product prints a secret of 24 characters" test "${#secret}" -eq 24

# register NAME ARGS...: runs hublink register against the local hub; output in $work/NAME.log.
register() {
  local name="$1"
  shift
  local status=0
  "$hublink" register --host=localhost --port="$https_port" "$@" >"$work/$name.log" 2>&1 || status=$?
  echo "$status"
}

status="$(register ok --product_id=DYNPROD001 --product_secret="$secret" --device_name=dyn01 \
  --ca_file="$ca" --out="$work/dyn01.json" -v)"
check "register exits 0" test "$status" -eq 0
check "register says what it wrote" grep -q "registered KEY device DYNPROD001/dyn01" "$work/ok.log"
check "register went over tls and http" grep -q "http: POST /device/register" "$work/ok.log"
check "device_info.json is KEY with a secret" grep -q '"deviceSecret": "[A-Za-z0-9+/]*=*"' "$work/dyn01.json"
check "device_info.json is private" test "$(stat -c %a "$work/dyn01.json")" = 600
check "the hub registered the device" grep -q "^KEY DYNPROD001 dyn01 " "$work/hub/registry.txt"
check "the secrets agree" test "$(sed -n 's/.*"deviceSecret": "\(.*\)".*/\1/p' "$work/dyn01.json")" = \
  "$(awk '$1 == "KEY" && $3 == "dyn01" { print $4 }' "$work/hub/registry.txt")"

# The registered device connects with the written file and publishes; the console sees the message.
# As the console account. -d: mosquitto_sub logs the SUBACK (line-buffered through stdbuf), so the
# publish starts only once the subscription is in place.
stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -i dynreg-console -u console \
  -P "$(cat "$work/hub/console.password")" -v -t DYNPROD001/dyn01/data -C 1 -W 30 -d \
  >"$work/console.log" 2>&1 &
sub_pid=$!
for _ in $(seq 1 200); do
  grep -q "SUBACK" "$work/console.log" 2>/dev/null && break
  kill -0 "$sub_pid" 2>/dev/null || break
  sleep 0.1
done
check "the console subscribed" grep -q "SUBACK" "$work/console.log"
pub_status=0
"$hublink" pub --device_info="$work/dyn01.json" --transport=wss --host=localhost --port="$wss_port" \
  --ca_file="$ca" --topic=DYNPROD001/dyn01/data --message="hello from a registered device" --qos=1 \
  >"$work/pub.log" 2>&1 || pub_status=$?
check "hublink pub with the written device_info.json exits 0" test "$pub_status" -eq 0
sub_status=0
wait "$sub_pid" || sub_status=$?
check "the console received the message" grep -q "DYNPROD001/dyn01/data hello from a registered device" \
  "$work/console.log"

status="$(register again --product_id=DYNPROD001 --product_secret="$secret" --device_name=dyn01 \
  --ca_file="$ca" --out="$work/again.json")"
check "registering a device twice is refused" test "$status" -eq 1
check "  ... saying it exists" grep -q "DeviceAlreadyExists" "$work/again.log"

status="$(register badsecret --product_id=DYNPROD001 --product_secret="${secret}x" --device_name=dyn02 \
  --ca_file="$ca" --out="$work/dyn02.json")"
check "a wrong product secret is refused" test "$status" -eq 1
check "  ... as UNAUTHENTICATED: signature" grep -q "UNAUTHENTICATED.*SignatureFailure" "$work/badsecret.log"
check "  ... and writes no file" test ! -e "$work/dyn02.json"

status="$(register sha1 --product_id=DYNPROD001 --product_secret="$secret" --device_name=dyn03 \
  --ca_file="$ca" --algorithm=hmacsha1 --out="$work/dyn03.json")"
check "hmacsha1 registration exits 0" test "$status" -eq 0

status="$(register unknown --product_id=NOPROD0001 --product_secret="$secret" --device_name=dyn04 \
  --ca_file="$ca" --out="$work/dyn04.json")"
check "an unknown product is NOT_FOUND" grep -q "NOT_FOUND.*ProductNotExist" "$work/unknown.log"

status="$(register untrusted --product_id=DYNPROD001 --product_secret="$secret" --device_name=dyn05 \
  --out="$work/dyn05.json")"
check "an untrusted hub certificate is refused before sending anything" \
  grep -q "UNAUTHENTICATED.*certificate verify failed" "$work/untrusted.log"
check "  ... so the device was not registered" test -z "$(awk '$3 == "dyn05"' "$work/hub/registry.txt")"

status="$(register exists --product_id=DYNPROD001 --product_secret="$secret" --device_name=dyn06 \
  --ca_file="$ca" --out="$work/dyn01.json")"
check "an existing --out is not overwritten" test "$status" -eq 2

echo "$passes passed, $failures failed"
if ((failures > 0)); then
  for f in "$work"/*.log "$work/hub/https.log"; do
    echo "--- $f"
    sed 's/^/    /' "$f"
  done
fi
((failures == 0 && passes > 0))
