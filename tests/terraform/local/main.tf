# The pipeline as terraform/ deploys it, applied to the local AWS the end-to-end suite runs
# (moto, in the suite's own process; tools/local_aws). One instance of the root module per
# entry of `pipelines`, so that one apply serves every scenario that needs its own settings.
#
# Only what the emulator cannot run is switched off, with the root module's own variables:
# AWS Batch (enable_batch = false: moto runs Batch jobs in Docker). Everything else -- KMS key,
# IAM roles and policies, buckets with their encryption, versioning, policies, lifecycle rules
# and notifications, queues, tracking table, log groups, both functions, the event-source
# mapping, the sweep's EventBridge rule, the state machine, alarms, dashboard, Glue catalog --
# is created for real, and the suite runs on what was created.
provider "aws" {
  region     = var.region
  access_key = "testing"
  secret_key = "testing"

  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {
    cloudwatch = var.endpoint
    dynamodb   = var.endpoint
    events     = var.endpoint
    glue       = var.endpoint
    iam        = var.endpoint
    kms        = var.endpoint
    lambda     = var.endpoint
    logs       = var.endpoint
    s3         = var.endpoint
    sfn        = var.endpoint
    sns        = var.endpoint
    sqs        = var.endpoint
    sts        = var.endpoint
    batch      = var.endpoint
  }
}

module "pipeline" {
  source   = "../../../terraform"
  for_each = var.pipelines

  project                  = var.project
  environment              = each.key
  manifest_builder_package = var.manifest_builder_package
  converter_package        = var.converter_package
  # The binaries run as local processes of this machine's architecture.
  lambda_architecture = var.lambda_architecture

  log_level                   = each.value.log_level
  compression_type            = each.value.compression_type
  max_files_per_manifest      = each.value.max_files_per_manifest
  max_bytes_per_manifest      = each.value.max_bytes_per_manifest
  max_wait_seconds            = each.value.max_wait_seconds
  max_attempts                = each.value.max_attempts
  shards                      = each.value.shards
  max_receive_count           = each.value.max_receive_count
  timestamp_unit              = each.value.timestamp_unit
  target_file_bytes           = each.value.target_file_bytes
  notification_suffixes       = each.value.notification_suffixes
  builder_timeout_seconds     = each.value.builder_timeout_seconds
  converter_timeout_seconds   = each.value.converter_timeout_seconds
  converter_memory_mb         = each.value.converter_memory_mb
  sqs_batch_size              = each.value.sqs_batch_size
  sqs_batching_window_seconds = each.value.sqs_batching_window_seconds
  reconcile_after_seconds     = each.value.reconcile_after_seconds

  # A throw-away deployment: destroy must be able to remove everything.
  force_destroy       = true
  deletion_protection = false
  log_retention_days  = 1

  # AWS Batch needs Docker behind moto; the Lambda converter handles every manifest.
  enable_batch = false

  # The catalog over the output, with the columns the suite's generated records have.
  catalog_columns = [
    { name = "id", type = "string" },
    { name = "ts", type = "timestamp" },
    { name = "user", type = "struct<uid:bigint,name:string>" },
    { name = "tags", type = "array<string>" },
    { name = "amount", type = "double" },
  ]

  tags = { Purpose = "local-end-to-end" }
}
