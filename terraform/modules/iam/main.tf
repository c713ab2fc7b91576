# One role per function, state machine and job (the guide's fix 6). Every statement names its
# resources; the few `"*"` are actions AWS does not scope to resources, each marked
# `# wildcard:` with the reason (a CI check refuses any other).

locals {
  arn_prefix     = "arn:aws:%s:${var.region}:${var.account_id}"
  logs_arn       = format(local.arn_prefix, "logs")
  execution_arns = "${replace(var.state_machine_arn, ":stateMachine:", ":execution:")}:*"
  table_and_indexes = [
    var.table_arn,
    "${var.table_arn}/index/*",
  ]
  output_objects = [
    "${var.output_bucket_arn}/${trim(var.output_prefix, "/")}/*",
    "${var.output_bucket_arn}/${trim(var.error_prefix, "/")}/*",
  ]
  roles = merge(
    {
      manifest-builder = "lambda.amazonaws.com"
      converter        = "lambda.amazonaws.com"
      state-machine    = "states.amazonaws.com"
    },
    var.enable_batch ? {
      batch-job       = "ecs-tasks.amazonaws.com"
      batch-execution = "ecs-tasks.amazonaws.com"
    } : {},
  )
}

data "aws_iam_policy_document" "trust" {
  for_each = local.roles

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [each.value]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.roles

  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.trust[each.key].json
  tags               = var.tags
}

data "aws_iam_policy_document" "manifest_builder" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${local.logs_arn}:log-group:${var.log_group_names["manifest-builder"]}:*"]
  }
  statement {
    sid       = "TrackingTable"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:Scan"]
    resources = local.table_and_indexes
  }
  statement {
    sid       = "WriteManifests"
    actions   = ["s3:PutObject"]
    resources = ["${var.manifest_bucket_arn}/${trim(var.manifest_prefix, "/")}/*"]
  }
  statement {
    sid       = "RemoveFailedManifestOutputs"
    actions   = ["s3:DeleteObject"]
    resources = local.output_objects
  }
  statement {
    sid       = "ListFailedManifestOutputs"
    actions   = ["s3:ListBucket"]
    resources = [var.output_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${trim(var.output_prefix, "/")}/*", "${trim(var.error_prefix, "/")}/*"]
    }
  }
  statement {
    sid       = "StartExecutions"
    actions   = ["states:StartExecution"]
    resources = [var.state_machine_arn]
  }
  statement {
    sid       = "LookUpExecutions"
    actions   = ["states:DescribeExecution"]
    resources = [local.execution_arns]
  }
  statement {
    sid       = "ConsumeArrivals"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
    resources = [var.queue_arn]
  }
  statement {
    sid       = "SweepDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [var.sweep_dlq_arn]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid     = "Tracing"
    actions = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    # wildcard: X-Ray trace actions have no resource-level permissions.
    resources = ["*"]
  }
}

# The converter's permissions, shared by the Lambda and the Batch job.
data "aws_iam_policy_document" "converter" {
  statement {
    sid     = "Logs"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      "${local.logs_arn}:log-group:${var.log_group_names["converter"]}:*",
      "${local.logs_arn}:log-group:${var.log_group_names["batch"]}:*",
    ]
  }
  statement {
    sid       = "TrackingTable"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [var.table_arn]
  }
  statement {
    sid       = "ReadInput"
    actions   = ["s3:GetObject"]
    resources = ["${var.input_bucket_arn}/*"]
  }
  statement {
    sid       = "ReadManifests"
    actions   = ["s3:GetObject"]
    resources = ["${var.manifest_bucket_arn}/${trim(var.manifest_prefix, "/")}/*"]
  }
  statement {
    sid       = "WriteOutput"
    actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:GetObject"]
    resources = local.output_objects
  }
  statement {
    sid       = "ListOwnParts"
    actions   = ["s3:ListBucket"]
    resources = [var.output_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${trim(var.output_prefix, "/")}/*", "${trim(var.error_prefix, "/")}/*", ""]
    }
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid     = "Tracing"
    actions = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    # wildcard: X-Ray trace actions have no resource-level permissions.
    resources = ["*"]
  }
}

data "aws_iam_policy_document" "state_machine" {
  statement {
    sid       = "InvokeConverter"
    actions   = ["lambda:InvokeFunction"]
    resources = [var.converter_function_arn, "${var.converter_function_arn}:*"]
  }
  statement {
    sid       = "MarkManifestFailed"
    actions   = ["dynamodb:UpdateItem"]
    resources = [var.table_arn]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid = "LogDelivery"
    actions = [
      "logs:CreateLogDelivery",
      "logs:GetLogDelivery",
      "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies",
      "logs:DescribeLogGroups",
    ]
    # wildcard: CloudWatch Logs delivery for Step Functions requires "*" (AWS documentation, "IAM policies for logging to CloudWatch Logs").
    resources = ["*"]
  }
  statement {
    sid     = "Tracing"
    actions = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
    # wildcard: X-Ray actions have no resource-level permissions.
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = var.enable_batch ? [1] : []
    content {
      sid       = "SubmitConversionJobs"
      actions   = ["batch:SubmitJob"]
      resources = [var.batch_job_queue_arn, "${var.batch_job_definition_arn_prefix}*"]
    }
  }
  dynamic "statement" {
    for_each = var.enable_batch ? [1] : []
    content {
      sid       = "StopConversionJobs"
      actions   = ["batch:TerminateJob"]
      resources = ["${format(local.arn_prefix, "batch")}:job/*"]
    }
  }
  dynamic "statement" {
    for_each = var.enable_batch ? [1] : []
    content {
      sid     = "WatchConversionJobs"
      actions = ["batch:DescribeJobs"]
      # wildcard: batch:DescribeJobs has no resource-level permissions.
      resources = ["*"]
    }
  }
  dynamic "statement" {
    for_each = var.enable_batch ? [1] : []
    content {
      sid       = "SyncIntegrationRule"
      actions   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
      resources = ["${format(local.arn_prefix, "events")}:rule/StepFunctionsGetEventsForBatchJobsRule"]
    }
  }
}

data "aws_iam_policy_document" "batch_execution" {
  statement {
    sid     = "PullImageToken"
    actions = ["ecr:GetAuthorizationToken"]
    # wildcard: ecr:GetAuthorizationToken has no resource-level permissions.
    resources = ["*"]
  }
  statement {
    sid       = "PullImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = [var.image_repository_arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${local.logs_arn}:log-group:${var.log_group_names["batch"]}:*"]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

locals {
  policies = merge(
    {
      manifest-builder = data.aws_iam_policy_document.manifest_builder.json
      converter        = data.aws_iam_policy_document.converter.json
      state-machine    = data.aws_iam_policy_document.state_machine.json
    },
    var.enable_batch ? {
      batch-job       = data.aws_iam_policy_document.converter.json
      batch-execution = data.aws_iam_policy_document.batch_execution.json
    } : {},
  )
}

resource "aws_iam_role_policy" "this" {
  for_each = local.policies

  name   = "${var.name}-${each.key}"
  role   = aws_iam_role.this[each.key].id
  policy = each.value
}
