#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (a project-local
# Python venv with pinned pyarrow and duckdb, the independent Parquet readers), then runs
# formatting and lint checks and every Rust test.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
export NDJSON_PARQUET_PYTHON="$PWD/$venv/bin/python"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
