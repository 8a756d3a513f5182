# One customer-managed key for Tollgate's data at rest: the DynamoDB table, the
# secret, the log groups and the alarm topic. Rotated yearly by KMS.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.region

  key_policy_statements = concat(
    [
      {
        # The account administers the key and may delegate its use through
        # IAM policies (the functions' roles below). This is KMS's default
        # key policy statement.
        Sid       = "AccountAdministersKeyThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        # CloudWatch Logs encrypts the functions' log groups, and only those.
        Sid       = "CloudWatchLogsEncryptsTollgateLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws/lambda/${var.name_prefix}-*"
          }
        }
      },
    ],
    var.create_alarm_topic ? [
      {
        # CloudWatch alarms publish to the encrypted alarm topic (AWS's
        # documented statement for alarms and encrypted SNS topics; who may
        # publish to the topic is the topic policy's business: this account).
        Sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
    ] : [],
  )
}

resource "aws_kms_key" "data" {
  description             = "${var.name_prefix}: DynamoDB table, secret, log groups and alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days

  # In a key policy "Resource": "*" means this key.
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.key_policy_statements
  })
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.data.key_id
}
