//! [`MemoryTrackingStore`]: the tracking store in memory, for unit tests and the model
//! simulation. Every operation runs under one lock, so each is trivially atomic.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{ManifestChanges, PendingPrefix, StoreError, TrackOutcome, TrackingStore};
use crate::types::{
    DatePrefix, FileRecord, FileStatus, ManifestId, ManifestRecord, ManifestStatus, Timestamp,
};

#[derive(Default)]
struct MemoryState {
    files: BTreeMap<(DatePrefix, String), FileRecord>,
    manifests: BTreeMap<(DatePrefix, ManifestId), ManifestRecord>,
}

/// An in-memory tracking store for unit tests: every operation is atomic under one lock.
#[derive(Default)]
pub struct MemoryTrackingStore {
    state: Mutex<MemoryState>,
}

impl MemoryTrackingStore {
    /// A store with no file or manifest items; its operations never fail.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> T {
        f(&mut self
            .state
            .lock()
            .expect("invariant: the store lock is never poisoned"))
    }

    /// Every file record (for assertions).
    pub fn all_files(&self) -> Vec<FileRecord> {
        self.with(|s| s.files.values().cloned().collect())
    }

    /// Every manifest record (for assertions).
    pub fn all_manifests(&self) -> Vec<ManifestRecord> {
        self.with(|s| s.manifests.values().cloned().collect())
    }

    /// What the state machine's `MarkFailed` task does in production: mark the manifest
    /// `failed` with `cause` and hand it to the sweep (`needs_sweep`), which returns its files
    /// to pending. Unlike `MarkFailed` it does not check the manifest's current status
    /// ([`crate::table::v1::WORKFLOW_FAILED_FROM`]): the caller picks a manifest that may fail.
    pub fn fail_by_workflow(&self, date_prefix: &DatePrefix, manifest: &ManifestId, cause: &str) {
        self.with(|s| {
            if let Some(record) = s
                .manifests
                .get_mut(&(date_prefix.clone(), manifest.clone()))
            {
                record.status = ManifestStatus::Failed;
                record.error = Some(cause.to_string());
                record.needs_sweep = true;
            }
        })
    }
}

impl TrackingStore for MemoryTrackingStore {
    async fn track_file(&self, file: &FileRecord) -> Result<TrackOutcome, StoreError> {
        self.with(|s| {
            let key = (file.date_prefix.clone(), file.object.key.clone());
            match s.files.get(&key) {
                Some(existing) if existing.object.etag == file.object.etag => {
                    Ok(TrackOutcome::Duplicate)
                }
                Some(existing) => Ok(TrackOutcome::Overwritten {
                    tracked_etag: existing.object.etag.clone(),
                }),
                None => {
                    s.files.insert(key, file.clone());
                    Ok(TrackOutcome::Tracked)
                }
            }
        })
    }

    async fn get_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
    ) -> Result<Option<FileRecord>, StoreError> {
        Ok(self.with(|s| {
            s.files
                .get(&(date_prefix.clone(), key.to_string()))
                .cloned()
        }))
    }

    async fn pending_files(
        &self,
        date_prefix: &DatePrefix,
        limit: usize,
    ) -> Result<Vec<FileRecord>, StoreError> {
        Ok(self.with(|s| {
            let mut pending: Vec<FileRecord> = s
                .files
                .values()
                .filter(|f| &f.date_prefix == date_prefix && f.status == FileStatus::Pending)
                .cloned()
                .collect();
            pending
                .sort_by(|a, b| (a.created_at, &a.object.key).cmp(&(b.created_at, &b.object.key)));
            pending.truncate(limit);
            pending
        }))
    }

    async fn pending_prefixes(&self) -> Result<Vec<PendingPrefix>, StoreError> {
        Ok(self.with(|s| {
            let mut by_prefix: BTreeMap<DatePrefix, PendingPrefix> = BTreeMap::new();
            for file in s.files.values().filter(|f| f.status == FileStatus::Pending) {
                let entry = by_prefix
                    .entry(file.date_prefix.clone())
                    .or_insert(PendingPrefix {
                        date_prefix: file.date_prefix.clone(),
                        oldest: file.created_at,
                        count: 0,
                    });
                entry.oldest = entry.oldest.min(file.created_at);
                entry.count += 1;
            }
            by_prefix.into_values().collect()
        }))
    }

    async fn create_manifest(&self, manifest: &ManifestRecord) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            let key = (manifest.date_prefix.clone(), manifest.manifest_id.clone());
            if s.manifests.contains_key(&key) {
                return false;
            }
            s.manifests.insert(key, manifest.clone());
            true
        }))
    }

    async fn claim_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.with(
            |s| match s.files.get_mut(&(date_prefix.clone(), key.to_string())) {
                Some(file) if file.status == FileStatus::Pending => {
                    file.status = FileStatus::Manifested;
                    file.manifest_id = Some(manifest.clone());
                    file.updated_at = now;
                    true
                }
                _ => false,
            },
        ))
    }

    async fn complete_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.with(
            |s| match s.files.get_mut(&(date_prefix.clone(), key.to_string())) {
                Some(file)
                    if file.status == FileStatus::Manifested
                        && file.manifest_id.as_ref() == Some(manifest) =>
                {
                    file.status = FileStatus::Processed;
                    file.updated_at = now;
                    true
                }
                _ => false,
            },
        ))
    }

    async fn fail_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<Option<FileStatus>, StoreError> {
        Ok(self.with(
            |s| match s.files.get_mut(&(date_prefix.clone(), key.to_string())) {
                Some(file)
                    if file.status == FileStatus::Manifested
                        && file.manifest_id.as_ref() == Some(manifest) =>
                {
                    file.attempts += 1;
                    file.updated_at = now;
                    if file.attempts >= max_attempts {
                        file.status = FileStatus::Failed;
                    } else {
                        file.status = FileStatus::Pending;
                        file.manifest_id = None;
                    }
                    Some(file.status)
                }
                _ => None,
            },
        ))
    }

    async fn release_file(
        &self,
        date_prefix: &DatePrefix,
        key: &str,
        manifest: &ManifestId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.with(
            |s| match s.files.get_mut(&(date_prefix.clone(), key.to_string())) {
                Some(file)
                    if file.status == FileStatus::Manifested
                        && file.manifest_id.as_ref() == Some(manifest) =>
                {
                    file.status = FileStatus::Pending;
                    file.manifest_id = None;
                    file.updated_at = now;
                    true
                }
                _ => false,
            },
        ))
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
        Ok(self.with(|s| {
            match s
                .manifests
                .get_mut(&(date_prefix.clone(), manifest.clone()))
            {
                Some(record) if record.status == expected => {
                    record.status = status;
                    record.updated_at = now;
                    record.needs_sweep = status.is_open();
                    if let Some(result) = &changes.result {
                        record.result = Some(result.clone());
                    }
                    if let Some(error) = &changes.error {
                        record.error = Some(error.clone());
                    }
                    if let Some(path) = &changes.manifest_path {
                        record.manifest_path = Some(path.clone());
                    }
                    if let Some(count) = changes.file_count {
                        record.file_count = count;
                    }
                    if let Some(bytes) = changes.total_bytes {
                        record.total_bytes = bytes;
                    }
                    if let Some(arn) = &changes.execution_arn {
                        record.execution_arn = Some(arn.clone());
                    }
                    true
                }
                _ => false,
            }
        }))
    }

    async fn get_manifest(
        &self,
        date_prefix: &DatePrefix,
        manifest: &ManifestId,
    ) -> Result<Option<ManifestRecord>, StoreError> {
        Ok(self.with(|s| {
            s.manifests
                .get(&(date_prefix.clone(), manifest.clone()))
                .cloned()
        }))
    }

    async fn open_manifests(&self) -> Result<Vec<ManifestRecord>, StoreError> {
        Ok(self.with(|s| {
            s.manifests
                .values()
                .filter(|m| m.needs_sweep)
                .cloned()
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        crate::tracking::contract::run_all(&MemoryTrackingStore::new(), 0).await;
    }
}
