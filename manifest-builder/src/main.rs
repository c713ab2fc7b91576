//! The `manifest-builder` Lambda binary (`bootstrap` in the deployment package).

use std::io::Write;
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime};

use lambda_runtime::{service_fn, LambdaEvent};
use manifest_builder::batching::Batching;
use manifest_builder::config::BuilderConfig;
use manifest_builder::handler::{Builder, Context};
use serde_json::Value;
use shared::aws::{DynamoLedger, S3Blobs, StepFunctions};
use shared::types::Timestamp;

/// The share of an invocation's time the sweep may start steps in; the rest is for the step
/// under way to finish and for the metrics.
const SWEEP_BUDGET: f64 = 0.7;

/// The share of an invocation's time tracking may start writes in: the rest is for the writes
/// in flight and the answer. An invocation that outlives its timeout gets its whole delivery
/// again, each version a repeated delivery billed again; one that stops here gets back only
/// the messages it did not track.
const TRACKING_BUDGET: f64 = 0.85;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = match BuilderConfig::from_env(&|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            // Before logging is set up: one JSON line, then a failed init.
            let line = serde_json::json!({"level": "ERROR", "message": e.to_string()});
            println!("{line}");
            std::process::exit(1);
        }
    };
    shared::logging::init_json(config.log_level, std::io::stdout);
    for warning in config.timing_warnings() {
        tracing::warn!(%warning, "timing that fragments manifests");
    }
    let aws = shared::aws::load_config().await;
    let builder = Builder {
        batching: Batching::new(
            DynamoLedger::new(
                shared::aws::dynamodb_client(&aws),
                config.tracking_table.clone(),
            ),
            S3Blobs::new(
                shared::aws::s3_client(&aws, config.s3_force_path_style),
                config.kms_key_arn.clone(),
            ),
            StepFunctions::new(
                shared::aws::sfn_client(&aws),
                config.step_function_arn.clone(),
            ),
            config.batching.clone(),
        ),
        records: config.records.clone(),
    };
    let (builder, config, checked) = (&builder, &config, &Once::new());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let now = Timestamp::now();
        let started = Instant::now();
        let remaining = event
            .context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        // The first invocation's time left is (about) the function's timeout, which the
        // environment does not carry: the timings that must outlast it are checked here.
        checked.call_once(|| {
            for problem in config.timing_problems(remaining.as_secs_f64().ceil() as i64) {
                tracing::error!(%problem, "misconfigured timing");
            }
        });
        let budget = remaining.mul_f64(SWEEP_BUDGET);
        let time_left = move || started.elapsed() < budget;
        let tracking_budget = remaining.mul_f64(TRACKING_BUDGET);
        let tracking_time_left = move || started.elapsed() < tracking_budget;
        let context = Context {
            request_id: &event.context.request_id,
            now,
            time_left: &time_left,
            tracking_time_left: &tracking_time_left,
        };
        let (response, metrics) = builder.handle(&event.payload, &context).await?;
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = metrics.emit(now, &mut stdout) {
            tracing::warn!(error = %e, "could not write metrics");
        }
        let _ = stdout.flush();
        Ok::<Value, lambda_runtime::Error>(response)
    }))
    .await
}
