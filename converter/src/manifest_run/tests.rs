//! The manifest runner in memory: the same code the Lambda and AWS Batch run, over
//! [`MemoryTrackingStore`] and [`MemoryObjects`].

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use shared::manifest::{
    manifest_key, ExecutionInput, ManifestDocument, ManifestFile, MANIFEST_FORMAT, MANIFEST_VERSION,
};
use shared::metrics::Metrics;
use shared::tracking::{new_file_record, ManifestChanges, MemoryTrackingStore, TrackingStore};
use shared::types::{
    DatePrefix, FileStatus, ManifestId, ManifestRecord, ManifestStatus, ObjectRef, Timestamp,
};

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
    runner: Runner<TableTracking<MemoryTrackingStore>, MemoryObjects>,
    prefix: DatePrefix,
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
                tracking: TableTracking {
                    store: MemoryTrackingStore::new(),
                    max_attempts: config.max_attempts,
                },
                objects: Arc::new(MemoryObjects::new()),
                config,
            },
            prefix: DatePrefix::parse("2026-11-25").unwrap(),
        }
    }

    fn object(&self, key: &str, body: &str) -> ObjectRef {
        let etag = self.runner.objects.insert(INPUT, key, body);
        ObjectRef {
            bucket: INPUT.into(),
            key: key.into(),
            size: body.len() as u64,
            etag,
        }
    }

    /// What the manifest builder leaves: tracked files claimed by a running manifest, and the
    /// manifest document.
    fn manifest(&self, objects: &[ObjectRef]) -> ExecutionInput {
        let store = &self.runner.tracking.store;
        let now = Timestamp::now();
        let id = ManifestId::generate(&self.prefix, now);
        for object in objects {
            let file = new_file_record(self.prefix.clone(), object.clone(), now, 7);
            block_on(store.track_file(&file)).unwrap();
        }
        let record = ManifestRecord {
            date_prefix: self.prefix.clone(),
            manifest_id: id.clone(),
            status: ManifestStatus::Claiming,
            candidates: objects.iter().map(|o| o.key.clone()).collect(),
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
        };
        assert!(block_on(store.create_manifest(&record)).unwrap());
        for object in objects {
            assert!(block_on(store.claim_file(&self.prefix, &object.key, &id, now)).unwrap());
        }
        let total_bytes = objects.iter().map(|o| o.size).sum();
        let document = ManifestDocument {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            manifest_id: id.clone(),
            date_prefix: self.prefix.clone(),
            created_at: now.to_rfc3339(),
            file_count: objects.len() as u64,
            total_bytes,
            files: objects.iter().map(ManifestFile::from).collect(),
        };
        let key = manifest_key("manifests", &self.prefix, &id);
        self.runner.objects.insert(OUTPUT, &key, document.to_json());
        let path = format!("s3://{OUTPUT}/{key}");
        for (from, to) in [
            (ManifestStatus::Claiming, ManifestStatus::Starting),
            (ManifestStatus::Starting, ManifestStatus::Running),
        ] {
            let changes = ManifestChanges {
                manifest_path: Some(path.clone()),
                file_count: Some(objects.len() as u64),
                total_bytes: Some(total_bytes),
                ..ManifestChanges::default()
            };
            let moved = store.update_manifest(&self.prefix, &id, from, to, &changes, now);
            assert!(block_on(moved).unwrap());
        }
        ExecutionInput {
            manifest_path: path,
            date_prefix: self.prefix.clone(),
            file_count: objects.len() as u64,
            manifest_id: id,
            total_bytes,
        }
    }

    fn run(&self, input: &ExecutionInput) -> Result<RunResult, RunError> {
        let mut metrics = Metrics::new("test");
        block_on(self.runner.run_execution(input, None, &mut metrics))
    }

    fn status(&self, input: &ExecutionInput) -> ManifestStatus {
        let record = self
            .runner
            .tracking
            .store
            .get_manifest(&input.date_prefix, &input.manifest_id);
        block_on(record).unwrap().unwrap().status
    }

    fn files(&self) -> Vec<(String, FileStatus, u32)> {
        let mut files: Vec<_> = self
            .runner
            .tracking
            .store
            .all_files()
            .into_iter()
            .map(|f| (f.object.key, f.status, f.attempts))
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files
    }

    fn parquet_rows(&self, keys: &[String]) -> usize {
        parquet_rows(&self.runner.objects, keys)
    }
}

/// Rows in the Parquet parts `keys` of the output bucket, as their footers say.
fn parquet_rows(objects: &MemoryObjects, keys: &[String]) -> usize {
    keys.iter()
        .map(|key| {
            let body = bytes::Bytes::from(objects.object(OUTPUT, key).unwrap().body);
            let reader = parquet::file::reader::SerializedFileReader::new(body).unwrap();
            parquet::file::reader::FileReader::metadata(&reader)
                .file_metadata()
                .num_rows() as usize
        })
        .sum()
}

#[test]
fn a_manifest_converts_once_and_records_every_file() {
    let f = Fixture::new();
    let a = f.object("a.ndjson", "{\"id\":1,\"n\":\"x\"}\n{\"id\":2}\nnot json\n");
    let b = f.object("b.ndjson", "{\"id\":3}\n\n");
    let input = f.manifest(&[a, b]);

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
    assert_eq!(f.status(&input), ManifestStatus::Completed);
    assert!(f
        .files()
        .iter()
        .all(|(_, status, _)| *status == FileStatus::Processed));

    // A repeated invocation (a retry after a lost response) converts nothing again.
    let again = f.run(&input).unwrap();
    assert_eq!(again.status, "already_completed");
    assert_eq!(again.result.output_keys, result.output_keys);
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

#[test]
fn a_file_changed_since_it_was_tracked_fails_alone_and_the_others_wait() {
    let f = Fixture::new();
    let a = f.object("a.ndjson", "{\"id\":1}\n");
    let b = f.object("b.ndjson", "{\"id\":2}\n");
    let input = f.manifest(&[a, b]);
    f.object("b.ndjson", "{\"id\":22}\n");

    let error = f.run(&input).unwrap_err();
    assert_eq!(error.name(), "ManifestFailed");
    assert!(error.to_string().contains("s3://in/b.ndjson"), "{error}");
    assert!(
        error.to_string().contains("changed since it was tracked"),
        "{error}"
    );
    assert_eq!(f.status(&input), ManifestStatus::Failed);
    assert_eq!(
        f.files(),
        vec![
            ("a.ndjson".into(), FileStatus::Pending, 0),
            ("b.ndjson".into(), FileStatus::Pending, 1),
        ]
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
    assert_eq!(f.status(&input), ManifestStatus::Running);
    assert_eq!(
        f.files(),
        vec![("a.ndjson".into(), FileStatus::Manifested, 0)]
    );

    // The workflow's retry then succeeds.
    assert_eq!(f.run(&input).unwrap().result.rows_written, 1);
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
    let mut input = f.manifest(&[a]);
    input.manifest_id = ManifestId::parse("someone-else").unwrap();
    let error = f.run(&input).unwrap_err();
    assert_eq!(error.name(), "ManifestUnreadable");
    assert_eq!(f.files()[0].1, FileStatus::Manifested);
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

// ---------------------------------------------------------------------------------------------
// Version 2: the same runner over the ledger.

mod ledger {
    use shared::ledger::{
        settle, Ledger, ManifestState, Marker, MemoryLedger, Shard, Version, VersionRef,
        OPEN_PARTITIONS,
    };

    use super::*;
    use crate::manifest_run::LedgerTracking;

    struct Fixture {
        runner: Runner<LedgerTracking<MemoryLedger>, MemoryObjects>,
        shard: Shard,
    }

    /// An object as it arrived: its key, and the version and ETag the event carried.
    struct Arrived {
        key: String,
        version_id: String,
        etag: String,
        size: u64,
    }

    impl Fixture {
        fn new() -> Self {
            let old = super::Fixture::new();
            Fixture {
                runner: Runner {
                    tracking: LedgerTracking {
                        ledger: MemoryLedger::new(),
                    },
                    objects: Arc::clone(&old.runner.objects),
                    config: old.runner.config,
                },
                shard: Shard {
                    date: old.prefix,
                    number: 0,
                },
            }
        }

        fn ledger(&self) -> &MemoryLedger {
            &self.runner.tracking.ledger
        }

        fn object(&self, key: &str, body: impl Into<Vec<u8>>) -> Arrived {
            let body = body.into();
            let etag = self.runner.objects.insert(INPUT, key, body.clone());
            let version_id = self.runner.objects.object(INPUT, key).unwrap().version_id;
            Arrived {
                key: key.into(),
                version_id,
                etag,
                size: body.len() as u64,
            }
        }

        fn version(arrived: &Arrived) -> VersionRef {
            VersionRef {
                bucket: INPUT.into(),
                key: arrived.key.clone(),
                version: Version::Id(arrived.version_id.clone()),
            }
        }

        /// What the builder leaves: a batch, the markers, a manifest cut from the batch and
        /// listed, and its JSON.
        fn manifest(&self, objects: &[Arrived]) -> ExecutionInput {
            let now = Timestamp::now();
            let id = ManifestId::generate(&self.shard.date, now);
            let key = manifest_key("manifests", &self.shard.date, &id);
            let path = format!("s3://{OUTPUT}/{key}");
            let total_bytes = objects.iter().map(|o| o.size).sum();
            let document = ManifestDocument {
                format: MANIFEST_FORMAT.into(),
                version: MANIFEST_VERSION,
                manifest_id: id.clone(),
                date_prefix: self.shard.date.clone(),
                created_at: now.to_rfc3339(),
                file_count: objects.len() as u64,
                total_bytes,
                files: objects
                    .iter()
                    .map(|o| ManifestFile {
                        bucket: INPUT.into(),
                        key: o.key.clone(),
                        size: o.size,
                        etag: o.etag.clone(),
                        version_id: Some(o.version_id.clone()),
                        sequencer: None,
                    })
                    .collect(),
            };
            self.runner.objects.insert(OUTPUT, &key, document.to_json());
            let seeded = settle::seed(self.ledger(), &id, &self.shard, &document.files, &path, now);
            block_on(seeded).unwrap();
            ExecutionInput {
                manifest_path: path,
                date_prefix: self.shard.date.clone(),
                file_count: objects.len() as u64,
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

        fn marker(&self, arrived: &Arrived) -> Marker {
            let markers = block_on(self.ledger().markers(&[Self::version(arrived)])).unwrap();
            markers[0].clone().expect("tracked")
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
            super::parquet_rows(&self.runner.objects, keys)
        }
    }

    #[test]
    fn a_manifest_completes_by_its_state_alone_and_closes_its_entry() {
        let f = Fixture::new();
        let a = f.object("a.ndjson", "{\"id\":1}\n{\"id\":2}\n");
        let b = f.object("b.ndjson", "{\"id\":3}\n");
        let input = f.manifest(&[a, b]);
        assert_eq!(f.open_entries(), 1);

        let run = f.run(&input).unwrap();
        assert_eq!(run.status, "completed");
        assert_eq!((run.result.rows_written, run.result.rows_rejected), (3, 0));
        assert_eq!(f.parquet_rows(&run.result.output_keys), 3);
        assert_eq!(f.state(&input), ManifestState::Completed);
        assert_eq!(f.open_entries(), 0);
        let stored = block_on(f.ledger().manifest(&input.manifest_id));
        assert_eq!(stored.unwrap().unwrap().result.unwrap(), run.result);

        let again = f.run(&input).unwrap();
        assert_eq!(again.status, "already_completed");
        assert_eq!(again.result, run.result);
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
        let (good_version, bad_version) = (Fixture::version(&good), Fixture::version(&bad));
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
        // The workflow's retry of a failed manifest writes nothing.
        assert_eq!(f.run(&input).unwrap_err().name(), "ManifestNotRunnable");
    }
}
