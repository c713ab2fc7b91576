//! Where `convert` writes: local files (written beside the target and renamed into place) or,
//! with the `aws` feature, S3 objects.

use std::io::{self, Write};
use std::path::PathBuf;

#[cfg(feature = "aws")]
use converter::aws::s3::S3Upload;
use converter::convert::Destination;
use converter::output::AtomicFile;

/// Where `convert` writes: a local file (atomically renamed) or an S3 object (multipart,
/// aborted unless committed).
pub enum Sink {
    /// A local file.
    Local(AtomicFile),
    /// An S3 object.
    #[cfg(feature = "aws")]
    S3(S3Upload),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Local(f) => f.write(buf),
            #[cfg(feature = "aws")]
            Sink::S3(u) => u.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Local(f) => f.flush(),
            #[cfg(feature = "aws")]
            Sink::S3(u) => u.flush(),
        }
    }
}

impl Sink {
    /// Makes the output visible.
    pub fn commit(self) -> anyhow::Result<()> {
        match self {
            Sink::Local(f) => Ok(f.commit()?),
            #[cfg(feature = "aws")]
            Sink::S3(u) => {
                u.commit()?;
                Ok(())
            }
        }
    }
}

/// A path or an `s3://` URL.
pub fn is_s3(target: &str) -> bool {
    target.starts_with("s3://")
}

/// `convert`'s destination.
pub struct CliDestination {
    /// The Parquet output.
    pub parquet: String,
    /// The error output.
    pub errors: Option<String>,
    /// SSE-KMS key for S3 outputs.
    pub kms_key_id: Option<String>,
}

impl CliDestination {
    fn open(&self, target: &str, content_type: &str) -> io::Result<Sink> {
        if is_s3(target) {
            #[cfg(feature = "aws")]
            {
                let cloud =
                    crate::cloud::Cloud::get().map_err(|e| io::Error::other(format!("{e:#}")))?;
                Ok(Sink::S3(cloud.upload(
                    target,
                    content_type,
                    self.kms_key_id.as_ref(),
                )?))
            }
            #[cfg(not(feature = "aws"))]
            {
                let _ = (content_type, &self.kms_key_id);
                Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    no_s3_support(target),
                ))
            }
        } else {
            Ok(Sink::Local(AtomicFile::create(PathBuf::from(target))?))
        }
    }
}

impl Destination for CliDestination {
    type Parquet = Sink;
    type Rejects = Sink;

    /// One output: the CLI never splits it into parts.
    fn parquet(&mut self, _part: usize) -> io::Result<Sink> {
        let target = self.parquet.clone();
        self.open(&target, "application/vnd.apache.parquet")
    }

    fn rejects(&mut self) -> io::Result<Option<Sink>> {
        match self.errors.clone() {
            Some(target) => self.open(&target, "application/x-ndjson").map(Some),
            None => Ok(None),
        }
    }
}

/// Why an `s3://` path cannot be used by a build without the `aws` feature, and what to do.
#[cfg(not(feature = "aws"))]
pub fn no_s3_support(url: &str) -> String {
    format!(
        "`{url}`: this build of ndjson-parquet has no S3 support; build it with \
         `cargo build --release -p converter --features aws` to read and write s3:// paths"
    )
}
