#!/usr/bin/env bash
# The whole pipeline on a local AWS, one command: starts moto's server on 127.0.0.1, creates the
# resources with `terraform apply` of tests/terraform/local (the root module terraform/, its
# provider pointed at the emulator: buckets with notifications, queue and DLQ, tracking table,
# KMS key, IAM roles, both functions, the sweep rule, the state machine, alarms), runs the
# release builds of manifest-builder and converter-lambda as the Lambda functions Terraform
# created, uploads the files given (default: the bundled examples/), waits for the flow to
# finish, prints what happened and runs `terraform destroy`.
#
#   scripts/local-pipeline.sh [--keep] [FILE...]
#
# Needs terraform and a filesystem mirror of the hashicorp/aws provider (found under /opt/tf-plugins
# or $NDJSON_PARQUET_TF_PLUGIN_DIR; no registry is used). Output lands in target/local-pipeline/
# (Parquet and error objects, function logs, terraform/*.log, emulator.log).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

cargo build --release --locked -p manifest-builder -p converter --features converter/aws --bin manifest-builder --bin converter-lambda

args=("$@")
files=0
for arg in "${args[@]+"${args[@]}"}"; do
  case "$arg" in --*) ;; *) files=$((files + 1)) ;; esac
done
if [ "$files" -eq 0 ]; then
  args+=(examples/*.ndjson*)
fi
exec "$venv/bin/python" -m tools.local_aws --binaries "${CARGO_TARGET_DIR:-target}/release" "${args[@]}"
