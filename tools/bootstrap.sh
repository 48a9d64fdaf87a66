#!/usr/bin/env bash
# Installs every Debian and npm package hublink's build, tests, examples and benchmarks need.
# Idempotent: packages already present are skipped, so re-running is cheap.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap            # Bazel 4.2.3, run offline (see WORKSPACE and third_party/)
  libabsl-dev                # Abseil LTS 20220623
  android-libboringssl-dev   # BoringSSL headers and libs under include/android
  libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libbenchmark-dev
  mosquitto mosquitto-dev libmosquitto-dev mosquitto-clients  # the broker, its plugin headers, reference clients
  libpaho-mqtt-dev           # the peer the benchmarks compare against
  openssl                    # independent check of signatures, s_server for TLS tests
  libssl-dev                 # system OpenSSL 3 headers: the local hub's plugin runs inside mosquitto
  python3-paho-mqtt          # independent MQTT-over-WebSocket client in the local hub's tests
  clang-14 libclang-rt-14-dev  # sanitizers and libFuzzer
  tinyproxy squid apache2-utils microsocks  # real HTTP CONNECT and SOCKS5 proxies for the proxy transports' tests (htpasswd for squid's Basic auth)
  clang-format
  python3
)

missing=()
# Node.js: the machine image may ship its own build (which bundles npm and conflicts with Debian's npm).
command -v node >/dev/null || PACKAGES+=(nodejs)
command -v npm >/dev/null || PACKAGES+=(npm)
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The node ws peer used by WebSocket tests; versions pinned by tests/peers/package-lock.json.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -f "$here/tests/peers/package.json" && ! -d "$here/tests/peers/node_modules/ws" ]]; then
  (cd "$here/tests/peers" && npm ci --no-audit --no-fund --silent)
fi
echo "bootstrap: ok"
