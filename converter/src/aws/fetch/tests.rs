//! The fetcher over an in-memory [`RangeGet`] with latency and injected failures: the bytes
//! read never depend on the settings, memory stays within the budget, each part is fetched
//! once when the budget holds it, and failures surface instead of shortening an object.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::*;

/// Objects in memory, answering ranged reads as S3 does (see the [`RangeGet`] contract).
#[derive(Default)]
struct Store {
    objects: Mutex<HashMap<String, (Bytes, String)>>,
    latency: Duration,
    /// Every n-th part (by key and offset; 0: none) has its first `drop_attempts` requests
    /// fail as dropped connections: which parts fail does not depend on timing.
    drop_every: u64,
    drop_attempts: u32,
    attempts: Mutex<HashMap<(String, u64), u32>>,
    calls: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Store {
    fn put(&self, key: &str, bytes: Vec<u8>) {
        let etag = format!(
            "{:x}",
            bytes.len() as u64 * 31 + bytes.first().copied().unwrap_or(7) as u64
        );
        self.objects
            .lock()
            .unwrap()
            .insert(key.to_string(), (Bytes::from(bytes), etag));
    }

    fn failure(target: &Target, code: &str, retryable: bool) -> ObjectFailure {
        ObjectFailure {
            url: target.name.clone(),
            operation: "GetObject",
            code: Some(code.to_string()).filter(|c| !c.is_empty()),
            message: code.to_string(),
            retryable,
        }
    }
}

struct Shared(Arc<Store>);

impl RangeGet for Shared {
    fn get(&self, target: &Target, etag: Option<&str>, range: Range<u64>) -> RangeFuture {
        let store = Arc::clone(&self.0);
        let target = target.clone();
        let etag = etag.map(str::to_string);
        Box::pin(async move {
            let now = store.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            store.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(store.latency).await;
            store.in_flight.fetch_sub(1, Ordering::SeqCst);
            store.calls.fetch_add(1, Ordering::SeqCst);
            if store.drop_every > 0 {
                let key = target.key.bytes().map(u64::from).sum::<u64>();
                if (key + range.start / 64).is_multiple_of(store.drop_every) {
                    let mut attempts = store.attempts.lock().unwrap();
                    let attempt = attempts
                        .entry((target.key.clone(), range.start))
                        .or_insert(0);
                    *attempt += 1;
                    if *attempt <= store.drop_attempts {
                        return Err(Store::failure(&target, "", true));
                    }
                }
            }
            let Some((bytes, current)) = store.objects.lock().unwrap().get(&target.key).cloned()
            else {
                return Err(Store::failure(&target, "NoSuchKey", false));
            };
            if etag.as_ref().is_some_and(|e| *e != current) {
                return Err(Store::failure(&target, "PreconditionFailed", false));
            }
            let size = bytes.len() as u64;
            if range.start >= size && !(range.start == 0 && size == 0) {
                return Err(Store::failure(&target, "InvalidRange", false));
            }
            let end = range.end.min(size);
            Ok(Ranged {
                bytes: bytes.slice(range.start as usize..end as usize),
                total: Some(size),
                etag: Some(current),
            })
        })
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A fetcher over `store` on `rt`.
fn fetcher(
    rt: &tokio::runtime::Runtime,
    store: &Arc<Store>,
    settings: ReadAhead,
    targets: Vec<Target>,
) -> Arc<Fetcher> {
    Fetcher::new(
        Arc::new(Shared(Arc::clone(store))),
        rt.handle().clone(),
        settings,
        targets,
    )
}

/// Deterministic content of `len` bytes, different for each `seed`.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn target(key: &str, size: Option<u64>) -> Target {
    Target {
        bucket: "in".into(),
        key: key.into(),
        version_id: None,
        etag: None,
        size,
        name: format!("s3://in/{key}"),
    }
}

fn read_all(source: &Arc<dyn Source>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    source.open()?.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn the_bytes_read_never_depend_on_the_settings() {
    let rt = runtime();
    let part = 1024u64;
    let sizes = [
        0,
        1,
        1000,
        1023,
        1024,
        1025,
        5 * 1024 + 17,
        64 * 1024 + 3,
        300,
        0,
        2048,
    ];
    let store = Arc::new(Store::default());
    for (i, size) in sizes.iter().enumerate() {
        store.put(&format!("k{i}"), content(i as u64, *size as usize));
    }
    for budget in [2 * part, 16 * part, 1 << 20] {
        for max_requests in [1, 3, 32] {
            for head in [256, 1024] {
                for known in [false, true] {
                    let settings = ReadAhead {
                        budget_bytes: budget,
                        part_bytes: part,
                        head_bytes: head,
                        max_requests,
                    };
                    let targets = sizes
                        .iter()
                        .enumerate()
                        .map(|(i, s)| target(&format!("k{i}"), known.then_some(*s)))
                        .collect();
                    let fetcher = fetcher(&rt, &store, settings, targets);
                    for (i, source) in fetcher.sources().iter().enumerate() {
                        let bytes = read_all(source).unwrap();
                        assert_eq!(
                            bytes,
                            content(i as u64, sizes[i] as usize),
                            "object {i} with {settings:?}, sizes known: {known}"
                        );
                    }
                    let stats = fetcher.stats();
                    assert!(stats.peak_held <= budget, "{stats:?} over {settings:?}");
                }
            }
        }
    }
    assert!(store.max_in_flight.load(Ordering::SeqCst) <= 32);
}

#[test]
fn requests_in_flight_stay_within_the_limit_and_overlap() {
    let rt = runtime();
    let store = Arc::new(Store {
        latency: Duration::from_millis(5),
        ..Store::default()
    });
    for i in 0..60 {
        store.put(&format!("k{i}"), content(i, 700));
    }
    let settings = ReadAhead {
        budget_bytes: 1 << 20,
        part_bytes: 1024,
        head_bytes: 1024,
        max_requests: 8,
    };
    let targets = (0..60)
        .map(|i| target(&format!("k{i}"), Some(700)))
        .collect();
    let fetcher = fetcher(&rt, &store, settings, targets);
    for (i, source) in fetcher.sources().iter().enumerate() {
        assert_eq!(read_all(source).unwrap(), content(i as u64, 700));
    }
    let most = store.max_in_flight.load(Ordering::SeqCst);
    assert!(most <= 8, "{most} requests in flight");
    assert!(
        most >= 4,
        "the next objects were not read ahead: at most {most} in flight"
    );
}

#[test]
fn sampling_then_converting_reads_each_part_once_while_the_budget_holds_it() {
    let rt = runtime();
    let store = Arc::new(Store::default());
    for i in 0..200 {
        store.put(&format!("k{i}"), content(i, 2000));
    }
    let settings = ReadAhead {
        budget_bytes: 1 << 20,
        part_bytes: 4096,
        head_bytes: 1024,
        max_requests: 16,
    };
    for known in [true, false] {
        let before = store.calls.load(Ordering::SeqCst);
        let targets = (0..200)
            .map(|i| target(&format!("k{i}"), known.then_some(2000)))
            .collect();
        let fetcher = fetcher(&rt, &store, settings, targets);
        let sources = fetcher.sources();
        // Sampling: the head of each object.
        for source in &sources {
            let mut head = [0u8; 100];
            source.open().unwrap().read_exact(&mut head).unwrap();
        }
        for (i, source) in sources.iter().enumerate() {
            assert_eq!(read_all(source).unwrap(), content(i as u64, 2000));
        }
        let requests = store.calls.load(Ordering::SeqCst) - before;
        // Known sizes: one GET per object. Unknown: a 1 KiB head, then the rest.
        let expected = if known { 200 } else { 400 };
        assert_eq!(requests, expected, "sizes known: {known}");
        assert_eq!(fetcher.stats().evicted, 0);
    }
}

#[test]
fn memory_stays_within_the_budget_whatever_the_input_size() {
    let rt = runtime();
    let store = Arc::new(Store::default());
    for i in 0..6 {
        store.put(&format!("k{i}"), content(i, 300 * 1024 + i as usize));
    }
    let settings = ReadAhead {
        budget_bytes: 40 * 1024,
        part_bytes: 8 * 1024,
        head_bytes: 4 * 1024,
        max_requests: 32,
    };
    let targets = (0..6).map(|i| target(&format!("k{i}"), None)).collect();
    let fetcher = fetcher(&rt, &store, settings, targets);
    let sources = fetcher.sources();
    for source in &sources {
        let mut head = [0u8; 10_000];
        source.open().unwrap().read_exact(&mut head).unwrap();
    }
    for (i, source) in sources.iter().enumerate() {
        assert_eq!(read_all(source).unwrap(), content(i as u64, 300 * 1024 + i));
    }
    let stats = fetcher.stats();
    assert!(stats.peak_held <= 40 * 1024, "{stats:?}");
    assert!(stats.evicted > 0, "{stats:?}");
}

#[test]
fn dropped_connections_cost_a_part_and_change_no_byte() {
    let rt = runtime();
    let store = Arc::new(Store {
        drop_every: 3,
        drop_attempts: PART_RETRIES,
        ..Store::default()
    });
    for i in 0..10 {
        store.put(&format!("k{i}"), content(i, 10_000 + i as usize));
    }
    let settings = ReadAhead {
        budget_bytes: 64 * 1024,
        part_bytes: 2048,
        head_bytes: 1024,
        max_requests: 4,
    };
    let targets = (0..10).map(|i| target(&format!("k{i}"), None)).collect();
    let fetcher = fetcher(&rt, &store, settings, targets);
    for (i, source) in fetcher.sources().iter().enumerate() {
        assert_eq!(read_all(source).unwrap(), content(i as u64, 10_000 + i));
    }
    // 6 parts per object; about every third part dropped as often as retries allow.
    let calls = store.calls.load(Ordering::SeqCst);
    let dropped: u32 = store.attempts.lock().unwrap().values().map(|a| a - 1).sum();
    assert_eq!(fetcher.stats().requests, calls);
    assert!(dropped >= 10 * PART_RETRIES, "{dropped} dropped requests");
    assert!(calls >= 60 + u64::from(dropped), "{calls} requests");
}

#[test]
fn a_failed_read_fails_every_later_read_and_is_never_an_early_end() {
    let rt = runtime();
    let store = Arc::new(Store {
        drop_every: 1,
        drop_attempts: u32::MAX,
        ..Store::default()
    });
    store.put("k", content(1, 5000));
    let settings = ReadAhead {
        budget_bytes: 64 * 1024,
        part_bytes: 1024,
        head_bytes: 1024,
        max_requests: 4,
    };
    let fetcher = fetcher(&rt, &store, settings, vec![target("k", None)]);
    let source = &fetcher.sources()[0];
    let mut reader = source.open().unwrap();
    let mut out = Vec::new();
    let error = reader.read_to_end(&mut out).unwrap_err();
    assert_ne!(error.kind(), io::ErrorKind::Interrupted);
    let failure = ObjectFailure::find(&error).expect("the failure travels inside the io::Error");
    assert!(failure.retryable);
    assert!(
        reader.read(&mut [0u8; 16]).is_err(),
        "a read after a failure must fail too"
    );
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        u64::from(PART_RETRIES) + 1
    );
}

#[test]
fn a_missing_object_fails_its_own_reader_only() {
    let rt = runtime();
    let store = Arc::new(Store::default());
    store.put("a", content(1, 3000));
    store.put("c", content(3, 3000));
    let targets = vec![
        target("a", Some(3000)),
        target("b", Some(3000)),
        target("c", Some(3000)),
    ];
    let fetcher = fetcher(&rt, &store, ReadAhead::default(), targets);
    let sources = fetcher.sources();
    assert_eq!(read_all(&sources[0]).unwrap(), content(1, 3000));
    let error = read_all(&sources[1]).unwrap_err();
    assert!(ObjectFailure::find(&error).unwrap().is_gone(), "{error}");
    assert_eq!(read_all(&sources[2]).unwrap(), content(3, 3000));
}

#[test]
fn an_overwrite_between_parts_fails_the_read_instead_of_mixing_versions() {
    let rt = runtime();
    let store = Arc::new(Store {
        latency: Duration::from_millis(2),
        ..Store::default()
    });
    let old = content(1, 40 * 1024);
    store.put("k", old.clone());
    let settings = ReadAhead {
        budget_bytes: 4 * 1024,
        part_bytes: 1024,
        head_bytes: 1024,
        max_requests: 1,
    };
    let fetcher = fetcher(&rt, &store, settings, vec![target("k", None)]);
    let mut reader = fetcher.sources()[0].open().unwrap();
    let mut head = vec![0u8; 1024];
    reader.read_exact(&mut head).unwrap();
    assert_eq!(head, old[..1024]);
    store.put("k", content(2, 40 * 1024 + 1));
    let mut rest = Vec::new();
    let error = reader.read_to_end(&mut rest).unwrap_err();
    assert_eq!(
        ObjectFailure::find(&error).unwrap().code.as_deref(),
        Some("PreconditionFailed")
    );
    assert_eq!(
        rest[..],
        old[1024..1024 + rest.len()],
        "bytes of the new version were read"
    );
}
