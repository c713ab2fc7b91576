//! Conversion: sources in, one Parquet stream (and optionally an error stream) out.
//!
//! Schema strategy ([`SchemaChoice`]):
//! * `Explicit`: the user's schema; unknown fields and misfits follow the policies.
//! * `Infer` (the default): the schema is inferred from the first `sample_rows` records of
//!   every source, then conversion starts. If a later record proves the sample too narrow,
//!   the schema is widened by inferring the rest of the input (from the source where that
//!   happened), and conversion restarts from the beginning into fresh outputs. The result is
//!   exactly what inferring the whole input first would give, but homogeneous input is read
//!   only once. Needs re-readable sources (not stdin).
//! * `InferFirst(n)`: the schema comes from the first `n` records only; later records follow
//!   the policies, as with an explicit schema. Works on stdin (the head is replayed).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parquet::errors::ParquetError;

use crate::chunk::{Chunker, Piece};
use crate::decode::{
    DecodeMode, DecodedChunk, LineStats, Misfit, RecordDecoder, TypeMismatchPolicy,
    UnknownFieldPolicy,
};
use crate::infer::{Inference, LineInference};
use crate::input::{decompressed, Source};
use crate::parquet_options::ParquetOptions;
use crate::parquet_writer::{adapt_dictionary, ParallelWriter};
use crate::pipeline::{run_ordered, Flow, ReadFailure, ReadSettings};
use crate::reject::{RejectKind, RejectedLine};
use crate::schema::{Schema, TimestampUnit};

/// Key of the footer metadata entry holding the schema (in the schema file format).
pub const METADATA_SCHEMA: &str = "ndjson_parquet.schema";
/// Key of the footer metadata entry holding the source names (a JSON array).
pub const METADATA_SOURCES: &str = "ndjson_parquet.sources";
/// Key of the footer metadata entry holding the version of this tool.
pub const METADATA_VERSION: &str = "ndjson_parquet.version";

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
    /// Parquet settings.
    pub parquet: ParquetOptions,
    /// Start a new Parquet part once one reaches this size. Default: one part.
    pub max_file_bytes: Option<u64>,
    /// Give up (with [`ConvertError::DeadlineExceeded`]) once this instant passes.
    pub deadline: Option<Instant>,
    /// Succeed with no Parquet part when the input holds no valid record (every line blank or
    /// rejected). Default: false, such input is [`ConvertError::NothingToInfer`].
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
            parquet: ParquetOptions::default(),
            max_file_bytes: None,
            deadline: None,
            empty_output_ok: false,
        }
    }
}

impl ConvertOptions {
    fn read_settings(&self) -> ReadSettings {
        ReadSettings {
            threads: self.threads.max(1),
            chunk_bytes: self.chunk_bytes.max(4096),
            max_line_bytes: self.max_line_bytes.max(1),
        }
    }

    fn fixed_mode(&self) -> DecodeMode {
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
/// returned inside [`Converted`] belongs to an abandoned attempt (a restart or a failure)
/// and its content must never become visible as output. Parquet parts are numbered from 0
/// within an attempt; a restart asks for part 0 again.
pub trait Destination {
    /// The Parquet writer.
    type Parquet: Write + Send;
    /// The error-record writer.
    type Rejects: Write + Send;
    /// Opens Parquet part `part` (0 unless [`ConvertOptions::max_file_bytes`] splits output).
    fn parquet(&mut self, part: usize) -> io::Result<Self::Parquet>;
    /// Opens the error output, if there is one.
    fn rejects(&mut self) -> io::Result<Option<Self::Rejects>>;
}

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
    /// What happened.
    pub summary: Summary,
    /// The complete Parquet parts, in order: at least one, except with
    /// [`ConvertOptions::empty_output_ok`] and no valid record.
    pub parts: Vec<P>,
    /// The complete error output, if any.
    pub rejects: Option<R>,
}

/// A schema inferred over (part of) the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Inferred {
    /// The schema.
    pub schema: Schema,
    /// Valid records seen.
    pub records: u64,
    /// Lines seen (including blank and invalid ones).
    pub lines: u64,
    /// Lines that are not valid records (they do not shape the schema).
    pub invalid: u64,
}

/// Why a conversion failed. Nothing it wrote may be used.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A source could not be opened.
    #[error("cannot open {source_name}")]
    Open {
        /// The source.
        source_name: String,
        /// Why.
        #[source]
        error: io::Error,
    },
    /// A source could not be read to its end (I/O error, corrupt or truncated compression).
    #[error("cannot read {source_name} past byte {offset} of its decompressed content")]
    Read {
        /// The source.
        source_name: String,
        /// Decompressed bytes read before the failure.
        offset: u64,
        /// Why.
        #[source]
        error: io::Error,
    },
    /// A line could not be converted and the policy is to fail.
    #[error("{source_name}: line {line}: {reason}")]
    BadLine {
        /// The source.
        source_name: String,
        /// 1-based line number.
        line: u64,
        /// Byte offset of the line in the decompressed source.
        offset: u64,
        /// Category.
        kind: RejectKind,
        /// Cause.
        reason: String,
    },
    /// The Parquet writer failed.
    #[error("cannot write Parquet")]
    Parquet(#[source] ParquetError),
    /// The Parquet output could not be opened or written.
    #[error("cannot write the Parquet output")]
    Output(#[source] io::Error),
    /// The error output could not be opened or written.
    #[error("cannot write the error output")]
    RejectOutput(#[source] io::Error),
    /// A stream (standard input, a pipe) without a way to know the schema up front.
    #[error("{source_name} is a stream that can be read only once: pass --schema, or --infer-rows N to infer from its first N records")]
    NeedsSchema {
        /// The stream.
        source_name: String,
    },
    /// `OnError::Quarantine` without an error output.
    #[error("quarantine needs an error output (--errors PATH)")]
    QuarantineWithoutOutput,
    /// Inference found nothing to build a schema from.
    #[error("cannot infer a schema: the input holds no valid records ({lines} lines read); pass --schema to write an empty file")]
    NothingToInfer {
        /// Lines read.
        lines: u64,
    },
    /// Every record is `{}`: Parquet cannot store rows without columns, so they would be lost.
    #[error("the {rows} records hold no fields at all (every one is `{{}}`), and Parquet cannot store rows without columns")]
    NoColumns {
        /// Records read.
        rows: u64,
    },
    /// [`ConvertOptions::deadline`] passed before the conversion finished.
    #[error("the conversion did not finish before its deadline")]
    DeadlineExceeded,
    /// The schema widened more often than possible for unchanging input.
    #[error(
        "the input changed while it was being converted (its schema widened {restarts} times)"
    )]
    SchemaUnstable {
        /// Restarts so far.
        restarts: u32,
    },
}

fn read_error(sources: &[Arc<dyn Source>], failure: ReadFailure) -> ConvertError {
    match failure {
        ReadFailure::Open { source, error } => ConvertError::Open {
            source_name: sources[source].name().to_string(),
            error,
        },
        ReadFailure::Read {
            source,
            offset,
            error,
        } => ConvertError::Read {
            source_name: sources[source].name().to_string(),
            offset,
            error,
        },
    }
}

/// Converts `sources` into one Parquet output (see the module docs for the schema strategy).
pub fn convert<D: Destination>(
    sources: &[Arc<dyn Source>],
    options: &ConvertOptions,
    destination: &mut D,
    progress: &dyn Progress,
) -> Result<Converted<D::Parquet, D::Rejects>, ConvertError> {
    let started = Instant::now();
    let (mut schema, mode) = match &options.schema {
        SchemaChoice::Explicit(schema) => (schema.clone(), options.fixed_mode()),
        SchemaChoice::InferFirst(limit) => {
            let inferred = infer_schema(sources, options, Some(*limit), progress)?;
            if inferred.records == 0 {
                return Err(ConvertError::NothingToInfer {
                    lines: inferred.lines,
                });
            }
            (inferred.schema, options.fixed_mode())
        }
        SchemaChoice::Infer => {
            if let Some(stream) = sources.iter().find(|s| !s.can_reopen()) {
                return Err(ConvertError::NeedsSchema {
                    source_name: stream.name().to_string(),
                });
            }
            (
                sample_schema(sources, options, progress)?,
                DecodeMode::Optimistic,
            )
        }
    };
    let mut restarts = 0u32;
    loop {
        let rejects = destination.rejects().map_err(ConvertError::RejectOutput)?;
        if options.on_error == OnError::Quarantine && rejects.is_none() {
            return Err(ConvertError::QuarantineWithoutOutput);
        }
        progress.phase(
            Phase::Converting {
                attempt: restarts + 1,
            },
            raw_total(sources),
        );
        match attempt(
            sources,
            options,
            &schema,
            mode,
            destination,
            rejects,
            progress,
        )? {
            Attempt::Done(mut converted) => {
                if schema.fields.is_empty() {
                    let stats = converted.summary.stats;
                    if stats.rows > 0 {
                        return Err(ConvertError::NoColumns { rows: stats.rows });
                    }
                    if !options.empty_output_ok {
                        return Err(ConvertError::NothingToInfer { lines: stats.lines });
                    }
                }
                converted.summary.restarts = restarts;
                converted.summary.elapsed = started.elapsed();
                return Ok(converted);
            }
            Attempt::Misfit(misfit) => {
                if restarts >= 2 {
                    return Err(ConvertError::SchemaUnstable { restarts });
                }
                restarts += 1;
                tracing::info!(
                    source = sources[misfit.source].name(),
                    line = misfit.line,
                    reason = %misfit.reason,
                    "sampled schema too narrow; widening it and starting again"
                );
                schema = widen_schema(sources, options, misfit.source, schema, progress)?;
            }
        }
    }
}

fn raw_total(sources: &[Arc<dyn Source>]) -> Option<u64> {
    sources.iter().map(|s| s.size_hint()).sum()
}

/// Counts what the Parquet writer hands to the destination.
struct CountingWriter<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Attempt<P, R> {
    Done(Converted<P, R>),
    Misfit(Misfit),
}

enum Decoded {
    Chunk(DecodedChunk),
    TooLong(RejectedLine),
}

/// Records one rejected line according to the policy.
fn take_reject<R: Write>(
    sources: &[Arc<dyn Source>],
    on_error: OnError,
    reject: RejectedLine,
    out: &mut Option<R>,
    by_kind: &mut BTreeMap<RejectKind, u64>,
) -> Result<(), ConvertError> {
    let source_name = sources[reject.source].name();
    if on_error == OnError::Fail {
        return Err(ConvertError::BadLine {
            source_name: source_name.to_string(),
            line: reject.line,
            offset: reject.offset,
            kind: reject.kind,
            reason: reject.reason,
        });
    }
    *by_kind.entry(reject.kind).or_default() += 1;
    if let Some(out) = out {
        reject
            .write_record(source_name, out)
            .map_err(ConvertError::RejectOutput)?;
    }
    Ok(())
}

fn footer_metadata(sources: &[Arc<dyn Source>], schema: &Schema) -> Vec<(String, String)> {
    let names: Vec<&str> = sources.iter().map(|s| s.name()).collect();
    vec![
        (METADATA_SCHEMA.to_string(), schema.to_compact_json()),
        (
            METADATA_SOURCES.to_string(),
            serde_json::to_string(&names).expect("invariant: names serialize"),
        ),
        (
            METADATA_VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ]
}

/// Writes batches into numbered Parquet parts, starting a new part once the current one
/// reaches `max_file_bytes` (at a row-group boundary). Parts are opened lazily, so no part is
/// empty unless the whole output is.
struct PartWriter<'d, D: Destination> {
    destination: &'d mut D,
    schema: arrow::datatypes::SchemaRef,
    properties: parquet::file::properties::WriterProperties,
    max_file_bytes: Option<u64>,
    current: Option<ParallelWriter<CountingWriter<D::Parquet>>>,
    threads: usize,
    parts: Vec<D::Parquet>,
    output_bytes: u64,
    row_groups: usize,
}

impl<D: Destination> PartWriter<'_, D> {
    fn write(&mut self, batch: &arrow::array::RecordBatch) -> Result<(), ConvertError> {
        if self.current.is_none() {
            let writer = self.open(Some(batch))?;
            self.current = Some(writer);
        }
        let writer = self.current.as_mut().expect("invariant: a part is open");
        writer.write(batch).map_err(ConvertError::Parquet)?;
        if let Some(max) = self.max_file_bytes {
            if writer.bytes_written() as u64 + writer.in_progress_size() as u64 >= max {
                self.close_current()?;
            }
        }
        Ok(())
    }

    /// Opens the next part; its first batch decides which columns skip dictionary encoding.
    fn open(
        &mut self,
        first: Option<&arrow::array::RecordBatch>,
    ) -> Result<ParallelWriter<CountingWriter<D::Parquet>>, ConvertError> {
        let out = self
            .destination
            .parquet(self.parts.len())
            .map_err(ConvertError::Output)?;
        let properties = match first {
            Some(batch) => adapt_dictionary(self.properties.clone(), batch),
            None => self.properties.clone(),
        };
        ParallelWriter::try_new(
            CountingWriter {
                inner: out,
                written: 0,
            },
            Arc::clone(&self.schema),
            properties,
            self.threads,
        )
        .map_err(ConvertError::Parquet)
    }

    fn close_current(&mut self) -> Result<(), ConvertError> {
        let Some(mut writer) = self.current.take() else {
            return Ok(());
        };
        writer.flush().map_err(ConvertError::Parquet)?;
        self.row_groups += writer.row_groups();
        let counted = writer.into_inner().map_err(ConvertError::Parquet)?;
        self.output_bytes += counted.written;
        let mut part = counted.inner;
        part.flush().map_err(ConvertError::Output)?;
        self.parts.push(part);
        Ok(())
    }

    /// Closes the last part; an output without rows still gets one (empty) part.
    fn finish(mut self) -> Result<(Vec<D::Parquet>, u64, usize), ConvertError> {
        // A schema without fields has no Parquet form (and then there are no rows either).
        if self.current.is_none() && self.parts.is_empty() && !self.schema.fields().is_empty() {
            self.current = Some(self.open(None)?);
        }
        self.close_current()?;
        Ok((self.parts, self.output_bytes, self.row_groups))
    }
}

#[allow(clippy::too_many_arguments)]
fn attempt<D: Destination>(
    sources: &[Arc<dyn Source>],
    options: &ConvertOptions,
    schema: &Schema,
    mode: DecodeMode,
    destination: &mut D,
    mut rejects: Option<D::Rejects>,
    progress: &dyn Progress,
) -> Result<Attempt<D::Parquet, D::Rejects>, ConvertError> {
    let decoder = RecordDecoder::new(schema, mode, options.max_line_bytes);
    let mut parquet_options = options.parquet.clone();
    parquet_options
        .metadata
        .extend(footer_metadata(sources, schema));
    let mut parts = PartWriter {
        destination,
        schema: Arc::clone(decoder.arrow_schema()),
        properties: parquet_options.writer_properties(),
        max_file_bytes: options.max_file_bytes,
        current: None,
        // As many column-encoder threads as decoders: compression costs about as much CPU as
        // decoding, and the OS shares the cores between the two stages as the load shifts.
        threads: options.threads.max(1),
        parts: Vec::new(),
        output_bytes: 0,
        row_groups: 0,
    };

    let raw_bytes = Arc::new(AtomicU64::new(0));
    let mut stats = LineStats::default();
    let mut by_kind = BTreeMap::new();
    let mut misfit = None;
    run_ordered(
        sources,
        0,
        options.read_settings(),
        &raw_bytes,
        |piece| match piece {
            Piece::Lines(chunk) => Decoded::Chunk(decoder.decode(chunk)),
            Piece::TooLong(reject) => Decoded::TooLong(reject.clone()),
        },
        |item| {
            if options.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ConvertError::DeadlineExceeded);
            }
            match item.map_err(|f| read_error(sources, f))? {
                Decoded::TooLong(reject) => {
                    stats.lines += 1;
                    stats.rejected += 1;
                    stats.bytes += reject.line_bytes + 1;
                    take_reject(
                        sources,
                        options.on_error,
                        reject,
                        &mut rejects,
                        &mut by_kind,
                    )?;
                }
                Decoded::Chunk(decoded) => {
                    if let Some(found) = decoded.misfit {
                        misfit = Some(found);
                        return Ok(Flow::Stop);
                    }
                    for reject in decoded.rejects {
                        take_reject(
                            sources,
                            options.on_error,
                            reject,
                            &mut rejects,
                            &mut by_kind,
                        )?;
                    }
                    stats += decoded.stats;
                    if let Some(batch) = decoded.batch {
                        parts.write(&batch)?;
                    }
                }
            }
            progress.advance(raw_bytes.load(Ordering::Relaxed));
            Ok::<_, ConvertError>(Flow::Continue)
        },
    )?;
    if let Some(misfit) = misfit {
        return Ok(Attempt::Misfit(misfit));
    }

    let (parts, output_bytes, row_groups) = parts.finish()?;
    if let Some(out) = rejects.as_mut() {
        out.flush().map_err(ConvertError::RejectOutput)?;
    }
    debug_assert_eq!(stats.lines, stats.rows + stats.rejected + stats.blank);
    Ok(Attempt::Done(Converted {
        summary: Summary {
            stats,
            rejects_by_kind: by_kind,
            raw_bytes: raw_bytes.load(Ordering::Relaxed),
            output_bytes,
            row_groups,
            schema: schema.clone(),
            restarts: 0,
            elapsed: Duration::ZERO,
        },
        parts,
        rejects,
    }))
}

/// Infers the schema of `sources`: all of it, or only the first `limit` records.
pub fn infer_schema(
    sources: &[Arc<dyn Source>],
    options: &ConvertOptions,
    limit: Option<u64>,
    progress: &dyn Progress,
) -> Result<Inferred, ConvertError> {
    progress.phase(Phase::Inferring, raw_total(sources));
    match limit {
        Some(limit) => infer_sequential(sources, options, limit, false, progress),
        None => infer_parallel(sources, options, 0, Schema::default(), progress),
    }
}

/// Samples the head of every source.
fn sample_schema(
    sources: &[Arc<dyn Source>],
    options: &ConvertOptions,
    progress: &dyn Progress,
) -> Result<Schema, ConvertError> {
    progress.phase(Phase::Sampling, None);
    Ok(infer_sequential(sources, options, options.sample_rows, true, progress)?.schema)
}

/// Widens `schema` with everything in `sources[from..]`.
fn widen_schema(
    sources: &[Arc<dyn Source>],
    options: &ConvertOptions,
    from: usize,
    schema: Schema,
    progress: &dyn Progress,
) -> Result<Schema, ConvertError> {
    progress.phase(Phase::Inferring, raw_total(&sources[from..]));
    Ok(infer_parallel(sources, options, from, schema, progress)?.schema)
}

/// Infers from the first `limit` records: of every source (`per_source`), or in total.
fn infer_sequential(
    sources: &[Arc<dyn Source>],
    options: &ConvertOptions,
    limit: u64,
    per_source: bool,
    progress: &dyn Progress,
) -> Result<Inferred, ConvertError> {
    let mut inference = Inference::new(options.timestamp_unit);
    let mut lines = 0u64;
    let mut invalid = 0u64;
    let raw_bytes = Arc::new(AtomicU64::new(0));
    // Small chunks: only the head of a source is wanted.
    let chunk_bytes = 64 * 1024;
    'sources: for (index, source) in sources.iter().enumerate() {
        let records_before = inference.records();
        if !per_source && records_before >= limit {
            break;
        }
        let reader = source
            .open()
            .and_then(|raw| decompressed(raw, Arc::clone(&raw_bytes)))
            .map_err(|error| ConvertError::Open {
                source_name: source.name().to_string(),
                error,
            })?;
        let mut chunker = Chunker::new(reader.1, index, chunk_bytes, options.max_line_bytes);
        loop {
            let offset = chunker.position();
            let piece = match chunker.next() {
                None => break,
                Some(Ok(piece)) => piece,
                Some(Err(error)) => {
                    return Err(ConvertError::Read {
                        source_name: source.name().to_string(),
                        offset,
                        error,
                    })
                }
            };
            let Piece::Lines(chunk) = piece else {
                lines += 1;
                invalid += 1;
                continue;
            };
            for (_, _, line) in chunk.lines() {
                let taken = inference.records() - if per_source { records_before } else { 0 };
                if taken >= limit {
                    if per_source {
                        continue 'sources;
                    }
                    break 'sources;
                }
                lines += 1;
                if !infer_line(&mut inference, line, options.max_line_bytes) {
                    invalid += 1;
                }
            }
            progress.advance(raw_bytes.load(Ordering::Relaxed));
        }
    }
    Ok(Inferred {
        records: inference.records(),
        schema: inference.into_schema(),
        lines,
        invalid,
    })
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// Infers one line; false if it is not a valid record. A line the decoder will reject as too
/// long must not shape the schema either (a chunk may hold lines longer than the limit).
fn infer_line(inference: &mut Inference, line: &[u8], max_line_bytes: usize) -> bool {
    if is_blank(line) {
        return true;
    }
    line.len() <= max_line_bytes && inference.add_line(line) != LineInference::Invalid
}

struct PartialInference {
    inference: Inference,
    lines: u64,
    invalid: u64,
}

/// Infers over all of `sources[from..]`, starting from `base`, chunks in parallel.
fn infer_parallel(
    sources: &[Arc<dyn Source>],
    options: &ConvertOptions,
    from: usize,
    base: Schema,
    progress: &dyn Progress,
) -> Result<Inferred, ConvertError> {
    let unit = options.timestamp_unit;
    let raw_bytes = Arc::new(AtomicU64::new(0));
    let mut total = Inference::from_schema(base.clone(), unit);
    let mut lines = 0u64;
    let mut invalid = 0u64;
    run_ordered(
        sources,
        from,
        options.read_settings(),
        &raw_bytes,
        |piece| {
            let mut part = PartialInference {
                inference: Inference::from_schema(base.clone(), unit),
                lines: 0,
                invalid: 0,
            };
            match piece {
                Piece::TooLong(_) => {
                    part.lines = 1;
                    part.invalid = 1;
                }
                Piece::Lines(chunk) => {
                    for (_, _, line) in chunk.lines() {
                        part.lines += 1;
                        if !infer_line(&mut part.inference, line, options.max_line_bytes) {
                            part.invalid += 1;
                        }
                    }
                }
            }
            part
        },
        |item| {
            let part = item.map_err(|f| read_error(sources, f))?;
            total.merge(&part.inference);
            lines += part.lines;
            invalid += part.invalid;
            progress.advance(raw_bytes.load(Ordering::Relaxed));
            Ok::<_, ConvertError>(Flow::Continue)
        },
    )?;
    Ok(Inferred {
        records: total.records(),
        schema: total.into_schema(),
        lines,
        invalid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::MemorySource;

    #[derive(Default)]
    struct Memory {
        opened: Vec<usize>,
    }

    impl Destination for Memory {
        type Parquet = Vec<u8>;
        type Rejects = Vec<u8>;

        fn parquet(&mut self, part: usize) -> io::Result<Vec<u8>> {
            self.opened.push(part);
            Ok(Vec::new())
        }

        fn rejects(&mut self) -> io::Result<Option<Vec<u8>>> {
            Ok(None)
        }
    }

    fn rows_of(part: Vec<u8>) -> Vec<i64> {
        use arrow::array::AsArray;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(part),
        )
        .unwrap()
        .build()
        .unwrap();
        reader
            .flat_map(|b| {
                let b = b.unwrap();
                b.column(0)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn output_rolls_into_parts_that_keep_every_row_in_order() {
        let text: String = (0..20_000)
            .map(|i| format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", i * 7919 % 10007))
            .collect();
        let sources: Vec<Arc<dyn Source>> =
            vec![Arc::new(MemorySource::new("in", text.into_bytes()))];
        let options = ConvertOptions {
            max_file_bytes: Some(15_000),
            chunk_bytes: 4096,
            parquet: ParquetOptions {
                row_group_rows: 1000,
                ..ParquetOptions::default()
            },
            ..ConvertOptions::default()
        };
        let mut destination = Memory::default();
        let converted = convert(&sources, &options, &mut destination, &NoProgress).unwrap();
        assert!(converted.parts.len() > 3, "{} parts", converted.parts.len());
        assert_eq!(
            destination.opened,
            (0..converted.parts.len()).collect::<Vec<_>>()
        );
        let rows: Vec<i64> = converted.parts.into_iter().flat_map(rows_of).collect();
        assert_eq!(rows, (0..20_000).collect::<Vec<_>>());
    }

    #[test]
    fn parts_and_row_groups_do_not_depend_on_the_thread_count() {
        let text: String = (0..30_000)
            .map(|i| {
                format!(
                    "{{\"i\":{i},\"s\":\"v{}\",\"f\":{}.5}}\n",
                    i * 7919 % 10007,
                    i % 100
                )
            })
            .collect();
        let sources: Vec<Arc<dyn Source>> =
            vec![Arc::new(MemorySource::new("in", text.into_bytes()))];
        let run = |threads: usize| {
            let options = ConvertOptions {
                threads,
                max_file_bytes: Some(60_000),
                chunk_bytes: 4096,
                parquet: ParquetOptions {
                    row_group_bytes: 20_000,
                    ..ParquetOptions::default()
                },
                ..ConvertOptions::default()
            };
            convert(&sources, &options, &mut Memory::default(), &NoProgress)
                .unwrap()
                .parts
        };
        let one = run(1);
        assert!(one.len() > 2, "{} parts", one.len());
        for threads in [2, 3, 5] {
            assert_eq!(run(threads), one, "{threads} threads");
        }
    }

    #[test]
    fn an_output_without_rows_is_one_empty_part() {
        let sources: Vec<Arc<dyn Source>> = vec![Arc::new(MemorySource::new("in", &b"\n\n"[..]))];
        let schema = Schema::from_json(r#"{"fields":[{"name":"i","type":"int64"}]}"#).unwrap();
        let options = ConvertOptions {
            schema: SchemaChoice::Explicit(schema),
            max_file_bytes: Some(10),
            ..ConvertOptions::default()
        };
        let converted = convert(&sources, &options, &mut Memory::default(), &NoProgress).unwrap();
        assert_eq!(converted.parts.len(), 1);
        assert!(rows_of(converted.parts.into_iter().next().unwrap()).is_empty());
    }

    #[test]
    fn a_passed_deadline_stops_the_conversion() {
        let sources: Vec<Arc<dyn Source>> =
            vec![Arc::new(MemorySource::new("in", &b"{\"a\":1}\n"[..]))];
        let options = ConvertOptions {
            deadline: Some(Instant::now()),
            ..ConvertOptions::default()
        };
        let error = convert(&sources, &options, &mut Memory::default(), &NoProgress).unwrap_err();
        assert!(matches!(error, ConvertError::DeadlineExceeded));
    }
}
