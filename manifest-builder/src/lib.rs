//! # manifest-builder
//!
//! The front half of the pipeline: an SQS-triggered Lambda that tracks every S3 arrival in
//! the tracking table, batches pending files of a date prefix into manifests and starts one
//! Step Functions execution per manifest; and, on a schedule, the sweep that flushes prefixes
//! that waited too long and repairs whatever a crash left half done. See [`builder`] for the
//! protocol.
//!
//! `main.rs` only wires real clients into [`builder::ManifestBuilder`] and hands events to
//! [`handler::handle`]; everything else is testable in-process.
#![warn(missing_docs)]

pub mod batching;
pub mod builder;
pub mod config;
pub mod handler;
