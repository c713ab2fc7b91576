data "aws_region" "current" {}

# Every alarm notifies this encrypted topic when it fires and when it recovers (the guide's
# fix 9): an alarm without actions is silent, and a CI check refuses one.
resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  actions   = [aws_sns_topic.alarms.arn]
  namespace = "NdjsonParquet"

  function_alarms = merge(
    { for name, function in var.function_names : "${name}-errors" => {
      function  = function
      metric    = "Errors"
      threshold = var.lambda_error_threshold
      what      = "${function} reported errors"
    } },
    { for name, function in var.function_names : "${name}-throttles" => {
      function  = function
      metric    = "Throttles"
      threshold = 0
      what      = "${function} was throttled"
    } },
  )

  dead_letter_queues = {
    arrivals-dlq = var.dlq_name
    sweep-dlq    = var.sweep_dlq_name
  }

  batch = var.batch_log_group_name != ""

  # Counts the binaries emit (EMF, namespace NdjsonParquet, dimension Function).
  pipeline_alarms = merge(local.lambda_pipeline_alarms, local.batch ? local.batch_pipeline_alarms : {})
  lambda_pipeline_alarms = {
    rows-rejected = {
      function  = "converter"
      metric    = "RowsRejected"
      threshold = var.rows_rejected_threshold
      what      = "the converter rejected lines (they are in the error prefix with their reasons)"
    }
    # Tracking version 2 (docs/TRACKING.md): the metric names of manifest-builder/src/batching.
    # Versions given up at MAX_ATTEMPTS are recorded by the converter (Ledger::fail): their
    # alarm comes with the converter's count of them.
    unreadable-items = {
      function  = "manifest-builder"
      metric    = "UnreadableItems"
      threshold = 0
      what      = "the manifest-builder skipped tracking items it could not parse (logged with their keys); an unreadable batch stops its shard's manifests until it is repaired"
    }
    manifests-reconciled = {
      function  = "manifest-builder"
      metric    = "ManifestsReconciled"
      threshold = 0
      what      = "the sweep failed manifests whose execution ended without settling them (aborted, timed out, or MarkFailed itself failed); their versions are converted again after the release"
    }
    manifests-failed = {
      function  = "converter"
      metric    = "ManifestsFailed"
      threshold = 0
      what      = "a manifest failed on an unreadable or missing file"
    }
  }
  # The same counts from the Batch converter, through the metric filters below.
  batch_pipeline_alarms = {
    rows-rejected-batch = {
      function  = "converter-batch"
      metric    = "RowsRejected"
      threshold = var.rows_rejected_threshold
      what      = "the Batch converter rejected lines (they are in the error prefix with their reasons)"
    }
    manifests-failed-batch = {
      function  = "converter-batch"
      metric    = "ManifestsFailed"
      threshold = 0
      what      = "a manifest failed on Batch on an unreadable or missing file"
    }
  }

  # Outside Lambda nothing turns EMF lines into metrics: the Batch job's lines reach its log
  # group through the awslogs driver as plain JSON. One metric filter per metric rebuilds what
  # EMF would have published (same namespace, name and unit; dimension Function from the line).
  batch_metrics = {
    RowsWritten        = "Count"
    RowsRejected       = "Count"
    ManifestsCompleted = "Count"
    ManifestsFailed    = "Count"
    ManifestsRetryable = "Count"
    BytesIn            = "Bytes"
    BytesOut           = "Bytes"
    Throughput         = "Megabytes/Second"
  }
}

resource "aws_cloudwatch_log_metric_filter" "batch" {
  for_each = local.batch ? local.batch_metrics : {}

  name           = "${var.name}-batch-${each.key}"
  log_group_name = var.batch_log_group_name
  pattern        = "{ ($._aws.CloudWatchMetrics[0].Namespace = \"${local.namespace}\") && ($.${each.key} >= 0) }"

  metric_transformation {
    namespace  = local.namespace
    name       = each.key
    value      = "$.${each.key}"
    unit       = each.value
    dimensions = { Function = "$.Function" }
  }
}

resource "aws_cloudwatch_metric_alarm" "function" {
  for_each = local.function_alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = "Fires when ${each.value.what}."
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = each.value.function }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each = local.dead_letter_queues

  alarm_name          = "${var.name}-${each.key}-not-empty"
  alarm_description   = "Fires when ${each.value} holds a message: something the pipeline could not process. Inspect, fix, then redrive it."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "oldest_arrival" {
  alarm_name          = "${var.name}-arrivals-backlog"
  alarm_description   = "Fires when the oldest S3 notification waited more than ${var.oldest_message_age_threshold_seconds} s: the manifest-builder is not keeping up."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = var.queue_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.oldest_message_age_threshold_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "executions" {
  for_each = {
    executions-failed    = "ExecutionsFailed"
    executions-timed-out = "ExecutionsTimedOut"
    executions-aborted   = "ExecutionsAborted"
  }

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = "Fires on ${each.value} of the conversion state machine; the manifest is marked failed (by MarkFailed, or by the sweep's reconciliation) and released for its versions to be converted again."
  namespace           = "AWS/States"
  metric_name         = each.value
  dimensions          = { StateMachineArn = var.state_machine_arn }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "pipeline" {
  for_each = local.pipeline_alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = "Fires when ${each.value.what}."
  namespace           = local.namespace
  metric_name         = each.value.metric
  dimensions          = { Function = each.value.function }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title   = "Throughput (MB/s of NDJSON)"
          region  = data.aws_region.current.id
          stat    = "Average"
          period  = 300
          metrics = [["NdjsonParquet", "Throughput", "Function", "converter"], ["NdjsonParquet", "Throughput", "Function", "converter-batch"]]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title  = "Rows written and rejected"
          region = data.aws_region.current.id
          stat   = "Sum"
          period = 300
          metrics = [
            ["NdjsonParquet", "RowsWritten", "Function", "converter"],
            ["NdjsonParquet", "RowsRejected", "Function", "converter"],
            ["NdjsonParquet", "RowsWritten", "Function", "converter-batch"],
            ["NdjsonParquet", "RowsRejected", "Function", "converter-batch"],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title  = "Backlog"
          region = data.aws_region.current.id
          stat   = "Maximum"
          period = 60
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.queue_name],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", var.queue_name, { yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "Versions and manifests"
          region = data.aws_region.current.id
          stat   = "Sum"
          period = 300
          metrics = [
            ["NdjsonParquet", "VersionsTracked", "Function", "manifest-builder"],
            ["NdjsonParquet", "DuplicateDeliveries", "Function", "manifest-builder"],
            ["NdjsonParquet", "ManifestsCut", "Function", "manifest-builder"],
            ["NdjsonParquet", "ManifestsStarted", "Function", "manifest-builder"],
            ["NdjsonParquet", "ManifestsReconciled", "Function", "manifest-builder"],
            ["NdjsonParquet", "ManifestsReleased", "Function", "manifest-builder"],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 24, height = 6
        properties = {
          title  = "Failures"
          region = data.aws_region.current.id
          stat   = "Sum"
          period = 300
          metrics = concat(
            [for name, function in var.function_names : ["AWS/Lambda", "Errors", "FunctionName", function]],
            [
              ["AWS/States", "ExecutionsFailed", "StateMachineArn", var.state_machine_arn],
              ["AWS/States", "ExecutionsTimedOut", "StateMachineArn", var.state_machine_arn],
              ["AWS/States", "ExecutionsAborted", "StateMachineArn", var.state_machine_arn],
              ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.dlq_name],
              ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.sweep_dlq_name],
            ],
          )
        }
      },
    ]
  })
}
