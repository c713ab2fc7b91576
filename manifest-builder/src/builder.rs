//! Tracking arrivals, cutting manifests, starting executions, and the sweep that repairs
//! whatever a crash left half done.
//!
//! # Protocol (no duplicate, no orphan, nothing lost)
//!
//! 1. **Track** each object with an insert-if-absent: a repeated delivery changes nothing.
//! 2. **Intent first**: a manifest item (`claiming`, with its candidate keys) is written before
//!    any file is claimed.
//! 3. **Exclusive claims**: each candidate moves `pending → manifested` only by a conditional
//!    update; a file that lost the race to another builder is simply left out.
//! 4. The manifest JSON (exactly the claimed files) is written to S3, then the item moves
//!    `claiming → starting` (compare-and-set: if the sweep took over, the builder stops).
//! 5. **Start** the execution named after the manifest id: a repeat cannot start a second one.
//!    The item moves `starting → running`. If the start fails, the execution is looked up; only
//!    if it certainly does not exist are the claims released and the manifest `abandoned`.
//!
//! A crash between any two steps leaves a `claiming` or `starting` item. The sweep, once the
//! item has not changed for `REPAIR_AFTER_SECONDS` (longer than any builder invocation lives),
//! undoes a `claiming` one (releases whatever it claimed, from its candidate list) and
//! finishes a `starting` one (starts or finds its execution). Everything it needs is on the
//! manifest item.

use std::collections::BTreeSet;

use shared::blobs::{BlobError, BlobStore};
use shared::events::{date_prefix_for, parse_body, Body};
use shared::manifest::{
    error_key, manifest_key, part_prefix, ExecutionInput, ManifestDocument, ManifestFile,
    MANIFEST_FORMAT, MANIFEST_VERSION,
};
use shared::metrics::Metrics;
use shared::orchestrator::{Orchestrator, OrchestratorError};
use shared::tracking::{new_file_record, ManifestChanges, StoreError, TrackOutcome, TrackingStore};
use shared::types::{
    DatePrefix, FileRecord, ManifestId, ManifestRecord, ManifestStatus, Timestamp,
    MANIFEST_KEY_PREFIX,
};
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::config::BuilderConfig;

/// Most manifests one call cuts for one prefix (a bound against a stale index looping).
const MAX_ROUNDS_PER_PREFIX: usize = 64;

/// Metric names (EMF).
pub mod metric {
    /// Files tracked for the first time.
    pub const FILES_TRACKED: &str = "FilesTracked";
    /// Repeated deliveries of an already tracked file.
    pub const DUPLICATES: &str = "DuplicateDeliveries";
    /// Objects overwritten after they were tracked (never silently dropped: alarm on it).
    pub const OVERWRITTEN: &str = "ObjectsOverwrittenAfterTracking";
    /// Records skipped (not ObjectCreated, suffix not tracked, test events).
    pub const SKIPPED: &str = "RecordsSkipped";
    /// Messages reported as batch item failures.
    pub const FAILED_MESSAGES: &str = "MessagesFailed";
    /// Manifests whose Step Functions execution started and that were moved to `running`
    /// (by a batch or by the sweep).
    pub const MANIFESTS_STARTED: &str = "ManifestsStarted";
    /// Files in started manifests.
    pub const FILES_MANIFESTED: &str = "FilesManifested";
    /// Manifests abandoned (claims released).
    pub const MANIFESTS_ABANDONED: &str = "ManifestsAbandoned";
    /// Manifests the sweep repaired (undone or finished).
    pub const SWEEP_REPAIRS: &str = "SweepRepairs";
    /// Errors while cutting manifests (files stay pending; the sweep retries).
    pub const MANIFEST_ERRORS: &str = "ManifestErrors";
    /// Objects a failed manifest had committed, removed before its files were released.
    pub const FAILED_OUTPUTS_REMOVED: &str = "FailedManifestOutputsRemoved";
}

/// A failure of one protocol step.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The tracking store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the manifest JSON failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Starting or looking up the execution failed.
    #[error(transparent)]
    Orchestrator(#[from] OrchestratorError),
    /// Another party (the sweep) changed the manifest; this builder stops touching it.
    #[error("manifest {0} was changed by another party")]
    Superseded(ManifestId),
}

/// One SQS message, as the handler hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SQS message id (the `itemIdentifier` of a batch item failure).
    pub message_id: String,
    /// The raw SQS body: an S3 event notification, possibly wrapped in SNS, or S3's test
    /// event ([`parse_body`] reads it).
    pub body: String,
}

/// What a batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Messages to report as failed (to be redelivered, then to the DLQ).
    pub failed_message_ids: Vec<String>,
    /// Counts for EMF.
    pub metrics: Option<Metrics>,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Manifests undone or finished.
    pub repairs: u64,
    /// Manifests started (for waiting or full prefixes).
    pub manifests_started: u64,
    /// Prefixes with pending files looked at.
    pub prefixes: u64,
    /// Steps that failed (retried at the next sweep).
    pub errors: u64,
}

/// The builder and its collaborators, created once per process.
pub struct ManifestBuilder<S, O, B> {
    /// The tracking table.
    pub store: S,
    /// Starts the Step Functions execution of each manifest, named by its id.
    pub orchestrator: O,
    /// Where manifest JSON goes.
    pub blobs: B,
    /// Buckets, thresholds and timings, read once from the environment
    /// ([`BuilderConfig::from_env`]).
    pub config: BuilderConfig,
}

impl<S: TrackingStore, O: Orchestrator, B: BlobStore> ManifestBuilder<S, O, B> {
    /// Tracks every object of a batch of SQS messages, then cuts the manifests that are ready.
    ///
    /// A message is reported as failed when its body is unreadable or any of its objects could
    /// not be durably tracked; every other message succeeded, whatever happens afterwards
    /// (cutting manifests is retried by later batches and by the sweep).
    pub async fn process_batch(&self, messages: &[Message], now: Timestamp) -> BatchOutcome {
        let mut metrics = Metrics::new("manifest-builder");
        let mut failed = Vec::new();
        let mut touched: BTreeSet<DatePrefix> = BTreeSet::new();
        for message in messages {
            let span = info_span!("message", message_id = %message.message_id);
            let ok = self
                .track_message(message, now, &mut metrics, &mut touched)
                .instrument(span)
                .await;
            if !ok {
                failed.push(message.message_id.clone());
            }
        }
        metrics.count(metric::FAILED_MESSAGES, failed.len() as u64);
        for prefix in &touched {
            match self.cut_ready(prefix, false, now, &mut metrics).await {
                Ok(started) => {
                    if started > 0 {
                        info!(date_prefix = %prefix, manifests = started, "manifests started");
                    }
                }
                Err(e) => {
                    metrics.count(metric::MANIFEST_ERRORS, 1);
                    warn!(date_prefix = %prefix, error = %e, "could not cut a manifest; the files stay pending and the sweep retries");
                }
            }
        }
        info!(
            messages = messages.len(),
            failed = failed.len(),
            tracked = metrics.get(metric::FILES_TRACKED),
            duplicates = metrics.get(metric::DUPLICATES),
            skipped = metrics.get(metric::SKIPPED),
            "batch processed"
        );
        BatchOutcome {
            failed_message_ids: failed,
            metrics: Some(metrics),
        }
    }

    /// Tracks the objects of one message; false if the message must be retried.
    async fn track_message(
        &self,
        message: &Message,
        now: Timestamp,
        metrics: &mut Metrics,
        touched: &mut BTreeSet<DatePrefix>,
    ) -> bool {
        let records = match parse_body(&message.body) {
            Ok(Body::TestEvent) => {
                metrics.count(metric::SKIPPED, 1);
                info!(reason = "s3:TestEvent", "message skipped");
                return true;
            }
            Ok(Body::Records(records)) => records,
            Err(e) => {
                error!(error = %e, "unreadable message; it will go to the dead-letter queue after its retries");
                return false;
            }
        };
        let mut ok = true;
        for record in records {
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    error!(error = %e, "unreadable event record");
                    ok = false;
                    continue;
                }
            };
            let skip = if !record.is_object_created() {
                Some("not an ObjectCreated event")
            } else if !self.config.tracks_key(&record.object.key) {
                Some("key suffix not tracked")
            } else if record.object.key.starts_with(MANIFEST_KEY_PREFIX) {
                Some("key collides with manifest items")
            } else {
                None
            };
            if let Some(reason) = skip {
                metrics.count(metric::SKIPPED, 1);
                info!(reason, event = %record.event_name, "record skipped");
                debug!(reason, key = %record.object.key, "record skipped");
                continue;
            }
            let event_time = record.event_time.unwrap_or(now);
            let date_prefix = date_prefix_for(
                &record.object.key,
                event_time,
                self.config.date_prefix_pattern.as_ref(),
            );
            let file = new_file_record(
                date_prefix.clone(),
                record.object,
                now,
                self.config.ttl_days,
            );
            match self.store.track_file(&file).await {
                Ok(TrackOutcome::Tracked) => {
                    metrics.count(metric::FILES_TRACKED, 1);
                    debug!(date_prefix = %date_prefix, key = %file.object.key, size = file.object.size, "file tracked");
                    touched.insert(date_prefix);
                }
                Ok(TrackOutcome::Duplicate) => {
                    metrics.count(metric::DUPLICATES, 1);
                    info!(date_prefix = %date_prefix, "file already tracked (repeated delivery)");
                    debug!(date_prefix = %date_prefix, key = %file.object.key, "file already tracked");
                    touched.insert(date_prefix);
                }
                Ok(TrackOutcome::Overwritten { tracked_etag }) => {
                    metrics.count(metric::OVERWRITTEN, 1);
                    warn!(
                        date_prefix = %date_prefix,
                        tracked_etag = %tracked_etag,
                        new_etag = %file.object.etag,
                        "object overwritten after it was tracked; the tracked version stands"
                    );
                    debug!(date_prefix = %date_prefix, key = %file.object.key, "overwritten object");
                }
                Err(e) => {
                    error!(date_prefix = %date_prefix, error = %e, "could not track a file; the message will be retried");
                    ok = false;
                }
            }
        }
        ok
    }

    /// Cuts manifests for `prefix` while enough files are pending (or all of them when
    /// `force`). Returns how many were started.
    pub async fn cut_ready(
        &self,
        prefix: &DatePrefix,
        force: bool,
        now: Timestamp,
        metrics: &mut Metrics,
    ) -> Result<u64, BuildError> {
        let max_files = self.config.max_files_per_manifest;
        let max_bytes = self.config.max_bytes_per_manifest;
        let mut started = 0;
        let mut fruitless = 0;
        for _ in 0..MAX_ROUNDS_PER_PREFIX {
            let pending = self.store.pending_files(prefix, max_files).await?;
            if pending.is_empty() {
                break;
            }
            let mut selected: Vec<FileRecord> = Vec::new();
            let mut bytes = 0u64;
            let mut full = pending.len() >= max_files;
            for file in pending {
                if !selected.is_empty() && bytes + file.object.size > max_bytes {
                    full = true;
                    break;
                }
                bytes += file.object.size;
                selected.push(file);
            }
            full |= bytes >= max_bytes;
            if !full && !force {
                break;
            }
            match self.build_manifest(prefix, selected, now, metrics).await? {
                Some(_) => {
                    started += 1;
                    fruitless = 0;
                }
                // Every claim lost (another builder was faster, or the index was stale).
                None => {
                    fruitless += 1;
                    if fruitless >= 2 {
                        break;
                    }
                }
            }
        }
        Ok(started)
    }

    /// Steps 2-5 of the protocol for one set of candidates.
    async fn build_manifest(
        &self,
        prefix: &DatePrefix,
        candidates: Vec<FileRecord>,
        now: Timestamp,
        metrics: &mut Metrics,
    ) -> Result<Option<ManifestId>, BuildError> {
        let id = ManifestId::generate(prefix, now);
        let intent = ManifestRecord {
            date_prefix: prefix.clone(),
            manifest_id: id.clone(),
            status: ManifestStatus::Claiming,
            candidates: candidates.iter().map(|f| f.object.key.clone()).collect(),
            manifest_path: None,
            file_count: 0,
            total_bytes: 0,
            execution_arn: None,
            result: None,
            error: None,
            needs_sweep: true,
            created_at: now,
            updated_at: now,
            ttl: now
                .plus_seconds(i64::from(self.config.ttl_days) * 86_400)
                .unix_seconds(),
        };
        if !self.store.create_manifest(&intent).await? {
            return Err(BuildError::Superseded(id));
        }
        let mut claimed = Vec::new();
        for file in &candidates {
            match self
                .store
                .claim_file(prefix, &file.object.key, &id, now)
                .await
            {
                Ok(true) => claimed.push(file),
                Ok(false) => debug!(manifest_id = %id, key = %file.object.key, "claim lost"),
                Err(e) => {
                    self.undo_quietly(&intent, now, metrics).await;
                    return Err(e.into());
                }
            }
        }
        if claimed.is_empty() {
            self.store
                .update_manifest(
                    prefix,
                    &id,
                    ManifestStatus::Claiming,
                    ManifestStatus::Abandoned,
                    &ManifestChanges::default(),
                    now,
                )
                .await?;
            return Ok(None);
        }

        let total_bytes: u64 = claimed.iter().map(|f| f.object.size).sum();
        let document = ManifestDocument {
            format: MANIFEST_FORMAT.to_string(),
            version: MANIFEST_VERSION,
            manifest_id: id.clone(),
            date_prefix: prefix.clone(),
            created_at: now.to_rfc3339(),
            file_count: claimed.len() as u64,
            total_bytes,
            files: claimed
                .iter()
                .map(|f| ManifestFile::from(&f.object))
                .collect(),
        };
        let key = manifest_key(&self.config.manifest_prefix, prefix, &id);
        if let Err(e) = self
            .blobs
            .put(
                &self.config.manifest_bucket,
                &key,
                document.to_json(),
                "application/json",
            )
            .await
        {
            self.undo_quietly(&intent, now, metrics).await;
            return Err(e.into());
        }
        let changes = ManifestChanges {
            manifest_path: Some(format!("s3://{}/{key}", self.config.manifest_bucket)),
            file_count: Some(document.file_count),
            total_bytes: Some(total_bytes),
            ..ManifestChanges::default()
        };
        if !self
            .store
            .update_manifest(
                prefix,
                &id,
                ManifestStatus::Claiming,
                ManifestStatus::Starting,
                &changes,
                now,
            )
            .await?
        {
            return Err(BuildError::Superseded(id));
        }
        let mut starting = intent;
        starting.status = ManifestStatus::Starting;
        starting.manifest_path = changes.manifest_path;
        starting.file_count = document.file_count;
        starting.total_bytes = total_bytes;
        self.start_execution(&starting, now, metrics).await?;
        Ok(Some(id))
    }

    /// Step 5: start (or find) the execution of a `starting` manifest, then mark it running.
    /// If the execution certainly does not exist after a failed start, the claims are released
    /// and the manifest is abandoned.
    async fn start_execution(
        &self,
        manifest: &ManifestRecord,
        now: Timestamp,
        metrics: &mut Metrics,
    ) -> Result<(), BuildError> {
        let id = &manifest.manifest_id;
        let input = ExecutionInput {
            manifest_path: manifest.manifest_path.clone().unwrap_or_default(),
            date_prefix: manifest.date_prefix.clone(),
            file_count: manifest.file_count,
            manifest_id: id.clone(),
            total_bytes: manifest.total_bytes,
        };
        let input = serde_json::to_string(&input).expect("invariant: execution input serializes");
        let arn = match self.orchestrator.start(id.as_str(), &input).await {
            Ok(started) => started.execution_arn().to_string(),
            Err(start_error) => match self.orchestrator.describe(id.as_str()).await? {
                Some(execution) => execution.arn,
                None => {
                    warn!(manifest_id = %id, error = %start_error, "execution did not start; releasing its files");
                    self.abandon(manifest, ManifestStatus::Starting, now, metrics)
                        .await?;
                    return Err(start_error.into());
                }
            },
        };
        let changes = ManifestChanges {
            execution_arn: Some(arn),
            ..ManifestChanges::default()
        };
        if !self
            .store
            .update_manifest(
                &manifest.date_prefix,
                id,
                ManifestStatus::Starting,
                ManifestStatus::Running,
                &changes,
                now,
            )
            .await?
        {
            return Err(BuildError::Superseded(id.clone()));
        }
        metrics.count(metric::MANIFESTS_STARTED, 1);
        metrics.count(metric::FILES_MANIFESTED, manifest.file_count);
        info!(manifest_id = %id, date_prefix = %manifest.date_prefix, files = manifest.file_count, bytes = manifest.total_bytes, "manifest started");
        Ok(())
    }

    /// Releases every file the manifest holds, then marks it abandoned (if still `from`).
    async fn abandon(
        &self,
        manifest: &ManifestRecord,
        from: ManifestStatus,
        now: Timestamp,
        metrics: &mut Metrics,
    ) -> Result<(), BuildError> {
        for key in &manifest.candidates {
            self.store
                .release_file(&manifest.date_prefix, key, &manifest.manifest_id, now)
                .await?;
        }
        if self
            .store
            .update_manifest(
                &manifest.date_prefix,
                &manifest.manifest_id,
                from,
                ManifestStatus::Abandoned,
                &ManifestChanges::default(),
                now,
            )
            .await?
        {
            metrics.count(metric::MANIFESTS_ABANDONED, 1);
        }
        Ok(())
    }

    /// A manifest the workflow marked `failed` (its retries ran out): every file it still
    /// holds goes back to pending with one more attempt counted, or to `failed` at
    /// `MAX_ATTEMPTS`; then the manifest leaves the sweep's list.
    async fn release_failed(
        &self,
        manifest: &ManifestRecord,
        now: Timestamp,
        metrics: &mut Metrics,
    ) -> Result<(), BuildError> {
        // A converter that died after committing a part (and exhausted the workflow's
        // retries) left rows under this manifest's id; its files are about to be converted
        // again under another id, so those rows must go first.
        if let Some(outputs) = &self.config.outputs {
            let prefix = &manifest.date_prefix;
            let id = &manifest.manifest_id;
            let mut removed = self
                .blobs
                .delete_prefix(
                    &outputs.output_bucket,
                    &part_prefix(&outputs.output_prefix, prefix, id),
                    &[],
                )
                .await?;
            removed += self
                .blobs
                .delete_prefix(
                    &outputs.error_bucket,
                    &error_key(&outputs.error_prefix, prefix, id),
                    &[],
                )
                .await?;
            if removed > 0 {
                metrics.count(metric::FAILED_OUTPUTS_REMOVED, removed as u64);
                warn!(manifest_id = %id, objects = removed, "removed the outputs of a failed manifest before releasing its files");
            }
        }
        for key in &manifest.candidates {
            self.store
                .fail_file(
                    &manifest.date_prefix,
                    key,
                    &manifest.manifest_id,
                    self.config.max_attempts,
                    now,
                )
                .await?;
        }
        self.store
            .update_manifest(
                &manifest.date_prefix,
                &manifest.manifest_id,
                ManifestStatus::Failed,
                ManifestStatus::Failed,
                &ManifestChanges::default(),
                now,
            )
            .await?;
        Ok(())
    }

    /// Best-effort undo after a failure while claiming; the sweep finishes what this cannot.
    async fn undo_quietly(&self, intent: &ManifestRecord, now: Timestamp, metrics: &mut Metrics) {
        if let Err(e) = self
            .abandon(intent, ManifestStatus::Claiming, now, metrics)
            .await
        {
            warn!(manifest_id = %intent.manifest_id, error = %e, "undo failed; the sweep will finish it");
        }
    }

    /// The scheduled sweep: repairs stale `claiming`/`starting` manifests, then cuts
    /// manifests for every prefix whose oldest pending file waited `MAX_WAIT_SECONDS` (and
    /// for any prefix that is full).
    pub async fn sweep(&self, now: Timestamp, metrics: &mut Metrics) -> SweepReport {
        let mut report = SweepReport::default();
        match self.store.open_manifests().await {
            Ok(open) => {
                for manifest in open {
                    // A builder may still be at work on a fresh claiming/starting manifest; a
                    // failed one is final and can be released at once.
                    let fresh =
                        now.seconds_since(manifest.updated_at) < self.config.repair_after_seconds;
                    if fresh && manifest.status.is_open() {
                        continue;
                    }
                    let outcome = match manifest.status {
                        ManifestStatus::Claiming => {
                            self.abandon(&manifest, ManifestStatus::Claiming, now, metrics)
                                .await
                        }
                        ManifestStatus::Starting => {
                            self.start_execution(&manifest, now, metrics).await
                        }
                        ManifestStatus::Failed => {
                            self.release_failed(&manifest, now, metrics).await
                        }
                        _ => Ok(()),
                    };
                    match outcome {
                        Ok(()) => {
                            report.repairs += 1;
                            metrics.count(metric::SWEEP_REPAIRS, 1);
                            info!(manifest_id = %manifest.manifest_id, status = manifest.status.as_str(), "sweep repaired a manifest");
                        }
                        Err(e) => {
                            report.errors += 1;
                            warn!(manifest_id = %manifest.manifest_id, error = %e, "sweep could not repair a manifest; next sweep retries");
                        }
                    }
                }
            }
            Err(e) => {
                report.errors += 1;
                error!(error = %e, "sweep could not list open manifests");
            }
        }
        match self.store.pending_prefixes().await {
            Ok(prefixes) => {
                for pending in prefixes {
                    report.prefixes += 1;
                    let force = now.seconds_since(pending.oldest) >= self.config.max_wait_seconds;
                    match self
                        .cut_ready(&pending.date_prefix, force, now, metrics)
                        .await
                    {
                        Ok(started) => report.manifests_started += started,
                        Err(e) => {
                            report.errors += 1;
                            metrics.count(metric::MANIFEST_ERRORS, 1);
                            warn!(date_prefix = %pending.date_prefix, error = %e, "sweep could not cut a manifest");
                        }
                    }
                }
            }
            Err(e) => {
                report.errors += 1;
                error!(error = %e, "sweep could not list pending prefixes");
            }
        }
        info!(
            repairs = report.repairs,
            started = report.manifests_started,
            prefixes = report.prefixes,
            errors = report.errors,
            "sweep done"
        );
        report
    }
}
