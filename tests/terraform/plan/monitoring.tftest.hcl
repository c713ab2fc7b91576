# Plan-time checks of module monitoring (the conventions are those of root.tftest.hcl).

provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "not-a-key"
  secret_key                  = "not-a-secret"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}

run "batch_metrics" {
  command = plan

  module {
    source = "./modules/monitoring"
  }

  variables {
    name                 = "p-test"
    kms_key_arn          = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    function_names       = { manifest-builder = "p-test-manifest-builder", converter = "p-test-converter" }
    queue_name           = "p-test-arrivals"
    dlq_name             = "p-test-arrivals-dlq"
    sweep_dlq_name       = "p-test-sweep-dlq"
    state_machine_arn    = "arn:aws:states:eu-west-1:123456789012:stateMachine:p-test-convert"
    batch_log_group_name = "/aws/batch/p-test-converter"
  }

  assert {
    condition = alltrue([
      for metric in ["RowsRejected", "ManifestsFailed"] :
      aws_cloudwatch_log_metric_filter.batch[metric].log_group_name == "/aws/batch/p-test-converter"
      && aws_cloudwatch_log_metric_filter.batch[metric].metric_transformation[0].namespace == "NdjsonParquet"
      && aws_cloudwatch_log_metric_filter.batch[metric].metric_transformation[0].dimensions.Function == "$.Function"
    ])
    error_message = "RowsRejected and ManifestsFailed of the Batch job are not turned into metrics"
  }

  assert {
    condition = alltrue([
      for alarm in ["rows-rejected-batch", "manifests-failed-batch"] :
      aws_cloudwatch_metric_alarm.pipeline[alarm].dimensions.Function == "converter-batch"
    ])
    error_message = "the RowsRejected and ManifestsFailed alarms do not cover Batch"
  }
}
