output "input_bucket" {
  description = "Upload NDJSON here (under YYYY-MM-DD/ or dt=YYYY-MM-DD/)."
  value       = module.s3.bucket_names["input"]
}

output "output_bucket" {
  description = "Parquet (and rejected lines under the error prefix) lands here."
  value       = module.s3.bucket_names["output"]
}

output "manifest_bucket" {
  description = "Manifest JSON."
  value       = module.s3.bucket_names["manifest"]
}

output "tracking_table" {
  description = "The DynamoDB tracking table."
  value       = module.dynamodb.table_name
}

output "state_machine_arn" {
  description = "The conversion state machine."
  value       = module.step_functions.state_machine_arn
}

output "queue_url" {
  description = "The notification queue."
  value       = module.sqs.queue_url
}

output "dead_letter_queues" {
  description = "Dead-letter queues: notifications the builder could not process, and failed sweeps."
  value       = { arrivals = module.sqs.dlq_name, sweep = module.lambda.sweep_dlq_name }
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies."
  value       = module.monitoring.topic_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.monitoring.dashboard_name
}

output "kms_key_arn" {
  description = "The pipeline's key."
  value       = module.kms.key_arn
}

output "athena_table" {
  description = "Glue database.table over the output (when catalog_columns is set)."
  value       = length(module.catalog) > 0 ? "${module.catalog[0].database_name}.${module.catalog[0].table_name}" : null
}

output "function_names" {
  description = "Lambda function names by role (manifest-builder, converter)."
  value       = module.lambda.function_names
}
