output "input_bucket" {
  description = "Upload NDJSON here."
  value       = module.pipeline.input_bucket
}

output "output_bucket" {
  description = "Parquet lands here."
  value       = module.pipeline.output_bucket
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.pipeline.dashboard_name
}

output "dead_letter_queues" {
  description = "Dead-letter queues to watch."
  value       = module.pipeline.dead_letter_queues
}

output "alarm_topic_arn" {
  description = "Alarm topic."
  value       = module.pipeline.alarm_topic_arn
}
