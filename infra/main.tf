# Root configuration: what `make deploy` applies with infra/tollgate.tfvars.
# Everything is in modules/tollgate; this file picks the region and passes the
# variables through.

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge({ Application = "tollgate", ManagedBy = "terraform" }, var.tags)
  }
}

module "tollgate" {
  source = "./modules/tollgate"

  name_prefix    = var.name_prefix
  lambda_zip_dir = "${path.root}/../target/lambda"
  config_file    = var.config_file

  check_auth           = var.check_auth
  check_caller_arns    = var.check_caller_arns
  check_iam_principals = var.check_iam_principals
  public_url           = var.public_url
  link_ttl             = var.link_ttl

  gcp_provider_id           = var.gcp_provider_id
  gcp_push_audience         = var.gcp_push_audience
  gcp_push_service_account  = var.gcp_push_service_account
  gcp_signup_audience       = var.gcp_signup_audience
  gcp_external_account_json = var.gcp_external_account_json

  secrets_extension_layer_arn = var.secrets_extension_layer_arn
  log_level                   = var.log_level
  log_retention_days          = var.log_retention_days
  function_sizing             = var.function_sizing

  table_deletion_protection   = var.table_deletion_protection
  pitr_recovery_days          = var.pitr_recovery_days
  secret_recovery_window_days = var.secret_recovery_window_days

  alarm_topic_arn                    = var.alarm_topic_arn
  create_alarm_topic                 = var.create_alarm_topic
  alarm_emails                       = var.alarm_emails
  metric_namespace                   = var.metric_namespace
  pending_delivery_age_alarm_seconds = var.pending_delivery_age_alarm_seconds
  reconcile_schedule                 = var.reconcile_schedule
  notify_retry_schedule              = var.notify_retry_schedule
}
