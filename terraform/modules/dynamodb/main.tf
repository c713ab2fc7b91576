# The tracking table, version 2 (docs/TRACKING.md): one table with generic string keys `pk` and
# `sk` and no secondary index (no index writes: about one write unit per file). Markers, arrival
# batches, shard cursors, manifests, open-manifest entries and the shard registry share it; their
# key formats are defined once, in shared::ledger::item.
resource "aws_dynamodb_table" "this" {
  name                        = var.name
  billing_mode                = var.billing_mode
  read_capacity               = var.billing_mode == "PROVISIONED" ? var.read_capacity : null
  write_capacity              = var.billing_mode == "PROVISIONED" ? var.write_capacity : null
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  # Markers outlive the arrivals DLQ's retention (TTL_DAYS > 14, validated), batches and
  # manifests are refreshed on their transitions.
  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  tags = var.tags
}
