variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "manifest_builder_package" {
  description = "dist/manifest-builder.zip from scripts/package-lambdas.sh."
  type        = string
  default     = "../../../dist/manifest-builder.zip"
}

variable "converter_package" {
  description = "dist/converter.zip from scripts/package-lambdas.sh."
  type        = string
  default     = "../../../dist/converter.zip"
}

variable "alarm_email" {
  description = "On-call address for alarms."
  type        = string
}

variable "batch_image" {
  description = "Converter image in ECR (built from the repository's Dockerfile)."
  type        = string
}

variable "batch_image_repository_arn" {
  description = "ECR repository of batch_image."
  type        = string
}

variable "batch_subnet_ids" {
  description = "Private subnets (with NAT or S3/DynamoDB/ECR/Logs endpoints) for Batch tasks."
  type        = list(string)
}

variable "batch_security_group_ids" {
  description = "Security groups allowing outbound HTTPS for Batch tasks."
  type        = list(string)
}

variable "catalog_columns" {
  description = "Columns of the Athena table (Hive types)."
  type = list(object({
    name    = string
    type    = string
    comment = optional(string, "")
  }))
  default = []
}
