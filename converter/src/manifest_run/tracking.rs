//! Where a run checks that it may run and records how it ended: [`Tracking`], implemented by
//! [`LedgerTracking`] over the tracking table's ledger (`shared::ledger`, see
//! `docs/TRACKING.md`): the manifest's state is the only thing a run changes, files are
//! completed by their manifest, a version gone before it was read is recorded as superseded and
//! the run goes on.

use std::future::Future;

use shared::ledger::settle::{self, Completion};
use shared::ledger::{Ledger, Manifest, Poison, VersionRef};
use shared::manifest::{ManifestDocument, ManifestFile};
use shared::types::{ConversionResult, Timestamp};

use super::RunError;

/// Whether a manifest may be converted.
#[derive(Debug, Clone)]
pub enum Check<C> {
    /// Convert it; `C` is what the tracking needs to record the outcome.
    Run(C),
    /// An earlier attempt completed it: its result.
    Completed(ConversionResult),
}

/// What a manifest run reads and records in the tracking table.
///
/// Contract: [`Tracking::check`] refuses (`ManifestNotRunnable`) a manifest that is neither
/// runnable nor completed, before anything is written. [`Tracking::complete`] records success
/// only if the manifest is still the run's to complete, else answers `ManifestNotRunnable` (the
/// run then removes what it wrote). [`Tracking::fail`] settles the manifest for good;
/// [`Tracking::supersede`] records that one file will not be converted, and the run goes on
/// without it (an error is a failure to record, which ends the run).
pub trait Tracking: Send + Sync {
    /// What a run that may go on holds.
    type Claim: Send + Sync;

    /// Whether `manifest` may run.
    fn check(
        &self,
        manifest: &ManifestDocument,
    ) -> impl Future<Output = Result<Check<Self::Claim>, RunError>> + Send;

    /// `file` was deleted or overwritten before the run could read it (`reason` says which).
    fn supersede(
        &self,
        claim: &Self::Claim,
        manifest: &ManifestDocument,
        file: &ManifestFile,
        reason: &str,
    ) -> impl Future<Output = Result<(), RunError>> + Send;

    /// Records that the manifest converted into `result`.
    fn complete(
        &self,
        claim: &Self::Claim,
        manifest: &ManifestDocument,
        result: &ConversionResult,
    ) -> impl Future<Output = Result<(), RunError>> + Send;

    /// Records that the manifest cannot be converted because of `file` (every file when
    /// `None`: not one file's fault), for `reason`.
    fn fail(
        &self,
        claim: &Self::Claim,
        manifest: &ManifestDocument,
        file: Option<&ManifestFile>,
        reason: &str,
    ) -> impl Future<Output = Result<(), RunError>> + Send;
}

fn not_runnable(manifest: &ManifestDocument, reason: String) -> RunError {
    RunError::ManifestNotRunnable {
        manifest_id: manifest.manifest_id.to_string(),
        reason,
    }
}

/// The ledger.
pub struct LedgerTracking<L> {
    /// The tracking table.
    pub ledger: L,
}

impl<L: Ledger> Tracking for LedgerTracking<L> {
    type Claim = Manifest;

    async fn check(&self, manifest: &ManifestDocument) -> Result<Check<Manifest>, RunError> {
        match settle::check(&self.ledger, &manifest.manifest_id).await? {
            settle::Check::Run(item) => Ok(Check::Run(item)),
            settle::Check::Completed(item) => Ok(Check::Completed(item.result.unwrap_or_default())),
            settle::Check::NotRunnable { reason } => Err(not_runnable(manifest, reason)),
        }
    }

    async fn supersede(
        &self,
        _: &Manifest,
        _: &ManifestDocument,
        file: &ManifestFile,
        reason: &str,
    ) -> Result<(), RunError> {
        // `false` (no marker) cannot happen for a version a manifest holds; either way the
        // version is not converted, and the error output says so.
        self.ledger
            .supersede(&VersionRef::of_file(file), reason)
            .await?;
        Ok(())
    }

    async fn complete(
        &self,
        claim: &Manifest,
        manifest: &ManifestDocument,
        result: &ConversionResult,
    ) -> Result<(), RunError> {
        match settle::complete(&self.ledger, claim, result, Timestamp::now()).await? {
            Completion::Completed | Completion::AlreadyCompleted => Ok(()),
            Completion::Lost { state } => Err(not_runnable(
                manifest,
                format!(
                    "its state changed to {} during the run",
                    state.map_or("(deleted)", |s| s.as_str())
                ),
            )),
        }
    }

    async fn fail(
        &self,
        claim: &Manifest,
        _: &ManifestDocument,
        file: Option<&ManifestFile>,
        reason: &str,
    ) -> Result<(), RunError> {
        let poison: Vec<Poison> = file
            .map(|f| Poison {
                version: VersionRef::of_file(f),
                reason: reason.to_string(),
            })
            .into_iter()
            .collect();
        let error = match file {
            Some(f) => format!("s3://{}/{}: {reason}", f.bucket, f.key),
            None => reason.to_string(),
        };
        // `false`: someone else settled it first (the workflow's `MarkFailed`, the sweep);
        // the run fails either way.
        settle::fail(&self.ledger, &claim.id, &error, &poison, Timestamp::now()).await?;
        Ok(())
    }
}
