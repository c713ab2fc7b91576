#!/usr/bin/env bash
# The whole pipeline on a local AWS, one command: starts moto's server on 127.0.0.1, creates the
# resources as terraform/ does (buckets with notifications, queue and DLQ, tracking table, KMS
# key, the state machine from terraform's own template), runs the release builds of
# manifest-builder and converter-lambda as Lambda functions, uploads the files given (default:
# the bundled examples/), waits for the flow to finish and prints what happened.
#
#   scripts/local-pipeline.sh [--keep] [FILE...]
#
# Output lands in target/local-pipeline/ (Parquet and error objects, function logs).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

cargo build --release --locked -p manifest-builder -p converter --bin manifest-builder --bin converter-lambda

args=("$@")
files=0
for arg in "${args[@]+"${args[@]}"}"; do
  case "$arg" in --*) ;; *) files=$((files + 1)) ;; esac
done
if [ "$files" -eq 0 ]; then
  args+=(examples/*.ndjson*)
fi
exec "$venv/bin/python" -m tools.local_aws --binaries "${CARGO_TARGET_DIR:-target}/release" "${args[@]}"
