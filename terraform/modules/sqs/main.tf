# The queue S3 notifies, and its dead-letter queue. For an SQS-triggered Lambda the redrive
# policy is what catches poison messages (a Lambda `dead_letter_config` only applies to
# asynchronous invocations): after `max_receive_count` failed receives a message moves here.
# A message moved here keeps its first enqueue time, and its retention counts from that time:
# the DLQ must keep messages longer than the source queue, or they expire on arrival.
resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name}-dlq"
  kms_master_key_id         = var.kms_key_arn
  message_retention_seconds = var.dlq_message_retention_seconds
  tags                      = var.tags
}

resource "aws_sqs_queue" "this" {
  name              = var.name
  kms_master_key_id = var.kms_key_arn
  # AWS's guidance for Lambda sources: six times the function timeout, so a message is not
  # handed to a second invocation while the first may still be working on it.
  visibility_timeout_seconds = 6 * var.lambda_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  receive_wait_time_seconds  = 20
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.message_retention_seconds < var.dlq_message_retention_seconds
      error_message = "message_retention_seconds (${var.message_retention_seconds}) must be below dlq_message_retention_seconds (${var.dlq_message_retention_seconds}): a dead-lettered message keeps its first enqueue time."
    }
  }
}

resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.this.arn]
  })
}

data "aws_iam_policy_document" "queue" {
  statement {
    sid       = "OnlyTheInputBucketSends"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [var.source_bucket_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "this" {
  queue_url = aws_sqs_queue.this.id
  policy    = data.aws_iam_policy_document.queue.json
}
