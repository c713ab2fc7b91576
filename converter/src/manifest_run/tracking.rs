//! Where a run checks that it may run and records how it ended: [`Tracking`], with two
//! implementations. [`LedgerTracking`] is the tracking table's version 2 (`shared::ledger`, see
//! `docs/TRACKING.md`): the manifest's state is the only thing a run changes, files are
//! completed by their manifest, a version gone before it was read is recorded as superseded and
//! the run goes on. [`TableTracking`] is version 1 (`shared::tracking`): every file item moves
//! with its manifest, and a file that changed since it was tracked fails the manifest.

use std::future::Future;

use shared::ledger::settle::{self, Completion};
use shared::ledger::{Ledger, Manifest, Poison, VersionRef};
use shared::manifest::{ManifestDocument, ManifestFile};
use shared::tracking::{ManifestChanges, TrackingStore};
use shared::types::{ConversionResult, ManifestRecord, ManifestStatus, Timestamp};

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
/// [`Tracking::supersede`] either records that one file will not be converted and lets the run
/// go on without it (`Ok`), or ends the run with the error to return.
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

/// Version 2: the ledger.
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

/// Version 1: a file item per object and a manifest item with its candidates.
pub struct TableTracking<S> {
    /// The tracking table.
    pub store: S,
    /// Failed conversions after which a file is `failed` for good.
    pub max_attempts: u32,
}

impl<S: TrackingStore> TableTracking<S> {
    /// Moves the manifest from its current `starting`/`running` status.
    async fn transition(
        &self,
        record: &ManifestRecord,
        to: ManifestStatus,
        changes: &ManifestChanges,
    ) -> Result<(), RunError> {
        let now = Timestamp::now();
        for from in [ManifestStatus::Running, ManifestStatus::Starting] {
            let (prefix, id) = (&record.date_prefix, &record.manifest_id);
            if self
                .store
                .update_manifest(prefix, id, from, to, changes, now)
                .await?
            {
                return Ok(());
            }
        }
        let current = self
            .store
            .get_manifest(&record.date_prefix, &record.manifest_id)
            .await?;
        if current.as_ref().map(|m| m.status) == Some(to) {
            return Ok(());
        }
        Err(RunError::ManifestNotRunnable {
            manifest_id: record.manifest_id.to_string(),
            reason: format!(
                "its status changed to {} during the run",
                current.map_or("(deleted)", |m| m.status.as_str())
            ),
        })
    }
}

impl<S: TrackingStore> Tracking for TableTracking<S> {
    type Claim = ManifestRecord;

    async fn check(&self, manifest: &ManifestDocument) -> Result<Check<ManifestRecord>, RunError> {
        let id = &manifest.manifest_id;
        let record = self
            .store
            .get_manifest(&manifest.date_prefix, id)
            .await?
            .ok_or_else(|| {
                not_runnable(manifest, "no manifest item in the tracking table".into())
            })?;
        match record.status {
            ManifestStatus::Completed => Ok(Check::Completed(record.result.unwrap_or_default())),
            ManifestStatus::Starting | ManifestStatus::Running => Ok(Check::Run(record)),
            other => Err(not_runnable(
                manifest,
                format!("its status is {}", other.as_str()),
            )),
        }
    }

    /// Version 1 has no superseded state: the file fails the manifest as before.
    async fn supersede(
        &self,
        claim: &ManifestRecord,
        manifest: &ManifestDocument,
        file: &ManifestFile,
        reason: &str,
    ) -> Result<(), RunError> {
        self.fail(claim, manifest, Some(file), reason).await?;
        Err(RunError::FileFailed {
            manifest_id: manifest.manifest_id.to_string(),
            file: format!("s3://{}/{}", file.bucket, file.key),
            reason: reason.to_string(),
        })
    }

    async fn complete(
        &self,
        claim: &ManifestRecord,
        manifest: &ManifestDocument,
        result: &ConversionResult,
    ) -> Result<(), RunError> {
        let (prefix, id) = (&manifest.date_prefix, &manifest.manifest_id);
        let now = Timestamp::now();
        for file in &manifest.files {
            self.store.complete_file(prefix, &file.key, id, now).await?;
        }
        let changes = ManifestChanges {
            result: Some(result.clone()),
            ..ManifestChanges::default()
        };
        self.transition(claim, ManifestStatus::Completed, &changes)
            .await
    }

    /// The failing file (every file when `None`) counts an attempt, the others are released;
    /// then the manifest is `failed`.
    async fn fail(
        &self,
        claim: &ManifestRecord,
        manifest: &ManifestDocument,
        file: Option<&ManifestFile>,
        reason: &str,
    ) -> Result<(), RunError> {
        let (prefix, id) = (&claim.date_prefix, &claim.manifest_id);
        let now = Timestamp::now();
        for f in &manifest.files {
            if file.is_none_or(|failing| failing == f) {
                self.store
                    .fail_file(prefix, &f.key, id, self.max_attempts, now)
                    .await?;
            } else {
                self.store.release_file(prefix, &f.key, id, now).await?;
            }
        }
        let url = file.map_or(String::new(), |f| format!("s3://{}/{}", f.bucket, f.key));
        let changes = ManifestChanges {
            error: Some(format!("{url}: {reason}")),
            ..ManifestChanges::default()
        };
        self.transition(claim, ManifestStatus::Failed, &changes)
            .await
    }
}
