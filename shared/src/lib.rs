//! # shared
//!
//! What the pipeline's binaries have in common: typed configuration from the environment
//! ([`config`]), domain types and status machines ([`types`]), S3 event parsing ([`events`]),
//! the tracking store ([`tracking`], on DynamoDB in [`dynamo`]), the manifest document
//! ([`manifest`]), whole-object storage ([`blobs`]), workflow starts ([`orchestrator`]),
//! logging ([`logging`]) and metrics ([`metrics`]).
//!
//! Every AWS-facing trait states its contract and has two implementations: the AWS one and
//! an in-memory one for unit tests. Nothing here knows about `lambda_runtime`.
#![warn(missing_docs)]

pub mod aws;
pub mod blobs;
pub mod config;
pub mod dynamo;
pub mod events;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod orchestrator;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tracking;
pub mod types;
