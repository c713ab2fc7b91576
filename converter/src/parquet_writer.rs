//! A Parquet writer that encodes columns in parallel.
//!
//! `ArrowWriter` encodes every column of a batch on the calling thread, which makes the
//! writer the one serial stage of a conversion (encoding and compression are about half of
//! the work). This writer keeps one `ArrowColumnWriter` per leaf column and, for each batch,
//! spreads the columns over `threads` scoped threads, as the parquet crate's documentation of
//! `ArrowColumnWriter` suggests. The output is byte-for-byte what a sequential writer with the
//! same properties produces: each column's pages depend only on that column's values.
//!
//! Memory: the encoded (compressed) pages of one row group, as with `ArrowWriter`; a row group
//! closes at `max_row_group_row_count` rows or once its estimated size passes
//! `max_row_group_bytes`.

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
};
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter};
use parquet::errors::Result;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

/// Writes record batches as Parquet, encoding columns on up to `threads` threads.
pub struct ParallelWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    arrow_schema: SchemaRef,
    columns: Option<Vec<ArrowColumnWriter>>,
    row_group_index: usize,
    rows_in_group: usize,
    max_rows: usize,
    max_bytes: usize,
    threads: usize,
}

impl<W: Write + Send> ParallelWriter<W> {
    /// A writer of `arrow_schema` to `out` (the Arrow schema is embedded in the footer, as
    /// `ArrowWriter` does, so readers restore time zones and list names).
    pub fn try_new(
        out: W,
        arrow_schema: SchemaRef,
        mut properties: WriterProperties,
        threads: usize,
    ) -> Result<Self> {
        add_encoded_arrow_schema_to_metadata(&arrow_schema, &mut properties);
        let parquet_schema = ArrowSchemaConverter::new()
            .with_coerce_types(properties.coerce_types())
            .convert(&arrow_schema)?;
        let max_rows = properties
            .max_row_group_row_count()
            .unwrap_or(usize::MAX)
            .max(1);
        let max_bytes = properties
            .max_row_group_bytes()
            .unwrap_or(usize::MAX)
            .max(1);
        let file =
            SerializedFileWriter::new(out, parquet_schema.root_schema_ptr(), Arc::new(properties))?;
        let factory = ArrowRowGroupWriterFactory::new(&file, Arc::clone(&arrow_schema));
        Ok(ParallelWriter {
            file,
            factory,
            arrow_schema,
            columns: None,
            row_group_index: 0,
            rows_in_group: 0,
            max_rows,
            max_bytes,
            threads: threads.max(1),
        })
    }

    /// Encodes a batch (splitting it when it would overfill the row group by rows).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut batch = batch.clone();
        while batch.num_rows() > 0 {
            let room = self.max_rows - self.rows_in_group;
            let (now, later) = if batch.num_rows() > room {
                (
                    batch.slice(0, room),
                    Some(batch.slice(room, batch.num_rows() - room)),
                )
            } else {
                (batch, None)
            };
            self.write_within_group(&now)?;
            match later {
                Some(rest) => batch = rest,
                None => break,
            }
        }
        Ok(())
    }

    fn write_within_group(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.columns.is_none() {
            self.columns = Some(self.factory.create_column_writers(self.row_group_index)?);
        }
        let mut leaves: Vec<ArrowLeafColumn> = Vec::new();
        for (field, array) in self.arrow_schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, array)?);
        }
        let columns = self.columns.as_mut().expect("invariant: created above");
        let threads = self.threads.min(columns.len());
        if threads <= 1 {
            for (writer, leaf) in columns.iter_mut().zip(&leaves) {
                writer.write(leaf)?;
            }
        } else {
            // Column i goes to thread i % threads: neighbouring columns (often alike in
            // cost) end up on different threads.
            let mut buckets: Vec<Vec<(&mut ArrowColumnWriter, &ArrowLeafColumn)>> =
                (0..threads).map(|_| Vec::new()).collect();
            for (i, pair) in columns.iter_mut().zip(&leaves).enumerate() {
                buckets[i % threads].push(pair);
            }
            std::thread::scope(|scope| -> Result<()> {
                let mut buckets = buckets.into_iter();
                let mine = buckets.next().expect("invariant: at least one bucket");
                let handles: Vec<_> = buckets
                    .map(|bucket| {
                        scope.spawn(move || -> Result<()> {
                            for (writer, leaf) in bucket {
                                writer.write(leaf)?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for (writer, leaf) in mine {
                    writer.write(leaf)?;
                }
                for handle in handles {
                    handle
                        .join()
                        .expect("invariant: encoding threads do not panic")?;
                }
                Ok(())
            })?;
        }
        self.rows_in_group += batch.num_rows();
        if self.rows_in_group >= self.max_rows || self.in_progress_size() >= self.max_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Estimated encoded size of the row group in progress.
    pub fn in_progress_size(&self) -> usize {
        self.columns.as_ref().map_or(0, |columns| {
            columns
                .iter()
                .map(ArrowColumnWriter::get_estimated_total_bytes)
                .sum()
        })
    }

    /// Bytes written to the output so far.
    pub fn bytes_written(&self) -> usize {
        self.file.bytes_written()
    }

    /// Row groups written so far.
    pub fn row_groups(&self) -> usize {
        self.row_group_index
    }

    /// Closes the row group in progress, if any.
    pub fn flush(&mut self) -> Result<()> {
        let Some(columns) = self.columns.take() else {
            return Ok(());
        };
        if self.rows_in_group == 0 {
            return Ok(());
        }
        let threads = self.threads.min(columns.len()).max(1);
        // Closing compresses each column's last page: in parallel as well.
        let mut chunks = Vec::with_capacity(columns.len());
        if threads <= 1 {
            for column in columns {
                chunks.push(column.close()?);
            }
        } else {
            let per_thread = columns.len().div_ceil(threads);
            let mut groups: Vec<Vec<ArrowColumnWriter>> = Vec::new();
            let mut iter = columns.into_iter().peekable();
            while iter.peek().is_some() {
                groups.push(iter.by_ref().take(per_thread).collect());
            }
            let closed: Vec<Result<Vec<_>>> = std::thread::scope(|scope| {
                let handles: Vec<_> = groups
                    .into_iter()
                    .map(|group| {
                        scope.spawn(move || {
                            group.into_iter().map(ArrowColumnWriter::close).collect()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("invariant: encoding threads do not panic"))
                    .collect()
            });
            for group in closed {
                chunks.extend(group?);
            }
        }
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.row_group_index += 1;
        self.rows_in_group = 0;
        Ok(())
    }

    /// Writes the last row group and the footer; returns the output.
    pub fn into_inner(mut self) -> Result<W> {
        self.flush()?;
        self.file.into_inner()
    }
}
