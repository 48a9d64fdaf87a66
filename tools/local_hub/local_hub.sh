#!/usr/bin/env bash
# The local hub: a real mosquitto on this machine that behaves like Tencent Cloud IoT Hub for a device (username
# layout, HMAC/RSA passwords checked against a registry, default topic permissions, the $sys time service),
# through the hub_plugin.so mosquitto plugin. No cloud account needed. See README.md beside this file.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: local_hub.sh [options] COMMAND [ARGS]

commands:
  start                          start the hub (creates the state dir, a local CA and server cert on first run)
  stop                           stop the hub this state dir started (by the PID it recorded)
  status                         whether it runs, and how to connect (exit 0 running, 3 stopped)
  register-key PID DN [SECRET]   register a KEY device (random secret unless given); writes its device_info.json
  register-cert PID DN           register a CERT device: RSA key + certificate signed by the local CA
  register-many PID N DIR [PREFIX]
                                 register N KEY devices PREFIX00000.. (default prefix "fleet") and write
                                 their device_info.json files into DIR (for hublink fleet --devices_dir=DIR)
  console-pub TOPIC MESSAGE [mosquitto_pub args]
                                 publish as the console account, the way the cloud console sends a downlink
  console-sub TOPIC [mosquitto_sub args]
                                 subscribe as the console account (sees what devices publish)
  register-product PID [SECRET]  open product PID to dynamic registration; prints its product secret
  https-start [PORT]             start the HTTPS side (dynamic registration, firmware/) on 127.0.0.1:PORT
                                 (default LOCAL_HUB_HTTPS_PORT or 18444; 0 picks a free port)
  https-stop                     stop it
  ota-push PID DN FILE VERSION   serve FILE from the HTTPS side and send update_firmware (url, md5sum,
                                 file_size, version) to $ota/update/PID/DN as the console
  shadow-desire PID DN JSON      set desired state in a device's shadow, as the console (the device gets a delta)

options (each also read from the environment variable shown):
  --dir DIR        LOCAL_HUB_DIR        state dir (default: <repo>/.local_hub)
  --mqtt-port N    LOCAL_HUB_MQTT_PORT  plain MQTT listener on 127.0.0.1 (default 18830)
  --ws-port N      LOCAL_HUB_WS_PORT    MQTT over WebSocket (default 18080)
  --wss-port N     LOCAL_HUB_WSS_PORT   MQTT over WebSocket over TLS (default 18443)
  --plugin FILE    LOCAL_HUB_PLUGIN     hub_plugin.so (default: next to this script, else built with bazel)
  --mosquitto BIN  LOCAL_HUB_MOSQUITTO  the broker (default: mosquitto on PATH, else /usr/sbin/mosquitto)
EOF
}

die() {
  echo "local_hub: $*" >&2
  exit 1
}

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -n "${BUILD_WORKSPACE_DIRECTORY:-}" ]]; then
  repo_dir="$BUILD_WORKSPACE_DIRECTORY"  # under `bazel run` this script lives in bazel-bin
else
  repo_dir="$(cd "$script_dir/../.." && pwd)"
fi

state_dir="${LOCAL_HUB_DIR:-$repo_dir/.local_hub}"
mqtt_port="${LOCAL_HUB_MQTT_PORT:-}"
ws_port="${LOCAL_HUB_WS_PORT:-}"
wss_port="${LOCAL_HUB_WSS_PORT:-}"
plugin="${LOCAL_HUB_PLUGIN:-}"
mosquitto_bin="${LOCAL_HUB_MOSQUITTO:-}"

# Our options may stand before or after the command; anything else is positional (console-pub and
# console-sub hand their extra arguments to mosquitto_pub/mosquitto_sub).
positional=()
while (($#)); do
  case "$1" in
    --dir) state_dir="${2:?--dir needs a value}"; shift 2 ;;
    --dir=*) state_dir="${1#*=}"; shift ;;
    --mqtt-port) mqtt_port="${2:?--mqtt-port needs a value}"; shift 2 ;;
    --mqtt-port=*) mqtt_port="${1#*=}"; shift ;;
    --ws-port) ws_port="${2:?--ws-port needs a value}"; shift 2 ;;
    --ws-port=*) ws_port="${1#*=}"; shift ;;
    --wss-port) wss_port="${2:?--wss-port needs a value}"; shift 2 ;;
    --wss-port=*) wss_port="${1#*=}"; shift ;;
    --plugin) plugin="${2:?--plugin needs a value}"; shift 2 ;;
    --plugin=*) plugin="${1#*=}"; shift ;;
    --mosquitto) mosquitto_bin="${2:?--mosquitto needs a value}"; shift 2 ;;
    --mosquitto=*) mosquitto_bin="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; positional+=("$@"); break ;;
    *) positional+=("$1"); shift ;;
  esac
done
set -- "${positional[@]+"${positional[@]}"}"
(($#)) || { usage >&2; exit 2; }
command="$1"
shift

mkdir -p "$state_dir"
state_dir="$(cd "$state_dir" && pwd)"
# mosquitto's config format has no quoting.
[[ "$state_dir" != *[[:space:]]* ]] || die "the state dir must not contain spaces: $state_dir"

tls_dir="$state_dir/tls"
registry="$state_dir/registry.txt"
conf="$state_dir/mosquitto.conf"
pid_file="$state_dir/mosquitto.pid"
log_file="$state_dir/mosquitto.log"
ports_file="$state_dir/ports.env"
shadow_pid_file="$state_dir/shadow_service.pid"
shadow_log_file="$state_dir/shadow_service.log"
console_user="console"
console_password_file="$state_dir/console.password"

# The ports of a running hub win over the defaults, so console-pub and status find it.
if [[ -f "$ports_file" ]]; then
  # shellcheck disable=SC1090
  source "$ports_file"
  mqtt_port="${mqtt_port:-$HUB_MQTT_PORT}"
  ws_port="${ws_port:-$HUB_WS_PORT}"
  wss_port="${wss_port:-$HUB_WSS_PORT}"
fi
mqtt_port="${mqtt_port:-18830}"
ws_port="${ws_port:-18080}"
wss_port="${wss_port:-18443}"
for p in "$mqtt_port" "$ws_port" "$wss_port"; do
  if ! [[ "$p" =~ ^[0-9]+$ ]] || ((p == 0 || p > 65535)); then die "bad port '$p'"; fi
done

need() {
  command -v "$1" >/dev/null || die "$1 not found; run tools/bootstrap.sh"
}

# live_pid PID_FILE TEXT: prints the PID in PID_FILE if that process still runs and its command line
# contains TEXT (so a PID reused by another process after a crash is not taken for ours).
live_pid() {
  [[ -f "$1" ]] || return 1
  local pid
  pid="$(cat "$1")"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
  echo "$pid"
}

# The PID of the hub this state dir started, if that process still runs mosquitto with our config.
running_pid() {
  live_pid "$pid_file" " -c $conf "
}

ensure_ca() {
  [[ -f "$tls_dir/ca.crt" && -f "$tls_dir/server.crt" ]] && return 0
  need openssl
  mkdir -p "$tls_dir"
  (
    umask 077
    cd "$tls_dir"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout ca.key -out ca.crt \
      -subj "/CN=hublink local hub CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -sha256 \
      -extfile server.ext -out server.crt 2>/dev/null
    rm -f server.csr server.ext
    chmod 644 ca.crt server.crt
  )
  echo "local_hub: created a local CA ($tls_dir/ca.crt) and a server certificate for localhost, 127.0.0.1, ::1"
}

ensure_registry() {
  [[ -f "$registry" ]] && return 0
  need openssl
  (
    umask 077
    local password salt hash
    password="$(openssl rand -hex 16)"
    salt="$(openssl rand -hex 8)"
    hash="$(printf '%s' "$salt$password" | openssl dgst -sha256 -r | cut -d' ' -f1)"
    printf '%s\n' "$password" >"$console_password_file"
    cat >"$registry" <<EOF
# hublink local hub registry: one entry a line, fields separated by blanks, '#' starts a comment.
#   KEY     <productId> <deviceName> <base64 device secret>
#   CERT    <productId> <deviceName> <PEM certificate or public key; relative paths from this file's dir>
#   CONSOLE <user> <password, or sha256:<salt>:<hex SHA-256 of salt||password>>
# The hub re-reads this file when it changes. It holds secrets: keep it private.
CONSOLE $console_user sha256:$salt:$hash
EOF
  )
}

find_plugin() {
  if [[ -n "$plugin" ]]; then
    [[ -f "$plugin" ]] || die "no plugin at $plugin"
    return 0
  fi
  if [[ -f "$script_dir/hub_plugin.so" ]]; then
    plugin="$script_dir/hub_plugin.so"
    return 0
  fi
  need bazel
  echo "local_hub: building the plugin (bazel build //tools/local_hub:hub_plugin.so)"
  (cd "$repo_dir" && bazel build //tools/local_hub:hub_plugin.so >&2)
  plugin="$(cd "$repo_dir" && bazel info bazel-bin 2>/dev/null)/tools/local_hub/hub_plugin.so"
  [[ -f "$plugin" ]] || die "the build did not produce $plugin"
}

find_mosquitto() {
  if [[ -z "$mosquitto_bin" ]]; then
    mosquitto_bin="$(command -v mosquitto || true)"
    [[ -n "$mosquitto_bin" ]] || mosquitto_bin=/usr/sbin/mosquitto
  fi
  [[ -x "$mosquitto_bin" ]] || die "mosquitto not found ($mosquitto_bin); run tools/bootstrap.sh"
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

print_info() {
  cat <<EOF
local hub: pid $1, state dir $state_dir
  MQTT/TCP  127.0.0.1:$mqtt_port
  MQTT/WS   ws://127.0.0.1:$ws_port/   (subprotocol mqtt)
  MQTT/WSS  wss://localhost:$wss_port/  CA file $tls_dir/ca.crt (server cert for localhost, 127.0.0.1, ::1)
  registry  $registry  (register devices with: local_hub.sh register-key|register-cert PID DN)
  console   user '$console_user', password in $console_password_file: may publish and subscribe anywhere
            (local_hub.sh console-pub TOPIC MESSAGE)
  log       $log_file
  WARNING: mosquitto binds its websockets listeners on ALL interfaces whatever address it is given, so ports
  $ws_port and $wss_port are reachable from your network. Every client is authenticated against the registry.
EOF
}

cmd_start() {
  local pid
  if pid="$(running_pid)"; then
    echo "local_hub: already running"
    print_info "$pid"
    return 0
  fi
  find_mosquitto
  find_plugin
  ensure_ca
  ensure_registry
  for p in "$mqtt_port" "$ws_port" "$wss_port"; do
    ! port_open "$p" || die "port $p on 127.0.0.1 is in use; pick others with --mqtt-port/--ws-port/--wss-port"
  done
  # A private copy: a rebuild or a bazel clean must not pull the library out from under the running broker.
  install -m 755 "$plugin" "$state_dir/hub_plugin.so"
  cat >"$conf" <<EOF
# Generated by tools/local_hub/local_hub.sh start; rewritten at every start.
# As root, mosquitto would otherwise switch to the 'mosquitto' user, which cannot read this dir.
user root
pid_file $pid_file
persistence false
per_listener_settings false
allow_anonymous false
log_dest file $log_file
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
plugin $state_dir/hub_plugin.so
plugin_opt_registry $registry

# Listener options go after their listener line: given before any, they open a default listener on 1883.
# IoT Hub has no QoS 2: max_qos 1 grants subscriptions QoS 1 at most and ends a connection that publishes
# at QoS 2.
listener $mqtt_port 127.0.0.1
protocol mqtt
max_qos 1

# mosquitto 2.0.11 binds websockets listeners on all interfaces, whatever the address says.
listener $ws_port 127.0.0.1
protocol websockets
max_qos 1

listener $wss_port 127.0.0.1
protocol websockets
max_qos 1
cafile $tls_dir/ca.crt
certfile $tls_dir/server.crt
keyfile $tls_dir/server.key
EOF
  rm -f "$pid_file"
  printf 'HUB_MQTT_PORT=%s\nHUB_WS_PORT=%s\nHUB_WSS_PORT=%s\n' "$mqtt_port" "$ws_port" "$wss_port" >"$ports_file"
  local log_start=0
  [[ -f "$log_file" ]] && log_start="$(wc -l <"$log_file")"
  # A plugin built with --config=asan/tsan needs its sanitizer runtime first in the (uninstrumented) broker.
  local preload=""
  preload="$(ldd "$plugin" 2>/dev/null | grep -oE '/[^ ]*lib(asan|tsan)\.so[^ ]*' | head -n 1 || true)"
  if [[ -n "$preload" ]]; then
    echo "local_hub: the plugin is sanitizer-instrumented; preloading $preload into mosquitto"
  fi
  # The broker's own allocations are not ours to leak-check.
  env ${preload:+LD_PRELOAD="$preload"} ${preload:+ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"} \
    "$mosquitto_bin" -c "$conf" -d 2>>"$state_dir/mosquitto.stderr" ||
    die "mosquitto did not start; see $state_dir/mosquitto.stderr"
  # -d returns before the listeners and the plugin are up: wait for all three ports, up to ~10 s.
  local i ready=0
  for ((i = 0; i < 100; i++)); do
    if pid="$(running_pid)"; then
      if port_open "$mqtt_port" && port_open "$ws_port" && port_open "$wss_port"; then
        ready=1
        break
      fi
    elif [[ -f "$log_file" ]] && tail -n +"$((log_start + 1))" "$log_file" | grep -q "Error"; then
      break
    fi
    sleep 0.1
  done
  if ((!ready)); then
    echo "local_hub: mosquitto failed to start; its log says:" >&2
    [[ -f "$log_file" ]] && tail -n +"$((log_start + 1))" "$log_file" | tail -n 20 >&2
    if pid="$(running_pid)"; then kill "$pid" 2>/dev/null || true; fi
    rm -f "$ports_file"
    exit 1
  fi
  stop_shadow_service
  if ! start_shadow_service "$pid"; then
    kill "$pid" 2>/dev/null || true
    rm -f "$ports_file"
    exit 1
  fi
  print_info "$pid"
}

# The shadow service (shadow_service.py, a console-account client that keeps each device's shadow
# document) beside the broker. Optional: without the script or python3-paho-mqtt the hub runs without
# a shadow and says so.
shadow_service_pid() {
  live_pid "$shadow_pid_file" "shadow_service.py"
}

start_shadow_service() {
  local hub_pid="$1" script="$script_dir/shadow_service.py" python="" candidate i
  if [[ ! -f "$script" ]]; then
    echo "local_hub: no shadow service ($script not found)"
    return 0
  fi
  for candidate in /usr/bin/python3 python3; do
    if "$candidate" -c 'import paho.mqtt.client' 2>/dev/null; then
      python="$candidate"
      break
    fi
  done
  if [[ -z "$python" ]]; then
    echo "local_hub: no shadow service (needs python3 with paho-mqtt: tools/bootstrap.sh)"
    return 0
  fi
  local ready="$state_dir/shadow_service.ready"
  rm -f "$ready"
  "$python" "$script" --port "$mqtt_port" --username "$console_user" \
    --password-file "$console_password_file" --hub-pid "$hub_pid" --ready-file "$ready" --registry "$registry" \
    >>"$shadow_log_file" 2>&1 </dev/null &
  echo "$!" >"$shadow_pid_file"
  for ((i = 0; i < 100; i++)); do
    [[ -f "$ready" ]] && return 0
    shadow_service_pid >/dev/null || break
    sleep 0.1
  done
  echo "local_hub: the shadow service did not come up; see $shadow_log_file" >&2
  return 1
}

# terminate PID TENTHS: SIGTERM, and SIGKILL if PID still runs TENTHS tenths of a second later (the
# only way to learn it ended: it is not our child). Returns 1 when it took the SIGKILL.
terminate() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < $2; i++)); do
    [[ -e "/proc/$pid" ]] || return 0
    sleep 0.1
  done
  [[ -e "/proc/$pid" ]] || return 0
  kill -KILL "$pid" 2>/dev/null || true
  return 1
}

stop_shadow_service() {
  local pid
  pid="$(shadow_service_pid)" || { rm -f "$shadow_pid_file"; return 0; }
  terminate "$pid" 50 || true
  rm -f "$shadow_pid_file"
}

cmd_stop() {
  local pid
  stop_shadow_service
  if ! pid="$(running_pid)"; then
    echo "local_hub: not running"
    rm -f "$pid_file" "$ports_file"
    return 0
  fi
  if ! terminate "$pid" 100; then
    echo "local_hub: pid $pid ignored SIGTERM for 10 s; sent SIGKILL" >&2
  fi
  rm -f "$pid_file" "$ports_file"
  echo "local_hub: stopped (pid $pid)"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    print_info "$pid"
    return 0
  fi
  echo "local hub: not running (state dir $state_dir)"
  return 3
}

valid_ids() {
  [[ "$1" =~ ^[A-Za-z0-9]{1,10}$ ]] || die "productId must be 1-10 characters of [A-Za-z0-9]: '$1'"
  [[ "$2" =~ ^[A-Za-z0-9._:@-]{1,48}$ ]] || die "deviceName must be 1-48 characters of [A-Za-z0-9._:@-]: '$2'"
  if [[ -f "$registry" ]] && awk -v id="$1$2" '($1 == "KEY" || $1 == "CERT") && $2 $3 == id { f = 1 } END { exit !f }' "$registry"; then
    die "client id $1$2 is already registered (see $registry)"
  fi
}

device_dir() {
  echo "$state_dir/devices/$1_$2"
}

cmd_register_key() {
  (($# == 2 || $# == 3)) || die "usage: register-key PID DN [BASE64_SECRET]"
  local pid="$1" dn="$2" secret="${3:-}"
  ensure_registry
  valid_ids "$pid" "$dn"
  need openssl
  if [[ -z "$secret" ]]; then
    secret="$(openssl rand -base64 16)"
  else
    if ! [[ "$secret" =~ ^[A-Za-z0-9+/]+={0,2}$ ]] || ((${#secret} % 4 != 0)); then
      die "the secret must be base64 with padding"
    fi
  fi
  local dir
  dir="$(device_dir "$pid" "$dn")"
  (
    umask 077
    mkdir -p "$dir"
    cat >"$dir/device_info.json" <<EOF
{
  "auth_mode": "KEY",
  "region": "china",
  "productId": "$pid",
  "deviceName": "$dn",
  "key_deviceinfo": {
    "deviceSecret": "$secret"
  }
}
EOF
    echo "KEY $pid $dn $secret" >>"$registry"
  )
  echo "local_hub: registered KEY device $pid/$dn (client id $pid$dn)"
  echo "  device_info.json: $dir/device_info.json"
  echo "  connect to the local hub, not the region's host: see 'local_hub.sh status' for ports and the CA file"
}

cmd_register_cert() {
  (($# == 2)) || die "usage: register-cert PID DN"
  local pid="$1" dn="$2"
  ensure_registry
  valid_ids "$pid" "$dn"
  ensure_ca
  local dir cert key
  dir="$(device_dir "$pid" "$dn")"
  cert="${dn}_cert.crt"
  key="${dn}_private.key"
  (
    umask 077
    mkdir -p "$dir/certs"
    cd "$dir/certs"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$key" -out device.csr -subj "/CN=$pid$dn" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=clientAuth" >device.ext
    openssl x509 -req -in device.csr -CA "$tls_dir/ca.crt" -CAkey "$tls_dir/ca.key" -CAcreateserial \
      -days 825 -sha256 -extfile device.ext -out "$cert" 2>/dev/null
    rm -f device.csr device.ext
    chmod 644 "$cert"
    cat >"$dir/device_info.json" <<EOF
{
  "auth_mode": "CERT",
  "region": "china",
  "productId": "$pid",
  "deviceName": "$dn",
  "cert_deviceinfo": {
    "devCertFile": "$cert",
    "devPrivateKeyFile": "$key"
  }
}
EOF
    echo "CERT $pid $dn devices/${pid}_${dn}/certs/$cert" >>"$registry"
  )
  echo "local_hub: registered CERT device $pid/$dn (client id $pid$dn)"
  echo "  device_info.json: $dir/device_info.json (certificate and key in $dir/certs/, as the C SDK expects)"
  echo "  connect to the local hub, not the region's host: see 'local_hub.sh status' for ports and the CA file"
}

# N KEY devices at once, for `hublink fleet --devices_dir=DIR`: one pass over the registry to check the
# names, one read of /dev/urandom for the secrets, one append to the registry (the hub re-reads it once).
cmd_register_many() {
  (($# == 3 || $# == 4)) || die "usage: register-many PID N DIR [PREFIX]"
  local pid="$1" count="$2" out_dir="$3" prefix="${4:-fleet}"
  [[ "$count" =~ ^[0-9]+$ ]] && ((count >= 1 && count <= 1000000)) ||
    die "N must be a whole number from 1 to 1000000: '$count'"
  [[ "$pid" =~ ^[A-Za-z0-9]{1,10}$ ]] || die "productId must be 1-10 characters of [A-Za-z0-9]: '$pid'"
  # Zero-padded so that the files sort in index order (identity i of the fleet is device i).
  local width=${#count}
  ((width >= 5)) || width=5
  [[ "$prefix" =~ ^[A-Za-z0-9._:@-]*$ ]] && ((${#prefix} + width <= 48)) ||
    die "PREFIX must be of [A-Za-z0-9._:@-] and leave room for $width digits in 48: '$prefix'"
  ensure_registry
  local clash
  clash="$(awk -v pid="$pid" -v prefix="$prefix" -v count="$count" -v width="$width" '
    BEGIN { for (i = 0; i < count; i++) want[sprintf("%s%s%0*d", pid, prefix, width, i)] = 1 }
    ($1 == "KEY" || $1 == "CERT") && (($2 $3) in want) { print $2 "/" $3; exit }' "$registry")"
  [[ -z "$clash" ]] || die "device $clash is already registered (see $registry); use another PREFIX or PID"
  (
    umask 077
    mkdir -p "$out_dir"
    local i=0 secret dn entries=""
    # 18 random bytes are 24 base64 characters without padding, so one stream splits into secrets.
    while IFS= read -r secret && ((i < count)); do
      printf -v dn '%s%0*d' "$prefix" "$width" "$i"
      printf '{\n  "auth_mode": "KEY",\n  "region": "china",\n  "productId": "%s",\n  "deviceName": "%s",\n  "key_deviceinfo": {\n    "deviceSecret": "%s"\n  }\n}\n' \
        "$pid" "$dn" "$secret" >"$out_dir/${pid}_${dn}.json"
      entries+="KEY $pid $dn $secret"$'\n'
      i=$((i + 1))
    done < <(head -c $((18 * count)) /dev/urandom | base64 -w 24)
    ((i == count)) || die "made only $i of $count secrets"
    printf '%s' "$entries" >>"$registry"
  )
  echo "local_hub: registered $count KEY devices $pid/${prefix}$(printf '%0*d' "$width" 0).." \
    "$pid/${prefix}$(printf '%0*d' "$width" $((count - 1))); device_info.json files in $out_dir"
  echo "  e.g. hublink fleet --devices_dir=$out_dir --transport=wss --host=127.0.0.1 --port=<wss port>" \
    "--ca_file=$tls_dir/ca.crt (local_hub.sh status shows the ports)"
}

console_client() {
  local tool="$1"
  shift
  need "$tool"
  [[ -f "$console_password_file" ]] || die "no console account yet: start the hub first"
  running_pid >/dev/null || die "the hub is not running (local_hub.sh start)"
  "$tool" -h 127.0.0.1 -p "$mqtt_port" -i "hub-console-$$" -u "$console_user" \
    -P "$(cat "$console_password_file")" "$@"
}

# The HTTPS side (https_server.py): dynamic registration against products.txt, firmware from firmware/.
products_file="$state_dir/products.txt"
https_pid_file="$state_dir/https.pid"
https_port_file="$state_dir/https.port"

https_running_pid() {
  live_pid "$https_pid_file" "--products $products_file "
}

cmd_register_product() {
  (($# == 1 || $# == 2)) || die "usage: register-product PID [SECRET]"
  local pid="$1" secret="${2:-}"
  [[ "$pid" =~ ^[A-Za-z0-9]{1,10}$ ]] || die "productId must be 1-10 characters of [A-Za-z0-9]: '$pid'"
  if [[ -f "$products_file" ]] && awk -v p="$pid" '$1 == "PRODUCT" && $2 == p { f = 1 } END { exit !f }' "$products_file"; then
    die "product $pid is registered already (see $products_file)"
  fi
  need openssl
  if [[ -z "$secret" ]]; then
    secret="$(openssl rand -base64 48 | tr -dc 'A-Za-z0-9' | cut -c1-24)"
  fi
  # The reply's AES key is the secret's first 16 characters; the hub makes secrets of 24.
  [[ "$secret" =~ ^[A-Za-z0-9]{16,64}$ ]] || die "the product secret must be 16-64 characters of [A-Za-z0-9]"
  (
    umask 077
    [[ -f "$products_file" ]] || echo "# PRODUCT <productId> <product secret>: products open to dynamic registration" >"$products_file"
    echo "PRODUCT $pid $secret" >>"$products_file"
  )
  echo "local_hub: product $pid may register devices dynamically (POST /device/register, see https-start)" >&2
  echo "$secret"
}

cmd_https_start() {
  (($# <= 1)) || die "usage: https-start [PORT]"
  local port="${1:-${LOCAL_HUB_HTTPS_PORT:-18444}}" pid i
  [[ "$port" =~ ^[0-9]+$ ]] && ((port <= 65535)) || die "bad port '$port'"
  if pid="$(https_running_pid)"; then
    echo "local_hub: https already running (pid $pid) on 127.0.0.1:$(cat "$https_port_file")"
    return 0
  fi
  need python3
  ensure_ca
  ensure_registry
  mkdir -p "$state_dir/firmware"
  touch "$products_file"
  rm -f "$https_port_file"
  python3 "$script_dir/https_server.py" --cert "$tls_dir/server.crt" --key "$tls_dir/server.key" \
    --registry "$registry" --products "$products_file" --firmware-dir "$state_dir/firmware" \
    --port "$port" --port-file "$https_port_file" </dev/null >>"$state_dir/https.log" 2>&1 &
  pid=$!
  echo "$pid" >"$https_pid_file"
  # Listening once it wrote its port: up to ~10 s.
  for ((i = 0; i < 100; i++)); do
    [[ -s "$https_port_file" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ ! -s "$https_port_file" ]]; then
    kill "$pid" 2>/dev/null || true
    rm -f "$https_pid_file"
    tail -n 20 "$state_dir/https.log" >&2 || true
    die "the HTTPS server did not start; see $state_dir/https.log"
  fi
  local bound
  bound="$(tr -d '[:space:]' <"$https_port_file")"
  echo "local hub https: pid $pid on https://localhost:$bound/ (CA file $tls_dir/ca.crt)"
  echo "  dynamic registration  POST /device/register  (products: $products_file)"
  echo "  firmware              GET /firmware/<name>   (files in $state_dir/firmware/, Range supported)"
  echo "  log                   $state_dir/https.log"
}

cmd_https_stop() {
  local pid
  if ! pid="$(https_running_pid)"; then
    echo "local_hub: https not running"
    rm -f "$https_pid_file" "$https_port_file"
    return 0
  fi
  terminate "$pid" 50 || true
  rm -f "$https_pid_file" "$https_port_file"
  echo "local_hub: https stopped (pid $pid)"
}

cmd_ota_push() {
  (($# == 4)) || die "usage: ota-push PID DN FILE VERSION"
  local pid="$1" dn="$2" file="$3" version="$4" name md5 size port
  [[ -f "$file" ]] || die "no firmware file $file"
  [[ "$version" =~ ^[A-Za-z0-9._-]{1,32}$ ]] || die "version must be 1-32 characters of [A-Za-z0-9._-]"
  https_running_pid >/dev/null || die "the HTTPS side is not running (local_hub.sh https-start)"
  port="$(tr -d '[:space:]' <"$https_port_file")"
  name="${pid}-${version}-$(basename "$file" | tr -c 'A-Za-z0-9._\n-' '_')"
  install -m 644 "$file" "$state_dir/firmware/$name"
  md5="$(md5sum "$state_dir/firmware/$name" | cut -d' ' -f1)"
  size="$(stat -c %s "$state_dir/firmware/$name")"
  local message
  message="{\"type\":\"update_firmware\",\"url\":\"https://localhost:$port/firmware/$name\",\"md5sum\":\"$md5\",\"file_size\":$size,\"version\":\"$version\"}"
  console_client mosquitto_pub -q 1 -t "\$ota/update/$pid/$dn" -m "$message"
  echo "local_hub: pushed firmware $version ($size bytes, md5 $md5) to $pid/$dn: $message"
}

case "$command" in
  start) (($# == 0)) || die "start takes no arguments"; cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  register-key) cmd_register_key "$@" ;;
  register-cert) cmd_register_cert "$@" ;;
  register-product) cmd_register_product "$@" ;;
  https-start) cmd_https_start "$@" ;;
  https-stop) cmd_https_stop ;;
  ota-push) cmd_ota_push "$@" ;;
  register-many) cmd_register_many "$@" ;;
  console-pub)
    (($# >= 2)) || die "usage: console-pub TOPIC MESSAGE [mosquitto_pub args]"
    topic="$1" message="$2"
    shift 2
    console_client mosquitto_pub -q 1 -t "$topic" -m "$message" "$@"
    echo "local_hub: published to $topic as the console"
    ;;
  console-sub)
    (($# >= 1)) || die "usage: console-sub TOPIC [mosquitto_sub args]"
    topic="$1"
    shift
    console_client mosquitto_sub -v -t "$topic" "$@"
    ;;
  shadow-desire)
    (($# == 3)) || die "usage: shadow-desire PID DN JSON"
    shadow_service_pid >/dev/null || die "the shadow service is not running (see $shadow_log_file)"
    console_client mosquitto_pub -q 0 -t "\$shadow/operation/$1/$2" \
      -m "{\"type\":\"update\",\"state\":{\"desired\":$3},\"version\":0,\"clientToken\":\"console-$$\"}"
    echo "local_hub: desired $3 sent to the shadow of $1/$2"
    ;;
  *) usage >&2; die "unknown command '$command'" ;;
esac
