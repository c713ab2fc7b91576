//! One attempt at a conversion with a fixed schema: decode every source in parallel, write
//! rows in order, route rejects by policy, and stop early if the sampled schema proves too
//! narrow (a [`Misfit`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::read_error;
use super::parts::PartWriter;
use super::{
    ConvertError, Converted, Destination, Job, OnError, Summary, METADATA_SCHEMA, METADATA_SOURCES,
    METADATA_VERSION,
};
use crate::chunk::Piece;
use crate::decode::{DecodeMode, DecodedChunk, LineStats, Misfit, RecordDecoder};
use crate::input::Source;
use crate::pipeline::{run_ordered, Flow};
use crate::reject::{RejectKind, RejectedLine};
use crate::schema::Schema;

/// How an attempt ended.
pub(super) enum Attempt<P, R> {
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

/// Converts all of `job`'s input with `schema`, decoded in `mode`, into fresh outputs of
/// `destination` (`rejects` is its error output, opened by the caller).
pub(super) fn attempt<D: Destination>(
    job: &Job<'_>,
    schema: &Schema,
    mode: DecodeMode,
    record_bytes: Option<f64>,
    destination: &mut D,
    mut rejects: Option<D::Rejects>,
) -> Result<Attempt<D::Parquet, D::Rejects>, ConvertError> {
    let Job {
        sources,
        options,
        progress,
    } = *job;
    let decoder = RecordDecoder::new(schema, mode, options.max_line_bytes);
    let mut parquet_options = options.parquet.clone();
    parquet_options
        .metadata
        .extend(footer_metadata(sources, schema));
    let mut parts = PartWriter::new(
        destination,
        Arc::clone(decoder.arrow_schema()),
        parquet_options.writer_properties(),
        options.max_file_bytes,
        // As many column-encoder threads as decoders: compression costs about as much CPU as
        // decoding, and the OS shares the cores between the two stages as the load shifts.
        options.threads.max(1),
    );

    let raw_bytes = Arc::new(AtomicU64::new(0));
    let mut stats = LineStats::default();
    let mut by_kind = BTreeMap::new();
    let mut misfit = None;
    run_ordered(
        sources,
        0,
        options.decode_settings(schema, record_bytes),
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
            widenings: Default::default(),
            case_variants: 0,
            elapsed: Duration::ZERO,
        },
        parts,
        rejects,
    }))
}
