variable "name" {
  description = "Table name."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed key for server-side encryption."
  type        = string
}

variable "billing_mode" {
  description = "PAY_PER_REQUEST (default) or PROVISIONED."
  type        = string
  default     = "PAY_PER_REQUEST"
  validation {
    condition     = contains(["PAY_PER_REQUEST", "PROVISIONED"], var.billing_mode)
    error_message = "billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }
}

variable "read_capacity" {
  description = "Read capacity units of the table (PROVISIONED only)."
  type        = number
  default     = 5
}

variable "write_capacity" {
  description = "Write capacity units of the table (PROVISIONED only)."
  type        = number
  default     = 5
}

variable "deletion_protection" {
  description = "Refuse to delete the table."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
