//! The CLI's S3 side (feature `aws`): `s3://` inputs and outputs for `convert`, and
//! `run-manifest` (the AWS Batch entry point, configured like the converter Lambda).

use std::io;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use converter::aws::fetch::{ReadAhead, Target};
use converter::aws::s3::{parse_url, Encryption, S3Ranges, S3Upload};
use converter::aws::{preflight, S3Objects};
use converter::manifest_run::{ConverterConfig, LedgerTracking, RunError, RunResult, Runner};
use shared::aws::ledger::DynamoLedger;
use shared::config::Env;
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
        let lookup = |name: &str| std::env::var(name).ok();
        let mut env = Env::new(&lookup);
        let path_style = env.flag("S3_FORCE_PATH_STYLE", false);
        env.finish()?;
        let config = runtime.block_on(shared::aws::load_config());
        let s3 = shared::aws::s3_client(&config, path_style);
        Ok(CLOUD.get_or_init(|| Cloud {
            runtime,
            config,
            s3,
        }))
    }

    /// Sources for `s3://bucket/key` URLs, read ahead together (the next objects are in
    /// flight while one converts; see `converter::aws::fetch`).
    pub fn sources(&self, urls: &[&str]) -> anyhow::Result<Vec<Arc<dyn converter::input::Source>>> {
        let targets = urls
            .iter()
            .map(|url| {
                let (bucket, key) = parse_url(url)
                    .with_context(|| format!("`{url}` is not an s3://bucket/key URL"))?;
                Ok(Target {
                    name: url.to_string(),
                    bucket,
                    key,
                    version_id: None,
                    etag: None,
                    size: None,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(S3Ranges::sources(
            self.s3.clone(),
            self.runtime.handle().clone(),
            ReadAhead::default(),
            targets,
        ))
    }

    /// A multipart upload to `s3://bucket/key`, SSE-KMS under `kms_key_id` when given.
    pub fn upload(
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
    parse_url(manifest_url)
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
        tracking: LedgerTracking {
            ledger: DynamoLedger::new(
                shared::aws::dynamodb_client(&cloud.config),
                config.tracking_table.clone(),
            ),
        },
        objects: Arc::new(
            S3Objects::new(
                cloud.s3.clone(),
                cloud.runtime.handle().clone(),
                Some(config.kms_key_arn.clone()),
            )
            .with_read_ahead(ReadAhead::within(config.read_ahead_bytes())),
        ),
        config,
    };
    let outcome = cloud.runtime.block_on(async {
        let mut metrics = Metrics::new("converter-batch");
        let result = runner.run_path(manifest_url, &mut metrics).await;
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
