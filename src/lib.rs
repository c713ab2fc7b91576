//! Support code for ndjson-parquet's integration tests and benchmarks: the deterministic data
//! generator they share.

pub mod datagen;
