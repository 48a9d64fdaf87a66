#!/usr/bin/env bash
# The whole test suite: every test target, then again under AddressSanitizer + UndefinedBehaviorSanitizer
# (and the static-deps check in between).
# Tests start their own real peers (mosquitto, node ws, openssl s_server) on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/bootstrap.sh  # idempotent: only installs what is missing

bazel test //... "$@"
# The one test that checks what --config=static_deps changes (protobuf and Abseil linked
# statically; plugin libraries refused), in that build.
bazel test --config=static_deps //plugins:static_deps_test "$@"
bazel test --config=asan_ubsan //... "$@"
