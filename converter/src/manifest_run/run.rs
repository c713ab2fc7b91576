//! The run itself: read the manifest once, check that it may run, convert, remove what an
//! earlier attempt left, record the outcome. Over the store traits only: the same code runs on
//! AWS, in memory in the unit tests, and in simulation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::manifest::{
    error_key, parse_s3_url, part_prefix, ExecutionInput, ManifestDocument, ManifestFile,
};
use shared::metrics::{Metrics, Unit};
use shared::types::{ConversionResult, DatePrefix, ManifestId};
use tracing::{info, warn};

use super::destination::ManifestDestination;
use super::tracking::{Check, Tracking};
use super::{ConverterConfig, RunError, RunResult};
use crate::convert::{
    convert, ConvertError, ConvertOptions, Destination, NoProgress, SchemaChoice, Summary,
};
use crate::input::Source;
use crate::objects::{ObjectFailure, ObjectRead, ObjectStore, Pin};
use crate::reject::{RejectKind, RejectedLine};
use crate::schema::Schema;

/// Runs manifests: the tracking table, the object store and the configuration.
pub struct Runner<T, O> {
    /// The tracking table: [`LedgerTracking`](super::LedgerTracking) in production and tests.
    pub tracking: T,
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
    /// Files recorded in the error output as a whole (empty, superseded).
    whole_files: u64,
}

/// The manifest's files as conversion inputs: each with the name its errors and error records
/// carry, unique within the manifest (the URL, and the version when the manifest holds two
/// versions of one key).
struct Inputs<'m> {
    files: Vec<(&'m ManifestFile, String)>,
}

impl<'m> Inputs<'m> {
    fn new(manifest: &'m ManifestDocument) -> Self {
        let url = |f: &ManifestFile| format!("s3://{}/{}", f.bucket, f.key);
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for file in &manifest.files {
            *seen.entry(url(file)).or_default() += 1;
        }
        let files = manifest
            .files
            .iter()
            .map(|f| {
                let name = match (seen[&url(f)], &f.version_id) {
                    (1, _) => url(f),
                    (_, Some(version)) => format!("{} (version {version})", url(f)),
                    (_, None) => format!("{} (ETag {})", url(f), f.etag),
                };
                (f, name)
            })
            .collect();
        Inputs { files }
    }

    /// Removes the file named `name`.
    fn remove(&mut self, name: &str) -> Option<&'m ManifestFile> {
        let at = self.files.iter().position(|(_, n)| n == name)?;
        Some(self.files.remove(at).0)
    }
}

/// A source under the name [`Inputs`] gave it.
struct Named {
    inner: Arc<dyn Source>,
    name: String,
}

impl Source for Named {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&self) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        self.inner.open()
    }

    fn size_hint(&self) -> Option<u64> {
        self.inner.size_hint()
    }

    fn can_reopen(&self) -> bool {
        self.inner.can_reopen()
    }
}

impl<T: Tracking, O: ObjectStore> Runner<T, O> {
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
        let claim = match self.tracking.check(&manifest).await? {
            Check::Run(claim) => claim,
            Check::Completed(result) => {
                info!(manifest_id = %id, "manifest already completed; nothing to do");
                return Ok(RunResult::new(id, "already_completed", result, started));
            }
        };
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
        let mut inputs = Inputs::new(&manifest);
        let mut superseded = Vec::new();
        // A version gone before it was read is recorded and the conversion starts again
        // without it: rare (an overwrite or delete between arrival and conversion), and each
        // restart has one file fewer.
        let converted = loop {
            let attempt = self
                .convert(&manifest, &inputs, &superseded, options.clone(), part_size)
                .await?;
            let error = match attempt {
                Ok(converted) => break converted,
                Err(error) => error,
            };
            let failure = final_failure(&error);
            if let Final::Gone { source, reason } = &failure {
                if let Some(file) = inputs.remove(source) {
                    warn!(manifest_id = %id, file = %source, %reason, "version superseded; converting the others");
                    self.tracking
                        .supersede(&claim, &manifest, file, reason)
                        .await?;
                    metrics.count("VersionsSuperseded", 1);
                    superseded.push((source.clone(), reason.clone()));
                    continue;
                }
            }
            return Err(self.fail(&claim, &manifest, failure, started).await);
        };
        let decoded_bytes = converted.summary.as_ref().map_or(0, |s| s.stats.bytes);
        let result = self.finish(&claim, &manifest, converted).await?;
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
            superseded = superseded.len(),
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

    /// Converts `inputs`, commits the parts and the error object (with a record for each
    /// empty object and each `superseded` version); nothing is recorded yet.
    /// The outer error is the offload's (the task died); the inner one the conversion's.
    async fn convert(
        &self,
        manifest: &ManifestDocument,
        inputs: &Inputs<'_>,
        superseded: &[(String, String)],
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
        let mut whole: Vec<(String, RejectedLine)> = superseded
            .iter()
            .map(|(name, reason)| (name.clone(), superseded_version(reason)))
            .collect();
        let mut reads = Vec::new();
        let mut names = Vec::new();
        for (file, name) in &inputs.files {
            if file.size == 0 {
                whole.push((name.clone(), empty_object()));
                continue;
            }
            reads.push(ObjectRead {
                bucket: file.bucket.clone(),
                key: file.key.clone(),
                pin: Pin::of_file(file),
                size: Some(file.size),
            });
            names.push(name.clone());
        }
        // All inputs together, so the store can read the next ones while one converts.
        let sources: Vec<Arc<dyn Source>> = self
            .objects
            .sources(&reads)
            .into_iter()
            .zip(names)
            .map(|(inner, name)| Arc::new(Named { inner, name }) as Arc<dyn Source>)
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
                for (name, record) in &whole {
                    record
                        .write_record(name, &mut rejects)
                        .map_err(ConvertError::RejectOutput)?;
                }
                let error_key = rejects
                    .commit()
                    .map_err(|e| ConvertError::RejectOutput(e.into_io()))?;
                Ok(Converted {
                    summary,
                    output_keys,
                    error_key,
                    whole_files: whole.len() as u64,
                })
            })
            .await
            .map_err(RunError::Transient)
    }

    /// Removes what an earlier attempt wrote and this one did not, then records success. If
    /// the manifest is no longer this run's (failed meanwhile), what it wrote is removed.
    async fn finish(
        &self,
        claim: &T::Claim,
        manifest: &ManifestDocument,
        converted: Converted,
    ) -> Result<ConversionResult, RunError> {
        let (prefix, id) = (&manifest.date_prefix, &manifest.manifest_id);
        // Stale parts (and a stale error object) go before success is recorded, so no number
        // of retries can leave a duplicate row.
        let parts = part_prefix(&self.config.output_prefix, prefix, id);
        let errors = error_key(&self.config.error_prefix, prefix, id);
        self.objects
            .delete_prefix(&self.config.output_bucket, &parts, &converted.output_keys)
            .await?;
        if converted.error_key.is_none() {
            self.objects
                .delete(&self.config.error_bucket, &errors)
                .await?;
        }
        let Converted {
            summary,
            output_keys,
            error_key,
            whole_files,
        } = converted;
        let stats = summary.as_ref().map(|s| s.stats).unwrap_or_default();
        let result = ConversionResult {
            lines_read: stats.lines,
            rows_written: stats.rows,
            rows_rejected: stats.rejected + whole_files,
            blank_lines: stats.blank,
            bytes_in: summary.as_ref().map_or(0, |s| s.raw_bytes),
            bytes_out: summary.as_ref().map_or(0, |s| s.output_bytes),
            output_keys,
            error_key,
            schema: summary.as_ref().map(|s| s.schema.to_compact_json()),
        };
        match self.tracking.complete(claim, manifest, &result).await {
            Ok(()) => Ok(result),
            Err(lost @ RunError::ManifestNotRunnable { .. }) => {
                // Settled by someone else (the sweep, the workflow): its files will be
                // converted by another manifest, so nothing of this run may stay.
                warn!(manifest_id = %id, error = %lost, "manifest lost during the run; removing its output");
                self.objects
                    .delete_prefix(&self.config.output_bucket, &parts, &[])
                    .await?;
                self.objects
                    .delete(&self.config.error_bucket, &errors)
                    .await?;
                Err(lost)
            }
            Err(other) => Err(other),
        }
    }

    /// Turns a conversion failure into the run's error. A file that cannot be read (missing,
    /// access denied, corrupt) fails the manifest for good, recorded by the tracking. Anything
    /// else is retryable and leaves every status as it was.
    async fn fail(
        &self,
        claim: &T::Claim,
        manifest: &ManifestDocument,
        failure: Final,
        started: Instant,
    ) -> RunError {
        let id = &manifest.manifest_id;
        let (source, reason) = match failure {
            Final::Timeout => {
                return RunError::Timeout {
                    manifest_id: id.to_string(),
                    needed_s: started.elapsed().as_secs(),
                    remaining_s: 0,
                }
            }
            Final::Retryable(reason) => return RunError::Transient(reason),
            Final::File { source, reason } | Final::Gone { source, reason } => (source, reason),
        };
        warn!(manifest_id = %id, file = %source, error = %reason, "manifest failed");
        let file = Inputs::new(manifest)
            .files
            .into_iter()
            .find(|(_, name)| *name == source)
            .map(|(f, _)| f);
        if let Err(e) = self.tracking.fail(claim, manifest, file, &reason).await {
            // The outcome could not be recorded: let the workflow retry the whole manifest.
            return RunError::Transient(format!("{reason}; and recording the failure failed: {e}"));
        }
        RunError::FileFailed {
            manifest_id: id.to_string(),
            file: source,
            reason,
        }
    }
}

/// How a conversion error ends the run.
enum Final {
    /// Out of time: hand over to AWS Batch.
    Timeout,
    /// Worth retrying as a whole.
    Retryable(String),
    /// The version of `source` (an input's name) the manifest names was deleted or overwritten
    /// before it was read.
    Gone { source: String, reason: String },
    /// `source` (an input's name; empty when it is not one file's fault) cannot be converted.
    File { source: String, reason: String },
}

fn final_failure(error: &ConvertError) -> Final {
    let (source, reason) = match error {
        ConvertError::DeadlineExceeded => return Final::Timeout,
        ConvertError::Open { source_name, error }
        | ConvertError::Read {
            source_name, error, ..
        } => {
            let error: &(dyn std::error::Error + 'static) = error;
            match ObjectFailure::find(error) {
                Some(failure) if failure.retryable => return Final::Retryable(error_chain(error)),
                Some(failure) if failure.is_gone() => {
                    return Final::Gone {
                        source: source_name.clone(),
                        reason: error_chain(error),
                    }
                }
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
    Final::File { source, reason }
}

fn superseded_version(reason: &str) -> RejectedLine {
    RejectedLine {
        source: 0,
        line: 0,
        offset: 0,
        kind: RejectKind::Superseded,
        reason: format!(
            "the version was deleted or overwritten before conversion; not converted ({reason})"
        ),
        raw: Vec::new(),
        raw_truncated: false,
        line_bytes: 0,
    }
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
