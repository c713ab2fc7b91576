provider "aws" {
  region = var.region
}

# A production pipeline: INFO logs, protected table and buckets, large manifests on AWS Batch,
# concurrency caps, alarms to the on-call address.
module "pipeline" {
  source = "../.."

  environment                    = "prod"
  manifest_builder_package       = var.manifest_builder_package
  converter_package              = var.converter_package
  lambda_architecture            = "arm64"
  log_level                      = "INFO"
  compression_type               = "snappy"
  max_files_per_manifest         = 500
  max_bytes_per_manifest         = 4294967296
  max_wait_seconds               = 900
  converter_memory_mb            = 4096
  converter_reserved_concurrency = 50
  builder_reserved_concurrency   = 20
  alarm_email                    = var.alarm_email
  rows_rejected_threshold        = 100

  enable_batch               = true
  lambda_max_bytes           = 5368709120
  batch_image                = var.batch_image
  batch_image_repository_arn = var.batch_image_repository_arn
  batch_subnet_ids           = var.batch_subnet_ids
  batch_security_group_ids   = var.batch_security_group_ids
  batch_vcpus                = 8
  batch_memory_mb            = 16384

  catalog_columns = var.catalog_columns

  tags = { Owner = "data-engineering", CostCenter = "analytics" }
}
