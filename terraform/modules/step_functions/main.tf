# The state machine definition lives in definition.asl.json (rendered here), so that it can be
# linted and checked against what the binaries send and return without Terraform. The overall
# TimeoutSeconds is added here rather than in the template: the local pipeline renders the same
# template with its own variables and its own clock.
locals {
  template = templatefile("${path.module}/definition.asl.json", {
    batch_enabled          = var.enable_batch
    lambda_max_bytes       = var.lambda_max_bytes
    converter_function_arn = var.converter_function_arn
    job_queue_arn          = var.batch_job_queue_arn
    job_definition_arn     = var.batch_job_definition_arn
    batch_timeout_seconds  = var.batch_timeout_seconds
    retry_attempts         = var.retry_attempts
    table_name             = var.tracking_table_name
  })
  definition = jsonencode(merge(jsondecode(local.template), {
    TimeoutSeconds = var.execution_timeout_seconds
  }))
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/vendedlogs/states/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sfn_state_machine" "this" {
  #checkov:skip=CKV_AWS_285:Execution data holds error causes that name object keys; the guide's fix 3 keeps keys out of logs, so errors are logged without execution data.
  name       = var.name
  role_arn   = var.role_arn
  definition = local.definition
  type       = "STANDARD"

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.this.arn}:*"
    include_execution_data = false
    level                  = var.log_level
  }

  tracing_configuration {
    enabled = true
  }

  encryption_configuration {
    type                              = "CUSTOMER_MANAGED_KMS_KEY"
    kms_key_id                        = var.kms_key_arn
    kms_data_key_reuse_period_seconds = 300
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = !var.enable_batch || var.execution_timeout_seconds > var.batch_timeout_seconds
      error_message = "execution_timeout_seconds (${var.execution_timeout_seconds}) must exceed batch_timeout_seconds (${var.batch_timeout_seconds}): an execution must outlive the Batch job it waits for."
    }
  }
}
