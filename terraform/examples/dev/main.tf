provider "aws" {
  region = var.region
}

# A development pipeline: DEBUG logs, buckets and table that terraform destroy can remove,
# a short wait before small manifests are flushed, no Batch.
module "pipeline" {
  #checkov:skip=CKV_AWS_338:A development pipeline keeps its logs 30 days (log_retention_days); production keeps the default 365.
  source = "../.."

  environment              = "dev"
  manifest_builder_package = var.manifest_builder_package
  converter_package        = var.converter_package
  lambda_architecture      = var.lambda_architecture
  log_level                = "DEBUG"
  compression_type         = "zstd:3"
  max_files_per_manifest   = 50
  max_wait_seconds         = 120
  force_destroy            = true
  deletion_protection      = false
  log_retention_days       = 30
  alarm_email              = var.alarm_email

  # The bundled examples/ sample, as Athena sees it.
  catalog_columns = [
    { name = "event_id", type = "string" },
    { name = "ts", type = "timestamp" },
    { name = "user", type = "struct<id:bigint,country:string,premium:boolean>" },
    { name = "page", type = "string" },
    { name = "duration_ms", type = "bigint" },
    { name = "scroll", type = "double" },
    { name = "tags", type = "array<string>" },
    { name = "items", type = "array<struct<sku:string,qty:bigint,price:double>>" },
    { name = "experiment", type = "string", comment = "{} in the input" },
    { name = "note", type = "string" },
    { name = "referrer", type = "string" },
  ]

  tags = { Owner = "data-engineering" }
}
