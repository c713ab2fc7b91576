# Plan-time checks of module sqs (the conventions are those of root.tftest.hcl).

provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "not-a-key"
  secret_key                  = "not-a-secret"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}

run "queue_retention_below_dlq_in_module" {
  command = plan

  module {
    source = "./modules/sqs"
  }

  variables {
    name                          = "arrivals"
    kms_key_arn                   = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    source_bucket_arn             = "arn:aws:s3:::input"
    account_id                    = "123456789012"
    lambda_timeout_seconds        = 60
    message_retention_seconds     = 345600
    dlq_message_retention_seconds = 345600
  }

  expect_failures = [aws_sqs_queue.this]
}
