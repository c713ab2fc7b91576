//! Tracking one delivery: a batch per date and bucket, then a marker per version.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use shared::blobs::BlobStore;
use shared::ledger::{
    Batch, BatchContents, BatchKey, Ledger, Marker, MarkerOutcome, Ref, Shard, VersionRef,
};
use shared::metrics::Metrics;
use shared::orchestrator::Orchestrator;
use shared::types::{DatePrefix, Timestamp};
use tracing::{debug, warn};

use super::{metric, Batching, BatchingError};

/// Marker puts in flight at once while tracking one delivery.
const MARKERS_IN_FLIGHT: usize = 16;

/// One object version as its event announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The version.
    pub version: VersionRef,
    /// The date partition it belongs to (from its key, else the time it was first seen).
    pub date: DatePrefix,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
}

/// What tracking one arrival found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracked {
    /// This delivery's batch owns the version.
    New(BatchKey),
    /// The version was tracked before (a repeated delivery); the batch that owns it.
    Duplicate(BatchKey),
}

impl<L: Ledger, B: BlobStore, O: Orchestrator> Batching<L, B, O> {
    /// Tracks the arrivals of one delivery in shard `shard_number`, one batch per date and
    /// bucket. Returns one outcome per arrival, in order: an arrival whose outcome is an error
    /// is not durably tracked, and the message that carried it must be delivered again.
    /// `time_left` is asked before each write: once it says no, the arrivals not yet written
    /// are [`BatchingError::OutOfTime`] (an invocation must answer before its timeout, or its
    /// whole delivery comes back).
    pub async fn track(
        &self,
        shard_number: u16,
        arrivals: &[Arrival],
        now: Timestamp,
        time_left: &dyn Fn() -> bool,
        metrics: &mut Metrics,
    ) -> Vec<Result<Tracked, BatchingError>> {
        let mut groups: BTreeMap<(&DatePrefix, &str), Vec<usize>> = BTreeMap::new();
        for (index, arrival) in arrivals.iter().enumerate() {
            groups
                .entry((&arrival.date, arrival.version.bucket.as_str()))
                .or_default()
                .push(index);
        }
        let mut outcomes: Vec<Option<Result<Tracked, BatchingError>>> =
            arrivals.iter().map(|_| None).collect();
        for ((date, bucket), indices) in groups {
            let shard = Shard {
                date: date.clone(),
                number: shard_number % self.config.shards.max(1),
            };
            let group: Vec<&Arrival> = indices.iter().map(|&i| &arrivals[i]).collect();
            let results = self
                .track_group(&shard, bucket, &group, now, time_left, metrics)
                .await;
            for (index, result) in indices.into_iter().zip(results) {
                outcomes[index] = Some(result);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.expect("invariant: every arrival belongs to one group"))
            .collect()
    }

    async fn track_group(
        &self,
        shard: &Shard,
        bucket: &str,
        arrivals: &[&Arrival],
        now: Timestamp,
        time_left: &dyn Fn() -> bool,
        metrics: &mut Metrics,
    ) -> Vec<Result<Tracked, BatchingError>> {
        if !time_left() {
            metrics.count(metric::TRACKING_OUT_OF_TIME, arrivals.len() as u64);
            return arrivals
                .iter()
                .map(|_| Err(BatchingError::OutOfTime))
                .collect();
        }
        let batch = match self.write_batch(shard, bucket, arrivals, now).await {
            Ok(batch) => batch,
            Err(e) => {
                warn!(shard = %shard, error = %e, "batch not written; the delivery is retried");
                return arrivals
                    .iter()
                    .map(|_| Err(BatchingError::Store(store_error(&e))))
                    .collect();
            }
        };
        // The markers are independent conditional puts: a few at a time, so a delivery of
        // hundreds waits for a few round trips, not hundreds. Each asks for time before it
        // starts: a marker not attempted is an arrival not tracked, and only its message comes
        // back, where an invocation killed at its timeout gets the whole delivery again (and
        // pays every marker of it a second time as a repeated delivery).
        let outcomes: Vec<Result<MarkerOutcome, BatchingError>> = stream::iter(arrivals)
            .map(|arrival| {
                let marker = Marker {
                    version: arrival.version.clone(),
                    batch: batch.clone(),
                    date: arrival.date.clone(),
                    size: arrival.size,
                    etag: arrival.etag.clone(),
                    attempts: 0,
                    last_error: None,
                    superseded: None,
                    ttl: self.config.ttl(now),
                };
                async move {
                    if !time_left() {
                        return Err(BatchingError::OutOfTime);
                    }
                    Ok(self.ledger.put_marker(&marker).await?)
                }
            })
            .buffered(MARKERS_IN_FLIGHT)
            .collect()
            .await;
        let mut results = Vec::with_capacity(arrivals.len());
        for (arrival, outcome) in arrivals.iter().zip(outcomes) {
            let result = match outcome {
                Ok(MarkerOutcome::Tracked) => {
                    metrics.count(metric::VERSIONS_TRACKED, 1);
                    Ok(Tracked::New(batch.clone()))
                }
                Ok(MarkerOutcome::Duplicate(owner)) => {
                    metrics.count(metric::DUPLICATES, 1);
                    debug!(version = %arrival.version, owner = %owner.batch, "repeated delivery");
                    Ok(Tracked::Duplicate(owner.batch))
                }
                Err(e) => {
                    if matches!(e, BatchingError::OutOfTime) {
                        metrics.count(metric::TRACKING_OUT_OF_TIME, 1);
                    }
                    Err(e)
                }
            };
            results.push(result);
        }
        results
    }

    /// Registers the shard (once per process) and writes the batch; returns its key.
    async fn write_batch(
        &self,
        shard: &Shard,
        bucket: &str,
        arrivals: &[&Arrival],
        now: Timestamp,
    ) -> Result<BatchKey, BatchingError> {
        let known = self
            .registered
            .lock()
            .expect("invariant: lock is never poisoned")
            .contains(shard);
        if !known {
            self.ledger
                .register_shard(shard, self.config.ttl(now))
                .await?;
            self.registered
                .lock()
                .expect("invariant: lock is never poisoned")
                .insert(shard.clone());
        }
        let mut refs: Vec<Ref> = Vec::with_capacity(arrivals.len());
        let mut bytes = 0u64;
        for arrival in arrivals {
            let r = Ref {
                key: arrival.version.key.clone(),
                version: arrival.version.version.clone(),
            };
            if !refs.contains(&r) {
                refs.push(r);
                bytes = bytes.saturating_add(arrival.size);
            }
        }
        // Sorted by key, refs share prefixes: the batch item is front coded, and smaller.
        refs.sort();
        // A key is the time and 64 random bits: a collision is a broken random source.
        for _ in 0..3 {
            let batch = Batch {
                shard: shard.clone(),
                key: self.batch_key(now),
                contents: BatchContents::Arrivals {
                    bucket: bucket.to_string(),
                    refs: refs.clone(),
                    bytes,
                },
                ttl: self.config.ttl(now),
            };
            if self.ledger.put_batch(&batch).await? {
                return Ok(batch.key);
            }
        }
        Err(BatchingError::Store(shared::ledger::StoreError::Service {
            table: "ledger".into(),
            operation: "PutItem",
            message: "three random batch keys were all taken".into(),
        }))
    }
}

/// The same failure again, for each arrival of a group (errors are not `Clone`).
fn store_error(error: &BatchingError) -> shared::ledger::StoreError {
    shared::ledger::StoreError::Service {
        table: "ledger".into(),
        operation: "PutItem",
        message: error.to_string(),
    }
}
