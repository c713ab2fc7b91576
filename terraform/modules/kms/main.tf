data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.id
}

# One customer-managed key for everything the pipeline stores: S3 objects, the tracking
# table, queues, the alarm topic, log groups and the state machine (the guide's fix 7).
resource "aws_kms_key" "this" {
  description             = "${var.name} data at rest"
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" means this key only; every statement names its principals.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means this key only; every statement names its principals.
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" means this key only; administration is limited to the account root, as AWS recommends.
  # The account administers the key; without this statement the key becomes unmanageable.
  statement {
    sid     = "AccountAdministers"
    actions = ["kms:*"]
    # wildcard: in a key policy "*" means "this key"; there is no other way to name it.
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${local.account_id}:root"]
    }
  }

  # The pipeline's roles get no grant here: the statement above lets IAM policies allow the
  # key, and each role's policy (module iam) allows only what that role does. A grant here
  # would add to every role whatever the narrowest IAM statement leaves out.

  # CloudWatch Logs encrypts the pipeline's log groups.
  statement {
    sid     = "CloudWatchLogs"
    actions = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    # wildcard: in a key policy "*" means "this key".
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:aws:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  # The state machine is encrypted with this key and logs to CloudWatch Logs: log delivery
  # must decrypt (Step Functions Developer Guide, "Data at rest encryption", step 3; the
  # statement as given there, which has no condition).
  statement {
    sid     = "StepFunctionsLogDelivery"
    actions = ["kms:Decrypt"]
    # wildcard: in a key policy "*" means "this key".
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["delivery.logs.amazonaws.com"]
    }
  }

  # S3 sends notifications to the encrypted queue; CloudWatch alarms publish to the encrypted
  # topic. (The sweep's dead-letter queue is written by Lambda with the function's role.)
  statement {
    sid     = "ServicesPublishToEncryptedQueuesAndTopics"
    actions = ["kms:Decrypt", "kms:GenerateDataKey*"]
    # wildcard: in a key policy "*" means "this key".
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com", "cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}
