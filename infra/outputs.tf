# Where to paste what (README, "Deploy"): `terraform -chdir=infra output`.

output "github_webhook_url" {
  description = "GitHub Marketplace listing → Webhook → Payload URL."
  value       = module.tollgate.github_webhook_url
}

output "github_setup_url" {
  description = "GitHub App → Setup URL."
  value       = module.tollgate.github_setup_url
}

output "github_callback_url" {
  description = "GitHub App → Callback URL."
  value       = module.tollgate.github_callback_url
}

output "gcp_push_endpoint" {
  description = "Pub/Sub push subscription → Endpoint URL."
  value       = module.tollgate.gcp_push_endpoint
}

output "gcp_signup_url" {
  description = "Producer Portal → sign-up URL."
  value       = module.tollgate.gcp_signup_url
}

output "gcp_login_url" {
  description = "Producer Portal → \"Manage on provider\" link."
  value       = module.tollgate.gcp_login_url
}

output "q2_url" {
  description = "TOLLGATE_URL of the Q2 extension relay."
  value       = module.tollgate.q2_url
}

output "entitlement_check_url" {
  description = "Base URL of the entitlement-check API."
  value       = module.tollgate.entitlement_check_url
}

output "entitlement_check_auth" {
  description = "How callers authenticate to entitlement-check."
  value       = module.tollgate.entitlement_check_auth
}

output "function_urls" {
  description = "Base URL of each function (GET /healthz on each)."
  value       = module.tollgate.function_urls
}

output "table_name" {
  description = "The DynamoDB table."
  value       = module.tollgate.table_name
}

output "secret_arn" {
  description = "The secret the functions read."
  value       = module.tollgate.secret_arn
}

output "secret_put_command" {
  description = "Sets the secret's value from secrets.json."
  value       = module.tollgate.secret_put_command
}

output "alarm_topic_arns" {
  description = "SNS topics the alarms notify."
  value       = module.tollgate.alarm_topic_arns
}
