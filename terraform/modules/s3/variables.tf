variable "input_bucket_name" {
  description = "Bucket where NDJSON lands."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.input_bucket_name))
    error_message = "The input bucket name \"${var.input_bucket_name}\" has ${length(var.input_bucket_name)} characters; S3 allows 3 to 63 lower-case letters, digits, dots and dashes. Shorten project or environment."
  }
}

variable "output_bucket_name" {
  description = "Bucket for Parquet (and rejected lines under error_prefix)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.output_bucket_name))
    error_message = "The output bucket name \"${var.output_bucket_name}\" has ${length(var.output_bucket_name)} characters; S3 allows 3 to 63 lower-case letters, digits, dots and dashes. Shorten project or environment."
  }
}

variable "manifest_bucket_name" {
  description = "Bucket for manifest JSON."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.manifest_bucket_name))
    error_message = "The manifest bucket name \"${var.manifest_bucket_name}\" has ${length(var.manifest_bucket_name)} characters; S3 allows 3 to 63 lower-case letters, digits, dots and dashes. Shorten project or environment."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed key for default SSE-KMS encryption of every bucket."
  type        = string
}

variable "queue_arn" {
  description = "SQS queue receiving the input bucket's ObjectCreated notifications."
  type        = string
}

variable "queue_policy_id" {
  description = "Id of the queue policy that lets the input bucket send; notifications are created after it."
  type        = string
}

variable "notification_suffixes" {
  description = "Key suffixes that notify the queue (non-overlapping, as S3 requires)."
  type        = list(string)
  default     = [".ndjson", ".jsonl", ".json", ".gz", ".zst"]
}

variable "input_prefix" {
  description = "Only keys under this prefix notify (empty: all)."
  type        = string
  default     = ""
}

variable "error_prefix" {
  description = "Prefix of rejected lines in the output bucket."
  type        = string
  default     = "errors"
}

variable "manifest_expiration_days" {
  description = "Days after which manifest JSON expires."
  type        = number
  default     = 90
  validation {
    condition     = var.manifest_expiration_days >= 1
    error_message = "manifest_expiration_days must be at least 1."
  }
}

variable "error_expiration_days" {
  description = "Days after which rejected-line objects expire."
  type        = number
  default     = 90
  validation {
    condition     = var.error_expiration_days >= 1
    error_message = "error_expiration_days must be at least 1."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which unfinished multipart uploads are aborted."
  type        = number
  default     = 1
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which overwritten object versions expire."
  type        = number
  default     = 30
}

variable "force_destroy" {
  description = "Whether terraform destroy may delete non-empty buckets (dev only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
