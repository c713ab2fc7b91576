//! Running one manifest in the pipeline: S3 objects in, Parquet parts (SSE-KMS) and an error
//! object out, statuses in the tracking table. The Lambda (`converter-lambda`) and the AWS
//! Batch entry point (`ndjson-parquet run-manifest`) are thin shells over [`run_manifest`].
//!
//! # Outputs and retries
//!
//! Keys depend only on the manifest: parts are `OUTPUT_PREFIX/dt=<date>/<id>-<part>.parquet`,
//! rejected lines go to `ERROR_PREFIX/dt=<date>/<id>.errors.ndjson.gz`. A retry overwrites
//! them, and any part an earlier attempt wrote that this one did not is deleted *before*
//! success is recorded, so no number of retries can leave a duplicate row. Uploads that do not
//! finish are aborted, so nothing half-written is ever visible.
//!
//! # Errors
//!
//! [`RunError::name`] is the error type Step Functions sees. Retryable ones
//! (`ConverterRetryable`, `ConverterTimeout`) leave every status as it was so the workflow can
//! retry (or, for a timeout, hand the manifest to AWS Batch). The others are final: for a file
//! that cannot be read (missing, access denied, corrupt compression, changed since it was
//! tracked) the manifest is marked `failed`, that file counts an attempt (and is `failed` at
//! `MAX_ATTEMPTS`), and the other files go back to pending untouched, so one poison file never
//! takes its neighbours down with it.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use serde::Serialize;
use shared::blobs::{BlobError, BlobStore};
use shared::config::{any, in_range, ConfigError, Env};
use shared::logging::LogLevel;
use shared::manifest::{
    error_key, parse_s3_url, part_prefix, ExecutionInput, ManifestDocument, OutputLocations,
};
use shared::metrics::{Metrics, Unit};
use shared::tracking::{ManifestChanges, StoreError, TrackingStore};
use shared::types::{
    ConversionResult, DatePrefix, ManifestId, ManifestRecord, ManifestStatus, Timestamp,
    MANIFEST_KEY_PREFIX,
};
use tokio::runtime::Handle;
use tracing::{info, warn};

use crate::convert::{
    convert, ConvertError, ConvertOptions, Destination, NoProgress, OnError, SchemaChoice,
};
use crate::input::Source;
use crate::parquet_options::{Codec, ParquetOptions};
use crate::reject::{RejectKind, RejectedLine};
use crate::s3::{Encryption, S3Failure, S3Source, S3Upload, MIN_PART_SIZE};
use crate::schema::{Schema, TimestampUnit};

/// The converter's configuration (Lambda and Batch alike), read once at start-up.
#[derive(Debug, Clone)]
pub struct ConverterConfig {
    /// `TRACKING_TABLE`.
    pub tracking_table: String,
    /// `OUTPUT_BUCKET`: where Parquet goes.
    pub output_bucket: String,
    /// `OUTPUT_PREFIX` (may be empty).
    pub output_prefix: String,
    /// `ERROR_BUCKET` (default: the output bucket).
    pub error_bucket: String,
    /// `ERROR_PREFIX` (default `errors`).
    pub error_prefix: String,
    /// `KMS_KEY_ARN`: every object written is SSE-KMS under this key.
    pub kms_key_arn: String,
    /// `COMPRESSION_TYPE` (default `snappy`), with the CLI's codec names; `lzo` is refused.
    pub compression: Codec,
    /// `SCHEMA_URI` (optional): `s3://…` or a path; otherwise inferred per manifest.
    pub schema_uri: Option<String>,
    /// `TIMESTAMP_UNIT` (default `us`) of inferred timestamps.
    pub timestamp_unit: TimestampUnit,
    /// `MAX_ATTEMPTS` (default 3).
    pub max_attempts: u32,
    /// `MEMORY_BUDGET_MB` (optional; in Lambda, 80% of the function's memory by default).
    pub memory_budget_mb: Option<u64>,
    /// `TARGET_FILE_BYTES` (default 256 MiB, at least 64 KiB): Parquet parts roll over at
    /// about this size (at a row-group boundary).
    pub target_file_bytes: u64,
    /// `THREADS` (default: all cores).
    pub threads: usize,
    /// `LAMBDA_MIN_MBPS` (default 40): the throughput assumed when deciding up front whether a
    /// manifest can finish within the Lambda's remaining time.
    pub lambda_min_mbps: u64,
    /// `LOG_LEVEL`.
    pub log_level: LogLevel,
    /// `S3_FORCE_PATH_STYLE` (for emulators).
    pub s3_force_path_style: bool,
}

impl ConverterConfig {
    /// Reads and validates the configuration, naming every bad variable.
    pub fn from_env(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let tracking_table = env.required("TRACKING_TABLE");
        let output_bucket = env.required("OUTPUT_BUCKET");
        let OutputLocations {
            output_bucket,
            output_prefix,
            error_bucket,
            error_prefix,
        } = OutputLocations::from_env(&mut env, output_bucket);
        let kms_key_arn = env.required("KMS_KEY_ARN");
        let key_like = kms_key_arn.starts_with("arn:")
            || kms_key_arn.starts_with("alias/")
            || is_key_id(&kms_key_arn);
        if !kms_key_arn.is_empty() && !key_like {
            env.problem(
                "KMS_KEY_ARN",
                format!("is `{kms_key_arn}`: not a KMS key ARN, alias or key id"),
            );
        }
        let compression = env.parsed::<Codec>("COMPRESSION_TYPE", Codec::Snappy, any);
        let schema_uri = env.optional("SCHEMA_URI");
        let timestamp_unit =
            env.parsed::<TimestampUnit>("TIMESTAMP_UNIT", TimestampUnit::Microsecond, any);
        let max_attempts = env.parsed::<u32>("MAX_ATTEMPTS", 3, in_range(1, 100));
        let memory_budget_mb = match env.optional("MEMORY_BUDGET_MB") {
            Some(_) => Some(env.parsed::<u64>("MEMORY_BUDGET_MB", 0, in_range(128, 1 << 20))),
            None => env
                .optional("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .and_then(|m| m.trim().parse::<u64>().ok())
                .map(|m| m * 8 / 10),
        };
        let target_file_bytes =
            env.parsed::<u64>("TARGET_FILE_BYTES", 256 << 20, in_range(64 << 10, 16 << 30));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = env.parsed::<usize>("THREADS", cores, in_range(1, 1024));
        let lambda_min_mbps = env.parsed::<u64>("LAMBDA_MIN_MBPS", 40, in_range(1, 100_000));
        let log_level = env.parsed::<LogLevel>("LOG_LEVEL", LogLevel::Info, any);
        let s3_force_path_style = env.flag("S3_FORCE_PATH_STYLE", false);
        env.finish()?;
        Ok(ConverterConfig {
            tracking_table,
            output_bucket,
            output_prefix,
            error_bucket,
            error_prefix,
            kms_key_arn,
            compression,
            schema_uri,
            timestamp_unit,
            max_attempts,
            memory_budget_mb,
            target_file_bytes,
            threads,
            lambda_min_mbps,
            log_level,
            s3_force_path_style,
        })
    }

    /// Conversion settings sized to the memory budget: chunks in flight, one row group being
    /// encoded and the upload buffers must fit, whatever the input size.
    pub fn convert_options(&self) -> (ConvertOptions, usize) {
        let budget = self.memory_budget_mb.map(|mb| mb * 1024 * 1024);
        let threads = self.threads.max(1);
        let chunk_bytes = 1024 * 1024;
        // Decode side: (2 * threads + 2) chunks in flight, each about 4x its size once decoded.
        let decode = (2 * threads as u64 + 2) * chunk_bytes as u64 * 4;
        let (part_size, row_group_bytes) = match budget {
            None => (16 * 1024 * 1024, 128 * 1024 * 1024),
            Some(budget) => {
                let part = if budget >= 1 << 30 {
                    16 << 20
                } else {
                    MIN_PART_SIZE as u64
                };
                // Three part buffers (one filling, two uploading) for Parquet, one for errors.
                let uploads = 4 * part;
                let left = budget.saturating_sub(decode + uploads + (64 << 20));
                // An in-progress row group can take about twice its encoded estimate.
                (part as usize, (left / 2).clamp(8 << 20, 128 << 20) as usize)
            }
        };
        let options = ConvertOptions {
            schema: SchemaChoice::Infer,
            timestamp_unit: self.timestamp_unit,
            on_error: OnError::Quarantine,
            threads,
            chunk_bytes,
            parquet: ParquetOptions {
                codec: self.compression,
                row_group_bytes,
                ..ParquetOptions::default()
            },
            max_file_bytes: Some(self.target_file_bytes),
            empty_output_ok: true,
            ..ConvertOptions::default()
        };
        (options, part_size)
    }
}

fn is_key_id(text: &str) -> bool {
    text.len() == 36 && text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// What a run produced (the Lambda's response, `run-manifest`'s output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunResult {
    /// The manifest.
    pub manifest_id: String,
    /// `completed`, or `already_completed` when an earlier attempt finished it.
    pub status: String,
    /// Lines read.
    pub lines_read: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Lines rejected (in the error object).
    pub rows_rejected: u64,
    /// Blank lines.
    pub blank_lines: u64,
    /// Raw input bytes.
    pub bytes_in: u64,
    /// Parquet bytes.
    pub bytes_out: u64,
    /// Parquet keys.
    pub output_keys: Vec<String>,
    /// Error object key, if any line was rejected.
    pub error_key: Option<String>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// Why a run failed. [`RunError::name`] is what Step Functions matches.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The manifest object is missing, unreadable, or does not match the execution input.
    #[error("manifest {path} cannot be used: {reason}")]
    ManifestUnreadable {
        /// `s3://` path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The manifest's item says it must not run (abandoned, failed, unknown).
    #[error("manifest {manifest_id} is not runnable: {reason}")]
    ManifestNotRunnable {
        /// The manifest.
        manifest_id: String,
        /// Why.
        reason: String,
    },
    /// A file cannot be converted; the manifest was marked failed and its files released.
    #[error("manifest {manifest_id} failed on {file}: {reason}")]
    FileFailed {
        /// The manifest.
        manifest_id: String,
        /// `s3://` URL of the file.
        file: String,
        /// Why.
        reason: String,
    },
    /// A transient failure (throttling, network, service errors): retry the manifest.
    #[error("transient failure, retry: {0}")]
    Transient(String),
    /// The manifest cannot finish within the Lambda's remaining time: run it on AWS Batch.
    #[error("manifest {manifest_id} needs about {needed_s} s but only {remaining_s} s remain")]
    Timeout {
        /// The manifest.
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

/// What a run needs besides its configuration.
pub struct Runner<S> {
    /// The tracking table.
    pub store: S,
    /// S3 (for inputs, outputs and the manifest).
    pub s3: Client,
    /// Manifest and schema objects.
    pub blobs: shared::blobs::S3Blobs,
    /// The runtime the S3 adapters block on.
    pub handle: Handle,
    /// Configuration.
    pub config: ConverterConfig,
}

/// Destination of one manifest: numbered parts and a gzip error object, all SSE-KMS.
struct ManifestDestination {
    client: Client,
    handle: Handle,
    encryption: Encryption,
    part_size: usize,
    output_bucket: String,
    part_prefix: String,
    error_bucket: String,
    error_key: String,
}

impl ManifestDestination {
    fn part_key(&self, part: usize) -> String {
        format!("{}{part:05}.parquet", self.part_prefix)
    }
}

/// The error object, created only when the first line is rejected.
struct LazyErrors {
    factory: Option<Box<dyn FnOnce() -> S3Upload + Send>>,
    writer: Option<flate2::write::GzEncoder<S3Upload>>,
}

impl Write for LazyErrors {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.writer.is_none() {
            let factory = self
                .factory
                .take()
                .expect("invariant: the factory is used once");
            self.writer = Some(flate2::write::GzEncoder::new(
                factory(),
                flate2::Compression::default(),
            ));
        }
        self.writer
            .as_mut()
            .expect("invariant: created above")
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LazyErrors {
    /// Finishes the object; `None` if nothing was rejected.
    fn commit(self) -> Result<Option<String>, S3Failure> {
        let Some(writer) = self.writer else {
            return Ok(None);
        };
        let upload = writer.finish().map_err(|e| S3Failure {
            url: String::new(),
            operation: "PutObject",
            code: None,
            message: format!("finishing the gzip stream: {e}"),
            retryable: true,
        })?;
        let key = upload.key().to_string();
        upload.commit()?;
        Ok(Some(key))
    }
}

impl Destination for ManifestDestination {
    type Parquet = S3Upload;
    type Rejects = LazyErrors;

    fn parquet(&mut self, part: usize) -> io::Result<S3Upload> {
        Ok(S3Upload::new(
            self.client.clone(),
            self.handle.clone(),
            self.output_bucket.clone(),
            self.part_key(part),
            "application/vnd.apache.parquet",
            self.encryption.clone(),
            self.part_size,
        ))
    }

    fn rejects(&mut self) -> io::Result<Option<LazyErrors>> {
        let (client, handle, bucket, key, encryption) = (
            self.client.clone(),
            self.handle.clone(),
            self.error_bucket.clone(),
            self.error_key.clone(),
            self.encryption.clone(),
        );
        Ok(Some(LazyErrors {
            factory: Some(Box::new(move || {
                S3Upload::new(
                    client,
                    handle,
                    bucket,
                    key,
                    "application/gzip",
                    encryption,
                    MIN_PART_SIZE,
                )
            })),
            writer: None,
        }))
    }
}

/// Checks what would otherwise fail every manifest: the KMS key exists and is enabled (S3
/// accepts a write naming a key it cannot use only to fail later, and some S3-compatible
/// stores accept any key id), and the output bucket is reachable and listable under the output
/// prefix. Run at start-up.
pub async fn preflight(
    kms: &aws_sdk_kms::Client,
    s3: &Client,
    config: &ConverterConfig,
) -> Result<(), String> {
    let key = kms
        .describe_key()
        .key_id(&config.kms_key_arn)
        .send()
        .await
        .map_err(|e| {
            format!(
                "KMS_KEY_ARN {}: {}",
                config.kms_key_arn,
                shared::aws::describe_error(&e)
            )
        })?;
    let metadata = key
        .key_metadata
        .ok_or_else(|| format!("KMS_KEY_ARN {}: no key metadata", config.kms_key_arn))?;
    if !metadata.enabled {
        return Err(format!(
            "KMS_KEY_ARN {}: the key is disabled",
            config.kms_key_arn
        ));
    }
    // A one-key listing under the output prefix, not HeadBucket: S3 authorizes HeadBucket as
    // an `s3:ListBucket` with no `s3:prefix`, which a role allowed to list only its own prefix
    // (least privilege, `terraform/modules/iam`) is denied. This is what the run itself does.
    let probe_prefix = shared::manifest::output_probe_prefix(&config.output_prefix);
    s3.list_objects_v2()
        .bucket(&config.output_bucket)
        .prefix(&probe_prefix)
        .max_keys(1)
        .send()
        .await
        .map_err(|e| {
            format!(
                "OUTPUT_BUCKET {} (listing s3://{}/{}): {}",
                config.output_bucket,
                config.output_bucket,
                probe_prefix,
                shared::aws::describe_error(&e)
            )
        })?;
    Ok(())
}

impl<S: TrackingStore> Runner<S> {
    /// Converts one manifest (see the module docs). `deadline` is when the process will be
    /// stopped (Lambda); the run gives up early enough to report a `ConverterTimeout`.
    pub async fn run_manifest(
        &self,
        input: &ExecutionInput,
        deadline: Option<Instant>,
        metrics: &mut Metrics,
    ) -> Result<RunResult, RunError> {
        let started = Instant::now();
        let path = input.manifest_path.clone();
        let unreadable = |reason: String| RunError::ManifestUnreadable {
            path: path.clone(),
            reason,
        };
        let (bucket, key) = parse_s3_url(&input.manifest_path)
            .ok_or_else(|| unreadable("not an s3:// URL".into()))?;
        let id = input
            .file_key
            .strip_prefix(MANIFEST_KEY_PREFIX)
            .and_then(ManifestId::parse)
            .ok_or_else(|| {
                unreadable(format!("`{}` is not a manifest item key", input.file_key))
            })?;
        let bytes = self
            .blobs
            .get(bucket, key)
            .await?
            .ok_or_else(|| unreadable("the object does not exist".into()))?;
        let manifest =
            ManifestDocument::from_json(&bytes).map_err(|e| unreadable(e.to_string()))?;
        if manifest.manifest_id != id || manifest.date_prefix != input.date_prefix {
            return Err(unreadable(format!(
                "it describes {} of {}, the execution input {} of {}",
                manifest.manifest_id, manifest.date_prefix, id, input.date_prefix
            )));
        }
        let prefix = manifest.date_prefix.clone();

        let record = self
            .store
            .get_manifest(&prefix, &id)
            .await?
            .ok_or_else(|| RunError::ManifestNotRunnable {
                manifest_id: id.to_string(),
                reason: "no manifest item in the tracking table".into(),
            })?;
        match record.status {
            ManifestStatus::Starting | ManifestStatus::Running => {}
            ManifestStatus::Completed => {
                info!(manifest_id = %id, "manifest already completed; nothing to do");
                return Ok(result_of(
                    &id,
                    "already_completed",
                    record.result.unwrap_or_default(),
                    started,
                ));
            }
            other => {
                return Err(RunError::ManifestNotRunnable {
                    manifest_id: id.to_string(),
                    reason: format!("its status is {}", other.as_str()),
                })
            }
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

        let (mut options, part_size) = self.config.convert_options();
        if let Some(uri) = &self.config.schema_uri {
            options.schema = SchemaChoice::Explicit(self.load_schema(uri).await?);
        }
        // Stop with time left to report and clean up: 10% of what remains, at least 20 s.
        options.deadline = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            d.checked_sub((left / 10).max(Duration::from_secs(20)))
                .unwrap_or_else(Instant::now)
        });

        // Empty objects have no lines to convert: each is recorded in the error output.
        let (empty, files): (Vec<_>, Vec<_>) = manifest.files.iter().partition(|f| f.size == 0);
        let sources: Vec<Arc<dyn Source>> = files
            .iter()
            .map(|f| {
                Arc::new(S3Source::new(
                    self.s3.clone(),
                    self.handle.clone(),
                    f.bucket.clone(),
                    f.key.clone(),
                    Some(f.etag.clone()),
                    Some(f.size),
                )) as Arc<dyn Source>
            })
            .collect();
        let empty_records: Vec<(String, RejectedLine)> = empty
            .iter()
            .map(|f| {
                (
                    format!("s3://{}/{}", f.bucket, f.key),
                    RejectedLine {
                        source: 0,
                        line: 0,
                        offset: 0,
                        kind: RejectKind::EmptyObject,
                        reason: "the object is empty (0 bytes): no lines to convert".into(),
                        raw: Vec::new(),
                        raw_truncated: false,
                        line_bytes: 0,
                    },
                )
            })
            .collect();

        let part_prefix = part_prefix(&self.config.output_prefix, &prefix, &id);
        let mut destination = ManifestDestination {
            client: self.s3.clone(),
            handle: self.handle.clone(),
            encryption: Encryption {
                kms_key_id: Some(self.config.kms_key_arn.clone()),
            },
            part_size,
            output_bucket: self.config.output_bucket.clone(),
            part_prefix: part_prefix.clone(),
            error_bucket: self.config.error_bucket.clone(),
            error_key: error_key(&self.config.error_prefix, &prefix, &id),
        };

        let converted = tokio::task::spawn_blocking(move || -> Result<_, ConvertError> {
            let converted = if sources.is_empty() {
                None
            } else {
                Some(convert(&sources, &options, &mut destination, &NoProgress)?)
            };
            let mut keys = Vec::new();
            let (summary, rejects) = match converted {
                Some(c) => {
                    for part in c.parts {
                        keys.push(part.key().to_string());
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
            for (source, record) in &empty_records {
                record
                    .write_record(source, &mut rejects)
                    .map_err(ConvertError::RejectOutput)?;
            }
            let error_key = rejects
                .commit()
                .map_err(|e| ConvertError::RejectOutput(e.into_io()))?;
            Ok((summary, keys, error_key))
        })
        .await
        .map_err(|e| RunError::Transient(format!("conversion task failed: {e}")))?;

        let (summary, output_keys, error_key) = match converted {
            Ok(done) => done,
            Err(error) => return Err(self.fail(&record, &manifest, error, started).await),
        };

        // Stale parts of earlier attempts go before success is recorded.
        let stale_errors = error_key
            .is_none()
            .then(|| destination_error_key(&self.config, &prefix, &id));
        self.delete_stale(&part_prefix, &output_keys, stale_errors.as_ref())
            .await?;

        let stats = summary.as_ref().map(|s| s.stats).unwrap_or_default();
        let result = ConversionResult {
            lines_read: stats.lines,
            rows_written: stats.rows,
            rows_rejected: stats.rejected + empty.len() as u64,
            blank_lines: stats.blank,
            bytes_in: summary.as_ref().map_or(0, |s| s.raw_bytes),
            bytes_out: summary.as_ref().map_or(0, |s| s.output_bytes),
            output_keys,
            error_key,
            schema: summary.as_ref().map(|s| s.schema.to_compact_json()),
        };
        let now = Timestamp::now();
        for file in &manifest.files {
            self.store
                .complete_file(&prefix, &file.key, &id, now)
                .await?;
        }
        let changes = ManifestChanges {
            result: Some(result.clone()),
            ..ManifestChanges::default()
        };
        self.transition(&record, ManifestStatus::Completed, &changes)
            .await?;

        let run = result_of(&id, "completed", result, started);
        let seconds = started.elapsed().as_secs_f64().max(1e-3);
        metrics.count("RowsWritten", run.rows_written);
        metrics.count("RowsRejected", run.rows_rejected);
        metrics.count("ManifestsCompleted", 1);
        metrics.add("BytesIn", run.bytes_in as f64, Unit::Bytes);
        metrics.add("BytesOut", run.bytes_out as f64, Unit::Bytes);
        metrics.add(
            "Throughput",
            stats.bytes as f64 / 1e6 / seconds,
            Unit::MegabytesPerSecond,
        );
        info!(
            manifest_id = %id,
            rows = run.rows_written,
            rejected = run.rows_rejected,
            blank = run.blank_lines,
            parts = run.output_keys.len(),
            mb_per_s = stats.bytes as f64 / 1e6 / seconds,
            "manifest completed"
        );
        Ok(run)
    }

    async fn load_schema(&self, uri: &str) -> Result<Schema, RunError> {
        let text =
            match parse_s3_url(uri) {
                Some((bucket, key)) => self.blobs.get(bucket, key).await?.ok_or_else(|| {
                    RunError::Transient(format!("SCHEMA_URI {uri} does not exist"))
                })?,
                None => std::fs::read(uri)
                    .map_err(|e| RunError::Transient(format!("SCHEMA_URI {uri}: {e}")))?,
            };
        let text = String::from_utf8(text)
            .map_err(|_| RunError::Transient(format!("SCHEMA_URI {uri} is not UTF-8")))?;
        Schema::from_json(&text).map_err(|e| RunError::Transient(format!("SCHEMA_URI {uri}: {e}")))
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

    async fn delete_stale(
        &self,
        part_prefix: &str,
        keep: &[String],
        stale_errors: Option<&String>,
    ) -> Result<(), RunError> {
        let keep: BTreeSet<&str> = keep.iter().map(String::as_str).collect();
        let mut token = None;
        loop {
            let listing = self
                .s3
                .list_objects_v2()
                .bucket(&self.config.output_bucket)
                .prefix(part_prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| RunError::Transient(shared::aws::describe_error(&e)))?;
            for object in listing.contents() {
                let Some(key) = object.key() else { continue };
                if !keep.contains(key) {
                    warn!(key, "deleting a part left by an earlier attempt");
                    self.s3
                        .delete_object()
                        .bucket(&self.config.output_bucket)
                        .key(key)
                        .send()
                        .await
                        .map_err(|e| RunError::Transient(shared::aws::describe_error(&e)))?;
                }
            }
            match listing.next_continuation_token {
                Some(next) if listing.is_truncated == Some(true) => token = Some(next),
                _ => break,
            }
        }
        if let Some(key) = stale_errors {
            self.s3
                .delete_object()
                .bucket(&self.config.error_bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| RunError::Transient(shared::aws::describe_error(&e)))?;
        }
        Ok(())
    }

    /// Turns a conversion error into the run's error, recording a final failure.
    async fn fail(
        &self,
        record: &ManifestRecord,
        manifest: &ManifestDocument,
        error: ConvertError,
        started: Instant,
    ) -> RunError {
        let id = &record.manifest_id;
        let (file, reason) = match &error {
            ConvertError::DeadlineExceeded => {
                return RunError::Timeout {
                    manifest_id: id.to_string(),
                    needed_s: started.elapsed().as_secs(),
                    remaining_s: 0,
                }
            }
            ConvertError::Open { source_name, error }
            | ConvertError::Read {
                source_name, error, ..
            } => {
                let error: &(dyn std::error::Error + 'static) = error;
                match S3Failure::find(error) {
                    Some(failure) if failure.retryable => {
                        return RunError::Transient(error_chain(error))
                    }
                    _ => (source_name.clone(), error_chain(error)),
                }
            }
            ConvertError::NoColumns { .. } => (String::new(), error.to_string()),
            _ => return RunError::Transient(error_chain(&error)),
        };
        let reason = if let ConvertError::Read { offset, .. } = &error {
            format!("{reason} (after {offset} bytes of decompressed data)")
        } else {
            reason
        };
        warn!(manifest_id = %id, error = %reason, "manifest failed");
        let now = Timestamp::now();
        let outcome: Result<(), RunError> = async {
            for f in &manifest.files {
                let url = format!("s3://{}/{}", f.bucket, f.key);
                if file.is_empty() || url == file {
                    self.store
                        .fail_file(
                            &record.date_prefix,
                            &f.key,
                            id,
                            self.config.max_attempts,
                            now,
                        )
                        .await?;
                } else {
                    self.store
                        .release_file(&record.date_prefix, &f.key, id, now)
                        .await?;
                }
            }
            let changes = ManifestChanges {
                error: Some(format!("{file}: {reason}")),
                ..ManifestChanges::default()
            };
            self.transition(record, ManifestStatus::Failed, &changes)
                .await
        }
        .await;
        if let Err(e) = outcome {
            // The statuses could not be recorded: let the workflow retry the whole manifest.
            return RunError::Transient(format!("{reason}; and recording the failure failed: {e}"));
        }
        RunError::FileFailed {
            manifest_id: id.to_string(),
            file,
            reason,
        }
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

fn destination_error_key(config: &ConverterConfig, prefix: &DatePrefix, id: &ManifestId) -> String {
    error_key(&config.error_prefix, prefix, id)
}

fn result_of(
    id: &ManifestId,
    status: &str,
    result: ConversionResult,
    started: Instant,
) -> RunResult {
    RunResult {
        manifest_id: id.to_string(),
        status: status.to_string(),
        lines_read: result.lines_read,
        rows_written: result.rows_written,
        rows_rejected: result.rows_rejected,
        blank_lines: result.blank_lines,
        bytes_in: result.bytes_in,
        bytes_out: result.bytes_out,
        output_keys: result.output_keys,
        error_key: result.error_key,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<ConverterConfig, ConfigError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        ConverterConfig::from_env(&|name| map.get(name).map(|v| v.to_string()))
    }

    const BASE: &[(&str, &str)] = &[
        ("TRACKING_TABLE", "t"),
        ("OUTPUT_BUCKET", "out"),
        (
            "KMS_KEY_ARN",
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ),
    ];

    #[test]
    fn defaults_and_validation() {
        let c = config(BASE).unwrap();
        assert_eq!(c.compression, Codec::Snappy);
        assert_eq!(
            (c.error_bucket.as_str(), c.error_prefix.as_str()),
            ("out", "errors")
        );
        assert_eq!(c.max_attempts, 3);

        let mut bad = BASE.to_vec();
        bad.push(("COMPRESSION_TYPE", "lzo"));
        bad.push(("KMS_KEY_ARN", "my key"));
        bad.push(("MEMORY_BUDGET_MB", "12"));
        let err = config(&bad).unwrap_err().to_string();
        assert!(
            err.contains("COMPRESSION_TYPE is `lzo`: `lzo` is not supported"),
            "{err}"
        );
        assert!(err.contains("KMS_KEY_ARN is `my key`"), "{err}");
        assert!(err.contains("MEMORY_BUDGET_MB"), "{err}");
        let err = config(&[]).unwrap_err().to_string();
        for v in ["TRACKING_TABLE", "OUTPUT_BUCKET", "KMS_KEY_ARN"] {
            assert!(err.contains(v), "{err}");
        }
    }

    #[test]
    fn memory_budget_sizes_row_groups_and_parts() {
        let mut vars = BASE.to_vec();
        vars.push(("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"));
        vars.push(("THREADS", "1"));
        let (options, part) = config(&vars).unwrap().convert_options();
        assert_eq!(part, MIN_PART_SIZE);
        assert!(
            options.parquet.row_group_bytes <= 160 << 20,
            "{}",
            options.parquet.row_group_bytes
        );
        assert!(options.parquet.row_group_bytes >= 8 << 20);
        assert_eq!(options.on_error, OnError::Quarantine);
        let mut vars = BASE.to_vec();
        vars.push(("MEMORY_BUDGET_MB", "4096"));
        let (options, part) = config(&vars).unwrap().convert_options();
        assert_eq!(
            (part, options.parquet.row_group_bytes),
            (16 << 20, 128 << 20)
        );
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
