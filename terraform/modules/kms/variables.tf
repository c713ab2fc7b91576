variable "name" {
  description = "Name of the pipeline; the key alias is alias/<name>."
  type        = string
}

variable "deletion_window_in_days" {
  description = "Days between scheduling the key's deletion and its deletion."
  type        = number
  default     = 30
  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
