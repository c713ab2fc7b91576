# Plan-time checks of module kms (the conventions are those of root.tftest.hcl).

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

run "key_policy" {
  command = plan

  module {
    source = "./modules/kms"
  }

  variables {
    name = "p-test"
  }

  assert {
    condition = length([
      for s in jsondecode(data.aws_iam_policy_document.key.json).Statement : s
      if try(s.Principal.Service, "") == "delivery.logs.amazonaws.com" && contains(flatten([s.Action]), "kms:Decrypt")
    ]) == 1
    error_message = "the key policy does not let delivery.logs.amazonaws.com decrypt (state machine logging)"
  }

  assert {
    condition = alltrue([
      for s in jsondecode(data.aws_iam_policy_document.key.json).Statement :
      alltrue([for p in flatten([try(s.Principal.AWS, [])]) : p == "arn:aws:iam::123456789012:root"])
    ])
    error_message = "the key policy names a principal other than the account: roles must get the key through IAM"
  }

  assert {
    condition     = !strcontains(data.aws_iam_policy_document.key.json, "events.amazonaws.com")
    error_message = "the key policy names events.amazonaws.com, which uses no encrypted queue or topic here"
  }
}
