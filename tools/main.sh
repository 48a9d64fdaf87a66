#!/usr/bin/env bash
# The main job. Until the local IoT hub lands, it runs the best end-to-end demo there is: a pipeline file
# composing TCP with an out-of-tree plugin, against a loopback server the example starts itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v bazel >/dev/null && [[ -d /usr/include/android/openssl ]] || bash tools/bootstrap.sh

bazel run //examples:custom_plugin "$@"
