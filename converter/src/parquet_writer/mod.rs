//! A Parquet writer that encodes columns in parallel.
//!
//! `ArrowWriter` encodes every column of a batch on the calling thread, which makes the
//! writer the one serial stage of a conversion once decoding runs on several threads
//! (encoding and compression are about half of the work). This writer keeps one
//! `ArrowColumnWriter` per leaf column, as the parquet crate's documentation of
//! `ArrowColumnWriter` suggests, and gives each column to one of `threads` long-lived encoder
//! threads for the whole row group. The calling thread only splits batches into leaves and
//! hands them over through bounded queues, so there is no barrier per batch: threads meet only
//! when a row group closes. Pages are compressed apart from their column, on `threads`
//! compressor threads (see `compress`), so that one heavy column does not leave one encoder
//! compressing while the others idle. The bytes written do not depend on the thread count:
//! each column's pages depend only on that column's values, and are the bytes `ArrowWriter`
//! writes for them (tested).
//!
//! Memory: the encoded (compressed) pages of one row group, as with `ArrowWriter`, plus at
//! most `QUEUED_BATCHES` batches waiting per encoder thread and a few pages per compressor
//! thread. A row group closes at
//! `max_row_group_row_count` rows or once its estimated size (bytes per row measured every
//! `CHECK_EVERY` batches, see `SizeRequest`) passes `max_row_group_bytes`.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use crossbeam_channel::{bounded, Receiver, Sender};
use parquet::arrow::arrow_writer::{compute_leaves, ArrowLeafColumn, ArrowRowGroupWriterFactory};
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter};
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

mod compress;

use compress::{Chunk, Column, Compressors, DeferredStores};

/// Batches that may wait in an encoder thread's queue.
const QUEUED_BATCHES: usize = 4;

enum Job {
    /// Column writers for a new row group: (column index, writer).
    Start(Vec<(usize, Column)>),
    /// Leaves of one batch for this thread's columns, in the same order.
    Write(Vec<ArrowLeafColumn>),
    /// Report the estimated encoded size once every job before has been done.
    Sync(Sender<usize>),
    /// Close the row group and send back the column chunks.
    Close(Sender<Result<Vec<(usize, Chunk)>>>),
}

/// Batches between two looks at the row group's estimated size. Sizes are looked at only at
/// these fixed points, once every encoder has caught up, so that row group and part
/// boundaries are the same whatever the thread count and timing.
const CHECK_EVERY: usize = 4;

/// The row group's encoded size as of a check, asked for there and read at the next check.
///
/// Waiting for the answer at the check itself would drain the pipeline every `CHECK_EVERY`
/// batches: the caller would wait for every encoder to finish its queue, and the encoders
/// would then wait for the caller. Read one check later, the answer is almost always there
/// already, and it is the same whatever the thread count or timing, so row groups and parts
/// still end at the same rows. Extrapolated by rows, it overshoots a size limit by at most
/// the growth in bytes per row over `CHECK_EVERY` batches.
struct SizeRequest {
    rows: usize,
    answer: SizeAnswer,
}

enum SizeAnswer {
    Ready(usize),
    Pending(Vec<Receiver<usize>>),
}

impl SizeAnswer {
    fn resolve(self) -> Result<usize> {
        match self {
            SizeAnswer::Ready(bytes) => Ok(bytes),
            SizeAnswer::Pending(replies) => replies
                .into_iter()
                .map(|answer| answer.recv().map_err(|_| encoder_gone()))
                .sum(),
        }
    }
}

/// One long-lived encoder thread and what it owns.
struct Encoder {
    jobs: Sender<Job>,
    handle: Option<std::thread::JoinHandle<()>>,
}

fn encoder_loop(jobs: Receiver<Job>) {
    let mut writers: Vec<(usize, Column)> = Vec::new();
    let mut failure: Option<ParquetError> = None;
    for job in jobs {
        match job {
            Job::Start(new) => {
                writers = new;
                failure = None;
            }
            Job::Write(leaves) => {
                if failure.is_some() {
                    continue;
                }
                for ((_, writer), leaf) in writers.iter_mut().zip(&leaves) {
                    if let Err(e) = writer.write(leaf) {
                        failure = Some(e);
                        break;
                    }
                }
            }
            Job::Sync(reply) => {
                let mut total = 0;
                for (_, column) in &writers {
                    match column.estimated_bytes() {
                        Ok(bytes) => total += bytes,
                        // Reported when the row group closes.
                        Err(e) => failure = failure.or(Some(e)),
                    }
                }
                let _ = reply.send(total);
            }
            Job::Close(reply) => {
                let result = match failure.take() {
                    Some(e) => Err(e),
                    None => std::mem::take(&mut writers)
                        .into_iter()
                        .map(|(index, writer)| writer.close().map(|chunk| (index, chunk)))
                        .collect(),
                };
                let _ = reply.send(result);
            }
        }
    }
}

/// Writes record batches as Parquet, encoding columns on `threads` threads (1: inline).
pub struct ParallelWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    /// The page stores of the column writers when pages are compressed apart (see
    /// `compress`).
    stores: Option<Arc<DeferredStores>>,
    arrow_schema: SchemaRef,
    /// Inline mode: the column writers of the row group in progress.
    columns: Option<Vec<Column>>,
    /// Threaded mode: the encoders, and which encoder owns each leaf column.
    encoders: Vec<Encoder>,
    owner: Vec<usize>,
    group_open: bool,
    row_group_index: usize,
    rows_in_group: usize,
    batches_in_group: usize,
    /// Estimated encoded size of the row group.
    estimate: usize,
    /// Encoded bytes and rows of the row group at its first check, then at the check before
    /// last.
    bytes_per_row: (usize, usize),
    /// The size asked for at the last check.
    size_request: Option<SizeRequest>,
    max_rows: usize,
    max_bytes: usize,
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
        let leaves = parquet_schema.num_columns();
        let max_rows = properties
            .max_row_group_row_count()
            .unwrap_or(usize::MAX)
            .max(1);
        let max_bytes = properties
            .max_row_group_bytes()
            .unwrap_or(usize::MAX)
            .max(1);
        // Pages are compressed on `threads` threads of their own when the codec allows, even
        // when there are fewer columns than threads (one heavy column is the case it is for).
        let (properties, stores) = match compress::plan(&properties, &parquet_schema) {
            Some((uncompressed, codec)) => (
                uncompressed,
                Some(Arc::new(DeferredStores::new(Compressors::new(
                    codec, threads,
                )?))),
            ),
            None => (properties, None),
        };
        let file =
            SerializedFileWriter::new(out, parquet_schema.root_schema_ptr(), Arc::new(properties))?;
        let mut factory = ArrowRowGroupWriterFactory::new(&file, Arc::clone(&arrow_schema));
        if let Some(stores) = &stores {
            factory = factory.with_page_store_factory(Arc::clone(stores) as _);
        }
        let threads = threads.min(leaves).max(1);
        let encoders = if threads > 1 {
            (0..threads)
                .map(|_| {
                    let (jobs, receiver) = bounded(QUEUED_BATCHES);
                    let handle = std::thread::Builder::new()
                        .name("parquet-encoder".into())
                        .spawn(move || encoder_loop(receiver))
                        .map_err(|e| ParquetError::External(Box::new(e)))?;
                    Ok(Encoder {
                        jobs,
                        handle: Some(handle),
                    })
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        // Column i belongs to encoder i % threads until the first batch shows what the columns
        // weigh (see `balance`).
        let owner = (0..leaves).map(|i| i % threads).collect();
        Ok(ParallelWriter {
            file,
            factory,
            stores,
            arrow_schema,
            columns: None,
            encoders,
            owner,
            group_open: false,
            row_group_index: 0,
            rows_in_group: 0,
            batches_in_group: 0,
            estimate: 0,
            bytes_per_row: (0, 1),
            size_request: None,
            max_rows,
            max_bytes,
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

    fn start_group(&mut self) -> Result<()> {
        let writers = self.factory.create_column_writers(self.row_group_index)?;
        let writers = match &self.stores {
            Some(stores) => stores.columns(writers)?,
            None => writers.into_iter().map(Column::plain).collect(),
        };
        if self.encoders.is_empty() {
            self.columns = Some(writers);
        } else {
            let mut shares: Vec<Vec<(usize, Column)>> =
                (0..self.encoders.len()).map(|_| Vec::new()).collect();
            for (index, writer) in writers.into_iter().enumerate() {
                shares[self.owner[index]].push((index, writer));
            }
            for (encoder, share) in self.encoders.iter().zip(shares) {
                encoder
                    .jobs
                    .send(Job::Start(share))
                    .map_err(|_| encoder_gone())?;
            }
        }
        self.group_open = true;
        Ok(())
    }

    fn write_within_group(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.row_group_index == 0 && !self.group_open && self.encoders.len() > 1 {
            if let Some(owner) = balance(batch, self.owner.len(), self.encoders.len()) {
                self.owner = owner;
            }
        }
        if !self.group_open {
            self.start_group()?;
        }
        let mut leaves: Vec<ArrowLeafColumn> = Vec::new();
        for (field, array) in self.arrow_schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, array)?);
        }
        if self.encoders.is_empty() {
            let columns = self
                .columns
                .as_mut()
                .expect("invariant: the row group is open");
            for (writer, leaf) in columns.iter_mut().zip(&leaves) {
                writer.write(leaf)?;
            }
        } else {
            let mut shares: Vec<Vec<ArrowLeafColumn>> =
                (0..self.encoders.len()).map(|_| Vec::new()).collect();
            for (index, leaf) in leaves.into_iter().enumerate() {
                shares[self.owner[index]].push(leaf);
            }
            for (encoder, share) in self.encoders.iter().zip(shares) {
                encoder
                    .jobs
                    .send(Job::Write(share))
                    .map_err(|_| encoder_gone())?;
            }
        }
        self.rows_in_group += batch.num_rows();
        self.batches_in_group += 1;
        if self.batches_in_group.is_multiple_of(CHECK_EVERY) {
            if let Some(previous) = self.size_request.take() {
                let bytes = previous.answer.resolve()?;
                self.bytes_per_row = (bytes, previous.rows.max(1));
            }
            let request = SizeRequest {
                rows: self.rows_in_group,
                answer: self.request_size()?,
            };
            if self.bytes_per_row.0 == 0 {
                // Nothing measured yet in this row group: wait for this answer (once per row
                // group), so that small row groups and parts are sized from the start.
                self.bytes_per_row = (request.answer.resolve()?, request.rows.max(1));
            } else {
                self.size_request = Some(request);
            }
        }
        let (bytes, rows) = self.bytes_per_row;
        self.estimate = (bytes as u128 * self.rows_in_group as u128 / rows as u128) as usize;
        if self.rows_in_group >= self.max_rows || self.estimate >= self.max_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Asks for the row group's estimated encoded size as of now, without waiting for the
    /// encoders to catch up (the answer is picked up at the next check).
    fn request_size(&self) -> Result<SizeAnswer> {
        if self.encoders.is_empty() {
            let mut total = 0;
            for column in self.columns.iter().flatten() {
                total += column.estimated_bytes()?;
            }
            return Ok(SizeAnswer::Ready(total));
        }
        Ok(SizeAnswer::Pending(self.broadcast(Job::Sync)?))
    }

    /// Sends every encoder the job `job` makes of a reply channel of its own; returns the
    /// channels' receiving ends, in encoder order.
    fn broadcast<T>(&self, job: impl Fn(Sender<T>) -> Job) -> Result<Vec<Receiver<T>>> {
        self.encoders
            .iter()
            .map(|encoder| {
                let (reply, answer) = bounded(1);
                encoder.jobs.send(job(reply)).map_err(|_| encoder_gone())?;
                Ok(answer)
            })
            .collect()
    }

    /// Estimated encoded size of the row group in progress: its rows times the bytes per row
    /// measured at its first check, then at the check before last (see `SizeRequest`).
    pub fn in_progress_size(&self) -> usize {
        self.estimate
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
        if !self.group_open {
            return Ok(());
        }
        self.group_open = false;
        self.batches_in_group = 0;
        self.estimate = 0;
        self.bytes_per_row = (0, 1);
        self.size_request = None;
        let mut chunks: Vec<(usize, Chunk)> = Vec::new();
        if self.encoders.is_empty() {
            let columns = self
                .columns
                .take()
                .expect("invariant: the row group is open");
            for (index, column) in columns.into_iter().enumerate() {
                chunks.push((index, column.close()?));
            }
        } else {
            for answer in self.broadcast(Job::Close)? {
                chunks.extend(answer.recv().map_err(|_| encoder_gone())??);
            }
            chunks.sort_by_key(|(index, _)| *index);
        }
        if self.rows_in_group == 0 {
            return Ok(());
        }
        let mut row_group = self.file.next_row_group()?;
        for (_, chunk) in chunks {
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
        self.encoders.clear();
        self.file.into_inner()
    }
}

impl Drop for Encoder {
    /// Closing the queue ends the thread's loop; waiting for it keeps no thread behind.
    fn drop(&mut self) {
        let (closed, _) = bounded(0);
        drop(std::mem::replace(&mut self.jobs, closed));
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Assigns leaf columns to `threads` encoders by their weight in `batch` (largest first, each
/// to the least loaded encoder), or `None` when the batch's leaves cannot be matched to the
/// file's `leaves`.
///
/// One heavy column (log messages, say) bounds the writer's speed: the encoder that owns it
/// has the most to compress. Round-robin ownership would also give that encoder its share of
/// the other columns; weighing them leaves it the heavy column alone when that is the larger
/// share of the work. Memory size stands in for encoding cost. Ownership does not change the
/// bytes written.
fn balance(batch: &RecordBatch, leaves: usize, threads: usize) -> Option<Vec<usize>> {
    let mut weights = Vec::with_capacity(leaves);
    for column in batch.columns() {
        leaf_weights(column.as_ref(), &mut weights);
    }
    if weights.len() != leaves {
        return None;
    }
    let mut order: Vec<usize> = (0..leaves).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(weights[i]), i));
    let mut load = vec![0usize; threads];
    let mut owner = vec![0usize; leaves];
    for i in order {
        let lightest = (0..threads)
            .min_by_key(|&t| (load[t], t))
            .expect("invariant: at least one encoder");
        owner[i] = lightest;
        load[lightest] += weights[i].max(1);
    }
    Some(owner)
}

/// Memory size of each Parquet leaf under `array`, in the order Parquet numbers leaves.
fn leaf_weights(array: &dyn Array, out: &mut Vec<usize>) {
    match array.data_type() {
        DataType::Struct(_) => {
            for child in array.as_struct().columns() {
                leaf_weights(child.as_ref(), out);
            }
        }
        DataType::List(_) => leaf_weights(array.as_list::<i32>().values().as_ref(), out),
        DataType::LargeList(_) => leaf_weights(array.as_list::<i64>().values().as_ref(), out),
        DataType::Map(_, _) => {
            for child in array.as_map().entries().columns() {
                leaf_weights(child.as_ref(), out);
            }
        }
        _ => out.push(array.get_array_memory_size()),
    }
}

fn encoder_gone() -> ParquetError {
    ParquetError::General("a Parquet encoder thread stopped".to_string())
}

/// Rows of the first batch looked at to judge a column's cardinality.
const SAMPLE_ROWS: usize = 4096;

/// Turns dictionary encoding off for columns whose first batch is mostly distinct values.
///
/// The parquet crate dictionary-encodes every column until the dictionary outgrows its page
/// limit, per row group. For ids, session keys, timestamps or measurements that are almost
/// all distinct, that means hashing every value for nothing, and (when row groups end before
/// the limit) writing dictionaries as large as the data: measured on 150 random numeric
/// columns, 30% of the time and 44% more output. Columns inside lists keep the default.
///
/// In a wide schema (more than [`WIDE_LEAVES`] leaf columns), columns that are sparse in the
/// first batch (fewer than one value in [`SPARSE_ROWS`] rows) lose their dictionary too: the
/// parquet crate's dictionary encoder reserves a 4,096-slot hash table per column when the
/// row group starts, measured at 56 KB resident per column (280 MB of 627 MB for 200,000
/// records with 6 of 5,000 optional keys), and a column of a few hundred values per row group
/// gains little from a dictionary (that file came out 0.1% smaller without them).
pub fn adapt_dictionary(properties: WriterProperties, batch: &RecordBatch) -> WriterProperties {
    if !properties.dictionary_enabled(&ColumnPath::from("")) {
        return properties;
    }
    let mut leaves = Vec::new();
    for column in batch.columns() {
        leaf_weights(column.as_ref(), &mut leaves);
    }
    let wide = leaves.len() > WIDE_LEAVES;
    let mut distinct_columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        collect_distinct(
            vec![field.name().clone()],
            column,
            wide,
            &mut distinct_columns,
        );
    }
    if distinct_columns.is_empty() {
        return properties;
    }
    let mut builder = properties.into_builder();
    for path in distinct_columns {
        builder = builder.set_column_dictionary_enabled(ColumnPath::new(path), false);
    }
    builder.build()
}

/// Leaf columns beyond which a schema is wide (as in the decoder's chunk sizing).
const WIDE_LEAVES: usize = 256;
/// A column of a wide schema with fewer than one value in this many rows of the first batch
/// is sparse.
const SPARSE_ROWS: usize = 32;

fn collect_distinct(path: Vec<String>, column: &ArrayRef, wide: bool, out: &mut Vec<Vec<String>>) {
    if let DataType::Struct(fields) = column.data_type() {
        let structs = column.as_struct();
        for (field, child) in fields.iter().zip(structs.columns()) {
            let mut child_path = path.clone();
            child_path.push(field.name().clone());
            collect_distinct(child_path, child, wide, out);
        }
        return;
    }
    let sparse = || (column.len() - column.null_count()) * SPARSE_ROWS < column.len();
    if mostly_distinct(column) || (wide && sparse()) {
        out.push(path);
    }
}

/// Whether nine in ten sampled non-null values are distinct: ids, timestamps, measurements.
/// A column of a few thousand values repeating (status codes, durations in ms) shows far
/// fewer distinct values in the sample and keeps its dictionary, which then saves most of its
/// size.
fn mostly_distinct(column: &ArrayRef) -> bool {
    let rows = column.len().min(SAMPLE_ROWS);
    let mut seen: HashSet<u64> = HashSet::with_capacity(rows);
    let mut values = 0usize;
    let hash_of = |i: usize| -> Option<u64> {
        if column.is_null(i) {
            return None;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        match column.data_type() {
            DataType::Utf8 => column.as_string::<i32>().value(i).hash(&mut hasher),
            DataType::Int64 => column
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(i)
                .hash(&mut hasher),
            DataType::Float64 => column
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(i)
                .to_bits()
                .hash(&mut hasher),
            DataType::Timestamp(_, _) => {
                let data = column.to_data();
                let values: &[i64] = data.buffers()[0].typed_data();
                values[data.offset() + i].hash(&mut hasher)
            }
            _ => return None,
        }
        Some(hasher.finish())
    };
    for i in 0..rows {
        if let Some(hash) = hash_of(i) {
            values += 1;
            seen.insert(hash);
        }
    }
    values >= 256 && seen.len() * 10 >= values * 9
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray, StructArray};
    use arrow::datatypes::{Field, Fields, Schema};

    #[test]
    fn distinct_columns_lose_their_dictionary_and_repetitive_ones_keep_it() {
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..1000).map(|i| format!("id-{i}")),
        ));
        let status: ArrayRef = Arc::new(Int64Array::from_iter_values(
            (0..1000).map(|i| 200 + (i % 3) * 100),
        ));
        let price: ArrayRef = Arc::new(Float64Array::from_iter_values(
            (0..1000).map(|i| i as f64 * 1.37),
        ));
        // Durations in ms: 700 distinct values in 1000 rows repeat enough to keep a dictionary.
        let millis: ArrayRef = Arc::new(Int64Array::from_iter_values(
            (0..1000).map(|i| (i * 7919) % 700),
        ));
        let inner = Fields::from(vec![
            Field::new("price", DataType::Float64, true),
            Field::new("status", DataType::Int64, true),
        ]);
        let nested: ArrayRef = Arc::new(StructArray::new(
            inner.clone(),
            vec![price, Arc::clone(&status)],
            None,
        ));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("status", DataType::Int64, true),
            Field::new("order", DataType::Struct(inner), true),
            Field::new("millis", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(schema, vec![ids, status, nested, millis]).unwrap();
        let properties = adapt_dictionary(WriterProperties::default(), &batch);
        assert!(!properties.dictionary_enabled(&ColumnPath::from("id")));
        assert!(properties.dictionary_enabled(&ColumnPath::from("status")));
        assert!(
            !properties.dictionary_enabled(&ColumnPath::new(vec!["order".into(), "price".into()]))
        );
        assert!(
            properties.dictionary_enabled(&ColumnPath::new(vec!["order".into(), "status".into()]))
        );
        assert!(properties.dictionary_enabled(&ColumnPath::from("millis")));
        let off = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .build();
        assert!(!adapt_dictionary(off, &batch).dictionary_enabled(&ColumnPath::from("status")));
    }

    #[test]
    fn a_heavy_column_gets_an_encoder_of_its_own() {
        let small = |n: i64| -> ArrayRef { Arc::new(Int64Array::from_iter_values(0..n)) };
        let message: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..1000).map(|i| format!("{i} {}", "lorem ipsum ".repeat(20))),
        ));
        let inner = Fields::from(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]);
        let nested: ArrayRef = Arc::new(StructArray::new(
            inner.clone(),
            vec![small(1000), small(1000)],
            None,
        ));
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, true),
            Field::new("message", DataType::Utf8, true),
            Field::new("y", DataType::Int64, true),
            Field::new("s", DataType::Struct(inner), true),
        ]));
        let batch =
            RecordBatch::try_new(schema, vec![small(1000), message, small(1000), nested]).unwrap();
        // Leaves: x, message, y, s.a, s.b.
        let owner = balance(&batch, 5, 2).unwrap();
        assert_eq!(owner.len(), 5);
        let message_owner = owner[1];
        assert!(owner
            .iter()
            .enumerate()
            .all(|(i, &o)| i == 1 || o != message_owner));
        assert_eq!(balance(&batch, 4, 2), None, "leaf count mismatch");
        assert_eq!(balance(&batch, 5, 1).unwrap(), vec![0; 5]);
    }

    #[test]
    fn sparse_columns_of_wide_schemas_lose_their_dictionary() {
        let rows = 1000;
        let columns = |n: usize, values_every: usize| -> (Vec<Field>, Vec<ArrayRef>) {
            let fields = (0..n)
                .map(|i| Field::new(format!("c{i}"), DataType::Int64, true))
                .collect();
            let arrays = (0..n)
                .map(|_| {
                    Arc::new(Int64Array::from_iter(
                        (0..rows).map(|r| (r % values_every == 0).then_some(7)),
                    )) as ArrayRef
                })
                .collect();
            (fields, arrays)
        };
        let adapted = |n: usize, values_every: usize| {
            let (fields, arrays) = columns(n, values_every);
            let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
            adapt_dictionary(WriterProperties::default(), &batch)
                .dictionary_enabled(&ColumnPath::from("c0"))
        };
        // Wide and sparse: off. Narrow, or one value in 8 rows: kept.
        assert!(!adapted(WIDE_LEAVES + 1, 100));
        assert!(adapted(WIDE_LEAVES, 100));
        assert!(adapted(WIDE_LEAVES + 1, 8));
    }
}
