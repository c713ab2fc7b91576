variable "name" {
  description = "Queue name; the dead-letter queue is <name>-dlq."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed key encrypting both queues."
  type        = string
}

variable "source_bucket_arn" {
  description = "The only bucket allowed to send to the queue."
  type        = string
}

variable "account_id" {
  description = "Account that owns the source bucket."
  type        = string
}

variable "lambda_timeout_seconds" {
  description = "Timeout of the consuming Lambda; the visibility timeout is six times it."
  type        = number
}

variable "max_receive_count" {
  description = "Receives before a message moves to the dead-letter queue."
  type        = number
  default     = 5
  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "message_retention_seconds" {
  description = "How long an unprocessed notification is kept (default 4 days); below dlq_message_retention_seconds."
  type        = number
  default     = 345600
  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be between 60 and 1209600 (SQS limits)."
  }
}

variable "dlq_message_retention_seconds" {
  description = "How long the dead-letter queue keeps a message, counted from its first enqueue on the source queue (default 14 days, the SQS maximum)."
  type        = number
  default     = 1209600
  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "dlq_message_retention_seconds must be between 60 and 1209600 (SQS limits)."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
