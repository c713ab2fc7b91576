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

variable "lambda_architecture" {
  description = "Architecture the packages were built for."
  type        = string
  default     = "arm64"
}

variable "alarm_email" {
  description = "Where alarms go (confirm the subscription email)."
  type        = string
  default     = ""
}
