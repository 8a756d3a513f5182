# Change notifications (README "Change notifications"). Every commit that
# applies a change writes an outbox item (PK = "OUTBOX") in the same
# TransactWriteItems as the state; purchase-webhook sends it to the vendor's
# endpoints, signed per Standard Webhooks.
#
# Why the table's stream, into purchase-webhook: the stream is written by
# DynamoDB itself when the transaction commits, so a function that dies
# between its commit and a send loses nothing — the item is in the table and
# its insert is in the stream (kept 24 h), and Lambda retries a failed batch.
# The event source mapping passes only outbox inserts (the filter below), so
# the function is not woken by other writes. purchase-webhook already holds
# the store and the secret (the endpoints' whsec_ secrets live beside the
# others); the batch is only a wake-up: the handler reads what is due from
# the table, so a batch lost past its retries loses nothing either.
#
# Retries with backoff: an attempt that fails is rescheduled in the item
# (due_at), and the timer below drains what came due every minute; after the
# last attempt the item becomes a dead letter (PK = "NOTIFY_DEAD") that
# `tollgate notify replay` sends again.

locals {
  notifier = "purchase-webhook"
  # What Lambda needs to read a DynamoDB stream for an event source mapping.
  stream_read_actions = ["DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"]
}

resource "aws_lambda_event_source_mapping" "outbox" {
  event_source_arn  = aws_dynamodb_table.this.stream_arn
  function_name     = aws_lambda_function.fn[local.notifier].arn
  starting_position = "LATEST"

  batch_size                         = 100
  maximum_batching_window_in_seconds = 1
  # A failing batch is split to find the record at fault, retried a few
  # times, then recorded in the failure queue; the outbox item stays in the
  # table and the timer sends it.
  bisect_batch_on_function_error = true
  maximum_retry_attempts         = 3
  maximum_record_age_in_seconds  = 3600

  filter_criteria {
    filter {
      pattern = jsonencode({
        eventName = ["INSERT"]
        dynamodb  = { Keys = { PK = { S = ["OUTBOX"] } } }
      })
    }
  }

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.outbox_stream_failures.arn
    }
  }

  depends_on = [aws_iam_role_policy.fn]
}

# Where Lambda records a stream batch it gave up on (the batch's shard and
# sequence numbers, no item data). Alarmed: a message here means the sender
# kept failing; the outbox still holds the notifications.
resource "aws_sqs_queue" "outbox_stream_failures" {
  name                      = "${var.name_prefix}-outbox-stream-failures"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_cloudwatch_metric_alarm" "outbox_stream_failures" {
  alarm_name          = "${var.name_prefix}-notification-stream-failures"
  alarm_description   = "purchase-webhook gave up on a DynamoDB stream batch of notification outbox items. The outbox still holds them; see the function's logs (source = notify) and `tollgate notify replay`."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.outbox_stream_failures.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# The retry timer: a constant input the function reads as "drain the
# outbox" (shared/src/functions/scheduled.rs) and nothing more.
resource "aws_cloudwatch_event_rule" "notify_retry" {
  count = var.notify_retry_schedule == null ? 0 : 1

  name                = "${var.name_prefix}-notify-retry"
  description         = "Tollgate: send change notifications whose retry came due (purchase-webhook)."
  schedule_expression = var.notify_retry_schedule
}

resource "aws_cloudwatch_event_target" "notify_retry" {
  count = var.notify_retry_schedule == null ? 0 : 1

  rule      = aws_cloudwatch_event_rule.notify_retry[0].name
  target_id = "purchase-webhook-notify"
  arn       = aws_lambda_function.fn[local.notifier].arn
  input     = jsonencode({ tollgate = "drain-notifications" })

  # The next tick does the same work.
  retry_policy {
    maximum_retry_attempts       = 0
    maximum_event_age_in_seconds = 60
  }
}

resource "aws_lambda_permission" "notify_retry" {
  count = var.notify_retry_schedule == null ? 0 : 1

  statement_id  = "NotifyRetrySchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn[local.notifier].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.notify_retry[0].arn
}
