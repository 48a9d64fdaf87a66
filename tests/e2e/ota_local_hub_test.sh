#!/usr/bin/env bash
# Issue 16, OTA over MQTT end to end, as the C SDK's ota sample runs it: `hublink ota` reports version
# 1.0.0 on $ota/report, `local_hub.sh ota-push` serves a firmware file from the hub's HTTPS side and sends
# update_firmware on $ota/update as the console, hublink downloads and verifies it and reports
# downloading/done progress, which the console sees. (The cut-and-resume case: ota_resume_test.)
#   args: local_hub.sh hub_plugin.so hublink
set -euo pipefail
# shellcheck source=tests/e2e/local_hub_test_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/local_hub_test_lib.sh"
hub_script="$(realpath "$1")"
plugin="$(realpath "$2")"
hublink="$(realpath "$3")"

work="${TEST_TMPDIR:-$(mktemp -d)}/ota"
rm -rf "$work"
mkdir -p "$work/download"
start_local_hub "$hub_script" "$plugin" "$work/hub"
start_local_hub_https
"${hub[@]}" register-key OTAPROD001 dev1 >/dev/null
info="$work/hub/devices/OTAPROD001_dev1/device_info.json"
ca="$work/hub/tls/ca.crt"

# wait_for FILE PATTERN: up to 30 s.
wait_for() {
  for _ in $(seq 1 300); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# The console watches the reports: 3 messages (report_version, >= 1 downloading, done).
stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -i ota-console -u console \
  -P "$(cat "$work/hub/console.password")" -v -t "\$ota/report/OTAPROD001/dev1" -W 60 -d \
  >"$work/reports.log" 2>&1 &
pids+=($!)
check "the console subscribed" wait_for "$work/reports.log" SUBACK

"$hublink" ota --device_info="$info" --transport=wss --host=localhost --port="$wss_port" --ca_file="$ca" \
  --version=1.0.0 --download_dir="$work/download" --wait=30 >"$work/ota.log" 2>&1 &
ota_pid=$!
pids+=("$ota_pid")
check "hublink ota reported its version and waits" wait_for "$work/ota.log" "waiting for an update"

head -c 700000 /dev/urandom >"$work/fw.bin"
"${hub[@]}" ota-push OTAPROD001 dev1 "$work/fw.bin" 2.0.0 >"$work/push.log" 2>&1
ota_status=0
wait "$ota_pid" || ota_status=$?
check "hublink ota exits 0" test "$ota_status" -eq 0
check "it says what it downloaded" grep -q "downloaded $work/download/firmware-2.0.0.bin (md5 " "$work/ota.log"
check "the firmware is byte for byte the pushed file" cmp -s "$work/fw.bin" "$work/download/firmware-2.0.0.bin"
check "no partial file is left" test ! -e "$work/download/firmware-2.0.0.bin.part"
check "the console saw report_version 1.0.0" \
  wait_for "$work/reports.log" '"type":"report_version","report":{"version":"1.0.0"}'
check "the console saw downloading progress" wait_for "$work/reports.log" '"state":"downloading","percent":"[0-9]*"'
check "the console saw done for 2.0.0" \
  wait_for "$work/reports.log" '"state":"done","percent":"100","result_code":"0","result_msg":""},"version":"2.0.0"'
check "the firmware server saw the download" grep -q "GET /firmware/OTAPROD001-2.0.0-fw.bin HTTP/1.1\" 200" \
  "$work/hub/https.log"

echo "$passes passed, $failures failed"
if ((failures > 0)); then
  for f in "$work"/*.log "$work/hub/https.log"; do
    echo "--- $f"
    sed 's/^/    /' "$f" | tail -n 40
  done
fi
((failures == 0 && passes > 0))
