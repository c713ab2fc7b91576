//! # shared
//!
//! What the pipeline's binaries have in common: typed configuration from the environment
//! ([`config`]), domain types ([`types`]), S3 event parsing ([`events`]),
//! the tracking table ([`ledger`], on DynamoDB in `aws::ledger`), the table's layout as the
//! places that cannot import Rust must see it ([`table`]), the manifest document
//! ([`manifest`]), whole-object storage ([`blobs`]), workflow starts ([`orchestrator`]),
//! logging ([`logging`]) and metrics ([`metrics`]).
//!
//! Every AWS-facing trait states its contract and has two implementations: the AWS one and
//! an in-memory one for unit tests and simulation. The AWS ones, and the SDK itself, are
//! compiled only with the `aws` feature (module `aws`): without it this crate has no AWS
//! SDK and no async runtime in its dependency tree. Nothing here knows about `lambda_runtime`.
#![warn(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod blobs;
pub mod config;
pub mod events;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod ledger;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod orchestrator;
pub mod table;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod types;
