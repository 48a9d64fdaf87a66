#!/usr/bin/env bash
# Runs an example binary as `bazel run` would and checks that it exits 0 and prints an expected line.
set -euo pipefail
binary="$1"
expected="$2"
output="$("$binary" 2>&1)" || { echo "$output"; echo "FAIL: $binary exited non-zero"; exit 1; }
echo "$output"
grep -qF -- "$expected" <<<"$output" || { echo "FAIL: expected output line: $expected"; exit 1; }
