//! The Lambda adapter: tells an SQS batch from a scheduled sweep by the event's shape and
//! turns the outcome into the response Lambda expects. No business logic lives here.

use serde_json::{json, Value};
use shared::blobs::BlobStore;
use shared::metrics::Metrics;
use shared::orchestrator::Orchestrator;
use shared::tracking::TrackingStore;
use shared::types::Timestamp;

use crate::builder::{ManifestBuilder, Message};

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// A batch of SQS messages.
    Batch(Vec<Message>),
    /// The scheduled sweep.
    Sweep,
}

/// An event of no known shape.
#[derive(Debug, thiserror::Error)]
#[error("unrecognised event: {0}")]
pub struct UnknownEvent(pub &'static str);

/// Classifies an event by shape: SQS batches have `Records` of `aws:sqs` messages; the sweep
/// comes from EventBridge (`detail-type: Scheduled Event`, or `source` `aws.events` /
/// `aws.scheduler`) or as `{"action": "sweep"}` for a manual run.
pub fn classify(event: &Value) -> Result<Invocation, UnknownEvent> {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let mut messages = Vec::with_capacity(records.len());
        for record in records {
            let source = record.get("eventSource").and_then(Value::as_str);
            if source.is_some_and(|s| s != "aws:sqs") {
                return Err(UnknownEvent("`Records` that are not SQS messages"));
            }
            let message_id = record
                .get("messageId")
                .and_then(Value::as_str)
                .ok_or(UnknownEvent("an SQS record without `messageId`"))?;
            let body = record
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or_default();
            messages.push(Message {
                message_id: message_id.to_string(),
                body: body.to_string(),
            });
        }
        return Ok(Invocation::Batch(messages));
    }
    let detail_type = event.get("detail-type").and_then(Value::as_str);
    let source = event.get("source").and_then(Value::as_str);
    let action = event.get("action").and_then(Value::as_str);
    if detail_type == Some("Scheduled Event")
        || matches!(source, Some("aws.events" | "aws.scheduler"))
        || action == Some("sweep")
    {
        return Ok(Invocation::Sweep);
    }
    Err(UnknownEvent("neither an SQS batch nor a scheduled sweep"))
}

/// Handles one invocation; returns the Lambda response and the invocation's metrics.
pub async fn handle<S, O, B>(
    builder: &ManifestBuilder<S, O, B>,
    event: &Value,
    now: Timestamp,
) -> Result<(Value, Metrics), UnknownEvent>
where
    S: TrackingStore,
    O: Orchestrator,
    B: BlobStore,
{
    match classify(event)? {
        Invocation::Batch(messages) => {
            let outcome = builder.process_batch(&messages, now).await;
            let failures: Vec<Value> = outcome
                .failed_message_ids
                .iter()
                .map(|id| json!({"itemIdentifier": id}))
                .collect();
            let metrics = outcome
                .metrics
                .unwrap_or_else(|| Metrics::new("manifest-builder"));
            Ok((json!({"batchItemFailures": failures}), metrics))
        }
        Invocation::Sweep => {
            let mut metrics = Metrics::new("manifest-builder");
            let report = builder.sweep(now, &mut metrics).await;
            Ok((
                serde_json::to_value(report).expect("invariant: reports serialize"),
                metrics,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_told_apart_by_shape() {
        let sqs = json!({"Records": [{"messageId": "1", "body": "{}", "eventSource": "aws:sqs"}]});
        assert!(matches!(classify(&sqs).unwrap(), Invocation::Batch(m) if m[0].message_id == "1"));
        assert_eq!(
            classify(&json!({"Records": []})).unwrap(),
            Invocation::Batch(vec![])
        );
        let scheduled =
            json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert_eq!(classify(&scheduled).unwrap(), Invocation::Sweep);
        assert_eq!(
            classify(&json!({"action": "sweep"})).unwrap(),
            Invocation::Sweep
        );
        assert!(classify(&json!({"Records": [{"eventSource": "aws:s3"}]})).is_err());
        assert!(classify(&json!({"hello": 1})).is_err());
    }
}
