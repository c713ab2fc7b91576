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
    runner: Runner<MemoryTrackingStore, MemoryObjects>,
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
                store: MemoryTrackingStore::new(),
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
        let store = &self.runner.store;
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
            .store
            .get_manifest(&input.date_prefix, &input.manifest_id);
        block_on(record).unwrap().unwrap().status
    }

    fn files(&self) -> Vec<(String, FileStatus, u32)> {
        let mut files: Vec<_> = self
            .runner
            .store
            .all_files()
            .into_iter()
            .map(|f| (f.object.key, f.status, f.attempts))
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files
    }

    fn parquet_rows(&self, keys: &[String]) -> usize {
        keys.iter()
            .map(|key| {
                let body = self.runner.objects.object(OUTPUT, key).unwrap().body;
                let body = bytes::Bytes::from(body);
                let reader = parquet::file::reader::SerializedFileReader::new(body).unwrap();
                parquet::file::reader::FileReader::metadata(&reader)
                    .file_metadata()
                    .num_rows() as usize
            })
            .sum()
    }
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
