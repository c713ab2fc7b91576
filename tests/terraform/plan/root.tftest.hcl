# Plan-time checks of the root module, run by tests/terraform/check_providers.py in a
# copy of terraform/ with the provider from a filesystem mirror. Nothing reaches AWS: every run
# only plans, the credentials are fake and never checked, and the one data source that would
# call AWS (the caller identity) is overridden. What is evaluated is Terraform's own: variable
# validations, preconditions, templatefile() and the provider's policy documents.

provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "not-a-key"
  secret_key                  = "not-a-secret"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}

override_data {
  target = data.aws_caller_identity.current
  values = { account_id = "123456789012" }
}

override_data {
  target = module.kms.data.aws_caller_identity.current
  values = { account_id = "123456789012" }
}

# ARNs known only after apply, made known at plan so that the rendered definition can be read.
override_resource {
  target          = module.lambda.aws_lambda_function.this
  override_during = plan
  values          = { arn = "arn:aws:lambda:eu-west-1:123456789012:function:p-test-converter" }
}

override_resource {
  target          = module.batch[0].aws_batch_job_queue.this
  override_during = plan
  values          = { arn = "arn:aws:batch:eu-west-1:123456789012:job-queue/p-test-converter" }
}

override_resource {
  target          = module.batch[0].aws_batch_job_definition.this
  override_during = plan
  values          = { arn = "arn:aws:batch:eu-west-1:123456789012:job-definition/p-test-converter:1" }
}

# The provider validates a known definition with an AWS call at plan: not made here (statelint
# checks the definition, check_terraform.py).
override_resource {
  target          = module.step_functions.aws_sfn_state_machine.this
  override_during = plan
  values          = { arn = "arn:aws:states:eu-west-1:123456789012:stateMachine:p-test-convert" }
}

variables {
  environment              = "test"
  manifest_builder_package = "../dist/manifest-builder.zip"
  converter_package        = "../dist/converter.zip"
}

# Defaults: the queue keeps messages less long than its DLQ; the state machine has an overall
# timeout.
run "defaults" {
  command = plan

  assert {
    condition     = jsondecode(module.step_functions.definition).TimeoutSeconds == var.execution_timeout_seconds
    error_message = "the state machine has no overall TimeoutSeconds"
  }
}

# With Batch: the Batch state waits for every attempt of the job, and the execution for the Batch
# state.
run "batch" {
  command = plan

  variables {
    enable_batch               = true
    batch_image                = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ndjson-parquet:1"
    batch_image_repository_arn = "arn:aws:ecr:eu-west-1:123456789012:repository/ndjson-parquet"
    batch_subnet_ids           = ["subnet-0123456789abcdef0"]
    batch_security_group_ids   = ["sg-0123456789abcdef0"]
  }

  assert {
    # module batch's defaults: 3 attempts of at most 14400 s each.
    condition     = jsondecode(module.step_functions.definition).States.ConvertOnBatch.TimeoutSeconds >= 3 * 14400
    error_message = "the Batch state times out before the job's three attempts can finish"
  }

  assert {
    condition     = jsondecode(module.step_functions.definition).TimeoutSeconds > jsondecode(module.step_functions.definition).States.ConvertOnBatch.TimeoutSeconds
    error_message = "the execution times out before its Batch state"
  }
}

run "batch_needs_its_settings" {
  command = plan

  variables {
    enable_batch = true
  }

  expect_failures = [
    var.batch_image,
    var.batch_image_repository_arn,
    var.batch_subnet_ids,
    var.batch_security_group_ids,
  ]
}

# 31 + 12 characters make "<project>-<environment>-manifests-<account>" 67 long.
run "names_too_long_for_s3" {
  command = plan

  variables {
    project     = "a-project-name-of-31-characters"
    environment = "environment1"
  }

  expect_failures = [var.environment]
}

run "queue_retention_below_dlq" {
  command = plan

  variables {
    queue_message_retention_seconds = 1209600
  }

  expect_failures = [var.queue_message_retention_seconds]
}

# Markers must outlive the arrivals DLQ's 14 days, so that a redriven notification finds its
# version already tracked.
run "markers_outlive_the_dlq" {
  command = plan

  variables {
    ttl_days = 14
  }

  expect_failures = [var.ttl_days]
}
