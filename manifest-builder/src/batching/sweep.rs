//! The sweep: settles every open manifest a crash, a lost response or an ended execution left
//! behind, then cuts every registered shard. Each step is safe to repeat, to run twice at once
//! and to stop anywhere: every change is a compare-and-set on the manifest's state.

use shared::blobs::BlobStore;
use shared::ledger::{
    Batch, BatchContents, BatchKey, Ledger, Manifest, ManifestChanges, ManifestState, OpenManifest,
    OPEN_PARTITIONS,
};
use shared::manifest::{error_key, part_prefix};
use shared::metrics::Metrics;
use shared::orchestrator::{ExecutionStatus, Orchestrator};
use shared::types::Timestamp;
use tracing::{info, warn};

use super::{metric, Batching, BatchingError};

const PAGE: usize = 100;

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// `starting` manifests started (or found started).
    pub started: u64,
    /// Manifests failed because their execution ended without settling them.
    pub reconciled: u64,
    /// Failed manifests released.
    pub released: u64,
    /// Manifests cut.
    pub cut: u64,
    /// Items that did not parse.
    pub unreadable: u64,
    /// Steps that failed (retried at the next sweep).
    pub errors: u64,
    /// Whether it stopped early because its time ran out.
    pub out_of_time: bool,
}

impl<L: Ledger, B: BlobStore, O: Orchestrator> Batching<L, B, O> {
    /// One sweep at `now`. `time_left` is asked before each step; once it says no, the sweep
    /// stops where it is (the next one starts over: nothing depends on finishing).
    pub async fn sweep(
        &self,
        now: Timestamp,
        time_left: &dyn Fn() -> bool,
        metrics: &mut Metrics,
    ) -> SweepReport {
        let mut report = SweepReport::default();
        for partition in 0..OPEN_PARTITIONS {
            let mut after: Option<String> = None;
            loop {
                if !time_left() {
                    report.out_of_time = true;
                    return report;
                }
                let page = match self
                    .ledger
                    .open_manifests(partition, after.as_deref(), PAGE)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        warn!(partition, error = %e, "open manifests not listed");
                        report.errors += 1;
                        break;
                    }
                };
                for unreadable in &page.unreadable {
                    warn!(key = %format!("{}/{}", unreadable.pk, unreadable.sk), error = %unreadable.error, "unreadable open entry skipped");
                }
                report.unreadable += page.unreadable.len() as u64;
                for open in &page.items {
                    if let Err(e) = self.settle(open, now, &mut report, metrics).await {
                        warn!(manifest_id = %open.id, error = %e, "open manifest not settled");
                        report.errors += 1;
                    }
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        self.cut_every_shard(now, time_left, &mut report, metrics)
            .await;
        metrics.count(metric::UNREADABLE_ITEMS, report.unreadable);
        metrics.count(metric::SWEEP_ERRORS, report.errors);
        report
    }

    async fn cut_every_shard(
        &self,
        now: Timestamp,
        time_left: &dyn Fn() -> bool,
        report: &mut SweepReport,
        metrics: &mut Metrics,
    ) {
        let mut after: Option<String> = None;
        loop {
            let page = match self.ledger.shards(after.as_deref(), PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    warn!(error = %e, "shards not listed");
                    report.errors += 1;
                    return;
                }
            };
            report.unreadable += page.unreadable.len() as u64;
            for shard in &page.items {
                if !time_left() {
                    report.out_of_time = true;
                    return;
                }
                match self.cut(shard, now, time_left, metrics).await {
                    Ok(cut) => {
                        report.cut += cut.manifests.len() as u64;
                        report.out_of_time |= cut.out_of_time;
                    }
                    Err(e) => {
                        warn!(shard = %shard, error = %e, "shard not cut");
                        report.errors += 1;
                    }
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return,
            }
        }
    }

    /// Moves one open manifest on, if it has waited long enough in its state.
    async fn settle(
        &self,
        open: &OpenManifest,
        now: Timestamp,
        report: &mut SweepReport,
        metrics: &mut Metrics,
    ) -> Result<(), BatchingError> {
        let Some(manifest) = self.ledger.manifest(&open.id).await? else {
            // Listed by a cut that lost (or whose process died before it committed): once no
            // cutter of that time can still commit, the entry goes.
            if now.seconds_since(open.created_at) >= self.config.repair_after_seconds {
                self.ledger.close(open).await?;
            }
            return Ok(());
        };
        let waited = now.seconds_since(manifest.updated_at);
        match manifest.state {
            // Settled, but the entry was not removed (the converter died right after).
            ManifestState::Completed | ManifestState::Released => {
                self.ledger.close(open).await?;
                Ok(())
            }
            ManifestState::Starting if waited >= self.config.repair_after_seconds => {
                self.reconcile(&manifest, now, report, metrics).await
            }
            ManifestState::Running if waited >= self.config.reconcile_after_seconds => {
                self.reconcile(&manifest, now, report, metrics).await
            }
            ManifestState::Failed if waited >= self.config.release_after_seconds => {
                self.release(&manifest, now, report, metrics).await
            }
            _ => Ok(()),
        }
    }

    /// Compares an open manifest with its execution: none yet → start it; still running →
    /// record it running; ended without settling the manifest → fail it (released later).
    async fn reconcile(
        &self,
        manifest: &Manifest,
        now: Timestamp,
        report: &mut SweepReport,
        metrics: &mut Metrics,
    ) -> Result<(), BatchingError> {
        let id = &manifest.id;
        let open = [ManifestState::Starting, ManifestState::Running];
        match self.orchestrator.describe(id.as_str()).await? {
            None if manifest.state == ManifestState::Starting => {
                self.start(manifest, now, metrics).await?;
                report.started += 1;
            }
            Some(execution) if execution.status == ExecutionStatus::Running => {
                if manifest.state == ManifestState::Starting {
                    let changes = ManifestChanges {
                        execution_arn: Some(execution.arn),
                    };
                    self.ledger
                        .advance(
                            id,
                            &[ManifestState::Starting],
                            ManifestState::Running,
                            &changes,
                            now,
                        )
                        .await?;
                    report.started += 1;
                }
            }
            found => {
                // Ended (or vanished) while the manifest is still open: its converter never
                // settled it (aborted, timed out, or `MarkFailed` itself failed).
                let how = found.map_or("does not exist".to_string(), |e| {
                    format!("ended {:?}", e.status)
                });
                let error = format!("execution {how} without settling the manifest");
                if self.ledger.fail(id, &open, &error, &[], now).await? {
                    warn!(manifest_id = %id, %error, "manifest failed by the sweep");
                    metrics.count(metric::MANIFESTS_RECONCILED, 1);
                    report.reconciled += 1;
                }
            }
        }
        Ok(())
    }

    /// Removes a failed manifest's outputs, then hands its versions to a retry batch in its
    /// shard (after the cursor, so they are cut again) and closes it, in one transaction.
    async fn release(
        &self,
        manifest: &Manifest,
        now: Timestamp,
        report: &mut SweepReport,
        metrics: &mut Metrics,
    ) -> Result<(), BatchingError> {
        let (id, date) = (&manifest.id, &manifest.shard.date);
        let outputs = &self.config.outputs;
        let parts = part_prefix(&outputs.output_prefix, date, id);
        let removed = self
            .blobs
            .delete_prefix(&outputs.output_bucket, &parts, &[])
            .await?;
        self.blobs
            .delete(
                &outputs.error_bucket,
                &error_key(&outputs.error_prefix, date, id),
            )
            .await?;
        let retry = Batch {
            shard: manifest.shard.clone(),
            key: BatchKey::retry(now, id),
            contents: BatchContents::Retry {
                manifest: id.clone(),
            },
            ttl: self.config.ttl(now),
        };
        if self.ledger.release(id, &retry, now).await? {
            info!(manifest_id = %id, removed, "failed manifest released");
            metrics.count(metric::MANIFESTS_RELEASED, 1);
            report.released += 1;
        }
        let entry = OpenManifest {
            id: id.clone(),
            created_at: manifest.created_at,
        };
        self.ledger.close(&entry).await?;
        Ok(())
    }
}
