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
//!
//! The module is split by concern: `options` holds what a caller chooses and implements,
//! `outcome` and `error` what it gets back, `attempt` one pass over the input with a fixed
//! schema, and `parts` the writer that cuts the output into Parquet parts. Schema inference
//! over sources (sampling, widening) lives beside inference, in [`crate::infer`]; this
//! module decides when it runs.

mod attempt;
mod error;
mod options;
mod outcome;
mod parts;

use std::sync::Arc;
use std::time::Instant;

pub use crate::infer::{infer_schema, Inferred};
pub(crate) use error::read_error;
pub use error::ConvertError;
pub use options::{
    ConvertOptions, Destination, NoProgress, OnError, Phase, Progress, SchemaChoice,
};
pub use outcome::{Converted, Summary, METADATA_SCHEMA, METADATA_SOURCES, METADATA_VERSION};

use crate::decode::DecodeMode;
use crate::infer::{sample_schema, widen_schema, Widenings};
use crate::input::Source;
use attempt::{attempt, Attempt};

/// One conversion's fixed inputs: what it reads, how, and who hears of its progress. Every
/// attempt and every inference pass of a conversion works on the same job; only the schema
/// and the outputs change between them.
#[derive(Clone, Copy)]
pub(crate) struct Job<'a> {
    /// The inputs, in order.
    pub(crate) sources: &'a [Arc<dyn Source>],
    /// The caller's settings.
    pub(crate) options: &'a ConvertOptions,
    /// Where progress goes.
    pub(crate) progress: &'a dyn Progress,
}

/// Converts `sources` into one Parquet output (see the module docs for the schema strategy).
pub fn convert<D: Destination>(
    sources: &[Arc<dyn Source>],
    options: &ConvertOptions,
    destination: &mut D,
    progress: &dyn Progress,
) -> Result<Converted<D::Parquet, D::Rejects>, ConvertError> {
    let started = Instant::now();
    let job = Job {
        sources,
        options,
        progress,
    };
    // What inference had to do to keep every value and name usable: reported in the summary.
    let mut facts = (Widenings::default(), 0u64);
    // The typical record size inference saw, which sizes the decoder's chunks of a wide schema.
    let mut record_bytes = None;
    let (mut schema, mode) = match &options.schema {
        SchemaChoice::Explicit(schema) => (schema.clone(), options.fixed_mode()),
        SchemaChoice::InferFirst(limit) => {
            let inferred = infer_schema(sources, options, Some(*limit), progress)?;
            if inferred.records == 0 {
                return Err(ConvertError::NothingToInfer {
                    lines: inferred.lines,
                });
            }
            facts = (inferred.widenings, inferred.case_variants);
            record_bytes = inferred.record_bytes();
            (inferred.schema, options.fixed_mode())
        }
        SchemaChoice::Infer => {
            if let Some(stream) = sources.iter().find(|s| !s.can_reopen()) {
                return Err(ConvertError::NeedsSchema {
                    source_name: stream.name().to_string(),
                });
            }
            let inferred = sample_schema(&job)?;
            facts = (inferred.widenings, inferred.case_variants);
            record_bytes = inferred.record_bytes();
            (inferred.schema, DecodeMode::Optimistic)
        }
    };
    let mut restarts = 0u32;
    loop {
        schema.check_width().map_err(ConvertError::TooWide)?;
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
        match attempt(&job, &schema, mode, record_bytes, destination, rejects)? {
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
                (converted.summary.widenings, converted.summary.case_variants) = facts;
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
                let inferred = widen_schema(&job, misfit.source, schema)?;
                // The widened inference starts from the schema so far: its column counts are
                // the total; a key spelling seen only by an earlier pass still counts.
                facts = (inferred.widenings, facts.1.max(inferred.case_variants));
                record_bytes = inferred.record_bytes().or(record_bytes);
                schema = inferred.schema;
            }
        }
    }
}

/// The raw size of `sources`, if every one of them knows its size.
pub(crate) fn raw_total(sources: &[Arc<dyn Source>]) -> Option<u64> {
    sources.iter().map(|s| s.size_hint()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::MemorySource;
    use crate::parquet_options::ParquetOptions;
    use crate::schema::Schema;
    use std::io;

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
