//! Model test of the batching protocol: random interleavings of duplicate deliveries,
//! concurrent builders on the same prefixes, injected errors and crashes between any two
//! protocol steps, then redeliveries and sweeps. Afterwards every file is in exactly one
//! started manifest, none is left pending or claimed by a dead manifest, and no execution was
//! started twice.
//!
//! Builders run as tasks on one thread; every call to a collaborator yields a random number
//! of times first, so the tasks interleave at every protocol step. A fault either fails one
//! call (nothing applied, the builder carries on with its error path) or crashes the builder
//! right after a call succeeds (the call is applied, and every later call of that invocation
//! fails: the process is gone).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use manifest_builder::builder::{ManifestBuilder, Message};
use manifest_builder::config::BuilderConfig;
use proptest::prelude::*;
use serde_json::json;
use shared::blobs::{BlobError, BlobStore, MemoryBlobs};
use shared::manifest::{error_key, parse_s3_url, part_prefix, ManifestDocument};
use shared::metrics::Metrics;
use shared::orchestrator::{
    Execution, MemoryOrchestrator, Orchestrator, OrchestratorError, Started,
};
use shared::tracking::{
    ManifestChanges, MemoryTrackingStore, PendingPrefix, StoreError, TrackOutcome, TrackingStore,
};
use shared::types::{
    DatePrefix, FileRecord, FileStatus, ManifestId, ManifestRecord, ManifestStatus, Timestamp,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    /// The call fails and changes nothing.
    Error,
    /// The call succeeds, then the process dies.
    CrashAfter,
    /// The call succeeds but its response is lost: the caller sees an error and carries on.
    LostResponse,
}

/// One invocation's fault plan and its random scheduler.
struct Faults {
    fail_at: Fault,
    calls: AtomicUsize,
    dead: AtomicBool,
    rng: Mutex<u64>,
}

impl Faults {
    fn new(fail_at: Fault, seed: u64) -> Arc<Self> {
        Arc::new(Faults {
            fail_at,
            calls: AtomicUsize::new(0),
            dead: AtomicBool::new(false),
            rng: Mutex::new(seed | 1),
        })
    }

    fn random(&self) -> u64 {
        let mut x = self.rng.lock().unwrap();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Before a call: yield to the other builders, then decide its fate (`Ok(true)`: fail it
    /// after it is applied).
    async fn before(&self) -> Result<bool, ()> {
        for _ in 0..self.random() % 4 {
            tokio::task::yield_now().await;
        }
        if self.dead.load(Ordering::SeqCst) {
            return Err(());
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        match self.fail_at {
            Some((at, FaultKind::Error)) if at == n => {
                STATS.errors.fetch_add(1, Ordering::Relaxed);
                Err(())
            }
            Some((at, FaultKind::CrashAfter | FaultKind::LostResponse)) if at == n => Ok(true),
            _ => Ok(false),
        }
    }

    /// After a call that succeeded: die, or lose the response, if this was the fault point.
    fn after(&self, fail: bool) -> Result<(), ()> {
        if !fail {
            return Ok(());
        }
        if matches!(self.fail_at, Some((_, FaultKind::CrashAfter))) {
            self.dead.store(true, Ordering::SeqCst);
            STATS.crashes.fetch_add(1, Ordering::Relaxed);
        } else {
            STATS.lost_responses.fetch_add(1, Ordering::Relaxed);
        }
        Err(())
    }

    fn crashed(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }
}

struct Stats {
    cases: AtomicU64,
    deliveries: AtomicU64,
    duplicates: AtomicU64,
    invocations: AtomicU64,
    concurrent: AtomicU64,
    errors: AtomicU64,
    crashes: AtomicU64,
    lost_responses: AtomicU64,
    workflow_failures: AtomicU64,
    sweeps: AtomicU64,
    manifests: AtomicU64,
    repairs: AtomicU64,
}

static STATS: Stats = Stats {
    cases: AtomicU64::new(0),
    deliveries: AtomicU64::new(0),
    duplicates: AtomicU64::new(0),
    invocations: AtomicU64::new(0),
    concurrent: AtomicU64::new(0),
    errors: AtomicU64::new(0),
    crashes: AtomicU64::new(0),
    lost_responses: AtomicU64::new(0),
    workflow_failures: AtomicU64::new(0),
    sweeps: AtomicU64::new(0),
    manifests: AtomicU64::new(0),
    repairs: AtomicU64::new(0),
};

macro_rules! guarded {
    ($faults:expr, $operation:literal, $error:expr, $call:expr) => {{
        let crash = $faults.before().await.map_err(|()| $error($operation))?;
        let result = $call.await;
        if result.is_ok() {
            $faults.after(crash).map_err(|()| $error($operation))?;
        }
        result
    }};
}

fn store_fault(operation: &'static str) -> StoreError {
    StoreError::Injected { operation }
}

fn orchestrator_fault(operation: &'static str) -> OrchestratorError {
    OrchestratorError::Injected { operation }
}

fn blob_fault(operation: &'static str) -> BlobError {
    BlobError::Injected { operation }
}

struct FaultyStore(Arc<MemoryTrackingStore>, Arc<Faults>);
struct FaultyOrchestrator(Arc<CountingOrchestrator>, Arc<Faults>);
struct FaultyBlobs(Arc<MemoryBlobs>, Arc<Faults>);

/// Counts how often each execution name was newly started.
#[derive(Default)]
struct CountingOrchestrator {
    inner: MemoryOrchestrator,
    new_starts: Mutex<BTreeMap<String, u32>>,
}

impl TrackingStore for FaultyStore {
    async fn track_file(&self, file: &FileRecord) -> Result<TrackOutcome, StoreError> {
        guarded!(self.1, "track_file", store_fault, self.0.track_file(file))
    }
    async fn get_file(&self, p: &DatePrefix, k: &str) -> Result<Option<FileRecord>, StoreError> {
        guarded!(self.1, "get_file", store_fault, self.0.get_file(p, k))
    }
    async fn pending_files(
        &self,
        p: &DatePrefix,
        limit: usize,
    ) -> Result<Vec<FileRecord>, StoreError> {
        guarded!(
            self.1,
            "pending_files",
            store_fault,
            self.0.pending_files(p, limit)
        )
    }
    async fn pending_prefixes(&self) -> Result<Vec<PendingPrefix>, StoreError> {
        guarded!(
            self.1,
            "pending_prefixes",
            store_fault,
            self.0.pending_prefixes()
        )
    }
    async fn create_manifest(&self, m: &ManifestRecord) -> Result<bool, StoreError> {
        guarded!(
            self.1,
            "create_manifest",
            store_fault,
            self.0.create_manifest(m)
        )
    }
    async fn claim_file(
        &self,
        p: &DatePrefix,
        k: &str,
        m: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        guarded!(
            self.1,
            "claim_file",
            store_fault,
            self.0.claim_file(p, k, m, now)
        )
    }
    async fn complete_file(
        &self,
        p: &DatePrefix,
        k: &str,
        m: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        guarded!(
            self.1,
            "complete_file",
            store_fault,
            self.0.complete_file(p, k, m, now)
        )
    }
    async fn fail_file(
        &self,
        p: &DatePrefix,
        k: &str,
        m: &ManifestId,
        max: u32,
        now: Timestamp,
    ) -> Result<Option<FileStatus>, StoreError> {
        guarded!(
            self.1,
            "fail_file",
            store_fault,
            self.0.fail_file(p, k, m, max, now)
        )
    }
    async fn release_file(
        &self,
        p: &DatePrefix,
        k: &str,
        m: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        guarded!(
            self.1,
            "release_file",
            store_fault,
            self.0.release_file(p, k, m, now)
        )
    }
    async fn update_manifest(
        &self,
        p: &DatePrefix,
        m: &ManifestId,
        expected: ManifestStatus,
        status: ManifestStatus,
        changes: &ManifestChanges,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        guarded!(
            self.1,
            "update_manifest",
            store_fault,
            self.0.update_manifest(p, m, expected, status, changes, now)
        )
    }
    async fn get_manifest(
        &self,
        p: &DatePrefix,
        m: &ManifestId,
    ) -> Result<Option<ManifestRecord>, StoreError> {
        guarded!(
            self.1,
            "get_manifest",
            store_fault,
            self.0.get_manifest(p, m)
        )
    }
    async fn open_manifests(&self) -> Result<Vec<ManifestRecord>, StoreError> {
        guarded!(
            self.1,
            "open_manifests",
            store_fault,
            self.0.open_manifests()
        )
    }
}

impl Orchestrator for FaultyOrchestrator {
    async fn start(&self, name: &str, input: &str) -> Result<Started, OrchestratorError> {
        let started = guarded!(
            self.1,
            "start",
            orchestrator_fault,
            self.0.inner.start(name, input)
        )?;
        if matches!(started, Started::New { .. }) {
            *self
                .0
                .new_starts
                .lock()
                .unwrap()
                .entry(name.to_string())
                .or_default() += 1;
        }
        Ok(started)
    }
    async fn describe(&self, name: &str) -> Result<Option<Execution>, OrchestratorError> {
        guarded!(
            self.1,
            "exists",
            orchestrator_fault,
            self.0.inner.describe(name)
        )
    }
}

impl BlobStore for FaultyBlobs {
    async fn put(&self, b: &str, k: &str, body: Vec<u8>, ct: &str) -> Result<(), BlobError> {
        guarded!(self.1, "put", blob_fault, self.0.put(b, k, body, ct))
    }
    async fn get(&self, b: &str, k: &str) -> Result<Option<Vec<u8>>, BlobError> {
        guarded!(self.1, "get", blob_fault, self.0.get(b, k))
    }
    async fn delete(&self, b: &str, k: &str) -> Result<(), BlobError> {
        guarded!(self.1, "delete", blob_fault, self.0.delete(b, k))
    }
    async fn delete_prefix(&self, b: &str, p: &str, keep: &[String]) -> Result<usize, BlobError> {
        guarded!(
            self.1,
            "delete_prefix",
            blob_fault,
            self.0.delete_prefix(b, p, keep)
        )
    }
}

#[derive(Clone)]
struct World {
    store: Arc<MemoryTrackingStore>,
    orchestrator: Arc<CountingOrchestrator>,
    blobs: Arc<MemoryBlobs>,
    config: BuilderConfig,
}

impl World {
    fn builder(
        &self,
        faults: &Arc<Faults>,
    ) -> ManifestBuilder<FaultyStore, FaultyOrchestrator, FaultyBlobs> {
        ManifestBuilder {
            store: FaultyStore(self.store.clone(), faults.clone()),
            orchestrator: FaultyOrchestrator(self.orchestrator.clone(), faults.clone()),
            blobs: FaultyBlobs(self.blobs.clone(), faults.clone()),
            config: self.config.clone(),
        }
    }
}

fn config(max_files: usize, max_bytes: u64) -> BuilderConfig {
    let vars = BTreeMap::from([
        ("TRACKING_TABLE", "t".to_string()),
        ("MANIFEST_BUCKET", "manifests".to_string()),
        ("MANIFEST_PREFIX", "m".to_string()),
        (
            "STEP_FUNCTION_ARN",
            "arn:aws:states:us-east-1:1:stateMachine:convert".to_string(),
        ),
        ("MAX_FILES_PER_MANIFEST", max_files.to_string()),
        ("MAX_BYTES_PER_MANIFEST", max_bytes.to_string()),
        ("MAX_WAIT_SECONDS", "60".to_string()),
        ("OUTPUT_BUCKET", "output".to_string()),
        ("OUTPUT_PREFIX", "parquet".to_string()),
    ]);
    BuilderConfig::from_env(&|name| vars.get(name).cloned()).unwrap()
}

fn event_body(files: &[(u32, u32, u64)]) -> String {
    let records: Vec<_> = files
        .iter()
        .map(|(prefix, file, size)| {
            json!({
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-11-25T10:00:00Z",
                "s3": {"bucket": {"name": "input"}, "object": {
                    "key": format!("2026-11-{:02}/file+{file}.ndjson", 20 + prefix),
                    "size": size, "eTag": format!("etag-{file}")}}
            })
        })
        .collect();
    json!({"Records": records}).to_string()
}

/// Where (which call of an invocation) and how it fails, if at all.
type Fault = Option<(usize, FaultKind)>;

#[derive(Debug, Clone)]
struct Scenario {
    /// (prefix, file id, size) of every distinct file.
    files: Vec<(u32, u32, u64)>,
    /// Messages: indexes into `files`, with repeats (duplicate deliveries).
    messages: Vec<Vec<usize>>,
    /// How the messages are split over concurrent invocations, and each one's fault.
    invocations: Vec<(Vec<usize>, Fault)>,
    max_files: usize,
    max_bytes: u64,
    sweep_faults: Vec<Fault>,
    /// Running manifests (by index) the workflow fails after the deliveries.
    workflow_failures: Vec<usize>,
    seed: u64,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        2 => Just(None),
        3 => (
            0usize..40,
            prop_oneof![Just(FaultKind::Error), Just(FaultKind::CrashAfter), Just(FaultKind::LostResponse)]
        )
            .prop_map(Some),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1usize..24, 1u32..4, 1usize..6, 40u64..400, any::<u64>())
        .prop_flat_map(|(n_files, n_prefixes, max_files, max_bytes, seed)| {
            let files = prop::collection::vec((0..n_prefixes, 1u64..120), n_files).prop_map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, (p, size))| (p, i as u32, size))
                    .collect::<Vec<_>>()
            });
            // Every file is delivered at least once, some twice or three times.
            let deliveries = prop::collection::vec(1usize..4, n_files).prop_map(|counts| {
                counts
                    .into_iter()
                    .enumerate()
                    .flat_map(|(i, c)| std::iter::repeat_n(i, c))
                    .collect::<Vec<_>>()
            });
            (
                files,
                deliveries,
                Just(max_files),
                Just(max_bytes),
                Just(seed),
            )
        })
        .prop_flat_map(|(files, deliveries, max_files, max_bytes, seed)| {
            let n = deliveries.len();
            (
                Just(files),
                Just(deliveries).prop_shuffle(),
                prop::collection::vec(1usize..4, n),
                prop::collection::vec((0usize..4, fault()), 1..5),
                prop::collection::vec(fault(), 0..3),
                prop::collection::vec(0usize..8, 0..3),
                Just(max_files),
                Just(max_bytes),
                Just(seed),
            )
        })
        .prop_map(
            |(
                files,
                deliveries,
                sizes,
                invocation_plan,
                sweep_faults,
                workflow_failures,
                max_files,
                max_bytes,
                seed,
            )| {
                // Cut the shuffled deliveries into messages of 1-3 records.
                let mut messages = Vec::new();
                let mut rest = &deliveries[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let take = sizes[i % sizes.len()].min(rest.len());
                    messages.push(rest[..take].to_vec());
                    rest = &rest[take..];
                    i += 1;
                }
                // Deal the messages to the invocations round-robin.
                let k = invocation_plan.len();
                let mut invocations: Vec<(Vec<usize>, Fault)> = invocation_plan
                    .iter()
                    .map(|(_, f)| (Vec::new(), *f))
                    .collect();
                for (m, _) in messages.iter().enumerate() {
                    invocations[(m + invocation_plan[m % k].0) % k].0.push(m);
                }
                Scenario {
                    files,
                    messages,
                    invocations,
                    max_files,
                    max_bytes,
                    sweep_faults,
                    workflow_failures,
                    seed,
                }
            },
        )
}

async fn run(scenario: Scenario) -> Result<(), TestCaseError> {
    let world = World {
        store: Arc::new(MemoryTrackingStore::new()),
        orchestrator: Arc::new(CountingOrchestrator::default()),
        blobs: Arc::new(MemoryBlobs::new()),
        config: config(scenario.max_files, scenario.max_bytes),
    };
    let messages: Vec<Message> = scenario
        .messages
        .iter()
        .enumerate()
        .map(|(i, deliveries)| Message {
            message_id: format!("msg-{i}"),
            body: event_body(
                &deliveries
                    .iter()
                    .map(|&d| scenario.files[d])
                    .collect::<Vec<_>>(),
            ),
        })
        .collect();
    STATS.cases.fetch_add(1, Ordering::Relaxed);
    let delivered: usize = scenario.messages.iter().map(Vec::len).sum();
    STATS
        .deliveries
        .fetch_add(delivered as u64, Ordering::Relaxed);
    STATS
        .duplicates
        .fetch_add((delivered - scenario.files.len()) as u64, Ordering::Relaxed);
    if scenario.invocations.len() > 1 {
        STATS.concurrent.fetch_add(1, Ordering::Relaxed);
    }

    // Round 1: all invocations at once, with faults; later rounds redeliver what failed
    // (a crashed invocation never answered, so all of its messages come back).
    let t0 = Timestamp::parse_rfc3339("2026-11-25T10:00:00Z").unwrap();
    let mut plan = scenario.invocations.clone();
    for round in 0..6u64 {
        let now = t0.plus_seconds(round as i64 * 31);
        let local = tokio::task::LocalSet::new();
        let mut handles = Vec::new();
        for (i, (batch, fault)) in plan.iter().enumerate() {
            let faults = Faults::new(
                if round == 0 { *fault } else { None },
                scenario.seed ^ (i as u64) ^ (round << 32),
            );
            let builder = world.builder(&faults);
            let batch: Vec<Message> = batch.iter().map(|&m| messages[m].clone()).collect();
            let ids: Vec<usize> = plan[i].0.clone();
            STATS.invocations.fetch_add(1, Ordering::Relaxed);
            handles.push(local.spawn_local(async move {
                let outcome = builder.process_batch(&batch, now).await;
                if faults.crashed() {
                    ids
                } else {
                    ids.into_iter()
                        .filter(|m| outcome.failed_message_ids.contains(&format!("msg-{m}")))
                        .collect()
                }
            }));
        }
        let mut retry = Vec::new();
        local
            .run_until(async {
                for handle in handles {
                    retry.extend(handle.await.unwrap());
                }
            })
            .await;
        if retry.is_empty() {
            break;
        }
        prop_assert!(
            round < 5,
            "messages still failing without faults: {retry:?}"
        );
        plan = vec![(retry, None)];
    }

    // The workflow gives up on some manifests (the state machine's Catch marks them failed).
    let running: Vec<ManifestRecord> = world
        .store
        .all_manifests()
        .into_iter()
        .filter(|m| m.status == ManifestStatus::Running)
        .collect();
    let mut failed_by_workflow = BTreeSet::new();
    for &index in &scenario.workflow_failures {
        if let Some(manifest) = running.get(index) {
            world.store.fail_by_workflow(
                &manifest.date_prefix,
                &manifest.manifest_id,
                "States.TaskFailed",
            );
            failed_by_workflow.insert(manifest.manifest_id.clone());
            // What a converter that died after committing left behind, and a neighbour
            // manifest's part that must survive.
            for (id, part) in [
                (&manifest.manifest_id, "00000"),
                (&manifest.manifest_id, "00001"),
            ] {
                let key = format!(
                    "{}{part}.parquet",
                    part_prefix("parquet", &manifest.date_prefix, id)
                );
                world
                    .blobs
                    .put("output", &key, b"rows".to_vec(), "application/octet-stream")
                    .await
                    .unwrap();
            }
            let errors = error_key("errors", &manifest.date_prefix, &manifest.manifest_id);
            world
                .blobs
                .put("output", &errors, b"rejects".to_vec(), "application/gzip")
                .await
                .unwrap();
        }
    }
    world
        .blobs
        .put(
            "output",
            "parquet/dt=2026-11-20/other-manifest-00000.parquet",
            b"rows".to_vec(),
            "application/octet-stream",
        )
        .await
        .unwrap();
    STATS
        .workflow_failures
        .fetch_add(failed_by_workflow.len() as u64, Ordering::Relaxed);

    // Sweeps after the repair delay: first with faults, then clean ones.
    let mut sweep_time = t0.plus_seconds(2_000);
    for fault in scenario.sweep_faults.iter().copied().chain([None, None]) {
        let faults = Faults::new(fault, scenario.seed.rotate_left(7));
        let builder = world.builder(&faults);
        let mut metrics = Metrics::new("model");
        let report = builder.sweep(sweep_time, &mut metrics).await;
        STATS.sweeps.fetch_add(1, Ordering::Relaxed);
        STATS.repairs.fetch_add(report.repairs, Ordering::Relaxed);
        sweep_time = sweep_time.plus_seconds(1_000);
    }

    check(&world, &scenario, &failed_by_workflow)
}

fn check(
    world: &World,
    scenario: &Scenario,
    failed_by_workflow: &BTreeSet<ManifestId>,
) -> Result<(), TestCaseError> {
    let files = world.store.all_files();
    let manifests = world.store.all_manifests();
    prop_assert_eq!(
        files.len(),
        scenario.files.len(),
        "each distinct file tracked exactly once"
    );

    let open: Vec<_> = manifests.iter().filter(|m| m.status.is_open()).collect();
    prop_assert!(open.is_empty(), "no manifest left half done: {:?}", open);
    let pending: Vec<_> = files
        .iter()
        .filter(|f| f.status != FileStatus::Manifested)
        .collect();
    prop_assert!(
        pending.is_empty(),
        "every file in a manifest after the final sweep: {:?}",
        pending
    );

    let running: BTreeMap<&ManifestId, &ManifestRecord> = manifests
        .iter()
        .filter(|m| m.status == ManifestStatus::Running)
        .map(|m| (&m.manifest_id, m))
        .collect();
    let executions = world.orchestrator.inner.executions();
    let new_starts = world.orchestrator.new_starts.lock().unwrap().clone();
    for (name, count) in &new_starts {
        prop_assert_eq!(*count, 1, "execution {} started once", name);
    }
    prop_assert_eq!(
        executions.len(),
        running.len() + failed_by_workflow.len(),
        "an execution per running manifest, plus the ones the workflow failed, and no other"
    );
    for manifest in manifests
        .iter()
        .filter(|m| m.status == ManifestStatus::Failed)
    {
        prop_assert!(failed_by_workflow.contains(&manifest.manifest_id));
        let leftovers: Vec<_> = world
            .blobs
            .objects()
            .into_keys()
            .filter(|(bucket, key)| {
                bucket == "output" && key.contains(manifest.manifest_id.as_str())
            })
            .collect();
        prop_assert!(
            leftovers.is_empty(),
            "outputs of failed manifest {} survived its release: {:?}",
            manifest.manifest_id,
            leftovers
        );
        prop_assert!(
            !manifest.needs_sweep,
            "the sweep released failed manifest {}",
            manifest.manifest_id
        );
        for key in &manifest.candidates {
            let file = files.iter().find(|f| &f.object.key == key).unwrap();
            if file.manifest_id.as_ref() != Some(&manifest.manifest_id) {
                continue;
            }
            prop_assert!(
                false,
                "{} still held by failed manifest {}",
                key,
                manifest.manifest_id
            );
        }
    }
    prop_assert!(
        world.blobs.objects().contains_key(&(
            "output".to_string(),
            "parquet/dt=2026-11-20/other-manifest-00000.parquet".to_string()
        )),
        "an unrelated part was deleted"
    );
    let retried = files.iter().filter(|f| f.attempts == 1).count();
    let expected_retried: usize = manifests
        .iter()
        .filter(|m| failed_by_workflow.contains(&m.manifest_id))
        .map(|m| m.file_count as usize)
        .sum();
    prop_assert_eq!(
        retried,
        expected_retried,
        "one attempt counted per file of a failed manifest"
    );
    STATS
        .manifests
        .fetch_add(running.len() as u64, Ordering::Relaxed);

    let objects = world.blobs.objects();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for (id, manifest) in &running {
        prop_assert!(
            executions.contains_key(id.as_str()),
            "running manifest {} has its execution",
            id
        );
        let (bucket, key) = parse_s3_url(manifest.manifest_path.as_deref().unwrap()).unwrap();
        let document =
            ManifestDocument::from_json(&objects[&(bucket.to_string(), key.to_string())]).unwrap();
        let input: serde_json::Value = serde_json::from_str(&executions[id.as_str()]).unwrap();
        prop_assert_eq!(input["file_count"].as_u64(), Some(document.file_count));
        prop_assert_eq!(input["manifest_id"].as_str(), Some(id.as_str()));
        for file in &document.files {
            let tracked = files.iter().find(|f| f.object.key == file.key).unwrap();
            prop_assert_eq!(
                tracked.manifest_id.as_ref(),
                Some(*id),
                "the file's manifest is the one listing it"
            );
            prop_assert!(
                seen.insert((manifest.date_prefix.to_string(), file.key.clone())),
                "{} in two manifests",
                file.key
            );
        }
        prop_assert!(document.file_count as usize <= scenario.max_files);
        prop_assert!(document.total_bytes <= scenario.max_bytes || document.file_count == 1);
    }
    prop_assert_eq!(
        seen.len(),
        scenario.files.len(),
        "every file in exactly one started manifest"
    );
    Ok(())
}

#[test]
fn every_file_ends_in_exactly_one_started_manifest() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1000);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let result = runner.run(&scenario(), |scenario| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(scenario))
    });
    let s = &STATS;
    eprintln!(
        "model coverage: {} cases, {} deliveries ({} duplicates), {} invocations ({} cases with concurrent builders), \
         {} injected errors, {} crashes, {} lost responses, {} manifests failed by the workflow, {} sweeps ({} repairs), \
         {} manifests started",
        s.cases.load(Ordering::Relaxed),
        s.deliveries.load(Ordering::Relaxed),
        s.duplicates.load(Ordering::Relaxed),
        s.invocations.load(Ordering::Relaxed),
        s.concurrent.load(Ordering::Relaxed),
        s.errors.load(Ordering::Relaxed),
        s.crashes.load(Ordering::Relaxed),
        s.lost_responses.load(Ordering::Relaxed),
        s.workflow_failures.load(Ordering::Relaxed),
        s.sweeps.load(Ordering::Relaxed),
        s.repairs.load(Ordering::Relaxed),
        s.manifests.load(Ordering::Relaxed),
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
