# One role per function, least privilege: the DynamoDB actions its store roles
# call (store-access.json), the KMS use the table needs, the secret where the
# function reads it, and its own log group. Nothing else.

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    sid     = "LambdaAssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "fn" {
  for_each = local.functions

  name               = each.value.function_name
  description        = "Tollgate ${each.key}: its store roles (${join(", ", each.value.store_roles)}), its secret and its logs"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

data "aws_iam_policy_document" "fn" {
  for_each = local.functions

  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.fn[each.key].arn}:*"]
  }

  # TransactWriteItems has no IAM action of its own: each Put, Update, Delete
  # and ConditionCheck inside it is authorized as PutItem, UpdateItem,
  # DeleteItem and ConditionCheckItem.
  statement {
    sid       = "TableItems"
    actions   = [for a in each.value.dynamodb.table : "dynamodb:${a}"]
    resources = [aws_dynamodb_table.this.arn]
  }

  dynamic "statement" {
    for_each = length(each.value.dynamodb.index) > 0 ? [local.gsi1] : []

    content {
      sid       = "IndexGsi1"
      actions   = [for a in each.value.dynamodb.index : "dynamodb:${a}"]
      resources = ["${aws_dynamodb_table.this.arn}/index/${statement.value}"]
    }
  }

  # The table's customer-managed key, only as DynamoDB uses it on the
  # function's behalf (reads decrypt, writes encrypt).
  statement {
    sid       = "TableKeyThroughDynamoDb"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.amazonaws.com"]
    }
  }

  # purchase-webhook reads the table's stream (the notification sender's
  # wake-up, notify.tf): only the stream read actions, only on that stream.
  dynamic "statement" {
    for_each = each.key == local.notifier ? [aws_dynamodb_table.this.stream_arn] : []

    content {
      sid       = "ReadTableStream"
      actions   = [for a in local.stream_read_actions : "dynamodb:${a}"]
      resources = [statement.value]
    }
  }

  # ... and hands a batch it could not process to the failure queue.
  dynamic "statement" {
    for_each = each.key == local.notifier ? [aws_sqs_queue.outbox_stream_failures.arn] : []

    content {
      sid       = "SendStreamFailures"
      actions   = ["sqs:SendMessage"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = each.value.secrets ? [aws_secretsmanager_secret.this.arn] : []

    content {
      sid       = "ReadOwnSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = each.value.secrets ? [aws_kms_key.data.arn] : []

    content {
      sid       = "SecretKeyThroughSecretsManager"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "fn" {
  for_each = local.functions

  name   = "least-privilege"
  role   = aws_iam_role.fn[each.key].id
  policy = data.aws_iam_policy_document.fn[each.key].json
}
