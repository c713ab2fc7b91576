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
//!
//! Version 1's layout ([`v1`]) stays until its last user, the converter's tracking store
//! (`shared::aws::dynamo`), moves to the ledger.

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

/// Version 1's layout: partition key `date_prefix`, sort key `file_key`, two sparse indexes.
/// Used only by `shared::aws::dynamo` and `shared::tracking` until the converter runs on the
/// ledger.
pub mod v1 {
    use crate::types::ManifestStatus;

    /// Attribute names of the table's items.
    pub mod attr {
        /// Partition key (S): the `YYYY-MM-DD` date prefix of the file, or of the manifest's files.
        pub const DATE_PREFIX: &str = "date_prefix";
        /// Sort key (S): the object key of a file item, `MANIFEST#<id>` for a manifest item.
        pub const FILE_KEY: &str = "file_key";
        /// `file` or `manifest` ([`super::ITEM_TYPE_FILE`], [`super::ITEM_TYPE_MANIFEST`]).
        pub const ITEM_TYPE: &str = "item_type";
        /// The item's status: a [`crate::types::FileStatus`] or [`crate::types::ManifestStatus`]
        /// value. A DynamoDB reserved word: expressions name it through a placeholder.
        pub const STATUS: &str = "status";
        /// Creation time (S), fixed-width RFC 3339 with milliseconds: sorts as text in time order.
        /// Sort key of both indexes.
        pub const CREATED_AT: &str = "created_at";
        /// Time of the last change (S), same format as [`CREATED_AT`].
        pub const UPDATED_AT: &str = "updated_at";
        /// Expiry (N), seconds since the Unix epoch: the table's TTL attribute.
        pub const TTL: &str = "ttl";
        /// Partition key of the pending index (S): the item's date prefix, present only while the
        /// file is pending.
        pub const PENDING_PREFIX: &str = "pending_prefix";
        /// Partition key of the open-manifests index (S): always [`super::OPEN_SHARD_VALUE`],
        /// present only while the sweep must look at the manifest.
        pub const OPEN_SHARD: &str = "open_shard";
        /// Id of the manifest (S): on a file, the manifest that claimed it; on a manifest, its own.
        pub const MANIFEST_ID: &str = "manifest_id";

        /// File item: bucket of the object (S).
        pub const BUCKET: &str = "bucket";
        /// File item: size of the object in bytes (N).
        pub const SIZE: &str = "size";
        /// File item: ETag of the tracked version, without quotes (S).
        pub const ETAG: &str = "etag";
        /// File item: failed conversions so far (N).
        pub const ATTEMPTS: &str = "attempts";

        /// Manifest item: object keys it tried to claim (L of S).
        pub const CANDIDATES: &str = "candidates";
        /// Manifest item: `s3://bucket/key` of the manifest JSON (S).
        pub const MANIFEST_PATH: &str = "manifest_path";
        /// Manifest item: files claimed (N).
        pub const FILE_COUNT: &str = "file_count";
        /// Manifest item: bytes of the files claimed (N).
        pub const TOTAL_BYTES: &str = "total_bytes";
        /// Manifest item: ARN of its Step Functions execution (S).
        pub const EXECUTION_ARN: &str = "execution_arn";
        /// Manifest item: why it failed (S). A DynamoDB reserved word.
        pub const ERROR: &str = "error";

        /// Completed manifest: lines read (N).
        pub const LINES_READ: &str = "lines_read";
        /// Completed manifest: rows written to Parquet (N); its presence marks a stored result.
        pub const ROWS_WRITTEN: &str = "rows_written";
        /// Completed manifest: lines rejected (N).
        pub const ROWS_REJECTED: &str = "rows_rejected";
        /// Completed manifest: blank lines (N).
        pub const BLANK_LINES: &str = "blank_lines";
        /// Completed manifest: raw input bytes (N).
        pub const BYTES_IN: &str = "bytes_in";
        /// Completed manifest: Parquet bytes written (N).
        pub const BYTES_OUT: &str = "bytes_out";
        /// Completed manifest: keys of the Parquet parts (L of S).
        pub const OUTPUT_KEYS: &str = "output_keys";
        /// Completed manifest: key of the error output (S), if any line was rejected.
        pub const ERROR_KEY: &str = "error_key";
        /// Completed manifest: the schema used (S). A DynamoDB reserved word.
        pub const SCHEMA: &str = "schema";

        /// Every attribute name above: what an item of the table may hold.
        pub const ALL: [&str; 29] = [
            DATE_PREFIX,
            FILE_KEY,
            ITEM_TYPE,
            STATUS,
            CREATED_AT,
            UPDATED_AT,
            TTL,
            PENDING_PREFIX,
            OPEN_SHARD,
            MANIFEST_ID,
            BUCKET,
            SIZE,
            ETAG,
            ATTEMPTS,
            CANDIDATES,
            MANIFEST_PATH,
            FILE_COUNT,
            TOTAL_BYTES,
            EXECUTION_ARN,
            ERROR,
            LINES_READ,
            ROWS_WRITTEN,
            ROWS_REJECTED,
            BLANK_LINES,
            BYTES_IN,
            BYTES_OUT,
            OUTPUT_KEYS,
            ERROR_KEY,
            SCHEMA,
        ];
    }

    /// Partition key of the table.
    pub const PARTITION_KEY: &str = attr::DATE_PREFIX;
    /// Sort key of the table.
    pub const SORT_KEY: &str = attr::FILE_KEY;
    /// The attribute DynamoDB's TTL deletes items by.
    pub const TTL_ATTRIBUTE: &str = attr::TTL;

    /// Sort-key prefix that marks a manifest item: its sort key is `MANIFEST#<id>`. File keys never
    /// start with it (S3 keys may, in theory, so tracking refuses such keys).
    pub const MANIFEST_KEY_PREFIX: &str = "MANIFEST#";

    /// [`attr::ITEM_TYPE`] of a file item.
    pub const ITEM_TYPE_FILE: &str = "file";
    /// [`attr::ITEM_TYPE`] of a manifest item.
    pub const ITEM_TYPE_MANIFEST: &str = "manifest";
    /// The only value of [`attr::OPEN_SHARD`]: the open-manifests index has one partition.
    pub const OPEN_SHARD_VALUE: &str = "open";

    /// What a secondary index projects from the base table.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Projection {
        /// Every attribute (DynamoDB's `ALL`).
        All,
    }

    impl Projection {
        /// The name DynamoDB and Terraform use (`projection_type`).
        pub fn as_str(self) -> &'static str {
            match self {
                Projection::All => "ALL",
            }
        }
    }

    /// A global secondary index of the table.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Index {
        /// Index name, as in `IndexName` and the index's ARN.
        pub name: &'static str,
        /// Partition key (a string attribute).
        pub partition_key: &'static str,
        /// Sort key (a string attribute).
        pub sort_key: &'static str,
        /// What it projects.
        pub projection: Projection,
    }

    /// Pending files only, oldest first: [`attr::PENDING_PREFIX`] exists only while a file is
    /// pending, so "up to N pending files of a prefix" reads N items.
    pub const PENDING_FILES: Index = Index {
        name: "pending-index",
        partition_key: attr::PENDING_PREFIX,
        sort_key: attr::CREATED_AT,
        projection: Projection::All,
    };

    /// Manifests the sweep must look at, oldest first: [`attr::OPEN_SHARD`] exists while a manifest
    /// is `claiming` or `starting`, and after the state machine marked it `failed`.
    pub const OPEN_MANIFESTS: Index = Index {
        name: "open-manifests-index",
        partition_key: attr::OPEN_SHARD,
        sort_key: attr::CREATED_AT,
        projection: Projection::All,
    };

    /// Every global secondary index of the table.
    pub const INDEXES: [Index; 2] = [PENDING_FILES, OPEN_MANIFESTS];

    /// Every key attribute of the table and its indexes, in the order the table defines them; all
    /// are strings (DynamoDB type `S`).
    pub const KEY_ATTRIBUTES: [&str; 5] = [
        attr::DATE_PREFIX,
        attr::FILE_KEY,
        attr::PENDING_PREFIX,
        attr::OPEN_SHARD,
        attr::CREATED_AT,
    ];

    /// The state machine's `MarkFailed` task: when a conversion cannot be done, it moves the
    /// manifest from one of these statuses to [`WORKFLOW_FAILED_TO`], sets [`attr::ERROR`],
    /// [`attr::UPDATED_AT`] and [`attr::OPEN_SHARD`] (so the sweep releases its files). A manifest in
    /// any other status was already settled by the converter and is left alone.
    pub const WORKFLOW_FAILED_FROM: [ManifestStatus; 2] =
        [ManifestStatus::Starting, ManifestStatus::Running];
    /// The status the state machine's `MarkFailed` task sets.
    pub const WORKFLOW_FAILED_TO: ManifestStatus = ManifestStatus::Failed;

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_index_key_is_a_defined_key_attribute() {
            for index in INDEXES {
                assert!(KEY_ATTRIBUTES.contains(&index.partition_key), "{index:?}");
                assert!(KEY_ATTRIBUTES.contains(&index.sort_key), "{index:?}");
            }
            assert_eq!(&KEY_ATTRIBUTES[..2], [PARTITION_KEY, SORT_KEY]);
        }

        #[test]
        fn attribute_names_are_distinct_and_listed() {
            let mut names = attr::ALL.to_vec();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), attr::ALL.len(), "an attribute is listed twice");
            for name in KEY_ATTRIBUTES.iter().chain([&TTL_ATTRIBUTE]) {
                assert!(attr::ALL.contains(name), "{name} is not in attr::ALL");
            }
        }
    }
}

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
