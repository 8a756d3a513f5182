locals {
  # Function URLs end with "/"; the paths below start with one.
  base_url = { for name, url in aws_lambda_function_url.fn : name => trimsuffix(url.function_url, "/") }
}

output "function_urls" {
  description = "Base URL of each function (each answers GET /healthz)."
  value       = local.base_url
}

output "github_webhook_url" {
  description = "GitHub Marketplace listing → Webhook → Payload URL (content type application/json)."
  value       = "${local.base_url["purchase-webhook"]}/github"
}

output "github_setup_url" {
  description = "GitHub App → General → Setup URL (or the OAuth App listing's Installation URL)."
  value       = "${local.base_url["oauth-callback"]}/github/setup"
}

output "github_callback_url" {
  description = "GitHub App → General → Callback URL (must match exactly)."
  value       = "${local.base_url["oauth-callback"]}/github/callback"
}

output "gcp_push_endpoint" {
  description = "Google Pub/Sub push subscription → Endpoint URL (enable authentication; ack deadline 30 s or more)."
  value       = "${local.base_url["pubsub-push"]}/"
}

output "gcp_signup_url" {
  description = "Google Producer Portal → sign-up URL."
  value       = "${local.base_url["oauth-callback"]}/gcp/signup"
}

output "gcp_login_url" {
  description = "Google Producer Portal → \"Manage on provider\" link."
  value       = "${local.base_url["oauth-callback"]}/gcp/login"
}

output "q2_url" {
  description = "TOLLGATE_URL of the vendor's Q2 extension relay: POST <this> with Tollgate-Signature."
  value       = "${local.base_url["purchase-webhook"]}/q2"
}

output "entitlement_check_url" {
  description = "Base URL of the entitlement-check API (POST /v1/check, ...) for the vendor's apps."
  value       = local.base_url["entitlement-check"]
}

output "entitlement_check_auth" {
  description = "aws_iam: callers sign with SigV4 (service lambda); api_key: callers send an API key."
  value       = var.check_auth
}

output "table_name" {
  description = "The DynamoDB table (TOLLGATE_STORE=dynamodb:<this> for `tollgate replay` and `tollgate api-key`)."
  value       = aws_dynamodb_table.this.name
}

output "secret_arn" {
  description = "The secret the functions read (TOLLGATE_SECRETS=aws-sm:<this>)."
  value       = aws_secretsmanager_secret.this.arn
}

output "secret_put_command" {
  description = "Sets the secret's value from a local JSON file (never through Terraform)."
  value       = "aws secretsmanager put-secret-value --region ${local.region} --secret-id ${aws_secretsmanager_secret.this.arn} --secret-string file://secrets.json"
}

output "kms_key_arn" {
  description = "The customer-managed key of the table, secret, log groups and alarm topic."
  value       = aws_kms_key.data.arn
}

output "alarm_topic_arns" {
  description = "The SNS topics the alarms notify (empty: the alarms notify no one)."
  value       = local.alarm_actions
}
