# The single table, exactly as the store uses it (shared/src/store/dynamo/mod.rs,
# "Table layout" and "Creating the table"): string keys PK (hash) and SK
# (range); one sparse global secondary index GSI1 on GSI1PK/GSI1SK with every
# attribute projected (checks read whole subscriptions from it; replay reads
# pending deliveries); TTL on expires_at. The Q2 enrollments (capped groups)
# live in the same keys and need no other index or attribute definition.

locals {
  gsi1 = "GSI1"
}

resource "aws_dynamodb_table" "this" {
  name         = var.name_prefix
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "PK"
  range_key    = "SK"

  attribute {
    name = "PK"
    type = "S"
  }
  attribute {
    name = "SK"
    type = "S"
  }
  attribute {
    name = "GSI1PK"
    type = "S"
  }
  attribute {
    name = "GSI1SK"
    type = "S"
  }

  global_secondary_index {
    name            = local.gsi1
    hash_key        = "GSI1PK"
    range_key       = "GSI1SK"
    projection_type = "ALL"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled                 = true
    recovery_period_in_days = var.pitr_recovery_days
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }

  deletion_protection_enabled = var.table_deletion_protection

  # Wakes purchase-webhook's notification sender when a commit writes an
  # outbox item (notify.tf). Keys only: the sender reads the item itself.
  stream_enabled   = true
  stream_view_type = "KEYS_ONLY"
}
