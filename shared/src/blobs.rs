//! Small whole objects (manifests): put and get; and removing a failed manifest's outputs.
//!
//! # Contract
//!
//! [`BlobStore::put`] replaces the object atomically (readers see the old or the new
//! content, never a mix) and is durable when it returns; [`BlobStore::get`] returns `None` for
//! a missing object; [`BlobStore::delete_prefix`] removes every object whose key starts with
//! the prefix, except the keys it is told to keep; both deletions are idempotent (nothing to delete is
//! success). Large data never goes through
//! this trait: the converter streams it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

/// A failed object operation, naming the object.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The service refused or could not be reached.
    #[error("S3 {operation} of s3://{bucket}/{key} failed: {message}")]
    Service {
        /// The S3 API call that failed (`PutObject`, `GetObject`, `DeleteObject`, `ListObjectsV2`).
        operation: &'static str,
        /// Bucket name, without `s3://`.
        bucket: String,
        /// The object key, or the key prefix for a `ListObjectsV2` listing.
        key: String,
        /// The service's description.
        message: String,
    },
    /// A fault injected by a test wrapper (never produced by a real store).
    #[cfg(any(test, feature = "test-support"))]
    #[error("injected fault in {operation}")]
    Injected {
        /// The operation that was made to fail.
        operation: &'static str,
    },
}

/// Whole-object storage (see the module docs for the contract).
pub trait BlobStore: Send + Sync {
    /// Writes `body` to `bucket/key`.
    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<(), BlobError>> + Send;

    /// Reads `bucket/key`.
    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, BlobError>> + Send;

    /// Deletes `bucket/key`; deleting a missing object is success.
    fn delete(&self, bucket: &str, key: &str)
        -> impl Future<Output = Result<(), BlobError>> + Send;

    /// Deletes every object of `bucket` whose key starts with `prefix` and is not in `keep`;
    /// returns how many. (`keep` is how a retried run removes only the parts an earlier attempt
    /// wrote and this one did not.)
    fn delete_prefix(
        &self,
        bucket: &str,
        prefix: &str,
        keep: &[String],
    ) -> impl Future<Output = Result<usize, BlobError>> + Send;
}

/// In-memory objects for unit tests.
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl MemoryBlobs {
    /// An empty store. It never fails, needs no bucket created and ignores content types.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every object: (bucket, key) → bytes.
    pub fn objects(&self) -> BTreeMap<(String, String), Vec<u8>> {
        self.inspect(BTreeMap::clone)
    }

    /// Looks at every object in place, under the store's lock: what a check that runs often
    /// uses instead of [`MemoryBlobs::objects`], which copies every body.
    pub fn inspect<T>(&self, f: impl FnOnce(&BTreeMap<(String, String), Vec<u8>>) -> T) -> T {
        f(&self
            .objects
            .lock()
            .expect("invariant: lock is never poisoned"))
    }
}

impl BlobStore for MemoryBlobs {
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        _content_type: &str,
    ) -> Result<(), BlobError> {
        self.objects
            .lock()
            .expect("invariant: lock is never poisoned")
            .insert((bucket.to_string(), key.to_string()), body);
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        Ok(self
            .objects
            .lock()
            .expect("invariant: lock is never poisoned")
            .get(&(bucket.to_string(), key.to_string()))
            .cloned())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), BlobError> {
        self.objects
            .lock()
            .expect("invariant: lock is never poisoned")
            .remove(&(bucket.to_string(), key.to_string()));
        Ok(())
    }

    async fn delete_prefix(
        &self,
        bucket: &str,
        prefix: &str,
        keep: &[String],
    ) -> Result<usize, BlobError> {
        let mut objects = self
            .objects
            .lock()
            .expect("invariant: lock is never poisoned");
        let before = objects.len();
        objects.retain(|(b, k), _| !(b == bucket && k.starts_with(prefix) && !keep.contains(k)));
        Ok(before - objects.len())
    }
}
