//! The ledger: tracking version 2 (`docs/TRACKING.md`), exactly once per object version at
//! about one DynamoDB write unit per file. Stage 1 of that plan: the store trait, its layout,
//! an in-memory implementation that bills every request as DynamoDB would, and the contract
//! suite; the DynamoDB implementation is `aws::ledger::DynamoLedger` (feature `aws`). The
//! manifest-builder, the sweep and the converter all run on it.
//!
//! # Model
//!
//! A file is written **once**: a [`Marker`] per object version, naming the arrival [`Batch`]
//! that tracked it. Everything after that happens to batches and manifests, whose cost hundreds
//! of files share:
//!
//! * a builder writes one batch per invocation and date (the refs of every version it saw), then
//!   one marker per version, insert-if-absent: the first batch to write a version's marker owns
//!   the version, a repeat delivery leaves a ref in its own batch that no marker names;
//! * batches live in a partition per `(date, shard)` ([`Shard`]) ordered by [`BatchKey`] (their
//!   creation time first); a per-shard [`Cursor`] says which batches manifests already took;
//! * a [`Ledger::cut`] takes the batches after the cursor up to a chosen one, in one
//!   transaction: the cursor moves (compare-and-set on its old position) and the [`Manifest`]
//!   item is created `starting` with that batch range. An [`OpenManifest`] entry, written just
//!   before ([`Ledger::open`]), lists it for the sweep until it is final ([`Ledger::close`]);
//!   an entry without a manifest (a cut that lost) or of a final one is removed by the sweep.
//!   No per-file claim exists, so none can outlive its manifest;
//! * a manifest ends in one transaction: [`Ledger::complete`] (its files are converted: they
//!   are completed *by* their manifest), or [`Ledger::fail`] (counting an attempt on each poison
//!   version), then [`Ledger::release`], which puts a retry [`Batch`] naming the released
//!   manifest into its shard, after the cursor, so its versions are cut again.
//!
//! Which refs of a batch a manifest holds is decided when it is cut, by reading the markers: a
//! ref counts when its marker names the batch the ref came from (the arrival batch itself, or,
//! expanding a retry batch, the batch of the released range it was read from) and the version
//! is neither superseded nor failed. A retry batch stands for the whole range of the
//! manifest it names (expanded by reading those batches again), so a retry costs one small item
//! however many files the manifest had.
//!
//! # Contract
//!
//! Implementations (DynamoDB for production, [`MemoryLedger`] for unit tests and the
//! simulation) must behave the same for every operation; the suite in `contract` (feature
//! `test-support`) checks it.
//!
//! * [`Ledger::put_marker`] is an atomic insert-if-absent keyed by the version: of any number of
//!   concurrent puts, exactly one returns [`MarkerOutcome::Tracked`]; the others get the marker
//!   that won. A marker's `batch`, `date`, `size` and `etag` never change afterwards.
//! * [`Ledger::put_batch`] is insert-if-absent keyed by `(shard, batch key)`.
//! * Reads of single items, of a shard's batches and of markers are strongly consistent;
//!   listings ([`Ledger::shards`], [`Ledger::open_manifests`]) page, and report items they
//!   could not parse by key instead of failing ([`Page::unreadable`]).
//! * [`Ledger::cut`] succeeds only if the cursor is still where the caller read it and the
//!   manifest id is new; it moves the cursor and creates the manifest atomically, or changes
//!   nothing.
//! * [`Ledger::advance`], [`Ledger::complete`], [`Ledger::fail`] and [`Ledger::release`] change a
//!   manifest only from one of the statuses the caller expects (compare-and-set), each as one
//!   atomic step with everything it says it writes; `false` means nothing was written.
//! * Every operation is idempotent in effect when retried after an error whose outcome the
//!   caller did not see: a lost response of a successful conditional write shows up as
//!   `false`/[`MarkerOutcome::Duplicate`] on the retry, never as a second effect.
//! * [`MemoryLedger::meter`] counts what DynamoDB would bill for each request (see
//!   [`item::size`]): write units per 1 KB of the larger of the item before and after, read
//!   units per 4 KB, transactions twice, failed conditions included.

use std::fmt;
use std::future::Future;

use crate::manifest::ManifestFile;
use crate::types::{ConversionResult, DatePrefix, ManifestId, Timestamp};

/// A ledger operation that failed.
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
        /// `pk/sk` of the item.
        key: String,
        /// Which attribute is missing or invalid, and how.
        detail: String,
    },
    /// A fault injected by a test wrapper (never produced by a real store; only compiled for
    /// tests, with the `test-support` feature).
    #[cfg(any(test, feature = "test-support"))]
    #[error("injected fault in {operation}")]
    Injected {
        /// The trait method that was made to fail, e.g. `put_marker`.
        operation: &'static str,
    },
}

#[cfg(any(test, feature = "test-support"))]
pub mod contract;
pub mod item;
mod memory;
pub mod settle;

pub use memory::{MemoryLedger, Meter, PartitionUnits};

/// Which version of an object: S3's version id in a versioned bucket, the event's `sequencer`
/// in an unversioned one. Two uploads never share either; S3's duplicate notifications repeat
/// both. (The ETag pins reads, but is not an identity: the same content uploaded twice is two
/// versions.)
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// `versionId` of the object in a versioned bucket (`null` for objects uploaded before
    /// versioning was enabled).
    Id(String),
    /// `sequencer` of the event in an unversioned bucket (hexadecimal, ordered per key).
    Sequencer(String),
    /// The ETag, only for events that carry neither (some emulators and replays): the same
    /// content uploaded twice is then one version.
    Etag(String),
}

impl Version {
    /// A version's identity from what an event (or a manifest's file) says about it: the
    /// version id, else the sequencer, else the ETag.
    pub fn choose(version_id: Option<&str>, sequencer: Option<&str>, etag: &str) -> Self {
        match (version_id, sequencer) {
            (Some(id), _) => Version::Id(id.to_string()),
            (None, Some(sequencer)) => Version::Sequencer(sequencer.to_string()),
            (None, None) => Version::Etag(etag.to_string()),
        }
    }

    /// The text stored in items: the version id as is, a sequencer behind `S#`, an ETag behind
    /// `E#` (version ids are URL-safe base64-like text and never contain `#`).
    pub fn encode(&self) -> String {
        match self {
            Version::Id(id) => id.clone(),
            Version::Sequencer(sequencer) => format!("S#{sequencer}"),
            Version::Etag(etag) => format!("E#{etag}"),
        }
    }

    /// Reads [`Version::encode`]'s text back.
    pub fn decode(text: &str) -> Option<Self> {
        if let Some(sequencer) = text.strip_prefix("S#") {
            return (!sequencer.is_empty()).then(|| Version::Sequencer(sequencer.to_string()));
        }
        if let Some(etag) = text.strip_prefix("E#") {
            return Some(Version::Etag(etag.to_string()));
        }
        (!text.is_empty() && !text.contains('#')).then(|| Version::Id(text.to_string()))
    }

    /// The version id to read with `GetObject versionId=…`, when there is one.
    pub fn version_id(&self) -> Option<&str> {
        match self {
            Version::Id(id) => Some(id),
            Version::Sequencer(_) | Version::Etag(_) => None,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Id(id) => write!(f, "version {id}"),
            Version::Sequencer(sequencer) => write!(f, "sequencer {sequencer}"),
            Version::Etag(etag) => write!(f, "ETag {etag}"),
        }
    }
}

/// One object version: the unit of work.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionRef {
    /// Bucket name.
    pub bucket: String,
    /// Object key (decoded). Never contains NUL (S3 keys cannot).
    pub key: String,
    /// Which version.
    pub version: Version,
}

impl VersionRef {
    /// The version a manifest's file names: its version id, else its sequencer, else its ETag
    /// (the same choice [`crate::events::S3Record::version`] made when it was tracked).
    pub fn of_file(file: &ManifestFile) -> Self {
        VersionRef {
            bucket: file.bucket.clone(),
            key: file.key.clone(),
            version: Version::choose(
                file.version_id.as_deref(),
                file.sequencer.as_deref(),
                &file.etag,
            ),
        }
    }
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{} ({})", self.bucket, self.key, self.version)
    }
}

/// A partition of arrival batches: the date the files belong to and a shard number, chosen per
/// builder invocation (not per key, so a batch stays as large as the invocation's delivery).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    /// The `dt=` partition of the files.
    pub date: DatePrefix,
    /// `0..shards`.
    pub number: u16,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:02}", self.date, self.number)
    }
}

/// A batch's place in its shard: creation time in milliseconds (zero-padded, so the text sorts
/// in time order) and a random id, e.g. `0001764065102123#9f1c2a7b`. A retry batch's id is `R`
/// followed by the released manifest's id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchKey(String);

impl BatchKey {
    /// A new key for a batch written at `now`, with 64 random bits from the OS.
    pub fn new(now: Timestamp) -> Self {
        Self::with_random(now, crate::types::os_random())
    }

    /// A key for a batch written at `now` with the given random bits (a simulation draws
    /// them from its seed, so that a run can be repeated).
    pub fn with_random(now: Timestamp, random: u64) -> Self {
        BatchKey(format!("{:016}#{random:016x}", now.0.max(0)))
    }

    /// The key of the retry batch that releases `manifest` at `now`.
    pub fn retry(now: Timestamp, manifest: &ManifestId) -> Self {
        BatchKey(format!("{:016}#R{manifest}", now.0.max(0)))
    }

    /// The largest key of a batch created before `time`: batches with smaller keys are older.
    pub fn before(time: Timestamp) -> Self {
        BatchKey(format!("{:016}", time.0.max(0)))
    }

    /// Reads a stored key back.
    pub fn parse(text: &str) -> Option<Self> {
        let (millis, id) = text.split_once('#')?;
        let valid = millis.len() == 16 && millis.bytes().all(|b| b.is_ascii_digit());
        (valid && !id.is_empty()).then(|| BatchKey(text.to_string()))
    }

    /// When the batch was created.
    pub fn created(&self) -> Timestamp {
        Timestamp(self.0[..16].parse().unwrap_or(0))
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BatchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version as a batch lists it: which batch its marker must name for the ref to count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ref {
    /// The object key (the batch holds the bucket).
    pub key: String,
    /// Which version.
    pub version: Version,
}

/// What a batch holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchContents {
    /// Versions one builder invocation tracked (of one bucket and date); a ref's origin is the
    /// batch itself.
    Arrivals {
        /// Bucket of every ref.
        bucket: String,
        /// The versions, in delivery order.
        refs: Vec<Ref>,
        /// Their sizes summed, as the notifications said (duplicates included): with the refs'
        /// count, an upper bound of what the batch can add to a manifest, so a cut can tell
        /// from the batches alone, before it reads any marker, that not enough has arrived.
        bytes: u64,
    },
    /// Every version the released manifest held, still unconverted: cut again by expanding
    /// the manifest's batch range.
    Retry {
        /// The released manifest.
        manifest: ManifestId,
    },
}

/// An arrival or retry batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Its partition.
    pub shard: Shard,
    /// Its place in the partition.
    pub key: BatchKey,
    /// What it holds.
    pub contents: BatchContents,
    /// When DynamoDB may delete it (seconds since the epoch).
    pub ttl: i64,
}

/// The one record of an object version: written once, by the batch that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The version.
    pub version: VersionRef,
    /// Its owner: only refs coming from this batch count.
    pub batch: BatchKey,
    /// The date partition it is converted into (fixed at the first delivery).
    pub date: DatePrefix,
    /// Size in bytes.
    pub size: u64,
    /// ETag of the version (without quotes): pins reads in an unversioned bucket.
    pub etag: String,
    /// Conversions that failed on this version (it was poison).
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Why the version will never be converted although it arrived (gone or overwritten
    /// before its manifest read it), when it is so.
    pub superseded: Option<String>,
    /// When DynamoDB may delete it (seconds since the epoch).
    pub ttl: i64,
}

impl Marker {
    /// Whether a manifest cut now may take the version.
    pub fn is_live(&self, max_attempts: u32) -> bool {
        self.superseded.is_none() && self.attempts < max_attempts
    }
}

/// What [`Ledger::put_marker`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerOutcome {
    /// The marker is written: the batch owns the version.
    Tracked,
    /// The version was tracked before (a repeated delivery): the marker that stands.
    Duplicate(Box<Marker>),
}

/// How far manifests took a shard's batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Its shard.
    pub shard: Shard,
    /// The last batch a manifest took (or [`Ledger::skip`] passed).
    pub position: BatchKey,
    /// The manifest that took it (`None` when it was skipped: no version in it counted).
    pub last_manifest: Option<ManifestId>,
}

/// Life of a manifest: `starting → running → completed`, or `→ failed → released`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestState {
    /// Cut: its batch range is final, its JSON written; its execution is being started.
    Starting,
    /// Its execution started; the converter owns it.
    Running,
    /// Converted: every version it held is in its output or its error output. Final.
    Completed,
    /// Given up (by the converter on a poison version, by the state machine, or by the sweep
    /// for an execution that ended otherwise); its output must be removed and its versions
    /// released.
    Failed,
    /// Its output removed and its versions handed to a retry batch. Final.
    Released,
}

impl ManifestState {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            ManifestState::Starting => "starting",
            ManifestState::Running => "running",
            ManifestState::Completed => "completed",
            ManifestState::Failed => "failed",
            ManifestState::Released => "released",
        }
    }

    /// Parses a stored value.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "starting" => ManifestState::Starting,
            "running" => ManifestState::Running,
            "completed" => ManifestState::Completed,
            "failed" => ManifestState::Failed,
            "released" => ManifestState::Released,
            _ => return None,
        })
    }

    /// Whether the manifest is settled for good (no open entry lists it).
    pub fn is_final(self) -> bool {
        matches!(self, ManifestState::Completed | ManifestState::Released)
    }
}

/// A manifest item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Id; also its execution's name.
    pub id: ManifestId,
    /// The shard its batches come from.
    pub shard: Shard,
    /// Where it is in its life.
    pub state: ManifestState,
    /// The cursor before the cut: it holds the batches after this one (all, when `None`) ...
    pub after: Option<BatchKey>,
    /// ... up to and including this one.
    pub last: BatchKey,
    /// `s3://bucket/key` of its JSON (written before the cut).
    pub manifest_path: String,
    /// Versions it holds.
    pub file_count: u64,
    /// Their bytes.
    pub total_bytes: u64,
    /// Its execution, once started.
    pub execution_arn: Option<String>,
    /// What the conversion produced, once completed.
    pub result: Option<ConversionResult>,
    /// Why it failed, once failed.
    pub error: Option<String>,
    /// When it was cut.
    pub created_at: Timestamp,
    /// Its last change.
    pub updated_at: Timestamp,
    /// When DynamoDB may delete it (seconds since the epoch).
    pub ttl: i64,
}

/// An open manifest, as the sweep lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenManifest {
    /// The manifest.
    pub id: ManifestId,
    /// When it was cut (the listing's order within a partition).
    pub created_at: Timestamp,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// What parsed.
    pub items: Vec<T>,
    /// Items that did not parse, in place of failing the listing: the caller reports and counts
    /// them, and decides whether it may go past them (a batch it cannot read must stop its
    /// shard's cuts, or its files would be lost; an open entry can be skipped).
    pub unreadable: Vec<Unreadable>,
    /// Where the next page starts (the last sort key read), when the page was cut at the
    /// limit; more items may follow.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// An empty page that continues at `next`.
    pub fn new(next: Option<String>) -> Self {
        Page {
            items: Vec::new(),
            unreadable: Vec::new(),
            next,
        }
    }
}

/// An item a listing could not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Its partition key.
    pub pk: String,
    /// Its sort key: where a listing in key order met it.
    pub sk: String,
    /// What is wrong with it.
    pub error: String,
}

/// A cut: what [`Ledger::cut`] writes in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The new manifest, `starting`; its `after` is the cursor position the cutter read (the
    /// compare-and-set's expected value) and its `last` the cursor's new position.
    pub manifest: Manifest,
}

/// What [`Ledger::advance`] may set besides the status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestChanges {
    /// The execution, once started.
    pub execution_arn: Option<String>,
}

/// A poison version of a failing manifest, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    /// The version that could not be converted.
    pub version: VersionRef,
    /// Why, for people.
    pub reason: String,
}

/// The number of partitions of the open-manifest list: enough to spread the sweep's reads and
/// the cut's writes, few enough to read them all each minute.
pub const OPEN_PARTITIONS: u8 = 16;

/// The most poison versions one [`Ledger::fail`] counts (a transaction holds at most 100
/// items; the manifest and its open entry take two). The rest fail again in the retry.
pub const MAX_POISON_PER_FAILURE: usize = 90;

/// The tracking table, version 2, behind the contract in the module docs.
pub trait Ledger: Send + Sync {
    /// Writes a batch unless one with its key exists in its shard; `false` if one did.
    fn put_batch(&self, batch: &Batch) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Writes a version's marker unless the version has one.
    fn put_marker(
        &self,
        marker: &Marker,
    ) -> impl Future<Output = Result<MarkerOutcome, StoreError>> + Send;

    /// Records that `shard` has batches (idempotent), so the sweep finds it; `ttl` is renewed.
    fn register_shard(
        &self,
        shard: &Shard,
        ttl: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Shards ever registered (and not expired), in `(date, number)` order, from `after`.
    fn shards(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Shard>, StoreError>> + Send;

    /// A shard's cursor; `None` before its first cut.
    fn cursor(
        &self,
        shard: &Shard,
    ) -> impl Future<Output = Result<Option<Cursor>, StoreError>> + Send;

    /// Up to `limit` batches of `shard` with keys in `(after, until]`, in key order.
    fn batches(
        &self,
        shard: &Shard,
        after: Option<&BatchKey>,
        until: &BatchKey,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Batch>, StoreError>> + Send;

    /// The markers of `versions`, in the same order (`None`: no marker).
    fn markers(
        &self,
        versions: &[VersionRef],
    ) -> impl Future<Output = Result<Vec<Option<Marker>>, StoreError>> + Send;

    /// Moves the cursor from `cut.manifest.after` to `cut.manifest.last` and creates the
    /// manifest, atomically; `false` (nothing written) if the cursor moved meanwhile or the
    /// manifest id exists. The caller [`Ledger::open`]ed the manifest first.
    fn cut(&self, cut: &Cut) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Lists a manifest for the sweep (idempotent): before its cut, so that no manifest can
    /// exist unlisted.
    fn open(&self, open: &OpenManifest) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a manifest's open entry (idempotent): once it is final, or when no manifest of
    /// that id exists long after the entry was written (its cut lost).
    fn close(&self, open: &OpenManifest) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves the cursor from `from` to `to` without a manifest (every batch in between holds no
    /// version that counts, e.g. only repeated deliveries), if it is still at `from`.
    fn skip(
        &self,
        shard: &Shard,
        from: Option<&BatchKey>,
        to: &BatchKey,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes `shard`'s cut lease for `owner` until `until` (milliseconds since the epoch),
    /// unless another owner holds one that has not expired at `now`; `true` if taken. Only an
    /// economy, never needed for correctness (the cut's compare-and-set on the cursor is):
    /// concurrent cutters of one shard would each read every pending version's marker and all
    /// but one would lose the transaction. A refused attempt costs one write unit.
    fn lease(
        &self,
        shard: &Shard,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Reads a manifest.
    fn manifest(
        &self,
        id: &ManifestId,
    ) -> impl Future<Output = Result<Option<Manifest>, StoreError>> + Send;

    /// Moves a manifest between open states (`starting → running`, with `changes`) if its
    /// state is one of `expected`.
    fn advance(
        &self,
        id: &ManifestId,
        expected: &[ManifestState],
        to: ManifestState,
        changes: &ManifestChanges,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// `expected → completed` with `result`. The caller then [`Ledger::close`]s the entry.
    fn complete(
        &self,
        id: &ManifestId,
        expected: &[ManifestState],
        result: &ConversionResult,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// `expected → failed` with `error`, counting one attempt on each of `poison` (at most
    /// [`MAX_POISON_PER_FAILURE`]; their markers must exist), atomically. The open entry stays:
    /// the sweep releases the manifest.
    fn fail(
        &self,
        id: &ManifestId,
        expected: &[ManifestState],
        error: &str,
        poison: &[Poison],
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// `failed → released` and `retry` (a [`BatchContents::Retry`] naming the manifest, in its
    /// shard) written, atomically. The caller removed the manifest's output first, and then
    /// [`Ledger::close`]s the entry.
    fn release(
        &self,
        id: &ManifestId,
        retry: &Batch,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records that a version will not be converted and why (it was deleted or overwritten
    /// before its manifest read it); `false` if it has no marker.
    fn supersede(
        &self,
        version: &VersionRef,
        reason: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Open manifests of one partition (`0..OPEN_PARTITIONS`), oldest first, from `after`.
    fn open_manifests(
        &self,
        partition: u8,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<OpenManifest>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_never_collide() {
        for version in [
            Version::Id("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY".into()),
            Version::Id("null".into()),
            Version::Sequencer("0055AED6DCD90281E5".into()),
            Version::Etag("d41d8cd98f00b204e9800998ecf8427e".into()),
            Version::Etag(String::new()),
        ] {
            assert_eq!(Version::decode(&version.encode()), Some(version));
        }
        assert_ne!(
            Version::Id("S".into()).encode(),
            Version::Sequencer(String::new()).encode()
        );
        for bad in ["", "S#", "a#b"] {
            assert_eq!(Version::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn batch_keys_sort_in_time_order_and_parse_back() {
        let early = BatchKey::new(Timestamp(5));
        let late = BatchKey::new(Timestamp(1_764_065_102_123));
        assert!(early < BatchKey::before(Timestamp(6)));
        assert!(BatchKey::before(Timestamp(5)) < early);
        assert!(early < late);
        assert_eq!(late.created(), Timestamp(1_764_065_102_123));
        assert_eq!(BatchKey::parse(late.as_str()), Some(late.clone()));
        let id = ManifestId::parse("m-1").unwrap();
        let retry = BatchKey::retry(Timestamp(7), &id);
        assert!(early < retry && retry < late);
        assert_eq!(BatchKey::parse(retry.as_str()), Some(retry));
        for bad in ["", "12#a", "000000000000000x#a", "0000000000000005#"] {
            assert_eq!(BatchKey::parse(bad), None, "{bad}");
        }
    }
}
