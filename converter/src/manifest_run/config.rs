//! The converter's configuration (Lambda and Batch alike), read from the environment once at
//! start-up, and the conversion settings it implies for a memory budget.

use shared::config::{any, in_range, ConfigError, Env};
use shared::logging::LogLevel;
use shared::manifest::OutputLocations;

use crate::convert::{ConvertOptions, OnError, SchemaChoice};
use crate::objects::MIN_PART_SIZE;
use crate::parquet_options::{Codec, ParquetOptions};
use crate::schema::TimestampUnit;

/// The converter's configuration (Lambda and Batch alike), read once at start-up.
#[derive(Debug, Clone)]
pub struct ConverterConfig {
    /// `TRACKING_TABLE`.
    pub tracking_table: String,
    /// `OUTPUT_BUCKET`: where Parquet goes.
    pub output_bucket: String,
    /// `OUTPUT_PREFIX` (may be empty).
    pub output_prefix: String,
    /// `ERROR_BUCKET` (default: the output bucket).
    pub error_bucket: String,
    /// `ERROR_PREFIX` (default `errors`).
    pub error_prefix: String,
    /// `KMS_KEY_ARN`: every object written is SSE-KMS under this key.
    pub kms_key_arn: String,
    /// `COMPRESSION_TYPE` (default `snappy`), with the CLI's codec names; `lzo` is refused.
    pub compression: Codec,
    /// `SCHEMA_URI` (optional): `s3://…` or a path; otherwise inferred per manifest.
    pub schema_uri: Option<String>,
    /// `TIMESTAMP_UNIT` (default `us`) of inferred timestamps.
    pub timestamp_unit: TimestampUnit,
    /// `MEMORY_BUDGET_MB` (optional; in Lambda, 80% of the function's memory by default).
    pub memory_budget_mb: Option<u64>,
    /// `TARGET_FILE_BYTES` (default 256 MiB, at least 64 KiB): Parquet parts roll over at
    /// about this size (at a row-group boundary).
    pub target_file_bytes: u64,
    /// `THREADS` (default: all cores).
    pub threads: usize,
    /// `LAMBDA_MIN_MBPS` (default 40): the throughput assumed when deciding up front whether a
    /// manifest can finish within the Lambda's remaining time.
    pub lambda_min_mbps: u64,
    /// `LOG_LEVEL`.
    pub log_level: LogLevel,
    /// `S3_FORCE_PATH_STYLE` (for emulators).
    pub s3_force_path_style: bool,
}

impl ConverterConfig {
    /// Reads and validates the configuration, naming every bad variable.
    pub fn from_env(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let tracking_table = env.required("TRACKING_TABLE");
        let output_bucket = env.required("OUTPUT_BUCKET");
        let OutputLocations {
            output_bucket,
            output_prefix,
            error_bucket,
            error_prefix,
        } = OutputLocations::from_env(&mut env, output_bucket);
        let kms_key_arn = env.required("KMS_KEY_ARN");
        let key_like = kms_key_arn.starts_with("arn:")
            || kms_key_arn.starts_with("alias/")
            || is_key_id(&kms_key_arn);
        if !kms_key_arn.is_empty() && !key_like {
            env.problem(
                "KMS_KEY_ARN",
                format!("is `{kms_key_arn}`: not a KMS key ARN, alias or key id"),
            );
        }
        let compression = env.parsed::<Codec>("COMPRESSION_TYPE", Codec::Snappy, any);
        let schema_uri = env.optional("SCHEMA_URI");
        let timestamp_unit =
            env.parsed::<TimestampUnit>("TIMESTAMP_UNIT", TimestampUnit::Microsecond, any);
        let memory_budget_mb = match env.optional("MEMORY_BUDGET_MB") {
            Some(_) => Some(env.parsed::<u64>("MEMORY_BUDGET_MB", 0, in_range(128, 1 << 20))),
            None => env
                .optional("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .and_then(|m| m.trim().parse::<u64>().ok())
                .map(|m| m * 8 / 10),
        };
        let target_file_bytes =
            env.parsed::<u64>("TARGET_FILE_BYTES", 256 << 20, in_range(64 << 10, 16 << 30));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = env.parsed::<usize>("THREADS", cores, in_range(1, 1024));
        let lambda_min_mbps = env.parsed::<u64>("LAMBDA_MIN_MBPS", 40, in_range(1, 100_000));
        let log_level = env.parsed::<LogLevel>("LOG_LEVEL", LogLevel::Info, any);
        let s3_force_path_style = env.flag("S3_FORCE_PATH_STYLE", false);
        env.finish()?;
        Ok(ConverterConfig {
            tracking_table,
            output_bucket,
            output_prefix,
            error_bucket,
            error_prefix,
            kms_key_arn,
            compression,
            schema_uri,
            timestamp_unit,
            memory_budget_mb,
            target_file_bytes,
            threads,
            lambda_min_mbps,
            log_level,
            s3_force_path_style,
        })
    }

    /// Bytes the inputs' read-ahead may hold (parts in flight and cached): an eighth of the
    /// memory budget, 16 to 256 MiB; 64 MiB without a budget.
    pub fn read_ahead_bytes(&self) -> u64 {
        match self.memory_budget_mb {
            None => 64 << 20,
            Some(mb) => (mb * 1024 * 1024 / 8).clamp(16 << 20, 256 << 20),
        }
    }

    /// Conversion settings sized to the memory budget: chunks in flight, one row group being
    /// encoded and the upload buffers must fit, whatever the input size.
    pub fn convert_options(&self) -> (ConvertOptions, usize) {
        let budget = self.memory_budget_mb.map(|mb| mb * 1024 * 1024);
        let threads = self.threads.max(1);
        let chunk_bytes = 1024 * 1024;
        // Decode side: (2 * threads + 2) chunks in flight, each about 4x its size once decoded.
        let decode = (2 * threads as u64 + 2) * chunk_bytes as u64 * 4;
        let (part_size, row_group_bytes) = match budget {
            None => (16 * 1024 * 1024, 128 * 1024 * 1024),
            Some(budget) => {
                let part = if budget >= 1 << 30 {
                    16 << 20
                } else {
                    MIN_PART_SIZE as u64
                };
                // Three part buffers (one filling, two uploading) for Parquet, one for errors.
                let uploads = 4 * part;
                let left =
                    budget.saturating_sub(decode + uploads + self.read_ahead_bytes() + (64 << 20));
                // An in-progress row group can take about twice its encoded estimate.
                (part as usize, (left / 2).clamp(8 << 20, 128 << 20) as usize)
            }
        };
        let options = ConvertOptions {
            schema: SchemaChoice::Infer,
            timestamp_unit: self.timestamp_unit,
            on_error: OnError::Quarantine,
            threads,
            chunk_bytes,
            parquet: ParquetOptions {
                codec: self.compression,
                row_group_bytes,
                ..ParquetOptions::default()
            },
            max_file_bytes: Some(self.target_file_bytes),
            empty_output_ok: true,
            ..ConvertOptions::default()
        };
        (options, part_size)
    }
}

fn is_key_id(text: &str) -> bool {
    text.len() == 36 && text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<ConverterConfig, ConfigError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        ConverterConfig::from_env(&|name| map.get(name).map(|v| v.to_string()))
    }

    const BASE: &[(&str, &str)] = &[
        ("TRACKING_TABLE", "t"),
        ("OUTPUT_BUCKET", "out"),
        (
            "KMS_KEY_ARN",
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ),
    ];

    #[test]
    fn defaults_and_validation() {
        let c = config(BASE).unwrap();
        assert_eq!(c.compression, Codec::Snappy);
        assert_eq!(
            (c.error_bucket.as_str(), c.error_prefix.as_str()),
            ("out", "errors")
        );

        let mut bad = BASE.to_vec();
        bad.push(("COMPRESSION_TYPE", "lzo"));
        bad.push(("KMS_KEY_ARN", "my key"));
        bad.push(("MEMORY_BUDGET_MB", "12"));
        let err = config(&bad).unwrap_err().to_string();
        assert!(
            err.contains("COMPRESSION_TYPE is `lzo`: `lzo` is not supported"),
            "{err}"
        );
        assert!(err.contains("KMS_KEY_ARN is `my key`"), "{err}");
        assert!(err.contains("MEMORY_BUDGET_MB"), "{err}");
        let err = config(&[]).unwrap_err().to_string();
        for v in ["TRACKING_TABLE", "OUTPUT_BUCKET", "KMS_KEY_ARN"] {
            assert!(err.contains(v), "{err}");
        }
    }

    #[test]
    fn memory_budget_sizes_row_groups_and_parts() {
        let mut vars = BASE.to_vec();
        vars.push(("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"));
        vars.push(("THREADS", "1"));
        let (options, part) = config(&vars).unwrap().convert_options();
        assert_eq!(part, MIN_PART_SIZE);
        assert!(
            options.parquet.row_group_bytes <= 160 << 20,
            "{}",
            options.parquet.row_group_bytes
        );
        assert!(options.parquet.row_group_bytes >= 8 << 20);
        assert_eq!(options.on_error, OnError::Quarantine);
        let mut vars = BASE.to_vec();
        vars.push(("MEMORY_BUDGET_MB", "4096"));
        let (options, part) = config(&vars).unwrap().convert_options();
        assert_eq!(
            (part, options.parquet.row_group_bytes),
            (16 << 20, 128 << 20)
        );
    }
}
