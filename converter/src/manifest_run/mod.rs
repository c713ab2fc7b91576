//! Running one manifest in the pipeline: objects in, Parquet parts (SSE-KMS) and an error
//! object out, the outcome in the tracking table. [`Runner`] works over the store traits
//! ([`Tracking`], implemented over [`shared::ledger::Ledger`] by [`LedgerTracking`], and
//! [`crate::objects::ObjectStore`]); the converter
//! Lambda and the AWS Batch entry point (`ndjson-parquet run-manifest`, feature `aws`) only
//! wire AWS clients into it, and the unit tests run it in memory.
//!
//! * [`config`]: the environment, read once; the conversion settings a memory budget allows.
//! * `destination`: where a manifest's parts and error object go.
//! * `run`: the steps of a run, and how a failure is recorded.
//! * [`outcome`]: the result and the errors the state machine matches on.
//!
//! # Outputs and retries
//!
//! Keys depend only on the manifest: parts are `OUTPUT_PREFIX/dt=<date>/<id>-<part>.parquet`,
//! rejected lines go to `ERROR_PREFIX/dt=<date>/<id>.errors.ndjson.gz`. A retry overwrites
//! them, and any part an earlier attempt wrote that this one did not is deleted *before*
//! success is recorded, so no number of retries can leave a duplicate row. Uploads that do not
//! finish are aborted, so nothing half-written is ever visible.
//!
//! # Errors
//!
//! [`RunError::name`] is the error type Step Functions sees. Retryable ones
//! (`ConverterRetryable`, `ConverterTimeout`) leave every status as it was so the workflow can
//! retry (or, for a timeout, hand the manifest to AWS Batch). The others are final: for a file
//! that cannot be read (access denied, corrupt compression) the manifest is marked `failed`
//! with that version as poison: its marker counts an attempt (the manifest-builder gives it up
//! at its `MAX_ATTEMPTS`), and the sweep later hands the other versions to a new manifest
//! untouched, so one poison file never takes its neighbours down with it. A version gone before
//! it was read (deleted, or overwritten: missing, or changed since it was tracked) is not a
//! failure: it is recorded as superseded and the others convert.

pub mod config;
mod destination;
pub mod outcome;
mod run;
#[cfg(test)]
mod tests;
pub mod tracking;

pub use config::ConverterConfig;
pub use outcome::{RunError, RunResult};
pub use run::Runner;
pub use tracking::{LedgerTracking, Tracking};
