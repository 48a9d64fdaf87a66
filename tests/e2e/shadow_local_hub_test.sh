#!/usr/bin/env bash
# End to end, as a user runs it: `hublink shadow get|update|delete` against the local hub's shadow
# service (tools/local_hub/shadow_service.py beside a real mosquitto with the IoT Hub plugin): the
# document grows a version with each update, a stale --version is refused naming the hub's version,
# a desired state set from the console arrives as a delta, "desired": null clears it, delete empties
# the document. Then `hublink template report|event|get-status|clear-control|report-info` against the
# hub's data template service.
#   args: local_hub.sh hub_plugin.so shadow_service.py hublink
set -euo pipefail
# shellcheck source=tests/e2e/local_hub_test_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/local_hub_test_lib.sh"
hub_script="$(realpath "$1")"
plugin="$(realpath "$2")"
hublink="$(realpath "$4")"
[[ -f "$(dirname "$hub_script")/shadow_service.py" ]] || {
  echo "FAIL: shadow_service.py is not beside $hub_script"
  exit 1
}

work="${TEST_TMPDIR:-$(mktemp -d)}/shadow_e2e"
rm -rf "$work"
mkdir -p "$work"
start_local_hub "$hub_script" "$plugin" "$work/hub"
# json_is FILE PYTHON-EXPRESSION-OF-d: the JSON on FILE's first line satisfies the expression.
json_is() {
  /usr/bin/python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).readline()); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"
}

"${hub[@]}" register-key SHADOWP001 lamp >/dev/null
device_info="$work/hub/devices/SHADOWP001_lamp/device_info.json"
shadow() {  # shadow NAME OP [FLAGS...]: stdout to $work/NAME.out, stderr to $work/NAME.err
  local name="$1"
  shift
  "$hublink" shadow "$@" --device_info="$device_info" --transport=tcp --host=127.0.0.1 \
    --port="$mqtt_port" --timeout=10 >"$work/$name.out" 2>"$work/$name.err"
}

check "get on a new device: empty document at version 0" \
  eval 'shadow get0 get && json_is "$work/get0.out" "d[\"version\"] == 0 and d[\"state\"][\"reported\"] == {}"'
check "update reports the state and moves to version 1" \
  eval 'shadow update1 update --state="{\"brightness\":40,\"on\":true}" &&
    json_is "$work/update1.out" "d[\"version\"] == 1 and d[\"state\"][\"reported\"] == {\"brightness\": 40, \"on\": True}"'
check "update with the current --version is applied (version 2)" \
  eval 'shadow update2 update --state="{\"brightness\":60}" --version=1 &&
    json_is "$work/update2.out" "d[\"version\"] == 2 and d[\"state\"][\"reported\"] == {\"brightness\": 60, \"on\": True}"'
stale_status=0
shadow stale update --state='{"brightness":1}' --version=1 || stale_status=$?
check "a stale --version is refused (exit 1) naming the hub's version" \
  eval '((stale_status == 1)) && grep -q "version conflict: the update was for version 1, the shadow is at version 2" "$work/stale.err"'

# The console sets a desired state while a device waits for deltas.
shadow delta get --deltas=1 &
waiter=$!
for _ in $(seq 1 100); do
  [[ -s "$work/delta.out" ]] && break
  kill -0 "$waiter" 2>/dev/null || break
  sleep 0.1
done
"${hub[@]}" shadow-desire SHADOWP001 lamp '{"brightness":80}' >/dev/null
delta_status=0
wait "$waiter" || delta_status=$?
check "a desired change from the console arrives as a delta" \
  eval '((delta_status == 0)) && grep -qx "delta {\"brightness\":80} version 3" "$work/delta.out"'
check "get shows desired and delta" \
  eval 'shadow get3 get && json_is "$work/get3.out" "d[\"state\"][\"desired\"] == {\"brightness\": 80} and d[\"state\"][\"delta\"] == {\"brightness\": 80}"'
check "reporting the desired value with --clear_desired clears desired and delta" \
  eval 'shadow clear update --state="{\"brightness\":80}" --clear_desired &&
    json_is "$work/clear.out" "\"desired\" not in d[\"state\"] and \"delta\" not in d[\"state\"] and d[\"state\"][\"reported\"][\"brightness\"] == 80"'
check "delete empties the document" \
  eval 'shadow delete delete && shadow get5 get && json_is "$work/get5.out" "d[\"state\"][\"reported\"] == {} and d[\"version\"] == 5"'
bad_status=0
shadow bad update --state='[1]' || bad_status=$?
check "a reported state that is not a JSON object is refused before sending" \
  eval '((bad_status == 1)) && grep -q "must be a JSON object" "$work/bad.err"'

# hublink template: a data template report and event, answered by the local hub; a value the
# template does not allow is refused before connecting.
cat >"$work/light.json" <<'JSON'
{"version": "1.0", "properties": [
  {"id": "brightness", "mode": "rw", "define": {"type": "int", "min": "0", "max": "100"}}],
 "events": [{"id": "status_report", "type": "info", "params": [
  {"id": "status", "define": {"type": "bool", "mapping": {"0": "normal", "1": "fault"}}}]}]}
JSON
template() {  # template NAME OP [FLAGS...]
  local name="$1"
  shift
  "$hublink" template "$@" --device_info="$device_info" --template="$work/light.json" \
    --transport=tcp --host=127.0.0.1 --port="$mqtt_port" --timeout=10 \
    >"$work/$name.out" 2>"$work/$name.err"
}
check "hublink template report is answered by the hub" \
  eval 'template report report --params="{\"brightness\":40}" && grep -qx reported "$work/report.out"'
check "hublink template event is answered by the hub" \
  eval 'template event event --event=status_report --params="{\"status\":1}" &&
    grep -qx "event status_report posted" "$work/event.out"'
range_status=0
template range report --params='{"brightness":140}' || range_status=$?
check "a value outside the template is refused (exit 1) naming the field" \
  eval '((range_status == 1)) && grep -q "params.brightness: 140 is above max 100" "$work/range.err"'

# A control sent while the device is offline is held by the hub: get-status shows it beside the
# reported values until clear-control drops it. report-info is acknowledged; a field it does not
# know is refused before connecting.
"${hub[@]}" console-pub '$thing/down/property/SHADOWP001/lamp' \
  '{"method":"control","clientToken":"console-1","params":{"brightness":70}}' >/dev/null
check "hublink template get-status prints the reported values and the held control" \
  eval 'template status1 get-status &&
    grep -qxF "{\"reported\":{\"brightness\":40},\"control\":{\"brightness\":70}}" "$work/status1.out"'
check "hublink template clear-control is answered" \
  eval 'template clear clear-control && grep -qx "control cleared" "$work/clear.out"'
check "after clear-control get-status has no control" \
  eval 'template status2 get-status && grep -qxF "{\"reported\":{\"brightness\":40}}" "$work/status2.out"'
check "hublink template report-info is answered" \
  eval 'template info report-info --params="{\"fw_ver\":\"1.0.0\",\"mac\":\"02:00:00:00:00:01\"}" &&
    grep -qx "info reported" "$work/info.out"'
info_status=0
template badinfo report-info --params='{"fw_ver":"1","firmware":"x"}' || info_status=$?
check "a report-info field the platform does not know is refused (exit 1) naming it" \
  eval '((info_status == 1)) && grep -q "report_info.firmware: not a report_info field" "$work/badinfo.err"'

echo "$passes passed, $failures failed"
if ((failures)); then
  for f in "$work"/*.out "$work"/*.err "$work/hub/shadow_service.log"; do
    echo "--- $f"
    cat "$f"
  done
  exit 1
fi
