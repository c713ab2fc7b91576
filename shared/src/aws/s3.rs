//! [`BlobStore`] on S3: manifests and schemas, and removing a failed manifest's outputs.

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::SseKms;
use crate::blobs::{BlobError, BlobStore};

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
        request = request.sse_kms(self.kms_key_id.as_deref());
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

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), BlobError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(service("DeleteObject", bucket, key))?;
        Ok(())
    }

    async fn delete_prefix(
        &self,
        bucket: &str,
        prefix: &str,
        keep: &[String],
    ) -> Result<usize, BlobError> {
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
                if keep.iter().any(|k| k == key) {
                    continue;
                }
                tracing::debug!(bucket, key, "deleting");
                self.delete(bucket, key).await?;
                deleted += 1;
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => return Ok(deleted),
            }
        }
    }
}
