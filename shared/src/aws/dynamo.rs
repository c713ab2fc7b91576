//! The tracking store on DynamoDB.
//!
//! One table, keyed by `date_prefix` (partition) and `file_key` (sort): file items use the
//! object key, manifest items `MANIFEST#<id>`. Every name is defined in [`crate::table`]. Two
//! sparse global secondary indexes make the reads proportional to what is needed, never to the
//! size of a day:
//!
//! * [`PENDING_FILES`]: partition `pending_prefix`, sort `created_at`. `pending_prefix` is set
//!   only while a file is pending, so the index holds pending files only, oldest first.
//!   (`Limit` with a `FilterExpression` on the base table would be wrong: DynamoDB applies
//!   `Limit` before the filter and can return no pending file while thousands exist.)
//! * [`OPEN_MANIFESTS`]: partition `open_shard` (always `open`), sort `created_at`, set only
//!   while the sweep must look at a manifest: `claiming`, `starting`, or marked `failed` by the
//!   state machine.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::ConditionalWriteError;
use crate::table::v1::attr::*;
use crate::table::v1::{
    Index, Projection, INDEXES, ITEM_TYPE_FILE, ITEM_TYPE_MANIFEST, KEY_ATTRIBUTES, OPEN_MANIFESTS,
    OPEN_SHARD_VALUE, PARTITION_KEY, PENDING_FILES, SORT_KEY,
};
use crate::tracking::{ManifestChanges, PendingPrefix, StoreError, TrackOutcome, TrackingStore};
use crate::types::{
    ConversionResult, DatePrefix, FileRecord, FileStatus, ManifestId, ManifestRecord,
    ManifestStatus, ObjectRef, Timestamp, MANIFEST_KEY_PREFIX,
};

/// Name of the sparse index of pending files ([`PENDING_FILES`]).
pub const PENDING_INDEX: &str = PENDING_FILES.name;
/// Name of the sparse index of open manifests ([`OPEN_MANIFESTS`]).
pub const OPEN_MANIFESTS_INDEX: &str = OPEN_MANIFESTS.name;

type Item = HashMap<String, AttributeValue>;

/// Reads a paged `Query` or `Scan`, following `LastEvaluatedKey` until the last page, and hands
/// each page's items to `take`. `read` sends one request from the given start key (none for the
/// first page), asking for at most the given number of items, and returns the page's items and
/// its `LastEvaluatedKey`. With a `limit`, it stops once that many items were read, asks each
/// request for no more than the rest, and sends no request at all for a limit of 0.
async fn read_pages<Fut>(
    limit: Option<usize>,
    mut read: impl FnMut(Option<Item>, Option<i32>) -> Fut,
    mut take: impl FnMut(Vec<Item>) -> Result<(), StoreError>,
) -> Result<(), StoreError>
where
    Fut: Future<Output = Result<(Vec<Item>, Option<Item>), StoreError>>,
{
    let mut start: Option<Item> = None;
    let mut read_so_far = 0usize;
    loop {
        let page = match limit {
            Some(limit) if read_so_far >= limit => return Ok(()),
            Some(limit) => Some(i32::try_from(limit - read_so_far).unwrap_or(i32::MAX)),
            None => None,
        };
        let (items, last_evaluated_key) = read(start.take(), page).await?;
        read_so_far += items.len();
        take(items)?;
        match last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(()),
        }
    }
}

/// [`TrackingStore`] on a DynamoDB table (see the module docs for its layout).
#[derive(Debug, Clone)]
pub struct DynamoTrackingStore {
    client: Client,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl DynamoTrackingStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoTrackingStore {
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

    fn malformed(&self, item: &Item, detail: impl Into<String>) -> StoreError {
        let part = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        StoreError::Malformed {
            table: self.table.clone(),
            key: format!("{}/{}", part(PARTITION_KEY), part(SORT_KEY)),
            detail: detail.into(),
        }
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

    /// An `UpdateItem` of one item of the table.
    fn update(&self, key: Item) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
    }

    fn key(date_prefix: &DatePrefix, file_key: &str) -> Item {
        HashMap::from([
            (PARTITION_KEY.to_string(), s(date_prefix.as_str())),
            (SORT_KEY.to_string(), s(file_key)),
        ])
    }

    fn file_item(file: &FileRecord) -> Item {
        let mut item = Self::key(&file.date_prefix, &file.object.key);
        item.insert(ITEM_TYPE.into(), s(ITEM_TYPE_FILE));
        item.insert(BUCKET.into(), s(&file.object.bucket));
        item.insert(SIZE.into(), n(file.object.size));
        item.insert(ETAG.into(), s(&file.object.etag));
        item.insert(STATUS.into(), s(file.status.as_str()));
        item.insert(ATTEMPTS.into(), n(file.attempts));
        item.insert(CREATED_AT.into(), s(file.created_at.to_rfc3339()));
        item.insert(UPDATED_AT.into(), s(file.updated_at.to_rfc3339()));
        item.insert(TTL.into(), n(file.ttl));
        if let Some(id) = &file.manifest_id {
            item.insert(MANIFEST_ID.into(), s(id.as_str()));
        }
        if file.status == FileStatus::Pending {
            item.insert(PENDING_PREFIX.into(), s(file.date_prefix.as_str()));
        }
        item
    }

    fn text<'i>(&self, item: &'i Item, name: &str) -> Result<&'i str, StoreError> {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            .ok_or_else(|| self.malformed(item, format!("`{name}` is missing or not a string")))
    }

    fn number<T: std::str::FromStr>(&self, item: &Item, name: &str) -> Result<T, StoreError> {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| self.malformed(item, format!("`{name}` is missing or not a number")))
    }

    fn timestamp(&self, item: &Item, name: &str) -> Result<Timestamp, StoreError> {
        Timestamp::parse_rfc3339(self.text(item, name)?)
            .ok_or_else(|| self.malformed(item, format!("`{name}` is not an RFC 3339 time")))
    }

    fn date_prefix(&self, item: &Item) -> Result<DatePrefix, StoreError> {
        DatePrefix::parse(self.text(item, PARTITION_KEY)?)
            .ok_or_else(|| self.malformed(item, "bad `date_prefix`"))
    }

    fn file_record(&self, item: &Item) -> Result<FileRecord, StoreError> {
        let status = self.text(item, STATUS)?;
        Ok(FileRecord {
            date_prefix: self.date_prefix(item)?,
            object: ObjectRef {
                bucket: self.text(item, BUCKET)?.to_string(),
                key: self.text(item, SORT_KEY)?.to_string(),
                size: self.number(item, SIZE)?,
                etag: self.text(item, ETAG).unwrap_or_default().to_string(),
            },
            status: FileStatus::parse(status)
                .ok_or_else(|| self.malformed(item, format!("unknown status `{status}`")))?,
            manifest_id: match item.get(MANIFEST_ID).and_then(|v| v.as_s().ok()) {
                Some(id) => Some(
                    ManifestId::parse(id)
                        .ok_or_else(|| self.malformed(item, "bad `manifest_id`"))?,
                ),
                None => None,
            },
            attempts: self.number(item, ATTEMPTS)?,
            created_at: self.timestamp(item, CREATED_AT)?,
            updated_at: self.timestamp(item, UPDATED_AT)?,
            ttl: self.number(item, TTL)?,
        })
    }

    fn manifest_item(manifest: &ManifestRecord) -> Item {
        let mut item = Self::key(&manifest.date_prefix, &manifest.manifest_id.file_key());
        item.insert(ITEM_TYPE.into(), s(ITEM_TYPE_MANIFEST));
        item.insert(MANIFEST_ID.into(), s(manifest.manifest_id.as_str()));
        item.insert(STATUS.into(), s(manifest.status.as_str()));
        item.insert(
            CANDIDATES.into(),
            AttributeValue::L(manifest.candidates.iter().map(s).collect()),
        );
        item.insert(FILE_COUNT.into(), n(manifest.file_count));
        item.insert(TOTAL_BYTES.into(), n(manifest.total_bytes));
        item.insert(CREATED_AT.into(), s(manifest.created_at.to_rfc3339()));
        item.insert(UPDATED_AT.into(), s(manifest.updated_at.to_rfc3339()));
        item.insert(TTL.into(), n(manifest.ttl));
        if let Some(path) = &manifest.manifest_path {
            item.insert(MANIFEST_PATH.into(), s(path));
        }
        if let Some(arn) = &manifest.execution_arn {
            item.insert(EXECUTION_ARN.into(), s(arn));
        }
        if let Some(result) = &manifest.result {
            item.extend(Self::result_attributes(result));
        }
        if let Some(error) = &manifest.error {
            item.insert(ERROR.into(), s(error));
        }
        if manifest.needs_sweep {
            item.insert(OPEN_SHARD.into(), s(OPEN_SHARD_VALUE));
        }
        item
    }

    fn result_attributes(result: &ConversionResult) -> Vec<(String, AttributeValue)> {
        let mut attributes = vec![
            (LINES_READ.to_string(), n(result.lines_read)),
            (ROWS_WRITTEN.to_string(), n(result.rows_written)),
            (ROWS_REJECTED.to_string(), n(result.rows_rejected)),
            (BLANK_LINES.to_string(), n(result.blank_lines)),
            (BYTES_IN.to_string(), n(result.bytes_in)),
            (BYTES_OUT.to_string(), n(result.bytes_out)),
            (
                OUTPUT_KEYS.to_string(),
                AttributeValue::L(result.output_keys.iter().map(s).collect()),
            ),
        ];
        if let Some(key) = &result.error_key {
            attributes.push((ERROR_KEY.to_string(), s(key)));
        }
        if let Some(schema) = &result.schema {
            attributes.push((SCHEMA.to_string(), s(schema)));
        }
        attributes
    }

    fn result_record(&self, item: &Item) -> Result<Option<ConversionResult>, StoreError> {
        if !item.contains_key(ROWS_WRITTEN) {
            return Ok(None);
        }
        let output_keys = match item.get(OUTPUT_KEYS) {
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|v| {
                    v.as_s()
                        .cloned()
                        .map_err(|_| self.malformed(item, "an output key is not a string"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        let optional = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        Ok(Some(ConversionResult {
            lines_read: self.number(item, LINES_READ)?,
            rows_written: self.number(item, ROWS_WRITTEN)?,
            rows_rejected: self.number(item, ROWS_REJECTED)?,
            blank_lines: self.number(item, BLANK_LINES)?,
            bytes_in: self.number(item, BYTES_IN)?,
            bytes_out: self.number(item, BYTES_OUT)?,
            output_keys,
            error_key: optional(ERROR_KEY),
            schema: optional(SCHEMA),
        }))
    }

    fn manifest_record(&self, item: &Item) -> Result<ManifestRecord, StoreError> {
        let status = self.text(item, STATUS)?;
        let candidates = match item.get(CANDIDATES) {
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|v| {
                    v.as_s()
                        .cloned()
                        .map_err(|_| self.malformed(item, "a candidate is not a string"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
            Some(_) => return Err(self.malformed(item, "`candidates` is not a list")),
        };
        let optional = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        Ok(ManifestRecord {
            date_prefix: self.date_prefix(item)?,
            manifest_id: ManifestId::parse(self.text(item, MANIFEST_ID)?)
                .ok_or_else(|| self.malformed(item, "bad `manifest_id`"))?,
            status: ManifestStatus::parse(status)
                .ok_or_else(|| self.malformed(item, format!("unknown status `{status}`")))?,
            candidates,
            manifest_path: optional(MANIFEST_PATH),
            file_count: self.number(item, FILE_COUNT)?,
            total_bytes: self.number(item, TOTAL_BYTES)?,
            execution_arn: optional(EXECUTION_ARN),
            result: self.result_record(item)?,
            error: optional(ERROR),
            needs_sweep: item.contains_key(OPEN_SHARD),
            created_at: self.timestamp(item, CREATED_AT)?,
            updated_at: self.timestamp(item, UPDATED_AT)?,
            ttl: self.number(item, TTL)?,
        })
    }

    async fn get_item(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(self.service("GetItem"))?;
        Ok(output.item)
    }
}

impl TrackingStore for DynamoTrackingStore {
    async fn track_file(&self, file: &FileRecord) -> Result<TrackOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::file_item(file)))
            .condition_expression(format!("attribute_not_exists({SORT_KEY})"))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let existing = match result {
            Ok(_) => return Ok(TrackOutcome::Tracked),
            Err(error) => match error.as_service_error() {
                Some(e) if e.is_conditional_check_failed_exception() => {
                    let returned = match e {
                        PutItemError::ConditionalCheckFailedException(c) => c.item.clone(),
                        _ => None,
                    };
                    match returned {
                        Some(item) => item,
                        // Not every endpoint returns the old item; read it.
                        None => self
                            .get_item(Self::key(&file.date_prefix, &file.object.key))
                            .await?
                            .ok_or_else(|| {
                                self.malformed(
                                    &Self::file_item(file),
                                    "vanished after a failed insert",
                                )
                            })?,
                    }
                }
                _ => return Err(self.service("PutItem")(error)),
            },
        };
        let tracked_etag = existing
            .get(ETAG)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        if tracked_etag == file.object.etag {
            Ok(TrackOutcome::Duplicate)
        } else {
            Ok(TrackOutcome::Overwritten { tracked_etag })
        }
    }

    async fn get_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
    ) -> Result<Option<FileRecord>, StoreError> {
        match self.get_item(Self::key(date_prefix, key)).await? {
            Some(item) => self.file_record(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn pending_files(
        &self,
        date_prefix: &DatePrefix,
        limit: usize,
    ) -> Result<Vec<FileRecord>, StoreError> {
        let mut files = Vec::new();
        read_pages(
            Some(limit),
            |start, page| {
                let request = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(PENDING_FILES.name)
                    .key_condition_expression(format!("{} = :prefix", PENDING_FILES.partition_key))
                    .expression_attribute_values(":prefix", s(date_prefix.as_str()))
                    .scan_index_forward(true)
                    .set_limit(page)
                    .set_exclusive_start_key(start);
                async move {
                    let output = request.send().await.map_err(self.service("Query"))?;
                    Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
                }
            },
            |items| {
                for item in &items {
                    files.push(self.file_record(item)?);
                }
                Ok(())
            },
        )
        .await?;
        files.truncate(limit);
        Ok(files)
    }

    async fn pending_prefixes(&self) -> Result<Vec<PendingPrefix>, StoreError> {
        // The index holds pending files only: its size is the backlog, bounded by the active
        // prefixes times MAX_FILES_PER_MANIFEST when the builder keeps up.
        let mut by_prefix: std::collections::BTreeMap<DatePrefix, PendingPrefix> =
            Default::default();
        read_pages(
            None,
            |start, _| {
                let request = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .index_name(PENDING_FILES.name)
                    .projection_expression(format!("{DATE_PREFIX}, {FILE_KEY}, {CREATED_AT}"))
                    .set_exclusive_start_key(start);
                async move {
                    let output = request.send().await.map_err(self.service("Scan"))?;
                    Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
                }
            },
            |items| {
                for item in &items {
                    let prefix = self.date_prefix(item)?;
                    let created = self.timestamp(item, CREATED_AT)?;
                    let entry = by_prefix.entry(prefix.clone()).or_insert(PendingPrefix {
                        date_prefix: prefix,
                        oldest: created,
                        count: 0,
                    });
                    entry.oldest = entry.oldest.min(created);
                    entry.count += 1;
                }
                Ok(())
            },
        )
        .await?;
        Ok(by_prefix.into_values().collect())
    }

    async fn create_manifest(&self, manifest: &ManifestRecord) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::manifest_item(manifest)))
            .condition_expression(format!("attribute_not_exists({SORT_KEY})"))
            .send()
            .await;
        self.written("PutItem", result)
    }

    async fn claim_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        if key.starts_with(MANIFEST_KEY_PREFIX) {
            return Ok(false);
        }
        let result = self
            .update(Self::key(date_prefix, key))
            .update_expression(format!("SET #status = :manifested, {MANIFEST_ID} = :manifest, {UPDATED_AT} = :now REMOVE {PENDING_PREFIX}"))
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":manifested", s(FileStatus::Manifested.as_str()))
            .expression_attribute_values(":pending", s(FileStatus::Pending.as_str()))
            .expression_attribute_values(":manifest", s(manifest.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .send()
            .await;
        self.written("UpdateItem", result)
    }

    async fn complete_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = self
            .update(Self::key(date_prefix, key))
            .update_expression(format!("SET #status = :processed, {UPDATED_AT} = :now"))
            .condition_expression(format!(
                "#status = :manifested AND {MANIFEST_ID} = :manifest"
            ))
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":processed", s(FileStatus::Processed.as_str()))
            .expression_attribute_values(":manifested", s(FileStatus::Manifested.as_str()))
            .expression_attribute_values(":manifest", s(manifest.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .send()
            .await;
        self.written("UpdateItem", result)
    }

    async fn fail_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<Option<FileStatus>, StoreError> {
        // Read, then write conditioned on what was read: the attempt count decides the status.
        for _ in 0..5 {
            let Some(file) = self.get_file(date_prefix, key).await? else {
                return Ok(None);
            };
            if file.status != FileStatus::Manifested || file.manifest_id.as_ref() != Some(manifest)
            {
                return Ok(None);
            }
            let attempts = file.attempts + 1;
            let status = if attempts >= max_attempts {
                FileStatus::Failed
            } else {
                FileStatus::Pending
            };
            let expression = match status {
                FileStatus::Failed => format!("SET #status = :status, {ATTEMPTS} = :attempts, {UPDATED_AT} = :now"),
                _ => format!("SET #status = :status, {ATTEMPTS} = :attempts, {UPDATED_AT} = :now, {PENDING_PREFIX} = :prefix REMOVE {MANIFEST_ID}"),
            };
            let mut request = self
                .update(Self::key(date_prefix, key))
                .update_expression(expression)
                .condition_expression(format!(
                    "#status = :manifested AND {MANIFEST_ID} = :manifest AND {ATTEMPTS} = :before"
                ))
                .expression_attribute_names("#status", STATUS)
                .expression_attribute_values(":status", s(status.as_str()))
                .expression_attribute_values(":manifested", s(FileStatus::Manifested.as_str()))
                .expression_attribute_values(":manifest", s(manifest.as_str()))
                .expression_attribute_values(":before", n(file.attempts))
                .expression_attribute_values(":attempts", n(attempts))
                .expression_attribute_values(":now", s(now.to_rfc3339()));
            if status == FileStatus::Pending {
                request = request.expression_attribute_values(":prefix", s(date_prefix.as_str()));
            }
            // A failed condition: the file changed since it was read; read it again.
            if self.written("UpdateItem", request.send().await)? {
                return Ok(Some(status));
            }
        }
        Err(StoreError::Service {
            table: self.table.clone(),
            operation: "UpdateItem",
            message: format!("{date_prefix}/{key} kept changing while its failure was recorded"),
        })
    }

    async fn release_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = self
            .update(Self::key(date_prefix, key))
            .update_expression(format!("SET #status = :pending, {PENDING_PREFIX} = :prefix, {UPDATED_AT} = :now REMOVE {MANIFEST_ID}"))
            .condition_expression(format!("#status = :manifested AND {MANIFEST_ID} = :manifest"))
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":manifested", s(FileStatus::Manifested.as_str()))
            .expression_attribute_values(":pending", s(FileStatus::Pending.as_str()))
            .expression_attribute_values(":manifest", s(manifest.as_str()))
            .expression_attribute_values(":prefix", s(date_prefix.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .send()
            .await;
        self.written("UpdateItem", result)
    }

    async fn update_manifest(
        &self,
        date_prefix: &DatePrefix,
        manifest: &ManifestId,
        expected: ManifestStatus,
        status: ManifestStatus,
        changes: &ManifestChanges,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut sets = vec![
            "#status = :status".to_string(),
            format!("{UPDATED_AT} = :now"),
        ];
        let mut request = self
            .update(Self::key(date_prefix, &manifest.file_key()))
            .condition_expression("#status = :expected")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":expected", s(expected.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()));
        if let Some(path) = &changes.manifest_path {
            sets.push(format!("{MANIFEST_PATH} = :path"));
            request = request.expression_attribute_values(":path", s(path));
        }
        if let Some(count) = changes.file_count {
            sets.push(format!("{FILE_COUNT} = :count"));
            request = request.expression_attribute_values(":count", n(count));
        }
        if let Some(bytes) = changes.total_bytes {
            sets.push(format!("{TOTAL_BYTES} = :bytes"));
            request = request.expression_attribute_values(":bytes", n(bytes));
        }
        if let Some(arn) = &changes.execution_arn {
            sets.push(format!("{EXECUTION_ARN} = :arn"));
            request = request.expression_attribute_values(":arn", s(arn));
        }
        let mut result_sets = Vec::new();
        if let Some(result) = &changes.result {
            // Names go through placeholders: `schema` is a DynamoDB reserved word.
            for (name, value) in Self::result_attributes(result) {
                result_sets.push(format!("#r_{name} = :r_{name}"));
                request = request
                    .expression_attribute_names(format!("#r_{name}"), name.clone())
                    .expression_attribute_values(format!(":r_{name}"), value);
            }
        }
        if let Some(error) = &changes.error {
            sets.push("#error = :error".to_string());
            request = request
                .expression_attribute_names("#error", ERROR)
                .expression_attribute_values(":error", s(error));
        }
        sets.extend(result_sets);
        let mut expression = format!("SET {}", sets.join(", "));
        if status.is_open() {
            expression.push_str(&format!(", {OPEN_SHARD} = :open"));
            request = request.expression_attribute_values(":open", s(OPEN_SHARD_VALUE));
        } else {
            expression.push_str(&format!(" REMOVE {OPEN_SHARD}"));
        }
        let result = request.update_expression(expression).send().await;
        self.written("UpdateItem", result)
    }

    async fn get_manifest(
        &self,
        date_prefix: &DatePrefix,
        manifest: &ManifestId,
    ) -> Result<Option<ManifestRecord>, StoreError> {
        match self
            .get_item(Self::key(date_prefix, &manifest.file_key()))
            .await?
        {
            Some(item) => self.manifest_record(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn open_manifests(&self) -> Result<Vec<ManifestRecord>, StoreError> {
        let mut manifests = Vec::new();
        read_pages(
            None,
            |start, _| {
                let request = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(OPEN_MANIFESTS.name)
                    .key_condition_expression(format!("{} = :open", OPEN_MANIFESTS.partition_key))
                    .expression_attribute_values(":open", s(OPEN_SHARD_VALUE))
                    .set_exclusive_start_key(start);
                async move {
                    let output = request.send().await.map_err(self.service("Query"))?;
                    Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
                }
            },
            |items| {
                for item in &items {
                    manifests.push(self.manifest_record(item)?);
                }
                Ok(())
            },
        )
        .await?;
        Ok(manifests)
    }
}

/// Creates the tracking table with both indexes (on-demand billing), as [`crate::table`]
/// describes it. Used by tests and the local pipeline; production tables come from Terraform
/// with the same layout (checked by `shared/tests/table_layout.rs`).
pub async fn create_table(client: &Client, table: &str) -> Result<(), String> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        ProjectionType, ScalarAttributeType,
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| e.to_string())
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| e.to_string())
    };
    let index = |index: &Index| -> Result<GlobalSecondaryIndex, String> {
        let projection = match index.projection {
            Projection::All => ProjectionType::All,
        };
        GlobalSecondaryIndex::builder()
            .index_name(index.name)
            .key_schema(key(index.partition_key, KeyType::Hash)?)
            .key_schema(key(index.sort_key, KeyType::Range)?)
            .projection(
                aws_sdk_dynamodb::types::Projection::builder()
                    .projection_type(projection)
                    .build(),
            )
            .build()
            .map_err(|e| e.to_string())
    };
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?);
    for name in KEY_ATTRIBUTES {
        request = request.attribute_definitions(attribute(name)?);
    }
    for gsi in &INDEXES {
        request = request.global_secondary_indexes(index(gsi)?);
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

    fn item(n: usize) -> Item {
        HashMap::from([("n".to_string(), AttributeValue::N(n.to_string()))])
    }

    /// Serves `total` items in pages of at most `page_size` (or the requested limit), recording
    /// every request's start key and limit.
    async fn read(
        total: usize,
        page_size: usize,
        limit: Option<usize>,
    ) -> (Vec<(Option<String>, Option<i32>)>, usize) {
        let requests = std::sync::Mutex::new(Vec::new());
        let mut taken = 0;
        read_pages(
            limit,
            |start: Option<Item>, page: Option<i32>| {
                let from = start.as_ref().map_or(0, |k| {
                    k["n"].as_n().expect("n").parse::<usize>().expect("number") + 1
                });
                requests
                    .lock()
                    .expect("requests")
                    .push((start.map(|k| k["n"].as_n().expect("n").clone()), page));
                let size = page.map_or(page_size, |p| page_size.min(p as usize));
                let items: Vec<Item> = (from..total.min(from + size)).map(item).collect();
                // DynamoDB returns a key whenever it stopped at a limit, even at the end.
                let last = (from + size <= total).then(|| item(from + size - 1));
                async move { Ok((items, last)) }
            },
            |items| {
                taken += items.len();
                Ok(())
            },
        )
        .await
        .expect("no error");
        (requests.into_inner().expect("requests"), taken)
    }

    #[tokio::test]
    async fn pages_follow_the_last_evaluated_key_up_to_the_limit() {
        let (requests, taken) = read(5, 2, None).await;
        assert_eq!(taken, 5);
        assert_eq!(
            requests,
            [
                (None, None),
                (Some("1".into()), None),
                (Some("3".into()), None)
            ]
        );
        let (requests, taken) = read(10, 2, Some(3)).await;
        assert_eq!(taken, 3);
        assert_eq!(
            requests,
            [(None, Some(3)), (Some("1".into()), Some(1))],
            "each request asks for the rest"
        );
        assert_eq!(read(10, 2, Some(0)).await, (vec![], 0), "no request for 0");
        let (requests, taken) = read(4, 2, None).await;
        assert_eq!(
            (requests.len(), taken),
            (3, 4),
            "a key on the last page costs one empty read"
        );
    }
}
