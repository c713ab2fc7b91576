//! Page compression on a pool of threads, apart from the column encoders.
//!
//! The parquet crate's column writer compresses each page itself, on the thread that encodes
//! the column, and needs the page's compressed size before it takes the next page. One heavy
//! column (free-text log messages) therefore bounds the whole writer: on logs-like data 60%
//! of the CPU time is zstd on that one column, all of it on one thread. Pages are compressed
//! independently, though; only their order in the file is fixed. So when a file is written
//! with data pages v1 (the default here) and one codec for every column, the column writers
//! are set to write
//! uncompressed pages, each page is handed to a pool of compressor threads as the encoder
//! completes it, and the chunk is spliced with each page header's `compressed_page_size`
//! patched and the chunk's metadata and offset index rebuilt from the compressed sizes.
//!
//! The bytes written are exactly the parquet crate's own: the same codec call with the same
//! settings on the same page bytes, and the same headers (`tests` compares against
//! `ArrowWriter` byte for byte). The pool changes who compresses a page, never what it
//! becomes, so the output does not depend on the thread count or timing either.
//!
//! Memory: at most `QUEUED_PAGES` uncompressed pages wait for a compressor (an encoder that
//! finds the queue full compresses its page itself rather than wait), plus one page being
//! compressed per compressor thread. The compressed pages of the row group in progress are
//! held as before.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn};
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::column::page_store::{PageKey, PageStore, PageStoreArgs, PageStoreFactory};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::writer::SerializedRowGroupWriter;
use parquet::schema::types::SchemaDescriptor;

/// Uncompressed pages that may wait for a compressor, per compressor thread.
const QUEUED_PAGES: usize = 2;

/// Thrift `PageType::DICTIONARY_PAGE`.
const DICTIONARY_PAGE: i32 = 2;

/// A codec this module compresses pages with, exactly as the parquet crate's codec does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PageCodec {
    Snappy,
    Gzip(GzipLevel),
    Brotli(BrotliLevel),
    Lz4Raw,
    Zstd(ZstdLevel),
}

impl PageCodec {
    fn of(compression: Compression) -> Option<PageCodec> {
        Some(match compression {
            Compression::SNAPPY => PageCodec::Snappy,
            Compression::GZIP(level) => PageCodec::Gzip(level),
            Compression::BROTLI(level) => PageCodec::Brotli(level),
            Compression::LZ4_RAW => PageCodec::Lz4Raw,
            Compression::ZSTD(level) => PageCodec::Zstd(level),
            _ => return None,
        })
    }

    fn compression(self) -> Compression {
        match self {
            PageCodec::Snappy => Compression::SNAPPY,
            PageCodec::Gzip(level) => Compression::GZIP(level),
            PageCodec::Brotli(level) => Compression::BROTLI(level),
            PageCodec::Lz4Raw => Compression::LZ4_RAW,
            PageCodec::Zstd(level) => Compression::ZSTD(level),
        }
    }
}

/// The properties to give the column writers and the codec to compress their pages with,
/// when this module can compress them: data pages v1 and one codec for every leaf. Otherwise
/// (no compression, data pages v2 whose levels stay uncompressed, mixed codecs) `None`, and
/// the column writers compress as usual.
pub(super) fn plan(
    properties: &WriterProperties,
    schema: &SchemaDescriptor,
) -> Option<(WriterProperties, PageCodec)> {
    if properties.writer_version() != WriterVersion::PARQUET_1_0 {
        return None;
    }
    let mut codec = None;
    for column in schema.columns() {
        let this = PageCodec::of(properties.compression(column.path()))?;
        if codec.is_some_and(|codec| codec != this) {
            return None;
        }
        codec = Some(this);
    }
    let codec = codec?;
    let uncompressed = properties
        .clone()
        .into_builder()
        .set_compression(Compression::UNCOMPRESSED)
        .build();
    schema
        .columns()
        .iter()
        .all(|column| uncompressed.compression(column.path()) == Compression::UNCOMPRESSED)
        .then_some((uncompressed, codec))
}

/// The compressor threads (none: pages are compressed by whoever hands them over).
pub(super) struct Compressors {
    codec: PageCodec,
    jobs: Option<Sender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

struct Job {
    page: Bytes,
    reply: Sender<Result<Bytes>>,
}

impl Compressors {
    /// `threads` compressor threads (0 or 1: compress on the caller).
    pub(super) fn new(codec: PageCodec, threads: usize) -> Result<Self> {
        if threads < 2 {
            return Ok(Compressors {
                codec,
                jobs: None,
                workers: Vec::new(),
            });
        }
        let (jobs, queue) = bounded::<Job>(QUEUED_PAGES * threads);
        let workers = (0..threads)
            .map(|_| {
                let queue = queue.clone();
                std::thread::Builder::new()
                    .name("parquet-compressor".into())
                    .spawn(move || {
                        for job in queue {
                            let _ = job.reply.send(compress(codec, &job.page));
                        }
                    })
                    .map_err(|e| ParquetError::External(Box::new(e)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Compressors {
            codec,
            jobs: Some(jobs),
            workers,
        })
    }

    fn submit(&self, page: Bytes) -> Result<Compressed> {
        let page = match &self.jobs {
            Some(jobs) => {
                let (reply, answer) = bounded(1);
                match jobs.try_send(Job { page, reply }) {
                    Ok(()) => return Ok(Compressed::Pending(answer)),
                    // Every compressor is busy and the queue is full: compressing here is
                    // better than waiting, and gives the same bytes.
                    Err(TrySendError::Full(job)) => job.page,
                    Err(TrySendError::Disconnected(_)) => return Err(compressors_gone()),
                }
            }
            None => page,
        };
        Ok(Compressed::Done(compress(self.codec, &page)?))
    }
}

impl Drop for Compressors {
    fn drop(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Compresses `page` as the parquet crate's codec does (`parquet::compression`, whose calls
/// and settings these repeat; the byte-for-byte test guards it). Contexts that cost to set up
/// (zstd, snappy) are kept per thread and reused for every page.
fn compress(codec: PageCodec, page: &[u8]) -> Result<Bytes> {
    thread_local! {
        static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { RefCell::new(None) };
        static SNAPPY: RefCell<Option<snap::raw::Encoder>> = const { RefCell::new(None) };
    }
    let mut out = Vec::new();
    match codec {
        PageCodec::Zstd(level) => {
            let level = level.compression_level();
            ZSTD.with(|cell| -> Result<()> {
                let mut context = cell.borrow_mut();
                let compressor = match &mut *context {
                    Some((current, compressor)) if *current == level => compressor,
                    slot => {
                        let compressor = zstd::bulk::Compressor::new(level)?;
                        &mut slot.insert((level, compressor)).1
                    }
                };
                out = compressor.compress(page)?;
                Ok(())
            })?;
        }
        PageCodec::Snappy => SNAPPY.with(|cell| -> Result<()> {
            let mut encoder = cell.borrow_mut();
            let encoder = encoder.get_or_insert_with(snap::raw::Encoder::new);
            out.resize(snap::raw::max_compress_len(page.len()), 0);
            let n = encoder
                .compress(page, &mut out)
                .map_err(|e| ParquetError::External(Box::new(e)))?;
            out.truncate(n);
            Ok(())
        })?,
        PageCodec::Gzip(level) => {
            let mut encoder = flate2::write::GzEncoder::new(
                &mut out,
                flate2::Compression::new(level.compression_level()),
            );
            encoder.write_all(page)?;
            encoder.try_finish()?;
        }
        PageCodec::Brotli(level) => {
            let mut encoder = brotli::CompressorWriter::new(
                &mut out,
                BROTLI_BUFFER_SIZE,
                level.compression_level(),
                BROTLI_LG_WINDOW_SIZE,
            );
            encoder.write_all(page)?;
            encoder.flush()?;
        }
        PageCodec::Lz4Raw => {
            out.resize(lz4_flex::block::get_maximum_output_size(page.len()), 0);
            let n = lz4_flex::block::compress_into(page, &mut out)
                .map_err(|e| ParquetError::External(Box::new(e)))?;
            out.truncate(n);
        }
    }
    // Held until the row group closes: give back what the codec reserved (its bound on the
    // output size), as the column writer does.
    out.shrink_to_fit();
    Ok(Bytes::from(out))
}

/// The parquet crate's brotli settings (`parquet::compression`).
const BROTLI_BUFFER_SIZE: usize = 4096;
const BROTLI_LG_WINDOW_SIZE: u32 = 22;

fn compressors_gone() -> ParquetError {
    ParquetError::General("a Parquet page compressor thread stopped".to_string())
}

/// A page's compressed bytes, or the compressor's answer to wait for.
enum Compressed {
    Pending(Receiver<Result<Bytes>>),
    Done(Bytes),
    Failed(String),
}

impl Compressed {
    fn wait(&mut self) -> Result<&Bytes> {
        if let Compressed::Pending(answer) = self {
            *self = match answer.recv() {
                Ok(Ok(bytes)) => Compressed::Done(bytes),
                Ok(Err(e)) => Compressed::Failed(e.to_string()),
                Err(_) => Compressed::Failed(compressors_gone().to_string()),
            };
        }
        match self {
            Compressed::Done(bytes) => Ok(bytes),
            Compressed::Failed(reason) => Err(ParquetError::General(format!(
                "compressing a Parquet page failed: {reason}"
            ))),
            Compressed::Pending(_) => unreachable!("resolved above"),
        }
    }
}

/// A serialized (Thrift compact) page header as the column writer wrote it for an
/// uncompressed page, with the place of its `compressed_page_size`.
struct Header {
    bytes: Bytes,
    page_type: i32,
    uncompressed_size: usize,
    compressed_size: usize,
    /// The varint holding `compressed_page_size` (field 3).
    size_field: Range<usize>,
}

impl Header {
    /// Reads fields 1 to 3 (type, uncompressed and compressed size, all `i32`), which the
    /// parquet crate writes first and in order; anything else is refused, not guessed at.
    fn parse(bytes: Bytes) -> Result<Header> {
        let bad = |what: &str| ParquetError::General(format!("unexpected page header: {what}"));
        let mut pos = 0;
        let mut values = [0i32; 3];
        let mut size_field = 0..0;
        for (id, value) in (1u8..).zip(values.iter_mut()) {
            let field = *bytes.get(pos).ok_or_else(|| bad("too short"))?;
            pos += 1;
            // Compact protocol: field-id delta in the high nibble, type in the low (5: i32).
            if field != 0x15 {
                return Err(bad(&format!("field {id} is not the expected i32")));
            }
            let start = pos;
            let mut raw = 0u64;
            let mut shift = 0;
            loop {
                let byte = *bytes.get(pos).ok_or_else(|| bad("truncated varint"))?;
                pos += 1;
                raw |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    break;
                }
                shift += 7;
                if shift > 28 {
                    return Err(bad("varint too long"));
                }
            }
            let raw = u32::try_from(raw).map_err(|_| bad("varint out of range"))?;
            *value = (raw >> 1) as i32 ^ -((raw & 1) as i32);
            if id == 3 {
                size_field = start..pos;
            }
        }
        let size = |v: i32| usize::try_from(v).map_err(|_| bad("negative page size"));
        Ok(Header {
            page_type: values[0],
            uncompressed_size: size(values[1])?,
            compressed_size: size(values[2])?,
            size_field,
            bytes,
        })
    }

    /// The header with `compressed_page_size` set to `size`.
    fn patched(&self, size: usize) -> Result<Bytes> {
        let mut out = Vec::with_capacity(self.bytes.len() + 5);
        out.extend_from_slice(&self.bytes[..self.size_field.start]);
        write_varint(zigzag(size)?, &mut out);
        out.extend_from_slice(&self.bytes[self.size_field.end..]);
        Ok(Bytes::from(out))
    }

    /// Length of [`Header::patched`] for `size`.
    fn patched_len(&self, size: usize) -> Result<usize> {
        let mut varint = Vec::with_capacity(5);
        write_varint(zigzag(size)?, &mut varint);
        Ok(self.bytes.len() - self.size_field.len() + varint.len())
    }
}

fn zigzag(size: usize) -> Result<u32> {
    let value = i32::try_from(size)
        .map_err(|_| ParquetError::General(format!("page of {size} bytes is too large")))?;
    Ok(((value << 1) ^ (value >> 31)) as u32)
}

fn write_varint(mut value: u32, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Page {
    header: Header,
    compressed: Compressed,
}

impl Page {
    /// Header and data length once compressed (waits for the compressor).
    fn compressed_len(&mut self) -> Result<usize> {
        let data = self.compressed.wait()?.len();
        Ok(self.header.patched_len(data)? + data)
    }
}

/// The pages of one column chunk, in the order the column writer handed them over.
#[derive(Default)]
struct ChunkPages {
    pages: Vec<Page>,
    /// A header waiting for its page's data (the writer puts the two one after the other).
    header: Option<Header>,
    /// Bytes received, uncompressed: what the column writer counts as written.
    received: usize,
}

type SharedPages = Arc<Mutex<ChunkPages>>;

fn lock(pages: &SharedPages) -> Result<MutexGuard<'_, ChunkPages>> {
    pages
        .lock()
        .map_err(|_| ParquetError::General("a column chunk's page list is poisoned".into()))
}

/// The page store of one column chunk: keeps each header, and sends each page's data to the
/// compressors.
struct DeferredStore {
    pages: SharedPages,
    compressors: Arc<Compressors>,
    next_key: u64,
}

impl PageStore for DeferredStore {
    fn put(&mut self, value: Bytes) -> Result<PageKey> {
        let mut pages = lock(&self.pages)?;
        pages.received += value.len();
        match pages.header.take() {
            None => pages.header = Some(Header::parse(value)?),
            Some(header) => {
                if value.len() != header.compressed_size {
                    return Err(ParquetError::General(format!(
                        "page of {} bytes after a header announcing {}",
                        value.len(),
                        header.compressed_size
                    )));
                }
                let compressed = self.compressors.submit(value)?;
                pages.pages.push(Page { header, compressed });
            }
        }
        self.next_key += 1;
        Ok(PageKey::new(self.next_key - 1))
    }

    fn take(&mut self, key: PageKey) -> Result<Bytes> {
        Err(ParquetError::General(format!(
            "page {} of a chunk compressed apart is spliced by the writer, not taken back",
            key.get()
        )))
    }

    fn memory_size(&self) -> usize {
        self.pages.lock().map_or(0, |pages| pages.received)
    }
}

/// Creates a [`DeferredStore`] for every column chunk, and keeps a handle on its pages for
/// the writer to collect (see [`DeferredStores::columns`]).
pub(super) struct DeferredStores {
    compressors: Arc<Compressors>,
    created: Mutex<Vec<(usize, SharedPages)>>,
}

impl std::fmt::Debug for Compressors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressors")
            .field("codec", &self.codec)
            .field("threads", &self.workers.len())
            .finish()
    }
}

impl std::fmt::Debug for DeferredStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredStores")
            .field("compressors", &self.compressors)
            .finish_non_exhaustive()
    }
}

impl DeferredStores {
    pub(super) fn new(compressors: Compressors) -> Self {
        DeferredStores {
            compressors: Arc::new(compressors),
            created: Mutex::new(Vec::new()),
        }
    }

    /// Pairs the column writers just created for a row group with their pages.
    pub(super) fn columns(&self, writers: Vec<ArrowColumnWriter>) -> Result<Vec<Column>> {
        let mut created = std::mem::take(
            &mut *self
                .created
                .lock()
                .map_err(|_| ParquetError::General("the page store list is poisoned".into()))?,
        );
        created.sort_by_key(|(index, _)| *index);
        if created.len() != writers.len()
            || created
                .iter()
                .enumerate()
                .any(|(i, (index, _))| i != *index)
        {
            return Err(ParquetError::General(format!(
                "{} page stores for {} column writers",
                created.len(),
                writers.len()
            )));
        }
        let codec = self.compressors.codec;
        Ok(writers
            .into_iter()
            .zip(created)
            .map(|(writer, (_, pages))| Column {
                writer,
                pages: Some((pages, codec)),
            })
            .collect())
    }
}

impl PageStoreFactory for DeferredStores {
    fn create(&self, args: &PageStoreArgs<'_>) -> Result<Box<dyn PageStore>> {
        let pages = SharedPages::default();
        self.created
            .lock()
            .map_err(|_| ParquetError::General("the page store list is poisoned".into()))?
            .push((args.column_index(), Arc::clone(&pages)));
        Ok(Box::new(DeferredStore {
            pages,
            compressors: Arc::clone(&self.compressors),
            next_key: 0,
        }))
    }
}

/// One column chunk's writer, with its pages when they are compressed apart.
pub(super) struct Column {
    writer: ArrowColumnWriter,
    pages: Option<(SharedPages, PageCodec)>,
}

impl Column {
    /// A column writer that compresses its own pages.
    pub(super) fn plain(writer: ArrowColumnWriter) -> Self {
        Column {
            writer,
            pages: None,
        }
    }

    pub(super) fn write(&mut self, leaf: &ArrowLeafColumn) -> Result<()> {
        self.writer.write(leaf)
    }

    /// The chunk's estimated encoded size: the column writer's estimate, with the pages it
    /// has handed over counted compressed (waiting for them, so that the answer, which sizes
    /// row groups, does not depend on timing).
    pub(super) fn estimated_bytes(&self) -> Result<usize> {
        let estimate = self.writer.get_estimated_total_bytes();
        let Some((pages, _)) = &self.pages else {
            return Ok(estimate);
        };
        let mut pages = lock(pages)?;
        let mut compressed = 0;
        for page in &mut pages.pages {
            compressed += page.compressed_len()?;
        }
        let pending = pages.header.as_ref().map_or(0, |header| header.bytes.len());
        Ok(estimate.saturating_sub(pages.received) + compressed + pending)
    }

    /// Closes the chunk: waits for its pages and lays them out as the parquet crate would
    /// have (dictionary page first), with their metadata.
    pub(super) fn close(self) -> Result<Chunk> {
        let chunk = self.writer.close()?;
        let Some((pages, codec)) = self.pages else {
            return Ok(Chunk::Arrow(chunk));
        };
        let mut close = chunk.close().clone();
        drop(chunk);
        let ChunkPages { pages, header, .. } = std::mem::take(&mut *lock(&pages)?);
        if header.is_some() {
            return Err(ParquetError::General(
                "a page header was written without its page".into(),
            ));
        }
        let (dictionary, data): (Vec<Page>, Vec<Page>) = pages
            .into_iter()
            .partition(|page| page.header.page_type == DICTIONARY_PAGE);
        let dictionary_pages = dictionary.len();
        let mut blobs = Vec::with_capacity(2 * (dictionary.len() + data.len()));
        let mut locations = Vec::with_capacity(data.len());
        let mut offset = 0usize;
        let mut uncompressed = 0usize;
        let mut data_offset = 0usize;
        for (i, mut page) in dictionary.into_iter().chain(data).enumerate() {
            let body = page.compressed.wait()?.clone();
            let header = page.header.patched(body.len())?;
            if i == dictionary_pages {
                data_offset = offset;
            }
            if i >= dictionary_pages {
                locations.push((offset, header.len() + body.len()));
            }
            uncompressed += header.len() + page.header.uncompressed_size;
            offset += header.len() + body.len();
            blobs.push(header);
            blobs.push(body);
        }
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        close.metadata = close
            .metadata
            .into_builder()
            .set_compression(codec.compression())
            .set_total_compressed_size(as_i64(offset))
            .set_total_uncompressed_size(as_i64(uncompressed))
            .set_data_page_offset(as_i64(data_offset))
            .set_dictionary_page_offset((dictionary_pages > 0).then_some(0))
            .build()?;
        if let Some(index) = close.offset_index.as_mut() {
            if index.page_locations.len() != locations.len() {
                return Err(ParquetError::General(format!(
                    "offset index of {} pages for {} data pages",
                    index.page_locations.len(),
                    locations.len()
                )));
            }
            for (location, (offset, size)) in index.page_locations.iter_mut().zip(locations) {
                location.offset = as_i64(offset);
                location.compressed_page_size = i32::try_from(size).unwrap_or(i32::MAX);
            }
        }
        close.bytes_written = offset as u64;
        Ok(Chunk::Compressed {
            blobs: Blobs {
                blobs,
                len: offset as u64,
            },
            close,
        })
    }
}

/// A closed column chunk, ready to be spliced into its row group.
pub(super) enum Chunk {
    /// Compressed by the column writer.
    Arrow(ArrowColumnChunk),
    /// Compressed apart: headers and page data in file order, and the chunk's metadata.
    Compressed {
        blobs: Blobs,
        close: ColumnCloseResult,
    },
}

impl Chunk {
    pub(super) fn append_to_row_group<W: std::io::Write + Send>(
        self,
        row_group: &mut SerializedRowGroupWriter<'_, W>,
    ) -> Result<()> {
        match self {
            Chunk::Arrow(chunk) => chunk.append_to_row_group(row_group),
            Chunk::Compressed { blobs, close } => row_group.append_column(&blobs, close),
        }
    }
}

/// A column chunk's bytes as a list of buffers, read in order without copying them into one.
pub(super) struct Blobs {
    blobs: Vec<Bytes>,
    len: u64,
}

impl Length for Blobs {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Blobs {
    type T = BlobReader;

    fn get_read(&self, start: u64) -> Result<BlobReader> {
        let mut reader = BlobReader {
            blobs: self.blobs.iter().cloned().collect(),
        };
        let mut skip = usize::try_from(start).unwrap_or(usize::MAX);
        while skip > 0 {
            let Some(front) = reader.blobs.front_mut() else {
                break;
            };
            let n = skip.min(front.len());
            let _ = front.split_to(n);
            skip -= n;
            if front.is_empty() {
                reader.blobs.pop_front();
            }
        }
        Ok(reader)
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes> {
        let mut out = vec![0; length];
        self.get_read(start)?.read_exact(&mut out)?;
        Ok(Bytes::from(out))
    }
}

/// Reads [`Blobs`] from an offset.
pub(super) struct BlobReader {
    blobs: VecDeque<Bytes>,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(front) = self.blobs.front_mut() {
            if front.is_empty() {
                self.blobs.pop_front();
                continue;
            }
            let n = buf.len().min(front.len());
            buf[..n].copy_from_slice(&front.split_to(n));
            return Ok(n);
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_writer::ParallelWriter;
    use arrow::array::{ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray};
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::{DataType, Field, Fields, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::EnabledStatistics;
    use parquet::schema::types::ColumnPath;

    fn batches() -> Vec<RecordBatch> {
        let item = Fields::from(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("message", DataType::Utf8, true),
            Field::new("level", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new(
                    "item",
                    DataType::Struct(item.clone()),
                    true,
                ))),
                true,
            ),
        ]));
        (0..6)
            .map(|b| {
                let rows = 3000;
                let message: ArrayRef = Arc::new(StringArray::from_iter((0..rows).map(|i| {
                    (i % 17 != 0).then(|| {
                        format!(
                            "{b}-{i} request served in {} ms {}",
                            i * 7 % 1000,
                            "x".repeat(i % 90)
                        )
                    })
                })));
                let level: ArrayRef = Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| ["info", "warn", "error", "debug"][i % 4]),
                ));
                let n: ArrayRef = Arc::new(Int64Array::from_iter(
                    (0..rows).map(|i| (i % 5 != 0).then_some((i * 7919) as i64)),
                ));
                let lengths = (0..rows).map(|i| i % 3);
                let values = lengths.clone().sum::<usize>();
                let items = StructArray::new(
                    item.clone(),
                    vec![
                        Arc::new(StringArray::from_iter_values(
                            (0..values).map(|i| format!("key{}", i % 40)),
                        )),
                        Arc::new(Int64Array::from_iter_values((0..values).map(|i| i as i64))),
                    ],
                    None,
                );
                let tags: ArrayRef = Arc::new(ListArray::new(
                    Arc::new(Field::new("item", DataType::Struct(item.clone()), true)),
                    OffsetBuffer::from_lengths(lengths),
                    Arc::new(items),
                    None,
                ));
                RecordBatch::try_new(Arc::clone(&schema), vec![message, level, n, tags]).unwrap()
            })
            .collect()
    }

    fn properties(compression: Compression) -> WriterProperties {
        WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(compression)
            .set_max_row_group_row_count(Some(7000))
            .set_max_row_group_bytes(None)
            .set_data_page_size_limit(8 * 1024)
            // A small dictionary page limit: `tags.k` keeps its dictionary, `message` outgrows
            // it and falls back to plain pages after a dictionary page.
            .set_dictionary_page_size_limit(16 * 1024)
            .set_column_dictionary_enabled(ColumnPath::from("n"), false)
            .set_statistics_enabled(EnabledStatistics::Page)
            .build()
    }

    fn arrow_writer(batches: &[RecordBatch], properties: WriterProperties) -> Vec<u8> {
        let mut writer =
            ArrowWriter::try_new(Vec::new(), batches[0].schema(), Some(properties)).unwrap();
        for batch in batches {
            writer.write(batch).unwrap();
        }
        writer.into_inner().unwrap()
    }

    fn parallel_writer(
        batches: &[RecordBatch],
        properties: WriterProperties,
        threads: usize,
    ) -> Vec<u8> {
        let mut writer =
            ParallelWriter::try_new(Vec::new(), batches[0].schema(), properties, threads).unwrap();
        for batch in batches {
            writer.write(batch).unwrap();
        }
        writer.into_inner().unwrap()
    }

    #[test]
    fn pages_compressed_apart_are_the_bytes_the_parquet_crate_writes() {
        let batches = batches();
        let codecs = [
            Compression::ZSTD(ZstdLevel::try_new(1).unwrap()),
            Compression::ZSTD(ZstdLevel::default()),
            Compression::ZSTD(ZstdLevel::try_new(9).unwrap()),
            Compression::SNAPPY,
            Compression::GZIP(GzipLevel::default()),
            Compression::GZIP(GzipLevel::try_new(9).unwrap()),
            Compression::BROTLI(BrotliLevel::default()),
            Compression::BROTLI(BrotliLevel::try_new(6).unwrap()),
            Compression::LZ4_RAW,
        ];
        for codec in codecs {
            let properties = properties(codec);
            let schema = parquet::arrow::ArrowSchemaConverter::new()
                .convert(&batches[0].schema())
                .unwrap();
            assert!(plan(&properties, &schema).is_some());
            let expected = arrow_writer(&batches, properties.clone());
            assert_shape(&expected);
            for threads in [1, 2, 3, 8] {
                let ours = parallel_writer(&batches, properties.clone(), threads);
                assert!(
                    ours == expected,
                    "{codec}, {threads} threads: {} bytes, the parquet crate wrote {}",
                    ours.len(),
                    expected.len()
                );
            }
        }
    }

    /// What the comparison covers: several row groups; `message` has a dictionary page and
    /// then plain pages, `n` no dictionary; many pages per chunk; page indexes.
    fn assert_shape(file: &[u8]) {
        use parquet::basic::Encoding;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let reader = SerializedFileReader::new(Bytes::copy_from_slice(file)).unwrap();
        let metadata = reader.metadata();
        assert_eq!(metadata.num_row_groups(), 3);
        let group = metadata.row_group(0);
        let message = group.column(0);
        assert!(message.dictionary_page_offset().is_some());
        assert!(message.encodings().any(|e| e == Encoding::PLAIN));
        assert!(group.column(2).dictionary_page_offset().is_none());
        assert!(message.uncompressed_size() > 8 * 8 * 1024, "several pages");
        assert!(group.column(0).offset_index_offset().is_some());
    }

    #[test]
    fn other_codecs_and_data_pages_v2_are_compressed_by_the_column_writers() {
        let batches = batches();
        let schema = parquet::arrow::ArrowSchemaConverter::new()
            .convert(&batches[0].schema())
            .unwrap();
        let zstd = Compression::ZSTD(ZstdLevel::default());
        let v2 = properties(zstd)
            .into_builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .build();
        let mixed = properties(zstd)
            .into_builder()
            .set_column_compression(ColumnPath::from("n"), Compression::SNAPPY)
            .build();
        for properties in [properties(Compression::UNCOMPRESSED), v2, mixed] {
            assert!(plan(&properties, &schema).is_none());
            let expected = arrow_writer(&batches, properties.clone());
            assert!(parallel_writer(&batches, properties, 2) == expected);
        }
    }

    #[test]
    fn a_patched_header_reads_back_with_its_new_size() {
        // type 0, uncompressed 300, compressed 300, then a stop byte standing for the rest.
        let mut header = vec![0x15, 0x00, 0x15];
        write_varint(zigzag(300).unwrap(), &mut header);
        header.push(0x15);
        write_varint(zigzag(300).unwrap(), &mut header);
        header.push(0x00);
        let header = Header::parse(Bytes::from(header)).unwrap();
        assert_eq!((header.page_type, header.uncompressed_size), (0, 300));
        for size in [
            0,
            1,
            63,
            64,
            127,
            128,
            8191,
            8192,
            1 << 20,
            i32::MAX as usize,
        ] {
            let patched = header.patched(size).unwrap();
            assert_eq!(patched.len(), header.patched_len(size).unwrap());
            assert_eq!(*patched.last().unwrap(), 0x00, "the rest is kept");
            let again = Header::parse(patched).unwrap();
            assert_eq!(
                (again.uncompressed_size, again.compressed_size),
                (300, size)
            );
        }
        assert!(header.patched(i32::MAX as usize + 1).is_err());
        for bad in [
            &[][..],
            &[0x15],
            &[0x16, 0x00],
            &[0x15, 0x00, 0x25, 0x00],
            &[0x15, 0xff],
        ] {
            assert!(
                Header::parse(Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }
}
