//! The manifest document written to S3 and the Step Functions execution input.
//!
//! # Manifest JSON, version 1
//!
//! ```json
//! {
//!   "format": "ndjson-parquet.manifest",
//!   "version": 1,
//!   "manifest_id": "2026-11-25_20261125T101502123Z_9f1c2a7b3e4d5f60",
//!   "date_prefix": "2026-11-25",
//!   "created_at": "2026-11-25T10:15:02.123Z",
//!   "file_count": 2,
//!   "total_bytes": 3072,
//!   "files": [
//!     {"bucket": "input", "key": "2026-11-25/a.ndjson.gz", "size": 1024, "etag": "9b2c…"},
//!     {"bucket": "input", "key": "2026-11-25/b.ndjson", "size": 2048, "etag": "77aa…"}
//!   ]
//! }
//! ```
//!
//! `files` lists exactly the files the manifest claimed, in claim order. Readers must check
//! `format` and `version`; a new version is introduced for any change a version-1 reader
//! would misread. The object is written once, under a key derived from the manifest id
//! ([`manifest_key`]), before the execution starts.

use serde::{Deserialize, Serialize};

use crate::config::Env;
use crate::types::{DatePrefix, ManifestId, ObjectRef};

/// Value of `format` in every manifest.
pub const MANIFEST_FORMAT: &str = "ndjson-parquet.manifest";
/// The version this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Input bucket name, without `s3://`.
    pub bucket: String,
    /// Object key (decoded).
    pub key: String,
    /// Size in bytes when it arrived.
    pub size: u64,
    /// ETag when it arrived, without quotes; the converter reads only this version (empty:
    /// any version).
    pub etag: String,
    /// The S3 version id in a versioned bucket: the converter then reads exactly that version
    /// (`GetObject versionId=…`), so a later overwrite cannot change what it converts. Absent
    /// in manifests of unversioned buckets and in those written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The `sequencer` of the event that tracked it, in an unversioned bucket: with the ETag,
    /// how the tracking table names this version (the converter records a superseded or
    /// failed version by it). Absent in versioned buckets and in older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
}

impl From<&ObjectRef> for ManifestFile {
    fn from(object: &ObjectRef) -> Self {
        ManifestFile {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            size: object.size,
            etag: object.etag.clone(),
            version_id: None,
            sequencer: None,
        }
    }
}

/// The manifest document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDocument {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Always [`MANIFEST_VERSION`] when written by this build.
    pub version: u32,
    /// The manifest (and execution) id.
    pub manifest_id: ManifestId,
    /// `YYYY-MM-DD` of every listed file; the `dt=` partition of the manifest's key and outputs.
    pub date_prefix: DatePrefix,
    /// When the manifest was created (RFC 3339).
    pub created_at: String,
    /// `files.len()`.
    pub file_count: u64,
    /// Sum of `files[].size`.
    pub total_bytes: u64,
    /// Exactly the files the manifest claimed, in claim order; the converter reads each at its
    /// `etag`.
    pub files: Vec<ManifestFile>,
}

/// Why a manifest document cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the documented shape.
    #[error("not a manifest document: {0}")]
    Syntax(#[from] serde_json::Error),
    /// Another format or version.
    #[error("unsupported manifest format `{format}` version {version} (this build reads `{MANIFEST_FORMAT}` version {MANIFEST_VERSION})")]
    Unsupported {
        /// The document's `format` as read (the right one when only the version is wrong).
        format: String,
        /// The document's `version` as read.
        version: u32,
    },
    /// Counts that do not match the file list.
    #[error("manifest is inconsistent: {0}")]
    Inconsistent(String),
}

impl ManifestDocument {
    /// Parses and checks a manifest.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let document: ManifestDocument = serde_json::from_slice(bytes)?;
        if document.format != MANIFEST_FORMAT || document.version != MANIFEST_VERSION {
            return Err(ManifestError::Unsupported {
                format: document.format,
                version: document.version,
            });
        }
        if document.file_count != document.files.len() as u64 {
            return Err(ManifestError::Inconsistent(format!(
                "file_count is {} but {} files are listed",
                document.file_count,
                document.files.len()
            )));
        }
        let bytes: u64 = document.files.iter().map(|f| f.size).sum();
        if bytes != document.total_bytes {
            return Err(ManifestError::Inconsistent(format!(
                "total_bytes is {} but the files add up to {bytes}",
                document.total_bytes
            )));
        }
        Ok(document)
    }

    /// Serializes the manifest (pretty, for people reading it in S3).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("invariant: manifests serialize")
    }
}

/// The key of a manifest's JSON: `<prefix>/dt=<date>/<id>.json` (`prefix` may be empty).
pub fn manifest_key(prefix: &str, date_prefix: &DatePrefix, id: &ManifestId) -> String {
    prefixed(prefix, &format!("dt={date_prefix}/{id}.json"))
}

fn prefixed(prefix: &str, rest: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        rest.to_string()
    } else {
        format!("{prefix}/{rest}")
    }
}

/// Where the converter writes a manifest's outputs. The converter reads it to write there,
/// the manifest-builder to remove what a failed manifest left; one reader keeps the two
/// agreeing on the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLocations {
    /// `OUTPUT_BUCKET`: Parquet parts.
    pub output_bucket: String,
    /// `OUTPUT_PREFIX` (may be empty).
    pub output_prefix: String,
    /// `ERROR_BUCKET` (default: `OUTPUT_BUCKET`): rejected lines.
    pub error_bucket: String,
    /// `ERROR_PREFIX` (default `errors`).
    pub error_prefix: String,
}

impl OutputLocations {
    /// Reads the prefixes and the error bucket, given `OUTPUT_BUCKET`'s value.
    pub fn from_env(env: &mut Env<'_>, output_bucket: String) -> Self {
        OutputLocations {
            output_prefix: env.optional("OUTPUT_PREFIX").unwrap_or_default(),
            error_bucket: env
                .optional("ERROR_BUCKET")
                .unwrap_or_else(|| output_bucket.clone()),
            error_prefix: env
                .optional("ERROR_PREFIX")
                .unwrap_or_else(|| "errors".to_string()),
            output_bucket,
        }
    }
}

/// The key prefix of a manifest's Parquet parts: `<output prefix>/dt=<date>/<id>-` (parts
/// are `<that><part number>.parquet`). The converter writes there; the sweep removes what a
/// failed manifest left there.
pub fn part_prefix(output_prefix: &str, date_prefix: &DatePrefix, id: &ManifestId) -> String {
    prefixed(output_prefix, &format!("dt={date_prefix}/{id}-"))
}

/// The prefix the converter's start-up check lists (one key at most) to prove the output
/// bucket is reachable: `<output prefix>/dt=`, inside what the role may list.
pub fn output_probe_prefix(output_prefix: &str) -> String {
    prefixed(output_prefix, "dt=")
}

/// The key of a manifest's rejected lines: `<error prefix>/dt=<date>/<id>.errors.ndjson.gz`.
pub fn error_key(error_prefix: &str, date_prefix: &DatePrefix, id: &ManifestId) -> String {
    prefixed(
        error_prefix,
        &format!("dt={date_prefix}/{id}.errors.ndjson.gz"),
    )
}

/// The input of a Step Functions execution (and of the converter Lambda). It names the
/// manifest, not its item in the tracking table: the table layout stays inside the stores (the
/// state machine's `MarkFailed` builds the item key from `manifest_id` itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawExecutionInput")]
pub struct ExecutionInput {
    /// `s3://bucket/key` of the manifest JSON.
    pub manifest_path: String,
    /// The manifest's `YYYY-MM-DD`: with `manifest_id`, locates its tracking item; the converter
    /// checks that the document agrees.
    pub date_prefix: DatePrefix,
    /// Files in the manifest.
    pub file_count: u64,
    /// The manifest (also the execution's name).
    pub manifest_id: ManifestId,
    /// Bytes in the manifest (the state machine routes large ones to AWS Batch).
    pub total_bytes: u64,
}

/// [`ExecutionInput`] as executions started before `manifest_id` existed still carry it:
/// `file_key: "MANIFEST#<id>"` instead, so an upgrade does not fail executions in flight.
/// (`MANIFEST#` was the sort-key prefix of a manifest item in the tracking table's first
/// layout.)
#[derive(Deserialize)]
struct RawExecutionInput {
    manifest_path: String,
    date_prefix: DatePrefix,
    file_count: u64,
    manifest_id: Option<ManifestId>,
    file_key: Option<String>,
    total_bytes: u64,
}

impl TryFrom<RawExecutionInput> for ExecutionInput {
    type Error = String;

    fn try_from(raw: RawExecutionInput) -> Result<Self, String> {
        let legacy = || {
            raw.file_key
                .as_deref()
                .and_then(|k| k.strip_prefix("MANIFEST#"))
                .and_then(ManifestId::parse)
        };
        let manifest_id = match raw.manifest_id.clone() {
            Some(id) => id,
            None => legacy().ok_or("missing field `manifest_id`")?,
        };
        Ok(ExecutionInput {
            manifest_path: raw.manifest_path,
            date_prefix: raw.date_prefix,
            file_count: raw.file_count,
            manifest_id,
            total_bytes: raw.total_bytes,
        })
    }
}

/// Splits `s3://bucket/key`.
pub fn parse_s3_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_inputs_name_the_manifest_and_still_read_the_old_form() {
        let input = ExecutionInput {
            manifest_path: "s3://m/manifests/x.json".into(),
            date_prefix: DatePrefix::parse("2026-11-25").unwrap(),
            file_count: 2,
            manifest_id: ManifestId::parse("m1").unwrap(),
            total_bytes: 10,
        };
        let json = serde_json::to_value(&input).unwrap();
        assert_eq!(json["manifest_id"], "m1");
        assert!(json.get("file_key").is_none());
        assert_eq!(
            serde_json::from_value::<ExecutionInput>(json).unwrap(),
            input
        );
        let old = serde_json::json!({"manifest_path": "s3://m/manifests/x.json",
            "date_prefix": "2026-11-25", "file_count": 2, "file_key": "MANIFEST#m1", "total_bytes": 10});
        assert_eq!(
            serde_json::from_value::<ExecutionInput>(old).unwrap(),
            input
        );
        let neither = serde_json::json!({"manifest_path": "s3://m/x.json",
            "date_prefix": "2026-11-25", "file_count": 2, "file_key": "m1", "total_bytes": 10});
        let error = serde_json::from_value::<ExecutionInput>(neither).unwrap_err();
        assert!(error.to_string().contains("manifest_id"), "{error}");
    }

    #[test]
    fn the_start_up_probe_lists_inside_the_parts_prefix() {
        let date = DatePrefix::parse("2026-11-25").unwrap();
        let id = ManifestId::parse("m1").unwrap();
        for prefix in ["parquet", "/parquet/", "a/b", ""] {
            let probe = output_probe_prefix(prefix);
            // Whatever may list a manifest's parts may list the probe's prefix too.
            assert!(
                part_prefix(prefix, &date, &id).starts_with(&probe),
                "{prefix:?}"
            );
            assert!(!probe.is_empty());
        }
        assert_eq!(output_probe_prefix("parquet/"), "parquet/dt=");
    }

    fn document() -> ManifestDocument {
        ManifestDocument {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            manifest_id: ManifestId::parse("m1").unwrap(),
            date_prefix: DatePrefix::parse("2026-11-25").unwrap(),
            created_at: "2026-11-25T10:00:00.000Z".into(),
            file_count: 2,
            total_bytes: 30,
            files: vec![
                ManifestFile {
                    bucket: "b".into(),
                    key: "k 1".into(),
                    size: 10,
                    etag: "e".into(),
                    version_id: None,
                    sequencer: Some("0055AED6DCD90281E5".into()),
                },
                ManifestFile {
                    bucket: "b".into(),
                    key: "k2".into(),
                    size: 20,
                    etag: "f".into(),
                    version_id: Some("v2".into()),
                    sequencer: None,
                },
            ],
        }
    }

    #[test]
    fn documents_round_trip_and_are_checked() {
        let doc = document();
        assert_eq!(ManifestDocument::from_json(&doc.to_json()).unwrap(), doc);
        let mut wrong = doc.clone();
        wrong.version = 2;
        assert!(matches!(
            ManifestDocument::from_json(&wrong.to_json()),
            Err(ManifestError::Unsupported { .. })
        ));
        let mut wrong = doc.clone();
        wrong.total_bytes = 31;
        assert!(matches!(
            ManifestDocument::from_json(&wrong.to_json()),
            Err(ManifestError::Inconsistent(_))
        ));
        assert!(ManifestDocument::from_json(b"{}").is_err());
    }

    #[test]
    fn keys_and_urls() {
        let id = ManifestId::parse("m1").unwrap();
        let date = DatePrefix::parse("2026-11-25").unwrap();
        assert_eq!(
            manifest_key("manifests/", &date, &id),
            "manifests/dt=2026-11-25/m1.json"
        );
        assert_eq!(manifest_key("", &date, &id), "dt=2026-11-25/m1.json");
        assert_eq!(parse_s3_url("s3://b/a/b.json"), Some(("b", "a/b.json")));
        assert_eq!(parse_s3_url("s3://b/"), None);
        assert_eq!(parse_s3_url("https://b/k"), None);
    }
}
