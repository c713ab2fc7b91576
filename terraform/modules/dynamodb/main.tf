# The tracking table (DESIGN.md): files and manifests, keyed by date prefix and file key, with
# two sparse indexes whose names and keys the binaries use (shared::dynamo).
resource "aws_dynamodb_table" "this" {
  name                        = var.name
  billing_mode                = var.billing_mode
  read_capacity               = var.billing_mode == "PROVISIONED" ? var.read_capacity : null
  write_capacity              = var.billing_mode == "PROVISIONED" ? var.write_capacity : null
  hash_key                    = "date_prefix"
  range_key                   = "file_key"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "date_prefix"
    type = "S"
  }
  attribute {
    name = "file_key"
    type = "S"
  }
  attribute {
    name = "pending_prefix"
    type = "S"
  }
  attribute {
    name = "open_shard"
    type = "S"
  }
  attribute {
    name = "created_at"
    type = "S"
  }

  # Pending files only (pending_prefix is removed on claim): "up to N pending files of a
  # prefix, oldest first" reads N items.
  global_secondary_index {
    name            = "pending-index"
    hash_key        = "pending_prefix"
    range_key       = "created_at"
    projection_type = "ALL"
    read_capacity   = var.billing_mode == "PROVISIONED" ? var.read_capacity : null
    write_capacity  = var.billing_mode == "PROVISIONED" ? var.write_capacity : null
  }

  # Manifests the sweep must look at (claiming, starting, or failed by the workflow).
  global_secondary_index {
    name            = "open-manifests-index"
    hash_key        = "open_shard"
    range_key       = "created_at"
    projection_type = "ALL"
    read_capacity   = var.billing_mode == "PROVISIONED" ? var.read_capacity : null
    write_capacity  = var.billing_mode == "PROVISIONED" ? var.write_capacity : null
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  tags = var.tags
}
