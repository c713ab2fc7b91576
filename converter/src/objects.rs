//! Object storage as the manifest runner sees it: small whole objects through
//! [`BlobStore`], large inputs as streamed [`Source`]s pinned to the tracked version, and large
//! outputs as streamed [`Upload`]s that become visible only when committed.
//!
//! # Contract
//!
//! An [`ObjectStore`] is a [`BlobStore`] (manifests, schemas, removing stale outputs) plus:
//!
//! * [`ObjectStore::source`] (and [`ObjectStore::sources`], the inputs of one conversion
//!   together) reads exactly the version named by its ETag: if the object
//!   changed since it was tracked, the read fails with an [`ObjectFailure`] whose code is
//!   `PreconditionFailed` and which is not retryable. A missing object fails with `NoSuchKey`
//!   (not retryable); throttling, 5xx answers and dropped connections are retryable.
//! * [`ObjectStore::upload`] returns a writer whose bytes nobody can read until
//!   [`Upload::commit`] returns; dropping it uncommitted leaves no object and no debris.
//! * [`ObjectStore::offload`] runs blocking work (the conversion, which reads sources and
//!   writes uploads from plain threads) where the store's adapters may block.
//!
//! Two implementations: the S3 one (`converter::aws`, feature `aws`) and [`MemoryObjects`]
//! for unit tests and simulation. Every failure travels through the synchronous core inside an
//! `io::Error` as an [`ObjectFailure`], so the runner can tell a poison file from a throttled
//! request without knowing which store it talks to.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use shared::blobs::{BlobError, BlobStore};

use crate::input::Source;

/// The smallest part an S3 multipart upload accepts (all but the last): uploads buffer at
/// least this much, so it is part of the runner's memory budget.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Why an object read or write failed, carried inside the `io::Error` the core sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFailure {
    /// `s3://bucket/key` of the object.
    pub url: String,
    /// The request that failed, in S3's terms (`GetObject`, `UploadPart`, …).
    pub operation: &'static str,
    /// The service's error code (`NoSuchKey`, `PreconditionFailed`, `SlowDown`, …), when it
    /// answered at all.
    pub code: Option<String>,
    /// The service's or the transport's description.
    pub message: String,
    /// Whether trying again later may succeed (throttling, 5xx, timeouts, dropped connections).
    pub retryable: bool,
}

impl fmt::Display for ObjectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} failed: {}",
            self.operation, self.url, self.message
        )
    }
}

impl std::error::Error for ObjectFailure {}

impl ObjectFailure {
    /// The `io::Error` the core propagates, with a kind that says what went wrong.
    ///
    /// Never `Interrupted`, even when retrying later may succeed: readers (the chunker,
    /// `read_to_end`) call `read` again at once on `Interrupted`, and a stream that ended on
    /// a failure would then look like a short object, its rest silently lost.
    pub fn into_io(self) -> io::Error {
        let kind = match self.code.as_deref() {
            Some("NoSuchKey" | "NotFound" | "NoSuchBucket") => io::ErrorKind::NotFound,
            Some("AccessDenied" | "Forbidden" | "KMS.AccessDeniedException") => {
                io::ErrorKind::PermissionDenied
            }
            _ if self.retryable => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }

    /// Whether the failure says the version that was asked for no longer exists or was
    /// replaced (deleted, overwritten): reading it again can never succeed, and it is not the
    /// object's fault either.
    pub fn is_gone(&self) -> bool {
        !self.retryable
            && matches!(
                self.code.as_deref(),
                Some("NoSuchKey" | "NoSuchVersion" | "NotFound" | "PreconditionFailed")
            )
    }

    /// Finds an `ObjectFailure` inside an error chain (directly, or inside an `io::Error`).
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a ObjectFailure> {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = current {
            if let Some(failure) = e.downcast_ref::<ObjectFailure>() {
                return Some(failure);
            }
            if let Some(inner) = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
                if let Some(failure) = inner.downcast_ref::<ObjectFailure>() {
                    return Some(failure);
                }
            }
            current = e.source();
        }
        None
    }
}

/// A streamed write of one object (see the module contract).
pub trait Upload: Write + Send {
    /// The object's key.
    fn key(&self) -> &str;

    /// Makes the object visible; returns the bytes written.
    fn commit(self: Box<Self>) -> Result<u64, ObjectFailure>;
}

/// Which version of an object a read must see. A read that cannot see it fails for good:
/// `NoSuchVersion` (or `NoSuchKey`) when the version is gone, `PreconditionFailed` when the
/// object now holds other content ([`ObjectFailure::is_gone`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pin {
    /// Read exactly this version (`GetObject versionId=…`): a later overwrite cannot change
    /// what is read.
    pub version_id: Option<String>,
    /// And only if its ETag (without quotes) is this one (`If-Match`): in an unversioned bucket,
    /// the only way to notice an overwrite.
    pub etag: Option<String>,
}

impl Pin {
    /// Any version: whatever the object holds when it is read.
    pub fn any() -> Self {
        Pin::default()
    }

    /// The version a manifest's file names.
    pub fn of_file(file: &shared::manifest::ManifestFile) -> Self {
        Pin {
            version_id: file.version_id.clone(),
            etag: Some(file.etag.clone()).filter(|e| !e.is_empty()),
        }
    }
}

/// One object a conversion reads: where, which version, and its size when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRead {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The version to read.
    pub pin: Pin,
    /// The size, when known (progress, planning, read-ahead).
    pub size: Option<u64>,
}

/// Object storage for the manifest runner (see the module contract).
pub trait ObjectStore: BlobStore + 'static {
    /// A conversion input reading `bucket/key` at the version `pin` names; `size` feeds
    /// progress and planning.
    fn source(&self, bucket: &str, key: &str, pin: &Pin, size: Option<u64>) -> Arc<dyn Source>;

    /// The inputs of one conversion, in order. A store may read them ahead together (the S3
    /// one does, under a byte budget: `converter::aws::fetch`); by default each is
    /// [`ObjectStore::source`].
    fn sources(&self, reads: &[ObjectRead]) -> Vec<Arc<dyn Source>> {
        reads
            .iter()
            .map(|r| self.source(&r.bucket, &r.key, &r.pin, r.size))
            .collect()
    }

    /// A streamed write of `bucket/key` in parts of `part_size` bytes, encrypted as the store
    /// is configured, invisible until committed.
    fn upload(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        part_size: usize,
    ) -> Box<dyn Upload>;

    /// Runs `work` on a thread where this store's sources and uploads may block; `Err` if the
    /// work could not run to its end (it panicked or was cancelled).
    fn offload<T, F>(&self, work: F) -> impl Future<Output = Result<T, String>> + Send
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static;
}

/// One stored object of [`MemoryObjects`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// The object's bytes exactly as written (no compression or encryption applied).
    pub body: Vec<u8>,
    /// A digest of the content, standing in for S3's ETag.
    pub etag: String,
    /// The `Content-Type` it was written with.
    pub content_type: String,
    /// Its version id: every write makes a new one. Only the current version is kept, so a
    /// read pinned to an older version fails with `NoSuchVersion`, as if that version had been
    /// deleted.
    pub version_id: String,
}

type Objects = BTreeMap<(String, String), StoredObject>;

/// In-memory [`ObjectStore`] for unit tests and simulation: ETags are content digests, so a
/// read pinned to an ETag fails once the object is overwritten with other content, as on S3.
/// Failures can be planned per operation with [`MemoryObjects::fail_next`].
#[derive(Debug, Clone, Default)]
pub struct MemoryObjects {
    objects: Arc<Mutex<Objects>>,
    faults: Arc<Mutex<Vec<(String, ObjectFailure)>>>,
    versions: Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryObjects {
    /// An empty store with no planned failures; clones share its objects and faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ETag `MemoryObjects` gives `body`.
    pub fn etag_of(body: &[u8]) -> String {
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    /// Stores `bucket/key` (as a producer would); returns its ETag.
    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) -> String {
        let object = self.stored(body.into(), "application/octet-stream");
        let etag = object.etag.clone();
        self.lock()
            .insert((bucket.to_string(), key.to_string()), object);
        etag
    }

    /// A new version of `body`.
    fn stored(&self, body: Vec<u8>, content_type: &str) -> StoredObject {
        let serial = self
            .versions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        StoredObject {
            etag: Self::etag_of(&body),
            body,
            content_type: content_type.to_string(),
            version_id: format!("v{serial:06}"),
        }
    }

    /// The object at `bucket/key`.
    pub fn object(&self, bucket: &str, key: &str) -> Option<StoredObject> {
        self.lock()
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
    }

    /// Keys of `bucket` under `prefix`, in order.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.lock()
            .keys()
            .filter(|(b, k)| b == bucket && k.starts_with(prefix))
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Makes the next `operation` (`GetObject`, `PutObject`, `DeleteObject`, `ListObjectsV2`)
    /// on a key starting with `key_prefix` fail with `failure`.
    pub fn fail_next(&self, operation: &str, key_prefix: &str, failure: ObjectFailure) {
        self.faults
            .lock()
            .expect("invariant: lock is never poisoned")
            .push((format!("{operation} {key_prefix}"), failure));
    }

    fn planned_failure(&self, operation: &str, key: &str) -> Option<ObjectFailure> {
        let mut faults = self
            .faults
            .lock()
            .expect("invariant: lock is never poisoned");
        let at = faults.iter().position(|(plan, _)| {
            plan.split_once(' ')
                .is_some_and(|(op, prefix)| op == operation && key.starts_with(prefix))
        })?;
        Some(faults.remove(at).1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects
            .lock()
            .expect("invariant: lock is never poisoned")
    }

    fn blob_error(
        operation: &'static str,
        bucket: &str,
        key: &str,
        failure: ObjectFailure,
    ) -> BlobError {
        BlobError::Service {
            operation,
            bucket: bucket.to_string(),
            key: key.to_string(),
            message: failure.message,
        }
    }
}

impl BlobStore for MemoryObjects {
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BlobError> {
        if let Some(failure) = self.planned_failure("PutObject", key) {
            return Err(Self::blob_error("PutObject", bucket, key, failure));
        }
        let object = self.stored(body, content_type);
        self.lock()
            .insert((bucket.to_string(), key.to_string()), object);
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        if let Some(failure) = self.planned_failure("GetObject", key) {
            return Err(Self::blob_error("GetObject", bucket, key, failure));
        }
        Ok(self.object(bucket, key).map(|o| o.body))
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), BlobError> {
        if let Some(failure) = self.planned_failure("DeleteObject", key) {
            return Err(Self::blob_error("DeleteObject", bucket, key, failure));
        }
        self.lock().remove(&(bucket.to_string(), key.to_string()));
        Ok(())
    }

    async fn delete_prefix(
        &self,
        bucket: &str,
        prefix: &str,
        keep: &[String],
    ) -> Result<usize, BlobError> {
        if let Some(failure) = self.planned_failure("ListObjectsV2", prefix) {
            return Err(Self::blob_error("ListObjectsV2", bucket, prefix, failure));
        }
        let doomed: Vec<String> = self
            .keys(bucket, prefix)
            .into_iter()
            .filter(|k| !keep.contains(k))
            .collect();
        for key in &doomed {
            self.delete(bucket, key).await?;
        }
        Ok(doomed.len())
    }
}

impl ObjectStore for MemoryObjects {
    fn source(&self, bucket: &str, key: &str, pin: &Pin, size: Option<u64>) -> Arc<dyn Source> {
        Arc::new(MemoryObjectSource {
            store: self.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            name: format!("s3://{bucket}/{key}"),
            pin: pin.clone(),
            size,
        })
    }

    fn upload(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        _part_size: usize,
    ) -> Box<dyn Upload> {
        Box::new(MemoryUpload {
            store: self.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            content_type: content_type.to_string(),
            buffer: Vec::new(),
        })
    }

    async fn offload<T, F>(&self, work: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        Ok(work())
    }
}

struct MemoryObjectSource {
    store: MemoryObjects,
    bucket: String,
    key: String,
    name: String,
    pin: Pin,
    size: Option<u64>,
}

impl Source for MemoryObjectSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let failure = |code: &str, message: String, retryable: bool| ObjectFailure {
            url: self.name.clone(),
            operation: "GetObject",
            code: Some(code.to_string()),
            message,
            retryable,
        };
        if let Some(planned) = self.store.planned_failure("GetObject", &self.key) {
            return Err(planned.into_io());
        }
        let object = self.store.object(&self.bucket, &self.key).ok_or_else(|| {
            failure("NoSuchKey", "the object does not exist".into(), false).into_io()
        })?;
        if let Some(version_id) = &self.pin.version_id {
            if *version_id != object.version_id {
                return Err(failure(
                    "NoSuchVersion",
                    format!("version {version_id} does not exist"),
                    false,
                )
                .into_io());
            }
        }
        if let Some(etag) = &self.pin.etag {
            if *etag != object.etag {
                return Err(failure(
                    "PreconditionFailed",
                    format!("the object changed since it was tracked (ETag {etag})"),
                    false,
                )
                .into_io());
            }
        }
        Ok(Box::new(io::Cursor::new(object.body)))
    }

    fn size_hint(&self) -> Option<u64> {
        self.size
    }
}

struct MemoryUpload {
    store: MemoryObjects,
    bucket: String,
    key: String,
    content_type: String,
    buffer: Vec<u8>,
}

impl Write for MemoryUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Upload for MemoryUpload {
    fn key(&self) -> &str {
        &self.key
    }

    fn commit(self: Box<Self>) -> Result<u64, ObjectFailure> {
        if let Some(failure) = self.store.planned_failure("PutObject", &self.key) {
            return Err(failure);
        }
        let written = self.buffer.len() as u64;
        let object = self.store.stored(self.buffer, &self.content_type);
        self.store.lock().insert((self.bucket, self.key), object);
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_read_fails_for_good_once_the_object_changed() {
        let store = MemoryObjects::new();
        let etag = store.insert("in", "a.ndjson", "{\"a\":1}\n");
        let pin = Pin {
            version_id: None,
            etag: Some(etag),
        };
        let source = store.source("in", "a.ndjson", &pin, None);
        let mut text = String::new();
        source.open().unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "{\"a\":1}\n");

        store.insert("in", "a.ndjson", "{\"a\":2}\n");
        let error = source.open().err().expect("the version changed");
        let failure = ObjectFailure::find(&error).expect("an object failure");
        assert_eq!(failure.code.as_deref(), Some("PreconditionFailed"));
        assert!(!failure.retryable && failure.is_gone());
    }

    #[test]
    fn a_read_pinned_to_a_version_fails_once_that_version_is_gone() {
        let store = MemoryObjects::new();
        store.insert("in", "a.ndjson", "{\"a\":1}\n");
        let pin = Pin {
            version_id: Some(store.object("in", "a.ndjson").unwrap().version_id),
            etag: None,
        };
        let source = store.source("in", "a.ndjson", &pin, None);
        assert!(source.open().is_ok());
        // The same content again is a new version.
        store.insert("in", "a.ndjson", "{\"a\":1}\n");
        let error = source.open().err().expect("the version is gone");
        let failure = ObjectFailure::find(&error).expect("an object failure");
        assert_eq!(failure.code.as_deref(), Some("NoSuchVersion"));
        assert!(failure.is_gone());
    }

    #[test]
    fn an_upload_is_invisible_until_committed_and_gone_if_dropped() {
        let store = MemoryObjects::new();
        let mut upload = store.upload("out", "p.parquet", "application/x", 1 << 20);
        upload.write_all(b"PAR1").unwrap();
        assert!(store.object("out", "p.parquet").is_none());
        assert_eq!(upload.commit().unwrap(), 4);
        assert_eq!(store.object("out", "p.parquet").unwrap().body, b"PAR1");

        let mut dropped = store.upload("out", "q.parquet", "application/x", 1 << 20);
        dropped.write_all(b"half").unwrap();
        drop(dropped);
        assert!(store.object("out", "q.parquet").is_none());
    }

    #[test]
    fn planned_failures_hit_once_and_only_their_operation() {
        let store = MemoryObjects::new();
        store.insert("in", "a", "x");
        store.fail_next(
            "GetObject",
            "a",
            ObjectFailure {
                url: "s3://in/a".into(),
                operation: "GetObject",
                code: Some("SlowDown".into()),
                message: "slow down".into(),
                retryable: true,
            },
        );
        let source = store.source("in", "a", &Pin::any(), None);
        let error = source.open().err().expect("the planned failure");
        assert!(ObjectFailure::find(&error).unwrap().retryable);
        assert!(source.open().is_ok());
    }
}
