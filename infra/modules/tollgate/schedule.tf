# Reconciliation on a schedule: an EventBridge rule invokes purchase-webhook
# with EventBridge's own "Scheduled Event"; the function tells it from a
# function-URL request by its shape (shared/src/functions/scheduled.rs) and
# reads nothing from it but "run reconcile".
#
# Why purchase-webhook: it already holds everything a run needs — GitHub's
# replay pipeline (GitHub never retries, so pending deliveries are finished
# here), the store roles to read and commit state and to list pending
# deliveries, and the secret with the GitHub App key and Google credentials.
# The only grant the schedule adds is the Inventory role's Scan
# (store-access.json), which lets a run find stored subscriptions a listing no
# longer names. pubsub-push would need GitHub's pipeline and replay as well.

resource "aws_cloudwatch_event_rule" "reconcile" {
  count = var.reconcile_schedule == null ? 0 : 1

  name                = "${var.name_prefix}-reconcile"
  description         = "Tollgate: reconcile subscriptions with GitHub and Google, replay pending GitHub deliveries (purchase-webhook)."
  schedule_expression = var.reconcile_schedule
}

resource "aws_cloudwatch_event_target" "reconcile" {
  count = var.reconcile_schedule == null ? 0 : 1

  rule      = aws_cloudwatch_event_rule.reconcile[0].name
  target_id = "purchase-webhook"
  arn       = aws_lambda_function.fn["purchase-webhook"].arn

  # A failed run is not retried by EventBridge: the next scheduled run does
  # the same work, and the alarms below say it failed.
  retry_policy {
    maximum_retry_attempts       = 0
    maximum_event_age_in_seconds = 60
  }
}

# Only this rule may invoke the function with an event of its own.
resource "aws_lambda_permission" "reconcile_schedule" {
  count = var.reconcile_schedule == null ? 0 : 1

  statement_id  = "ReconcileSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn["purchase-webhook"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.reconcile[0].arn
}

# A run logs one line per marketplace (tracing's JSON puts fields under
# "fields"):
#
#   {"level":"INFO","fields":{"message":"reconcile run","metric":"reconcile",
#     "source":"reconcile","marketplace":"github","dry_run":false,"checked":12,
#     "in_sync":10,"fixed":1,"would_fix":0,"held":1,"errors":0}}
resource "aws_cloudwatch_log_metric_filter" "reconcile" {
  for_each = { ReconcileErrors = "errors", ReconcileFixed = "fixed", ReconcileRuns = "checked" }

  name           = "${local.functions["purchase-webhook"].function_name}-${each.key}"
  log_group_name = aws_cloudwatch_log_group.fn["purchase-webhook"].name
  pattern        = "{ $.fields.metric = \"reconcile\" }"

  metric_transformation {
    name      = each.key
    namespace = var.metric_namespace
    # Runs count lines, not subscriptions.
    value = each.key == "ReconcileRuns" ? "1" : "$.fields.${each.value}"
    unit  = "Count"
  }
}

resource "aws_cloudwatch_metric_alarm" "reconcile_errors" {
  alarm_name          = "${var.name_prefix}-reconcile-errors"
  alarm_description   = "A reconciliation run could not read a marketplace, fix a subscription or replay a delivery. Run `tollgate reconcile --dry-run` to see which."
  namespace           = var.metric_namespace
  metric_name         = "ReconcileErrors"
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  depends_on = [aws_cloudwatch_log_metric_filter.reconcile]
}

resource "aws_cloudwatch_metric_alarm" "reconcile_missing" {
  count = var.reconcile_schedule == null ? 0 : 1

  alarm_name          = "${var.name_prefix}-reconcile-not-running"
  alarm_description   = "No reconciliation run was logged for a day although one is scheduled (${var.reconcile_schedule}): the schedule, the function or its cold start is broken."
  namespace           = var.metric_namespace
  metric_name         = "ReconcileRuns"
  statistic           = "Sum"
  period              = 86400
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  depends_on = [aws_cloudwatch_log_metric_filter.reconcile]
}
