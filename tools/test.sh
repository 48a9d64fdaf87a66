#!/usr/bin/env bash
# The whole test suite: every test target, then again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Tests start their own real peers (mosquitto, node ws, openssl s_server) on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/bootstrap.sh  # idempotent: only installs what is missing

bazel test //... "$@"
bazel test --config=asan_ubsan //... "$@"
