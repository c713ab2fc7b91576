locals {
  # Clocks of the functions differ by far less than this; the settle time adds it to the
  # builder's timeout.
  clock_skew_seconds = 10

  # Longest any converter of a manifest can still be running after its execution ended (a Lambda
  # invocation outlives an aborted or timed-out execution; so may a Batch job being stopped):
  # the sweep releases a failed manifest (removes its outputs, hands its versions to a retry
  # batch) only after this, so that no converter writes to a prefix the sweep cleared.
  release_after_seconds = max(var.converter_timeout_seconds, var.batch_job_timeout_seconds) + 60

  # The environment of each binary, in one place. Names match what the binaries read
  # (manifest-builder/src/config.rs, converter/src/manifest_run/config.rs); a CI check compares them.
  builder_environment = merge(
    {
      TRACKING_TABLE         = var.tracking_table_name
      MANIFEST_BUCKET        = var.manifest_bucket_name
      MANIFEST_PREFIX        = var.manifest_prefix
      STEP_FUNCTION_ARN      = var.state_machine_arn
      SHARDS                 = tostring(var.shards)
      MAX_FILES_PER_MANIFEST = tostring(var.max_files_per_manifest)
      MAX_BYTES_PER_MANIFEST = tostring(var.max_bytes_per_manifest)
      MAX_WAIT_SECONDS       = tostring(var.max_wait_seconds)
      TTL_DAYS               = tostring(var.ttl_days)
      LOG_LEVEL              = var.log_level
      FILE_SUFFIXES          = join(",", var.file_suffixes)
      MAX_ATTEMPTS           = tostring(var.max_attempts)
      KMS_KEY_ARN            = var.kms_key_arn
      # A batch is cut only once every builder that could still be writing its markers is
      # gone: longer than any invocation, plus clock skew.
      SETTLE_SECONDS = tostring(var.builder_timeout_seconds + local.clock_skew_seconds)
      # The sweep never starts a manifest a builder is still starting: longer than any invocation.
      REPAIR_AFTER_SECONDS    = tostring(var.builder_timeout_seconds + 60)
      RECONCILE_AFTER_SECONDS = tostring(var.reconcile_after_seconds)
      RELEASE_AFTER_SECONDS   = tostring(local.release_after_seconds)
      # Where the converter writes: the sweep removes a failed manifest's leftovers there
      # before its versions are converted again.
      OUTPUT_BUCKET = var.output_bucket_name
      OUTPUT_PREFIX = var.output_prefix
      ERROR_BUCKET  = var.output_bucket_name
      ERROR_PREFIX  = var.error_prefix
    },
    var.date_prefix_pattern == "" ? {} : { DATE_PREFIX_PATTERN = var.date_prefix_pattern },
  )

  converter_environment = merge(
    {
      TRACKING_TABLE    = var.tracking_table_name
      OUTPUT_BUCKET     = var.output_bucket_name
      OUTPUT_PREFIX     = var.output_prefix
      ERROR_BUCKET      = var.output_bucket_name
      ERROR_PREFIX      = var.error_prefix
      KMS_KEY_ARN       = var.kms_key_arn
      COMPRESSION_TYPE  = var.compression_type
      TARGET_FILE_BYTES = tostring(var.target_file_bytes)
      TIMESTAMP_UNIT    = var.timestamp_unit
      LOG_LEVEL         = var.log_level
    },
    var.schema_uri == "" ? {} : { SCHEMA_URI = var.schema_uri },
  )

  functions = {
    manifest-builder = {
      package     = var.manifest_builder_package
      role_arn    = var.manifest_builder_role_arn
      memory      = var.builder_memory_mb
      timeout     = var.builder_timeout_seconds
      concurrency = var.builder_reserved_concurrency
      environment = local.builder_environment
    }
    converter = {
      package     = var.converter_package
      role_arn    = var.converter_role_arn
      memory      = var.converter_memory_mb
      timeout     = var.converter_timeout_seconds
      concurrency = var.converter_reserved_concurrency
      environment = local.converter_environment
    }
  }
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.functions

  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# Dead-letter queue of the asynchronously invoked sweep (EventBridge). It does nothing for
# the SQS trigger: SQS-triggered invocations are synchronous, and the source queue's redrive
# policy is what catches their poison messages.
resource "aws_sqs_queue" "sweep_dlq" {
  name                      = "${var.name}-sweep-dlq"
  kms_master_key_id         = var.kms_key_arn
  message_retention_seconds = 1209600
  tags                      = var.tags
}

resource "aws_lambda_function" "this" {
  for_each = local.functions

  #checkov:skip=CKV_AWS_117:The functions only call AWS APIs over TLS; a VPC would add NAT cost and no isolation the IAM policies do not already give.
  #checkov:skip=CKV_AWS_272:Packages are built and uploaded by this repository's CI; code signing is the owner's release-process decision.
  #checkov:skip=CKV_AWS_116:The converter is invoked synchronously by Step Functions, whose Retry/Catch handle failures; the manifest-builder has its DLQ below (dynamic).
  function_name                  = "${var.name}-${each.key}"
  role                           = each.value.role_arn
  filename                       = each.value.package
  source_code_hash               = filebase64sha256(each.value.package)
  handler                        = "bootstrap"
  runtime                        = "provided.al2023"
  architectures                  = [var.architecture]
  memory_size                    = each.value.memory
  timeout                        = each.value.timeout
  reserved_concurrent_executions = each.value.concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = each.value.environment
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this[each.key].name
  }

  tracing_config {
    mode = "Active"
  }

  dynamic "dead_letter_config" {
    for_each = each.key == "manifest-builder" ? [1] : []
    content {
      target_arn = aws_sqs_queue.sweep_dlq.arn
    }
  }

  tags = var.tags
}

resource "aws_lambda_event_source_mapping" "arrivals" {
  event_source_arn                   = var.queue_arn
  function_name                      = aws_lambda_function.this["manifest-builder"].arn
  batch_size                         = var.sqs_batch_size
  maximum_batching_window_in_seconds = var.sqs_batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.sqs_maximum_concurrency
  }
}

resource "aws_cloudwatch_event_rule" "sweep" {
  name                = "${var.name}-sweep"
  description         = "Starts, reconciles and releases open manifests, and cuts shards whose batches waited MAX_WAIT_SECONDS."
  schedule_expression = var.sweep_schedule
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "sweep" {
  rule  = aws_cloudwatch_event_rule.sweep.name
  arn   = aws_lambda_function.this["manifest-builder"].arn
  input = jsonencode({ action = "sweep" })
}

resource "aws_lambda_permission" "sweep" {
  statement_id  = "AllowSweepSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["manifest-builder"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.sweep.arn
}
