//! The `manifest-builder` Lambda binary (`bootstrap` in the deployment package).

use std::io::Write;

use lambda_runtime::{service_fn, LambdaEvent};
use manifest_builder::builder::ManifestBuilder;
use manifest_builder::config::BuilderConfig;
use manifest_builder::handler::handle;
use serde_json::Value;
use shared::aws::dynamo::DynamoTrackingStore;
use shared::aws::S3Blobs;
use shared::aws::StepFunctions;
use shared::types::Timestamp;

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
    if config.outputs.is_none() {
        tracing::warn!("OUTPUT_BUCKET is not set: the sweep cannot remove what a failed manifest committed before its files are converted again");
    }
    let aws = shared::aws::load_config().await;
    let builder = ManifestBuilder {
        store: DynamoTrackingStore::new(
            shared::aws::dynamodb_client(&aws),
            config.tracking_table.clone(),
        ),
        orchestrator: StepFunctions::new(
            shared::aws::sfn_client(&aws),
            config.step_function_arn.clone(),
        ),
        blobs: S3Blobs::new(
            shared::aws::s3_client(&aws, config.s3_force_path_style),
            config.kms_key_arn.clone(),
        ),
        config,
    };
    let builder = &builder;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let now = Timestamp::now();
        let (response, metrics) = handle(builder, &event.payload, now).await?;
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = metrics.emit(now, &mut stdout) {
            tracing::warn!(error = %e, "could not write metrics");
        }
        let _ = stdout.flush();
        Ok::<Value, lambda_runtime::Error>(response)
    }))
    .await
}
