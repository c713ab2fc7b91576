# One role per function, state machine and job (the guide's fix 6). Every statement names its
# resources; the few `"*"` are actions AWS does not scope to resources, each marked
# `# wildcard:` with the reason (a CI check refuses any other).

locals {
  arn_prefix     = "arn:aws:%s:${var.region}:${var.account_id}"
  logs_arn       = format(local.arn_prefix, "logs")
  execution_arns = "${replace(var.state_machine_arn, ":stateMachine:", ":execution:")}:*"
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
  # Exactly the requests DynamoLedger (shared/src/aws/ledger.rs) makes for track, cut and the
  # sweep, on the table itself (version 2 has no index). PutItem: batches, markers, the shard
  # registry, open entries, cursors (skip, and inside the cut transaction with the manifest),
  # retry batches (inside the release transaction); GetItem: cursors, manifests, and a marker
  # that refused an insert when the endpoint does not return it; UpdateItem: starting ->
  # running, and the manifest's failed/released moves inside fail and release transactions
  # (TransactWriteItems is authorized as the actions it holds); DeleteItem: open entries;
  # Query: batches, the shard registry, open entries; BatchGetItem: markers at a cut.
  statement {
    sid = "Ledger"
    actions = [
      "dynamodb:PutItem",
      "dynamodb:GetItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
      "dynamodb:BatchGetItem",
    ]
    resources = [var.table_arn]
  }
  # PutObject: the manifest JSON; DeleteObject: the JSON of a cut that lost the race.
  statement {
    sid       = "WriteManifests"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.manifest_bucket_arn}/${trim(var.manifest_prefix, "/")}/*"]
  }
  # The sweep removes what a failed manifest's converters left before it releases it.
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
  # The event-source mapping polls with the function's role: GetQueueAttributes and
  # ChangeMessageVisibility are Lambda's poller's own calls (AWS documents all four).
  statement {
    sid       = "ConsumeArrivals"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
    resources = [var.queue_arn]
  }
  # The asynchronously invoked sweep's on-failure destination: Lambda sends with this role.
  statement {
    sid       = "SweepDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [var.sweep_dlq_arn]
  }
  # SSE-KMS writes (manifest JSON) need GenerateDataKey, reads of the encrypted queue and
  # table Decrypt; nothing calls Encrypt directly.
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid     = "Tracing"
    actions = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    # wildcard: X-Ray trace actions have no resource-level permissions.
    resources = ["*"]
  }
}

# The converter's permissions, shared by the Lambda and the Batch job role (`batch-job`, the
# role the container runs as; `batch-execution` only pulls the image and writes logs).
data "aws_iam_policy_document" "converter" {
  statement {
    sid     = "Logs"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    # The Batch log group too: this policy is also the Batch job role's.
    resources = [
      "${local.logs_arn}:log-group:${var.log_group_names["converter"]}:*",
      "${local.logs_arn}:log-group:${var.log_group_names["batch"]}:*",
    ]
  }
  # GetItem: the manifest; UpdateItem: complete, supersede a marker, and fail (a transaction
  # of updates: the manifest and its poison markers); DeleteItem: its open entry once settled.
  statement {
    sid       = "TrackingTable"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    resources = [var.table_arn]
  }
  # GetObjectVersion: in a versioned input bucket the converter reads exactly the version a
  # manifest names (GetObject with versionId), so a later overwrite cannot change what it reads.
  statement {
    sid       = "ReadInput"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${var.input_bucket_arn}/*"]
  }
  # Without s3:ListBucket S3 answers a GetObject of a missing key with 403 AccessDenied, which
  # cannot be told from a real denial. With it, a missing object answers 404 NoSuchKey, which
  # the converter records as that version superseded (deleted before conversion), not as a
  # permissions problem to retry. No s3:prefix condition: the list check S3 makes for a missing key carries no
  # prefix, so a conditioned grant would never turn the 403 into a 404.
  statement {
    sid       = "MissingInputIsNotFound"
    actions   = ["s3:ListBucket"]
    resources = [var.input_bucket_arn]
  }
  statement {
    sid       = "ReadManifests"
    actions   = ["s3:GetObject"]
    resources = ["${var.manifest_bucket_arn}/${trim(var.manifest_prefix, "/")}/*"]
  }
  # As for the input: a missing manifest answers 404 NoSuchKey, not 403.
  statement {
    sid       = "MissingManifestIsNotFound"
    actions   = ["s3:ListBucket"]
    resources = [var.manifest_bucket_arn]
    # No s3:prefix condition: the list check S3 makes for a missing key carries no prefix, so
    # a conditioned grant would never turn the 403 into a 404. The bucket holds manifests only.
  }
  statement {
    sid = "WriteOutput"
    # DeleteObject: parts an earlier attempt left are removed before completion; abort: a
    # multipart part that is not committed (crash, failure) is aborted.
    actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = local.output_objects
  }
  # Its own prefixes only: never the whole bucket (an empty s3:prefix would allow that). The
  # start-up check lists "<output_prefix>/" with max-keys 1, which "<output_prefix>/*" covers.
  statement {
    sid       = "ListOwnParts"
    actions   = ["s3:ListBucket"]
    resources = [var.output_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${trim(var.output_prefix, "/")}/*", "${trim(var.error_prefix, "/")}/*"]
    }
  }
  # SSE-KMS: GenerateDataKey to write, Decrypt to read and to complete multipart uploads;
  # DescribeKey is the start-up check. Nothing calls Encrypt directly.
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
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
    sid     = "InvokeConverter"
    actions = ["lambda:InvokeFunction"]
    # The state machine invokes the unqualified function (no version or alias).
    resources = [var.converter_function_arn]
  }
  # MarkFailed: the manifest item `M#<id>`, starting|running -> failed.
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
  # No KMS permission: CloudWatch Logs encrypts the job's log group itself (key policy), and
  # the image and its layers are not encrypted with the pipeline's key.
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${local.logs_arn}:log-group:${var.log_group_names["batch"]}:*"]
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
