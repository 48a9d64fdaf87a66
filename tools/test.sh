#!/usr/bin/env bash
# The whole test suite: every test target, then again under AddressSanitizer + UndefinedBehaviorSanitizer
# (and the shared-libraries checks in between).
# Tests start their own real peers (mosquitto, node ws, openssl s_server) on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/bootstrap.sh  # idempotent: only installs what is missing

bazel test //... "$@"
# protobuf and Abseil are linked statically by default; --config=shared_deps links Debian's shared
# libraries. The tests of what that changes (what is mapped, plugin hosts, the CLI loading a plugin
# library), in that build too.
bazel test --config=shared_deps //plugins:link_mode_test //plugins:plugin_host_test \
  //examples/tap_plugin:tap_plugin_so_test "$@"
bazel test --config=asan_ubsan //... "$@"
