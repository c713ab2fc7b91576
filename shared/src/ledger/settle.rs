//! The converter's side of the protocol, over any [`Ledger`]: whether a manifest may run, and
//! how a run's outcome is recorded. The converter's `Runner` and the deterministic simulation
//! both call these functions, so the simulation checks the code that runs in production.
//!
//! * A run starts only from `starting` or `running` ([`check`]); a `completed` manifest is
//!   answered with its stored result (a retry after a lost response), anything else is not
//!   runnable.
//! * Success is one conditional update, `starting|running → completed` ([`complete`]): the
//!   condition is the ownership check (the sweep or the workflow may have failed the manifest
//!   meanwhile; then the run lost and must remove what it wrote). Files are never completed one
//!   by one.
//! * A version gone before it was read is [`Ledger::supersede`]d and the run goes on without it.
//! * A version that cannot be converted fails the manifest with that version as poison
//!   ([`fail`]): its marker counts an attempt, the sweep releases the others.

use super::{Ledger, Manifest, ManifestState, OpenManifest, Poison, StoreError};
use crate::types::{ConversionResult, ManifestId, Timestamp};

/// The states a conversion may run from (and complete or fail from).
pub const RUNNABLE: [ManifestState; 2] = [ManifestState::Starting, ManifestState::Running];

/// Whether a manifest may be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `starting` or `running`: convert it.
    Run(Manifest),
    /// Already `completed` (an earlier attempt recorded it): answer with its result.
    Completed(Manifest),
    /// Any other state, or no manifest: the run must not write anything.
    NotRunnable {
        /// Why, for people and the workflow's error.
        reason: String,
    },
}

/// Reads the manifest and says whether it may run.
pub async fn check<L: Ledger>(ledger: &L, id: &ManifestId) -> Result<Check, StoreError> {
    let Some(manifest) = ledger.manifest(id).await? else {
        return Ok(Check::NotRunnable {
            reason: "no manifest item in the tracking table".into(),
        });
    };
    Ok(match manifest.state {
        ManifestState::Starting | ManifestState::Running => Check::Run(manifest),
        ManifestState::Completed => Check::Completed(manifest),
        ManifestState::Failed | ManifestState::Released => Check::NotRunnable {
            reason: format!("its state is {}", manifest.state.as_str()),
        },
    })
}

/// What recording a successful conversion came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// This run completed the manifest.
    Completed,
    /// Another attempt of the same manifest completed it first: this run's parts, which have
    /// the same keys, are what it recorded.
    AlreadyCompleted,
    /// The manifest was failed (or released) meanwhile: nothing of this run may stay.
    Lost {
        /// The state found, `None` if the manifest is gone.
        state: Option<ManifestState>,
    },
}

/// Records that `manifest` (as [`check`] read it) converted into `result`, then closes its open
/// entry. Closing is best effort: an entry left behind is removed by the sweep, so a failure to
/// close does not make the run fail.
pub async fn complete<L: Ledger>(
    ledger: &L,
    manifest: &Manifest,
    result: &ConversionResult,
    now: Timestamp,
) -> Result<Completion, StoreError> {
    let completion = if ledger
        .complete(&manifest.id, &RUNNABLE, result, now)
        .await?
    {
        Completion::Completed
    } else {
        match ledger.manifest(&manifest.id).await? {
            Some(m) if m.state == ManifestState::Completed => Completion::AlreadyCompleted,
            found => {
                return Ok(Completion::Lost {
                    state: found.map(|m| m.state),
                })
            }
        }
    };
    let entry = OpenManifest {
        id: manifest.id.clone(),
        created_at: manifest.created_at,
    };
    if let Err(error) = ledger.close(&entry).await {
        tracing::warn!(manifest_id = %manifest.id, %error, "open entry not removed; the sweep will");
    }
    Ok(completion)
}

/// Fails `id` with `error`, counting an attempt on each of `poison` (at most
/// [`super::MAX_POISON_PER_FAILURE`]), if it is still runnable; `false` if it was not (already
/// settled by someone else: nothing to do).
pub async fn fail<L: Ledger>(
    ledger: &L,
    id: &ManifestId,
    error: &str,
    poison: &[Poison],
    now: Timestamp,
) -> Result<bool, StoreError> {
    let poison = &poison[..poison.len().min(super::MAX_POISON_PER_FAILURE)];
    ledger.fail(id, &RUNNABLE, error, poison, now).await
}

/// What the builder leaves for a converter, for tests of the converter's side: one arrival
/// batch in `shard` holding `files` (one bucket), a marker per file, and a `starting`
/// manifest `id` cut from that batch and listed, whose JSON is at `manifest_path`.
#[cfg(any(test, feature = "test-support"))]
pub async fn seed<L: Ledger>(
    ledger: &L,
    id: &ManifestId,
    shard: &super::Shard,
    files: &[crate::manifest::ManifestFile],
    manifest_path: &str,
    now: Timestamp,
) -> Result<Manifest, StoreError> {
    use super::{Batch, BatchContents, BatchKey, Cut, Marker, Ref, VersionRef};
    let batch = BatchKey::new(now);
    let after = ledger.cursor(shard).await?.map(|c| c.position);
    let versions: Vec<VersionRef> = files.iter().map(VersionRef::of_file).collect();
    let bucket = files.first().map_or(String::new(), |f| f.bucket.clone());
    assert!(
        files.iter().all(|f| f.bucket == bucket),
        "one bucket per batch"
    );
    let arrivals = Batch {
        shard: shard.clone(),
        key: batch.clone(),
        contents: BatchContents::Arrivals {
            bucket,
            refs: versions
                .iter()
                .map(|v| Ref {
                    key: v.key.clone(),
                    version: v.version.clone(),
                })
                .collect(),
            bytes: files.iter().map(|f| f.size).sum(),
        },
        ttl: 0,
    };
    ledger.put_batch(&arrivals).await?;
    for (file, version) in files.iter().zip(versions) {
        let marker = Marker {
            version,
            batch: batch.clone(),
            date: shard.date.clone(),
            size: file.size,
            etag: file.etag.clone(),
            attempts: 0,
            last_error: None,
            superseded: None,
            ttl: 0,
        };
        ledger.put_marker(&marker).await?;
    }
    let open = OpenManifest {
        id: id.clone(),
        created_at: now,
    };
    ledger.open(&open).await?;
    let manifest = Manifest {
        id: id.clone(),
        shard: shard.clone(),
        state: ManifestState::Starting,
        after,
        last: batch,
        manifest_path: manifest_path.to_string(),
        file_count: files.len() as u64,
        total_bytes: files.iter().map(|f| f.size).sum(),
        execution_arn: None,
        result: None,
        error: None,
        created_at: now,
        updated_at: now,
        ttl: 0,
    };
    let cut = Cut {
        manifest: manifest.clone(),
    };
    assert!(ledger.cut(&cut).await?, "the manifest id is new");
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{MemoryLedger, Shard, Version, VersionRef};
    use crate::types::DatePrefix;

    fn shard() -> Shard {
        Shard {
            date: DatePrefix::parse("2026-11-30").unwrap(),
            number: 3,
        }
    }

    fn now() -> Timestamp {
        Timestamp(1_764_460_800_000)
    }

    fn version(key: &str) -> VersionRef {
        VersionRef {
            bucket: "in".into(),
            key: key.into(),
            version: Version::Id(format!("v-{key}")),
        }
    }

    /// A ledger with one `starting` manifest holding one tracked version.
    async fn ledger_with_manifest(id: &str) -> (MemoryLedger, Manifest) {
        let ledger = MemoryLedger::new();
        let id = ManifestId::parse(id).unwrap();
        let file = crate::manifest::ManifestFile {
            bucket: "in".into(),
            key: "a".into(),
            size: 10,
            etag: "e".into(),
            version_id: Some("v-a".into()),
            sequencer: None,
        };
        let path = format!("s3://m/{id}.json");
        let manifest = seed(&ledger, &id, &shard(), &[file], &path, now())
            .await
            .unwrap();
        (ledger, manifest)
    }

    async fn open_entries(ledger: &MemoryLedger) -> usize {
        let mut entries = 0;
        for partition in 0..crate::ledger::OPEN_PARTITIONS {
            let page = ledger.open_manifests(partition, None, 100).await.unwrap();
            entries += page.items.len();
        }
        entries
    }

    #[tokio::test]
    async fn a_run_completes_once_and_closes_the_entry() {
        let (ledger, manifest) = ledger_with_manifest("m1").await;
        assert!(matches!(
            check(&ledger, &manifest.id).await.unwrap(),
            Check::Run(_)
        ));
        assert_eq!(open_entries(&ledger).await, 1);
        let result = ConversionResult {
            rows_written: 7,
            ..ConversionResult::default()
        };
        let first = complete(&ledger, &manifest, &result, now()).await.unwrap();
        assert_eq!(first, Completion::Completed);
        assert_eq!(open_entries(&ledger).await, 0);
        let second = complete(&ledger, &manifest, &result, now()).await.unwrap();
        assert_eq!(second, Completion::AlreadyCompleted);
        match check(&ledger, &manifest.id).await.unwrap() {
            Check::Completed(m) => assert_eq!(m.result.unwrap().rows_written, 7),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_run_that_lost_its_manifest_is_told_so_and_cannot_start_again() {
        let (ledger, manifest) = ledger_with_manifest("m2").await;
        assert!(fail(&ledger, &manifest.id, "timed out", &[], now())
            .await
            .unwrap());
        let lost = complete(&ledger, &manifest, &ConversionResult::default(), now())
            .await
            .unwrap();
        let failed = Some(ManifestState::Failed);
        assert_eq!(lost, Completion::Lost { state: failed });
        assert_eq!(open_entries(&ledger).await, 1, "the sweep releases it");
        assert!(matches!(
            check(&ledger, &manifest.id).await.unwrap(),
            Check::NotRunnable { .. }
        ));
        assert!(!fail(&ledger, &manifest.id, "again", &[], now())
            .await
            .unwrap());
        let unknown = ManifestId::parse("nope").unwrap();
        assert!(matches!(
            check(&ledger, &unknown).await.unwrap(),
            Check::NotRunnable { .. }
        ));
    }

    #[tokio::test]
    async fn a_poison_version_counts_an_attempt() {
        let (ledger, manifest) = ledger_with_manifest("m3").await;
        let poison = Poison {
            version: version("a"),
            reason: "not gzip".into(),
        };
        assert!(fail(&ledger, &manifest.id, "corrupt", &[poison], now())
            .await
            .unwrap());
        let marker = ledger.markers(&[version("a")]).await.unwrap();
        let marker = marker[0].as_ref().unwrap();
        assert_eq!(marker.attempts, 1);
        assert_eq!(marker.last_error.as_deref(), Some("not gzip"));
    }
}
