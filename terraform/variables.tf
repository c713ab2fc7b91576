variable "project" {
  description = "Project name, the first part of every resource name."
  type        = string
  default     = "ndjson-parquet"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.project))
    error_message = "project must be lower-case letters, digits and dashes (2-31 characters)."
  }
}

variable "environment" {
  description = "Environment name (dev, staging, prod, ...), the second part of every resource name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.environment))
    error_message = "environment must be lower-case letters and digits (2-12 characters)."
  }
  # The longest bucket name is "<project>-<environment>-manifests-<12-digit account id>", and
  # S3 allows 63 characters: project and environment may have 38 together. (Module s3 checks
  # the names themselves as well.)
  validation {
    condition     = length(var.project) + length(var.environment) <= 38
    error_message = "project and environment have ${length(var.project) + length(var.environment)} characters together; at most 38 fit in the bucket names (<project>-<environment>-manifests-<account id> must stay within S3's 63 characters)."
  }
}

variable "manifest_builder_package" {
  description = "Path of dist/manifest-builder.zip (scripts/package-lambdas.sh)."
  type        = string
}

variable "converter_package" {
  description = "Path of dist/converter.zip (scripts/package-lambdas.sh)."
  type        = string
}

variable "lambda_architecture" {
  description = "Architecture the Lambda packages were built for."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of both functions (the guide's fix 3: INFO in production)."
  type        = string
  default     = "INFO"
  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING, or ERROR."
  }
}

variable "compression_type" {
  description = "Parquet codec (the guide's fix 8): snappy, gzip[:1-9], brotli[:0-11], lz4, zstd[:1-22] or none."
  type        = string
  default     = "snappy"
  validation {
    condition     = can(regex("^(snappy|lz4|none|gzip(:[1-9])?|brotli(:([0-9]|1[01]))?|zstd(:([1-9]|1[0-9]|2[0-2]))?)$", var.compression_type))
    error_message = "compression_type must be snappy, gzip[:1-9], brotli[:0-11], lz4, zstd[:1-22] or none (lzo has no Rust writer)."
  }
}

variable "max_files_per_manifest" {
  description = "A manifest is cut when this many files of a date are pending (1-1000)."
  type        = number
  default     = 500
}

variable "max_bytes_per_manifest" {
  description = "... or when this many bytes are pending."
  type        = number
  default     = 2147483648
}

variable "max_wait_seconds" {
  description = "A manifest that is not full is cut once its oldest batch of arrivals waited this long. Keep it well above the settle time (builder_timeout_seconds + 10): a partial manifest gathers the arrivals of the difference, and below it every settled batch is cut at once into many small manifests."
  type        = number
  default     = 600
}

variable "ttl_days" {
  description = "Days tracking items are kept: more than 14, so that a notification redriven from the arrivals DLQ (14 days at most) finds its marker."
  type        = number
  default     = 30
  validation {
    condition     = var.ttl_days > 14 && var.ttl_days <= 3650
    error_message = "ttl_days must be between 15 and 3650: markers must outlive the dead-letter queue's 14 days."
  }
}

variable "max_attempts" {
  description = "Failed conversions before a version is given up (its marker recorded failed)."
  type        = number
  default     = 3
}

variable "shards" {
  description = "Batch partitions per date: each manifest-builder invocation writes its batch to one (fewer make fuller manifests on quiet days, more spread a busy day's writes)."
  type        = number
  default     = 16
  validation {
    condition     = var.shards >= 1 && var.shards <= 99
    error_message = "shards must be between 1 and 99."
  }
}

variable "reconcile_after_seconds" {
  description = "The sweep looks up the execution of a manifest running this long without change (and fails the manifest if the execution ended without settling it)."
  type        = number
  default     = 600
  validation {
    condition     = var.reconcile_after_seconds >= 60 && var.reconcile_after_seconds <= 86400
    error_message = "reconcile_after_seconds must be between 60 and 86400."
  }
}

variable "date_prefix_pattern" {
  description = "Regex finding the date in object keys (empty: YYYY-MM-DD or dt=YYYY-MM-DD folders)."
  type        = string
  default     = ""
}

variable "schema_uri" {
  description = "Schema file for every conversion (s3://… or a path in the package); empty: inferred per manifest."
  type        = string
  default     = ""
}

variable "timestamp_unit" {
  description = "Unit of inferred timestamps (ms, us, ns)."
  type        = string
  default     = "us"
}

variable "target_file_bytes" {
  description = "Parquet parts roll over at about this size."
  type        = number
  default     = 268435456
}

variable "manifest_prefix" {
  description = "Prefix of manifest JSON in the manifest bucket."
  type        = string
  default     = "manifests"
}

variable "output_prefix" {
  description = "Prefix of the Parquet output (partitions dt=YYYY-MM-DD below it)."
  type        = string
  default     = "parquet"
}

variable "error_prefix" {
  description = "Prefix of rejected-line objects in the output bucket."
  type        = string
  default     = "errors"
}

variable "input_prefix" {
  description = "Only keys under this prefix of the input bucket are notified (empty: all)."
  type        = string
  default     = ""
}

variable "notification_suffixes" {
  description = "Key suffixes the input bucket notifies (non-overlapping; the builder filters exactly)."
  type        = list(string)
  default     = [".ndjson", ".jsonl", ".json", ".gz", ".zst"]
}

variable "manifest_expiration_days" {
  description = "Days manifest JSON is kept."
  type        = number
  default     = 90
}

variable "error_expiration_days" {
  description = "Days rejected-line objects are kept."
  type        = number
  default     = 90
}

variable "queue_message_retention_seconds" {
  description = "How long an unprocessed notification is kept (default 4 days). A message moved to the dead-letter queue keeps its first enqueue time, so this must stay below the DLQ's 14 days."
  type        = number
  default     = 345600
  validation {
    condition     = var.queue_message_retention_seconds >= 60 && var.queue_message_retention_seconds < 1209600
    error_message = "queue_message_retention_seconds must be at least 60 and below 1209600 (14 days, the dead-letter queue's retention)."
  }
}

variable "max_receive_count" {
  description = "Receives of a notification before it moves to the dead-letter queue."
  type        = number
  default     = 5
}

variable "dynamodb_billing_mode" {
  description = "PAY_PER_REQUEST or PROVISIONED."
  type        = string
  default     = "PAY_PER_REQUEST"
}

variable "deletion_protection" {
  description = "Protect the tracking table from deletion."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let terraform destroy delete non-empty buckets (dev only)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of every log group."
  type        = number
  default     = 365
}

variable "builder_memory_mb" {
  description = "Memory of the manifest-builder."
  type        = number
  default     = 256
}

variable "builder_timeout_seconds" {
  description = "Timeout of the manifest-builder."
  type        = number
  default     = 60
}

variable "builder_reserved_concurrency" {
  description = "Reserved concurrency of the manifest-builder (-1: unreserved)."
  type        = number
  default     = -1
}

variable "converter_memory_mb" {
  description = "Memory (and CPU) of the converter Lambda."
  type        = number
  default     = 3008
}

variable "converter_timeout_seconds" {
  description = "Timeout of the converter Lambda."
  type        = number
  default     = 900
}

variable "converter_reserved_concurrency" {
  description = "Reserved concurrency of the converter (-1: unreserved)."
  type        = number
  default     = -1
}

variable "sqs_batch_size" {
  description = "Notifications per manifest-builder invocation."
  type        = number
  default     = 100
}

variable "sqs_batching_window_seconds" {
  description = "How long Lambda gathers notifications before invoking."
  type        = number
  default     = 10
}

variable "sweep_schedule" {
  description = "Schedule of the sweep."
  type        = string
  default     = "rate(1 minute)"
}

variable "enable_batch" {
  description = "Convert large manifests (and Lambda timeouts) on AWS Batch (Fargate)."
  type        = bool
  default     = false
}

variable "lambda_max_bytes" {
  description = "With Batch, manifests larger than this go to Batch."
  type        = number
  default     = 10737418240
}

# The four Batch settings below are required when enable_batch is true: without them the job
# definition would have no image, the execution role a policy on Resource "", and the Fargate
# compute environment no network.
variable "batch_image" {
  description = "Converter image (Dockerfile) in ECR, when enable_batch."
  type        = string
  default     = ""
  validation {
    condition     = !var.enable_batch || var.batch_image != ""
    error_message = "enable_batch is true, so batch_image must name the converter image (built from the repository's Dockerfile, pushed to ECR)."
  }
}

variable "batch_image_repository_arn" {
  description = "ECR repository ARN of batch_image, when enable_batch."
  type        = string
  default     = ""
  validation {
    condition     = !var.enable_batch || can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", var.batch_image_repository_arn))
    error_message = "enable_batch is true, so batch_image_repository_arn must be the ARN of batch_image's ECR repository (arn:aws:ecr:<region>:<account>:repository/<name>)."
  }
}

variable "batch_subnet_ids" {
  description = "Subnets of the Batch tasks, when enable_batch."
  type        = list(string)
  default     = []
  validation {
    condition     = !var.enable_batch || length(var.batch_subnet_ids) > 0
    error_message = "enable_batch is true, so batch_subnet_ids must list at least one subnet for the Fargate tasks."
  }
}

variable "batch_security_group_ids" {
  description = "Security groups of the Batch tasks, when enable_batch."
  type        = list(string)
  default     = []
  validation {
    condition     = !var.enable_batch || length(var.batch_security_group_ids) > 0
    error_message = "enable_batch is true, so batch_security_group_ids must list at least one security group (Fargate requires one; it needs outbound HTTPS)."
  }
}

variable "batch_assign_public_ip" {
  description = "Give Batch tasks a public IP (subnets without NAT or endpoints)."
  type        = bool
  default     = false
}

variable "batch_vcpus" {
  description = "vCPUs per Batch job."
  type        = number
  default     = 4
}

variable "batch_memory_mb" {
  description = "Memory per Batch job (MiB)."
  type        = number
  default     = 8192
}

variable "execution_timeout_seconds" {
  description = "Longest one conversion execution may run, retries and Batch included (default 2 days); it must exceed the Batch job's attempts."
  type        = number
  default     = 172800
  validation {
    condition     = var.execution_timeout_seconds >= 3600 && var.execution_timeout_seconds <= 31536000
    error_message = "execution_timeout_seconds must be between 3600 and 31536000 (one year, the longest a Standard execution may run)."
  }
}

variable "alarm_email" {
  description = "Email subscribed to the alarm topic (empty: subscribe later)."
  type        = string
  default     = ""
}

variable "oldest_message_age_threshold_seconds" {
  description = "Backlog alarm: age of the oldest unprocessed notification."
  type        = number
  default     = 1800
}

variable "rows_rejected_threshold" {
  description = "Rejection alarm: rejected lines per 5 minutes."
  type        = number
  default     = 0
}

variable "catalog_columns" {
  description = "Columns (Hive types) of the Glue/Athena table over the output; empty: no catalog."
  type = list(object({
    name    = string
    type    = string
    comment = optional(string, "")
  }))
  default = []
}

variable "catalog_table_name" {
  description = "Name of the Glue/Athena table."
  type        = string
  default     = "events"
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
