//! The `converter-lambda` binary (`bootstrap` of the converter function): runs one manifest
//! per invocation, with the Step Functions input `{manifest_path, date_prefix, file_count,
//! manifest_id, total_bytes}`, and answers with the run's JSON result or a named error that the
//! state machine's `Retry`/`Catch` match on.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use std::sync::Arc;

use converter::aws::fetch::ReadAhead;
use converter::aws::{preflight, S3Objects};
use converter::manifest_run::{ConverterConfig, LedgerTracking, RunError, Runner};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use shared::aws::ledger::DynamoLedger;
use shared::manifest::ExecutionInput;
use shared::metrics::Metrics;
use shared::types::Timestamp;

/// A run error as Lambda reports it: `errorType` is the name Step Functions matches.
struct Failure(RunError);

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Self {
        Diagnostic {
            error_type: failure.0.name().to_string(),
            error_message: failure.0.to_string(),
        }
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.name(), self.0)
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = match ConverterConfig::from_env(&|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            println!(
                "{}",
                serde_json::json!({"level": "ERROR", "message": e.to_string()})
            );
            std::process::exit(1);
        }
    };
    shared::logging::init_json(config.log_level, std::io::stdout);
    let aws = shared::aws::load_config().await;
    let s3 = shared::aws::s3_client(&aws, config.s3_force_path_style);
    if let Err(problem) = preflight(&shared::aws::kms_client(&aws), &s3, &config).await {
        tracing::error!(problem = %problem, "configuration refers to resources that cannot be used");
        std::process::exit(1);
    }
    let runner = Runner {
        tracking: LedgerTracking {
            ledger: DynamoLedger::new(
                shared::aws::dynamodb_client(&aws),
                config.tracking_table.clone(),
            ),
        },
        objects: Arc::new(
            S3Objects::new(
                s3,
                tokio::runtime::Handle::current(),
                Some(config.kms_key_arn.clone()),
            )
            .with_read_ahead(ReadAhead::within(config.read_ahead_bytes())),
        ),
        config,
    };
    let runner = &runner;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ExecutionInput>| async move {
        // The process is frozen at the deadline: convert the wall-clock deadline to an Instant.
        let left = event
            .context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let deadline = Instant::now() + left;
        let mut metrics = Metrics::new("converter");
        let result = runner.run_execution(&event.payload, Some(deadline), &mut metrics).await;
        if let Err(error) = &result {
            metrics.count(if error.retryable() { "ManifestsRetryable" } else { "ManifestsFailed" }, 1);
            tracing::error!(error_type = error.name(), error = %error, "manifest not converted");
        }
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = metrics.emit(Timestamp::now(), &mut stdout) {
            tracing::warn!(error = %e, "could not write metrics");
        }
        let _ = stdout.flush();
        result.map_err(Failure)
    }))
    .await
}
