//! Small whole objects (manifests): put and get; and removing a failed manifest's outputs.
//!
//! # Contract
//!
//! [`BlobStore::put`] replaces the object atomically (readers see the old or the new
//! content, never a mix) and is durable when it returns; [`BlobStore::get`] returns `None` for
//! a missing object; [`BlobStore::delete_prefix`] removes every object whose key starts with
//! the prefix and is idempotent (nothing to delete is success). Large data never goes through
//! this trait: the converter streams it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::Client;

/// A failed object operation, naming the object.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The service refused or could not be reached.
    #[error("S3 {operation} of s3://{bucket}/{key} failed: {message}")]
    Service {
        /// Operation.
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The service's description.
        message: String,
    },
    /// A fault injected by a test wrapper (never produced by a real store).
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

    /// Deletes every object of `bucket` whose key starts with `prefix`; returns how many.
    fn delete_prefix(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<usize, BlobError>> + Send;
}

/// S3, optionally encrypting every object with a KMS key.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: Client,
    kms_key_id: Option<String>,
}

impl S3Blobs {
    /// A store writing with SSE-KMS under `kms_key_id` when given (else the bucket default).
    pub fn new(client: Client, kms_key_id: Option<String>) -> Self {
        S3Blobs { client, kms_key_id }
    }
}

fn service<
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    operation: &'static str,
    bucket: &str,
    key: &str,
) -> impl FnOnce(SdkError<E, R>) -> BlobError {
    let (bucket, key) = (bucket.to_string(), key.to_string());
    move |error| BlobError::Service {
        operation,
        bucket,
        key,
        message: crate::aws::describe_error(&error),
    }
}

impl BlobStore for S3Blobs {
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BlobError> {
        let mut request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        if let Some(kms) = &self.kms_key_id {
            request = request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms)
                .bucket_key_enabled(true);
        }
        request
            .send()
            .await
            .map_err(service("PutObject", bucket, key))?;
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => {
                let bytes = output
                    .body
                    .collect()
                    .await
                    .map_err(|e| BlobError::Service {
                        operation: "GetObject",
                        bucket: bucket.to_string(),
                        key: key.to_string(),
                        message: e.to_string(),
                    })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            // A missing bucket means the object does not exist either.
            Err(error)
                if error.as_service_error().is_some_and(|e| e.is_no_such_key())
                    || aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&error)
                        == Some("NoSuchBucket") =>
            {
                Ok(None)
            }
            Err(error) => Err(service("GetObject", bucket, key)(error)),
        }
    }

    async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<usize, BlobError> {
        let mut deleted = 0;
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(service("ListObjectsV2", bucket, prefix))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                self.client
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(service("DeleteObject", bucket, key))?;
                deleted += 1;
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => return Ok(deleted),
            }
        }
    }
}

/// In-memory objects for unit tests.
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl MemoryBlobs {
    /// No objects.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every object: (bucket, key) → bytes.
    pub fn objects(&self) -> BTreeMap<(String, String), Vec<u8>> {
        self.objects
            .lock()
            .expect("invariant: lock is never poisoned")
            .clone()
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

    async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<usize, BlobError> {
        let mut objects = self
            .objects
            .lock()
            .expect("invariant: lock is never poisoned");
        let before = objects.len();
        objects.retain(|(b, k), _| !(b == bucket && k.starts_with(prefix)));
        Ok(before - objects.len())
    }
}
