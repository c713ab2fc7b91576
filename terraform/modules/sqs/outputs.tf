output "queue_arn" {
  description = "ARN of the notification queue."
  value       = aws_sqs_queue.this.arn
}

output "queue_name" {
  description = "Name of the notification queue."
  value       = aws_sqs_queue.this.name
}

output "queue_url" {
  description = "URL of the notification queue."
  value       = aws_sqs_queue.this.id
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_name" {
  description = "Name of the dead-letter queue."
  value       = aws_sqs_queue.dlq.name
}

output "queue_policy_id" {
  description = "Id of the queue policy (S3 notifications must be created after it)."
  value       = aws_sqs_queue_policy.this.id
}
