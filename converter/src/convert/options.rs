//! What a caller chooses and provides for a conversion: the options, and the two traits it
//! implements (where output goes, who hears of progress).
//!
//! Kept apart from the driver so that the public surface of a conversion can be read (and
//! changed) without wading through how it is carried out.

use std::io::{self, Write};
use std::time::Instant;

use crate::decode::{DecodeMode, TypeMismatchPolicy, UnknownFieldPolicy};
use crate::parquet_options::ParquetOptions;
use crate::pipeline::ReadSettings;
use crate::schema::{Schema, TimestampUnit, MAP_KEY_THRESHOLD};

/// Where the schema comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaChoice {
    /// Given by the user.
    Explicit(Schema),
    /// Inferred from the whole input (optimistically from samples, see the module docs).
    Infer,
    /// Inferred from the first `n` records only.
    InferFirst(u64),
}

/// What to do with a line that cannot be converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop at the first one; nothing is written.
    #[default]
    Fail,
    /// Count it and go on; it is written to the error output if there is one.
    Skip,
    /// Write it to the error output (which must exist) and go on.
    Quarantine,
}

/// Everything that controls a conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertOptions {
    /// Schema strategy. Default: [`SchemaChoice::Infer`].
    pub schema: SchemaChoice,
    /// Unit of inferred timestamps. Default: microseconds.
    pub timestamp_unit: TimestampUnit,
    /// Bad-line policy. Default: [`OnError::Fail`].
    pub on_error: OnError,
    /// Unknown-field policy (fixed schemas only). Default: reject.
    pub unknown_fields: UnknownFieldPolicy,
    /// Type-mismatch policy (fixed schemas only). Default: reject.
    pub type_mismatch: TypeMismatchPolicy,
    /// Longest accepted line in bytes. Default: 16 MiB.
    pub max_line_bytes: usize,
    /// Decoding threads, and column-encoding threads. Default: the number of available cores.
    pub threads: usize,
    /// Target chunk size for parallel decoding. Default: 1 MiB.
    pub chunk_bytes: usize,
    /// Records sampled from the head of each source by [`SchemaChoice::Infer`]. Default: 1000.
    pub sample_rows: u64,
    /// Inference makes an object (below the top-level record) with more distinct keys than
    /// this a `MAP<string, V>` column rather than a struct of one column per key. Default:
    /// [`MAP_KEY_THRESHOLD`] (1000).
    pub map_key_threshold: usize,
    /// How each Parquet part is written; the conversion adds its own `ndjson_parquet.*` keys
    /// to the footer metadata given here.
    pub parquet: ParquetOptions,
    /// Start a new Parquet part once one reaches this size. Default: one part.
    pub max_file_bytes: Option<u64>,
    /// Give up (with [`ConvertError::DeadlineExceeded`](super::ConvertError::DeadlineExceeded)) once this instant passes.
    pub deadline: Option<Instant>,
    /// Succeed with no Parquet part when the input holds no valid record (every line blank or
    /// rejected). Default: false, such input is [`ConvertError::NothingToInfer`](super::ConvertError::NothingToInfer).
    pub empty_output_ok: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            schema: SchemaChoice::Infer,
            timestamp_unit: TimestampUnit::Microsecond,
            on_error: OnError::Fail,
            unknown_fields: UnknownFieldPolicy::Reject,
            type_mismatch: TypeMismatchPolicy::Reject,
            max_line_bytes: 16 * 1024 * 1024,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk_bytes: 1024 * 1024,
            sample_rows: 1000,
            map_key_threshold: MAP_KEY_THRESHOLD,
            parquet: ParquetOptions::default(),
            max_file_bytes: None,
            deadline: None,
            empty_output_ok: false,
        }
    }
}

/// Leaf columns up to which decoding uses [`ConvertOptions::chunk_bytes`] as given.
pub(crate) const NARROW_COLUMNS: usize = 256;

/// Most row × column slots a decoded batch of a wide schema should hold, when the typical
/// record size is known. Sparse records (6 keys of 5,000) are short for their column count, so
/// sizing their chunks by bytes alone gave batches of 570 rows × 5,000 columns (2.9 million
/// slots, about 17 MB with their definition levels), a dozen of them in flight: 334 MB peak
/// RSS. At this budget (210 rows there) the peak was 200 MB for 5% more time; smaller
/// batches cost more (71 rows: 50% more time), as every batch costs something per column.
pub(crate) const BATCH_SLOTS: usize = 1 << 20;

impl ConvertOptions {
    pub(crate) fn read_settings(&self) -> ReadSettings {
        ReadSettings {
            threads: self.threads.max(1),
            chunk_bytes: self.chunk_bytes.max(4096),
            max_line_bytes: self.max_line_bytes.max(1),
        }
    }

    /// Read settings for decoding against `schema`. Every row of a batch takes a slot in
    /// every column (Arrow has no sparse struct), so a schema wider than
    /// [`NARROW_COLUMNS`] gets proportionally smaller chunks: a batch then holds about as many
    /// slots as a normal chunk of a narrow schema, and memory stays bounded by rows × columns
    /// of the chunks in flight rather than growing with the number of keys.
    ///
    /// `record_bytes`, the typical size of a record (from the lines inference read), caps the
    /// chunks of a wide schema further at about [`BATCH_SLOTS`] slots: records that hold few
    /// of the columns are short, so a chunk of them holds many rows. Chunk boundaries depend
    /// only on the input (inference reads the same lines whatever the thread count), so the
    /// output stays the same for any `threads`.
    pub(crate) fn decode_settings(
        &self,
        schema: &crate::schema::Schema,
        record_bytes: Option<f64>,
    ) -> ReadSettings {
        let mut settings = self.read_settings();
        let columns = schema.leaf_columns().max(1);
        if columns > NARROW_COLUMNS {
            settings.chunk_bytes = (settings.chunk_bytes * NARROW_COLUMNS / columns).max(4096);
            if let Some(record_bytes) = record_bytes.filter(|b| b.is_finite() && *b >= 1.0) {
                let rows = (BATCH_SLOTS / columns).max(1) as f64;
                let slot_bound = (rows * record_bytes) as usize;
                settings.chunk_bytes = settings.chunk_bytes.min(slot_bound.max(4096));
            }
        }
        settings
    }

    pub(crate) fn fixed_mode(&self) -> DecodeMode {
        DecodeMode::Fixed {
            unknown_fields: self.unknown_fields,
            type_mismatch: self.type_mismatch,
        }
    }
}

/// Stages a conversion goes through, for progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Reading the head of each source to guess the schema.
    Sampling,
    /// Reading input to infer the schema.
    Inferring,
    /// Converting (attempt 1, or a later one after the schema widened).
    Converting {
        /// 1-based attempt number.
        attempt: u32,
    },
}

/// Receives progress. Implementations must be cheap: `advance` is called once per chunk.
pub trait Progress: Sync {
    /// A new phase starts; `raw_total` is the raw input size if every source knows its size.
    fn phase(&self, _phase: Phase, _raw_total: Option<u64>) {}
    /// Raw (possibly compressed) input bytes read so far in this phase.
    fn advance(&self, _raw_bytes: u64) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Where a conversion writes.
///
/// Contract: each call returns a fresh, empty writer; a writer that is dropped without being
/// returned inside [`Converted`](super::Converted) belongs to an abandoned attempt (a restart or a failure)
/// and its content must never become visible as output. Parquet parts are numbered from 0
/// within an attempt; a restart asks for part 0 again.
pub trait Destination {
    /// Receives one Parquet part's bytes, footer included; handed back in
    /// [`Converted::parts`](super::Converted::parts) for the caller to commit.
    type Parquet: Write + Send;
    /// Receives the NDJSON error records (see [`crate::reject`]), one per rejected line.
    type Rejects: Write + Send;
    /// Opens Parquet part `part` (0 unless [`ConvertOptions::max_file_bytes`] splits output).
    fn parquet(&mut self, part: usize) -> io::Result<Self::Parquet>;
    /// Opens the error output, if there is one.
    fn rejects(&mut self) -> io::Result<Option<Self::Rejects>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, FieldType};

    fn wide(columns: usize) -> Schema {
        Schema::new(
            (0..columns)
                .map(|i| Field::new(format!("c{i}"), FieldType::Int64))
                .collect(),
        )
    }

    #[test]
    fn wide_schemas_of_short_records_get_chunks_of_a_bounded_number_of_slots() {
        let options = ConvertOptions {
            chunk_bytes: 1 << 20,
            ..ConvertOptions::default()
        };
        // Narrow: as given, whatever the records.
        assert_eq!(
            options.decode_settings(&wide(10), Some(90.0)).chunk_bytes,
            1 << 20
        );
        // Wide and dense (long records): by columns alone.
        let dense = options.decode_settings(&wide(1000), Some(14_000.0));
        assert_eq!(dense.chunk_bytes, (1 << 20) * NARROW_COLUMNS / 1000);
        assert_eq!(
            options.decode_settings(&wide(1000), None).chunk_bytes,
            dense.chunk_bytes
        );
        // Wide and sparse (6 keys of 5,000 in 94 bytes): about BATCH_SLOTS slots a chunk.
        let sparse = options.decode_settings(&wide(5000), Some(94.0)).chunk_bytes;
        assert_eq!(sparse, BATCH_SLOTS / 5000 * 94);
        assert_eq!(
            options
                .decode_settings(&wide(50_000), Some(10.0))
                .chunk_bytes,
            4096,
            "never below one page"
        );
    }
}
