locals {
  # Three buckets; rejected lines live under a prefix of the output bucket. Every per-bucket
  # resource iterates over this map (not over aws_s3_bucket.this), which checkov's graph follows.
  buckets = {
    input    = var.input_bucket_name
    output   = var.output_bucket_name
    manifest = var.manifest_bucket_name
  }
}

resource "aws_s3_bucket" "this" {
  for_each = local.buckets

  #checkov:skip=CKV_AWS_18:Server access logs belong to the account's central logging bucket (CloudTrail data events), which this module does not own.
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery decision of the owner; versioning keeps every object recoverable in-region.
  #checkov:skip=CKV2_AWS_62:Only the input bucket feeds the pipeline; events of the output and manifest buckets have no consumer.
  bucket        = each.value
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { Role = each.key })
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.buckets

  bucket                  = aws_s3_bucket.this[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

data "aws_iam_policy_document" "tls_only" {
  for_each = aws_s3_bucket.this

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      each.value.arn,
      "${each.value.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id
  policy = data.aws_iam_policy_document.tls_only[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = local.buckets

  #checkov:skip=CKV_AWS_300:The first rule aborts unfinished multipart uploads in every bucket; checkov drops a resource's static rules when dynamic ones follow (manifest, output buckets).
  bucket = aws_s3_bucket.this[each.key].id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
  }

  dynamic "rule" {
    for_each = each.key == "manifest" ? [1] : []
    content {
      id     = "expire-manifests"
      status = "Enabled"
      filter {}
      expiration {
        days = var.manifest_expiration_days
      }
    }
  }

  dynamic "rule" {
    for_each = each.key == "output" ? [1] : []
    content {
      id     = "expire-rejected-lines"
      status = "Enabled"
      filter {
        prefix = "${trim(var.error_prefix, "/")}/"
      }
      expiration {
        days = var.error_expiration_days
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

# S3 refuses notifications to a queue whose policy does not let it send yet.
resource "terraform_data" "queue_policy_ready" {
  input = var.queue_policy_id
}

# Notification filters are coarse (S3 rejects overlapping suffixes such as `.gz` and
# `.json.gz`); the manifest-builder checks the exact suffixes (FILE_SUFFIXES).
resource "aws_s3_bucket_notification" "input" {
  bucket = aws_s3_bucket.this["input"].id

  dynamic "queue" {
    for_each = toset(var.notification_suffixes)
    content {
      id            = "ndjson-arrivals${replace(queue.value, ".", "-")}"
      queue_arn     = var.queue_arn
      events        = ["s3:ObjectCreated:*"]
      filter_prefix = var.input_prefix
      filter_suffix = queue.value
    }
  }

  depends_on = [terraform_data.queue_policy_ready]
}
