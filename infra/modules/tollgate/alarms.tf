# Alarms: each function's errors and throttles, and deliveries left pending.
#
# Pending deliveries are Tollgate's own metrics, defined here by metric filters
# on the functions' JSON logs (no embedded metric format): the code reports
# them with one log event (tracing's JSON layout puts fields under "fields"):
#
#   {"level":"INFO","fields":{"message":"pending deliveries",
#     "metric":"pending_deliveries","marketplace":"github",
#     "pending":3,"oldest_age_s":1260}}
#
# pending: deliveries of that marketplace still pending now; oldest_age_s:
# seconds since the oldest of them was received (0 when none). Only functions
# holding the Deliveries role get the filters.

locals {
  alarm_actions = concat(
    var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn],
    aws_sns_topic.alarms[*].arn,
  )

  delivery_functions = { for name, f in local.functions : name => f if contains(f.store_roles, "Deliveries") }

  pending_metrics = {
    PendingDeliveries               = { field = "pending", unit = "Count" }
    OldestPendingDeliveryAgeSeconds = { field = "oldest_age_s", unit = "Seconds" }
  }

  pending_filters = merge([
    for name, f in local.delivery_functions : {
      for metric, m in local.pending_metrics : "${name}/${metric}" => {
        function = name
        metric   = metric
        field    = m.field
        unit     = m.unit
      }
    }
  ]...)
}

resource "aws_sns_topic" "alarms" {
  count = var.create_alarm_topic ? 1 : 0

  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.data.arn
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = var.create_alarm_topic ? toset(var.alarm_emails) : toset([])

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = each.key
}

resource "aws_cloudwatch_metric_alarm" "errors" {
  for_each = local.functions

  alarm_name          = "${each.value.function_name}-errors"
  alarm_description   = "${each.key} failed invocations (crash, timeout, cold-start failure such as a bad tollgate.toml or an unreadable secret). Replies the code chose (4xx/5xx) are not errors."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.fn[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "throttles" {
  for_each = local.functions

  alarm_name          = "${each.value.function_name}-throttles"
  alarm_description   = "${each.key} requests refused for lack of concurrency (reserved concurrency or the account's limit). GitHub does not retry a throttled delivery."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = aws_lambda_function.fn[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_log_metric_filter" "pending" {
  for_each = local.pending_filters

  name           = "${local.functions[each.value.function].function_name}-${each.value.metric}"
  log_group_name = aws_cloudwatch_log_group.fn[each.value.function].name
  pattern        = "{ $.fields.metric = \"pending_deliveries\" }"

  metric_transformation {
    name      = each.value.metric
    namespace = var.metric_namespace
    value     = "$.fields.${each.value.field}"
    unit      = each.value.unit
  }
}

resource "aws_cloudwatch_metric_alarm" "pending_deliveries" {
  alarm_name          = "${var.name_prefix}-pending-deliveries"
  alarm_description   = "Deliveries stayed pending across two reports 5 minutes apart. GitHub never retries: run `tollgate replay` (or redeliver from the listing)."
  namespace           = var.metric_namespace
  metric_name         = "PendingDeliveries"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  depends_on = [aws_cloudwatch_log_metric_filter.pending]
}

resource "aws_cloudwatch_metric_alarm" "oldest_pending_delivery" {
  alarm_name          = "${var.name_prefix}-oldest-pending-delivery"
  alarm_description   = "A delivery has been pending for more than ${var.pending_delivery_age_alarm_seconds} s. Run `tollgate replay`."
  namespace           = var.metric_namespace
  metric_name         = "OldestPendingDeliveryAgeSeconds"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.pending_delivery_age_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  depends_on = [aws_cloudwatch_log_metric_filter.pending]
}
