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
