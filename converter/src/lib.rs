//! # converter
//!
//! Streaming NDJSON → Arrow → Parquet conversion with nothing lost: every input line becomes
//! a row or a rejected line with its reason, and the counts reconcile
//! (`lines = rows + rejected + blank`).
//!
//! The core is synchronous and does no I/O of its own: [`chunk::Chunker`] cuts any
//! [`std::io::Read`] into newline-aligned chunks, [`decode::RecordDecoder`] turns a chunk into
//! a [`arrow::array::RecordBatch`] plus rejects (any number of threads at once), and
//! [`convert::convert`] wires sources, parallel decoding and the Parquet writer together
//! behind the [`input::Source`] and [`convert::Destination`] traits.
//!
//! ```
//! use std::sync::Arc;
//! use converter::convert::{convert, ConvertOptions, Destination, NoProgress};
//! use converter::input::{MemorySource, Source};
//!
//! struct InMemory;
//! impl Destination for InMemory {
//!     type Parquet = Vec<u8>;
//!     type Rejects = Vec<u8>;
//!     fn parquet(&mut self, _part: usize) -> std::io::Result<Vec<u8>> { Ok(Vec::new()) }
//!     fn rejects(&mut self) -> std::io::Result<Option<Vec<u8>>> { Ok(None) }
//! }
//!
//! let input: Arc<dyn Source> = Arc::new(MemorySource::new("events", &b"{\"id\":1}\n{\"id\":2}\n"[..]));
//! let done = convert(&[input], &ConvertOptions::default(), &mut InMemory, &NoProgress).unwrap();
//! assert_eq!(done.summary.stats.rows, 2);
//! assert_eq!(&done.parts[0][..4], b"PAR1");
//! ```
#![warn(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod chunk;
pub mod convert;
pub mod decode;
pub mod infer;
pub mod input;
pub mod manifest_run;
pub mod objects;
pub mod output;
pub mod parquet_options;
pub mod parquet_writer;
mod pipeline;
pub mod reject;
pub mod schema;
pub mod timestamp;
pub mod validate;
