//! # manifest-builder
//!
//! The front half of the pipeline: an SQS-triggered Lambda that tracks every S3 arrival in the
//! ledger (`docs/TRACKING.md`: one batch item per delivery and date, one marker per object
//! version), cuts manifests from a shard's settled batches and starts one Step Functions
//! execution per manifest; and, on a schedule, the sweep that starts, reconciles and releases
//! open manifests and cuts shards that waited long enough. See [`batching`] for the protocol.
//!
//! `main.rs` only wires real clients into [`handler::Builder`] and hands it events; everything
//! else is testable in-process.
#![warn(missing_docs)]

pub mod batching;
pub mod config;
pub mod handler;
