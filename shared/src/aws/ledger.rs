//! The ledger ([`crate::ledger`], `docs/TRACKING.md`) on DynamoDB: [`DynamoLedger`].
//!
//! Every item is built and read by [`crate::ledger::item`], the layout's one definition; this
//! module only maps its neutral [`Value`]s to the SDK's [`AttributeValue`]s ([`to_attributes`],
//! [`from_attributes`]) and says which request each operation is. A `Put` writes exactly the
//! item `item::*_item` builds; an update sets exactly the attributes that the in-memory ledger's
//! rebuilt item changes, so both leave equal items behind and the contract suite reads them back
//! through the same [`Reader`].
//!
//! Every attribute name in an expression goes through a `#name` placeholder: several of the
//! layout's names (`status`, `error`, `date`, `size`, `ttl`, `position`, `last`, `result`) are
//! DynamoDB reserved words, and one rule for all is easier to check than a list.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::ConditionalWriteError;
use crate::ledger::item::{self, attr, Item, Key, Reader, Value};
use crate::ledger::{
    Batch, BatchKey, Cursor, Cut, Ledger, Manifest, ManifestChanges, ManifestState, Marker,
    MarkerOutcome, OpenManifest, Page, Poison, Shard, StoreError, Unreadable, VersionRef,
    MAX_POISON_PER_FAILURE,
};
use crate::types::{ConversionResult, ManifestId, Timestamp};

/// An item as the SDK carries it.
pub type Attributes = HashMap<String, AttributeValue>;

/// `BatchGetItem` takes at most this many keys per request.
const BATCH_GET_KEYS: usize = 100;

/// How often `BatchGetItem`'s unprocessed keys are asked for again before the read fails.
/// DynamoDB leaves keys unprocessed when the request hits a partition's throughput or the 16 MB
/// response limit; a few retries with backoff ride out a throttle without hiding an outage.
const UNPROCESSED_RETRIES: u32 = 8;

/// A neutral value as an SDK attribute value.
fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::S(text) => AttributeValue::S(text.clone()),
        Value::N(text) => AttributeValue::N(text.clone()),
        Value::L(values) => AttributeValue::L(values.iter().map(to_attribute).collect()),
        Value::B(bytes) => AttributeValue::B(Blob::new(bytes.clone())),
    }
}

/// An SDK attribute value as a neutral value; `None` for the types the layout never writes
/// (maps, sets, booleans, nulls), which make the item unreadable rather than silently partial.
fn from_attribute(attribute: &AttributeValue) -> Option<Value> {
    Some(match attribute {
        AttributeValue::S(text) => Value::S(text.clone()),
        AttributeValue::N(text) => Value::N(text.clone()),
        AttributeValue::L(values) => {
            Value::L(values.iter().map(from_attribute).collect::<Option<_>>()?)
        }
        AttributeValue::B(bytes) => Value::B(bytes.clone().into_inner()),
        _ => return None,
    })
}

/// A neutral item as the SDK's item.
pub fn to_attributes(item: &Item) -> Attributes {
    item.iter()
        .map(|(name, value)| (name.clone(), to_attribute(value)))
        .collect()
}

/// The SDK's item as a neutral item; the error names the first attribute of a type the layout
/// never writes.
pub fn from_attributes(attributes: &Attributes) -> Result<Item, String> {
    let mut item = Item::new();
    for (name, attribute) in attributes {
        let value = from_attribute(attribute).ok_or_else(|| {
            format!("{name} has a type the ledger never writes (not S, N, L or B)")
        })?;
        item.insert(name.clone(), value);
    }
    Ok(item)
}

/// The SDK's form of a primary key.
fn key_attributes(key: &Key) -> Attributes {
    HashMap::from([
        (attr::PK.to_string(), AttributeValue::S(key.0.clone())),
        (attr::SK.to_string(), AttributeValue::S(key.1.clone())),
    ])
}

/// The primary key of an item the SDK returned (empty parts when missing or not strings).
fn key_of(attributes: &Attributes) -> Key {
    let part = |name: &str| {
        attributes
            .get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    (part(attr::PK), part(attr::SK))
}

/// Placeholders of an expression: `#<attribute>` for every name it uses, and the values it was
/// given. DynamoDB rejects an empty or an unused placeholder map, so only what was asked for is
/// sent, and `None` when nothing was.
#[derive(Default)]
struct Placeholders {
    names: Names,
    values: Values,
}

/// `ExpressionAttributeNames`: placeholder to attribute name.
type Names = HashMap<String, String>;

/// `ExpressionAttributeValues`: placeholder to value.
type Values = HashMap<String, AttributeValue>;

impl Placeholders {
    /// The placeholder of attribute `name`.
    fn name(&mut self, name: &str) -> String {
        let placeholder = format!("#{name}");
        self.names.insert(placeholder.clone(), name.to_string());
        placeholder
    }

    /// Binds `:<label>` to `value` and returns the placeholder.
    fn value(&mut self, label: &str, value: AttributeValue) -> String {
        let placeholder = format!(":{label}");
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// `attribute_not_exists(pk)`: the item does not exist.
    fn absent(&mut self) -> String {
        format!("attribute_not_exists({})", self.name(attr::PK))
    }

    /// `attribute_exists(pk)`: the item exists.
    fn present(&mut self) -> String {
        format!("attribute_exists({})", self.name(attr::PK))
    }

    /// `#status IN (...)`: the manifest is in one of `states` (never empty: see
    /// [`DynamoLedger::status_change`]).
    fn status_in(&mut self, states: &[ManifestState]) -> String {
        let values: Vec<String> = states
            .iter()
            .enumerate()
            .map(|(n, state)| self.value(&format!("expected{n}"), s(state.as_str())))
            .collect();
        format!("{} IN ({})", self.name(attr::STATUS), values.join(", "))
    }

    /// The cursor is where the caller read it: absent for `None`, at `position` otherwise.
    fn cursor_at(&mut self, position: Option<&BatchKey>) -> String {
        match position {
            None => self.absent(),
            Some(key) => {
                let value = self.value("from", s(key.as_str()));
                format!("{} = {value}", self.name(attr::POSITION))
            }
        }
    }

    /// `SET #a = :a, ...` for `(attribute, value)` pairs.
    fn set(&mut self, pairs: Vec<(&str, AttributeValue)>) -> String {
        let assignments: Vec<String> = pairs
            .into_iter()
            .map(|(name, value)| format!("{} = {}", self.name(name), self.value(name, value)))
            .collect();
        format!("SET {}", assignments.join(", "))
    }

    /// The name and value maps to send, each `None` when empty.
    fn into_parts(self) -> (Option<Names>, Option<Values>) {
        (
            (!self.names.is_empty()).then_some(self.names),
            (!self.values.is_empty()).then_some(self.values),
        )
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// One conditional write, built once and sent alone (`PutItem`, `UpdateItem`) or as one item
/// of a `TransactWriteItems`.
struct Write {
    target: Target,
    condition: String,
    placeholders: Placeholders,
}

enum Target {
    /// A whole item, as `item::*_item` built it.
    Put(Attributes),
    /// Changes to the item with this key.
    Update { key: Attributes, expression: String },
}

impl Write {
    /// Puts `item` if the condition `condition(placeholders)` holds.
    fn put(item: &Item, condition: impl FnOnce(&mut Placeholders) -> String) -> Self {
        let mut placeholders = Placeholders::default();
        let condition = condition(&mut placeholders);
        Write {
            target: Target::Put(to_attributes(item)),
            condition,
            placeholders,
        }
    }

    /// Updates the item at `key` with the expression `update` builds, if `condition` holds.
    fn update(
        key: &Key,
        update: impl FnOnce(&mut Placeholders) -> String,
        condition: impl FnOnce(&mut Placeholders) -> String,
    ) -> Self {
        let mut placeholders = Placeholders::default();
        let expression = update(&mut placeholders);
        let condition = condition(&mut placeholders);
        Write {
            target: Target::Update {
                key: key_attributes(key),
                expression,
            },
            condition,
            placeholders,
        }
    }

    /// This write as an item of a transaction on `table`.
    fn transact(self, table: &str) -> TransactWriteItem {
        let (names, values) = self.placeholders.into_parts();
        match self.target {
            Target::Put(item) => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(item))
                        .condition_expression(self.condition)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .build()
                        .expect("invariant: table and item are set"),
                )
                .build(),
            Target::Update { key, expression } => TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(table)
                        .set_key(Some(key))
                        .update_expression(expression)
                        .condition_expression(self.condition)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .build()
                        .expect("invariant: table, key and expression are set"),
                )
                .build(),
        }
    }
}

/// How a transaction ended when it did not fail outright.
enum Transaction {
    /// Every write was made.
    Written,
    /// Nothing was written because conditions were false: per item of the request, whether its
    /// condition was one of them.
    Refused(Vec<bool>),
}

/// The cancellation reason DynamoDB gives an item whose condition was false.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// Which items of a cancelled transaction of `items` writes were refused by their condition,
/// from the cancellation reasons (one per item, in request order; code `None` for an item that
/// was fine). `None` unless false conditions, and nothing else, cancelled it: a
/// `TransactionConflict` (another transaction on one of the items), throttling or a validation
/// error wrote nothing either, but says nothing about the conditions, so the caller must retry
/// rather than take it for `false`.
fn refused_by_conditions(codes: &[Option<&str>], items: usize) -> Option<Vec<bool>> {
    let refused: Vec<bool> = codes
        .iter()
        .map(|code| *code == Some(CONDITION_FAILED))
        .collect();
    let only_conditions = codes
        .iter()
        .all(|code| matches!(code, None | Some("None") | Some(CONDITION_FAILED)));
    (codes.len() == items && only_conditions && refused.contains(&true)).then_some(refused)
}

/// [`Ledger`] on a DynamoDB table with the layout of [`crate::ledger::item`].
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    /// The ledger in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn service<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
        &self,
        operation: &'static str,
    ) -> impl FnOnce(SdkError<E, R>) -> StoreError + '_ {
        move |error| StoreError::Service {
            table: self.table.clone(),
            operation,
            message: crate::aws::describe_error(&error),
        }
    }

    fn malformed(&self, key: &Key, detail: impl Into<String>) -> StoreError {
        StoreError::Malformed {
            table: self.table.clone(),
            key: format!("{}/{}", key.0, key.1),
            detail: detail.into(),
        }
    }

    /// An item the SDK returned, as a neutral item; an attribute of a foreign type makes it
    /// [`StoreError::Malformed`].
    fn neutral(&self, attributes: &Attributes) -> Result<Item, StoreError> {
        from_attributes(attributes).map_err(|detail| self.malformed(&key_of(attributes), detail))
    }

    /// The result of a conditional write: `Ok(true)` if it was made, `Ok(false)` if its
    /// condition was not met, any other error as [`StoreError::Service`].
    fn written<O, E: ConditionalWriteError, R: std::fmt::Debug>(
        &self,
        operation: &'static str,
        result: Result<O, SdkError<E, R>>,
    ) -> Result<bool, StoreError> {
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(E::condition_failed) => Ok(false),
            Err(e) => Err(self.service(operation)(e)),
        }
    }

    /// Sends `write` alone: `PutItem` or `UpdateItem`.
    async fn write(&self, write: Write) -> Result<bool, StoreError> {
        let (names, values) = write.placeholders.into_parts();
        match write.target {
            Target::Put(item) => {
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression(write.condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .send()
                    .await;
                self.written("PutItem", result)
            }
            Target::Update { key, expression } => {
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .update_expression(expression)
                    .condition_expression(write.condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .send()
                    .await;
                self.written("UpdateItem", result)
            }
        }
    }

    /// Sends `writes` as one `TransactWriteItems`. A cancellation for false conditions only is
    /// [`Transaction::Refused`]; any other (a `TransactionConflict` with a concurrent
    /// transaction on one of the items, throttling, validation) is [`StoreError::Service`]:
    /// nothing was written and the caller may retry.
    async fn transact(&self, writes: Vec<Write>) -> Result<Transaction, StoreError> {
        let count = writes.len();
        let items: Vec<TransactWriteItem> = writes
            .into_iter()
            .map(|w| w.transact(&self.table))
            .collect();
        let error = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Ok(Transaction::Written),
            Err(error) => error,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            error.as_service_error()
        {
            let codes: Vec<Option<&str>> = cancelled
                .cancellation_reasons()
                .iter()
                .map(|reason| reason.code())
                .collect();
            if let Some(refused) = refused_by_conditions(&codes, count) {
                return Ok(Transaction::Refused(refused));
            }
        }
        Err(self.service("TransactWriteItems")(error))
    }

    /// A strongly consistent `GetItem`.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(self.service("GetItem"))?;
        output.item.as_ref().map(|a| self.neutral(a)).transpose()
    }

    /// Strongly consistent `BatchGetItem`s of `keys` (distinct), 100 per request, asking again
    /// for what DynamoDB left unprocessed: the items found, by key.
    async fn get_all(&self, keys: &[Key]) -> Result<HashMap<Key, Attributes>, StoreError> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(BATCH_GET_KEYS) {
            let mut pending: Vec<Attributes> = chunk.iter().map(key_attributes).collect();
            let mut retries = 0;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .expect("invariant: keys are set");
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(self.service("BatchGetItem"))?;
                let items = output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                for attributes in items {
                    found.insert(key_of(&attributes), attributes);
                }
                pending = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !pending.is_empty() {
                    retries += 1;
                    if retries > UNPROCESSED_RETRIES {
                        return Err(StoreError::Service {
                            table: self.table.clone(),
                            operation: "BatchGetItem",
                            message: format!(
                                "{} keys still unprocessed after {UNPROCESSED_RETRIES} retries",
                                pending.len()
                            ),
                        });
                    }
                    let backoff = 50u64 << retries.min(6);
                    tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
                }
            }
        }
        Ok(found)
    }

    /// One page of a strongly consistent `Query` of partition `pk`: sort keys in
    /// `(after, until]` (no upper bound without `until`), at most `limit` items, each parsed by
    /// `parse` or reported in [`Page::unreadable`].
    ///
    /// `after` is the `ExclusiveStartKey`, and `until` the one condition DynamoDB allows on the
    /// sort key (`sk <= :until`). That is `(after, until]` exactly, with no arithmetic on
    /// strings (the alternative, `BETWEEN` the smallest key after `after` and `until`, needs
    /// `after` followed by a NUL). DynamoDB refuses a start key outside the key condition
    /// ("The provided starting key is outside query boundaries"), and `Limit` must be at least
    /// one: both cases, an empty range and a limit of 0, are an empty last page without a
    /// request, as the in-memory ledger answers them.
    async fn query<T>(
        &self,
        pk: &str,
        after: Option<&str>,
        until: Option<&str>,
        limit: usize,
        parse: impl Fn(&Reader<'_>) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let empty = match (after, until) {
            (Some(after), Some(until)) => after >= until,
            _ => false,
        };
        if empty || limit == 0 {
            return Ok(Page::new(None));
        }
        let mut placeholders = Placeholders::default();
        let partition = placeholders.value("pk", s(pk));
        let mut condition = format!("{} = {partition}", placeholders.name(attr::PK));
        if let Some(until) = until {
            let until = placeholders.value("until", s(until));
            condition.push_str(&format!(" AND {} <= {until}", placeholders.name(attr::SK)));
        }
        let (names, values) = placeholders.into_parts();
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(after.map(|sk| key_attributes(&(pk.into(), sk.into()))))
            .send()
            .await
            .map_err(self.service("Query"))?;
        let next = output
            .last_evaluated_key
            .as_ref()
            .map(|key| key_of(key).1)
            .filter(|sk| !sk.is_empty());
        let mut page = Page::new(next);
        for attributes in output.items.unwrap_or_default() {
            let parsed = self.neutral(&attributes).and_then(|item| {
                let reader = Reader::new(&self.table, &item);
                parse(&reader)
            });
            match parsed {
                Ok(value) => page.items.push(value),
                Err(e) => {
                    let (pk, sk) = key_of(&attributes);
                    page.unreadable.push(Unreadable {
                        pk,
                        sk,
                        error: e.to_string(),
                    });
                }
            }
        }
        Ok(page)
    }

    /// A manifest's `status` change from one of `expected`, setting `to`, `updated_at` and
    /// `more`; `None` when `expected` is empty (no state matches: DynamoDB has no empty `IN`).
    fn status_change(
        id: &ManifestId,
        expected: &[ManifestState],
        to: ManifestState,
        now: Timestamp,
        more: Vec<(&str, AttributeValue)>,
    ) -> Option<Write> {
        if expected.is_empty() {
            return None;
        }
        let mut pairs = vec![
            (attr::STATUS, s(to.as_str())),
            (attr::UPDATED_AT, s(now.to_rfc3339())),
        ];
        pairs.extend(more);
        Some(Write::update(
            &item::manifest_key(id),
            |p| p.set(pairs),
            |p| p.status_in(expected),
        ))
    }

    /// The cursor of `shard` moved to `position` by `manifest`, if it is still at `from`.
    fn cursor_write(
        shard: &Shard,
        from: Option<&BatchKey>,
        position: &BatchKey,
        manifest: Option<&ManifestId>,
    ) -> Write {
        let cursor = Cursor {
            shard: shard.clone(),
            position: position.clone(),
            last_manifest: manifest.cloned(),
        };
        Write::put(&item::cursor_item(&cursor), |p| p.cursor_at(from))
    }
}

impl Ledger for DynamoLedger {
    async fn put_batch(&self, batch: &Batch) -> Result<bool, StoreError> {
        self.write(Write::put(&item::batch_item(batch), Placeholders::absent))
            .await
    }

    async fn put_marker(&self, marker: &Marker) -> Result<MarkerOutcome, StoreError> {
        let key = item::marker_key(&marker.version);
        let mut placeholders = Placeholders::default();
        let condition = placeholders.absent();
        let (names, _) = placeholders.into_parts();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(&item::marker_item(marker))))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let returned = match result {
            Ok(_) => return Ok(MarkerOutcome::Tracked),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => failed.item.clone(),
                _ => return Err(self.service("PutItem")(error)),
            },
        };
        // DynamoDB returns the standing marker with the refusal (ALL_OLD): the duplicate costs
        // no read. Endpoints that ignore ReturnValuesOnConditionCheckFailure (DynamoDB Local
        // before 2.0, older moto) return none; the marker is then read, strongly consistent so
        // that the write that just refused ours is seen. Markers are never deleted except by
        // TTL, long after any delivery, so a missing one is an error, not a race to retry.
        let existing = match returned {
            Some(attributes) => self.neutral(&attributes)?,
            None => self
                .get(&key)
                .await?
                .ok_or_else(|| self.malformed(&key, "vanished after a refused insert"))?,
        };
        let standing = Reader::new(&self.table, &existing).marker(&marker.version)?;
        Ok(MarkerOutcome::Duplicate(Box::new(standing)))
    }

    async fn register_shard(&self, shard: &Shard, ttl: i64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(&item::shard_item(shard, ttl))))
            .send()
            .await
            .map_err(self.service("PutItem"))?;
        Ok(())
    }

    async fn shards(&self, after: Option<&str>, limit: usize) -> Result<Page<Shard>, StoreError> {
        self.query(item::SHARDS_PK, after, None, limit, |r| r.shard())
            .await
    }

    async fn cursor(&self, shard: &Shard) -> Result<Option<Cursor>, StoreError> {
        self.get(&item::cursor_key(shard))
            .await?
            .map(|i| Reader::new(&self.table, &i).cursor(shard))
            .transpose()
    }

    async fn batches(
        &self,
        shard: &Shard,
        after: Option<&BatchKey>,
        until: &BatchKey,
        limit: usize,
    ) -> Result<Page<Batch>, StoreError> {
        self.query(
            &item::batch_partition(shard),
            after.map(BatchKey::as_str),
            Some(until.as_str()),
            limit,
            |reader| reader.batch(shard),
        )
        .await
    }

    async fn markers(&self, versions: &[VersionRef]) -> Result<Vec<Option<Marker>>, StoreError> {
        // BatchGetItem refuses a request that names one key twice.
        let keys: Vec<Key> = versions.iter().map(item::marker_key).collect();
        let mut seen = HashSet::new();
        let distinct: Vec<Key> = keys.iter().filter(|k| seen.insert(*k)).cloned().collect();
        let found = self.get_all(&distinct).await?;
        versions
            .iter()
            .zip(&keys)
            .map(|(version, key)| match found.get(key) {
                Some(attributes) => {
                    let item = self.neutral(attributes)?;
                    Reader::new(&self.table, &item).marker(version).map(Some)
                }
                None => Ok(None),
            })
            .collect()
    }

    async fn cut(&self, cut: &Cut) -> Result<bool, StoreError> {
        let manifest = &cut.manifest;
        let writes = vec![
            Self::cursor_write(
                &manifest.shard,
                manifest.after.as_ref(),
                &manifest.last,
                Some(&manifest.id),
            ),
            Write::put(&item::manifest_item(manifest), Placeholders::absent),
        ];
        Ok(matches!(self.transact(writes).await?, Transaction::Written))
    }

    async fn open(&self, open: &OpenManifest) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(&item::open_item(
                &open.id,
                open.created_at,
            ))))
            .send()
            .await
            .map_err(self.service("PutItem"))?;
        Ok(())
    }

    async fn close(&self, open: &OpenManifest) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(&item::open_key(
                &open.id,
                open.created_at,
            ))))
            .send()
            .await
            .map_err(self.service("DeleteItem"))?;
        Ok(())
    }

    async fn skip(
        &self,
        shard: &Shard,
        from: Option<&BatchKey>,
        to: &BatchKey,
    ) -> Result<bool, StoreError> {
        self.write(Self::cursor_write(shard, from, to, None)).await
    }

    async fn manifest(&self, id: &ManifestId) -> Result<Option<Manifest>, StoreError> {
        self.get(&item::manifest_key(id))
            .await?
            .map(|i| Reader::new(&self.table, &i).manifest())
            .transpose()
    }

    async fn advance(
        &self,
        id: &ManifestId,
        expected: &[ManifestState],
        to: ManifestState,
        changes: &ManifestChanges,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let more = match &changes.execution_arn {
            Some(arn) => vec![(attr::EXECUTION_ARN, s(arn))],
            None => vec![],
        };
        match Self::status_change(id, expected, to, now, more) {
            Some(write) => self.write(write).await,
            None => Ok(false),
        }
    }

    async fn complete(
        &self,
        id: &ManifestId,
        expected: &[ManifestState],
        result: &ConversionResult,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let more = vec![(attr::RESULT, s(item::result_json(result)))];
        match Self::status_change(id, expected, ManifestState::Completed, now, more) {
            Some(write) => self.write(write).await,
            None => Ok(false),
        }
    }

    async fn fail(
        &self,
        id: &ManifestId,
        expected: &[ManifestState],
        error: &str,
        poison: &[Poison],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let more = vec![(attr::ERROR, s(error))];
        let Some(manifest) = Self::status_change(id, expected, ManifestState::Failed, now, more)
        else {
            return Ok(false);
        };
        // A transaction may not name one item twice: a version listed twice is counted once,
        // with its last reason (what the in-memory ledger's successive rebuilds leave).
        let mut counted: Vec<&Poison> = Vec::new();
        for bad in poison.iter().take(MAX_POISON_PER_FAILURE) {
            counted.retain(|c| c.version != bad.version);
            counted.push(bad);
        }
        let mut writes = vec![manifest];
        for bad in &counted {
            writes.push(Write::update(
                &item::marker_key(&bad.version),
                |p| {
                    let one = p.value("one", AttributeValue::N("1".into()));
                    let reason = p.value("reason", s(&bad.reason));
                    format!(
                        "ADD {} {one} SET {} = {reason}",
                        p.name(attr::ATTEMPTS),
                        p.name(attr::LAST_ERROR)
                    )
                },
                Placeholders::present,
            ));
        }
        match self.transact(writes).await? {
            Transaction::Written => Ok(true),
            // The manifest moved on (or does not exist): nothing to count.
            Transaction::Refused(failed) if failed[0] => Ok(false),
            // Only markers refused: a poison version that was never tracked, a caller's bug.
            Transaction::Refused(failed) => {
                let missing = failed
                    .iter()
                    .skip(1)
                    .position(|f| *f)
                    .and_then(|n| counted.get(n))
                    .expect("invariant: a refused transaction names a refused item");
                let key = item::marker_key(&missing.version);
                Err(self.malformed(&key, format!("poison {} has no marker", missing.version)))
            }
        }
    }

    async fn release(
        &self,
        id: &ManifestId,
        retry: &Batch,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let Some(manifest) = Self::status_change(
            id,
            &[ManifestState::Failed],
            ManifestState::Released,
            now,
            vec![],
        ) else {
            return Ok(false);
        };
        let writes = vec![
            manifest,
            Write::put(&item::batch_item(retry), Placeholders::absent),
        ];
        Ok(matches!(self.transact(writes).await?, Transaction::Written))
    }

    async fn supersede(&self, version: &VersionRef, reason: &str) -> Result<bool, StoreError> {
        let write = Write::update(
            &item::marker_key(version),
            |p| p.set(vec![(attr::SUPERSEDED, s(reason))]),
            Placeholders::present,
        );
        self.write(write).await
    }

    async fn lease(
        &self,
        shard: &Shard,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let item = item::lease_item(shard, owner, until);
        self.write(Write::put(&item, |p| {
            let absent = p.absent();
            let until = p.name(attr::UNTIL);
            let now = p.value("now", AttributeValue::N(now.0.to_string()));
            format!("{absent} OR {until} < {now}")
        }))
        .await
    }

    async fn open_manifests(
        &self,
        partition: u8,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<OpenManifest>, StoreError> {
        self.query(&item::open_pk(partition), after, None, limit, |r| {
            r.open_manifest()
        })
        .await
    }
}

/// Creates a ledger table: string keys [`attr::PK`] and [`attr::SK`], no secondary index,
/// on-demand billing. Used by tests and the local pipeline; production tables come from
/// Terraform with the same layout.
pub async fn create_table(client: &Client, table: &str) -> Result<(), String> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, kind) in [(attr::PK, KeyType::Hash), (attr::SK, KeyType::Range)] {
        request = request
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .map_err(|e| e.to_string())?,
            );
    }
    request
        .send()
        .await
        .map_err(|e| crate::aws::describe_error(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_attribute_values() {
        let mut item = Item::new();
        item.insert("s".into(), Value::S("text".into()));
        item.insert("n".into(), Value::N("-12.5".into()));
        item.insert("b".into(), Value::B(vec![0, 1, 255]));
        item.insert(
            "l".into(),
            Value::L(vec![
                Value::S("a".into()),
                Value::L(vec![Value::N("1".into())]),
            ]),
        );
        assert_eq!(from_attributes(&to_attributes(&item)), Ok(item));
    }

    #[test]
    fn foreign_types_are_named_not_dropped() {
        let attributes = HashMap::from([
            ("pk".to_string(), s("D")),
            ("flag".to_string(), AttributeValue::Bool(true)),
        ]);
        let error = from_attributes(&attributes).unwrap_err();
        assert!(error.contains("flag"), "{error}");
        let nested = HashMap::from([(
            "l".to_string(),
            AttributeValue::L(vec![AttributeValue::Null(true)]),
        )]);
        assert!(from_attributes(&nested).is_err());
    }

    #[test]
    fn only_false_conditions_make_a_refusal() {
        let refused = |codes: &[Option<&str>]| refused_by_conditions(codes, 3);
        assert_eq!(
            refused(&[Some("None"), Some("ConditionalCheckFailed"), None]),
            Some(vec![false, true, false])
        );
        assert_eq!(
            refused(&[
                Some("ConditionalCheckFailed"),
                Some("TransactionConflict"),
                None
            ]),
            None,
            "a conflict is retried, not taken for a false condition"
        );
        assert_eq!(refused(&[Some("None"), Some("None"), Some("None")]), None);
        assert_eq!(
            refused(&[Some("ConditionalCheckFailed")]),
            None,
            "reasons that do not match the request are not trusted"
        );
    }

    #[test]
    fn expressions_name_every_attribute_through_a_placeholder() {
        let mut p = Placeholders::default();
        let set = p.set(vec![
            (attr::STATUS, s("running")),
            (attr::UPDATED_AT, s("t")),
        ]);
        assert_eq!(set, "SET #status = :status, #updated_at = :updated_at");
        let condition = p.status_in(&[ManifestState::Starting, ManifestState::Running]);
        assert_eq!(condition, "#status IN (:expected0, :expected1)");
        let (names, values) = p.into_parts();
        assert_eq!(names.map(|n| n.len()), Some(2));
        assert_eq!(values.map(|v| v.len()), Some(4));
        assert_eq!(Placeholders::default().into_parts(), (None, None));
    }
}
