# Plan-time checks of module iam (the conventions are those of root.tftest.hcl).

provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "not-a-key"
  secret_key                  = "not-a-secret"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}

# The policies as the provider renders them.
run "iam_policies" {
  command = plan

  module {
    source = "./modules/iam"
  }

  variables {
    name                            = "p-test"
    account_id                      = "123456789012"
    region                          = "eu-west-1"
    kms_key_arn                     = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    table_arn                       = "arn:aws:dynamodb:eu-west-1:123456789012:table/p-test-tracking"
    input_bucket_arn                = "arn:aws:s3:::p-test-input"
    output_bucket_arn               = "arn:aws:s3:::p-test-output"
    manifest_bucket_arn             = "arn:aws:s3:::p-test-manifests"
    manifest_prefix                 = "manifests"
    output_prefix                   = "parquet"
    error_prefix                    = "errors"
    queue_arn                       = "arn:aws:sqs:eu-west-1:123456789012:p-test-arrivals"
    sweep_dlq_arn                   = "arn:aws:sqs:eu-west-1:123456789012:p-test-sweep-dlq"
    state_machine_arn               = "arn:aws:states:eu-west-1:123456789012:stateMachine:p-test-convert"
    converter_function_arn          = "arn:aws:lambda:eu-west-1:123456789012:function:p-test-converter"
    log_group_names                 = { manifest-builder = "/aws/lambda/a", converter = "/aws/lambda/b", batch = "/aws/batch/c" }
    enable_batch                    = true
    batch_job_queue_arn             = "arn:aws:batch:eu-west-1:123456789012:job-queue/p-test-converter"
    batch_job_definition_arn_prefix = "arn:aws:batch:eu-west-1:123456789012:job-definition/p-test-converter"
    image_repository_arn            = "arn:aws:ecr:eu-west-1:123456789012:repository/ndjson-parquet"
  }

  assert {
    condition = alltrue([
      for s in jsondecode(data.aws_iam_policy_document.converter.json).Statement :
      alltrue([for v in flatten([try(s.Condition.StringLike["s3:prefix"], [])]) : trimspace(replace(v, "*", "")) != ""])
    ])
    error_message = "an s3:prefix condition of the converter is empty or only \"*\": the role could list a whole bucket"
  }

  assert {
    condition = length([
      for s in jsondecode(data.aws_iam_policy_document.converter.json).Statement : s
      if contains(flatten([s.Action]), "s3:ListBucket") && contains(flatten([s.Resource]), "arn:aws:s3:::p-test-input")
      && try(s.Condition, null) == null
    ]) == 1
    error_message = "the converter (and Batch job) role may not list the input bucket: a missing input object answers 403, not 404"
  }

  assert {
    condition = length([
      for s in jsondecode(data.aws_iam_policy_document.converter.json).Statement : s
      if contains(flatten([s.Action]), "s3:ListBucket") && contains(flatten([s.Resource]), "arn:aws:s3:::p-test-manifests")
      && try(s.Condition, null) == null
    ]) == 1
    error_message = "the converter (and Batch job) role may not list the manifest bucket without a condition: the list check S3 makes for a missing key carries no s3:prefix, so a missing manifest would answer 403, not 404"
  }

  assert {
    condition     = !strcontains(data.aws_iam_policy_document.batch_execution.json, "kms:")
    error_message = "the Batch execution role has KMS permissions it does not need"
  }
}
