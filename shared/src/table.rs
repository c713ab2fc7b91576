//! The tracking table's layout: key schema, TTL attribute, attribute names, and what the state
//! machine writes. The table is version 2's (`docs/TRACKING.md`): its layout is defined once,
//! in [`crate::ledger::item`], and this module says what the places that cannot import Rust
//! must agree with:
//!
//! * the Terraform module (`terraform/modules/dynamodb/main.tf`): keys [`PARTITION_KEY`] and
//!   [`SORT_KEY`] (strings), no secondary index, TTL on [`TTL_ATTRIBUTE`];
//! * the state machine's `MarkFailed` task (`terraform/modules/step_functions/definition.asl.json`,
//!   a DynamoDB `UpdateItem`): the manifest item's key ([`crate::ledger::item::manifest_key`]),
//!   moved from [`WORKFLOW_FAILED_FROM`] to [`WORKFLOW_FAILED_TO`], setting exactly
//!   [`WORKFLOW_FAILED_SETS`], as `Ledger::fail` does for a failure without poison versions;
//! * the local pipeline's settle check and the end-to-end suite's item checks
//!   (`tools/local_aws/pipeline.py`, `tests/e2e/run.py`), which read items by these names.
//!
//! `shared/tests/table_layout.rs` checks each of them against this module.

use crate::ledger::ManifestState;

/// Attribute names of the table's items ([`crate::ledger::item::attr`]).
pub use crate::ledger::item::attr;

/// Partition key of the table (S).
pub const PARTITION_KEY: &str = attr::PK;
/// Sort key of the table (S).
pub const SORT_KEY: &str = attr::SK;
/// The attribute DynamoDB's TTL deletes items by.
pub const TTL_ATTRIBUTE: &str = attr::TTL;
/// Every key attribute of the table: no secondary index, so only its own keys (both `S`).
pub const KEY_ATTRIBUTES: [&str; 2] = [PARTITION_KEY, SORT_KEY];

/// Every attribute an item of the table may hold (a test checks that every item kind's
/// attributes are listed).
pub const ALL_ATTRIBUTES: [&str; 30] = [
    attr::PK,
    attr::SK,
    attr::TTL,
    attr::BATCH,
    attr::DATE,
    attr::SIZE,
    attr::ETAG,
    attr::ATTEMPTS,
    attr::LAST_ERROR,
    attr::SUPERSEDED,
    attr::BUCKET,
    attr::REFS,
    attr::BYTES,
    attr::RETRY_OF,
    attr::POSITION,
    attr::LAST_MANIFEST,
    attr::SHARD,
    attr::STATUS,
    attr::AFTER,
    attr::LAST,
    attr::MANIFEST_PATH,
    attr::FILE_COUNT,
    attr::TOTAL_BYTES,
    attr::EXECUTION_ARN,
    attr::RESULT,
    attr::ERROR,
    attr::CREATED_AT,
    attr::UPDATED_AT,
    attr::OWNER,
    attr::UNTIL,
];

/// The state machine's `MarkFailed` task: when a conversion cannot be done, it moves the
/// manifest item from one of these states to [`WORKFLOW_FAILED_TO`]. A manifest in any other
/// state was settled by its converter and is left alone.
pub const WORKFLOW_FAILED_FROM: [ManifestState; 2] =
    [ManifestState::Starting, ManifestState::Running];
/// The state `MarkFailed` sets.
pub const WORKFLOW_FAILED_TO: ManifestState = ManifestState::Failed;
/// The attributes `MarkFailed` sets: those `DynamoLedger::fail` sets on the manifest. No
/// marker counts an attempt (the workflow names no poison version), and the open entry stays:
/// the sweep releases the manifest.
pub const WORKFLOW_FAILED_SETS: [&str; 3] = [attr::STATUS, attr::UPDATED_AT, attr::ERROR];

#[cfg(test)]
mod layout_tests {
    use super::*;
    use crate::ledger::item::{self, Item};
    use crate::ledger::{
        Batch, BatchContents, BatchKey, Cursor, Manifest, Marker, Ref, Shard, Version, VersionRef,
    };
    use crate::types::{ConversionResult, DatePrefix, ManifestId, Timestamp};

    fn listed(item: &Item) {
        for name in item.keys() {
            assert!(
                ALL_ATTRIBUTES.contains(&name.as_str()),
                "{name} is not in ALL_ATTRIBUTES"
            );
        }
    }

    #[test]
    fn every_attribute_of_every_item_kind_is_listed() {
        let now = Timestamp(1_764_460_800_000);
        let shard = Shard {
            date: DatePrefix::parse("2026-11-30").unwrap(),
            number: 3,
        };
        let version = VersionRef {
            bucket: "in".into(),
            key: "a.ndjson".into(),
            version: Version::Id("v".into()),
        };
        let batch_key = BatchKey::with_random(now, 7);
        let id = ManifestId::parse("m").unwrap();
        listed(&item::marker_item(&Marker {
            version,
            batch: batch_key.clone(),
            date: shard.date.clone(),
            size: 1,
            etag: "e".into(),
            attempts: 2,
            last_error: Some("bad".into()),
            superseded: Some("gone".into()),
            ttl: 1,
        }));
        for contents in [
            BatchContents::Arrivals {
                bucket: "in".into(),
                refs: vec![Ref {
                    key: "a.ndjson".into(),
                    version: Version::Id("v".into()),
                }],
                bytes: 1,
            },
            BatchContents::Retry {
                manifest: id.clone(),
            },
        ] {
            listed(&item::batch_item(&Batch {
                shard: shard.clone(),
                key: batch_key.clone(),
                contents,
                ttl: 1,
            }));
        }
        listed(&item::cursor_item(&Cursor {
            shard: shard.clone(),
            position: batch_key.clone(),
            last_manifest: Some(id.clone()),
        }));
        listed(&item::manifest_item(&Manifest {
            id: id.clone(),
            shard: shard.clone(),
            state: ManifestState::Completed,
            after: Some(batch_key.clone()),
            last: batch_key,
            manifest_path: "s3://m/k".into(),
            file_count: 1,
            total_bytes: 1,
            execution_arn: Some("arn".into()),
            result: Some(ConversionResult::default()),
            error: Some("e".into()),
            created_at: now,
            updated_at: now,
            ttl: 1,
        }));
        listed(&item::open_item(&id, now));
        listed(&item::shard_item(&shard, 1));
        listed(&item::lease_item(&shard, "owner", now));
        let mut names = ALL_ATTRIBUTES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            ALL_ATTRIBUTES.len(),
            "an attribute is listed twice"
        );
    }

    #[test]
    fn mark_failed_moves_open_manifests_only() {
        for state in WORKFLOW_FAILED_FROM {
            assert!(!state.is_final());
        }
        assert!(!WORKFLOW_FAILED_FROM.contains(&WORKFLOW_FAILED_TO));
        assert_eq!(&KEY_ATTRIBUTES, &[attr::PK, attr::SK]);
    }
}
