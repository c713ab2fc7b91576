output "job_queue_arn" {
  description = "ARN of the job queue."
  value       = aws_batch_job_queue.this.arn
}

output "job_definition_arn" {
  description = "ARN of the job definition."
  value       = aws_batch_job_definition.this.arn
}

output "log_group_name" {
  description = "Log group of the jobs."
  value       = aws_cloudwatch_log_group.this.name
}

output "job_timeout_seconds" {
  description = "Longest a job may take from submission to its end: every attempt (retry_attempts) at attempt_timeout_seconds, plus attempt_start_allowance_seconds for each to start."
  value       = var.retry_attempts * (var.attempt_timeout_seconds + var.attempt_start_allowance_seconds)
}
