//! The manifest runner in memory: the same code the Lambda and AWS Batch run, over the ledger
//! (`LedgerTracking` over [`MemoryLedger`]) and [`MemoryObjects`].

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use shared::ledger::{
    settle, BatchKey, Ledger, ManifestChanges, ManifestState, Marker, MemoryLedger, Shard,
    VersionRef, OPEN_PARTITIONS,
};
use shared::manifest::{
    manifest_key, ExecutionInput, ManifestDocument, ManifestFile, MANIFEST_FORMAT, MANIFEST_VERSION,
};
use shared::metrics::Metrics;
use shared::types::{DatePrefix, ManifestId, Timestamp};

use super::*;
use crate::objects::{MemoryObjects, ObjectFailure};

/// Polls a future of the in-memory stores to its end: they never wait, so one poll does.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory store future waited"),
    }
}

const INPUT: &str = "in";
const OUTPUT: &str = "out";

struct Fixture {
    runner: Runner<LedgerTracking<MemoryLedger>, MemoryObjects>,
    shard: Shard,
    /// Every version a manifest of this fixture holds, with the batch its marker names.
    tracked: RefCell<Vec<(VersionRef, BatchKey)>>,
    /// The next sequencer an object of an unversioned bucket gets.
    sequencer: RefCell<u64>,
}

impl Fixture {
    fn new() -> Self {
        let vars = [
            ("TRACKING_TABLE", "t"),
            ("OUTPUT_BUCKET", OUTPUT),
            ("OUTPUT_PREFIX", "parquet"),
            ("KMS_KEY_ARN", "alias/pipeline"),
            ("THREADS", "2"),
        ];
        let config = ConverterConfig::from_env(&|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        Fixture {
            runner: Runner {
                tracking: LedgerTracking {
                    ledger: MemoryLedger::new(),
                },
                objects: Arc::new(MemoryObjects::new()),
                config,
            },
            shard: Shard {
                date: DatePrefix::parse("2026-11-25").unwrap(),
                number: 0,
            },
            tracked: RefCell::new(Vec::new()),
            sequencer: RefCell::new(0x0055_AED6_DCD9_0281),
        }
    }

    fn ledger(&self) -> &MemoryLedger {
        &self.runner.tracking.ledger
    }

    /// An object as it arrived in a versioned bucket: the event carried its version id.
    fn object(&self, key: &str, body: impl Into<Vec<u8>>) -> ManifestFile {
        let body = body.into();
        let etag = self.runner.objects.insert(INPUT, key, body.clone());
        let version_id = self.runner.objects.object(INPUT, key).unwrap().version_id;
        ManifestFile {
            bucket: INPUT.into(),
            key: key.into(),
            size: body.len() as u64,
            etag,
            version_id: Some(version_id),
            sequencer: None,
        }
    }

    /// An object as it arrived in an unversioned bucket: the event carried its sequencer, and
    /// reads are pinned to its ETag.
    fn unversioned_object(&self, key: &str, body: impl Into<Vec<u8>>) -> ManifestFile {
        let body = body.into();
        let etag = self.runner.objects.insert(INPUT, key, body.clone());
        let mut next = self.sequencer.borrow_mut();
        *next += 1;
        ManifestFile {
            bucket: INPUT.into(),
            key: key.into(),
            size: body.len() as u64,
            etag,
            version_id: None,
            sequencer: Some(format!("{:018X}", *next)),
        }
    }

    /// What the builder leaves: a batch, the markers, a manifest cut from the batch and
    /// listed, its JSON, and the manifest `running` once its execution started.
    fn manifest(&self, files: &[ManifestFile]) -> ExecutionInput {
        let now = Timestamp::now();
        let id = ManifestId::generate(&self.shard.date, now);
        let key = manifest_key("manifests", &self.shard.date, &id);
        let path = format!("s3://{OUTPUT}/{key}");
        let total_bytes = files.iter().map(|f| f.size).sum();
        let document = ManifestDocument {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            manifest_id: id.clone(),
            date_prefix: self.shard.date.clone(),
            created_at: now.to_rfc3339(),
            file_count: files.len() as u64,
            total_bytes,
            files: files.to_vec(),
        };
        self.runner.objects.insert(OUTPUT, &key, document.to_json());
        let seeded = settle::seed(self.ledger(), &id, &self.shard, files, &path, now);
        let manifest = block_on(seeded).unwrap();
        self.tracked.borrow_mut().extend(
            files
                .iter()
                .map(|f| (VersionRef::of_file(f), manifest.last.clone())),
        );
        let started = ManifestChanges {
            execution_arn: Some(format!("arn:aws:states:us-east-1:1:execution:convert:{id}")),
        };
        let advanced = self.ledger().advance(
            &id,
            &[ManifestState::Starting],
            ManifestState::Running,
            &started,
            now,
        );
        assert!(block_on(advanced).unwrap());
        ExecutionInput {
            manifest_path: path,
            date_prefix: self.shard.date.clone(),
            file_count: files.len() as u64,
            manifest_id: id,
            total_bytes,
        }
    }

    fn run(&self, input: &ExecutionInput) -> Result<RunResult, RunError> {
        let mut metrics = Metrics::new("test");
        block_on(self.runner.run_execution(input, None, &mut metrics))
    }

    fn state(&self, input: &ExecutionInput) -> ManifestState {
        let manifest = block_on(self.ledger().manifest(&input.manifest_id));
        manifest.unwrap().unwrap().state
    }

    fn open_entries(&self) -> usize {
        (0..OPEN_PARTITIONS)
            .map(|p| {
                let page = block_on(self.ledger().open_manifests(p, None, 100)).unwrap();
                page.items.len()
            })
            .sum()
    }

    fn marker(&self, file: &ManifestFile) -> Marker {
        let version = VersionRef::of_file(file);
        let markers = block_on(self.ledger().markers(&[version])).unwrap();
        markers[0].clone().expect("tracked")
    }

    /// Every tracked version's marker, by key: what version 1's file items were. A run never
    /// moves a marker to another batch (only the builder writes `batch`), whatever happened.
    fn markers(&self) -> Vec<Marker> {
        let tracked = self.tracked.borrow();
        let versions: Vec<VersionRef> = tracked.iter().map(|(v, _)| v.clone()).collect();
        let markers = block_on(self.ledger().markers(&versions)).unwrap();
        let mut markers: Vec<Marker> = markers
            .into_iter()
            .zip(tracked.iter())
            .map(|(marker, (version, batch))| {
                let marker = marker.expect("every tracked version has a marker");
                assert_eq!(&marker.batch, batch, "{version}: its batch changed");
                marker
            })
            .collect();
        markers.sort_by(|a, b| a.version.key.cmp(&b.version.key));
        markers
    }

    fn error_records(&self, key: &str) -> Vec<serde_json::Value> {
        let gz = self.runner.objects.object(OUTPUT, key).unwrap().body;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text)
            .unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn parquet_rows(&self, keys: &[String]) -> usize {
        keys.iter()
            .map(|key| {
                let body =
                    bytes::Bytes::from(self.runner.objects.object(OUTPUT, key).unwrap().body);
                let reader = parquet::file::reader::SerializedFileReader::new(body).unwrap();
                parquet::file::reader::FileReader::metadata(&reader)
                    .file_metadata()
                    .num_rows() as usize
            })
            .sum()
    }
}

/// Whether a marker is as the builder wrote it: no attempt counted, not superseded.
fn untouched(marker: &Marker) -> bool {
    marker.attempts == 0 && marker.last_error.is_none() && marker.superseded.is_none()
}

#[test]
fn a_manifest_converts_once_and_records_every_file() {
    let f = Fixture::new();
    let a = f.object("a.ndjson", "{\"id\":1,\"n\":\"x\"}\n{\"id\":2}\nnot json\n");
    let b = f.object("b.ndjson", "{\"id\":3}\n\n");
    let input = f.manifest(&[a, b]);
    assert_eq!(f.open_entries(), 1);

    let run = f.run(&input).unwrap();
    assert_eq!(run.status, "completed");
    let result = &run.result;
    assert_eq!(
        (
            result.lines_read,
            result.rows_written,
            result.rows_rejected,
            result.blank_lines
        ),
        (5, 3, 1, 1)
    );
    assert_eq!(f.parquet_rows(&result.output_keys), 3);
    let error_key = result.error_key.clone().expect("one line was rejected");
    assert!(f.runner.objects.object(OUTPUT, &error_key).is_some());
    assert_eq!(f.state(&input), ManifestState::Completed);
    // Version 2 records the files with their manifest, not one by one: each version is
    // converted because its marker names a batch of the completed manifest (`markers` checks
    // that no marker moved), no attempt is counted and none is superseded, and the manifest
    // has left the sweep's list.
    let markers = f.markers();
    assert_eq!(markers.len(), 2);
    assert!(markers.iter().all(untouched), "{markers:?}");
    assert_eq!(f.open_entries(), 0);
    let stored = block_on(f.ledger().manifest(&input.manifest_id));
    assert_eq!(stored.unwrap().unwrap().result.unwrap(), run.result);

    // A repeated invocation (a retry after a lost response) converts nothing again.
    let again = f.run(&input).unwrap();
    assert_eq!(again.status, "already_completed");
    assert_eq!(again.result.output_keys, result.output_keys);
    assert_eq!(again.result, run.result);
}

#[test]
fn a_retry_removes_what_an_earlier_attempt_wrote_and_this_one_did_not() {
    let f = Fixture::new();
    let a = f.object("a.ndjson", "{\"id\":1}\n");
    let input = f.manifest(&[a]);
    let id = &input.manifest_id;
    let parts = shared::manifest::part_prefix("parquet", &input.date_prefix, id);
    let errors = shared::manifest::error_key("errors", &input.date_prefix, id);
    f.runner
        .objects
        .insert(OUTPUT, &format!("{parts}00007.parquet"), "stale");
    f.runner.objects.insert(OUTPUT, &errors, "stale");

    let run = f.run(&input).unwrap();
    assert_eq!(
        f.runner.objects.keys(OUTPUT, &parts),
        run.result.output_keys
    );
    assert!(run.result.error_key.is_none());
    assert!(f.runner.objects.object(OUTPUT, &errors).is_none());
}

/// Version 1 failed the manifest on a file changed since it was tracked (that file counted an
/// attempt, the others went back to pending). Version 2 differs on purpose: the tracked
/// version is gone and the newer content is a version of its own (tracked and converted by
/// its own manifest), so the tracked one is superseded, recorded in the error output, and the
/// others convert. This is the unversioned bucket's case (reads pinned to the ETag); the
/// versioned bucket's is `a_version_overwritten_before_conversion_is_superseded_and_the_others_convert`,
/// and a file that fails alone while the others wait is
/// `a_corrupt_object_fails_the_manifest_and_counts_one_attempt_on_its_version`.
#[test]
fn a_file_changed_since_it_was_tracked_is_superseded_and_the_others_convert() {
    let f = Fixture::new();
    let a = f.unversioned_object("a.ndjson", "{\"id\":1}\n");
    let b = f.unversioned_object("b.ndjson", "{\"id\":2}\n");
    let input = f.manifest(&[a, b]);
    f.unversioned_object("b.ndjson", "{\"id\":22}\n");

    let run = f.run(&input).unwrap();
    assert_eq!(run.status, "completed");
    assert_eq!(
        (run.result.rows_written, run.result.rows_rejected),
        (1, 1),
        "a's row, and one record for b's superseded version"
    );
    assert_eq!(f.parquet_rows(&run.result.output_keys), 1);
    let records = f.error_records(run.result.error_key.as_deref().unwrap());
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["source"], "s3://in/b.ndjson");
    assert_eq!(records[0]["kind"], "superseded");
    let reason = records[0]["reason"].as_str().unwrap();
    assert!(reason.contains("changed since it was tracked"), "{reason}");
    assert_eq!(f.state(&input), ManifestState::Completed);
    assert_eq!(f.open_entries(), 0);
    let markers = f.markers();
    assert_eq!(markers[0].version.key, "a.ndjson");
    assert!(untouched(&markers[0]), "{:?}", markers[0]);
    assert_eq!(markers[1].version.key, "b.ndjson");
    assert_eq!(
        markers[1].attempts, 0,
        "an overwrite is not a poison failure"
    );
    let superseded = markers[1].superseded.as_deref().unwrap_or_default();
    assert!(
        superseded.contains("changed since it was tracked"),
        "{:?}",
        markers[1]
    );
}

#[test]
fn a_throttled_read_is_retryable_and_changes_no_status() {
    let f = Fixture::new();
    let a = f.object("a.ndjson", "{\"id\":1}\n");
    let input = f.manifest(&[a]);
    f.runner.objects.fail_next(
        "GetObject",
        "a.ndjson",
        ObjectFailure {
            url: "s3://in/a.ndjson".into(),
            operation: "GetObject",
            code: Some("SlowDown".into()),
            message: "reduce your request rate".into(),
            retryable: true,
        },
    );
    let error = f.run(&input).unwrap_err();
    assert_eq!(
        (error.name(), error.retryable()),
        ("ConverterRetryable", true)
    );
    assert_eq!(f.state(&input), ManifestState::Running);
    assert_eq!(f.open_entries(), 1);
    let markers = f.markers();
    assert_eq!(markers.len(), 1);
    assert!(untouched(&markers[0]), "{:?}", markers[0]);

    // The workflow's retry then succeeds.
    assert_eq!(f.run(&input).unwrap().result.rows_written, 1);
    assert_eq!(f.state(&input), ManifestState::Completed);
}

#[test]
fn an_empty_object_is_recorded_as_rejected_not_dropped() {
    let f = Fixture::new();
    let empty = f.object("empty.ndjson", "");
    let input = f.manifest(&[empty]);
    let run = f.run(&input).unwrap();
    assert_eq!((run.result.rows_written, run.result.rows_rejected), (0, 1));
    let key = run.result.error_key.expect("the empty object is recorded");
    let gz = f.runner.objects.object(OUTPUT, &key).unwrap().body;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).unwrap();
    assert!(text.contains("s3://in/empty.ndjson"), "{text}");
    assert!(text.contains("empty"), "{text}");
}

#[test]
fn an_execution_input_naming_another_manifest_is_refused() {
    let f = Fixture::new();
    let a = f.object("a.ndjson", "{\"id\":1}\n");
    let tracked = f.manifest(&[a]);
    let mut input = tracked.clone();
    input.manifest_id = ManifestId::parse("someone-else").unwrap();
    let error = f.run(&input).unwrap_err();
    assert_eq!(error.name(), "ManifestUnreadable");
    // Nothing was recorded: the manifest the document describes is still running and listed,
    // and its version's marker is as the builder wrote it.
    assert_eq!(f.state(&tracked), ManifestState::Running);
    assert_eq!(f.open_entries(), 1);
    assert!(untouched(&f.markers()[0]));
}

#[test]
fn the_batch_entry_reads_the_manifest_by_path_alone() {
    let f = Fixture::new();
    let a = f.object("a.ndjson", "{\"id\":1}\n{\"id\":2}\n");
    let input = f.manifest(&[a]);
    let mut metrics = Metrics::new("test");
    let run = block_on(f.runner.run_path(&input.manifest_path, &mut metrics)).unwrap();
    assert_eq!(run.result.rows_written, 2);
    let missing = block_on(
        f.runner
            .run_path("s3://out/manifests/none.json", &mut metrics),
    );
    assert_eq!(missing.unwrap_err().name(), "ManifestUnreadable");
}

#[test]
fn a_version_overwritten_before_conversion_is_superseded_and_the_others_convert() {
    let f = Fixture::new();
    let a = f.object("a.ndjson", "{\"id\":1}\n");
    let b = f.object("b.ndjson", "{\"id\":2}\n{\"id\":3}\n");
    let objects = [a, b];
    let input = f.manifest(&objects);
    // The producer overwrites b: the tracked version is gone (this store keeps only the
    // current version, as S3 does after the old one is deleted).
    let newer = f.object("b.ndjson", "{\"id\":22}\n");

    let run = f.run(&input).unwrap();
    assert_eq!(run.status, "completed");
    assert_eq!(
        (run.result.rows_written, run.result.rows_rejected),
        (1, 1),
        "a's row, and one record for b's superseded version"
    );
    assert_eq!(f.parquet_rows(&run.result.output_keys), 1);
    let records = f.error_records(run.result.error_key.as_deref().unwrap());
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["source"], "s3://in/b.ndjson");
    assert_eq!(records[0]["kind"], "superseded");
    assert!(records[0]["reason"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    let marker = f.marker(&objects[1]);
    assert!(marker.superseded.is_some(), "{marker:?}");
    assert_eq!(marker.attempts, 0, "an overwrite is not a poison failure");
    assert_eq!(f.state(&input), ManifestState::Completed);
    // The newer version is its own version: untracked here, converted by its own manifest.
    assert_ne!(newer.version_id, objects[1].version_id);
}

#[test]
fn two_versions_of_one_key_are_told_apart() {
    let f = Fixture::new();
    let first = f.object("k.ndjson", "{\"v\":1}\n");
    let second = f.object("k.ndjson", "{\"v\":2}\n{\"v\":2}\n");
    let input = f.manifest(&[first, second]);

    let run = f.run(&input).unwrap();
    assert_eq!((run.result.rows_written, run.result.rows_rejected), (2, 1));
    let records = f.error_records(run.result.error_key.as_deref().unwrap());
    let source = records[0]["source"].as_str().unwrap();
    assert!(
        source.starts_with("s3://in/k.ndjson (version v"),
        "the record names the version: {source}"
    );
}

#[test]
fn a_corrupt_object_fails_the_manifest_and_counts_one_attempt_on_its_version() {
    let f = Fixture::new();
    let good = f.object("good.ndjson", "{\"id\":1}\n");
    // gzip magic, then garbage.
    let bad = f.object(
        "bad.ndjson.gz",
        vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3],
    );
    let (good_version, bad_version) = (VersionRef::of_file(&good), VersionRef::of_file(&bad));
    let input = f.manifest(&[good, bad]);

    let error = f.run(&input).unwrap_err();
    assert_eq!(error.name(), "ManifestFailed");
    assert!(
        error.to_string().contains("s3://in/bad.ndjson.gz"),
        "{error}"
    );
    assert_eq!(f.state(&input), ManifestState::Failed);
    assert_eq!(f.open_entries(), 1, "the sweep releases it");
    let markers = block_on(f.ledger().markers(&[good_version, bad_version])).unwrap();
    let attempts: Vec<u32> = markers
        .iter()
        .map(|m| m.as_ref().unwrap().attempts)
        .collect();
    assert_eq!(attempts, vec![0, 1]);
    // The failing version alone carries the failure; the other waits for the sweep's release.
    let markers = f.markers();
    assert_eq!(markers[0].version.key, "bad.ndjson.gz");
    assert!(markers[0].last_error.is_some(), "{:?}", markers[0]);
    assert!(untouched(&markers[1]), "{:?}", markers[1]);
    // The workflow's retry of a failed manifest writes nothing.
    assert_eq!(f.run(&input).unwrap_err().name(), "ManifestNotRunnable");
}
