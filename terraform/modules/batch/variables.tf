variable "name" {
  description = "Name of the compute environment, queue and job definition."
  type        = string
}

variable "image" {
  description = "Converter image (built from the repository's Dockerfile)."
  type        = string
  validation {
    condition     = var.image != ""
    error_message = "image must name the converter image (in ECR)."
  }
}

variable "job_role_arn" {
  description = "Role the converter runs as (S3, DynamoDB, KMS)."
  type        = string
}

variable "execution_role_arn" {
  description = "Role ECS uses to pull the image and write logs."
  type        = string
}

variable "converter_environment" {
  description = "The converter's environment (module lambda's converter_environment)."
  type        = map(string)
}

variable "kms_key_arn" {
  description = "Customer-managed key of the job's log group."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the Fargate tasks."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must list at least one subnet: a Fargate compute environment needs them."
  }
}

variable "security_group_ids" {
  description = "Security groups of the Fargate tasks (outbound HTTPS to AWS APIs)."
  type        = list(string)
  validation {
    condition     = length(var.security_group_ids) > 0
    error_message = "security_group_ids must list at least one security group: a Fargate compute environment needs them."
  }
}

variable "assign_public_ip" {
  description = "Give tasks a public IP (subnets without NAT or VPC endpoints need it)."
  type        = bool
  default     = false
}

variable "vcpus" {
  description = "vCPUs per job (Fargate sizes)."
  type        = number
  default     = 4
}

variable "memory_mb" {
  description = "Memory per job in MiB (valid for the vCPU count on Fargate)."
  type        = number
  default     = 8192
}

variable "max_vcpus" {
  description = "Most vCPUs the compute environment runs at once."
  type        = number
  default     = 64
}

variable "retry_attempts" {
  description = "Attempts per job (retried only on exit status 75)."
  type        = number
  default     = 3
}

variable "attempt_timeout_seconds" {
  description = "Longest one attempt may run."
  type        = number
  default     = 14400
}

variable "attempt_start_allowance_seconds" {
  description = "Time allowed per attempt to wait in the queue and start (not counted by attempt_timeout_seconds); part of job_timeout_seconds."
  type        = number
  default     = 1800
}

variable "log_retention_days" {
  description = "Retention of the job log group."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
