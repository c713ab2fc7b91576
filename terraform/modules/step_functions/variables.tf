variable "name" {
  description = "State machine name."
  type        = string
}

variable "role_arn" {
  description = "Execution role of the state machine."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed key for the state machine's data and its log group."
  type        = string
}

variable "converter_function_arn" {
  description = "The converter Lambda."
  type        = string
}

variable "tracking_table_name" {
  description = "Tracking table whose manifest item the Catch marks failed."
  type        = string
}

variable "enable_batch" {
  description = "Route manifests larger than lambda_max_bytes (and Lambda timeouts) to AWS Batch."
  type        = bool
  default     = false
}

variable "lambda_max_bytes" {
  description = "Largest manifest (total_bytes) sent to the converter Lambda when Batch is enabled."
  type        = number
  default     = 10737418240
}

variable "batch_job_queue_arn" {
  description = "Batch job queue (when enable_batch)."
  type        = string
  default     = ""
}

variable "batch_job_definition_arn" {
  description = "Batch job definition (when enable_batch)."
  type        = string
  default     = ""
}

variable "batch_timeout_seconds" {
  description = "Longest a Batch conversion may take, every attempt of the job included (module batch's job_timeout_seconds); the state stops the job after it."
  type        = number
  default     = 48600
}

variable "execution_timeout_seconds" {
  description = "Longest one execution may run (the definition's TimeoutSeconds): Lambda retries, Batch and marking the manifest failed included."
  type        = number
  default     = 172800
  validation {
    condition     = var.execution_timeout_seconds >= 60 && var.execution_timeout_seconds <= 31536000
    error_message = "execution_timeout_seconds must be between 60 and 31536000 (one year, the longest a Standard execution may run)."
  }
}

variable "retry_attempts" {
  description = "Retries of a retryable converter error (exponential backoff with jitter)."
  type        = number
  default     = 4
}

variable "log_level" {
  description = "Execution log level (ALL, ERROR, FATAL, OFF)."
  type        = string
  default     = "ERROR"
  validation {
    condition     = contains(["ALL", "ERROR", "FATAL", "OFF"], var.log_level)
    error_message = "log_level must be ALL, ERROR, FATAL or OFF."
  }
}

variable "log_retention_days" {
  description = "Retention of the execution log group."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
