//! The converter's AWS edge (feature `aws`): S3 streaming adapters ([`s3`]), the S3
//! [`ObjectStore`] the manifest runner uses ([`S3Objects`]), and the start-up check of what
//! the configuration names ([`preflight`]). The Lambda and `ndjson-parquet run-manifest` wire
//! these and the DynamoDB ledger (`shared::aws::DynamoLedger`) into [`crate::manifest_run::Runner`].

pub mod fetch;
pub mod s3;

use std::sync::Arc;

use aws_sdk_s3::Client;
use shared::aws::S3Blobs;
use shared::blobs::{BlobError, BlobStore};
use tokio::runtime::Handle;

use crate::input::Source;
use crate::manifest_run::ConverterConfig;
use crate::objects::{ObjectRead, ObjectStore, Pin, Upload};
use fetch::{ReadAhead, Target};
use s3::{Encryption, S3Ranges, S3Upload};

/// S3 as the manifest runner's [`ObjectStore`]: version-pinned reads, read ahead in parallel ranges; multipart
/// uploads; every object written with SSE-KMS under one key.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: Client,
    handle: Handle,
    blobs: S3Blobs,
    encryption: Encryption,
    read_ahead: ReadAhead,
}

impl S3Objects {
    /// A store on `client` whose adapters block on `handle`'s runtime, writing under
    /// `kms_key_id` (the bucket's default encryption when `None`).
    pub fn new(client: Client, handle: Handle, kms_key_id: Option<String>) -> Self {
        S3Objects {
            blobs: S3Blobs::new(client.clone(), kms_key_id.clone()),
            client,
            handle,
            encryption: Encryption { kms_key_id },
            read_ahead: ReadAhead::default(),
        }
    }

    /// Reads each conversion's inputs ahead under `read_ahead` (see [`fetch`]).
    pub fn with_read_ahead(mut self, read_ahead: ReadAhead) -> Self {
        self.read_ahead = read_ahead;
        self
    }
}

impl BlobStore for S3Objects {
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BlobError> {
        self.blobs.put(bucket, key, body, content_type).await
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        self.blobs.get(bucket, key).await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), BlobError> {
        self.blobs.delete(bucket, key).await
    }

    async fn delete_prefix(
        &self,
        bucket: &str,
        prefix: &str,
        keep: &[String],
    ) -> Result<usize, BlobError> {
        self.blobs.delete_prefix(bucket, prefix, keep).await
    }
}

impl ObjectStore for S3Objects {
    fn source(&self, bucket: &str, key: &str, pin: &Pin, size: Option<u64>) -> Arc<dyn Source> {
        let read = ObjectRead {
            bucket: bucket.to_string(),
            key: key.to_string(),
            pin: pin.clone(),
            size,
        };
        self.sources(&[read]).remove(0)
    }

    fn sources(&self, reads: &[ObjectRead]) -> Vec<Arc<dyn Source>> {
        let targets = reads
            .iter()
            .map(|r| Target {
                name: format!("s3://{}/{}", r.bucket, r.key),
                bucket: r.bucket.clone(),
                key: r.key.clone(),
                version_id: r.pin.version_id.clone(),
                etag: r.pin.etag.clone(),
                size: r.size,
            })
            .collect();
        S3Ranges::sources(
            self.client.clone(),
            self.handle.clone(),
            self.read_ahead,
            targets,
        )
    }

    fn upload(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        part_size: usize,
    ) -> Box<dyn Upload> {
        Box::new(S3Upload::new(
            self.client.clone(),
            self.handle.clone(),
            bucket,
            key,
            content_type,
            self.encryption.clone(),
            part_size,
        ))
    }

    async fn offload<T, F>(&self, work: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        // The adapters block on the runtime: they must run on a thread outside it.
        self.handle
            .spawn_blocking(work)
            .await
            .map_err(|e| format!("the conversion task did not finish: {e}"))
    }
}

/// Checks what would otherwise fail every manifest: the KMS key exists and is enabled (S3
/// accepts a write naming a key it cannot use only to fail later, and some S3-compatible
/// stores accept any key id), and the output bucket is reachable and listable under the output
/// prefix. Run at start-up.
pub async fn preflight(
    kms: &aws_sdk_kms::Client,
    s3: &Client,
    config: &ConverterConfig,
) -> Result<(), String> {
    let key = kms
        .describe_key()
        .key_id(&config.kms_key_arn)
        .send()
        .await
        .map_err(|e| {
            format!(
                "KMS_KEY_ARN {}: {}",
                config.kms_key_arn,
                shared::aws::describe_error(&e)
            )
        })?;
    let metadata = key
        .key_metadata
        .ok_or_else(|| format!("KMS_KEY_ARN {}: no key metadata", config.kms_key_arn))?;
    if !metadata.enabled {
        return Err(format!(
            "KMS_KEY_ARN {}: the key is disabled",
            config.kms_key_arn
        ));
    }
    // A one-key listing under the output prefix, not HeadBucket: S3 authorizes HeadBucket as
    // an `s3:ListBucket` with no `s3:prefix`, which a role allowed to list only its own prefix
    // (least privilege, `terraform/modules/iam`) is denied. This is what the run itself does.
    let probe_prefix = shared::manifest::output_probe_prefix(&config.output_prefix);
    s3.list_objects_v2()
        .bucket(&config.output_bucket)
        .prefix(&probe_prefix)
        .max_keys(1)
        .send()
        .await
        .map_err(|e| {
            format!(
                "OUTPUT_BUCKET {} (listing s3://{}/{}): {}",
                config.output_bucket,
                config.output_bucket,
                probe_prefix,
                shared::aws::describe_error(&e)
            )
        })?;
    Ok(())
}
