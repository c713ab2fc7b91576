//! Schema inference over whole sources: reading them (in parallel where the whole input is
//! wanted, sequentially for a head sample) and feeding every line to an [`Inference`].
//!
//! These drivers are what a conversion runs before (and, when a sample proved too narrow,
//! between) its attempts; they sit beside inference rather than in the conversion driver
//! because they only read and infer, never write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Inference, LineInference, Widenings};
use crate::chunk::{Chunker, Piece};
use crate::convert::{raw_total, read_error, ConvertError, ConvertOptions, Job, Phase, Progress};
use crate::input::{decompressed, Source};
use crate::pipeline::{run_ordered, Flow};
use crate::schema::Schema;

/// A schema inferred over (part of) the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Inferred {
    /// The widened union of every valid record seen; no fields when none was.
    pub schema: Schema,
    /// Valid records seen.
    pub records: u64,
    /// Lines seen (including blank and invalid ones).
    pub lines: u64,
    /// Bytes of those lines, newlines included (lines too long to read are not counted): with
    /// `lines`, the typical record size that decoding sizes its chunks by.
    pub line_bytes: u64,
    /// Lines that are not valid records (they do not shape the schema).
    pub invalid: u64,
    /// Number columns widened beyond int64/float64 to keep every value exact.
    pub widenings: Widenings,
    /// Keys mapped onto a column spelled with other letter case.
    pub case_variants: u64,
}

impl Inferred {
    /// The mean size of the lines read, newline included (`None` when none was).
    pub fn record_bytes(&self) -> Option<f64> {
        (self.lines > 0).then(|| self.line_bytes as f64 / self.lines as f64)
    }
}

/// Infers the schema of `sources`: all of it, or only the first `limit` records.
pub fn infer_schema(
    sources: &[Arc<dyn Source>],
    options: &ConvertOptions,
    limit: Option<u64>,
    progress: &dyn Progress,
) -> Result<Inferred, ConvertError> {
    let job = Job {
        sources,
        options,
        progress,
    };
    progress.phase(Phase::Inferring, raw_total(sources));
    match limit {
        Some(limit) => infer_sequential(&job, limit, false),
        None => infer_parallel(&job, 0, Schema::default()),
    }
}

/// Samples the head of every source.
pub(crate) fn sample_schema(job: &Job<'_>) -> Result<Inferred, ConvertError> {
    job.progress.phase(Phase::Sampling, None);
    infer_sequential(job, job.options.sample_rows, true)
}

/// Widens `schema` with everything in `sources[from..]`.
pub(crate) fn widen_schema(
    job: &Job<'_>,
    from: usize,
    schema: Schema,
) -> Result<Inferred, ConvertError> {
    job.progress
        .phase(Phase::Inferring, raw_total(&job.sources[from..]));
    infer_parallel(job, from, schema)
}

/// Infers from the first `limit` records: of every source (`per_source`), or in total.
fn infer_sequential(job: &Job<'_>, limit: u64, per_source: bool) -> Result<Inferred, ConvertError> {
    let Job {
        sources,
        options,
        progress,
    } = *job;
    let mut inference =
        Inference::new(options.timestamp_unit).with_map_threshold(options.map_key_threshold);
    let mut lines = 0u64;
    let mut line_bytes = 0u64;
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
                line_bytes += line.len() as u64 + 1;
                if !infer_line(&mut inference, line, options.max_line_bytes) {
                    invalid += 1;
                }
            }
            progress.advance(raw_bytes.load(Ordering::Relaxed));
        }
    }
    Ok(Inferred {
        records: inference.records(),
        widenings: inference.widenings(),
        case_variants: inference.case_variants(),
        schema: inference.into_schema(),
        lines,
        line_bytes,
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
    line_bytes: u64,
    invalid: u64,
}

/// Infers over all of `sources[from..]`, starting from `base`, chunks in parallel.
fn infer_parallel(job: &Job<'_>, from: usize, base: Schema) -> Result<Inferred, ConvertError> {
    let Job {
        sources,
        options,
        progress,
    } = *job;
    let unit = options.timestamp_unit;
    let raw_bytes = Arc::new(AtomicU64::new(0));
    let map_keys = options.map_key_threshold;
    let mut total = Inference::from_schema(base.clone(), unit).with_map_threshold(map_keys);
    let mut lines = 0u64;
    let mut line_bytes = 0u64;
    let mut invalid = 0u64;
    run_ordered(
        sources,
        from,
        options.read_settings(),
        &raw_bytes,
        |piece| {
            let mut part = PartialInference {
                inference: Inference::from_schema(base.clone(), unit).with_map_threshold(map_keys),
                lines: 0,
                line_bytes: 0,
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
                        part.line_bytes += line.len() as u64 + 1;
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
            line_bytes += part.line_bytes;
            invalid += part.invalid;
            progress.advance(raw_bytes.load(Ordering::Relaxed));
            Ok::<_, ConvertError>(Flow::Continue)
        },
    )?;
    Ok(Inferred {
        records: total.records(),
        widenings: total.widenings(),
        case_variants: total.case_variants(),
        schema: total.into_schema(),
        lines,
        line_bytes,
        invalid,
    })
}
