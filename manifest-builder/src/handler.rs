//! The Lambda adapter: tells an SQS batch from a scheduled sweep by the event's shape, turns
//! S3 notifications into [`Arrival`]s for [`Batching::track`], cuts the shards it touched,
//! and turns the outcome into the response Lambda expects (`batchItemFailures`). The protocol
//! itself lives in [`crate::batching`].

use std::collections::BTreeSet;

use serde_json::{json, Value};
use shared::blobs::BlobStore;
use shared::events::{date_prefix_for, parse_body, Body};
use shared::ledger::{Ledger, Shard, VersionRef};
use shared::metrics::Metrics;
use shared::orchestrator::Orchestrator;
use shared::types::Timestamp;
use tracing::{debug, error, info, warn};

use crate::batching::{self, Arrival, Batching};
use crate::config::RecordFilter;

/// Metric names (EMF) of the adapter; the protocol's are [`batching::metric`].
pub mod metric {
    /// Records skipped (not ObjectCreated, suffix not tracked, test events).
    pub const SKIPPED: &str = "RecordsSkipped";
    /// Messages reported as batch item failures (delivered again, then to the DLQ).
    pub const FAILED_MESSAGES: &str = "MessagesFailed";
    /// Shards whose cut after tracking failed (the next delivery or the sweep cuts them).
    pub const CUT_ERRORS: &str = "CutErrors";
    /// Invocations whose cut after tracking stopped at the time budget (the next delivery or
    /// the sweep cuts the rest).
    pub const CUTS_OUT_OF_TIME: &str = "CutsOutOfTime";
}

/// The function name in the metrics.
pub const FUNCTION: &str = "manifest-builder";

/// One SQS message, as the handler hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SQS message id (the `itemIdentifier` of a batch item failure).
    pub message_id: String,
    /// The raw SQS body: an S3 event notification, possibly wrapped in SNS, or S3's test
    /// event ([`parse_body`] reads it).
    pub body: String,
}

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

/// The shard number of an invocation: a hash of its request id (FNV-1a, fixed), so that
/// concurrent invocations spread their batch writes over the shards. [`Batching::track`] takes
/// it modulo the configured shard count.
pub fn shard_number(request_id: &str) -> u16 {
    let hash = request_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % u64::from(u16::MAX)) as u16
}

/// The invocation's circumstances.
pub struct Context<'a> {
    /// Lambda's request id (chooses the shard).
    pub request_id: &'a str,
    /// The time the invocation started.
    pub now: Timestamp,
    /// Whether the sweep, or the cut after tracking, may start another step (its time
    /// budget).
    pub time_left: &'a dyn Fn() -> bool,
    /// Whether tracking may write another item: a later bound than `time_left`, as the
    /// messages wait for tracking and not for cutting, but before the timeout, which would
    /// deliver the whole batch again.
    pub tracking_time_left: &'a dyn Fn() -> bool,
}

impl<'a> Context<'a> {
    /// An invocation at `now` with all the time it needs to track, cut and sweep: for tests,
    /// simulations and runs outside Lambda, where no deadline stops the work part-way.
    pub fn unhurried(request_id: &'a str, now: Timestamp) -> Self {
        fn always() -> bool {
            true
        }
        Context {
            request_id,
            now,
            time_left: &always,
            tracking_time_left: &always,
        }
    }
}

/// The builder: the protocol over its stores, and which records it tracks. Created once per
/// process.
pub struct Builder<L, B, O> {
    /// Track, cut, sweep.
    pub batching: Batching<L, B, O>,
    /// Which records are tracked, under which date.
    pub records: RecordFilter,
}

/// What one message holds: the arrivals to track, and whether it must be delivered again
/// whatever tracking them does (its body or a record could not be read).
struct Parsed {
    arrivals: Vec<Arrival>,
    unreadable: bool,
}

impl<L: Ledger, B: BlobStore, O: Orchestrator> Builder<L, B, O> {
    /// Handles one invocation; returns the Lambda response and the invocation's metrics.
    pub async fn handle(
        &self,
        event: &Value,
        context: &Context<'_>,
    ) -> Result<(Value, Metrics), UnknownEvent> {
        let mut metrics = Metrics::new(FUNCTION);
        match classify(event)? {
            Invocation::Batch(messages) => {
                let shard = shard_number(context.request_id);
                // Boxed, as the sweep below: the protocol's futures nest deeply, and a boxed one
                // keeps the Lambda runtime's future within the compiler's layout depth.
                let failed = Box::pin(self.process_batch(
                    &messages,
                    shard,
                    context.now,
                    context.tracking_time_left,
                    context.time_left,
                    &mut metrics,
                ))
                .await;
                let failures: Vec<Value> = failed
                    .iter()
                    .map(|id| json!({"itemIdentifier": id}))
                    .collect();
                Ok((json!({"batchItemFailures": failures}), metrics))
            }
            Invocation::Sweep => {
                let report = Box::pin(self.batching.sweep(
                    context.now,
                    context.time_left,
                    &mut metrics,
                ))
                .await;
                info!(
                    started = report.started,
                    reconciled = report.reconciled,
                    released = report.released,
                    cut = report.cut,
                    unreadable = report.unreadable,
                    errors = report.errors,
                    out_of_time = report.out_of_time,
                    "sweep done"
                );
                let report = serde_json::to_value(report).expect("invariant: reports serialize");
                Ok((report, metrics))
            }
        }
    }

    /// Tracks every arrival of a batch of SQS messages in shard `shard` (one batch item per
    /// date and bucket for the whole invocation), then cuts the shards it touched. Returns
    /// the ids of the messages to report as failed: a message fails when its body or one of
    /// its records is unreadable, or one of its versions was not durably tracked. Cutting
    /// never fails a message (the next delivery or the sweep cuts again). Tracking stops when
    /// `tracking_time_left` says so (a message whose versions were not all tracked in time
    /// fails, and comes back alone), cutting when `time_left` does.
    pub async fn process_batch(
        &self,
        messages: &[Message],
        shard: u16,
        now: Timestamp,
        tracking_time_left: &dyn Fn() -> bool,
        time_left: &dyn Fn() -> bool,
        metrics: &mut Metrics,
    ) -> Vec<String> {
        let parsed: Vec<Parsed> = messages
            .iter()
            .map(|m| self.parse(m, now, metrics))
            .collect();
        let arrivals: Vec<Arrival> = parsed
            .iter()
            .flat_map(|p| p.arrivals.iter().cloned())
            .collect();
        let results = self
            .batching
            .track(shard, &arrivals, now, tracking_time_left, metrics)
            .await;
        let mut failed = Vec::new();
        let mut touched = BTreeSet::new();
        let mut results = results.into_iter();
        for (message, parsed) in messages.iter().zip(&parsed) {
            let mut ok = !parsed.unreadable;
            for arrival in &parsed.arrivals {
                match results
                    .next()
                    .expect("invariant: track answers every arrival")
                {
                    Ok(_) => {
                        touched.insert(Shard {
                            date: arrival.date.clone(),
                            number: shard % self.batching.config.shards.max(1),
                        });
                    }
                    Err(e) => {
                        warn!(message_id = %message.message_id, date_prefix = %arrival.date, error = %e, "version not tracked; the message will be delivered again");
                        ok = false;
                    }
                }
            }
            if !ok {
                failed.push(message.message_id.clone());
            }
        }
        metrics.count(metric::FAILED_MESSAGES, failed.len() as u64);
        for shard in &touched {
            match self.batching.cut(shard, now, time_left, metrics).await {
                Ok(report) => {
                    if !report.manifests.is_empty() {
                        info!(shard = %shard, manifests = report.manifests.len(), files = report.files, "manifests cut");
                    }
                    if report.out_of_time {
                        metrics.count(metric::CUTS_OUT_OF_TIME, 1);
                        info!(shard = %shard, "out of time; the next delivery or the sweep cuts the rest");
                        break;
                    }
                }
                Err(e) => {
                    metrics.count(metric::CUT_ERRORS, 1);
                    warn!(shard = %shard, error = %e, "shard not cut; the next delivery or the sweep cuts it");
                }
            }
        }
        info!(
            messages = messages.len(),
            failed = failed.len(),
            shard,
            tracked = metrics.get(batching::metric::VERSIONS_TRACKED),
            duplicates = metrics.get(batching::metric::DUPLICATES),
            skipped = metrics.get(metric::SKIPPED),
            "batch processed"
        );
        failed
    }

    /// The arrivals of one message. Object keys are logged at DEBUG only.
    fn parse(&self, message: &Message, now: Timestamp, metrics: &mut Metrics) -> Parsed {
        let mut parsed = Parsed {
            arrivals: Vec::new(),
            unreadable: false,
        };
        let records = match parse_body(&message.body) {
            Ok(Body::TestEvent) => {
                metrics.count(metric::SKIPPED, 1);
                info!(message_id = %message.message_id, reason = "s3:TestEvent", "message skipped");
                return parsed;
            }
            Ok(Body::Records(records)) => records,
            Err(e) => {
                error!(message_id = %message.message_id, error = %e, "unreadable message; it will go to the dead-letter queue after its retries");
                parsed.unreadable = true;
                return parsed;
            }
        };
        for record in records {
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    error!(message_id = %message.message_id, error = %e, "unreadable event record");
                    parsed.unreadable = true;
                    continue;
                }
            };
            let skip = if !record.is_object_created() {
                Some("not an ObjectCreated event")
            } else if !self.records.tracks_key(&record.object.key) {
                Some("key suffix not tracked")
            } else {
                None
            };
            if let Some(reason) = skip {
                metrics.count(metric::SKIPPED, 1);
                info!(message_id = %message.message_id, reason, event = %record.event_name, "record skipped");
                debug!(reason, key = %record.object.key, "record skipped");
                continue;
            }
            // S3's event time, the same in every delivery of the event: a redelivery tracks
            // under the same date (and finds its marker first anyway).
            let date = date_prefix_for(
                &record.object.key,
                record.event_time.unwrap_or(now),
                self.records.date_prefix_pattern.as_ref(),
            );
            let version = record.version();
            debug!(date_prefix = %date, key = %record.object.key, size = record.object.size, "arrival");
            parsed.arrivals.push(Arrival {
                version: VersionRef {
                    bucket: record.object.bucket,
                    key: record.object.key,
                    version,
                },
                date,
                size: record.object.size,
                etag: record.object.etag,
            });
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::BatchingConfig;
    use crate::config::OutputLocations;
    use shared::blobs::MemoryBlobs;
    use shared::ledger::{Ledger, MemoryLedger};
    use shared::orchestrator::MemoryOrchestrator;
    use shared::types::DatePrefix;

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

    #[test]
    fn request_ids_spread_over_shards() {
        let shards: BTreeSet<u16> = (0..200)
            .map(|n| shard_number(&format!("5b2c1f3e-0000-4000-8000-{n:012}")) % 16)
            .collect();
        assert_eq!(shards.len(), 16, "{shards:?}");
        assert_eq!(shard_number("a"), shard_number("a"));
    }

    fn builder() -> Builder<MemoryLedger, MemoryBlobs, MemoryOrchestrator> {
        let config = BatchingConfig {
            shards: 4,
            settle_seconds: 70,
            max_files: 2,
            max_bytes: 1 << 30,
            max_wait_seconds: 300,
            max_attempts: 3,
            ttl_days: 30,
            repair_after_seconds: 120,
            reconcile_after_seconds: 600,
            release_after_seconds: 960,
            manifest_bucket: "manifests".into(),
            manifest_prefix: "manifests".into(),
            outputs: OutputLocations {
                output_bucket: "out".into(),
                output_prefix: "parquet".into(),
                error_bucket: "out".into(),
                error_prefix: "errors".into(),
            },
        };
        Builder {
            batching: Batching::new(
                MemoryLedger::new(),
                MemoryBlobs::new(),
                MemoryOrchestrator::default(),
                config,
            ),
            records: RecordFilter {
                suffixes: vec![".ndjson".into()],
                date_prefix_pattern: None,
            },
        }
    }

    fn s3_body(records: &[(&str, &str, &str)]) -> String {
        let records: Vec<Value> = records
            .iter()
            .map(|(event, key, version)| {
                json!({
                    "eventName": event, "eventTime": "2026-11-25T10:00:00.000Z",
                    "s3": {"bucket": {"name": "in"}, "object": {"key": key, "size": 10, "eTag": "\"e\"", "versionId": version}}
                })
            })
            .collect();
        json!({ "Records": records }).to_string()
    }

    fn sqs(messages: &[(&str, String)]) -> Value {
        let records: Vec<Value> = messages
            .iter()
            .map(|(id, body)| json!({"messageId": id, "body": body, "eventSource": "aws:sqs"}))
            .collect();
        json!({ "Records": records })
    }

    #[tokio::test]
    async fn a_batch_is_tracked_once_and_failed_messages_are_reported() {
        let builder = builder();
        let now = Timestamp::parse_rfc3339("2026-11-25T10:00:05Z").unwrap();
        let event = sqs(&[
            (
                "m1",
                s3_body(&[
                    ("ObjectCreated:Put", "2026-11-24/a.ndjson", "v1"),
                    ("ObjectCreated:Put", "x/b.ndjson", "v1"),
                    ("ObjectRemoved:Delete", "x/b.ndjson", "v0"),
                    ("ObjectCreated:Put", "x/c.csv", "v1"),
                ]),
            ),
            ("m2", "{\"Event\":\"s3:TestEvent\"}".into()),
            ("m3", "not json".into()),
            (
                "m4",
                s3_body(&[("ObjectCreated:Put", "2026-11-24/a.ndjson", "v1")]),
            ),
        ]);
        let context = Context::unhurried("r1", now);
        let (response, metrics) = builder.handle(&event, &context).await.unwrap();
        assert_eq!(
            response,
            json!({"batchItemFailures": [{"itemIdentifier": "m3"}]})
        );
        assert_eq!(metrics.get(batching::metric::VERSIONS_TRACKED), 2.0);
        assert_eq!(metrics.get(batching::metric::DUPLICATES), 1.0, "m4");
        assert_eq!(metrics.get(metric::SKIPPED), 3.0, "delete, csv, test event");
        assert_eq!(metrics.get(metric::FAILED_MESSAGES), 1.0);
        // b.ndjson is dated by its event time (no date in its key).
        let mut shards = Vec::new();
        let page = builder.batching.ledger.shards(None, 10).await.unwrap();
        for shard in page.items {
            shards.push(shard.date.as_str().to_string());
        }
        assert_eq!(shards, ["2026-11-24", "2026-11-25"]);

        // The sweep, once both batches settled and waited: two manifests (one per date).
        let later = now.plus_seconds(400);
        let context = Context::unhurried("r2", later);
        let (report, metrics) = builder
            .handle(&json!({"action": "sweep"}), &context)
            .await
            .unwrap();
        assert_eq!(report["cut"], 2, "{report}");
        assert_eq!(metrics.get(batching::metric::MANIFESTS_STARTED), 2.0);
        let date = DatePrefix::parse("2026-11-24").unwrap();
        assert!(date.as_str() < "2026-11-25");
    }

    #[tokio::test]
    async fn out_of_time_the_batch_is_tracked_and_the_cut_left_to_the_sweep() {
        let builder = builder();
        let now = Timestamp::parse_rfc3339("2026-11-25T10:00:05Z").unwrap();
        let event = sqs(&[(
            "m1",
            s3_body(&[("ObjectCreated:Put", "2026-11-24/a.ndjson", "v1")]),
        )]);
        let context = Context {
            time_left: &|| false,
            ..Context::unhurried("r1", now)
        };
        let (response, metrics) = builder.handle(&event, &context).await.unwrap();
        assert_eq!(
            response,
            json!({"batchItemFailures": []}),
            "tracked: nothing to deliver again"
        );
        assert_eq!(metrics.get(batching::metric::VERSIONS_TRACKED), 1.0);
        assert_eq!(metrics.get(metric::CUTS_OUT_OF_TIME), 1.0);
        assert_eq!(metrics.get(batching::metric::MANIFESTS_STARTED), 0.0);
        // Out of time, the sweep cuts nothing either; with time, it cuts what waited.
        let later = now.plus_seconds(400);
        for (time_left, cut) in [(false, 0), (true, 1)] {
            let budget = move || time_left;
            let context = Context {
                time_left: &budget,
                ..Context::unhurried("r2", later)
            };
            let (report, _) = builder
                .handle(&json!({"action": "sweep"}), &context)
                .await
                .unwrap();
            assert_eq!(report["cut"], cut, "{report}");
        }
    }

    /// An invocation's context with all the time it needs to sweep and cut, and `tracking`
    /// for tracking.
    fn with_tracking_time<'a>(
        request_id: &'a str,
        now: Timestamp,
        tracking: &'a dyn Fn() -> bool,
    ) -> Context<'a> {
        Context {
            tracking_time_left: tracking,
            ..Context::unhurried(request_id, now)
        }
    }

    #[tokio::test]
    async fn out_of_tracking_time_only_the_untracked_messages_come_back() {
        let builder = builder();
        let now = Timestamp::parse_rfc3339("2026-11-25T10:00:05Z").unwrap();
        let event = sqs(&[
            (
                "m1",
                s3_body(&[("ObjectCreated:Put", "2026-11-24/a.ndjson", "v1")]),
            ),
            (
                "m2",
                s3_body(&[("ObjectCreated:Put", "2026-11-24/b.ndjson", "v1")]),
            ),
            (
                "m3",
                s3_body(&[("ObjectCreated:Put", "2026-11-24/c.ndjson", "v1")]),
            ),
        ]);
        // Time for the batch item and the first marker, then none.
        let asked = std::cell::Cell::new(0);
        let budget = || {
            asked.set(asked.get() + 1);
            asked.get() <= 2
        };
        let context = with_tracking_time("r1", now, &budget);
        let (response, metrics) = builder.handle(&event, &context).await.unwrap();
        assert_eq!(
            response,
            json!({"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]})
        );
        assert_eq!(metrics.get(batching::metric::VERSIONS_TRACKED), 1.0);
        assert_eq!(metrics.get(batching::metric::TRACKING_OUT_OF_TIME), 2.0);
        // With no time at all, nothing is written and every message comes back.
        let context = with_tracking_time("r2", now, &|| false);
        let (response, metrics) = builder.handle(&event, &context).await.unwrap();
        assert_eq!(response["batchItemFailures"].as_array().unwrap().len(), 3);
        assert_eq!(metrics.get(batching::metric::VERSIONS_TRACKED), 0.0);
        // Delivered again with time: the first is a repeat, the others are tracked, and the
        // sweep puts all three in manifests (one per shard the two deliveries wrote to).
        let context = with_tracking_time("r3", now, &|| true);
        let (response, metrics) = builder.handle(&event, &context).await.unwrap();
        assert_eq!(response, json!({"batchItemFailures": []}));
        assert_eq!(metrics.get(batching::metric::VERSIONS_TRACKED), 2.0);
        assert_eq!(metrics.get(batching::metric::DUPLICATES), 1.0);
        let context = with_tracking_time("r4", now.plus_seconds(400), &|| true);
        let (report, metrics) = builder
            .handle(&json!({"action": "sweep"}), &context)
            .await
            .unwrap();
        assert_eq!(report["errors"], 0, "{report}");
        assert_eq!(metrics.get(batching::metric::FILES_MANIFESTED), 3.0);
    }
}
