//! What a manifest run answers: its result, or an error whose name the state machine's
//! `Retry` and `Catch` match on.

use serde::Serialize;
use shared::blobs::BlobError;
use shared::ledger::StoreError;
use shared::types::ConversionResult;

/// What a run produced (the Lambda's response, `run-manifest`'s output): the manifest's
/// [`ConversionResult`] as recorded in the tracking table, without the schema (it stays on the
/// manifest item; Step Functions caps a state's payload at 256 KB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunResult {
    /// Id of the manifest that ran, as in its document and tracking item.
    pub manifest_id: String,
    /// `completed`, or `already_completed` when an earlier attempt finished it.
    pub status: String,
    /// Counts and output keys.
    #[serde(flatten)]
    pub result: ConversionResult,
    /// Wall time of this run in milliseconds.
    pub duration_ms: u64,
}

impl RunResult {
    /// The response for `manifest_id` whose conversion produced `result`.
    pub fn new(
        manifest_id: &shared::types::ManifestId,
        status: &str,
        mut result: ConversionResult,
        started: std::time::Instant,
    ) -> Self {
        result.schema = None;
        RunResult {
            manifest_id: manifest_id.to_string(),
            status: status.to_string(),
            result,
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }
}

/// Why a run failed. [`RunError::name`] is what Step Functions matches.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The manifest object is missing, unreadable, or does not match the execution input.
    #[error("manifest {path} cannot be used: {reason}")]
    ManifestUnreadable {
        /// The manifest path exactly as given (normally `s3://bucket/key`; it may not be one).
        path: String,
        /// What is wrong: not an `s3://` URL, missing, unparsable, or another manifest's document.
        reason: String,
    },
    /// The manifest's item says it must not run (failed, released, unknown).
    #[error("manifest {manifest_id} is not runnable: {reason}")]
    ManifestNotRunnable {
        /// Id from the manifest document.
        manifest_id: String,
        /// The item is missing, or its status (the one found, or the one it changed to mid-run).
        reason: String,
    },
    /// A file cannot be converted; the manifest was marked failed and its files released.
    #[error("manifest {manifest_id} failed on {file}: {reason}")]
    FileFailed {
        /// Id of the manifest now marked `failed`.
        manifest_id: String,
        /// `s3://` URL of the file; empty when no single file is at fault (then every file counts
        /// an attempt).
        file: String,
        /// The error with its chain of causes, joined by `: `.
        reason: String,
    },
    /// A transient failure (throttling, network, service errors): retry the manifest.
    #[error("transient failure, retry: {0}")]
    Transient(String),
    /// The manifest cannot finish within the Lambda's remaining time: run it on AWS Batch.
    #[error("manifest {manifest_id} needs about {needed_s} s but only {remaining_s} s remain")]
    Timeout {
        /// Id of the manifest to hand over to AWS Batch.
        manifest_id: String,
        /// Estimated seconds needed (or elapsed when it ran out).
        needed_s: u64,
        /// Seconds that were left.
        remaining_s: u64,
    },
}

impl RunError {
    /// The error type Step Functions sees (`Retry`/`Catch` match on it).
    pub fn name(&self) -> &'static str {
        match self {
            RunError::ManifestUnreadable { .. } => "ManifestUnreadable",
            RunError::ManifestNotRunnable { .. } => "ManifestNotRunnable",
            RunError::FileFailed { .. } => "ManifestFailed",
            RunError::Transient(_) => "ConverterRetryable",
            RunError::Timeout { .. } => "ConverterTimeout",
        }
    }

    /// Whether running the manifest again may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, RunError::Transient(_) | RunError::Timeout { .. })
    }
}

impl From<StoreError> for RunError {
    fn from(error: StoreError) -> Self {
        RunError::Transient(error.to_string())
    }
}

impl From<BlobError> for RunError {
    fn from(error: BlobError) -> Self {
        RunError::Transient(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_is_the_recorded_counts_without_the_schema() {
        let id = shared::types::ManifestId::parse("m1").unwrap();
        let result = ConversionResult {
            lines_read: 3,
            rows_written: 2,
            rows_rejected: 1,
            output_keys: vec!["p/m1-00000.parquet".into()],
            schema: Some("{\"fields\":[]}".into()),
            ..ConversionResult::default()
        };
        let run = RunResult::new(&id, "completed", result, std::time::Instant::now());
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(json["manifest_id"], "m1");
        assert_eq!(json["rows_written"], 2);
        assert_eq!(json["output_keys"][0], "p/m1-00000.parquet");
        assert!(json.get("schema").is_none() || json["schema"].is_null());
        assert!(json.get("result").is_none());
    }

    #[test]
    fn error_names_tell_retryable_from_final() {
        let transient = RunError::Transient("x".into());
        assert_eq!(
            (transient.name(), transient.retryable()),
            ("ConverterRetryable", true)
        );
        let timeout = RunError::Timeout {
            manifest_id: "m".into(),
            needed_s: 2,
            remaining_s: 1,
        };
        assert_eq!(
            (timeout.name(), timeout.retryable()),
            ("ConverterTimeout", true)
        );
        let failed = RunError::FileFailed {
            manifest_id: "m".into(),
            file: "s3://b/k".into(),
            reason: "gone".into(),
        };
        assert_eq!(
            (failed.name(), failed.retryable()),
            ("ManifestFailed", false)
        );
    }
}
