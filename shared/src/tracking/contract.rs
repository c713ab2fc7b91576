//! The contract test suite (feature `test-support`), run against every implementation: the
//! in-memory one in this crate's unit tests, the DynamoDB one against a local AWS emulator in
//! `manifest-builder/tests/emulator.rs`. [`run_all`] checks every promise stated in the
//! [module docs](super).

use super::{new_file_record, ManifestChanges, TrackOutcome, TrackingStore};
use crate::types::{
    ConversionResult, DatePrefix, FileRecord, FileStatus, ManifestId, ManifestRecord,
    ManifestStatus, ObjectRef, Timestamp,
};

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
    let keys = |files: Vec<FileRecord>| files.into_iter().map(|f| f.object.key).collect::<Vec<_>>();
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
        std::thread::sleep(std::time::Duration::from_millis(100));
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
    let (first, second) = both(
        store.claim_file(prefix, "f", &m1, now),
        store.claim_file(prefix, "f", &m2, now),
    )
    .await;
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
        std::thread::sleep(std::time::Duration::from_millis(100));
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
        std::thread::sleep(std::time::Duration::from_millis(100));
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

/// Polls two futures together until both are done (what `join!` does), so that the suite
/// needs no async runtime of its own.
async fn both<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    use std::task::Poll;
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut first, mut second) = (None, None);
    std::future::poll_fn(|cx| {
        if first.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                first = Some(v);
            }
        }
        if second.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                second = Some(v);
            }
        }
        match (first.take(), second.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                (first, second) = (x, y);
                Poll::Pending
            }
        }
    })
    .await
}
