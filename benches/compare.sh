#!/usr/bin/env bash
# Compares ndjson-parquet with DuckDB, Polars and pyarrow on the same generated files (1 GiB
# clickstream, logs and wide rows; 4 GiB clickstream for the memory check), as whole processes,
# and writes benches/RESULTS.md and benches/results.png. Needs about 8 GB of free disk.
#
#   ./benches/compare.sh            # RUNS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."

data=${DATA_DIR:-bench-data}
venv=.venv-bench
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r benches/requirements.txt

cargo build --release --locked -p converter --bin ndjson-parquet -p ndjson-parquet-suite --bin gen-ndjson
mkdir -p "$data"
generate() {
  local shape=$1 size=$2 file="$data/$1-$3.ndjson"
  if [ ! -s "$file" ]; then
    target/release/gen-ndjson "$shape" "$size" > "$file"
  fi
}
generate clickstream 1G 1g
generate logs 1G 1g
generate wide 1G 1g
generate clickstream 4G 4g

"$venv/bin/python" benches/compare.py --binary target/release/ndjson-parquet --data "$data" \
  --out benches/RESULTS.md --runs "${RUNS:-3}"
