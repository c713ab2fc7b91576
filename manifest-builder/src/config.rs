//! The manifest-builder's configuration, read from the environment once at start-up: what the
//! Lambda adapter needs (table, state machine, which records to track) and the protocol's
//! thresholds and timings ([`BatchingConfig`], `docs/TRACKING.md`).

use shared::config::{any, in_range, ConfigError, Env};
use shared::events::DatePattern;
use shared::logging::LogLevel;
pub use shared::manifest::OutputLocations;

use crate::batching::BatchingConfig;

/// Suffixes tracked when `FILE_SUFFIXES` is not set.
pub const DEFAULT_SUFFIXES: &[&str] = &[
    ".ndjson",
    ".ndjson.gz",
    ".ndjson.zst",
    ".jsonl",
    ".jsonl.gz",
    ".jsonl.zst",
    ".json",
    ".json.gz",
    ".json.zst",
];

/// Markers must outlive the arrivals queue's dead-letter queue (14 days at most, SQS's
/// longest retention), so that a redriven notification finds its marker instead of tracking
/// its version a second time: `TTL_DAYS` must be greater.
pub const MIN_TTL_DAYS: u32 = 15;

/// Shard numbers are stored with two decimal digits (`shared::ledger::item`).
pub const MAX_SHARDS: u16 = 99;

/// Which S3 records are tracked, and the date each belongs to.
#[derive(Debug, Clone)]
pub struct RecordFilter {
    /// `FILE_SUFFIXES` (optional, comma-separated): which object keys are tracked.
    pub suffixes: Vec<String>,
    /// `DATE_PREFIX_PATTERN` (optional): regex with a `date` group or `year`/`month`/`day`.
    pub date_prefix_pattern: Option<DatePattern>,
}

impl RecordFilter {
    /// Whether an object key has one of the tracked suffixes (case-insensitive).
    pub fn tracks_key(&self, key: &str) -> bool {
        let lower = key.to_ascii_lowercase();
        self.suffixes.iter().any(|s| lower.ends_with(s.as_str()))
    }
}

/// Everything the builder and the sweep need to know. See the README for each variable.
#[derive(Debug, Clone)]
pub struct BuilderConfig {
    /// `TRACKING_TABLE`: the DynamoDB table of the ledger.
    pub tracking_table: String,
    /// `STEP_FUNCTION_ARN`: the state machine run per manifest.
    pub step_function_arn: String,
    /// `LOG_LEVEL`: DEBUG, INFO (default), WARNING or ERROR.
    pub log_level: LogLevel,
    /// Which records are tracked, under which date.
    pub records: RecordFilter,
    /// `KMS_KEY_ARN` (optional): manifests are written with SSE-KMS under this key.
    pub kms_key_arn: Option<String>,
    /// `S3_FORCE_PATH_STYLE` (default false): path-style S3 URLs, for emulators.
    pub s3_force_path_style: bool,
    /// The protocol's thresholds and timings:
    ///
    /// * `SHARDS` (default 16, 1-99): shards per date;
    /// * `SETTLE_SECONDS` (required): batches younger than this are not cut; longer than the
    ///   builder's timeout plus clock skew;
    /// * `MAX_FILES_PER_MANIFEST` (1-1000), `MAX_BYTES_PER_MANIFEST`: a manifest is full;
    /// * `MAX_WAIT_SECONDS`: a manifest that is not full is cut once its oldest batch waited
    ///   this long;
    /// * `MAX_ATTEMPTS` (default 3): failed conversions before a version is given up;
    /// * `TTL_DAYS` (default 30, more than 14): how long items are kept;
    /// * `REPAIR_AFTER_SECONDS` (default 960): a `starting` manifest unchanged this long is
    ///   started by the sweep; longer than the builder's timeout;
    /// * `RECONCILE_AFTER_SECONDS` (default 600): a `running` manifest unchanged this long has
    ///   its execution looked up;
    /// * `RELEASE_AFTER_SECONDS` (required): a `failed` manifest is released this long after
    ///   it failed; longer than any converter of it can run (Terraform derives it from the
    ///   converter Lambda's timeout and the Batch job's);
    /// * `MANIFEST_BUCKET`, `MANIFEST_PREFIX`: where manifest JSON goes;
    /// * `OUTPUT_BUCKET`, `OUTPUT_PREFIX`, `ERROR_BUCKET`, `ERROR_PREFIX` (read as the
    ///   converter reads them): what a release removes.
    pub batching: BatchingConfig,
}

impl BuilderConfig {
    /// Reads and validates the configuration; every bad value is named in the error.
    pub fn from_env(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let tracking_table = env.required("TRACKING_TABLE");
        let manifest_bucket = env.required("MANIFEST_BUCKET");
        let manifest_prefix = env.optional("MANIFEST_PREFIX").unwrap_or_default();
        let step_function_arn = env.required("STEP_FUNCTION_ARN");
        if !step_function_arn.is_empty() && !step_function_arn.contains(":stateMachine:") {
            env.problem(
                "STEP_FUNCTION_ARN",
                format!("is `{step_function_arn}`: not a state machine ARN"),
            );
        }
        let shards = env.parsed::<u16>("SHARDS", 16, in_range(1, MAX_SHARDS));
        let settle_seconds = env.required_parsed::<i64>("SETTLE_SECONDS", in_range(1, 3_600));
        // A manifest is converted by one process: at most 1,000 files keeps its JSON, its
        // marker reads and its conversion within what one converter run is sized for.
        let max_files = env.required_parsed::<usize>("MAX_FILES_PER_MANIFEST", in_range(1, 1000));
        let max_bytes = env.required_parsed::<u64>("MAX_BYTES_PER_MANIFEST", in_range(1, u64::MAX));
        let max_wait_seconds =
            env.required_parsed::<i64>("MAX_WAIT_SECONDS", in_range(1, 7 * 86_400));
        let max_attempts = env.parsed::<u32>("MAX_ATTEMPTS", 3, in_range(1, 100));
        let ttl_days = env.parsed::<u32>("TTL_DAYS", 30, in_range(MIN_TTL_DAYS, 3650));
        let repair_after_seconds =
            env.parsed::<i64>("REPAIR_AFTER_SECONDS", 960, in_range(60, 86_400));
        let reconcile_after_seconds =
            env.parsed::<i64>("RECONCILE_AFTER_SECONDS", 600, in_range(60, 86_400));
        let release_after_seconds =
            env.required_parsed::<i64>("RELEASE_AFTER_SECONDS", in_range(60, 7 * 86_400));
        let log_level = env.parsed::<LogLevel>("LOG_LEVEL", LogLevel::Info, any);
        let date_prefix_pattern = match env.optional("DATE_PREFIX_PATTERN") {
            None => None,
            Some(pattern) => match DatePattern::new(&pattern) {
                Ok(p) => Some(p),
                Err(e) => {
                    env.problem("DATE_PREFIX_PATTERN", format!("is `{pattern}`: {e}"));
                    None
                }
            },
        };
        let suffixes = match env.optional("FILE_SUFFIXES") {
            None => DEFAULT_SUFFIXES.iter().map(|s| s.to_string()).collect(),
            Some(list) => {
                let suffixes: Vec<String> = list
                    .split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect();
                if suffixes.is_empty() {
                    env.problem("FILE_SUFFIXES", "lists no suffix");
                }
                suffixes
            }
        };
        let kms_key_arn = env.optional("KMS_KEY_ARN");
        let s3_force_path_style = env.flag("S3_FORCE_PATH_STYLE", false);
        // A release removes what a failed manifest's converters wrote: without knowing where,
        // its versions would be converted again beside those leftovers (duplicate rows).
        let output_bucket = env.required("OUTPUT_BUCKET");
        let outputs = OutputLocations::from_env(&mut env, output_bucket);
        env.finish()?;
        Ok(BuilderConfig {
            tracking_table,
            step_function_arn,
            log_level,
            records: RecordFilter {
                suffixes,
                date_prefix_pattern,
            },
            kms_key_arn,
            s3_force_path_style,
            batching: BatchingConfig {
                shards,
                settle_seconds: settle_seconds.unwrap_or_default(),
                max_files: max_files.unwrap_or_default(),
                max_bytes: max_bytes.unwrap_or_default(),
                max_wait_seconds: max_wait_seconds.unwrap_or_default(),
                max_attempts,
                ttl_days,
                repair_after_seconds,
                reconcile_after_seconds,
                release_after_seconds: release_after_seconds.unwrap_or_default(),
                manifest_bucket,
                manifest_prefix,
                outputs,
            },
        })
    }

    /// Timings that work but defeat their purpose, to be logged as warnings at start-up.
    pub fn timing_warnings(&self) -> Vec<String> {
        let b = &self.batching;
        let mut warnings = Vec::new();
        if b.max_wait_seconds < b.settle_seconds {
            warnings.push(format!(
                "MAX_WAIT_SECONDS ({}) is below SETTLE_SECONDS ({}): a batch is due the moment it settles, so a partial manifest holds only what settled since the last cut, and a steady trickle makes many small manifests (the files a manifest waits for arrive in MAX_WAIT_SECONDS - SETTLE_SECONDS)",
                b.max_wait_seconds, b.settle_seconds
            ));
        }
        warnings
    }

    /// What is wrong with the timings for an invocation that may run `timeout_seconds`
    /// (the function's timeout, as the first invocation's deadline tells it): a batch still
    /// being tracked must never be cut (`SETTLE_SECONDS`), nor a manifest still being started
    /// be started again by the sweep (`REPAIR_AFTER_SECONDS`).
    pub fn timing_problems(&self, timeout_seconds: i64) -> Vec<String> {
        let b = &self.batching;
        let mut problems = Vec::new();
        if b.settle_seconds <= timeout_seconds {
            problems.push(format!(
                "SETTLE_SECONDS ({}) must exceed the function's timeout ({timeout_seconds} s): a batch could be cut while its markers are still being written",
                b.settle_seconds
            ));
        }
        if b.repair_after_seconds <= timeout_seconds {
            problems.push(format!(
                "REPAIR_AFTER_SECONDS ({}) must exceed the function's timeout ({timeout_seconds} s): the sweep could start a manifest a builder is still starting",
                b.repair_after_seconds
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn valid() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("TRACKING_TABLE", "tracking"),
            ("MANIFEST_BUCKET", "manifests"),
            ("MANIFEST_PREFIX", "manifests/"),
            (
                "STEP_FUNCTION_ARN",
                "arn:aws:states:us-east-1:123456789012:stateMachine:convert",
            ),
            ("SETTLE_SECONDS", "70"),
            ("MAX_FILES_PER_MANIFEST", "100"),
            ("MAX_BYTES_PER_MANIFEST", "1073741824"),
            ("MAX_WAIT_SECONDS", "300"),
            ("RELEASE_AFTER_SECONDS", "960"),
            ("OUTPUT_BUCKET", "out"),
        ])
    }

    fn read(vars: &HashMap<&'static str, &'static str>) -> Result<BuilderConfig, ConfigError> {
        BuilderConfig::from_env(&|name| vars.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn output_locations_default_as_the_converter_reads_them() {
        let mut vars = valid();
        vars.insert("OUTPUT_PREFIX", "parquet/");
        let outputs = read(&vars).unwrap().batching.outputs;
        assert_eq!(
            outputs,
            OutputLocations {
                output_bucket: "out".into(),
                output_prefix: "parquet/".into(),
                error_bucket: "out".into(),
                error_prefix: "errors".into(),
            }
        );
    }

    #[test]
    fn a_valid_environment_reads_with_defaults() {
        let config = read(&valid()).unwrap();
        let b = &config.batching;
        assert_eq!(config.tracking_table, "tracking");
        assert_eq!(config.log_level, LogLevel::Info);
        assert_eq!(
            (b.shards, b.settle_seconds, b.max_files, b.max_bytes),
            (16, 70, 100, 1 << 30)
        );
        assert_eq!(
            (b.max_wait_seconds, b.max_attempts, b.ttl_days),
            (300, 3, 30)
        );
        assert_eq!(
            (
                b.repair_after_seconds,
                b.reconcile_after_seconds,
                b.release_after_seconds
            ),
            (960, 600, 960)
        );
        assert_eq!(
            (b.manifest_bucket.as_str(), b.manifest_prefix.as_str()),
            ("manifests", "manifests/")
        );
        assert!(config.records.tracks_key("2026-11-25/a.NDJSON.gz"));
        assert!(config.records.tracks_key("x.jsonl"));
        assert!(!config.records.tracks_key("x.csv"));
        assert!(!config.records.tracks_key("x.json.bz2"));
    }

    #[test]
    fn every_bad_value_is_named() {
        let mut vars = valid();
        vars.remove("TRACKING_TABLE");
        vars.remove("OUTPUT_BUCKET");
        vars.insert("STEP_FUNCTION_ARN", "arn:aws:lambda:us-east-1:1:function:x");
        vars.insert("SHARDS", "100");
        vars.insert("MAX_FILES_PER_MANIFEST", "5000");
        vars.insert("MAX_WAIT_SECONDS", "soon");
        vars.insert("TTL_DAYS", "14");
        vars.insert("RELEASE_AFTER_SECONDS", "0");
        vars.insert("LOG_LEVEL", "VERBOSE");
        vars.insert("DATE_PREFIX_PATTERN", "(\\d+)");
        vars.insert("S3_FORCE_PATH_STYLE", "perhaps");
        let err = read(&vars).unwrap_err();
        let named: Vec<&str> = err.problems.iter().map(|p| p.variable).collect();
        assert_eq!(
            named,
            [
                "TRACKING_TABLE",
                "STEP_FUNCTION_ARN",
                "SHARDS",
                "MAX_FILES_PER_MANIFEST",
                "MAX_WAIT_SECONDS",
                "TTL_DAYS",
                "RELEASE_AFTER_SECONDS",
                "LOG_LEVEL",
                "DATE_PREFIX_PATTERN",
                "S3_FORCE_PATH_STYLE",
                "OUTPUT_BUCKET",
            ]
        );
        assert!(err
            .to_string()
            .contains("LOG_LEVEL is `VERBOSE`: expected DEBUG, INFO, WARNING or ERROR"));
    }

    #[test]
    fn markers_outlive_the_dead_letter_queue() {
        let mut vars = valid();
        vars.insert("TTL_DAYS", "15");
        assert_eq!(read(&vars).unwrap().batching.ttl_days, 15);
        vars.insert("TTL_DAYS", "14");
        let err = read(&vars).unwrap_err();
        assert!(err.to_string().contains("TTL_DAYS is `14`"), "{err}");
    }

    #[test]
    fn timings_must_outlast_an_invocation() {
        let config = read(&valid()).unwrap();
        assert!(config.timing_problems(60).is_empty());
        let problems = config.timing_problems(70);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("SETTLE_SECONDS (70)"),
            "{problems:?}"
        );
        assert_eq!(config.timing_problems(960).len(), 2);
    }

    #[test]
    fn a_wait_shorter_than_the_settle_time_is_warned_about() {
        let mut vars = valid();
        vars.insert("MAX_WAIT_SECONDS", "600");
        assert!(read(&vars).unwrap().timing_warnings().is_empty());
        vars.insert("MAX_WAIT_SECONDS", "2");
        let warnings = read(&vars).unwrap().timing_warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("MAX_WAIT_SECONDS (2) is below SETTLE_SECONDS (70)"),
            "{warnings:?}"
        );
    }

    #[test]
    fn suffixes_can_be_configured() {
        let mut vars = valid();
        vars.insert("FILE_SUFFIXES", ".log, .LOG.GZ");
        let config = read(&vars).unwrap();
        assert!(config.records.tracks_key("a.log.gz"));
        assert!(!config.records.tracks_key("a.ndjson"));
    }
}
