# ndjson-parquet: NDJSON landing in S3 → SQS → manifest-builder (DynamoDB, manifests) →
# Step Functions → converter (Lambda, or AWS Batch for large manifests) → Parquet in S3.
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  name       = "${var.project}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  # `.id` is the region name in provider 5 and 6 (6 deprecates `.name`).
  region = data.aws_region.current.id
  tags   = merge(var.tags, { Project = var.project, Environment = var.environment })

  buckets = {
    input    = "${local.name}-input-${local.account_id}"
    output   = "${local.name}-output-${local.account_id}"
    manifest = "${local.name}-manifests-${local.account_id}"
  }

  # ARNs computed from names: the roles need them before the resources exist.
  state_machine_name     = "${local.name}-convert"
  state_machine_arn      = "arn:aws:states:${local.region}:${local.account_id}:stateMachine:${local.state_machine_name}"
  converter_function_arn = "arn:aws:lambda:${local.region}:${local.account_id}:function:${local.name}-converter"
  batch_name             = "${local.name}-converter"
  log_group_names = {
    manifest-builder = "/aws/lambda/${local.name}-manifest-builder"
    converter        = "/aws/lambda/${local.name}-converter"
    batch            = "/aws/batch/${local.batch_name}"
  }
}

module "kms" {
  source = "./modules/kms"

  name = local.name
  tags = local.tags
}

module "iam" {
  source = "./modules/iam"

  name                            = local.name
  account_id                      = local.account_id
  region                          = local.region
  kms_key_arn                     = module.kms.key_arn
  table_arn                       = module.dynamodb.table_arn
  input_bucket_arn                = "arn:aws:s3:::${local.buckets.input}"
  output_bucket_arn               = "arn:aws:s3:::${local.buckets.output}"
  manifest_bucket_arn             = "arn:aws:s3:::${local.buckets.manifest}"
  manifest_prefix                 = var.manifest_prefix
  output_prefix                   = var.output_prefix
  error_prefix                    = var.error_prefix
  queue_arn                       = module.sqs.queue_arn
  sweep_dlq_arn                   = module.lambda.sweep_dlq_arn
  state_machine_arn               = local.state_machine_arn
  converter_function_arn          = local.converter_function_arn
  log_group_names                 = local.log_group_names
  enable_batch                    = var.enable_batch
  batch_job_queue_arn             = "arn:aws:batch:${local.region}:${local.account_id}:job-queue/${local.batch_name}"
  batch_job_definition_arn_prefix = "arn:aws:batch:${local.region}:${local.account_id}:job-definition/${local.batch_name}"
  image_repository_arn            = var.batch_image_repository_arn
  tags                            = local.tags
}

module "s3" {
  source = "./modules/s3"

  input_bucket_name        = local.buckets.input
  output_bucket_name       = local.buckets.output
  manifest_bucket_name     = local.buckets.manifest
  kms_key_arn              = module.kms.key_arn
  queue_arn                = module.sqs.queue_arn
  queue_policy_id          = module.sqs.queue_policy_id
  notification_suffixes    = var.notification_suffixes
  input_prefix             = var.input_prefix
  error_prefix             = var.error_prefix
  manifest_expiration_days = var.manifest_expiration_days
  error_expiration_days    = var.error_expiration_days
  force_destroy            = var.force_destroy
  tags                     = local.tags
}

module "sqs" {
  source = "./modules/sqs"

  name                      = "${local.name}-arrivals"
  kms_key_arn               = module.kms.key_arn
  source_bucket_arn         = "arn:aws:s3:::${local.buckets.input}"
  account_id                = local.account_id
  lambda_timeout_seconds    = var.builder_timeout_seconds
  max_receive_count         = var.max_receive_count
  message_retention_seconds = var.queue_message_retention_seconds
  tags                      = local.tags
}

module "dynamodb" {
  source = "./modules/dynamodb"

  name                = "${local.name}-tracking"
  kms_key_arn         = module.kms.key_arn
  billing_mode        = var.dynamodb_billing_mode
  deletion_protection = var.deletion_protection
  tags                = local.tags
}

module "lambda" {
  source = "./modules/lambda"

  name                           = local.name
  manifest_builder_package       = var.manifest_builder_package
  converter_package              = var.converter_package
  architecture                   = var.lambda_architecture
  manifest_builder_role_arn      = module.iam.role_arns["manifest-builder"]
  converter_role_arn             = module.iam.role_arns["converter"]
  kms_key_arn                    = module.kms.key_arn
  log_level                      = var.log_level
  log_retention_days             = var.log_retention_days
  builder_memory_mb              = var.builder_memory_mb
  builder_timeout_seconds        = var.builder_timeout_seconds
  builder_reserved_concurrency   = var.builder_reserved_concurrency
  converter_memory_mb            = var.converter_memory_mb
  converter_timeout_seconds      = var.converter_timeout_seconds
  converter_reserved_concurrency = var.converter_reserved_concurrency
  queue_arn                      = module.sqs.queue_arn
  sqs_batch_size                 = var.sqs_batch_size
  sqs_batching_window_seconds    = var.sqs_batching_window_seconds
  sweep_schedule                 = var.sweep_schedule
  tracking_table_name            = module.dynamodb.table_name
  manifest_bucket_name           = local.buckets.manifest
  manifest_prefix                = var.manifest_prefix
  state_machine_arn              = local.state_machine_arn
  max_files_per_manifest         = var.max_files_per_manifest
  max_bytes_per_manifest         = var.max_bytes_per_manifest
  max_wait_seconds               = var.max_wait_seconds
  ttl_days                       = var.ttl_days
  max_attempts                   = var.max_attempts
  shards                         = var.shards
  reconcile_after_seconds        = var.reconcile_after_seconds
  # A failed manifest is released once none of its converters can still run: the Lambda's
  # timeout, or with Batch every attempt of the job (a job being stopped may outlive its
  # execution too).
  batch_job_timeout_seconds = var.enable_batch ? module.batch[0].job_timeout_seconds : 0
  date_prefix_pattern       = var.date_prefix_pattern
  output_bucket_name        = local.buckets.output
  output_prefix             = var.output_prefix
  error_prefix              = var.error_prefix
  compression_type          = var.compression_type
  schema_uri                = var.schema_uri
  timestamp_unit            = var.timestamp_unit
  target_file_bytes         = var.target_file_bytes
  tags                      = local.tags
}

module "batch" {
  source = "./modules/batch"
  count  = var.enable_batch ? 1 : 0

  name                  = local.batch_name
  image                 = var.batch_image
  job_role_arn          = module.iam.role_arns["batch-job"]
  execution_role_arn    = module.iam.role_arns["batch-execution"]
  converter_environment = module.lambda.converter_environment
  kms_key_arn           = module.kms.key_arn
  subnet_ids            = var.batch_subnet_ids
  security_group_ids    = var.batch_security_group_ids
  assign_public_ip      = var.batch_assign_public_ip
  vcpus                 = var.batch_vcpus
  memory_mb             = var.batch_memory_mb
  log_retention_days    = var.log_retention_days
  tags                  = local.tags
}

module "step_functions" {
  source = "./modules/step_functions"

  name                     = local.state_machine_name
  role_arn                 = module.iam.role_arns["state-machine"]
  kms_key_arn              = module.kms.key_arn
  converter_function_arn   = module.lambda.function_arns["converter"]
  tracking_table_name      = module.dynamodb.table_name
  enable_batch             = var.enable_batch
  lambda_max_bytes         = var.lambda_max_bytes
  batch_job_queue_arn      = var.enable_batch ? module.batch[0].job_queue_arn : ""
  batch_job_definition_arn = var.enable_batch ? module.batch[0].job_definition_arn : ""
  # Every attempt the job definition allows, not one: the state's timeout stops the job.
  batch_timeout_seconds     = var.enable_batch ? module.batch[0].job_timeout_seconds : 0
  execution_timeout_seconds = var.execution_timeout_seconds
  log_retention_days        = var.log_retention_days
  tags                      = local.tags
}

module "monitoring" {
  source = "./modules/monitoring"

  name                                 = local.name
  kms_key_arn                          = module.kms.key_arn
  alarm_email                          = var.alarm_email
  function_names                       = module.lambda.function_names
  queue_name                           = module.sqs.queue_name
  dlq_name                             = module.sqs.dlq_name
  sweep_dlq_name                       = module.lambda.sweep_dlq_name
  state_machine_arn                    = module.step_functions.state_machine_arn
  batch_log_group_name                 = var.enable_batch ? module.batch[0].log_group_name : ""
  oldest_message_age_threshold_seconds = var.oldest_message_age_threshold_seconds
  rows_rejected_threshold              = var.rows_rejected_threshold
  tags                                 = local.tags
}

module "catalog" {
  source = "./modules/catalog"
  count  = length(var.catalog_columns) > 0 ? 1 : 0

  database_name      = replace(local.name, "-", "_")
  table_name         = var.catalog_table_name
  output_bucket_name = local.buckets.output
  output_prefix      = var.output_prefix
  compression_type   = var.compression_type
  columns            = var.catalog_columns
}
