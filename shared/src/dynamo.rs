//! The tracking store on DynamoDB.
//!
//! One table, keyed by `date_prefix` (partition) and `file_key` (sort): file items use the
//! object key, manifest items `MANIFEST#<id>`. Two sparse global secondary indexes make the
//! reads proportional to what is needed, never to the size of a day:
//!
//! * [`PENDING_INDEX`]: partition `pending_prefix`, sort `created_at`. `pending_prefix` is set
//!   only while a file is pending, so the index holds pending files only, oldest first.
//!   (`Limit` with a `FilterExpression` on the base table would be wrong: DynamoDB applies
//!   `Limit` before the filter and can return no pending file while thousands exist.)
//! * [`OPEN_MANIFESTS_INDEX`]: partition `open_shard` (always `open`), sort `created_at`, set
//!   only while a manifest is `claiming` or `starting`: what the sweep may have to repair.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;

use crate::tracking::{ManifestChanges, PendingPrefix, StoreError, TrackOutcome, TrackingStore};
use crate::types::{
    ConversionResult, DatePrefix, FileRecord, FileStatus, ManifestId, ManifestRecord,
    ManifestStatus, ObjectRef, Timestamp, MANIFEST_KEY_PREFIX,
};

/// Name of the sparse index of pending files.
pub const PENDING_INDEX: &str = "pending-index";
/// Name of the sparse index of open manifests.
pub const OPEN_MANIFESTS_INDEX: &str = "open-manifests-index";
const OPEN_SHARD: &str = "open";

type Item = HashMap<String, AttributeValue>;

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

    fn service<
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    >(
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
            key: format!("{}/{}", part("date_prefix"), part("file_key")),
            detail: detail.into(),
        }
    }

    fn key(date_prefix: &DatePrefix, file_key: &str) -> Item {
        HashMap::from([
            ("date_prefix".to_string(), s(date_prefix.as_str())),
            ("file_key".to_string(), s(file_key)),
        ])
    }

    fn file_item(file: &FileRecord) -> Item {
        let mut item = Self::key(&file.date_prefix, &file.object.key);
        item.insert("item_type".into(), s("file"));
        item.insert("bucket".into(), s(&file.object.bucket));
        item.insert("size".into(), n(file.object.size));
        item.insert("etag".into(), s(&file.object.etag));
        item.insert("status".into(), s(file.status.as_str()));
        item.insert("attempts".into(), n(file.attempts));
        item.insert("created_at".into(), s(file.created_at.to_rfc3339()));
        item.insert("updated_at".into(), s(file.updated_at.to_rfc3339()));
        item.insert("ttl".into(), n(file.ttl));
        if let Some(id) = &file.manifest_id {
            item.insert("manifest_id".into(), s(id.as_str()));
        }
        if file.status == FileStatus::Pending {
            item.insert("pending_prefix".into(), s(file.date_prefix.as_str()));
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
        DatePrefix::parse(self.text(item, "date_prefix")?)
            .ok_or_else(|| self.malformed(item, "bad `date_prefix`"))
    }

    fn file_record(&self, item: &Item) -> Result<FileRecord, StoreError> {
        let status = self.text(item, "status")?;
        Ok(FileRecord {
            date_prefix: self.date_prefix(item)?,
            object: ObjectRef {
                bucket: self.text(item, "bucket")?.to_string(),
                key: self.text(item, "file_key")?.to_string(),
                size: self.number(item, "size")?,
                etag: self.text(item, "etag").unwrap_or_default().to_string(),
            },
            status: FileStatus::parse(status)
                .ok_or_else(|| self.malformed(item, format!("unknown status `{status}`")))?,
            manifest_id: match item.get("manifest_id").and_then(|v| v.as_s().ok()) {
                Some(id) => Some(
                    ManifestId::parse(id)
                        .ok_or_else(|| self.malformed(item, "bad `manifest_id`"))?,
                ),
                None => None,
            },
            attempts: self.number(item, "attempts")?,
            created_at: self.timestamp(item, "created_at")?,
            updated_at: self.timestamp(item, "updated_at")?,
            ttl: self.number(item, "ttl")?,
        })
    }

    fn manifest_item(manifest: &ManifestRecord) -> Item {
        let mut item = Self::key(&manifest.date_prefix, &manifest.manifest_id.file_key());
        item.insert("item_type".into(), s("manifest"));
        item.insert("manifest_id".into(), s(manifest.manifest_id.as_str()));
        item.insert("status".into(), s(manifest.status.as_str()));
        item.insert(
            "candidates".into(),
            AttributeValue::L(manifest.candidates.iter().map(s).collect()),
        );
        item.insert("file_count".into(), n(manifest.file_count));
        item.insert("total_bytes".into(), n(manifest.total_bytes));
        item.insert("created_at".into(), s(manifest.created_at.to_rfc3339()));
        item.insert("updated_at".into(), s(manifest.updated_at.to_rfc3339()));
        item.insert("ttl".into(), n(manifest.ttl));
        if let Some(path) = &manifest.manifest_path {
            item.insert("manifest_path".into(), s(path));
        }
        if let Some(arn) = &manifest.execution_arn {
            item.insert("execution_arn".into(), s(arn));
        }
        if let Some(result) = &manifest.result {
            item.extend(Self::result_attributes(result));
        }
        if let Some(error) = &manifest.error {
            item.insert("error".into(), s(error));
        }
        if manifest.needs_sweep {
            item.insert("open_shard".into(), s(OPEN_SHARD));
        }
        item
    }

    fn result_attributes(result: &ConversionResult) -> Vec<(String, AttributeValue)> {
        let mut attributes = vec![
            ("lines_read".to_string(), n(result.lines_read)),
            ("rows_written".to_string(), n(result.rows_written)),
            ("rows_rejected".to_string(), n(result.rows_rejected)),
            ("blank_lines".to_string(), n(result.blank_lines)),
            ("bytes_in".to_string(), n(result.bytes_in)),
            ("bytes_out".to_string(), n(result.bytes_out)),
            (
                "output_keys".to_string(),
                AttributeValue::L(result.output_keys.iter().map(s).collect()),
            ),
        ];
        if let Some(key) = &result.error_key {
            attributes.push(("error_key".to_string(), s(key)));
        }
        if let Some(schema) = &result.schema {
            attributes.push(("schema".to_string(), s(schema)));
        }
        attributes
    }

    fn result_record(&self, item: &Item) -> Result<Option<ConversionResult>, StoreError> {
        if !item.contains_key("rows_written") {
            return Ok(None);
        }
        let output_keys = match item.get("output_keys") {
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
            lines_read: self.number(item, "lines_read")?,
            rows_written: self.number(item, "rows_written")?,
            rows_rejected: self.number(item, "rows_rejected")?,
            blank_lines: self.number(item, "blank_lines")?,
            bytes_in: self.number(item, "bytes_in")?,
            bytes_out: self.number(item, "bytes_out")?,
            output_keys,
            error_key: optional("error_key"),
            schema: optional("schema"),
        }))
    }

    fn manifest_record(&self, item: &Item) -> Result<ManifestRecord, StoreError> {
        let status = self.text(item, "status")?;
        let candidates = match item.get("candidates") {
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
            manifest_id: ManifestId::parse(self.text(item, "manifest_id")?)
                .ok_or_else(|| self.malformed(item, "bad `manifest_id`"))?,
            status: ManifestStatus::parse(status)
                .ok_or_else(|| self.malformed(item, format!("unknown status `{status}`")))?,
            candidates,
            manifest_path: optional("manifest_path"),
            file_count: self.number(item, "file_count")?,
            total_bytes: self.number(item, "total_bytes")?,
            execution_arn: optional("execution_arn"),
            result: self.result_record(item)?,
            error: optional("error"),
            needs_sweep: item.contains_key("open_shard"),
            created_at: self.timestamp(item, "created_at")?,
            updated_at: self.timestamp(item, "updated_at")?,
            ttl: self.number(item, "ttl")?,
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
            .condition_expression("attribute_not_exists(file_key)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let existing = match result {
            Ok(_) => return Ok(TrackOutcome::Tracked),
            Err(error) => match error.as_service_error() {
                Some(e) if e.is_conditional_check_failed_exception() => {
                    let returned = match e {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                            c.item.clone()
                        }
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
            .get("etag")
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
        let mut start: Option<Item> = None;
        while files.len() < limit {
            let page = i32::try_from(limit - files.len()).unwrap_or(i32::MAX);
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_INDEX)
                .key_condition_expression("pending_prefix = :prefix")
                .expression_attribute_values(":prefix", s(date_prefix.as_str()))
                .scan_index_forward(true)
                .limit(page)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(self.service("Query"))?;
            for item in output.items() {
                files.push(self.file_record(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        files.truncate(limit);
        Ok(files)
    }

    async fn pending_prefixes(&self) -> Result<Vec<PendingPrefix>, StoreError> {
        // The index holds pending files only: its size is the backlog, bounded by the active
        // prefixes times MAX_FILES_PER_MANIFEST when the builder keeps up.
        let mut by_prefix: std::collections::BTreeMap<DatePrefix, PendingPrefix> =
            Default::default();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .index_name(PENDING_INDEX)
                .projection_expression("date_prefix, file_key, created_at")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(self.service("Scan"))?;
            for item in output.items() {
                let prefix = self.date_prefix(item)?;
                let created = self.timestamp(item, "created_at")?;
                let entry = by_prefix.entry(prefix.clone()).or_insert(PendingPrefix {
                    date_prefix: prefix,
                    oldest: created,
                    count: 0,
                });
                entry.oldest = entry.oldest.min(created);
                entry.count += 1;
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(by_prefix.into_values().collect())
    }

    async fn create_manifest(&self, manifest: &ManifestRecord) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::manifest_item(manifest)))
            .condition_expression("attribute_not_exists(file_key)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.service("PutItem")(e)),
        }
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
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(date_prefix, key)))
            .update_expression("SET #status = :manifested, manifest_id = :manifest, updated_at = :now REMOVE pending_prefix")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":manifested", s(FileStatus::Manifested.as_str()))
            .expression_attribute_values(":pending", s(FileStatus::Pending.as_str()))
            .expression_attribute_values(":manifest", s(manifest.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.service("UpdateItem")(e)),
        }
    }

    async fn complete_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(date_prefix, key)))
            .update_expression("SET #status = :processed, updated_at = :now")
            .condition_expression("#status = :manifested AND manifest_id = :manifest")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":processed", s(FileStatus::Processed.as_str()))
            .expression_attribute_values(":manifested", s(FileStatus::Manifested.as_str()))
            .expression_attribute_values(":manifest", s(manifest.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.service("UpdateItem")(e)),
        }
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
                FileStatus::Failed => "SET #status = :status, attempts = :attempts, updated_at = :now",
                _ => "SET #status = :status, attempts = :attempts, updated_at = :now, pending_prefix = :prefix REMOVE manifest_id",
            };
            let mut request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(date_prefix, key)))
                .update_expression(expression)
                .condition_expression(
                    "#status = :manifested AND manifest_id = :manifest AND attempts = :before",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()))
                .expression_attribute_values(":manifested", s(FileStatus::Manifested.as_str()))
                .expression_attribute_values(":manifest", s(manifest.as_str()))
                .expression_attribute_values(":before", n(file.attempts))
                .expression_attribute_values(":attempts", n(attempts))
                .expression_attribute_values(":now", s(now.to_rfc3339()));
            if status == FileStatus::Pending {
                request = request.expression_attribute_values(":prefix", s(date_prefix.as_str()));
            }
            match request.send().await {
                Ok(_) => return Ok(Some(status)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    continue
                }
                Err(e) => return Err(self.service("UpdateItem")(e)),
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
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(date_prefix, key)))
            .update_expression("SET #status = :pending, pending_prefix = :prefix, updated_at = :now REMOVE manifest_id")
            .condition_expression("#status = :manifested AND manifest_id = :manifest")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":manifested", s(FileStatus::Manifested.as_str()))
            .expression_attribute_values(":pending", s(FileStatus::Pending.as_str()))
            .expression_attribute_values(":manifest", s(manifest.as_str()))
            .expression_attribute_values(":prefix", s(date_prefix.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.service("UpdateItem")(e)),
        }
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
        let mut sets = vec!["#status = :status", "updated_at = :now"];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(date_prefix, &manifest.file_key())))
            .condition_expression("#status = :expected")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":expected", s(expected.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()));
        if let Some(path) = &changes.manifest_path {
            sets.push("manifest_path = :path");
            request = request.expression_attribute_values(":path", s(path));
        }
        if let Some(count) = changes.file_count {
            sets.push("file_count = :count");
            request = request.expression_attribute_values(":count", n(count));
        }
        if let Some(bytes) = changes.total_bytes {
            sets.push("total_bytes = :bytes");
            request = request.expression_attribute_values(":bytes", n(bytes));
        }
        if let Some(arn) = &changes.execution_arn {
            sets.push("execution_arn = :arn");
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
            sets.push("#error = :error");
            request = request
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":error", s(error));
        }
        let sets: Vec<String> = sets
            .into_iter()
            .map(str::to_string)
            .chain(result_sets)
            .collect();
        let mut expression = format!("SET {}", sets.join(", "));
        if status.is_open() {
            expression.push_str(", open_shard = :open");
            request = request.expression_attribute_values(":open", s(OPEN_SHARD));
        } else {
            expression.push_str(" REMOVE open_shard");
        }
        match request.update_expression(expression).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.service("UpdateItem")(e)),
        }
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
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OPEN_MANIFESTS_INDEX)
                .key_condition_expression("open_shard = :open")
                .expression_attribute_values(":open", s(OPEN_SHARD))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(self.service("Query"))?;
            for item in output.items() {
                manifests.push(self.manifest_record(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(manifests)
    }
}

/// Creates the tracking table with both indexes (on-demand billing). Used by tests and the
/// local pipeline; production tables come from Terraform with the same layout.
pub async fn create_table(client: &Client, table: &str) -> Result<(), String> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
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
    let index = |name: &str, partition: &str| -> Result<GlobalSecondaryIndex, String> {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(partition, KeyType::Hash)?)
            .key_schema(key("created_at", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|e| e.to_string())
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("date_prefix")?)
        .attribute_definitions(attribute("file_key")?)
        .attribute_definitions(attribute("pending_prefix")?)
        .attribute_definitions(attribute("open_shard")?)
        .attribute_definitions(attribute("created_at")?)
        .key_schema(key("date_prefix", KeyType::Hash)?)
        .key_schema(key("file_key", KeyType::Range)?)
        .global_secondary_indexes(index(PENDING_INDEX, "pending_prefix")?)
        .global_secondary_indexes(index(OPEN_MANIFESTS_INDEX, "open_shard")?)
        .send()
        .await
        .map_err(|e| crate::aws::describe_error(&e))?;
    Ok(())
}
