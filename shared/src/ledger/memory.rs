//! [`MemoryLedger`]: the ledger in memory, for unit tests and the simulation. It stores the
//! same [`Item`]s the DynamoDB implementation writes (so the layout is exercised, and an
//! unreadable item can be planted), runs each operation atomically under one lock, and bills
//! each request as DynamoDB would ([`Meter`]).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use super::item::{self, attr, Item, Key, Reader, Value};
use super::{
    Batch, BatchKey, Cursor, Cut, Ledger, Manifest, ManifestChanges, ManifestState, Marker,
    MarkerOutcome, OpenManifest, Page, Poison, Shard, StoreError, Unreadable, VersionRef,
    MAX_POISON_PER_FAILURE,
};
use crate::types::{ConversionResult, ManifestId, Timestamp};

/// What the requests made so far would cost on DynamoDB (on-demand: write and read request
/// units; provisioned: the same capacity units).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meter {
    /// Write units: per item written, one per started KB of the larger of the item before and
    /// after the write, twice inside a transaction; a write whose condition failed is billed
    /// too.
    pub write_units: u64,
    /// Read units (strongly consistent): one per started 4 KB per item read by `GetItem` or
    /// `BatchGetItem`, of the summed size of what a `Query` returned; at least one per request
    /// or item asked for.
    pub read_units: u64,
    /// Requests by API operation (`PutItem`, `TransactWriteItems`, ...).
    pub requests: BTreeMap<&'static str, u64>,
    /// Write units by item kind: the partition key's prefix (`V` markers, `B` batches, `C`
    /// cursors, `M` manifests, `O` open entries, `D` the shard registry).
    pub write_units_by_kind: BTreeMap<char, u64>,
}

/// Units billed to one partition key (see [`MemoryLedger::metering_partitions`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionUnits {
    /// Write units, as [`Meter::write_units`] counts them.
    pub write_units: u64,
    /// Read units, as [`Meter::read_units`] counts them.
    pub read_units: u64,
}

#[derive(Default)]
struct State {
    items: BTreeMap<Key, Item>,
    meter: Meter,
    /// Units per partition key, when asked for: DynamoDB throttles each partition at 1,000
    /// write and 3,000 read units a second.
    partitions: Option<BTreeMap<String, PartitionUnits>>,
}

/// An in-memory ledger: every operation is atomic under one lock and billed in [`Meter`].
pub struct MemoryLedger {
    name: String,
    state: Mutex<State>,
}

impl Default for MemoryLedger {
    fn default() -> Self {
        Self::new()
    }
}

/// One write of a transaction (or a single write): the item's key, whether its condition
/// holds, and the item after it (`None`: deleted).
struct Write {
    key: Key,
    holds: bool,
    after: Option<Item>,
}

impl State {
    fn get(&self, key: &Key) -> Option<&Item> {
        self.items.get(key)
    }

    fn bill_write(&mut self, key: &Key, after: Option<&Item>, factor: u64) {
        let before = self.items.get(key).map_or(0, item::size);
        let after = after.map_or(0, item::size);
        let units = before.max(after).div_ceil(1024).max(1) * factor;
        self.meter.write_units += units;
        if let Some(partitions) = &mut self.partitions {
            partitions.entry(key.0.clone()).or_default().write_units += units;
        }
        let kind = key.0.chars().next().unwrap_or('?');
        *self.meter.write_units_by_kind.entry(kind).or_default() += units;
    }

    fn bill_read(&mut self, pk: &str, bytes: u64) {
        let units = bytes.div_ceil(4096).max(1);
        self.meter.read_units += units;
        if let Some(partitions) = &mut self.partitions {
            partitions.entry(pk.to_string()).or_default().read_units += units;
        }
    }

    fn request(&mut self, operation: &'static str) {
        *self.meter.requests.entry(operation).or_default() += 1;
    }

    /// A single conditional write (`PutItem`, `UpdateItem`, `DeleteItem`).
    fn write(&mut self, operation: &'static str, write: Write) -> bool {
        self.request(operation);
        let after = if write.holds {
            write.after.as_ref()
        } else {
            self.items.get(&write.key)
        };
        let after = after.cloned();
        self.bill_write(&write.key, after.as_ref(), 1);
        if write.holds {
            self.apply(write);
            true
        } else {
            false
        }
    }

    /// `TransactWriteItems`: all writes or none, each billed twice.
    fn transact(&mut self, writes: Vec<Write>) -> bool {
        self.request("TransactWriteItems");
        let holds = writes.iter().all(|w| w.holds);
        for write in &writes {
            let after = if holds {
                write.after.clone()
            } else {
                self.items.get(&write.key).cloned()
            };
            self.bill_write(&write.key, after.as_ref(), 2);
        }
        if holds {
            for write in writes {
                self.apply(write);
            }
        }
        holds
    }

    fn apply(&mut self, write: Write) {
        match write.after {
            Some(item) => {
                self.items.insert(write.key, item);
            }
            None => {
                self.items.remove(&write.key);
            }
        }
    }

    /// A strongly consistent `Query` of one partition: sort keys in `(after, until]`, at most
    /// `limit` items.
    fn query(
        &mut self,
        pk: &str,
        after: Option<&str>,
        until: Option<&str>,
        limit: usize,
    ) -> (Vec<Item>, Option<String>) {
        self.request("Query");
        let lower = match after {
            Some(sk) => Bound::Excluded((pk.to_string(), sk.to_string())),
            None => Bound::Included((pk.to_string(), String::new())),
        };
        let items: Vec<Item> = self
            .items
            .range((lower, Bound::Unbounded))
            .take_while(|((p, sk), _)| p == pk && until.is_none_or(|u| sk.as_str() <= u))
            .take(limit)
            .map(|(_, item)| item.clone())
            .collect();
        self.bill_read(pk, items.iter().map(item::size).sum());
        let next = (items.len() == limit)
            .then(|| items.last().map(|i| sort_key(i).to_string()))
            .flatten();
        (items, next)
    }
}

fn sort_key(item: &Item) -> &str {
    match item.get(attr::SK) {
        Some(Value::S(sk)) => sk,
        _ => "",
    }
}

fn unreadable(reader: &Reader<'_>, error: &StoreError) -> Unreadable {
    let (pk, sk) = reader.keys();
    Unreadable {
        pk: pk.to_string(),
        sk: sk.to_string(),
        error: error.to_string(),
    }
}

impl MemoryLedger {
    /// An empty ledger; its operations never fail.
    pub fn new() -> Self {
        MemoryLedger {
            name: "memory-ledger".into(),
            state: Mutex::new(State::default()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self
            .state
            .lock()
            .expect("invariant: the ledger lock is never poisoned"))
    }

    /// What the requests so far would have cost.
    pub fn meter(&self) -> Meter {
        self.with(|s| s.meter.clone())
    }

    /// From now on, also counts the units billed to each partition key (for a load test: a
    /// throttle is decided per partition). Off by default: a long run writes many partitions.
    pub fn metering_partitions(self) -> Self {
        self.with(|s| {
            s.partitions.get_or_insert_with(BTreeMap::new);
        });
        self
    }

    /// Units billed to each partition key since [`MemoryLedger::metering_partitions`] (empty
    /// when not metering).
    pub fn partition_units(&self) -> BTreeMap<String, PartitionUnits> {
        self.with(|s| s.partitions.clone().unwrap_or_default())
    }

    /// Every item, by key (for assertions).
    pub fn items(&self) -> BTreeMap<Key, Item> {
        self.inspect(BTreeMap::clone)
    }

    /// Looks at every item in place, under the ledger's lock, neither billed nor copied: what
    /// a check that runs often (a simulation's, every virtual minute) uses instead of
    /// [`MemoryLedger::items`]. `f` must not call the ledger.
    pub fn inspect<T>(&self, f: impl FnOnce(&BTreeMap<Key, Item>) -> T) -> T {
        self.with(|s| f(&s.items))
    }

    /// Stores `item` as is, bypassing every check: how a test plants an item that does not parse.
    pub fn insert_raw(&self, item: Item) {
        let key = (
            item.get(attr::PK).map_or("", sort_or_empty).to_string(),
            item.get(attr::SK).map_or("", sort_or_empty).to_string(),
        );
        self.with(|s| s.items.insert(key, item));
    }

    /// What DynamoDB's TTL process does: deletes every item whose `ttl` is before `now`.
    pub fn expire(&self, now: Timestamp) -> usize {
        let seconds = now.unix_seconds();
        self.with(|s| {
            let before = s.items.len();
            s.items.retain(|_, item| match item.get(attr::TTL) {
                Some(Value::N(ttl)) => ttl.parse::<i64>().map_or(true, |ttl| ttl >= seconds),
                _ => true,
            });
            before - s.items.len()
        })
    }

    /// A listing's page: what parses, and the rest as [`Unreadable`] (never an error).
    fn page<T>(
        &self,
        items: &[Item],
        next: Option<String>,
        parse: impl Fn(&Reader<'_>) -> Result<T, StoreError>,
    ) -> Page<T> {
        let mut page = Page::new(next);
        for item in items {
            let reader = Reader::new(&self.name, item);
            match parse(&reader) {
                Ok(value) => page.items.push(value),
                Err(e) => page.unreadable.push(unreadable(&reader, &e)),
            }
        }
        page
    }

    fn manifest_in(&self, state: &State, id: &ManifestId) -> Result<Option<Manifest>, StoreError> {
        state
            .get(&item::manifest_key(id))
            .map(|i| Reader::new(&self.name, i).manifest())
            .transpose()
    }

    /// The manifest `id` if its state is one of `expected`: what a conditional update would
    /// find. When it is not, the refused write is billed (DynamoDB bills a failed condition).
    fn expect(
        &self,
        state: &mut State,
        operation: &'static str,
        id: &ManifestId,
        expected: &[ManifestState],
    ) -> Result<Option<Manifest>, StoreError> {
        let manifest = self
            .manifest_in(state, id)?
            .filter(|m| expected.contains(&m.state));
        if manifest.is_none() {
            state.write(
                operation,
                Write {
                    key: item::manifest_key(id),
                    holds: false,
                    after: None,
                },
            );
        }
        Ok(manifest)
    }
}

fn sort_or_empty(value: &Value) -> &str {
    match value {
        Value::S(text) => text,
        _ => "",
    }
}

impl Ledger for MemoryLedger {
    async fn put_batch(&self, batch: &Batch) -> Result<bool, StoreError> {
        let after = item::batch_item(batch);
        let key = (
            item::batch_partition(&batch.shard),
            batch.key.as_str().to_string(),
        );
        Ok(self.with(|s| {
            let holds = s.get(&key).is_none();
            s.write(
                "PutItem",
                Write {
                    key,
                    holds,
                    after: Some(after),
                },
            )
        }))
    }

    async fn put_marker(&self, marker: &Marker) -> Result<MarkerOutcome, StoreError> {
        let key = item::marker_key(&marker.version);
        let after = item::marker_item(marker);
        self.with(|s| {
            let existing = s.get(&key).cloned();
            let written = s.write(
                "PutItem",
                Write {
                    key,
                    holds: existing.is_none(),
                    after: Some(after),
                },
            );
            match existing {
                // ReturnValuesOnConditionCheckFailure = ALL_OLD: the winner comes back free.
                Some(old) if !written => Ok(MarkerOutcome::Duplicate(Box::new(
                    Reader::new(&self.name, &old).marker(&marker.version)?,
                ))),
                _ => Ok(MarkerOutcome::Tracked),
            }
        })
    }

    async fn register_shard(&self, shard: &Shard, ttl: i64) -> Result<(), StoreError> {
        let key = item::shard_key(shard);
        let after = item::shard_item(shard, ttl);
        self.with(|s| {
            s.write(
                "PutItem",
                Write {
                    key,
                    holds: true,
                    after: Some(after),
                },
            )
        });
        Ok(())
    }

    async fn shards(&self, after: Option<&str>, limit: usize) -> Result<Page<Shard>, StoreError> {
        let (items, next) = self.with(|s| s.query(item::SHARDS_PK, after, None, limit));
        Ok(self.page(&items, next, |reader| reader.shard()))
    }

    async fn cursor(&self, shard: &Shard) -> Result<Option<Cursor>, StoreError> {
        let key = item::cursor_key(shard);
        self.with(|s| {
            s.request("GetItem");
            let item = s.get(&key).cloned();
            s.bill_read(&key.0, item.as_ref().map_or(0, item::size));
            item.map(|i| Reader::new(&self.name, &i).cursor(shard))
                .transpose()
        })
    }

    async fn batches(
        &self,
        shard: &Shard,
        after: Option<&BatchKey>,
        until: &BatchKey,
        limit: usize,
    ) -> Result<Page<Batch>, StoreError> {
        let pk = item::batch_partition(shard);
        let (items, next) = self.with(|s| {
            s.query(
                &pk,
                after.map(BatchKey::as_str),
                Some(until.as_str()),
                limit,
            )
        });
        Ok(self.page(&items, next, |reader| reader.batch(shard)))
    }

    async fn markers(&self, versions: &[VersionRef]) -> Result<Vec<Option<Marker>>, StoreError> {
        self.with(|s| {
            // BatchGetItem takes up to 100 keys per request.
            for _ in versions.chunks(100) {
                s.request("BatchGetItem");
            }
            versions
                .iter()
                .map(|version| {
                    let key = item::marker_key(version);
                    let item = s.get(&key).cloned();
                    s.bill_read(&key.0, item.as_ref().map_or(0, item::size));
                    item.map(|i| Reader::new(&self.name, &i).marker(version))
                        .transpose()
                })
                .collect()
        })
    }

    async fn cut(&self, cut: &Cut) -> Result<bool, StoreError> {
        let manifest = &cut.manifest;
        let cursor_key = item::cursor_key(&manifest.shard);
        let manifest_key = item::manifest_key(&manifest.id);
        let cursor = Cursor {
            shard: manifest.shard.clone(),
            position: manifest.last.clone(),
            last_manifest: Some(manifest.id.clone()),
        };
        self.with(|s| {
            let position = match s.get(&cursor_key) {
                Some(i) => Some(Reader::new(&self.name, i).cursor(&manifest.shard)?.position),
                None => None,
            };
            let writes = vec![
                Write {
                    key: cursor_key,
                    holds: position == manifest.after,
                    after: Some(item::cursor_item(&cursor)),
                },
                Write {
                    holds: s.get(&manifest_key).is_none(),
                    key: manifest_key,
                    after: Some(item::manifest_item(manifest)),
                },
            ];
            Ok(s.transact(writes))
        })
    }

    async fn open(&self, open: &OpenManifest) -> Result<(), StoreError> {
        self.with(|s| {
            s.write(
                "PutItem",
                Write {
                    key: item::open_key(&open.id, open.created_at),
                    holds: true,
                    after: Some(item::open_item(&open.id, open.created_at)),
                },
            )
        });
        Ok(())
    }

    async fn close(&self, open: &OpenManifest) -> Result<(), StoreError> {
        self.with(|s| {
            s.write(
                "DeleteItem",
                Write {
                    key: item::open_key(&open.id, open.created_at),
                    holds: true,
                    after: None,
                },
            )
        });
        Ok(())
    }

    async fn skip(
        &self,
        shard: &Shard,
        from: Option<&BatchKey>,
        to: &BatchKey,
    ) -> Result<bool, StoreError> {
        let key = item::cursor_key(shard);
        let cursor = Cursor {
            shard: shard.clone(),
            position: to.clone(),
            last_manifest: None,
        };
        self.with(|s| {
            let position = match s.get(&key) {
                Some(i) => Some(Reader::new(&self.name, i).cursor(shard)?.position),
                None => None,
            };
            Ok(s.write(
                "UpdateItem",
                Write {
                    key,
                    holds: position.as_ref() == from,
                    after: Some(item::cursor_item(&cursor)),
                },
            ))
        })
    }

    async fn manifest(&self, id: &ManifestId) -> Result<Option<Manifest>, StoreError> {
        self.with(|s| {
            s.request("GetItem");
            let key = item::manifest_key(id);
            s.bill_read(&key.0, s.get(&key).map_or(0, item::size));
            self.manifest_in(s, id)
        })
    }

    async fn advance(
        &self,
        id: &ManifestId,
        expected: &[ManifestState],
        to: ManifestState,
        changes: &ManifestChanges,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.with(|s| {
            let current = self.manifest_in(s, id)?;
            let holds = current
                .as_ref()
                .is_some_and(|m| expected.contains(&m.state));
            let after = current.map(|mut m| {
                m.state = to;
                m.updated_at = now;
                if let Some(arn) = &changes.execution_arn {
                    m.execution_arn = Some(arn.clone());
                }
                item::manifest_item(&m)
            });
            Ok(s.write(
                "UpdateItem",
                Write {
                    key: item::manifest_key(id),
                    holds,
                    after,
                },
            ))
        })
    }

    async fn complete(
        &self,
        id: &ManifestId,
        expected: &[ManifestState],
        result: &ConversionResult,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.with(|s| {
            let Some(mut manifest) = self.expect(s, "UpdateItem", id, expected)? else {
                return Ok(false);
            };
            manifest.state = ManifestState::Completed;
            manifest.updated_at = now;
            manifest.result = Some(ConversionResult {
                schema: None,
                ..result.clone()
            });
            Ok(s.write(
                "UpdateItem",
                Write {
                    key: item::manifest_key(id),
                    holds: true,
                    after: Some(item::manifest_item(&manifest)),
                },
            ))
        })
    }

    async fn fail(
        &self,
        id: &ManifestId,
        expected: &[ManifestState],
        error: &str,
        poison: &[Poison],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.with(|s| {
            let Some(mut manifest) = self.expect(s, "TransactWriteItems", id, expected)? else {
                return Ok(false);
            };
            manifest.state = ManifestState::Failed;
            manifest.updated_at = now;
            manifest.error = Some(error.to_string());
            let mut writes = vec![Write {
                key: item::manifest_key(id),
                holds: true,
                after: Some(item::manifest_item(&manifest)),
            }];
            for bad in poison.iter().take(MAX_POISON_PER_FAILURE) {
                let key = item::marker_key(&bad.version);
                let Some(existing) = s.get(&key) else {
                    return Err(StoreError::Malformed {
                        table: self.name.clone(),
                        key: format!("{}/{}", key.0, key.1),
                        detail: format!("poison {} has no marker", bad.version),
                    });
                };
                let mut marker = Reader::new(&self.name, existing).marker(&bad.version)?;
                marker.attempts += 1;
                marker.last_error = Some(bad.reason.clone());
                writes.push(Write {
                    key,
                    holds: true,
                    after: Some(item::marker_item(&marker)),
                });
            }
            Ok(s.transact(writes))
        })
    }

    async fn release(
        &self,
        id: &ManifestId,
        retry: &Batch,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.with(|s| {
            let Some(mut manifest) =
                self.expect(s, "TransactWriteItems", id, &[ManifestState::Failed])?
            else {
                return Ok(false);
            };
            manifest.state = ManifestState::Released;
            manifest.updated_at = now;
            let retry_key = (
                item::batch_partition(&retry.shard),
                retry.key.as_str().to_string(),
            );
            let writes = vec![
                Write {
                    key: item::manifest_key(id),
                    holds: true,
                    after: Some(item::manifest_item(&manifest)),
                },
                Write {
                    holds: s.get(&retry_key).is_none(),
                    key: retry_key,
                    after: Some(item::batch_item(retry)),
                },
            ];
            Ok(s.transact(writes))
        })
    }

    async fn supersede(&self, version: &VersionRef, reason: &str) -> Result<bool, StoreError> {
        let key = item::marker_key(version);
        self.with(|s| {
            let after = match s.get(&key) {
                Some(existing) => {
                    let mut marker = Reader::new(&self.name, existing).marker(version)?;
                    marker.superseded = Some(reason.to_string());
                    Some(item::marker_item(&marker))
                }
                None => None,
            };
            Ok(s.write(
                "UpdateItem",
                Write {
                    key,
                    holds: after.is_some(),
                    after,
                },
            ))
        })
    }

    async fn lease(
        &self,
        shard: &Shard,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let key = item::lease_key(shard);
        self.with(|s| {
            let free = s
                .get(&key)
                .and_then(item::lease_until)
                .is_none_or(|held| held < now);
            Ok(s.write(
                "PutItem",
                Write {
                    key,
                    holds: free,
                    after: Some(item::lease_item(shard, owner, until)),
                },
            ))
        })
    }

    async fn open_manifests(
        &self,
        partition: u8,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<OpenManifest>, StoreError> {
        let pk = item::open_pk(partition);
        let (items, next) = self.with(|s| s.query(&pk, after, None, limit));
        Ok(self.page(&items, next, |reader| reader.open_manifest()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{BatchContents, Ref, Version};
    use crate::types::DatePrefix;

    #[tokio::test]
    async fn memory_ledger_meets_the_contract() {
        let ledger = MemoryLedger::new();
        crate::ledger::contract::run_all(&ledger, 0, |item| ledger.insert_raw(item)).await;
    }

    fn shard() -> Shard {
        Shard {
            date: DatePrefix::parse("2026-11-30").unwrap(),
            number: 0,
        }
    }

    #[tokio::test]
    async fn writes_are_billed_by_size_and_transactions_twice() {
        let ledger = MemoryLedger::new();
        let refs = (0..10)
            .map(|n| Ref {
                key: format!("logs/2026/11/30/host-{n:04}.ndjson.gz"),
                version: Version::Id("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".into()),
            })
            .collect();
        let batch = Batch {
            shard: shard(),
            key: BatchKey::new(Timestamp(1)),
            contents: BatchContents::Arrivals {
                bucket: "input".into(),
                refs,
                bytes: 10 << 20,
            },
            ttl: 1,
        };
        ledger.put_batch(&batch).await.unwrap();
        assert_eq!(ledger.meter().write_units, 1, "ten refs fit in one KB");

        let big = Batch {
            key: BatchKey::new(Timestamp(2)),
            contents: BatchContents::Arrivals {
                bucket: "input".into(),
                // Keys deflate cannot shrink much: a pseudo-random walk over 64 letters.
                refs: (0..3u64)
                    .map(|n| {
                        let mut x = n + 1;
                        let key = (0..900)
                            .map(|_| {
                                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                                char::from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"[(x >> 58) as usize])
                            })
                            .collect();
                        Ref {
                            key,
                            version: Version::Id("v".into()),
                        }
                    })
                    .collect(),
                bytes: 3,
            },
            ..batch.clone()
        };
        let size = item::size(&item::batch_item(&big));
        assert!(size > 2048, "{size}");
        let units = size.div_ceil(1024);
        ledger.put_batch(&big).await.unwrap();
        assert_eq!(ledger.meter().write_units, 1 + units);
        assert!(!ledger.put_batch(&big).await.unwrap());
        assert_eq!(
            ledger.meter().write_units,
            1 + 2 * units,
            "a failed condition is billed"
        );

        let id = ManifestId::parse("m-1").unwrap();
        let manifest = Manifest {
            id: id.clone(),
            shard: shard(),
            state: ManifestState::Starting,
            after: None,
            last: batch.key.clone(),
            manifest_path: "s3://m/m-1.json".into(),
            file_count: 10,
            total_bytes: 1_000,
            execution_arn: None,
            result: None,
            error: None,
            created_at: Timestamp(5),
            updated_at: Timestamp(5),
            ttl: 1,
        };
        let before = ledger.meter().write_units;
        assert!(ledger.cut(&Cut { manifest }).await.unwrap());
        let meter = ledger.meter();
        assert_eq!(
            meter.write_units - before,
            2 * 2,
            "two small items, transacted"
        );
        assert_eq!(meter.requests["TransactWriteItems"], 1);
        assert_eq!(meter.write_units_by_kind[&'C'], 2);
        assert_eq!(meter.write_units_by_kind[&'B'], 1 + 2 * units);
    }

    #[tokio::test]
    async fn expiry_deletes_what_is_past_its_ttl() {
        let ledger = MemoryLedger::new();
        ledger.register_shard(&shard(), 100).await.unwrap();
        assert_eq!(ledger.expire(Timestamp(100_000)), 0);
        assert_eq!(ledger.expire(Timestamp(101_000)), 1);
        assert!(ledger.items().is_empty());
    }
}
