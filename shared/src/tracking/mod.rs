//! The tracking store: one record per file and per manifest, so every file is converted by
//! exactly one manifest. The table's layout is in [`crate::table`]; the README's "Tracking
//! table" section describes it for people.
//!
//! # Protocol
//!
//! A file is tracked `pending` when its S3 event arrives. The manifest-builder records a
//! manifest `claiming` with the keys it is about to claim (its intent, so a crash can always be
//! undone), claims each file `pending → manifested`, writes the manifest JSON, moves the
//! manifest `starting` and starts its execution (named after the manifest id, so a repeated
//! start cannot run it twice), then `running`. The converter completes the files
//! (`processed`) and the manifest (`completed`), or fails it: each file counts an attempt and
//! goes back to `pending`, or to `failed` once it reaches the maximum. When the converter
//! cannot settle the manifest itself, the state machine's `MarkFailed` task marks it `failed`
//! and hands it to the sweep (see [`crate::table::v1::WORKFLOW_FAILED_FROM`]). The sweep repairs
//! what a dead builder left: a stale `claiming` manifest is abandoned (its files released), a
//! stale `starting` one is started, a `failed` one has its files released.
//!
//! # Contract
//!
//! Implementations (DynamoDB for production, [`MemoryTrackingStore`] for unit tests) must
//! provide, for every operation, the same observable behaviour; the contract test suite in
//! `contract` (feature `test-support`) checks it against both.
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

use std::future::Future;

use crate::types::{
    ConversionResult, DatePrefix, FileRecord, FileStatus, ManifestId, ManifestRecord,
    ManifestStatus, ObjectRef, Timestamp,
};

#[cfg(any(test, feature = "test-support"))]
pub mod contract;
mod memory;

pub use memory::MemoryTrackingStore;

/// A tracking-store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing service returned an error or could not be reached.
    #[error("tracking table {table}: {operation} failed: {message}")]
    Service {
        /// Name of the DynamoDB table (or of the store) the request went to.
        table: String,
        /// The service's operation name, e.g. `PutItem`, `UpdateItem`, `Query`.
        operation: &'static str,
        /// The service's description of the problem.
        message: String,
    },
    /// An item did not have the expected shape.
    #[error("tracking table {table}: malformed item {key}: {detail}")]
    Malformed {
        /// Name of the DynamoDB table the item was read from.
        table: String,
        /// `date_prefix/file_key` of the item (parts that are missing are empty).
        key: String,
        /// Which attribute is missing or invalid, and how.
        detail: String,
    },
    /// A fault injected by a test wrapper (never produced by a real store; only compiled for
    /// tests, with the `test-support` feature).
    #[cfg(any(test, feature = "test-support"))]
    #[error("injected fault in {operation}")]
    Injected {
        /// The trait method that was made to fail, e.g. `claim_file`.
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
    /// The date prefix (partition) the pending files belong to.
    pub date_prefix: DatePrefix,
    /// Creation time of its oldest pending file.
    pub oldest: Timestamp,
    /// How many pending files the index listed (may lag the table by a moment).
    pub count: u64,
}

/// Fields a manifest update may set, besides its status and `updated_at`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestChanges {
    /// `s3://bucket/key` of the manifest JSON, once written.
    pub manifest_path: Option<String>,
    /// Number of files the manifest claimed (final once it is `starting`).
    pub file_count: Option<u64>,
    /// Sum of the sizes of those files, in bytes.
    pub total_bytes: Option<u64>,
    /// ARN of the Step Functions execution that runs the manifest.
    pub execution_arn: Option<String>,
    /// Counts and outputs of a completed conversion.
    pub result: Option<ConversionResult>,
    /// Why the manifest failed, for people (an error message, not parsed).
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

    /// Every manifest the sweep must look at (`needs_sweep`): those `claiming` or `starting`, and
    /// those the state machine marked `failed` whose files the sweep has not released yet. A
    /// manifest leaves the list when [`TrackingStore::update_manifest`] moves it to a status
    /// that is not open (`failed → failed` is how the sweep acknowledges a release). Read from a
    /// secondary index: may be slightly stale, like [`TrackingStore::pending_files`].
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
