//! S3 adapters for the synchronous conversion core: a streaming [`Source`] and a streaming,
//! multipart [`std::io::Write`] destination.
//!
//! The core runs on plain threads; these adapters hand the network work to a Tokio runtime
//! (whose [`Handle`] they hold) and never buffer a whole object:
//!
//! * [`S3Ranges`] reads objects as ranged `GetObject`s for a [`Fetcher`] (see
//!   [`super::fetch`]: many requests in flight under a byte budget, each object's version
//!   pinned, a dropped connection costs one part).
//! * [`S3Upload`] buffers one part (`part_size`), uploads parts in the background (at most
//!   `max_in_flight` at once), and on [`S3Upload::commit`] completes the multipart upload, or
//!   uses a single `PutObject` when the whole object fit in one part. An upload dropped without
//!   commit is aborted: nothing half-written ever becomes visible. Every object is written with
//!   SSE-KMS when a key is configured (bucket key enabled).
//!
//! Both must be used from threads outside the runtime (e.g. `spawn_blocking`), since they
//! block on it.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::ops::Range;
use std::sync::Arc;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use shared::aws::SseKms;

use super::fetch::{Fetcher, RangeFuture, RangeGet, Ranged, ReadAhead, Target};
use crate::input::Source;
use crate::objects::{ObjectFailure, Upload, MIN_PART_SIZE};

/// An [`ObjectFailure`] from an SDK error: the service's code, and whether it is worth
/// retrying (throttling, 5xx, and every failure that is about the network, not the object).
pub fn failure_from_sdk<E>(
    operation: &'static str,
    url: &str,
    error: &SdkError<E, HttpResponse>,
) -> ObjectFailure
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    let (code, retryable) = match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().map(str::to_string);
            let status = service.raw().status().as_u16();
            let throttled = matches!(
                code.as_deref(),
                Some(
                    "SlowDown"
                        | "Throttling"
                        | "ThrottlingException"
                        | "RequestTimeout"
                        | "InternalError"
                )
            );
            (code, throttled || status >= 500)
        }
        // Timeouts, dispatch and response failures are about the network, not the object.
        _ => (None, true),
    };
    ObjectFailure {
        url: url.to_string(),
        operation,
        code,
        message: shared::aws::describe_error(error),
        retryable,
    }
}

/// Splits `s3://bucket/key` (re-exported for the CLI).
pub fn parse_url(url: &str) -> Option<(String, String)> {
    shared::manifest::parse_s3_url(url).map(|(b, k)| (b.to_string(), k.to_string()))
}

/// Ranged `GetObject`s: what a [`Fetcher`] reads S3 with.
#[derive(Debug, Clone)]
pub struct S3Ranges {
    client: Client,
}

impl S3Ranges {
    /// Reads with `client`.
    pub fn new(client: Client) -> Self {
        S3Ranges { client }
    }

    /// Sources reading `targets` from S3 through one [`Fetcher`] on `handle`'s runtime.
    pub fn sources(
        client: Client,
        handle: Handle,
        settings: ReadAhead,
        targets: Vec<Target>,
    ) -> Vec<Arc<dyn Source>> {
        Fetcher::new(Arc::new(S3Ranges::new(client)), handle, settings, targets).sources()
    }
}

impl RangeGet for S3Ranges {
    fn get(&self, target: &Target, etag: Option<&str>, range: Range<u64>) -> RangeFuture {
        let mut request = self
            .client
            .get_object()
            .bucket(&target.bucket)
            .key(&target.key)
            .range(format!(
                "bytes={}-{}",
                range.start,
                range.end.saturating_sub(1)
            ));
        if let Some(version_id) = &target.version_id {
            request = request.version_id(version_id);
        }
        if let Some(etag) = etag {
            request = request.if_match(format!("\"{etag}\""));
        }
        let name = target.name.clone();
        Box::pin(async move {
            let output = match request.send().await {
                Ok(output) => output,
                Err(error) => {
                    let failure = failure_from_sdk("GetObject", &name, &error);
                    // S3 answers a range of an empty object with 416 InvalidRange.
                    if range.start == 0 && failure.code.as_deref() == Some("InvalidRange") {
                        return Ok(Ranged {
                            bytes: Bytes::new(),
                            total: Some(0),
                            etag: None,
                        });
                    }
                    return Err(failure);
                }
            };
            let total = output.content_range().and_then(content_range_total);
            let etag = output.e_tag().map(|e| e.trim_matches('"').to_string());
            // Straight into one buffer of the range's size: collecting the chunks and then
            // joining them would hold every part twice while it arrives.
            let mut bytes = Vec::with_capacity((range.end - range.start) as usize);
            let mut body = output.body;
            loop {
                match body.next().await {
                    Some(Ok(chunk)) => bytes.extend_from_slice(&chunk),
                    Some(Err(error)) => {
                        return Err(ObjectFailure {
                            url: name.clone(),
                            operation: "GetObject",
                            code: None,
                            message: format!(
                                "connection dropped after {} bytes of {}..{}: {error}",
                                bytes.len(),
                                range.start,
                                range.end
                            ),
                            retryable: true,
                        })
                    }
                    None => break,
                }
            }
            Ok(Ranged {
                bytes: Bytes::from(bytes),
                total,
                etag,
            })
        })
    }
}

/// The total of a `Content-Range: bytes a-b/total` header (`None` for `*`).
fn content_range_total(header: &str) -> Option<u64> {
    header.rsplit_once('/')?.1.trim().parse().ok()
}

/// How objects are encrypted at rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encryption {
    /// SSE-KMS with this key (ARN or id); `None` leaves it to the bucket's default.
    pub kms_key_id: Option<String>,
}

/// A streaming upload of one object (see the module docs).
pub struct S3Upload {
    client: Client,
    handle: Handle,
    bucket: String,
    key: String,
    content_type: String,
    encryption: Encryption,
    part_size: usize,
    max_in_flight: usize,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    next_part: i32,
    in_flight: VecDeque<JoinHandle<Result<CompletedPart, ObjectFailure>>>,
    completed: Vec<CompletedPart>,
    written: u64,
    committed: bool,
}

impl fmt::Debug for S3Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Upload")
            .field("url", &self.url())
            .field("written", &self.written)
            .finish()
    }
}

impl S3Upload {
    /// Starts writing `bucket/key` (nothing is sent until a part is full or on commit).
    pub fn new(
        client: Client,
        handle: Handle,
        bucket: impl Into<String>,
        key: impl Into<String>,
        content_type: &str,
        encryption: Encryption,
        part_size: usize,
    ) -> Self {
        let part_size = part_size.max(MIN_PART_SIZE);
        S3Upload {
            client,
            handle,
            bucket: bucket.into(),
            key: key.into(),
            content_type: content_type.to_string(),
            encryption,
            part_size,
            max_in_flight: 2,
            buffer: Vec::with_capacity(part_size),
            upload_id: None,
            next_part: 1,
            in_flight: VecDeque::new(),
            completed: Vec::new(),
            written: 0,
            committed: false,
        }
    }

    /// `s3://bucket/key`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// The object's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn start_upload(&mut self) -> Result<String, ObjectFailure> {
        let request = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type(&self.content_type)
            .sse_kms(self.encryption.kms_key_id.as_deref());
        let output = self
            .handle
            .block_on(request.send())
            .map_err(|e| failure_from_sdk("CreateMultipartUpload", &self.url(), &e))?;
        output.upload_id.ok_or_else(|| ObjectFailure {
            url: self.url(),
            operation: "CreateMultipartUpload",
            code: None,
            message: "no upload id in the response".to_string(),
            retryable: true,
        })
    }

    /// Sends the buffer as the next part, in the background.
    fn ship_part(&mut self) -> Result<(), ObjectFailure> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self.start_upload()?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let body = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.part_size));
        let number = self.next_part;
        self.next_part += 1;
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body));
        let url = self.url();
        self.in_flight.push_back(self.handle.spawn(async move {
            let output = request
                .send()
                .await
                .map_err(|e| failure_from_sdk("UploadPart", &url, &e))?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(output.e_tag)
                .build())
        }));
        while self.in_flight.len() > self.max_in_flight {
            self.wait_oldest()?;
        }
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<(), ObjectFailure> {
        if let Some(task) = self.in_flight.pop_front() {
            let part = self.handle.block_on(task).map_err(|e| ObjectFailure {
                url: self.url(),
                operation: "UploadPart",
                code: None,
                message: format!("upload task failed: {e}"),
                retryable: true,
            })??;
            self.completed.push(part);
        }
        Ok(())
    }

    /// Makes the object visible: completes the multipart upload, or puts it in one request if
    /// it fit in one part. Returns the bytes written.
    pub fn commit(mut self) -> Result<u64, ObjectFailure> {
        self.finish()
    }

    fn finish(&mut self) -> Result<u64, ObjectFailure> {
        if self.upload_id.is_none() {
            let request = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(&self.content_type)
                .body(ByteStream::from(std::mem::take(&mut self.buffer)))
                .sse_kms(self.encryption.kms_key_id.as_deref());
            self.handle
                .block_on(request.send())
                .map_err(|e| failure_from_sdk("PutObject", &self.url(), &e))?;
            self.committed = true;
            return Ok(self.written);
        }
        if !self.buffer.is_empty() {
            self.ship_part()?;
        }
        while !self.in_flight.is_empty() {
            self.wait_oldest()?;
        }
        let mut parts = std::mem::take(&mut self.completed);
        parts.sort_by_key(|p| p.part_number);
        let request = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(self.upload_id.clone().unwrap_or_default())
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        self.handle
            .block_on(request.send())
            .map_err(|e| failure_from_sdk("CompleteMultipartUpload", &self.url(), &e))?;
        self.committed = true;
        Ok(self.written)
    }
}

impl Upload for S3Upload {
    fn key(&self) -> &str {
        &self.key
    }

    fn commit(mut self: Box<Self>) -> Result<u64, ObjectFailure> {
        self.finish()
    }
}

impl Write for S3Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.part_size - self.buffer.len();
        let n = buf.len().min(room);
        self.buffer.extend_from_slice(&buf[..n]);
        self.written += n as u64;
        if self.buffer.len() >= self.part_size {
            self.ship_part().map_err(ObjectFailure::into_io)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for S3Upload {
    /// An upload that was not committed is aborted, so no part of it lingers (or bills).
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for task in self.in_flight.drain(..) {
            task.abort();
        }
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let request = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id);
        let abort = async move {
            if let Err(e) = request.send().await {
                tracing::warn!(error = %shared::aws::describe_error(&e), "could not abort a multipart upload; the bucket's lifecycle rule removes it");
            }
        };
        if Handle::try_current().is_ok() {
            self.handle.spawn(abort);
        } else {
            self.handle.block_on(abort);
        }
    }
}
