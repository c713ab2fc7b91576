//! The tracking store: one record per file and per manifest (see `docs`/DESIGN: tracking table).
//!
//! # Contract
//!
//! Implementations (DynamoDB for production, [`MemoryTrackingStore`] for unit tests) must
//! provide, for every operation, the same observable behaviour; the contract test suite in
//! [`contract`] checks it against both.
//!
//! * [`TrackingStore::track_file`] is an atomic insert-if-absent keyed by (date prefix, object
//!   key): a repeat never overwrites, and reports whether the existing record has the same ETag.
//! * [`TrackingStore::claim_file`] atomically moves one file `pending → manifested` for one
//!   manifest: of any number of concurrent claims, at most one succeeds.
//! * [`TrackingStore::release_file`] atomically moves a file back `manifested → pending`, only
//!   if the given manifest holds it.
//! * [`TrackingStore::update_manifest`] changes a manifest only if it still has the expected
//!   status (a compare-and-set), so a manifest is never moved by two parties.
//! * [`TrackingStore::pending_files`] returns up to `limit` pending files of a prefix, oldest
//!   first, reading no more than that. Like any secondary-index read it may be slightly stale:
//!   it can miss a file tracked a moment ago, or list one claimed a moment ago (whose claim
//!   then fails). Callers must only rely on the claim.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use crate::types::{
    ConversionResult, DatePrefix, FileRecord, FileStatus, ManifestId, ManifestRecord,
    ManifestStatus, ObjectRef, Timestamp,
};

/// A tracking-store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing service returned an error or could not be reached.
    #[error("tracking table {table}: {operation} failed: {message}")]
    Service {
        /// Table name.
        table: String,
        /// Operation, e.g. `PutItem`.
        operation: &'static str,
        /// The service's description of the problem.
        message: String,
    },
    /// An item did not have the expected shape.
    #[error("tracking table {table}: malformed item {key}: {detail}")]
    Malformed {
        /// Table name.
        table: String,
        /// `date_prefix/file_key` of the item.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// A fault injected by a test wrapper (never produced by a real store).
    #[error("injected fault in {operation}")]
    Injected {
        /// The operation that was made to fail.
        operation: &'static str,
    },
}

/// What tracking a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackOutcome {
    /// First sighting: the file is now pending.
    Tracked,
    /// Already tracked with the same ETag: a repeated delivery of the same event.
    Duplicate,
    /// Already tracked with another ETag: the object was overwritten after it was tracked.
    Overwritten {
        /// ETag of the version that is tracked.
        tracked_etag: String,
    },
}

/// A prefix that has pending files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPrefix {
    /// The prefix.
    pub date_prefix: DatePrefix,
    /// Creation time of its oldest pending file.
    pub oldest: Timestamp,
    /// How many pending files were seen.
    pub count: u64,
}

/// Fields a manifest update may set, besides its status and `updated_at`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestChanges {
    /// `s3://` path of the manifest JSON.
    pub manifest_path: Option<String>,
    /// Number of files claimed.
    pub file_count: Option<u64>,
    /// Their bytes.
    pub total_bytes: Option<u64>,
    /// The execution.
    pub execution_arn: Option<String>,
    /// The conversion's result.
    pub result: Option<ConversionResult>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The tracking table, behind the contract stated in the module docs.
pub trait TrackingStore: Send + Sync {
    /// Records a new file as pending, unless it is already tracked.
    fn track_file(
        &self,
        file: &FileRecord,
    ) -> impl Future<Output = Result<TrackOutcome, StoreError>> + Send;

    /// Reads one file record (strongly consistent).
    fn get_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
    ) -> impl Future<Output = Result<Option<FileRecord>, StoreError>> + Send;

    /// Up to `limit` pending files of a prefix, oldest first.
    fn pending_files(
        &self,
        date_prefix: &DatePrefix,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<FileRecord>, StoreError>> + Send;

    /// Every prefix with pending files, with the age of its oldest one.
    fn pending_prefixes(
        &self,
    ) -> impl Future<Output = Result<Vec<PendingPrefix>, StoreError>> + Send;

    /// Records a new manifest (status `claiming`, with its candidates) unless the id exists.
    fn create_manifest(
        &self,
        manifest: &ManifestRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Moves a file `pending → manifested` for `manifest`; false if it was not pending.
    fn claim_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Moves a file `manifested → processed` if `manifest` holds it; false otherwise.
    fn complete_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Counts a failed attempt on a file `manifest` holds: back to `pending` with
    /// `attempts + 1`, or `failed` once that reaches `max_attempts`. Returns the new status, or
    /// `None` if `manifest` does not hold the file.
    fn fail_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        max_attempts: u32,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<FileStatus>, StoreError>> + Send;

    /// Moves a file `manifested → pending` if `manifest` holds it; false otherwise.
    fn release_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Sets a manifest's status (and `changes`) if its status is still `expected`.
    fn update_manifest(
        &self,
        date_prefix: &DatePrefix,
        manifest: &ManifestId,
        expected: ManifestStatus,
        status: ManifestStatus,
        changes: &ManifestChanges,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Reads one manifest record (strongly consistent).
    fn get_manifest(
        &self,
        date_prefix: &DatePrefix,
        manifest: &ManifestId,
    ) -> impl Future<Output = Result<Option<ManifestRecord>, StoreError>> + Send;

    /// Every manifest in an open status (`claiming`, `starting`).
    fn open_manifests(
        &self,
    ) -> impl Future<Output = Result<Vec<ManifestRecord>, StoreError>> + Send;
}

/// A new pending file record.
pub fn new_file_record(
    date_prefix: DatePrefix,
    object: ObjectRef,
    now: Timestamp,
    ttl_days: u32,
) -> FileRecord {
    FileRecord {
        date_prefix,
        object,
        status: FileStatus::Pending,
        manifest_id: None,
        attempts: 0,
        created_at: now,
        updated_at: now,
        ttl: now
            .plus_seconds(i64::from(ttl_days) * 86_400)
            .unix_seconds(),
    }
}

#[derive(Default)]
struct MemoryState {
    files: BTreeMap<(DatePrefix, String), FileRecord>,
    manifests: BTreeMap<(DatePrefix, ManifestId), ManifestRecord>,
}

/// An in-memory tracking store for unit tests: every operation is atomic under one lock.
#[derive(Default)]
pub struct MemoryTrackingStore {
    state: Mutex<MemoryState>,
}

impl MemoryTrackingStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> T {
        f(&mut self
            .state
            .lock()
            .expect("invariant: the store lock is never poisoned"))
    }

    /// Every file record (for assertions).
    pub fn all_files(&self) -> Vec<FileRecord> {
        self.with(|s| s.files.values().cloned().collect())
    }

    /// Every manifest record (for assertions).
    pub fn all_manifests(&self) -> Vec<ManifestRecord> {
        self.with(|s| s.manifests.values().cloned().collect())
    }

    /// What the state machine's `Catch` does in production: mark the manifest `failed` and
    /// hand it to the sweep, which returns its files to pending.
    pub fn fail_by_workflow(&self, date_prefix: &DatePrefix, manifest: &ManifestId, cause: &str) {
        self.with(|s| {
            if let Some(record) = s
                .manifests
                .get_mut(&(date_prefix.clone(), manifest.clone()))
            {
                record.status = ManifestStatus::Failed;
                record.error = Some(cause.to_string());
                record.needs_sweep = true;
            }
        })
    }
}

impl TrackingStore for MemoryTrackingStore {
    async fn track_file(&self, file: &FileRecord) -> Result<TrackOutcome, StoreError> {
        self.with(|s| {
            let key = (file.date_prefix.clone(), file.object.key.clone());
            match s.files.get(&key) {
                Some(existing) if existing.object.etag == file.object.etag => {
                    Ok(TrackOutcome::Duplicate)
                }
                Some(existing) => Ok(TrackOutcome::Overwritten {
                    tracked_etag: existing.object.etag.clone(),
                }),
                None => {
                    s.files.insert(key, file.clone());
                    Ok(TrackOutcome::Tracked)
                }
            }
        })
    }

    async fn get_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
    ) -> Result<Option<FileRecord>, StoreError> {
        Ok(self.with(|s| {
            s.files
                .get(&(date_prefix.clone(), key.to_string()))
                .cloned()
        }))
    }

    async fn pending_files(
        &self,
        date_prefix: &DatePrefix,
        limit: usize,
    ) -> Result<Vec<FileRecord>, StoreError> {
        Ok(self.with(|s| {
            let mut pending: Vec<FileRecord> = s
                .files
                .values()
                .filter(|f| &f.date_prefix == date_prefix && f.status == FileStatus::Pending)
                .cloned()
                .collect();
            pending
                .sort_by(|a, b| (a.created_at, &a.object.key).cmp(&(b.created_at, &b.object.key)));
            pending.truncate(limit);
            pending
        }))
    }

    async fn pending_prefixes(&self) -> Result<Vec<PendingPrefix>, StoreError> {
        Ok(self.with(|s| {
            let mut by_prefix: BTreeMap<DatePrefix, PendingPrefix> = BTreeMap::new();
            for file in s.files.values().filter(|f| f.status == FileStatus::Pending) {
                let entry = by_prefix
                    .entry(file.date_prefix.clone())
                    .or_insert(PendingPrefix {
                        date_prefix: file.date_prefix.clone(),
                        oldest: file.created_at,
                        count: 0,
                    });
                entry.oldest = entry.oldest.min(file.created_at);
                entry.count += 1;
            }
            by_prefix.into_values().collect()
        }))
    }

    async fn create_manifest(&self, manifest: &ManifestRecord) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            let key = (manifest.date_prefix.clone(), manifest.manifest_id.clone());
            if s.manifests.contains_key(&key) {
                return false;
            }
            s.manifests.insert(key, manifest.clone());
            true
        }))
    }

    async fn claim_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.with(
            |s| match s.files.get_mut(&(date_prefix.clone(), key.to_string())) {
                Some(file) if file.status == FileStatus::Pending => {
                    file.status = FileStatus::Manifested;
                    file.manifest_id = Some(manifest.clone());
                    file.updated_at = now;
                    true
                }
                _ => false,
            },
        ))
    }

    async fn complete_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.with(
            |s| match s.files.get_mut(&(date_prefix.clone(), key.to_string())) {
                Some(file)
                    if file.status == FileStatus::Manifested
                        && file.manifest_id.as_ref() == Some(manifest) =>
                {
                    file.status = FileStatus::Processed;
                    file.updated_at = now;
                    true
                }
                _ => false,
            },
        ))
    }

    async fn fail_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<Option<FileStatus>, StoreError> {
        Ok(self.with(
            |s| match s.files.get_mut(&(date_prefix.clone(), key.to_string())) {
                Some(file)
                    if file.status == FileStatus::Manifested
                        && file.manifest_id.as_ref() == Some(manifest) =>
                {
                    file.attempts += 1;
                    file.updated_at = now;
                    if file.attempts >= max_attempts {
                        file.status = FileStatus::Failed;
                    } else {
                        file.status = FileStatus::Pending;
                        file.manifest_id = None;
                    }
                    Some(file.status)
                }
                _ => None,
            },
        ))
    }

    async fn release_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.with(
            |s| match s.files.get_mut(&(date_prefix.clone(), key.to_string())) {
                Some(file)
                    if file.status == FileStatus::Manifested
                        && file.manifest_id.as_ref() == Some(manifest) =>
                {
                    file.status = FileStatus::Pending;
                    file.manifest_id = None;
                    file.updated_at = now;
                    true
                }
                _ => false,
            },
        ))
    }

    async fn update_manifest(
        &self,
        date_prefix: &DatePrefix,
        manifest: &ManifestId,
        expected: ManifestStatus,
        status: ManifestStatus,
        changes: &ManifestChanges,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            match s
                .manifests
                .get_mut(&(date_prefix.clone(), manifest.clone()))
            {
                Some(record) if record.status == expected => {
                    record.status = status;
                    record.updated_at = now;
                    record.needs_sweep = status.is_open();
                    if let Some(result) = &changes.result {
                        record.result = Some(result.clone());
                    }
                    if let Some(error) = &changes.error {
                        record.error = Some(error.clone());
                    }
                    if let Some(path) = &changes.manifest_path {
                        record.manifest_path = Some(path.clone());
                    }
                    if let Some(count) = changes.file_count {
                        record.file_count = count;
                    }
                    if let Some(bytes) = changes.total_bytes {
                        record.total_bytes = bytes;
                    }
                    if let Some(arn) = &changes.execution_arn {
                        record.execution_arn = Some(arn.clone());
                    }
                    true
                }
                _ => false,
            }
        }))
    }

    async fn get_manifest(
        &self,
        date_prefix: &DatePrefix,
        manifest: &ManifestId,
    ) -> Result<Option<ManifestRecord>, StoreError> {
        Ok(self.with(|s| {
            s.manifests
                .get(&(date_prefix.clone(), manifest.clone()))
                .cloned()
        }))
    }

    async fn open_manifests(&self) -> Result<Vec<ManifestRecord>, StoreError> {
        Ok(self.with(|s| {
            s.manifests
                .values()
                .filter(|m| m.needs_sweep)
                .cloned()
                .collect()
        }))
    }
}

/// The contract test suite, run against every implementation (the in-memory one here, the
/// DynamoDB one against the emulator in the workspace's integration tests).
#[cfg(any(test, feature = "test-support"))]
pub mod contract {
    use super::*;

    fn object(key: &str, size: u64, etag: &str) -> ObjectRef {
        ObjectRef {
            bucket: "input".into(),
            key: key.into(),
            size,
            etag: etag.into(),
        }
    }

    fn manifest(
        prefix: &DatePrefix,
        id: &ManifestId,
        candidates: &[&str],
        now: Timestamp,
    ) -> ManifestRecord {
        ManifestRecord {
            date_prefix: prefix.clone(),
            manifest_id: id.clone(),
            status: ManifestStatus::Claiming,
            candidates: candidates.iter().map(|c| c.to_string()).collect(),
            manifest_path: None,
            file_count: 0,
            total_bytes: 0,
            execution_arn: None,
            result: None,
            error: None,
            needs_sweep: true,
            created_at: now,
            updated_at: now,
            ttl: now.plus_seconds(86_400).unix_seconds(),
        }
    }

    /// Runs every contract check against `store`, which must be empty. `prefix_seed` keeps
    /// the date prefixes of concurrent runs apart.
    pub async fn run_all<S: TrackingStore>(store: &S, prefix_seed: u32) {
        let day = |d: u32| {
            DatePrefix::parse(&format!("20{:02}-01-{:02}", 30 + prefix_seed % 60, d))
                .expect("valid date")
        };
        tracking_is_idempotent_and_detects_overwrites(store, &day(1)).await;
        pending_files_come_oldest_first_and_limited(store, &day(2)).await;
        claims_are_exclusive_and_releases_need_the_holder(store, &day(3)).await;
        manifests_change_only_from_the_expected_status(store, &day(4)).await;
        pending_prefixes_report_the_oldest_file(store, &day(5), &day(6)).await;
        files_complete_or_fail_only_for_their_manifest(store, &day(7)).await;
    }

    async fn tracking_is_idempotent_and_detects_overwrites<S: TrackingStore>(
        store: &S,
        prefix: &DatePrefix,
    ) {
        let now = Timestamp(1_000_000);
        let file = new_file_record(prefix.clone(), object("a b/ü.ndjson", 10, "e1"), now, 7);
        assert_eq!(
            store.track_file(&file).await.unwrap(),
            TrackOutcome::Tracked
        );
        let mut later = file.clone();
        later.created_at = Timestamp(2_000_000);
        assert_eq!(
            store.track_file(&later).await.unwrap(),
            TrackOutcome::Duplicate
        );
        let mut overwritten = file.clone();
        overwritten.object.etag = "e2".into();
        assert_eq!(
            store.track_file(&overwritten).await.unwrap(),
            TrackOutcome::Overwritten {
                tracked_etag: "e1".into()
            }
        );
        let stored = store
            .get_file(prefix, "a b/ü.ndjson")
            .await
            .unwrap()
            .expect("tracked");
        assert_eq!(stored, file, "a repeat never overwrites the record");
        assert_eq!(store.get_file(prefix, "missing").await.unwrap(), None);
    }

    async fn pending_files_come_oldest_first_and_limited<S: TrackingStore>(
        store: &S,
        prefix: &DatePrefix,
    ) {
        for (i, key) in ["c", "a", "d", "b"].iter().enumerate() {
            let file = new_file_record(
                prefix.clone(),
                object(key, 100 + i as u64, "e"),
                Timestamp(5_000 - i as i64 * 1000),
                7,
            );
            store.track_file(&file).await.unwrap();
        }
        let keys =
            |files: Vec<FileRecord>| files.into_iter().map(|f| f.object.key).collect::<Vec<_>>();
        assert_eq!(
            keys(store.pending_files(prefix, 10).await.unwrap()),
            ["b", "d", "a", "c"]
        );
        assert_eq!(
            keys(store.pending_files(prefix, 2).await.unwrap()),
            ["b", "d"]
        );
        let id = ManifestId::parse("m-pending").unwrap();
        store
            .create_manifest(&manifest(prefix, &id, &["d"], Timestamp(9_000)))
            .await
            .unwrap();
        assert!(store
            .claim_file(prefix, "d", &id, Timestamp(9_000))
            .await
            .unwrap());
        // The index is eventually consistent: wait (boundedly) for the claim to show.
        let mut seen = Vec::new();
        for _ in 0..50 {
            seen = keys(store.pending_files(prefix, 10).await.unwrap());
            if seen == ["b", "a", "c"] {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(seen, ["b", "a", "c"], "claimed files leave the pending set");
        let file = store.get_file(prefix, "d").await.unwrap().unwrap();
        assert_eq!(file.size_and_status(), (102, FileStatus::Manifested));
    }

    async fn claims_are_exclusive_and_releases_need_the_holder<S: TrackingStore>(
        store: &S,
        prefix: &DatePrefix,
    ) {
        let now = Timestamp(10_000);
        store
            .track_file(&new_file_record(
                prefix.clone(),
                object("f", 1, "e"),
                now,
                7,
            ))
            .await
            .unwrap();
        let m1 = ManifestId::parse("m1").unwrap();
        let m2 = ManifestId::parse("m2").unwrap();
        let (first, second) = tokio::join!(
            store.claim_file(prefix, "f", &m1, now),
            store.claim_file(prefix, "f", &m2, now)
        );
        assert!(
            first.unwrap() ^ second.unwrap(),
            "exactly one concurrent claim wins"
        );
        let holder = store
            .get_file(prefix, "f")
            .await
            .unwrap()
            .unwrap()
            .manifest_id
            .unwrap();
        let other = if holder == m1 { &m2 } else { &m1 };
        assert!(!store.claim_file(prefix, "f", other, now).await.unwrap());
        assert!(
            !store.release_file(prefix, "f", other, now).await.unwrap(),
            "only the holder releases"
        );
        assert!(store.release_file(prefix, "f", &holder, now).await.unwrap());
        assert!(
            !store.release_file(prefix, "f", &holder, now).await.unwrap(),
            "release is not repeated"
        );
        let file = store.get_file(prefix, "f").await.unwrap().unwrap();
        assert_eq!((file.status, file.manifest_id), (FileStatus::Pending, None));
        assert!(!store
            .claim_file(prefix, "nonexistent", &m1, now)
            .await
            .unwrap());
    }

    async fn manifests_change_only_from_the_expected_status<S: TrackingStore>(
        store: &S,
        prefix: &DatePrefix,
    ) {
        let now = Timestamp(20_000);
        let id = ManifestId::parse("m-status").unwrap();
        let record = manifest(prefix, &id, &["x", "y z"], now);
        assert!(store.create_manifest(&record).await.unwrap());
        assert!(
            !store.create_manifest(&record).await.unwrap(),
            "an id is created once"
        );
        let changes = ManifestChanges {
            manifest_path: Some("s3://m/x.json".into()),
            file_count: Some(2),
            total_bytes: Some(30),
            ..ManifestChanges::default()
        };
        let later = Timestamp(21_000);
        assert!(store
            .update_manifest(
                prefix,
                &id,
                ManifestStatus::Claiming,
                ManifestStatus::Starting,
                &changes,
                later
            )
            .await
            .unwrap());
        assert!(!store
            .update_manifest(
                prefix,
                &id,
                ManifestStatus::Claiming,
                ManifestStatus::Abandoned,
                &ManifestChanges::default(),
                later
            )
            .await
            .unwrap());
        let open = store.open_manifests().await.unwrap();
        assert!(open
            .iter()
            .any(|m| m.manifest_id == id && m.status == ManifestStatus::Starting));
        let arn = ManifestChanges {
            execution_arn: Some("arn:aws:states:us-east-1:1:execution:sm:m-status".into()),
            ..ManifestChanges::default()
        };
        assert!(store
            .update_manifest(
                prefix,
                &id,
                ManifestStatus::Starting,
                ManifestStatus::Running,
                &arn,
                later
            )
            .await
            .unwrap());
        let stored = store.get_manifest(prefix, &id).await.unwrap().unwrap();
        assert_eq!(stored.status, ManifestStatus::Running);
        assert_eq!(stored.candidates, ["x", "y z"]);
        assert_eq!(stored.manifest_path.as_deref(), Some("s3://m/x.json"));
        assert_eq!((stored.file_count, stored.total_bytes), (2, 30));
        assert_eq!(stored.execution_arn, arn.execution_arn);
        assert_eq!((stored.created_at, stored.updated_at), (now, later));
        let mut open = Vec::new();
        for _ in 0..50 {
            open = store.open_manifests().await.unwrap();
            if !open.iter().any(|m| m.manifest_id == id) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            !open.iter().any(|m| m.manifest_id == id),
            "a running manifest is not open"
        );
        assert_eq!(
            store
                .get_manifest(prefix, &ManifestId::parse("none").unwrap())
                .await
                .unwrap(),
            None
        );

        let result = ConversionResult {
            lines_read: 10,
            rows_written: 7,
            rows_rejected: 2,
            blank_lines: 1,
            bytes_in: 100,
            bytes_out: 50,
            output_keys: vec![
                "out/dt=x/m-00000.parquet".into(),
                "out/dt=x/m-00001.parquet".into(),
            ],
            error_key: Some("errors/dt=x/m.errors.ndjson.gz".into()),
            schema: Some("{\"fields\":[]}".into()),
        };
        let done = ManifestChanges {
            result: Some(result.clone()),
            ..ManifestChanges::default()
        };
        assert!(store
            .update_manifest(
                prefix,
                &id,
                ManifestStatus::Running,
                ManifestStatus::Completed,
                &done,
                later
            )
            .await
            .unwrap());
        let stored = store.get_manifest(prefix, &id).await.unwrap().unwrap();
        assert_eq!(
            (stored.status, stored.result, stored.needs_sweep),
            (ManifestStatus::Completed, Some(result), false)
        );

        let failed = ManifestId::parse("m-failed").unwrap();
        store
            .create_manifest(&manifest(prefix, &failed, &[], now))
            .await
            .unwrap();
        let cause = ManifestChanges {
            error: Some("NoSuchKey: s3://in/x".into()),
            ..ManifestChanges::default()
        };
        assert!(store
            .update_manifest(
                prefix,
                &failed,
                ManifestStatus::Claiming,
                ManifestStatus::Failed,
                &cause,
                later
            )
            .await
            .unwrap());
        let stored = store.get_manifest(prefix, &failed).await.unwrap().unwrap();
        assert_eq!(stored.error.as_deref(), Some("NoSuchKey: s3://in/x"));
        assert!(!stored.needs_sweep);
    }

    async fn files_complete_or_fail_only_for_their_manifest<S: TrackingStore>(
        store: &S,
        prefix: &DatePrefix,
    ) {
        let now = Timestamp(30_000);
        let holder = ManifestId::parse("m-holder").unwrap();
        let other = ManifestId::parse("m-other").unwrap();
        for key in ["ok", "bad"] {
            store
                .track_file(&new_file_record(
                    prefix.clone(),
                    object(key, 1, "e"),
                    now,
                    7,
                ))
                .await
                .unwrap();
            assert!(store.claim_file(prefix, key, &holder, now).await.unwrap());
        }
        assert!(!store
            .complete_file(prefix, "ok", &other, now)
            .await
            .unwrap());
        assert!(store
            .complete_file(prefix, "ok", &holder, now)
            .await
            .unwrap());
        assert!(
            !store
                .complete_file(prefix, "ok", &holder, now)
                .await
                .unwrap(),
            "completes once"
        );
        assert_eq!(
            store.get_file(prefix, "ok").await.unwrap().unwrap().status,
            FileStatus::Processed
        );

        assert_eq!(
            store
                .fail_file(prefix, "bad", &other, 2, now)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .fail_file(prefix, "bad", &holder, 2, now)
                .await
                .unwrap(),
            Some(FileStatus::Pending)
        );
        let file = store.get_file(prefix, "bad").await.unwrap().unwrap();
        assert_eq!(
            (file.status, file.attempts, file.manifest_id),
            (FileStatus::Pending, 1, None)
        );
        assert_eq!(
            store
                .fail_file(prefix, "bad", &holder, 2, now)
                .await
                .unwrap(),
            None,
            "no longer held"
        );
        assert!(
            store.claim_file(prefix, "bad", &other, now).await.unwrap(),
            "pending again: claimable"
        );
        assert_eq!(
            store
                .fail_file(prefix, "bad", &other, 2, now)
                .await
                .unwrap(),
            Some(FileStatus::Failed)
        );
        let file = store.get_file(prefix, "bad").await.unwrap().unwrap();
        assert_eq!((file.status, file.attempts), (FileStatus::Failed, 2));
        assert!(
            !store.claim_file(prefix, "bad", &holder, now).await.unwrap(),
            "failed files are not claimed"
        );
    }

    async fn pending_prefixes_report_the_oldest_file<S: TrackingStore>(
        store: &S,
        a: &DatePrefix,
        b: &DatePrefix,
    ) {
        for (prefix, key, at) in [(a, "1", 300), (a, "2", 100), (b, "3", 200)] {
            store
                .track_file(&new_file_record(
                    prefix.clone(),
                    object(key, 1, "e"),
                    Timestamp(at),
                    7,
                ))
                .await
                .unwrap();
        }
        let mut found = Vec::new();
        for _ in 0..50 {
            found = store.pending_prefixes().await.unwrap();
            let mine: Vec<_> = found
                .iter()
                .filter(|p| &p.date_prefix == a || &p.date_prefix == b)
                .collect();
            if mine.len() == 2 && mine.iter().map(|p| p.count).sum::<u64>() == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let get = |p: &DatePrefix| {
            found
                .iter()
                .find(|x| &x.date_prefix == p)
                .cloned()
                .expect("prefix listed")
        };
        assert_eq!((get(a).oldest, get(a).count), (Timestamp(100), 2));
        assert_eq!((get(b).oldest, get(b).count), (Timestamp(200), 1));
    }

    trait SizeAndStatus {
        fn size_and_status(&self) -> (u64, FileStatus);
    }

    impl SizeAndStatus for FileRecord {
        fn size_and_status(&self) -> (u64, FileStatus) {
            (self.object.size, self.status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        contract::run_all(&MemoryTrackingStore::new(), 0).await;
    }
}
