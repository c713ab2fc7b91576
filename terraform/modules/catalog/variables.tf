variable "database_name" {
  description = "Glue database (letters, digits and underscores)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9_]+$", var.database_name))
    error_message = "database_name must be lower-case letters, digits and underscores."
  }
}

variable "table_name" {
  description = "Glue table over the Parquet output."
  type        = string
  default     = "events"
}

variable "output_bucket_name" {
  description = "Bucket of the Parquet output."
  type        = string
}

variable "output_prefix" {
  description = "Prefix of the Parquet output (partitions are <prefix>/dt=YYYY-MM-DD/)."
  type        = string
}

variable "compression_type" {
  description = "Codec the converter writes (recorded on the table for readers)."
  type        = string
  default     = "snappy"
}

variable "first_date" {
  description = "Earliest dt partition Athena projects (YYYY-MM-DD)."
  type        = string
  default     = "2024-01-01"
  validation {
    condition     = can(regex("^\\d{4}-\\d{2}-\\d{2}$", var.first_date))
    error_message = "first_date must be YYYY-MM-DD."
  }
}

variable "columns" {
  description = "Columns of the table in Hive types, e.g. the converter schema's fields (struct<...>, array<...>, timestamp, bigint, double, string, boolean)."
  type = list(object({
    name    = string
    type    = string
    comment = optional(string, "")
  }))
}
