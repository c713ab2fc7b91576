//! The ledger's contract suite (feature `test-support`), run against every implementation.
//! [`run_all`] checks each promise of the [module docs](super); `plant` stores a raw item the
//! way the implementation's backend would (how a test makes an item that does not parse).

use super::item::{self, attr, Item, Value};
use super::{
    Batch, BatchContents, BatchKey, Cut, Ledger, Manifest, ManifestChanges, ManifestState, Marker,
    MarkerOutcome, OpenManifest, Poison, Ref, Shard, Version, VersionRef,
};
use crate::types::{ConversionResult, DatePrefix, ManifestId, Timestamp};

/// Runs every contract check against `ledger`. `seed` keeps the dates, buckets and ids of
/// concurrent runs against one table apart.
pub async fn run_all<L: Ledger>(ledger: &L, seed: u32, plant: impl Fn(Item)) {
    let fixture = Fixture::new(seed);
    markers_are_written_once(ledger, &fixture).await;
    batches_are_inserted_once_and_listed_in_key_order(ledger, &fixture).await;
    batch_ranges_exclude_after_include_until_and_page_to_the_end(ledger, &fixture).await;
    cuts_move_the_cursor_only_from_where_it_was_read(ledger, &fixture).await;
    manifests_change_only_from_an_expected_state(ledger, &fixture).await;
    failures_count_each_poison_once_and_release_hands_over(ledger, &fixture).await;
    superseding_needs_a_marker(ledger, &fixture).await;
    a_lease_is_exclusive_until_it_expires(ledger, &fixture).await;
    shards_are_registered_once_and_listings_skip_unreadable_items(ledger, &fixture, plant).await;
}

struct Fixture {
    seed: u32,
    bucket: String,
}

impl Fixture {
    fn new(seed: u32) -> Self {
        Fixture {
            seed,
            bucket: format!("contract-{seed}"),
        }
    }

    fn shard(&self, number: u16) -> Shard {
        Shard {
            date: DatePrefix::parse(&format!("20{:02}-01-15", 30 + self.seed % 60))
                .expect("valid date"),
            number,
        }
    }

    fn version(&self, key: &str, version: &str) -> VersionRef {
        VersionRef {
            bucket: self.bucket.clone(),
            key: key.into(),
            version: Version::Id(version.into()),
        }
    }

    fn id(&self, name: &str) -> ManifestId {
        ManifestId::parse(&format!("c{}-{name}", self.seed)).expect("valid id")
    }

    fn marker(&self, version: &VersionRef, batch: &BatchKey) -> Marker {
        Marker {
            version: version.clone(),
            batch: batch.clone(),
            date: self.shard(0).date,
            size: 100,
            etag: "etag".into(),
            attempts: 0,
            last_error: None,
            superseded: None,
            ttl: 4_000_000_000,
        }
    }

    fn batch(&self, shard: &Shard, at: i64, keys: &[&str]) -> Batch {
        Batch {
            shard: shard.clone(),
            key: BatchKey::new(Timestamp(at)),
            contents: BatchContents::Arrivals {
                bucket: self.bucket.clone(),
                refs: keys
                    .iter()
                    .map(|k| Ref {
                        key: (*k).into(),
                        version: Version::Id("v1".into()),
                    })
                    .collect(),
                bytes: 1_000 * keys.len() as u64,
            },
            ttl: 4_000_000_000,
        }
    }

    fn manifest(
        &self,
        id: &ManifestId,
        shard: &Shard,
        after: Option<&Batch>,
        last: &Batch,
    ) -> Manifest {
        Manifest {
            id: id.clone(),
            shard: shard.clone(),
            state: ManifestState::Starting,
            after: after.map(|b| b.key.clone()),
            last: last.key.clone(),
            manifest_path: format!("s3://manifests/{id}.json"),
            file_count: 2,
            total_bytes: 200,
            execution_arn: None,
            result: None,
            error: None,
            created_at: Timestamp(1_764_460_800_000),
            updated_at: Timestamp(1_764_460_800_000),
            ttl: 4_000_000_000,
        }
    }

    /// A shard with one cut manifest `starting`, whose batch holds `<name>/a` and `<name>/b`,
    /// both tracked.
    async fn started<L: Ledger>(&self, ledger: &L, number: u16, name: &str) -> (Manifest, Batch) {
        let shard = self.shard(number);
        let keys = [format!("{name}/a"), format!("{name}/b")];
        let batch = self.batch(&shard, 1_000, &[&keys[0], &keys[1]]);
        assert!(ledger.put_batch(&batch).await.expect("put_batch"));
        for key in &keys {
            let marker = self.marker(&self.version(key, "v1"), &batch.key);
            ledger.put_marker(&marker).await.expect("put_marker");
        }
        let manifest = self.manifest(&self.id(name), &shard, None, &batch);
        ledger.open(&entry(&manifest)).await.expect("open");
        let cut = Cut {
            manifest: manifest.clone(),
        };
        assert!(ledger.cut(&cut).await.expect("cut"), "a first cut succeeds");
        (manifest, batch)
    }
}

fn entry(manifest: &Manifest) -> OpenManifest {
    OpenManifest {
        id: manifest.id.clone(),
        created_at: manifest.created_at,
    }
}

async fn open_ids<L: Ledger>(ledger: &L) -> Vec<ManifestId> {
    let mut ids = Vec::new();
    for partition in 0..super::OPEN_PARTITIONS {
        let mut after: Option<String> = None;
        loop {
            let page = ledger
                .open_manifests(partition, after.as_deref(), 2)
                .await
                .expect("open_manifests");
            ids.extend(page.items.into_iter().map(|o| o.id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    ids
}

async fn markers_are_written_once<L: Ledger>(ledger: &L, f: &Fixture) {
    let first = BatchKey::new(Timestamp(1));
    let second = BatchKey::new(Timestamp(2));
    let version = f.version("markers/x", "v1");
    let marker = f.marker(&version, &first);
    assert_eq!(
        ledger.put_marker(&marker).await.expect("put_marker"),
        MarkerOutcome::Tracked
    );
    let mut again = f.marker(&version, &second);
    again.size = 999;
    assert_eq!(
        ledger.put_marker(&again).await.expect("put_marker"),
        MarkerOutcome::Duplicate(Box::new(marker.clone())),
        "a repeat returns the marker that stands, unchanged"
    );
    let other_version = f.version("markers/x", "v2");
    let unknown = f.version("markers/none", "v1");
    assert_eq!(
        ledger
            .put_marker(&f.marker(&other_version, &second))
            .await
            .expect("put_marker"),
        MarkerOutcome::Tracked,
        "another version of the same key is another unit of work"
    );
    let read = ledger
        .markers(&[unknown, version.clone(), other_version.clone()])
        .await
        .expect("markers");
    assert_eq!(read[0], None);
    assert_eq!(read[1].as_ref(), Some(&marker));
    assert_eq!(read[2].as_ref().map(|m| &m.batch), Some(&second));
}

async fn batches_are_inserted_once_and_listed_in_key_order<L: Ledger>(ledger: &L, f: &Fixture) {
    let shard = f.shard(1);
    let batches: Vec<Batch> = (1..=3)
        .map(|n| f.batch(&shard, n * 1_000, &["k"]))
        .collect();
    for batch in batches.iter().rev() {
        assert!(ledger.put_batch(batch).await.expect("put_batch"));
    }
    assert!(
        !ledger.put_batch(&batches[0]).await.expect("put_batch"),
        "insert-if-absent"
    );
    let until = BatchKey::before(Timestamp(3_000));
    let all = ledger
        .batches(&shard, None, &until, 10)
        .await
        .expect("batches");
    assert_eq!(
        all.items,
        batches[..2],
        "only batches created before `until`, in order"
    );
    let page = ledger
        .batches(&shard, None, &until, 1)
        .await
        .expect("batches");
    assert_eq!(page.items, batches[..1]);
    let next = BatchKey::parse(
        page.next
            .as_deref()
            .expect("a page cut at its limit says where"),
    )
    .expect("the next position is a batch key");
    let rest = ledger
        .batches(&shard, Some(&next), &BatchKey::before(Timestamp(9_000)), 10)
        .await
        .expect("batches");
    assert_eq!(rest.items, batches[1..]);
    let other = ledger
        .batches(&f.shard(2), None, &until, 10)
        .await
        .expect("batches");
    assert!(other.items.is_empty(), "shards are apart");
}

/// The edges of `(after, until]` and of paging, where a store's range query (an exclusive
/// start key, a key condition on the sort key) could be off by one.
async fn batch_ranges_exclude_after_include_until_and_page_to_the_end<L: Ledger>(
    ledger: &L,
    f: &Fixture,
) {
    let shard = f.shard(10);
    let b: Vec<Batch> = (1..=3)
        .map(|n| f.batch(&shard, n * 1_000, &["k"]))
        .collect();
    for batch in &b {
        assert!(ledger.put_batch(batch).await.expect("put_batch"));
    }
    let shard = &shard;
    let list = |after: Option<BatchKey>, until: BatchKey, limit: usize| async move {
        ledger
            .batches(shard, after.as_ref(), &until, limit)
            .await
            .expect("batches")
    };
    let keys = |page: &super::Page<Batch>| -> Vec<BatchKey> {
        page.items.iter().map(|b| b.key.clone()).collect()
    };
    let end = BatchKey::before(Timestamp(9_000));

    let page = list(None, b[1].key.clone(), 10).await;
    assert_eq!(
        keys(&page),
        [b[0].key.clone(), b[1].key.clone()],
        "until is included"
    );
    assert_eq!(page.next, None, "a page short of its limit is the last");
    let page = list(Some(b[0].key.clone()), b[1].key.clone(), 10).await;
    assert_eq!(keys(&page), [b[1].key.clone()], "after is excluded");
    let page = list(Some(b[1].key.clone()), b[1].key.clone(), 10).await;
    assert!(
        page.items.is_empty() && page.next.is_none(),
        "after = until: {page:?}"
    );
    let page = list(Some(b[2].key.clone()), b[1].key.clone(), 10).await;
    assert!(
        page.items.is_empty() && page.next.is_none(),
        "after > until: {page:?}"
    );
    let between = BatchKey::before(Timestamp(1_500));
    let page = list(Some(between), end.clone(), 10).await;
    assert_eq!(
        keys(&page),
        [b[1].key.clone(), b[2].key.clone()],
        "after need not be a stored key"
    );
    let page = list(None, end.clone(), 0).await;
    assert!(
        page.items.is_empty(),
        "a limit of 0 reads nothing: {page:?}"
    );

    let page = list(None, end.clone(), 2).await;
    assert_eq!(keys(&page), [b[0].key.clone(), b[1].key.clone()]);
    assert_eq!(
        page.next.as_deref(),
        Some(b[1].key.as_str()),
        "cut at the limit"
    );
    let next = BatchKey::parse(page.next.as_deref().unwrap_or_default()).expect("a batch key");
    let page = list(Some(next), end.clone(), 2).await;
    assert_eq!(keys(&page), [b[2].key.clone()]);
    assert_eq!(page.next, None);

    // A range that ends exactly at the limit: DynamoDB says where to go on (it stopped at the
    // limit without looking further), an emulator or the memory store may know it is the end.
    // Either way, following `next` ends with nothing read twice.
    let page = list(None, b[2].key.clone(), 3).await;
    assert_eq!(page.items, b, "a page that ends exactly at the limit");
    if let Some(next) = page.next.as_deref() {
        let next = BatchKey::parse(next).expect("the next position is a batch key");
        let page = list(Some(next), b[2].key.clone(), 3).await;
        assert!(
            page.items.is_empty() && page.next.is_none(),
            "then an empty last page: {page:?}"
        );
    }
}

async fn cuts_move_the_cursor_only_from_where_it_was_read<L: Ledger>(ledger: &L, f: &Fixture) {
    let shard = f.shard(3);
    assert_eq!(ledger.cursor(&shard).await.expect("cursor"), None);
    let b1 = f.batch(&shard, 1_000, &["a"]);
    let b2 = f.batch(&shard, 2_000, &["b"]);
    let first = f.manifest(&f.id("cut-1"), &shard, None, &b1);
    assert!(ledger
        .cut(&Cut {
            manifest: first.clone()
        })
        .await
        .expect("cut"));
    let cursor = ledger
        .cursor(&shard)
        .await
        .expect("cursor")
        .expect("a cursor");
    assert_eq!(
        (&cursor.position, cursor.last_manifest.as_ref()),
        (&b1.key, Some(&first.id))
    );

    let stale = f.manifest(&f.id("cut-stale"), &shard, None, &b2);
    assert!(
        !ledger
            .cut(&Cut {
                manifest: stale.clone()
            })
            .await
            .expect("cut"),
        "a cutter that read the cursor before the first cut loses"
    );
    assert_eq!(
        ledger.manifest(&stale.id).await.expect("manifest"),
        None,
        "nothing written"
    );

    let reused = f.manifest(&first.id, &shard, Some(&b1), &b2);
    assert!(
        !ledger.cut(&Cut { manifest: reused }).await.expect("cut"),
        "ids are unique"
    );
    assert_eq!(
        ledger.cursor(&shard).await.expect("cursor"),
        Some(cursor),
        "cursor unchanged"
    );

    let second = f.manifest(&f.id("cut-2"), &shard, Some(&b1), &b2);
    assert!(ledger
        .cut(&Cut {
            manifest: second.clone()
        })
        .await
        .expect("cut"));
    assert_eq!(
        ledger.manifest(&second.id).await.expect("manifest"),
        Some(second.clone())
    );
    assert!(
        !open_ids(ledger).await.contains(&second.id),
        "a cut lists nothing itself"
    );
    for listed in [&first, &second] {
        ledger.open(&entry(listed)).await.expect("open");
        ledger
            .open(&entry(listed))
            .await
            .expect("open is idempotent");
    }
    let open = open_ids(ledger).await;
    assert!(
        open.contains(&first.id) && open.contains(&second.id),
        "{open:?}"
    );
    ledger.close(&entry(&first)).await.expect("close");
    ledger
        .close(&entry(&first))
        .await
        .expect("close is idempotent");
    let open = open_ids(ledger).await;
    assert!(
        !open.contains(&first.id) && open.contains(&second.id),
        "{open:?}"
    );

    let b3 = f.batch(&shard, 3_000, &["c"]);
    assert!(
        !ledger
            .skip(&shard, Some(&b1.key), &b3.key)
            .await
            .expect("skip"),
        "stale"
    );
    assert!(ledger
        .skip(&shard, Some(&b2.key), &b3.key)
        .await
        .expect("skip"));
    let skipped = ledger
        .cursor(&shard)
        .await
        .expect("cursor")
        .expect("a cursor");
    assert_eq!((skipped.position, skipped.last_manifest), (b3.key, None));
    let fresh = f.shard(6);
    let b = f.batch(&fresh, 1_000, &["d"]);
    assert!(
        ledger.skip(&fresh, None, &b.key).await.expect("skip"),
        "a first skip"
    );
}

async fn manifests_change_only_from_an_expected_state<L: Ledger>(ledger: &L, f: &Fixture) {
    let (manifest, _) = f.started(ledger, 4, "states").await;
    let id = &manifest.id;
    let now = Timestamp(1_764_460_900_000);
    let changes = ManifestChanges {
        execution_arn: Some("arn:aws:states:us-east-1:1:execution:x:y".into()),
    };
    let advance = |from: &'static [ManifestState; 1]| {
        ledger.advance(id, from, ManifestState::Running, &changes, now)
    };
    assert!(!advance(&[ManifestState::Running]).await.expect("advance"));
    assert!(advance(&[ManifestState::Starting]).await.expect("advance"));
    assert!(
        !advance(&[ManifestState::Starting]).await.expect("advance"),
        "compare-and-set"
    );
    let running = ledger
        .manifest(id)
        .await
        .expect("manifest")
        .expect("exists");
    assert_eq!(running.state, ManifestState::Running);
    assert_eq!(running.execution_arn, changes.execution_arn);
    assert_eq!(running.updated_at, now);

    let result = ConversionResult {
        lines_read: 5,
        rows_written: 5,
        output_keys: vec!["out/part-0.parquet".into()],
        schema: Some("{\"fields\": []}".into()),
        ..ConversionResult::default()
    };
    let completed = [ManifestState::Starting, ManifestState::Running];
    assert!(ledger
        .complete(id, &completed, &result, now)
        .await
        .expect("complete"));
    assert!(!ledger
        .complete(id, &completed, &result, now)
        .await
        .expect("complete"));
    assert!(
        !ledger
            .fail(id, &completed, "late", &[], now)
            .await
            .expect("fail"),
        "a completed manifest cannot fail"
    );
    let done = ledger
        .manifest(id)
        .await
        .expect("manifest")
        .expect("exists");
    assert_eq!(done.state, ManifestState::Completed);
    let stored = done.result.expect("a result");
    assert_eq!(
        (stored.rows_written, stored.schema),
        (5, None),
        "the schema is not kept"
    );
    assert!(open_ids(ledger).await.contains(id), "listed until closed");
    ledger.close(&entry(&manifest)).await.expect("close");
    assert!(!open_ids(ledger).await.contains(id), "no longer open");
    assert!(!ledger
        .complete(&f.id("missing"), &completed, &result, now)
        .await
        .expect("complete"));
}

async fn failures_count_each_poison_once_and_release_hands_over<L: Ledger>(
    ledger: &L,
    f: &Fixture,
) {
    let (manifest, batch) = f.started(ledger, 5, "fails").await;
    let id = &manifest.id;
    let now = Timestamp(1_764_461_000_000);
    let poison = [Poison {
        version: f.version("fails/a", "v1"),
        reason: "gzip: invalid header".into(),
    }];
    let open = [ManifestState::Starting, ManifestState::Running];
    let unknown = [Poison {
        version: f.version("never-tracked", "v1"),
        reason: "x".into(),
    }];
    assert!(
        ledger
            .fail(id, &open, "poison", &unknown, now)
            .await
            .is_err(),
        "a poison version without a marker is an error"
    );
    assert_eq!(
        ledger
            .manifest(id)
            .await
            .expect("manifest")
            .map(|m| m.state),
        Some(ManifestState::Starting),
        "and changes nothing"
    );
    assert!(ledger
        .fail(id, &open, "poison", &poison, now)
        .await
        .expect("fail"));
    assert!(!ledger
        .fail(id, &open, "poison", &poison, now)
        .await
        .expect("fail"));
    let markers = ledger
        .markers(&[f.version("fails/a", "v1"), f.version("fails/b", "v1")])
        .await
        .expect("markers");
    let a = markers[0].clone().expect("marker a");
    assert_eq!(
        (a.attempts, a.last_error.as_deref()),
        (1, Some("gzip: invalid header"))
    );
    assert_eq!(a.batch, batch.key, "a marker's owner never changes");
    assert_eq!(markers[1].as_ref().map(|m| m.attempts), Some(0));
    assert!(
        open_ids(ledger).await.contains(id),
        "a failed manifest stays open for the sweep"
    );
    let failed = ledger
        .manifest(id)
        .await
        .expect("manifest")
        .expect("exists");
    assert_eq!(
        (failed.state, failed.error.as_deref()),
        (ManifestState::Failed, Some("poison"))
    );

    let retry = Batch {
        shard: manifest.shard.clone(),
        key: BatchKey::retry(now, id),
        contents: BatchContents::Retry {
            manifest: id.clone(),
        },
        ttl: 4_000_000_000,
    };
    assert!(ledger.release(id, &retry, now).await.expect("release"));
    assert!(
        !ledger.release(id, &retry, now).await.expect("release"),
        "released once"
    );
    let listed = ledger
        .batches(
            &manifest.shard,
            Some(&batch.key),
            &BatchKey::before(Timestamp(i64::MAX / 2)),
            10,
        )
        .await
        .expect("batches");
    assert_eq!(
        listed.items,
        [retry],
        "the retry batch follows the released range"
    );
    ledger.close(&entry(&manifest)).await.expect("close");
    assert!(!open_ids(ledger).await.contains(id));
    assert_eq!(
        ledger
            .manifest(id)
            .await
            .expect("manifest")
            .map(|m| m.state),
        Some(ManifestState::Released)
    );
}

/// A shard's cut lease goes to one owner at a time until it expires; other shards' leases are
/// independent; an expired lease can be taken by anyone, its holder included.
async fn a_lease_is_exclusive_until_it_expires<L: Ledger>(ledger: &L, f: &Fixture) {
    let (one, two) = (f.shard(11), f.shard(12));
    let t = |s: i64| Timestamp(1_900_000_000_000 + s * 1000);
    assert!(ledger.lease(&one, "a", t(0), t(30)).await.unwrap());
    assert!(
        !ledger.lease(&one, "b", t(10), t(40)).await.unwrap(),
        "held by a"
    );
    assert!(
        !ledger.lease(&one, "a", t(29), t(59)).await.unwrap(),
        "not renewable early"
    );
    assert!(
        ledger.lease(&two, "b", t(10), t(40)).await.unwrap(),
        "another shard"
    );
    assert!(
        ledger.lease(&one, "b", t(31), t(61)).await.unwrap(),
        "expired"
    );
    assert!(
        !ledger.lease(&one, "a", t(60), t(90)).await.unwrap(),
        "held by b"
    );
    assert!(ledger.lease(&one, "a", t(62), t(92)).await.unwrap());
    // The lease is not the cursor: it neither creates nor moves one.
    assert!(ledger.cursor(&one).await.unwrap().is_none());
}

async fn superseding_needs_a_marker<L: Ledger>(ledger: &L, f: &Fixture) {
    let version = f.version("superseded/x", "v1");
    assert!(!ledger.supersede(&version, "gone").await.expect("supersede"));
    assert_eq!(
        ledger
            .markers(std::slice::from_ref(&version))
            .await
            .expect("markers"),
        [None]
    );
    let marker = f.marker(&version, &BatchKey::new(Timestamp(1)));
    ledger.put_marker(&marker).await.expect("put_marker");
    assert!(ledger
        .supersede(&version, "overwritten before conversion")
        .await
        .expect("supersede"));
    let read = ledger.markers(&[version]).await.expect("markers")[0]
        .clone()
        .expect("marker");
    assert_eq!(
        read.superseded.as_deref(),
        Some("overwritten before conversion")
    );
    assert!(!read.is_live(3));
}

async fn shards_are_registered_once_and_listings_skip_unreadable_items<L: Ledger>(
    ledger: &L,
    f: &Fixture,
    plant: impl Fn(Item),
) {
    let (a, b) = (f.shard(7), f.shard(8));
    ledger
        .register_shard(&a, 4_000_000_000)
        .await
        .expect("register");
    ledger
        .register_shard(&a, 4_000_000_001)
        .await
        .expect("register");
    ledger
        .register_shard(&b, 4_000_000_000)
        .await
        .expect("register");
    let mut bad = Item::new();
    bad.insert(attr::PK.into(), Value::S(item::SHARDS_PK.into()));
    bad.insert(attr::SK.into(), Value::S(format!("{}#7x", a.date)));
    plant(bad);
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ledger.shards(after.as_deref(), 1).await.expect("shards");
        found.extend(page.items);
        unreadable.extend(page.unreadable);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mine: Vec<_> = found.iter().filter(|s| s.date == a.date).collect();
    assert_eq!(mine, [&a, &b], "each shard once, in order");
    assert!(
        unreadable
            .iter()
            .any(|u| u.sk.ends_with("#7x") && !u.error.is_empty()),
        "an unreadable item is reported, not fatal: {unreadable:?}"
    );

    let shard = f.shard(9);
    let good = f.batch(&shard, 2_000, &["z"]);
    ledger.put_batch(&good).await.expect("put_batch");
    let mut broken = item::batch_item(&f.batch(&shard, 1_000, &["y"]));
    broken.insert(attr::REFS.into(), Value::B(b"not deflate".to_vec()));
    plant(broken);
    let page = ledger
        .batches(&shard, None, &BatchKey::before(Timestamp(9_000)), 10)
        .await
        .expect("batches");
    assert_eq!(page.items, [good]);
    assert_eq!(page.unreadable.len(), 1, "{:?}", page.unreadable);
    assert!(page.unreadable[0].sk.as_str() < page.items[0].key.as_str());
}
