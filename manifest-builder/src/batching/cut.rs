//! Cutting manifests from a shard's batches, and starting their executions.

use std::collections::BTreeSet;

use shared::blobs::BlobStore;
use shared::ledger::{
    Batch, BatchContents, BatchKey, Cut, Ledger, Manifest, ManifestChanges, ManifestState,
    OpenManifest, Ref, Shard, Version, VersionRef,
};
use shared::manifest::{
    manifest_key, ExecutionInput, ManifestDocument, ManifestFile, MANIFEST_FORMAT, MANIFEST_VERSION,
};
use shared::metrics::Metrics;
use shared::orchestrator::Orchestrator;
use shared::types::{ManifestId, Timestamp};
use tracing::{info, warn};

use super::{metric, Batching, BatchingError};

/// Most manifests one call cuts from one shard, and most batches it reads per query.
const MAX_ROUNDS: usize = 64;
/// How long a cutter holds a shard's lease: longer than a cut of a few manifests takes, short
/// enough that a cutter that died delays the shard's next cut by little.
const CUT_LEASE_SECONDS: i64 = 30;
const PAGE: usize = 100;
/// Deepest chain of retry batches expanded (a retry of a retry of ...): each level is one
/// failed manifest of the same versions, so `MAX_ATTEMPTS` poison failures end far earlier.
const MAX_RETRY_DEPTH: usize = 32;

/// What [`Batching::cut`] did to one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Manifests cut (each one started, or left `starting` for the sweep).
    pub manifests: Vec<ManifestId>,
    /// Versions in them.
    pub files: u64,
    /// Whether the cursor skipped batches without a live version.
    pub skipped: bool,
    /// Whether the time budget ended the cut before the shard had nothing more ready (the
    /// next delivery or the sweep cuts the rest).
    pub out_of_time: bool,
}

/// A version a cut may take, with what its marker says.
struct Candidate {
    version: VersionRef,
    size: u64,
    etag: String,
}

/// The batches one manifest takes.
#[derive(Default)]
struct Taking {
    last: Option<BatchKey>,
    first_created: Option<Timestamp>,
    files: Vec<Candidate>,
    bytes: u64,
    full: bool,
}

impl<L: Ledger, B: BlobStore, O: Orchestrator> Batching<L, B, O> {
    /// Cuts every manifest `shard` has ready at `now`: full ones, and a partial one whose
    /// oldest batch waited `max_wait_seconds`. Each manifest is started. `time_left` is asked
    /// before each manifest: a shard with a backlog of many manifests must not keep the
    /// invocation past its timeout (a Lambda killed at its deadline fails its whole batch of
    /// messages, which then come back for nothing).
    pub async fn cut(
        &self,
        shard: &Shard,
        now: Timestamp,
        time_left: &dyn Fn() -> bool,
        metrics: &mut Metrics,
    ) -> Result<CutReport, BatchingError> {
        let mut report = CutReport::default();
        let mut leased = false;
        for _ in 0..MAX_ROUNDS {
            if !time_left() {
                report.out_of_time = true;
                break;
            }
            let position = self.ledger.cursor(shard).await?.map(|c| c.position);
            if !self.may_be_ready(shard, position.as_ref(), now).await? {
                break;
            }
            if !leased {
                // One cutter per shard at a time: the others would read the same markers and
                // lose the transaction. Whoever holds the lease cuts what is ready.
                let owner = format!("{:016x}", (self.random)());
                let until = now.plus_seconds(CUT_LEASE_SECONDS);
                if !self.ledger.lease(shard, &owner, now, until).await? {
                    metrics.count(metric::CUTS_DEFERRED, 1);
                    break;
                }
                leased = true;
            }
            let taking = self.gather(shard, position.as_ref(), now, metrics).await?;
            let Some(last) = taking.last.clone() else {
                break;
            };
            let waited = taking
                .first_created
                .is_some_and(|t| now.seconds_since(t) >= self.config.max_wait_seconds);
            if !taking.full && !waited {
                break;
            }
            if taking.files.is_empty() {
                if self.ledger.skip(shard, position.as_ref(), &last).await? {
                    report.skipped = true;
                }
                continue;
            }
            let files = taking.files.len() as u64;
            if let Some(id) = self
                .cut_manifest(shard, position, last, taking, now, metrics)
                .await?
            {
                report.manifests.push(id);
                report.files += files;
            }
        }
        Ok(report)
    }

    /// Whether the settled batches after `position` may hold a manifest's worth: their refs
    /// and bytes (upper bounds: some refs may be repeated deliveries or superseded) reach a
    /// limit, the oldest waited `max_wait_seconds`, or a retry batch or an unreadable item is
    /// among them (they are looked at closely). Reads batch items only: a cut attempted after
    /// every delivery would otherwise read every pending version's marker each time, many
    /// times the cost of the manifest it eventually cuts.
    async fn may_be_ready(
        &self,
        shard: &Shard,
        position: Option<&BatchKey>,
        now: Timestamp,
    ) -> Result<bool, BatchingError> {
        let until = BatchKey::before(now.plus_seconds(-self.config.settle_seconds));
        let (mut refs, mut bytes) = (0usize, 0u64);
        let mut after = position.cloned();
        loop {
            let page = self
                .ledger
                .batches(shard, after.as_ref(), &until, PAGE)
                .await?;
            if !page.unreadable.is_empty() {
                return Ok(true);
            }
            for batch in &page.items {
                if now.seconds_since(batch.key.created()) >= self.config.max_wait_seconds {
                    return Ok(true);
                }
                match &batch.contents {
                    BatchContents::Arrivals {
                        refs: r, bytes: b, ..
                    } => {
                        refs += r.len();
                        bytes = bytes.saturating_add(*b);
                    }
                    BatchContents::Retry { .. } => return Ok(true),
                }
                if refs >= self.config.max_files || bytes >= self.config.max_bytes {
                    return Ok(true);
                }
            }
            match page.next.and_then(|n| BatchKey::parse(&n)) {
                Some(next) => after = Some(next),
                None => return Ok(false),
            }
        }
    }

    /// Reads the batches after `position` and takes whole batches for one manifest.
    async fn gather(
        &self,
        shard: &Shard,
        position: Option<&BatchKey>,
        now: Timestamp,
        metrics: &mut Metrics,
    ) -> Result<Taking, BatchingError> {
        let until = BatchKey::before(now.plus_seconds(-self.config.settle_seconds));
        let mut taking = Taking::default();
        let mut after = position.cloned();
        loop {
            let page = self
                .ledger
                .batches(shard, after.as_ref(), &until, PAGE)
                .await?;
            // A batch that cannot be read stops the shard where it is: taking the batches after
            // it would move the cursor past its files.
            let blocked = page.unreadable.first().cloned();
            for batch in &page.items {
                if blocked
                    .as_ref()
                    .is_some_and(|u| u.sk.as_str() < batch.key.as_str())
                {
                    break;
                }
                let files = self.live_versions(batch, metrics).await?;
                let bytes: u64 = files.iter().map(|f| f.size).sum();
                let fits = taking.files.len() + files.len() <= self.config.max_files
                    && taking.bytes + bytes <= self.config.max_bytes;
                if !fits && taking.last.is_some() {
                    taking.full = true;
                    return Ok(taking);
                }
                taking.first_created.get_or_insert(batch.key.created());
                taking.last = Some(batch.key.clone());
                taking.bytes += bytes;
                taking.files.extend(files);
                if taking.files.len() >= self.config.max_files
                    || taking.bytes >= self.config.max_bytes
                {
                    taking.full = true;
                    return Ok(taking);
                }
            }
            if let Some(unreadable) = blocked {
                metrics.count(metric::UNREADABLE_ITEMS, 1);
                if taking.last.is_none() {
                    return Err(BatchingError::Blocked {
                        shard: shard.to_string(),
                        key: format!("{}/{}", unreadable.pk, unreadable.sk),
                        error: unreadable.error,
                    });
                }
                return Ok(taking);
            }
            match page.next.and_then(|n| BatchKey::parse(&n)) {
                Some(next) => after = Some(next),
                None => return Ok(taking),
            }
        }
    }

    /// The versions `batch` holds that a manifest may take now: those whose marker names the
    /// batch the ref came from, of this shard's date, neither superseded nor given up.
    async fn live_versions(
        &self,
        batch: &Batch,
        metrics: &mut Metrics,
    ) -> Result<Vec<Candidate>, BatchingError> {
        let mut refs: Vec<(VersionRef, BatchKey)> = Vec::new();
        self.expand(batch, 0, &mut refs).await?;
        // A version may be listed by several batches (repeated deliveries); only the ref from
        // the batch its marker names counts, so refs are told apart by origin too.
        let mut seen = BTreeSet::new();
        refs.retain(|r| seen.insert(r.clone()));
        let mut live = Vec::with_capacity(refs.len());
        for chunk in refs.chunks(PAGE) {
            let versions: Vec<VersionRef> = chunk.iter().map(|(v, _)| v.clone()).collect();
            let markers = self.ledger.markers(&versions).await?;
            for ((version, origin), marker) in chunk.iter().zip(markers) {
                match marker {
                    Some(m)
                        if &m.batch == origin
                            && m.date == batch.shard.date
                            && m.is_live(self.config.max_attempts) =>
                    {
                        live.push(Candidate {
                            version: version.clone(),
                            size: m.size,
                            etag: m.etag,
                        });
                    }
                    _ => metrics.count(metric::REFS_DROPPED, 1),
                }
            }
        }
        Ok(live)
    }

    /// The refs a batch stands for, each with the batch its marker must name: an arrival
    /// batch's own refs; a retry batch's, those of every batch of the released manifest's range
    /// (read again: they are behind the cursor, so nothing else takes them).
    async fn expand(
        &self,
        batch: &Batch,
        depth: usize,
        refs: &mut Vec<(VersionRef, BatchKey)>,
    ) -> Result<(), BatchingError> {
        match &batch.contents {
            BatchContents::Arrivals {
                bucket, refs: own, ..
            } => {
                refs.extend(own.iter().map(|Ref { key, version }| {
                    let version = VersionRef {
                        bucket: bucket.clone(),
                        key: key.clone(),
                        version: version.clone(),
                    };
                    (version, batch.key.clone())
                }));
                Ok(())
            }
            BatchContents::Retry { manifest } => {
                let released = self.ledger.manifest(manifest).await?;
                let Some(released) = released.filter(|_| depth < MAX_RETRY_DEPTH) else {
                    warn!(batch = %batch.key, manifest = %manifest, "retry batch names no manifest (or too deep a chain): its versions are dropped");
                    return Ok(());
                };
                let mut after = released.after.clone();
                loop {
                    let page = self
                        .ledger
                        .batches(&released.shard, after.as_ref(), &released.last, PAGE)
                        .await?;
                    if let Some(unreadable) = page.unreadable.first() {
                        return Err(BatchingError::Blocked {
                            shard: released.shard.to_string(),
                            key: format!("{}/{}", unreadable.pk, unreadable.sk),
                            error: unreadable.error.clone(),
                        });
                    }
                    for inner in &page.items {
                        Box::pin(self.expand(inner, depth + 1, refs)).await?;
                    }
                    match page.next.and_then(|n| BatchKey::parse(&n)) {
                        Some(next) => after = Some(next),
                        None => return Ok(()),
                    }
                }
            }
        }
    }

    /// Writes the manifest JSON, cuts (cursor, manifest and open entry in one transaction) and
    /// starts it. `None` when another cutter moved the cursor first.
    async fn cut_manifest(
        &self,
        shard: &Shard,
        position: Option<BatchKey>,
        last: BatchKey,
        taking: Taking,
        now: Timestamp,
        metrics: &mut Metrics,
    ) -> Result<Option<ManifestId>, BatchingError> {
        let id = self.manifest_id(&shard.date, now);
        let key = manifest_key(&self.config.manifest_prefix, &shard.date, &id);
        let bucket = &self.config.manifest_bucket;
        let files: Vec<ManifestFile> = taking
            .files
            .iter()
            .map(|c| ManifestFile {
                bucket: c.version.bucket.clone(),
                key: c.version.key.clone(),
                size: c.size,
                etag: c.etag.clone(),
                version_id: c.version.version.version_id().map(str::to_string),
                sequencer: match &c.version.version {
                    Version::Sequencer(sequencer) => Some(sequencer.clone()),
                    Version::Id(_) | Version::Etag(_) => None,
                },
            })
            .collect();
        let document = ManifestDocument {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            manifest_id: id.clone(),
            date_prefix: shard.date.clone(),
            created_at: now.to_rfc3339(),
            file_count: files.len() as u64,
            total_bytes: taking.bytes,
            files,
        };
        // The JSON first: once the cut commits, the manifest is exactly this document.
        self.blobs
            .put(bucket, &key, document.to_json(), "application/json")
            .await?;
        let manifest = Manifest {
            id: id.clone(),
            shard: shard.clone(),
            state: ManifestState::Starting,
            after: position,
            last,
            manifest_path: format!("s3://{bucket}/{key}"),
            file_count: document.file_count,
            total_bytes: document.total_bytes,
            execution_arn: None,
            result: None,
            error: None,
            created_at: now,
            updated_at: now,
            ttl: self.config.ttl(now),
        };
        // Another cutter of this shard (a builder of the same shard, the sweep) may have taken
        // these batches while their markers were read: checking costs one read, losing the
        // race at the transaction an open entry and a failed transaction (billed).
        let current = self.ledger.cursor(shard).await?.map(|c| c.position);
        if current.as_ref() != manifest.after.as_ref() {
            metrics.count(metric::CUTS_LOST, 1);
            self.blobs.delete(bucket, &key).await?;
            return Ok(None);
        }
        // Listed before it exists, so that no manifest is ever unlisted; an entry whose cut
        // lost is removed here, or by the sweep if this process dies first.
        let entry = OpenManifest {
            id: id.clone(),
            created_at: now,
        };
        self.ledger.open(&entry).await?;
        let cut = Cut {
            manifest: manifest.clone(),
        };
        if !self.ledger.cut(&cut).await? {
            metrics.count(metric::CUTS_LOST, 1);
            // Best effort: an orphan JSON names no execution and is never read.
            if let Err(e) = self.blobs.delete(bucket, &key).await {
                warn!(manifest_id = %id, error = %e, "orphan manifest JSON not removed");
            }
            if let Err(e) = self.ledger.close(&entry).await {
                warn!(manifest_id = %id, error = %e, "open entry of a lost cut not removed");
            }
            return Ok(None);
        }
        metrics.count(metric::MANIFESTS_CUT, 1);
        metrics.count(metric::FILES_MANIFESTED, document.file_count);
        info!(manifest_id = %id, shard = %shard, files = document.file_count, bytes = document.total_bytes, "manifest cut");
        if let Err(e) = self.start(&manifest, now, metrics).await {
            // Durable and `starting`: the sweep starts it.
            warn!(manifest_id = %id, error = %e, "execution not started; the sweep will start it");
        }
        Ok(Some(id))
    }

    /// Starts the manifest's execution (a repeat finds it) and records it `running`.
    pub(super) async fn start(
        &self,
        manifest: &Manifest,
        now: Timestamp,
        metrics: &mut Metrics,
    ) -> Result<(), BatchingError> {
        let input = ExecutionInput {
            manifest_path: manifest.manifest_path.clone(),
            date_prefix: manifest.shard.date.clone(),
            file_count: manifest.file_count,
            manifest_id: manifest.id.clone(),
            total_bytes: manifest.total_bytes,
        };
        let input = serde_json::to_string(&input).expect("invariant: execution input serializes");
        let arn = match self.orchestrator.start(manifest.id.as_str(), &input).await {
            Ok(started) => started.execution_arn().to_string(),
            Err(error) => match self.orchestrator.describe(manifest.id.as_str()).await? {
                Some(execution) => execution.arn,
                None => return Err(error.into()),
            },
        };
        let changes = ManifestChanges {
            execution_arn: Some(arn),
        };
        if self
            .ledger
            .advance(
                &manifest.id,
                &[ManifestState::Starting],
                ManifestState::Running,
                &changes,
                now,
            )
            .await?
        {
            metrics.count(metric::MANIFESTS_STARTED, 1);
        }
        Ok(())
    }
}
