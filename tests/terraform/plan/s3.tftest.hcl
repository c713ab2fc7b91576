# Plan-time checks of module s3 (the conventions are those of root.tftest.hcl).

provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "not-a-key"
  secret_key                  = "not-a-secret"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}

run "bucket_name_checked_in_module" {
  command = plan

  module {
    source = "./modules/s3"
  }

  variables {
    input_bucket_name    = "a-bucket-name-of-sixty-four-characters-is-one-too-many-for-s3-xx"
    output_bucket_name   = "output"
    manifest_bucket_name = "manifests"
    kms_key_arn          = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    queue_arn            = "arn:aws:sqs:eu-west-1:123456789012:arrivals"
    queue_policy_id      = "policy"
  }

  expect_failures = [var.input_bucket_name]
}
