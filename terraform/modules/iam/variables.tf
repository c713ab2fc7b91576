variable "name" {
  description = "Name prefix; roles are <name>-<role>."
  type        = string
}

variable "account_id" {
  description = "Account of every resource."
  type        = string
}

variable "region" {
  description = "Region of every resource."
  type        = string
}

variable "kms_key_arn" {
  description = "The pipeline's key."
  type        = string
}

variable "table_arn" {
  description = "The tracking table."
  type        = string
}

variable "input_bucket_arn" {
  description = "Where NDJSON lands."
  type        = string
}

variable "output_bucket_arn" {
  description = "Where Parquet and rejected lines go."
  type        = string
}

variable "manifest_bucket_arn" {
  description = "Where manifest JSON goes."
  type        = string
}

variable "manifest_prefix" {
  description = "Prefix of manifest JSON."
  type        = string
}

variable "output_prefix" {
  description = "Prefix of Parquet parts."
  type        = string
}

variable "error_prefix" {
  description = "Prefix of rejected-line objects."
  type        = string
}

variable "queue_arn" {
  description = "The notification queue."
  type        = string
}

variable "sweep_dlq_arn" {
  description = "Dead-letter queue of the sweep."
  type        = string
}

variable "state_machine_arn" {
  description = "The state machine (computed from its name, to avoid a dependency cycle)."
  type        = string
}

variable "converter_function_arn" {
  description = "The converter Lambda (computed from its name)."
  type        = string
}

variable "log_group_names" {
  description = "Log group names by writer: manifest-builder, converter, batch."
  type        = map(string)
}

variable "enable_batch" {
  description = "Create the Batch job and execution roles and let the state machine submit jobs."
  type        = bool
  default     = false
}

variable "batch_job_queue_arn" {
  description = "Batch job queue (when enable_batch)."
  type        = string
  default     = ""
}

variable "batch_job_definition_arn_prefix" {
  description = "Batch job definition ARN without revision (when enable_batch)."
  type        = string
  default     = ""
}

variable "image_repository_arn" {
  description = "ECR repository of the converter image (when enable_batch)."
  type        = string
  default     = ""
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
