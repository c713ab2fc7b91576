//! Support code for ndjson-parquet's integration tests and benchmarks.
