variable "endpoint" {
  description = "URL of the local AWS (every service on one endpoint)."
  type        = string
}

variable "region" {
  description = "Region of the local AWS."
  type        = string
  default     = "us-east-1"
}

variable "project" {
  description = "First part of every resource name."
  type        = string
  default     = "ndjson-parquet"
}

variable "manifest_builder_package" {
  description = "A zip with a bootstrap (the function runs locally from the binary; its code is never run by the emulator)."
  type        = string
}

variable "converter_package" {
  description = "As manifest_builder_package, for the converter."
  type        = string
}

variable "lambda_architecture" {
  description = "Architecture of the local binaries (arm64 or x86_64)."
  type        = string
  default     = "x86_64"
}

variable "pipelines" {
  description = <<-EOT
    One pipeline per entry; the key is its environment name (lower-case letters and digits).
    Timings are shortened for a local run; what the root module does not expose (the queue's
    visibility timeout is six times builder_timeout_seconds, the sweep's repair delay
    builder_timeout_seconds + 60, the state machine's retries) stays as it deploys.
  EOT
  type = map(object({
    log_level                   = optional(string, "INFO")
    compression_type            = optional(string, "zstd")
    max_files_per_manifest      = optional(number, 100)
    max_bytes_per_manifest      = optional(number, 1073741824)
    max_wait_seconds            = optional(number, 2)
    max_attempts                = optional(number, 3)
    shards                      = optional(number, 16)
    max_receive_count           = optional(number, 5)
    timestamp_unit              = optional(string, "us")
    target_file_bytes           = optional(number, 134217728)
    notification_suffixes       = optional(list(string), [".ndjson", ".jsonl", ".json", ".gz", ".zst"])
    builder_timeout_seconds     = optional(number, 60)
    converter_timeout_seconds   = optional(number, 300)
    converter_memory_mb         = optional(number, 3008)
    sqs_batch_size              = optional(number, 10)
    sqs_batching_window_seconds = optional(number, 0)
    reconcile_after_seconds     = optional(number, 600)
  }))
}
