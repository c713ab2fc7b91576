//! What a conversion leaves behind: its summary, its outputs, and the footer metadata keys
//! every Parquet part carries.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::decode::LineStats;
use crate::reject::RejectKind;
use crate::schema::Schema;

/// Key of the footer metadata entry holding the schema (in the schema file format).
pub const METADATA_SCHEMA: &str = "ndjson_parquet.schema";
/// Key of the footer metadata entry holding the source names (a JSON array).
pub const METADATA_SOURCES: &str = "ndjson_parquet.sources";
/// Key of the footer metadata entry holding the version of this tool.
pub const METADATA_VERSION: &str = "ndjson_parquet.version";

/// Counts and facts of a finished conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Line accounting (`lines == rows + rejected + blank`).
    pub stats: LineStats,
    /// Rejected lines by kind.
    pub rejects_by_kind: BTreeMap<RejectKind, u64>,
    /// Raw input bytes read by the final attempt (compressed size for compressed input).
    pub raw_bytes: u64,
    /// Parquet bytes written.
    pub output_bytes: u64,
    /// Row groups written.
    pub row_groups: usize,
    /// The schema the output was written with.
    pub schema: Schema,
    /// How often conversion restarted because the sampled schema was too narrow.
    pub restarts: u32,
    /// Number columns inference widened beyond int64/float64 to keep every value exact
    /// (zero with an explicit schema).
    pub widenings: crate::infer::Widenings,
    /// Keys inference mapped onto a column spelled with other letter case (column names are
    /// unique case-insensitively).
    pub case_variants: u64,
    /// Wall time of the whole conversion, inference included.
    pub elapsed: Duration,
}

impl Summary {
    /// Decompressed input throughput in MB/s (10^6 bytes per second).
    pub fn megabytes_per_second(&self) -> f64 {
        self.stats.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The outputs of a successful conversion, to be committed by the caller.
#[derive(Debug)]
pub struct Converted<P, R> {
    /// Counts and facts of the final attempt (only `restarts` and `elapsed` span them all).
    pub summary: Summary,
    /// The complete Parquet parts, in order: at least one, except with
    /// [`ConvertOptions::empty_output_ok`](super::ConvertOptions::empty_output_ok) and no valid record.
    pub parts: Vec<P>,
    /// The complete error output, if any.
    pub rejects: Option<R>,
}
