//! Read-ahead for object inputs: ranged GETs in parallel under one byte budget.
//!
//! Why: on S3 one `GetObject` stream carries roughly 50–100 MB/s and every request waits tens
//! of milliseconds for its first byte. Read with one stream per object, one object after
//! another, a manifest of large objects is capped by one connection, and a manifest of many
//! small objects is almost all waiting (1,000 objects at 30 ms each is 30 s). And schema
//! sampling reads the head of every object before the conversion reads it again.
//!
//! A [`Fetcher`] reads a list of objects as byte ranges ("parts") with many requests in
//! flight, in this order of priority:
//!
//! 1. the part each open reader needs next, then a window of parts ahead of it that grows as
//!    the reader consumes (two parts at first, so sampling an object's head costs at most two
//!    parts; a whole large object soon has many parts in flight);
//! 2. the first two parts of each object after the furthest one opened, so the next objects
//!    are already here when the reader gets to them (an object no larger than a part is one
//!    GET).
//!
//! Parts in flight and parts read are held under [`ReadAhead::budget_bytes`]; a part stays
//! cached until its room is needed (parts nobody wants first, the furthest ones first), so
//! the conversion reads again what sampling read without a second request while the budget
//! holds it. Memory is therefore bounded by the budget plus the part each reader holds,
//! whatever the objects' sizes and count.
//!
//! Every part of an object reads the same version: the version id the caller pinned, and
//! `If-Match` on the ETag (given, or the first response's), so an object overwritten between
//! two parts fails the read (`PreconditionFailed`) instead of mixing two versions' bytes. A
//! part whose request fails in a way worth retrying (a dropped connection, throttling, 5xx)
//! is requested again, [`PART_RETRIES`] times; a reader that meets a failure returns it on
//! every later read too, so nothing upstream can mistake a failed object for a short one.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{self, Read};
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Handle;

use crate::input::Source;
use crate::objects::ObjectFailure;

/// How many times one part is requested again after a failure worth retrying.
pub const PART_RETRIES: u32 = 3;

/// How much a [`Fetcher`] reads ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAhead {
    /// Bytes held for parts in flight or read and still cached: the memory bound.
    pub budget_bytes: u64,
    /// Size of each ranged GET (an object no larger than this is read in one).
    pub part_bytes: u64,
    /// Size of the first GET of an object whose size is not known in advance (its response
    /// tells the size; sampling often needs no more).
    pub head_bytes: u64,
    /// GETs in flight at once.
    pub max_requests: usize,
}

impl Default for ReadAhead {
    fn default() -> Self {
        ReadAhead::within(64 << 20)
    }
}

impl ReadAhead {
    /// Settings holding at most `budget_bytes` (at least 4 MiB): 8 MiB parts where the budget
    /// holds at least sixteen of them, smaller parts otherwise.
    pub fn within(budget_bytes: u64) -> Self {
        let budget_bytes = budget_bytes.max(4 << 20);
        let part_bytes = (budget_bytes / 16).clamp(256 << 10, 8 << 20);
        ReadAhead {
            budget_bytes,
            part_bytes,
            head_bytes: part_bytes.min(256 << 10),
            max_requests: 64,
        }
    }
}

/// One object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The version to read (`None`: the current one).
    pub version_id: Option<String>,
    /// The ETag every read must match (`None`: the first response's).
    pub etag: Option<String>,
    /// The size, when known in advance (from a listing or an event).
    pub size: Option<u64>,
    /// The name used in messages (`s3://bucket/key`).
    pub name: String,
}

/// What a ranged read returned.
#[derive(Debug, Clone)]
pub struct Ranged {
    /// The bytes of the range that exist (fewer than asked at the object's end).
    pub bytes: Bytes,
    /// The object's whole size, when the response said it.
    pub total: Option<u64>,
    /// The ETag of the version read (without quotes).
    pub etag: Option<String>,
}

/// A boxed future of a ranged read.
pub type RangeFuture = Pin<Box<dyn Future<Output = Result<Ranged, ObjectFailure>> + Send>>;

/// Ranged reads of objects.
///
/// Contract: `get(target, etag, range)` returns the bytes `range` of `target` (the version it
/// names, else the current one), clipped at the object's end, with the object's total size,
/// or fails. With `etag`, it fails with code `PreconditionFailed` unless the version read has
/// that ETag. A range starting at 0 of an empty object returns no bytes and a total of 0.
/// Failures worth retrying say so (`retryable`); a dropped connection is one.
pub trait RangeGet: Send + Sync + 'static {
    /// Reads `range` of `target`.
    fn get(&self, target: &Target, etag: Option<&str>, range: Range<u64>) -> RangeFuture;
}

/// Reads a list of objects ahead of their readers (see the module docs). Readers are opened
/// through [`Fetcher::sources`]; they block, so they must run outside the runtime.
pub struct Fetcher {
    getter: Arc<dyn RangeGet>,
    handle: Handle,
    settings: ReadAhead,
    targets: Vec<Target>,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    objects: Vec<Object>,
    /// Bytes reserved by parts in flight plus bytes of parts cached.
    held: u64,
    /// GETs in flight.
    requests: usize,
    readers: HashMap<u64, Position>,
    next_reader: u64,
    /// The object opened last (prefetching continues after it).
    cursor: Option<usize>,
    stats: FetchStats,
}

/// What a [`Fetcher`] did, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// GET requests sent (retries included).
    pub requests: u64,
    /// The most bytes held at once.
    pub peak_held: u64,
    /// Cached parts dropped to make room.
    pub evicted: u64,
}

#[derive(Debug, Clone, Copy)]
struct Position {
    object: usize,
    part: u64,
    consumed: u64,
    /// Blocked waiting for `part`: what a waiting reader needs comes before everything else,
    /// so a reader left open elsewhere can never hold the budget it needs.
    waiting: bool,
}

#[derive(Debug, Default)]
struct Object {
    /// Known size (the hint, then what the first response said).
    size: Option<u64>,
    /// The ETag every read of this object must match.
    etag: Option<String>,
    /// Length of part 0, fixed when it is first requested; later parts follow it.
    first: Option<u64>,
    parts: BTreeMap<u64, Slot>,
}

#[derive(Debug)]
enum Slot {
    Fetching { reserved: u64 },
    Ready(Bytes),
    Failed(ObjectFailure),
}

impl Fetcher {
    /// A fetcher over `targets`, reading with `getter` on `handle`'s runtime. It starts
    /// fetching the first objects at once.
    pub fn new(
        getter: Arc<dyn RangeGet>,
        handle: Handle,
        settings: ReadAhead,
        targets: Vec<Target>,
    ) -> Arc<Self> {
        let objects = targets
            .iter()
            .map(|t| Object {
                size: t.size,
                etag: t.etag.clone().filter(|e| !e.is_empty()),
                ..Object::default()
            })
            .collect();
        let settings = ReadAhead {
            part_bytes: settings.part_bytes.max(1),
            head_bytes: settings.head_bytes.max(1),
            max_requests: settings.max_requests.max(1),
            // Two parts fit whatever the settings, so a reader always makes progress.
            budget_bytes: settings
                .budget_bytes
                .max(2 * settings.part_bytes.max(settings.head_bytes)),
        };
        let fetcher = Arc::new(Fetcher {
            getter,
            handle,
            settings,
            targets,
            state: Mutex::new(State {
                objects,
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        {
            let mut state = fetcher.lock();
            fetcher.schedule(&mut state);
        }
        fetcher
    }

    /// One [`Source`] per target, in order.
    pub fn sources(self: &Arc<Self>) -> Vec<Arc<dyn Source>> {
        (0..self.targets.len())
            .map(|index| {
                Arc::new(FetchedSource {
                    fetcher: Arc::clone(self),
                    index,
                }) as Arc<dyn Source>
            })
            .collect()
    }

    /// What the fetcher did so far.
    pub fn stats(&self) -> FetchStats {
        self.lock().stats
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters, not broken invariants, behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(self: &Arc<Self>, object: usize) -> FetchReader {
        let mut state = self.lock();
        let id = state.next_reader;
        state.next_reader += 1;
        state.readers.insert(
            id,
            Position {
                object,
                part: 0,
                consumed: 0,
                waiting: false,
            },
        );
        state.cursor = Some(object);
        self.schedule(&mut state);
        FetchReader {
            fetcher: Arc::clone(self),
            id,
            object,
            part: 0,
            current: Bytes::new(),
            failed: None,
        }
    }

    fn close(self: &Arc<Self>, id: u64) {
        let mut state = self.lock();
        state.readers.remove(&id);
        self.schedule(&mut state);
    }

    /// Part `part` of `object` for reader `id`, waiting for it; `None` past the end.
    fn part(
        self: &Arc<Self>,
        id: u64,
        object: usize,
        part: u64,
    ) -> Result<Option<Bytes>, ObjectFailure> {
        let mut state = self.lock();
        if let Some(position) = state.readers.get_mut(&id) {
            position.part = part;
            position.waiting = true;
        }
        self.schedule(&mut state);
        loop {
            let entry = &state.objects[object];
            if let Some(count) = self.part_count(entry) {
                if part >= count {
                    return Ok(None);
                }
            }
            match entry.parts.get(&part) {
                Some(Slot::Ready(bytes)) => {
                    let bytes = bytes.clone();
                    if let Some(position) = state.readers.get_mut(&id) {
                        position.part = part + 1;
                        position.consumed += 1;
                        position.waiting = false;
                    }
                    self.schedule(&mut state);
                    return Ok(Some(bytes));
                }
                Some(Slot::Failed(failure)) => {
                    let failure = failure.clone();
                    if let Some(position) = state.readers.get_mut(&id) {
                        position.waiting = false;
                    }
                    return Err(failure);
                }
                Some(Slot::Fetching { .. }) | None => {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }

    /// The number of parts of `object`, once its size is known.
    fn part_count(&self, object: &Object) -> Option<u64> {
        let size = object.size?;
        if size == 0 {
            return Some(0);
        }
        let first = object.first.unwrap_or_else(|| self.first_len(object));
        Some(
            1 + size
                .saturating_sub(first)
                .div_ceil(self.settings.part_bytes),
        )
    }

    /// The length part 0 gets when it is requested.
    fn first_len(&self, object: &Object) -> u64 {
        match object.size {
            Some(size) => size.min(self.settings.part_bytes),
            None => self.settings.head_bytes,
        }
    }

    /// The byte range of `part`, when it can be requested now: part 0 always (unless the
    /// object is known to be empty); later parts once the size is known and the version is
    /// pinned (a version id, or an ETag), so two parts can never read two versions.
    fn range(&self, target: &Target, object: &Object, part: u64) -> Option<Range<u64>> {
        if part == 0 {
            // A known empty object has nothing to read.
            return (object.size != Some(0))
                .then(|| 0..object.first.unwrap_or_else(|| self.first_len(object)));
        }
        let size = object.size?;
        let first = object.first?;
        if target.version_id.is_none() && object.etag.is_none() {
            return None;
        }
        let start = first + (part - 1) * self.settings.part_bytes;
        (start < size).then(|| start..(start + self.settings.part_bytes).min(size))
    }

    /// The parts wanted, most wanted first (see the module docs), up to about the budget.
    fn wanted(&self, state: &State) -> Vec<(usize, u64, Range<u64>)> {
        let mut wanted = Vec::new();
        let mut bytes = 0u64;
        let budget = self.settings.budget_bytes;
        let mut readers: Vec<Position> = state.readers.values().copied().collect();
        readers.sort_by_key(|p| (p.object, p.part));
        for position in readers.iter().filter(|p| p.waiting) {
            let object = &state.objects[position.object];
            if let Some(range) = self.range(&self.targets[position.object], object, position.part) {
                bytes += range.end - range.start;
                wanted.push((position.object, position.part, range));
            }
        }
        // Each reader's window: the parts after the one it reads, across the end of its object
        // into the next ones, doubling as it consumes (2, 4, 8, … parts): sampling a head
        // costs little, a whole large object soon has many ranges in flight, and the next
        // object's first ranges are here before its turn.
        let mut listed: std::collections::HashSet<(usize, u64)> =
            wanted.iter().map(|(o, p, _)| (*o, *p)).collect();
        'readers: for position in &readers {
            let window = 2u64 << position.consumed.min(4);
            let (mut index, mut part) = (position.object, position.part);
            for _ in 0..window {
                if index >= self.targets.len() {
                    break;
                }
                let object = &state.objects[index];
                if self.part_count(object).is_some_and(|count| part >= count) {
                    (index, part) = (index + 1, 0);
                    continue;
                }
                let Some(range) = self.range(&self.targets[index], object, part) else {
                    break;
                };
                if listed.insert((index, part)) {
                    bytes += range.end - range.start;
                    wanted.push((index, part, range));
                    if bytes >= budget {
                        break 'readers;
                    }
                }
                part += 1;
            }
        }
        let furthest = readers.iter().map(|p| p.object).max();
        let from = match (furthest, state.cursor) {
            (Some(a), Some(b)) => a.max(b) + 1,
            (Some(a), None) | (None, Some(a)) => a + 1,
            (None, None) => 0,
        };
        for index in from..self.targets.len() {
            if bytes >= budget {
                break;
            }
            // The first two parts: a head too short for the schema sample (an object whose
            // size was not known reads a small head first) is not a stall either.
            let object = &state.objects[index];
            for part in 0..2 {
                if let Some(range) = self.range(&self.targets[index], object, part) {
                    if listed.insert((index, part)) {
                        bytes += range.end - range.start;
                        wanted.push((index, part, range));
                    }
                }
            }
        }
        wanted
    }

    /// Starts the wanted parts that are neither cached nor in flight, while requests and the
    /// budget allow, making room by dropping cached parts that are wanted less.
    fn schedule(self: &Arc<Self>, state: &mut State) {
        let wanted = self.wanted(state);
        let rank: HashMap<(usize, u64), usize> = wanted
            .iter()
            .enumerate()
            .map(|(rank, (object, part, _))| ((*object, *part), rank))
            .collect();
        for (rank_here, (object, part, range)) in wanted.iter().enumerate() {
            if state.objects[*object].parts.contains_key(part) {
                continue;
            }
            if state.requests >= self.settings.max_requests {
                break;
            }
            let len = range.end - range.start;
            while state.held + len > self.settings.budget_bytes {
                // Parts nobody wants go first, then the least wanted; among equals, the
                // furthest (a second pass over the objects wants the first ones first).
                let victim = state
                    .objects
                    .iter()
                    .enumerate()
                    .flat_map(|(o, entry)| {
                        entry.parts.iter().filter_map(move |(p, slot)| match slot {
                            Slot::Ready(bytes) => Some((o, *p, bytes.len() as u64)),
                            _ => None,
                        })
                    })
                    .filter(|(o, p, _)| rank.get(&(*o, *p)).is_none_or(|r| *r > rank_here))
                    .max_by_key(|(o, p, _)| {
                        (rank.get(&(*o, *p)).copied().unwrap_or(usize::MAX), *o, *p)
                    });
                let Some((o, p, size)) = victim else {
                    break;
                };
                state.objects[o].parts.remove(&p);
                state.held -= size;
                state.stats.evicted += 1;
            }
            if state.held + len > self.settings.budget_bytes {
                break;
            }
            self.start(state, *object, *part, range.clone());
        }
    }

    fn start(self: &Arc<Self>, state: &mut State, object: usize, part: u64, range: Range<u64>) {
        let len = range.end - range.start;
        let entry = &mut state.objects[object];
        if part == 0 {
            entry.first = Some(len);
        }
        entry.parts.insert(part, Slot::Fetching { reserved: len });
        let etag = entry.etag.clone();
        state.held += len;
        state.requests += 1;
        state.stats.requests += 1;
        state.stats.peak_held = state.stats.peak_held.max(state.held);
        let getter = Arc::clone(&self.getter);
        let target = self.targets[object].clone();
        // The task holds no strong reference: when every source and reader is gone, what is
        // still in flight finishes into nothing instead of fetching more.
        let fetcher: Weak<Fetcher> = Arc::downgrade(self);
        self.handle.spawn(async move {
            let mut retries = 0;
            let result = loop {
                match getter.get(&target, etag.as_deref(), range.clone()).await {
                    Err(failure) if failure.retryable && retries < PART_RETRIES => {
                        retries += 1;
                        tracing::warn!(object = %target.name, start = range.start, retries, error = %failure, "part read failed; requesting it again");
                        tokio::time::sleep(Duration::from_millis(50 << retries)).await;
                        if let Some(fetcher) = fetcher.upgrade() {
                            fetcher.lock().stats.requests += 1;
                        } else {
                            return;
                        }
                    }
                    other => break other,
                }
            };
            if let Some(fetcher) = fetcher.upgrade() {
                fetcher.finish(object, part, range, result);
            }
        });
    }

    fn finish(
        self: &Arc<Self>,
        object: usize,
        part: u64,
        range: Range<u64>,
        result: Result<Ranged, ObjectFailure>,
    ) {
        let mut state = self.lock();
        let reserved = match state.objects[object].parts.get(&part) {
            Some(Slot::Fetching { reserved }) => *reserved,
            _ => 0,
        };
        state.held -= reserved;
        state.requests -= 1;
        let name = &self.targets[object].name;
        let entry = &mut state.objects[object];
        let slot = match result {
            Err(failure) => Slot::Failed(failure),
            Ok(ranged) => {
                let size = match ranged.total {
                    Some(total) => total,
                    // No size said: the response is the whole rest of the object.
                    None => range.start + ranged.bytes.len() as u64,
                };
                let expected = range.end.min(size).saturating_sub(range.start);
                let changed = entry.size.is_some_and(|known| known != size && part > 0);
                if ranged.bytes.len() as u64 != expected || changed {
                    Slot::Failed(ObjectFailure {
                        url: name.clone(),
                        operation: "GetObject",
                        code: None,
                        message: format!(
                            "bytes {}..{} of an object of {size} bytes returned {} bytes",
                            range.start,
                            range.end,
                            ranged.bytes.len()
                        ),
                        retryable: false,
                    })
                } else {
                    entry.size = Some(size);
                    if entry.etag.is_none() {
                        entry.etag = ranged.etag.filter(|e| !e.is_empty());
                    }
                    state.held += ranged.bytes.len() as u64;
                    Slot::Ready(ranged.bytes)
                }
            }
        };
        state.objects[object].parts.insert(part, slot);
        self.schedule(&mut state);
        self.changed.notify_all();
    }
}

/// One object of a [`Fetcher`] as a conversion input.
struct FetchedSource {
    fetcher: Arc<Fetcher>,
    index: usize,
}

impl Source for FetchedSource {
    fn name(&self) -> &str {
        &self.fetcher.targets[self.index].name
    }

    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.fetcher.open(self.index)))
    }

    fn size_hint(&self) -> Option<u64> {
        self.fetcher.targets[self.index].size
    }
}

/// A reader of one object's parts in order.
struct FetchReader {
    fetcher: Arc<Fetcher>,
    id: u64,
    object: usize,
    part: u64,
    current: Bytes,
    /// A failure, returned again on every later read.
    failed: Option<ObjectFailure>,
}

impl Read for FetchReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            if let Some(failure) = &self.failed {
                return Err(failure.clone().into_io());
            }
            match self.fetcher.part(self.id, self.object, self.part) {
                Ok(None) => return Ok(0),
                Ok(Some(bytes)) => {
                    self.current = bytes;
                    self.part += 1;
                }
                Err(failure) => self.failed = Some(failure),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

impl Drop for FetchReader {
    fn drop(&mut self) {
        self.fetcher.close(self.id);
    }
}

#[cfg(test)]
mod tests;
