//! The CLI's S3 side: `s3://` inputs and outputs for `convert`, and `run-manifest` (the AWS
//! Batch entry point, configured like the converter Lambda).

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use converter::convert::Destination;
use converter::manifest_run::{preflight, ConverterConfig, RunError, RunResult, Runner};
use converter::output::AtomicFile;
use converter::s3::{parse_url, Encryption, S3Source, S3Upload};
use shared::blobs::{BlobStore, S3Blobs};
use shared::dynamo::DynamoTrackingStore;
use shared::manifest::{ExecutionInput, ManifestDocument};
use shared::metrics::Metrics;
use shared::types::Timestamp;

/// A Tokio runtime and an S3 client, created on first use (local-only runs never pay for it).
pub struct Cloud {
    runtime: tokio::runtime::Runtime,
    config: aws_config::SdkConfig,
    s3: aws_sdk_s3::Client,
}

impl Cloud {
    /// The process-wide instance.
    pub fn get() -> anyhow::Result<&'static Cloud> {
        static CLOUD: OnceLock<Cloud> = OnceLock::new();
        if let Some(cloud) = CLOUD.get() {
            return Ok(cloud);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime for S3")?;
        let config = runtime.block_on(shared::aws::load_config());
        let path_style = std::env::var("S3_FORCE_PATH_STYLE")
            .is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let s3 = shared::aws::s3_client(&config, path_style);
        Ok(CLOUD.get_or_init(|| Cloud {
            runtime,
            config,
            s3,
        }))
    }

    /// A source for `s3://bucket/key`.
    pub fn source(&self, url: &str) -> anyhow::Result<Arc<dyn converter::input::Source>> {
        let (bucket, key) =
            parse_url(url).with_context(|| format!("`{url}` is not an s3://bucket/key URL"))?;
        Ok(Arc::new(S3Source::new(
            self.s3.clone(),
            self.runtime.handle().clone(),
            bucket,
            key,
            None,
            None,
        )))
    }

    fn upload(
        &self,
        url: &str,
        content_type: &str,
        kms_key_id: Option<&String>,
    ) -> io::Result<S3Upload> {
        let (bucket, key) = parse_url(url).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{url}` is not an s3://bucket/key URL"),
            )
        })?;
        Ok(S3Upload::new(
            self.s3.clone(),
            self.runtime.handle().clone(),
            bucket,
            key,
            content_type,
            Encryption {
                kms_key_id: kms_key_id.cloned(),
            },
            16 * 1024 * 1024,
        ))
    }
}

/// Where `convert` writes: a local file (atomically renamed) or an S3 object (multipart,
/// aborted unless committed).
pub enum Sink {
    /// A local file.
    Local(AtomicFile),
    /// An S3 object.
    S3(S3Upload),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Local(f) => f.write(buf),
            Sink::S3(u) => u.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Local(f) => f.flush(),
            Sink::S3(u) => u.flush(),
        }
    }
}

impl Sink {
    /// Makes the output visible.
    pub fn commit(self) -> anyhow::Result<()> {
        match self {
            Sink::Local(f) => Ok(f.commit()?),
            Sink::S3(u) => {
                u.commit()?;
                Ok(())
            }
        }
    }
}

/// A path or an `s3://` URL.
pub fn is_s3(target: &str) -> bool {
    target.starts_with("s3://")
}

/// `convert`'s destination.
pub struct CliDestination {
    /// The Parquet output.
    pub parquet: String,
    /// The error output.
    pub errors: Option<String>,
    /// SSE-KMS key for S3 outputs.
    pub kms_key_id: Option<String>,
}

impl CliDestination {
    fn open(&self, target: &str, content_type: &str) -> io::Result<Sink> {
        if is_s3(target) {
            let cloud = Cloud::get().map_err(|e| io::Error::other(format!("{e:#}")))?;
            Ok(Sink::S3(cloud.upload(
                target,
                content_type,
                self.kms_key_id.as_ref(),
            )?))
        } else {
            Ok(Sink::Local(AtomicFile::create(PathBuf::from(target))?))
        }
    }
}

impl Destination for CliDestination {
    type Parquet = Sink;
    type Rejects = Sink;

    /// One output: the CLI never splits it into parts.
    fn parquet(&mut self, _part: usize) -> io::Result<Sink> {
        let target = self.parquet.clone();
        self.open(&target, "application/vnd.apache.parquet")
    }

    fn rejects(&mut self) -> io::Result<Option<Sink>> {
        match self.errors.clone() {
            Some(target) => self.open(&target, "application/x-ndjson").map(Some),
            None => Ok(None),
        }
    }
}

/// The outcome of `run-manifest`, for the exit status.
#[derive(Debug)]
pub struct RunManifestFailed(pub RunError);

impl std::fmt::Display for RunManifestFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.name(), self.0)
    }
}

impl std::error::Error for RunManifestFailed {}

/// `run-manifest s3://bucket/key`: converts one manifest like the Lambda does, without its
/// time limit, and prints the JSON result (or `{"error", "message", "retryable"}`).
pub fn run_manifest(manifest_url: &str) -> anyhow::Result<RunResult> {
    let config = ConverterConfig::from_env(&|name| std::env::var(name).ok())?;
    shared::logging::init_json(config.log_level, io::stderr);
    let cloud = Cloud::get()?;
    let (bucket, key) = parse_url(manifest_url)
        .with_context(|| format!("`{manifest_url}` is not an s3://bucket/key URL"))?;
    cloud
        .runtime
        .block_on(preflight(
            &shared::aws::kms_client(&cloud.config),
            &cloud.s3,
            &config,
        ))
        .map_err(|problem| anyhow::anyhow!(problem))?;
    let runner = Runner {
        store: DynamoTrackingStore::new(
            shared::aws::dynamodb_client(&cloud.config),
            config.tracking_table.clone(),
        ),
        blobs: S3Blobs::new(cloud.s3.clone(), Some(config.kms_key_arn.clone())),
        s3: cloud.s3.clone(),
        handle: cloud.runtime.handle().clone(),
        config,
    };
    let outcome = cloud.runtime.block_on(async {
        let bytes = runner
            .blobs
            .get(&bucket, &key)
            .await
            .map_err(|e| RunError::Transient(e.to_string()))?
            .ok_or_else(|| RunError::ManifestUnreadable {
                path: manifest_url.to_string(),
                reason: "the object does not exist".into(),
            })?;
        let manifest =
            ManifestDocument::from_json(&bytes).map_err(|e| RunError::ManifestUnreadable {
                path: manifest_url.to_string(),
                reason: e.to_string(),
            })?;
        let input = ExecutionInput {
            manifest_path: manifest_url.to_string(),
            date_prefix: manifest.date_prefix.clone(),
            file_count: manifest.file_count,
            file_key: manifest.manifest_id.file_key(),
            total_bytes: manifest.total_bytes,
        };
        let mut metrics = Metrics::new("converter-batch");
        let result = runner.run_manifest(&input, None, &mut metrics).await;
        // The same counts as the Lambda's: the `ManifestsFailed` alarm watches both.
        if let Err(error) = &result {
            metrics.count(
                if error.retryable() {
                    "ManifestsRetryable"
                } else {
                    "ManifestsFailed"
                },
                1,
            );
        }
        let _ = metrics.emit(Timestamp::now(), &mut io::stderr());
        result
    });
    outcome.map_err(|e| RunManifestFailed(e).into())
}
