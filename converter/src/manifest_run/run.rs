//! The run itself: read the manifest once, check that it may run, convert, remove what an
//! earlier attempt left, record the outcome. Over the store traits only: the same code runs on
//! AWS, in memory in the unit tests, and in simulation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::manifest::{error_key, parse_s3_url, part_prefix, ExecutionInput, ManifestDocument};
use shared::metrics::{Metrics, Unit};
use shared::tracking::{ManifestChanges, TrackingStore};
use shared::types::{
    ConversionResult, DatePrefix, ManifestId, ManifestRecord, ManifestStatus, Timestamp,
};
use tracing::{info, warn};

use super::destination::ManifestDestination;
use super::{ConverterConfig, RunError, RunResult};
use crate::convert::{
    convert, ConvertError, ConvertOptions, Destination, NoProgress, SchemaChoice, Summary,
};
use crate::input::Source;
use crate::objects::{ObjectFailure, ObjectStore};
use crate::reject::{RejectKind, RejectedLine};
use crate::schema::Schema;

/// Runs manifests: the tracking table, the object store and the configuration.
pub struct Runner<S, O> {
    /// The tracking table.
    pub store: S,
    /// Inputs, outputs, the manifest and the schema.
    pub objects: Arc<O>,
    /// Buckets, prefixes and conversion settings, read once from the environment
    /// ([`ConverterConfig::from_env`]).
    pub config: ConverterConfig,
}

/// What the conversion step produced, before anything is recorded.
struct Converted {
    summary: Option<Summary>,
    output_keys: Vec<String>,
    error_key: Option<String>,
    empty_objects: u64,
}

impl<S: TrackingStore, O: ObjectStore> Runner<S, O> {
    /// Runs the manifest a workflow execution names (the Lambda). `deadline` is when the
    /// process will be stopped; the run gives up early enough to report a `ConverterTimeout`.
    pub async fn run_execution(
        &self,
        input: &ExecutionInput,
        deadline: Option<Instant>,
        metrics: &mut Metrics,
    ) -> Result<RunResult, RunError> {
        let expected = (&input.manifest_id, &input.date_prefix);
        self.run(&input.manifest_path, Some(expected), deadline, metrics)
            .await
    }

    /// Runs the manifest at `manifest_path` (`s3://bucket/key`), whichever it is (AWS Batch:
    /// the job names only the path), with no deadline.
    pub async fn run_path(
        &self,
        manifest_path: &str,
        metrics: &mut Metrics,
    ) -> Result<RunResult, RunError> {
        self.run(manifest_path, None, None, metrics).await
    }

    async fn run(
        &self,
        manifest_path: &str,
        expected: Option<(&ManifestId, &DatePrefix)>,
        deadline: Option<Instant>,
        metrics: &mut Metrics,
    ) -> Result<RunResult, RunError> {
        let started = Instant::now();
        let manifest = self.load_manifest(manifest_path, expected).await?;
        let id = &manifest.manifest_id;
        let record = self.runnable_record(&manifest).await?;
        if record.status == ManifestStatus::Completed {
            info!(manifest_id = %id, "manifest already completed; nothing to do");
            let result = record.result.unwrap_or_default();
            return Ok(RunResult::new(id, "already_completed", result, started));
        }
        if let Some(deadline) = deadline {
            let remaining = deadline.saturating_duration_since(Instant::now()).as_secs();
            let needed = manifest.total_bytes / (self.config.lambda_min_mbps * 1_000_000) + 1;
            if needed > remaining {
                return Err(RunError::Timeout {
                    manifest_id: id.to_string(),
                    needed_s: needed,
                    remaining_s: remaining,
                });
            }
        }
        let (options, part_size) = self.options(deadline).await?;
        let converted = match self.convert(&manifest, options, part_size).await? {
            Ok(converted) => converted,
            Err(error) => return Err(self.fail(&record, &manifest, error, started).await),
        };
        let decoded_bytes = converted.summary.as_ref().map_or(0, |s| s.stats.bytes);
        let result = self.finish(&record, &manifest, converted).await?;
        let run = RunResult::new(id, "completed", result, started);
        let seconds = started.elapsed().as_secs_f64().max(1e-3);
        let megabytes = decoded_bytes as f64 / 1e6;
        metrics.count("RowsWritten", run.result.rows_written);
        metrics.count("RowsRejected", run.result.rows_rejected);
        metrics.count("ManifestsCompleted", 1);
        metrics.add("BytesIn", run.result.bytes_in as f64, Unit::Bytes);
        metrics.add("BytesOut", run.result.bytes_out as f64, Unit::Bytes);
        metrics.add("Throughput", megabytes / seconds, Unit::MegabytesPerSecond);
        info!(
            manifest_id = %id,
            rows = run.result.rows_written,
            rejected = run.result.rows_rejected,
            blank = run.result.blank_lines,
            parts = run.result.output_keys.len(),
            mb_per_s = megabytes / seconds,
            "manifest completed"
        );
        Ok(run)
    }

    /// Reads and parses the manifest document, once; checks it is the one the workflow names.
    async fn load_manifest(
        &self,
        path: &str,
        expected: Option<(&ManifestId, &DatePrefix)>,
    ) -> Result<ManifestDocument, RunError> {
        let unreadable = |reason: String| RunError::ManifestUnreadable {
            path: path.to_string(),
            reason,
        };
        let (bucket, key) =
            parse_s3_url(path).ok_or_else(|| unreadable("not an s3:// URL".into()))?;
        let bytes = self
            .objects
            .get(bucket, key)
            .await?
            .ok_or_else(|| unreadable("the object does not exist".into()))?;
        let manifest =
            ManifestDocument::from_json(&bytes).map_err(|e| unreadable(e.to_string()))?;
        if let Some((id, date_prefix)) = expected {
            if manifest.manifest_id != *id || manifest.date_prefix != *date_prefix {
                return Err(unreadable(format!(
                    "it describes {} of {}, the execution input {id} of {date_prefix}",
                    manifest.manifest_id, manifest.date_prefix
                )));
            }
        }
        Ok(manifest)
    }

    /// The manifest's item, if it may run (`starting`, `running`) or already `completed`.
    async fn runnable_record(
        &self,
        manifest: &ManifestDocument,
    ) -> Result<ManifestRecord, RunError> {
        let id = &manifest.manifest_id;
        let record = self
            .store
            .get_manifest(&manifest.date_prefix, id)
            .await?
            .ok_or_else(|| RunError::ManifestNotRunnable {
                manifest_id: id.to_string(),
                reason: "no manifest item in the tracking table".into(),
            })?;
        match record.status {
            ManifestStatus::Starting | ManifestStatus::Running | ManifestStatus::Completed => {
                Ok(record)
            }
            other => Err(RunError::ManifestNotRunnable {
                manifest_id: id.to_string(),
                reason: format!("its status is {}", other.as_str()),
            }),
        }
    }

    /// Conversion settings for this run: the configuration's, the schema if one is
    /// configured, and a deadline with time left to report and clean up (10% of what
    /// remains, at least 20 s).
    /// Also the upload part size the same memory budget allows.
    async fn options(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(ConvertOptions, usize), RunError> {
        let (mut options, part_size) = self.config.convert_options();
        if let Some(uri) = &self.config.schema_uri {
            options.schema = SchemaChoice::Explicit(self.load_schema(uri).await?);
        }
        options.deadline = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            d.checked_sub((left / 10).max(Duration::from_secs(20)))
                .unwrap_or_else(Instant::now)
        });
        Ok((options, part_size))
    }

    async fn load_schema(&self, uri: &str) -> Result<Schema, RunError> {
        let text =
            match parse_s3_url(uri) {
                Some((bucket, key)) => self.objects.get(bucket, key).await?.ok_or_else(|| {
                    RunError::Transient(format!("SCHEMA_URI {uri} does not exist"))
                })?,
                None => std::fs::read(uri)
                    .map_err(|e| RunError::Transient(format!("SCHEMA_URI {uri}: {e}")))?,
            };
        let text = String::from_utf8(text)
            .map_err(|_| RunError::Transient(format!("SCHEMA_URI {uri} is not UTF-8")))?;
        Schema::from_json(&text).map_err(|e| RunError::Transient(format!("SCHEMA_URI {uri}: {e}")))
    }

    /// Converts every file, commits the parts and the error object; nothing is recorded yet.
    /// The outer error is the offload's (the task died); the inner one the conversion's.
    async fn convert(
        &self,
        manifest: &ManifestDocument,
        options: ConvertOptions,
        part_size: usize,
    ) -> Result<Result<Converted, ConvertError>, RunError> {
        let (prefix, id) = (&manifest.date_prefix, &manifest.manifest_id);
        let mut destination = ManifestDestination {
            objects: Arc::clone(&self.objects),
            part_size,
            output_bucket: self.config.output_bucket.clone(),
            part_prefix: part_prefix(&self.config.output_prefix, prefix, id),
            error_bucket: self.config.error_bucket.clone(),
            error_key: error_key(&self.config.error_prefix, prefix, id),
        };
        // Empty objects have no lines to convert: each is recorded in the error output.
        let (empty, files): (Vec<_>, Vec<_>) = manifest.files.iter().partition(|f| f.size == 0);
        let sources: Vec<Arc<dyn Source>> = files
            .iter()
            .map(|f| {
                self.objects
                    .source(&f.bucket, &f.key, Some(&f.etag), Some(f.size))
            })
            .collect();
        let empty_urls: Vec<String> = empty
            .iter()
            .map(|f| format!("s3://{}/{}", f.bucket, f.key))
            .collect();
        self.objects
            .offload(move || -> Result<Converted, ConvertError> {
                let converted = (!sources.is_empty())
                    .then(|| convert(&sources, &options, &mut destination, &NoProgress))
                    .transpose()?;
                let mut output_keys = Vec::new();
                let (summary, rejects) = match converted {
                    Some(c) => {
                        for part in c.parts {
                            output_keys.push(part.key().to_string());
                            part.commit()
                                .map_err(|e| ConvertError::Output(e.into_io()))?;
                        }
                        (Some(c.summary), c.rejects)
                    }
                    None => (
                        None,
                        destination.rejects().map_err(ConvertError::RejectOutput)?,
                    ),
                };
                let mut rejects =
                    rejects.expect("invariant: the manifest destination has an error output");
                for url in &empty_urls {
                    empty_object()
                        .write_record(url, &mut rejects)
                        .map_err(ConvertError::RejectOutput)?;
                }
                let error_key = rejects
                    .commit()
                    .map_err(|e| ConvertError::RejectOutput(e.into_io()))?;
                Ok(Converted {
                    summary,
                    output_keys,
                    error_key,
                    empty_objects: empty_urls.len() as u64,
                })
            })
            .await
            .map_err(RunError::Transient)
    }

    /// Removes what an earlier attempt wrote and this one did not, then records success:
    /// every file `processed`, the manifest `completed` with its result.
    async fn finish(
        &self,
        record: &ManifestRecord,
        manifest: &ManifestDocument,
        converted: Converted,
    ) -> Result<ConversionResult, RunError> {
        let (prefix, id) = (&manifest.date_prefix, &manifest.manifest_id);
        // Stale parts (and a stale error object) go before success is recorded, so no number
        // of retries can leave a duplicate row.
        let parts = part_prefix(&self.config.output_prefix, prefix, id);
        self.objects
            .delete_prefix(&self.config.output_bucket, &parts, &converted.output_keys)
            .await?;
        if converted.error_key.is_none() {
            let stale = error_key(&self.config.error_prefix, prefix, id);
            self.objects
                .delete(&self.config.error_bucket, &stale)
                .await?;
        }
        let Converted {
            summary,
            output_keys,
            error_key,
            empty_objects,
        } = converted;
        let stats = summary.as_ref().map(|s| s.stats).unwrap_or_default();
        let result = ConversionResult {
            lines_read: stats.lines,
            rows_written: stats.rows,
            rows_rejected: stats.rejected + empty_objects,
            blank_lines: stats.blank,
            bytes_in: summary.as_ref().map_or(0, |s| s.raw_bytes),
            bytes_out: summary.as_ref().map_or(0, |s| s.output_bytes),
            output_keys,
            error_key,
            schema: summary.as_ref().map(|s| s.schema.to_compact_json()),
        };
        let now = Timestamp::now();
        for file in &manifest.files {
            self.store.complete_file(prefix, &file.key, id, now).await?;
        }
        let changes = ManifestChanges {
            result: Some(result.clone()),
            ..ManifestChanges::default()
        };
        self.transition(record, ManifestStatus::Completed, &changes)
            .await?;
        Ok(result)
    }

    /// Moves the manifest from its current `starting`/`running` status.
    async fn transition(
        &self,
        record: &ManifestRecord,
        to: ManifestStatus,
        changes: &ManifestChanges,
    ) -> Result<(), RunError> {
        let now = Timestamp::now();
        for from in [ManifestStatus::Running, ManifestStatus::Starting] {
            if self
                .store
                .update_manifest(
                    &record.date_prefix,
                    &record.manifest_id,
                    from,
                    to,
                    changes,
                    now,
                )
                .await?
            {
                return Ok(());
            }
        }
        let current = self
            .store
            .get_manifest(&record.date_prefix, &record.manifest_id)
            .await?;
        if current.as_ref().map(|m| m.status) == Some(to) {
            return Ok(());
        }
        Err(RunError::ManifestNotRunnable {
            manifest_id: record.manifest_id.to_string(),
            reason: format!(
                "its status changed to {} during the run",
                current.map_or("(deleted)", |m| m.status.as_str())
            ),
        })
    }

    /// Turns a conversion error into the run's error. A file that cannot be read (missing,
    /// access denied, corrupt, changed since it was tracked) fails the manifest for good: that
    /// file counts an attempt, the others go back to pending. Anything else is retryable and
    /// leaves every status as it was.
    async fn fail(
        &self,
        record: &ManifestRecord,
        manifest: &ManifestDocument,
        error: ConvertError,
        started: Instant,
    ) -> RunError {
        let id = &record.manifest_id;
        let (file, reason) = match final_failure(&error) {
            Final::Timeout => {
                return RunError::Timeout {
                    manifest_id: id.to_string(),
                    needed_s: started.elapsed().as_secs(),
                    remaining_s: 0,
                }
            }
            Final::Retryable(reason) => return RunError::Transient(reason),
            Final::File { file, reason } => (file, reason),
        };
        warn!(manifest_id = %id, error = %reason, "manifest failed");
        if let Err(e) = self.record_failure(record, manifest, &file, &reason).await {
            // The statuses could not be recorded: let the workflow retry the whole manifest.
            return RunError::Transient(format!("{reason}; and recording the failure failed: {e}"));
        }
        RunError::FileFailed {
            manifest_id: id.to_string(),
            file,
            reason,
        }
    }

    /// The failing file (every file when `file` is empty) counts an attempt, the others are
    /// released; then the manifest is `failed`.
    async fn record_failure(
        &self,
        record: &ManifestRecord,
        manifest: &ManifestDocument,
        file: &str,
        reason: &str,
    ) -> Result<(), RunError> {
        let (prefix, id) = (&record.date_prefix, &record.manifest_id);
        let now = Timestamp::now();
        for f in &manifest.files {
            let url = format!("s3://{}/{}", f.bucket, f.key);
            if file.is_empty() || url == file {
                let max_attempts = self.config.max_attempts;
                self.store
                    .fail_file(prefix, &f.key, id, max_attempts, now)
                    .await?;
            } else {
                self.store.release_file(prefix, &f.key, id, now).await?;
            }
        }
        let changes = ManifestChanges {
            error: Some(format!("{file}: {reason}")),
            ..ManifestChanges::default()
        };
        self.transition(record, ManifestStatus::Failed, &changes)
            .await
    }
}

/// How a conversion error ends the run.
enum Final {
    /// Out of time: hand over to AWS Batch.
    Timeout,
    /// Worth retrying as a whole.
    Retryable(String),
    /// `file` (`s3://` URL; empty when it is not one file's fault) cannot be converted.
    File { file: String, reason: String },
}

fn final_failure(error: &ConvertError) -> Final {
    let (file, reason) = match error {
        ConvertError::DeadlineExceeded => return Final::Timeout,
        ConvertError::Open { source_name, error }
        | ConvertError::Read {
            source_name, error, ..
        } => {
            let error: &(dyn std::error::Error + 'static) = error;
            match ObjectFailure::find(error) {
                Some(failure) if failure.retryable => return Final::Retryable(error_chain(error)),
                _ => (source_name.clone(), error_chain(error)),
            }
        }
        ConvertError::NoColumns { .. } => (String::new(), error.to_string()),
        _ => return Final::Retryable(error_chain(error)),
    };
    let reason = if let ConvertError::Read { offset, .. } = error {
        format!("{reason} (after {offset} bytes of decompressed data)")
    } else {
        reason
    };
    Final::File { file, reason }
}

fn empty_object() -> RejectedLine {
    RejectedLine {
        source: 0,
        line: 0,
        offset: 0,
        kind: RejectKind::EmptyObject,
        reason: "the object is empty (0 bytes): no lines to convert".into(),
        raw: Vec::new(),
        raw_truncated: false,
        line_bytes: 0,
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
