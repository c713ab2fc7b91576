//! Tracking version 2 (`docs/TRACKING.md`): tracking arrivals as batches, cutting manifests
//! from a shard's batches, and the sweep that starts, reconciles and releases manifests, over
//! the [`Ledger`]. Stage 2 of the plan: this is the protocol the deterministic simulation
//! checks; the Lambda still runs [`crate::builder`] until the DynamoDB ledger lands.
//!
//! # Protocol (each step's crash leaves a state the next step or the sweep completes)
//!
//! * **Track** ([`Batching::track`]): one batch item per delivery and date, then one marker per
//!   version, insert-if-absent. A version belongs to the first batch whose marker write won; a
//!   repeated delivery only adds a ref that no marker names. A delivery succeeds once all its
//!   markers are written (or found): otherwise SQS delivers it again, which writes a new batch.
//! * **Cut** ([`Batching::cut`]): read the shard's cursor, then its batches older than
//!   `settle_seconds` (every marker of an older batch is written: no builder lives that long),
//!   keep the refs whose marker names their batch and is live, take whole batches until a
//!   manifest is full (or the oldest waited `max_wait_seconds`), write the manifest JSON, and
//!   move the cursor in the same transaction that creates the manifest. Deciding costs reads
//!   only; losing the race to another cutter costs one failed transaction and an orphan JSON,
//!   deleted.
//! * **Start**: the execution is named after the manifest, so repeating a start cannot run it
//!   twice; `starting → running` records it. A manifest is never undone: one that could not be
//!   started is started by the sweep.
//! * **Sweep** ([`Batching::sweep`]): every open manifest is looked at: a `starting` one is
//!   started, a `running` one whose execution ended without settling it is failed, a `failed`
//!   one, once no converter of it can still be alive, has its outputs removed and its versions
//!   handed to a retry batch. Then every registered shard is cut (so a quiet shard's batches
//!   are cut after `max_wait_seconds` without a new arrival).

use std::collections::BTreeSet;
use std::sync::Mutex;

use shared::blobs::{BlobError, BlobStore};
use shared::ledger::{Ledger, Shard, StoreError};
use shared::manifest::OutputLocations;
use shared::orchestrator::{Orchestrator, OrchestratorError};

mod cut;
mod sweep;
mod track;

pub use cut::CutReport;
pub use sweep::SweepReport;
pub use track::{Arrival, Tracked};

/// Metric names (EMF).
pub mod metric {
    /// Versions tracked for the first time.
    pub const VERSIONS_TRACKED: &str = "VersionsTracked";
    /// Repeated deliveries of a tracked version.
    pub const DUPLICATES: &str = "DuplicateDeliveries";
    /// Manifests cut.
    pub const MANIFESTS_CUT: &str = "ManifestsCut";
    /// Versions in the manifests cut.
    pub const FILES_MANIFESTED: &str = "FilesManifested";
    /// Manifests whose execution started and that were moved to `running`.
    pub const MANIFESTS_STARTED: &str = "ManifestsStarted";
    /// Cuts lost to another cutter (harmless; many mean too many cutters on one shard).
    pub const CUTS_LOST: &str = "CutsLost";
    /// Cuts not attempted because another cutter held the shard's lease.
    pub const CUTS_DEFERRED: &str = "CutsDeferred";
    /// Refs dropped at a cut: repeated deliveries, and batches of a builder that crashed
    /// before writing a marker (its message was delivered again).
    pub const REFS_DROPPED: &str = "RefsDropped";
    /// Items a listing could not parse (alarmed: a batch that cannot be read stops its shard).
    pub const UNREADABLE_ITEMS: &str = "UnreadableItems";
    /// Manifests the sweep failed because their execution ended without settling them.
    pub const MANIFESTS_RECONCILED: &str = "ManifestsReconciled";
    /// Failed manifests whose outputs were removed and versions handed to a retry batch.
    pub const MANIFESTS_RELEASED: &str = "ManifestsReleased";
    /// Steps of the sweep that failed (retried at the next sweep).
    pub const SWEEP_ERRORS: &str = "SweepErrors";
    /// Versions of a delivery not tracked because the invocation's time budget ran out
    /// (their messages are delivered again; many mean a timeout too short for the batch size).
    pub const TRACKING_OUT_OF_TIME: &str = "TrackingOutOfTime";
}

/// Thresholds and timings of the protocol.
#[derive(Debug, Clone)]
pub struct BatchingConfig {
    /// Shards per date: a delivery's batch goes to one of them (spreads the batch writes of a
    /// busy day over partitions; fewer shards make fuller manifests on quiet days).
    pub shards: u16,
    /// Batches younger than this are not cut yet: longer than any builder invocation lives
    /// plus clock skew, so every marker of an older batch is written.
    pub settle_seconds: i64,
    /// Files per manifest, at most (a single larger batch forms a manifest of its own).
    pub max_files: usize,
    /// Bytes per manifest, at most (same exception).
    pub max_bytes: u64,
    /// A manifest that is not full is cut once its oldest batch waited this long.
    pub max_wait_seconds: i64,
    /// A version whose conversions failed this often is given up (recorded `failed`).
    pub max_attempts: u32,
    /// How long items are kept.
    pub ttl_days: u32,
    /// A `starting` manifest unchanged this long is started by the sweep: longer than a
    /// builder invocation lives, so a builder still at work is not overtaken.
    pub repair_after_seconds: i64,
    /// A `running` manifest unchanged this long has its execution looked up.
    pub reconcile_after_seconds: i64,
    /// A `failed` manifest is released this long after it failed: longer than any converter
    /// (Lambda timeout, Batch job timeout) of it can still be running, so nothing writes to
    /// its output prefix after the sweep cleared it.
    pub release_after_seconds: i64,
    /// Bucket of the manifest JSON.
    pub manifest_bucket: String,
    /// Key prefix of the manifest JSON (may be empty).
    pub manifest_prefix: String,
    /// Where converters write: what a release removes.
    pub outputs: OutputLocations,
}

impl BatchingConfig {
    fn ttl(&self, now: shared::types::Timestamp) -> i64 {
        now.plus_seconds(i64::from(self.ttl_days) * 86_400)
            .unix_seconds()
    }
}

/// A failure of one protocol step.
#[derive(Debug, thiserror::Error)]
pub enum BatchingError {
    /// The ledger failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing or removing objects failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Starting or looking up an execution failed.
    #[error(transparent)]
    Orchestrator(#[from] OrchestratorError),
    /// The invocation's time budget ran out before this version's marker was attempted: it
    /// is not tracked, and its message must be delivered again.
    #[error("not tracked: the invocation's time budget ran out first")]
    OutOfTime,
    /// A shard cannot be cut past an item that does not parse (its files would be lost).
    #[error("shard {shard}: batch {key} cannot be read ({error}); manifests of this shard wait until it is repaired")]
    Blocked {
        /// The shard.
        shard: String,
        /// The unreadable item's `pk/sk`.
        key: String,
        /// What is wrong with it.
        error: String,
    },
}

/// The protocol's parties' shared state: the stores and the configuration, created once per
/// process.
pub struct Batching<L, B, O> {
    /// The ledger.
    pub ledger: L,
    /// Manifest JSON, and the outputs a release removes.
    pub blobs: B,
    /// Starts and describes executions, named after manifests.
    pub orchestrator: O,
    /// Thresholds and timings.
    pub config: BatchingConfig,
    /// Shards this process registered (each is registered once per process).
    registered: Mutex<BTreeSet<Shard>>,
    /// Random bits of batch keys and manifest ids: the OS's, or a simulation's seeded source.
    random: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl<L: Ledger, B: BlobStore, O: Orchestrator> Batching<L, B, O> {
    /// The protocol over these stores.
    pub fn new(ledger: L, blobs: B, orchestrator: O, config: BatchingConfig) -> Self {
        Batching {
            ledger,
            blobs,
            orchestrator,
            config,
            registered: Mutex::new(BTreeSet::new()),
            random: Box::new(shared::types::os_random),
        }
    }

    /// Draws the random bits of keys and ids from `random` instead of the OS (a simulation's
    /// seeded source, so a run can be repeated exactly).
    pub fn with_random(mut self, random: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.random = Box::new(random);
        self
    }

    fn batch_key(&self, now: shared::types::Timestamp) -> shared::ledger::BatchKey {
        shared::ledger::BatchKey::with_random(now, (self.random)())
    }

    fn manifest_id(
        &self,
        date: &shared::types::DatePrefix,
        now: shared::types::Timestamp,
    ) -> shared::types::ManifestId {
        shared::types::ManifestId::with_random(date, now, (self.random)())
    }
}
