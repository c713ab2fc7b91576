//! Writing batches into numbered Parquet parts of a [`Destination`].
//!
//! Apart from the driver because it owns the one stateful concern of the output side: when
//! a part is full, opening the next one lazily, and counting what reached the destination.

use std::io::{self, Write};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::file::properties::WriterProperties;

use super::{ConvertError, Destination};
use crate::parquet_writer::{adapt_dictionary, ParallelWriter};

/// Counts what the Parquet writer hands to the destination.
struct CountingWriter<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes batches into numbered Parquet parts, starting a new part once the current one
/// reaches `max_file_bytes` (at a row-group boundary). Parts are opened lazily, so no part is
/// empty unless the whole output is.
pub(super) struct PartWriter<'d, D: Destination> {
    destination: &'d mut D,
    schema: SchemaRef,
    properties: WriterProperties,
    max_file_bytes: Option<u64>,
    current: Option<ParallelWriter<CountingWriter<D::Parquet>>>,
    threads: usize,
    parts: Vec<D::Parquet>,
    output_bytes: u64,
    row_groups: usize,
}

impl<'d, D: Destination> PartWriter<'d, D> {
    /// A writer of parts of `schema`, none open yet; `threads` column encoders per part.
    pub(super) fn new(
        destination: &'d mut D,
        schema: SchemaRef,
        properties: WriterProperties,
        max_file_bytes: Option<u64>,
        threads: usize,
    ) -> Self {
        PartWriter {
            destination,
            schema,
            properties,
            max_file_bytes,
            current: None,
            threads,
            parts: Vec::new(),
            output_bytes: 0,
            row_groups: 0,
        }
    }

    pub(super) fn write(&mut self, batch: &RecordBatch) -> Result<(), ConvertError> {
        if self.current.is_none() {
            let writer = self.open(Some(batch))?;
            self.current = Some(writer);
        }
        let writer = self.current.as_mut().expect("invariant: a part is open");
        writer.write(batch).map_err(ConvertError::Parquet)?;
        if let Some(max) = self.max_file_bytes {
            if writer.bytes_written() as u64 + writer.in_progress_size() as u64 >= max {
                self.close_current()?;
            }
        }
        Ok(())
    }

    /// Opens the next part; its first batch decides which columns skip dictionary encoding.
    fn open(
        &mut self,
        first: Option<&RecordBatch>,
    ) -> Result<ParallelWriter<CountingWriter<D::Parquet>>, ConvertError> {
        let out = self
            .destination
            .parquet(self.parts.len())
            .map_err(ConvertError::Output)?;
        let properties = match first {
            Some(batch) => adapt_dictionary(self.properties.clone(), batch),
            None => self.properties.clone(),
        };
        ParallelWriter::try_new(
            CountingWriter {
                inner: out,
                written: 0,
            },
            Arc::clone(&self.schema),
            properties,
            self.threads,
        )
        .map_err(ConvertError::Parquet)
    }

    fn close_current(&mut self) -> Result<(), ConvertError> {
        let Some(mut writer) = self.current.take() else {
            return Ok(());
        };
        writer.flush().map_err(ConvertError::Parquet)?;
        self.row_groups += writer.row_groups();
        let counted = writer.into_inner().map_err(ConvertError::Parquet)?;
        self.output_bytes += counted.written;
        let mut part = counted.inner;
        part.flush().map_err(ConvertError::Output)?;
        self.parts.push(part);
        Ok(())
    }

    /// Closes the last part; an output without rows still gets one (empty) part.
    pub(super) fn finish(mut self) -> Result<(Vec<D::Parquet>, u64, usize), ConvertError> {
        // A schema without fields has no Parquet form (and then there are no rows either).
        if self.current.is_none() && self.parts.is_empty() && !self.schema.fields().is_empty() {
            self.current = Some(self.open(None)?);
        }
        self.close_current()?;
        Ok((self.parts, self.output_bytes, self.row_groups))
    }
}
