//! Where one manifest's conversion writes: numbered Parquet parts and one gzip error object,
//! streamed to an [`ObjectStore`]. Keys depend only on the manifest, so a retry overwrites
//! what an earlier attempt wrote instead of adding to it.

use std::io::{self, Write};
use std::sync::Arc;

use crate::convert::Destination;
use crate::objects::{ObjectFailure, ObjectStore, Upload, MIN_PART_SIZE};

/// Destination of one manifest (see the module docs).
pub(crate) struct ManifestDestination<O> {
    pub(crate) objects: Arc<O>,
    pub(crate) part_size: usize,
    pub(crate) output_bucket: String,
    /// Parts are `<part_prefix><five-digit part number>.parquet`.
    pub(crate) part_prefix: String,
    pub(crate) error_bucket: String,
    pub(crate) error_key: String,
}

impl<O: ObjectStore> ManifestDestination<O> {
    fn part_key(&self, part: usize) -> String {
        format!("{}{part:05}.parquet", self.part_prefix)
    }
}

/// The error object, created only when the first line is rejected: a manifest without
/// rejects writes (and bills) nothing.
pub(crate) struct LazyErrors {
    factory: Option<Box<dyn FnOnce() -> Box<dyn Upload> + Send>>,
    writer: Option<flate2::write::GzEncoder<Box<dyn Upload>>>,
}

impl Write for LazyErrors {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                let factory = self
                    .factory
                    .take()
                    .expect("invariant: the factory is used once");
                self.writer.insert(flate2::write::GzEncoder::new(
                    factory(),
                    flate2::Compression::default(),
                ))
            }
        };
        writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LazyErrors {
    /// Finishes the object; its key, or `None` if nothing was rejected.
    pub(crate) fn commit(self) -> Result<Option<String>, ObjectFailure> {
        let Some(writer) = self.writer else {
            return Ok(None);
        };
        let upload = writer.finish().map_err(|e| ObjectFailure {
            url: String::new(),
            operation: "PutObject",
            code: None,
            message: format!("finishing the gzip stream: {e}"),
            retryable: true,
        })?;
        let key = upload.key().to_string();
        upload.commit()?;
        Ok(Some(key))
    }
}

impl<O: ObjectStore> Destination for ManifestDestination<O> {
    type Parquet = Box<dyn Upload>;
    type Rejects = LazyErrors;

    fn parquet(&mut self, part: usize) -> io::Result<Box<dyn Upload>> {
        Ok(self.objects.upload(
            &self.output_bucket,
            &self.part_key(part),
            "application/vnd.apache.parquet",
            self.part_size,
        ))
    }

    fn rejects(&mut self) -> io::Result<Option<LazyErrors>> {
        let (objects, bucket, key) = (
            Arc::clone(&self.objects),
            self.error_bucket.clone(),
            self.error_key.clone(),
        );
        Ok(Some(LazyErrors {
            factory: Some(Box::new(move || {
                objects.upload(&bucket, &key, "application/gzip", MIN_PART_SIZE)
            })),
            writer: None,
        }))
    }
}
