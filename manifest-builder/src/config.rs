//! The manifest-builder's configuration, read from the environment once at start-up.

use shared::config::{any, in_range, ConfigError, Env};
use shared::events::DatePattern;
use shared::logging::LogLevel;
pub use shared::manifest::OutputLocations;

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

/// Everything the builder needs to know. See the README for each variable.
#[derive(Debug, Clone)]
pub struct BuilderConfig {
    /// `TRACKING_TABLE`: the DynamoDB tracking table.
    pub tracking_table: String,
    /// `MANIFEST_BUCKET`: where manifest JSON goes.
    pub manifest_bucket: String,
    /// `MANIFEST_PREFIX`: key prefix of manifest JSON (may be empty).
    pub manifest_prefix: String,
    /// `STEP_FUNCTION_ARN`: the state machine run per manifest.
    pub step_function_arn: String,
    /// `MAX_FILES_PER_MANIFEST` (1-1000): a manifest is cut when this many files are pending.
    pub max_files_per_manifest: usize,
    /// `MAX_BYTES_PER_MANIFEST` (bytes): ... or when this many bytes are pending.
    pub max_bytes_per_manifest: u64,
    /// `MAX_WAIT_SECONDS`: the sweep cuts a smaller manifest once the oldest pending file has
    /// waited this long.
    pub max_wait_seconds: i64,
    /// `TTL_DAYS`: how long tracking items are kept.
    pub ttl_days: u32,
    /// `LOG_LEVEL`: DEBUG, INFO (default), WARNING or ERROR.
    pub log_level: LogLevel,
    /// `DATE_PREFIX_PATTERN` (optional): regex with a `date` group or `year`/`month`/`day`.
    pub date_prefix_pattern: Option<DatePattern>,
    /// `FILE_SUFFIXES` (optional, comma-separated): which object keys are tracked.
    pub suffixes: Vec<String>,
    /// `REPAIR_AFTER_SECONDS` (default 960): the sweep repairs a `claiming`/`starting`
    /// manifest only after this long without change. Must exceed the Lambda timeout, so that
    /// a builder still at work is never overtaken.
    pub repair_after_seconds: i64,
    /// `MAX_ATTEMPTS` (default 3): a file whose manifest the workflow failed this often is
    /// marked `failed` instead of going back to pending.
    pub max_attempts: u32,
    /// `KMS_KEY_ARN` (optional): manifests are written with SSE-KMS under this key.
    pub kms_key_arn: Option<String>,
    /// `S3_FORCE_PATH_STYLE` (default false): path-style S3 URLs, for emulators.
    pub s3_force_path_style: bool,
    /// Where the converter writes (`OUTPUT_BUCKET`, `OUTPUT_PREFIX`, `ERROR_BUCKET`,
    /// `ERROR_PREFIX`, read as the converter reads them): before the sweep returns a failed
    /// manifest's files to pending, it deletes whatever that manifest's dead attempts
    /// committed there, or the files' next manifest would duplicate those rows. Without
    /// `OUTPUT_BUCKET` nothing is deleted (a warning says so at start-up).
    pub outputs: Option<OutputLocations>,
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
        // At most 1000: a manifest item records its candidate keys, within DynamoDB's 400 KB.
        let max_files_per_manifest =
            env.required_parsed::<usize>("MAX_FILES_PER_MANIFEST", in_range(1, 1000));
        let max_bytes_per_manifest =
            env.required_parsed::<u64>("MAX_BYTES_PER_MANIFEST", in_range(1, u64::MAX));
        let max_wait_seconds =
            env.required_parsed::<i64>("MAX_WAIT_SECONDS", in_range(1, 7 * 86_400));
        let ttl_days = env.parsed::<u32>("TTL_DAYS", 30, in_range(1, 3650));
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
        let repair_after_seconds =
            env.parsed::<i64>("REPAIR_AFTER_SECONDS", 960, in_range(60, 86_400));
        let max_attempts = env.parsed::<u32>("MAX_ATTEMPTS", 3, in_range(1, 100));
        let kms_key_arn = env.optional("KMS_KEY_ARN");
        let s3_force_path_style = env.flag("S3_FORCE_PATH_STYLE", false);
        let outputs = env
            .optional("OUTPUT_BUCKET")
            .map(|bucket| OutputLocations::from_env(&mut env, bucket));
        env.finish()?;
        Ok(BuilderConfig {
            tracking_table,
            manifest_bucket,
            manifest_prefix,
            step_function_arn,
            max_files_per_manifest: max_files_per_manifest.unwrap_or_default(),
            max_bytes_per_manifest: max_bytes_per_manifest.unwrap_or_default(),
            max_wait_seconds: max_wait_seconds.unwrap_or_default(),
            ttl_days,
            log_level,
            date_prefix_pattern,
            suffixes,
            repair_after_seconds,
            max_attempts,
            kms_key_arn,
            s3_force_path_style,
            outputs,
        })
    }

    /// Whether an object key has one of the tracked suffixes (case-insensitive).
    pub fn tracks_key(&self, key: &str) -> bool {
        let lower = key.to_ascii_lowercase();
        self.suffixes.iter().any(|s| lower.ends_with(s.as_str()))
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
            ("MAX_FILES_PER_MANIFEST", "100"),
            ("MAX_BYTES_PER_MANIFEST", "1073741824"),
            ("MAX_WAIT_SECONDS", "300"),
            ("TTL_DAYS", "7"),
        ])
    }

    fn read(vars: &HashMap<&'static str, &'static str>) -> Result<BuilderConfig, ConfigError> {
        BuilderConfig::from_env(&|name| vars.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn output_locations_default_as_the_converter_reads_them() {
        assert_eq!(read(&valid()).unwrap().outputs, None);
        let mut vars = valid();
        vars.insert("OUTPUT_BUCKET", "out");
        vars.insert("OUTPUT_PREFIX", "parquet/");
        let outputs = read(&vars).unwrap().outputs.unwrap();
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
        assert_eq!(config.max_files_per_manifest, 100);
        assert_eq!(config.log_level, LogLevel::Info);
        assert_eq!(config.repair_after_seconds, 960);
        assert!(config.tracks_key("2026-11-25/a.NDJSON.gz"));
        assert!(config.tracks_key("x.jsonl"));
        assert!(!config.tracks_key("x.csv"));
        assert!(!config.tracks_key("x.json.bz2"));
    }

    #[test]
    fn every_bad_value_is_named() {
        let mut vars = valid();
        vars.remove("TRACKING_TABLE");
        vars.insert("STEP_FUNCTION_ARN", "arn:aws:lambda:us-east-1:1:function:x");
        vars.insert("MAX_FILES_PER_MANIFEST", "5000");
        vars.insert("MAX_WAIT_SECONDS", "soon");
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
                "MAX_FILES_PER_MANIFEST",
                "MAX_WAIT_SECONDS",
                "LOG_LEVEL",
                "DATE_PREFIX_PATTERN",
                "S3_FORCE_PATH_STYLE"
            ]
        );
        assert!(err
            .to_string()
            .contains("LOG_LEVEL is `VERBOSE`: expected DEBUG, INFO, WARNING or ERROR"));
    }

    #[test]
    fn suffixes_can_be_configured() {
        let mut vars = valid();
        vars.insert("FILE_SUFFIXES", ".log, .LOG.GZ");
        let config = read(&vars).unwrap();
        assert!(config.tracks_key("a.log.gz"));
        assert!(!config.tracks_key("a.ndjson"));
    }
}
