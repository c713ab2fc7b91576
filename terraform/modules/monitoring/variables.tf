variable "name" {
  description = "Name prefix of the topic, alarms and dashboard."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed key of the alarm topic."
  type        = string
}

variable "alarm_email" {
  description = "Email address subscribed to the alarm topic (empty: none)."
  type        = string
  default     = ""
}

variable "function_names" {
  description = "Lambda function names by role (manifest-builder, converter)."
  type        = map(string)
}

variable "queue_name" {
  description = "The notification queue."
  type        = string
}

variable "dlq_name" {
  description = "The notification queue's dead-letter queue."
  type        = string
}

variable "sweep_dlq_name" {
  description = "The sweep's dead-letter queue."
  type        = string
}

variable "state_machine_arn" {
  description = "The conversion state machine."
  type        = string
}

variable "batch_log_group_name" {
  description = "Log group of the Batch converter (empty: no Batch). Its EMF lines become metrics through metric filters, and the Batch alarms are created."
  type        = string
  default     = ""
}

variable "lambda_error_threshold" {
  description = "Lambda errors per 5 minutes above which the error alarms fire."
  type        = number
  default     = 0
}

variable "oldest_message_age_threshold_seconds" {
  description = "Age of the oldest unprocessed notification above which the backlog alarm fires."
  type        = number
  default     = 1800
}

variable "rows_rejected_threshold" {
  description = "Rejected lines per 5 minutes above which the rejection alarms fire."
  type        = number
  default     = 0
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
