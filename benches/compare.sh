#!/usr/bin/env bash
# Compares ndjson-parquet with DuckDB, Polars, pyarrow and Spark (what the Glue job runs) on the same generated files (1 GiB
# clickstream, logs and wide rows; 4 GiB clickstream for the memory check), as whole processes,
# and writes benches/RESULTS.md and benches/results.png. Then builds the CLI with S3 support and
# measures it reading the same kind of data from a shaped local S3 (benches/compare_s3.py:
# 4 x 256 MiB and 1,000 x 100 KB objects, 30 ms first-byte latency, 80 MB/s per connection),
# which writes benches/RESULTS-S3.md. Needs about 10 GB of free disk.
#
#   ./benches/compare.sh            # RUNS=3 by default
#   S3_ONLY=1 ./benches/compare.sh  # only the S3 part
#   CPU_ONLY=1 ./benches/compare.sh # only CPU per byte and cost per TB vs Spark (RESULTS-CPU.md)
set -euo pipefail
cd "$(dirname "$0")/.."

data=${DATA_DIR:-bench-data}
venv=.venv-bench
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r benches/requirements.txt

release=${CARGO_TARGET_DIR:-target}/release
cargo build --release --locked -p converter --bin ndjson-parquet -p ndjson-parquet-suite --bin gen-ndjson
mkdir -p "$data"
generate() {
  local shape=$1 size=$2 file="$data/$1-$3.ndjson"
  if [ ! -s "$file" ]; then
    "$release/gen-ndjson" "$shape" "$size" > "$file"
  fi
}
if [ -n "${CPU_ONLY:-}" ]; then
  # Only CPU per byte and the cost per TB against Spark priced as Glue (benches/RESULTS-CPU.md),
  # on 300 MB of each shape: Spark takes about a minute per GB here.
  for shape in clickstream logs wide; do generate "$shape" 300M 300m; done
  "$venv/bin/python" benches/compare.py --cpu-only --size-tag 300m --binary "$release/ndjson-parquet" \
    --data "$data" --out benches/RESULTS-CPU.md --runs "${RUNS:-3}"
  exit 0
fi
generate clickstream 1G 1g
if [ -z "${S3_ONLY:-}" ]; then
  generate logs 1G 1g
  generate wide 1G 1g
  generate clickstream 4G 4g

  "$venv/bin/python" benches/compare.py --binary "$release/ndjson-parquet" --data "$data" \
    --out benches/RESULTS.md --runs "${RUNS:-3}"
fi

# The same CLI with S3 support (it replaces the binary above), reading through tools/slow_s3.
cargo build --release --locked -p converter --features aws --bin ndjson-parquet
"$venv/bin/python" benches/compare_s3.py --binary "$release/ndjson-parquet" --gen "$release/gen-ndjson" \
  --data "$data" --out benches/RESULTS-S3.md --runs "${RUNS:-3}"
