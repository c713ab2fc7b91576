variable "name" {
  description = "Name prefix; functions are <name>-manifest-builder and <name>-converter."
  type        = string
}

variable "manifest_builder_package" {
  description = "Path of the manifest-builder zip (bootstrap inside), from scripts/package-lambdas.sh."
  type        = string
}

variable "converter_package" {
  description = "Path of the converter zip (bootstrap inside), from scripts/package-lambdas.sh."
  type        = string
}

variable "architecture" {
  description = "Lambda architecture the packages were built for."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "manifest_builder_role_arn" {
  description = "Execution role of the manifest-builder."
  type        = string
}

variable "converter_role_arn" {
  description = "Execution role of the converter."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed key: environment variables, log groups, the sweep DLQ, and what the binaries write."
  type        = string
}

variable "log_level" {
  description = "LOG_LEVEL of both functions."
  type        = string
  default     = "INFO"
  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING, or ERROR."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups."
  type        = number
  default     = 365
}

variable "builder_memory_mb" {
  description = "Memory of the manifest-builder."
  type        = number
  default     = 256
}

variable "builder_timeout_seconds" {
  description = "Timeout of the manifest-builder (the queue's visibility timeout is six times it)."
  type        = number
  default     = 60
  validation {
    condition     = var.builder_timeout_seconds >= 10 && var.builder_timeout_seconds <= 900
    error_message = "builder_timeout_seconds must be between 10 and 900."
  }
}

variable "builder_reserved_concurrency" {
  description = "Reserved concurrency of the manifest-builder (-1: unreserved)."
  type        = number
  default     = -1
}

variable "converter_memory_mb" {
  description = "Memory of the converter (also its CPU: 1769 MB is one vCPU)."
  type        = number
  default     = 3008
  validation {
    condition     = var.converter_memory_mb >= 512 && var.converter_memory_mb <= 10240
    error_message = "converter_memory_mb must be between 512 and 10240."
  }
}

variable "converter_timeout_seconds" {
  description = "Timeout of the converter Lambda."
  type        = number
  default     = 900
  validation {
    condition     = var.converter_timeout_seconds >= 60 && var.converter_timeout_seconds <= 900
    error_message = "converter_timeout_seconds must be between 60 and 900."
  }
}

variable "converter_reserved_concurrency" {
  description = "Reserved concurrency of the converter (-1: unreserved)."
  type        = number
  default     = -1
}

variable "queue_arn" {
  description = "The notification queue feeding the manifest-builder."
  type        = string
}

variable "sqs_batch_size" {
  description = "Messages per manifest-builder invocation."
  type        = number
  default     = 100
}

variable "sqs_batching_window_seconds" {
  description = "How long Lambda gathers messages before invoking."
  type        = number
  default     = 10
}

variable "sqs_maximum_concurrency" {
  description = "Most concurrent manifest-builder invocations from the queue (2-1000)."
  type        = number
  default     = 10
}

variable "sweep_schedule" {
  description = "EventBridge schedule of the sweep."
  type        = string
  default     = "rate(1 minute)"
}

variable "tracking_table_name" {
  description = "TRACKING_TABLE."
  type        = string
}

variable "manifest_bucket_name" {
  description = "MANIFEST_BUCKET."
  type        = string
}

variable "manifest_prefix" {
  description = "MANIFEST_PREFIX."
  type        = string
  default     = "manifests"
}

variable "state_machine_arn" {
  description = "STEP_FUNCTION_ARN."
  type        = string
}

variable "shards" {
  description = "SHARDS: batch partitions per date (a builder invocation writes to one)."
  type        = number
  default     = 16
  validation {
    condition     = var.shards >= 1 && var.shards <= 99
    error_message = "shards must be between 1 and 99."
  }
}

variable "reconcile_after_seconds" {
  description = "RECONCILE_AFTER_SECONDS: the sweep looks up the execution of a manifest running this long without change."
  type        = number
  default     = 600
  validation {
    condition     = var.reconcile_after_seconds >= 60 && var.reconcile_after_seconds <= 86400
    error_message = "reconcile_after_seconds must be between 60 and 86400."
  }
}

variable "batch_job_timeout_seconds" {
  description = "Longest a Batch conversion job can run (0 without Batch): a failed manifest is released only after its converters can no longer be running."
  type        = number
  default     = 0
}

variable "max_files_per_manifest" {
  description = "MAX_FILES_PER_MANIFEST (1-1000)."
  type        = number
  default     = 500
  validation {
    condition     = var.max_files_per_manifest >= 1 && var.max_files_per_manifest <= 1000
    error_message = "max_files_per_manifest must be between 1 and 1000."
  }
}

variable "max_bytes_per_manifest" {
  description = "MAX_BYTES_PER_MANIFEST."
  type        = number
  default     = 2147483648
}

variable "max_wait_seconds" {
  description = "MAX_WAIT_SECONDS: a manifest that is not full is cut once its oldest batch waited this long."
  type        = number
  default     = 600
}

variable "ttl_days" {
  description = "TTL_DAYS of tracking items: more than 14, so that a notification redriven from the DLQ (14 days at most) finds its marker."
  type        = number
  default     = 30
  validation {
    condition     = var.ttl_days > 14 && var.ttl_days <= 3650
    error_message = "ttl_days must be between 15 and 3650: markers must outlive the dead-letter queue's 14 days."
  }
}

variable "max_attempts" {
  description = "MAX_ATTEMPTS: failed conversions before a version is given up (marker `failed`)."
  type        = number
  default     = 3
}

variable "file_suffixes" {
  description = "FILE_SUFFIXES the manifest-builder tracks."
  type        = list(string)
  default     = [".ndjson", ".ndjson.gz", ".ndjson.zst", ".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst"]
}

variable "date_prefix_pattern" {
  description = "DATE_PREFIX_PATTERN (empty: folders named YYYY-MM-DD or dt=YYYY-MM-DD)."
  type        = string
  default     = ""
}

variable "output_bucket_name" {
  description = "OUTPUT_BUCKET (rejected lines go to the same bucket under error_prefix)."
  type        = string
}

variable "output_prefix" {
  description = "OUTPUT_PREFIX of the Parquet parts."
  type        = string
  default     = "parquet"
}

variable "error_prefix" {
  description = "ERROR_PREFIX of the rejected-line objects."
  type        = string
  default     = "errors"
}

variable "compression_type" {
  description = "COMPRESSION_TYPE of the Parquet output (the guide's fix 8)."
  type        = string
  default     = "snappy"
  validation {
    condition     = can(regex("^(snappy|lz4|none|gzip(:[1-9])?|brotli(:([0-9]|1[01]))?|zstd(:([1-9]|1[0-9]|2[0-2]))?)$", var.compression_type))
    error_message = "compression_type must be snappy, gzip[:1-9], brotli[:0-11], lz4, zstd[:1-22] or none (lzo has no Rust writer)."
  }
}

variable "schema_uri" {
  description = "SCHEMA_URI (empty: infer per manifest)."
  type        = string
  default     = ""
}

variable "timestamp_unit" {
  description = "TIMESTAMP_UNIT of inferred timestamps."
  type        = string
  default     = "us"
  validation {
    condition     = contains(["ms", "us", "ns"], var.timestamp_unit)
    error_message = "timestamp_unit must be ms, us or ns."
  }
}

variable "target_file_bytes" {
  description = "TARGET_FILE_BYTES: Parquet parts roll over at about this size."
  type        = number
  default     = 268435456
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
