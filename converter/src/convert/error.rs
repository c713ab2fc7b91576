//! Why a conversion failed.
//!
//! The messages speak of the library's notions (options, outputs), never of a command line's
//! flags: the library is also driven by the Lambda and Batch runners, which have no flags. A
//! front end that has them adds its own hint (the CLI does).

use std::io;
use std::sync::Arc;

use parquet::errors::ParquetError;

use crate::input::Source;
use crate::pipeline::ReadFailure;
use crate::reject::RejectKind;

/// Why a conversion failed. Nothing it wrote may be used.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A source could not be opened.
    #[error("cannot open {source_name}")]
    Open {
        /// [`Source::name`](crate::input::Source::name) of the source: a path, `-` or a URL.
        source_name: String,
        /// The error from [`Source::open`](crate::input::Source::open) or from reading its first
        /// bytes to detect the compression.
        #[source]
        error: io::Error,
    },
    /// A source could not be read to its end (I/O error, corrupt or truncated compression).
    #[error("cannot read {source_name} past byte {offset} of its decompressed content")]
    Read {
        /// [`Source::name`](crate::input::Source::name) of the source: a path, `-` or a URL.
        source_name: String,
        /// Decompressed bytes read before the failure.
        offset: u64,
        /// The I/O or decompression error, as the reader returned it.
        #[source]
        error: io::Error,
    },
    /// A line could not be converted and the policy is to fail.
    #[error("{source_name}: line {line}: {reason}")]
    BadLine {
        /// [`Source::name`](crate::input::Source::name) of the source holding the line.
        source_name: String,
        /// 1-based line number.
        line: u64,
        /// Byte offset of the line in the decompressed source.
        offset: u64,
        /// The kind the line would have been rejected with under a lenient policy.
        kind: RejectKind,
        /// Human-readable cause, naming the field where there is one (as in error records).
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
    #[error("{source_name} is a stream that can be read only once: its schema must be given, or inferred from its first records only")]
    NeedsSchema {
        /// Name of the first source that cannot be reopened (`-` for standard input).
        source_name: String,
    },
    /// `OnError::Quarantine` without an error output.
    #[error("quarantine needs an error output")]
    QuarantineWithoutOutput,
    /// Inference found nothing to build a schema from.
    #[error("cannot infer a schema: the input holds no valid records ({lines} lines read)")]
    NothingToInfer {
        /// Lines read before giving up, blank and invalid ones included (only the inferred head
        /// when inferring from the first records).
        lines: u64,
    },
    /// Every record is `{}`: Parquet cannot store rows without columns, so they would be lost.
    #[error("the {rows} records hold no fields at all (every one is `{{}}`), and Parquet cannot store rows without columns")]
    NoColumns {
        /// Valid records read, all of them `{}`; always ≥ 1.
        rows: u64,
    },
    /// [`ConvertOptions::deadline`](super::ConvertOptions::deadline) passed before the conversion finished.
    #[error("the conversion did not finish before its deadline")]
    DeadlineExceeded,
    /// The schema widened more often than possible for unchanging input.
    #[error(
        "the input changed while it was being converted (its schema widened {restarts} times)"
    )]
    SchemaUnstable {
        /// Restarts made (each after a sample proved too narrow) when the conversion gave up.
        restarts: u32,
    },
    /// The schema has more columns than this tool writes (see
    /// [`MAX_LEAF_COLUMNS`](crate::schema::MAX_LEAF_COLUMNS)).
    #[error("the schema is too wide: {0}")]
    TooWide(#[source] crate::schema::SchemaError),
}

pub(crate) fn read_error(sources: &[Arc<dyn Source>], failure: ReadFailure) -> ConvertError {
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
