output "function_arns" {
  description = "Function ARNs by name (manifest-builder, converter)."
  value       = { for name, function in aws_lambda_function.this : name => function.arn }
}

output "function_names" {
  description = "Function names by name (manifest-builder, converter)."
  value       = { for name, function in aws_lambda_function.this : name => function.function_name }
}

output "log_group_names" {
  description = "Log groups by function."
  value       = { for name, group in aws_cloudwatch_log_group.this : name => group.name }
}

output "sweep_dlq_arn" {
  description = "Dead-letter queue of the scheduled sweep."
  value       = aws_sqs_queue.sweep_dlq.arn
}

output "sweep_dlq_name" {
  description = "Name of the sweep's dead-letter queue."
  value       = aws_sqs_queue.sweep_dlq.name
}

output "converter_environment" {
  description = "The converter's environment, for the AWS Batch job definition."
  value       = local.converter_environment
}
