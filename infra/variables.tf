# Variables of `make deploy`, set in infra/tollgate.tfvars (copy
# tollgate.tfvars.example). Each is passed to modules/tollgate, whose
# variables.tf has the same descriptions and the validations.

variable "aws_region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "tags" {
  description = "Tags added to every resource (besides Application = tollgate, ManagedBy = terraform)."
  type        = map(string)
  default     = {}
}

variable "name_prefix" {
  description = "Prefix of every resource name. One deployment per prefix and region."
  type        = string
  default     = "tollgate"
}

variable "config_file" {
  description = "Your tollgate.toml, relative to infra/ (e.g. \"../tollgate.toml\"). Shipped as a Lambda layer at /opt/tollgate.toml."
  type        = string
}

variable "check_auth" {
  description = "entitlement-check authentication: \"aws_iam\" (SigV4 callers only) or \"api_key\" (public URL, API keys)."
  type        = string
  default     = "aws_iam"
}

variable "check_caller_arns" {
  description = "With check_auth = \"aws_iam\": principals (role/user ARNs or account ids) allowed to call entitlement-check."
  type        = list(string)
  default     = []

  validation {
    condition     = var.check_auth == "aws_iam" || length(var.check_caller_arns) == 0
    error_message = "check_caller_arns only applies with check_auth = \"aws_iam\" (with \"api_key\" callers authenticate with keys)."
  }
}

variable "check_iam_principals" {
  description = "With check_auth = \"aws_iam\": optional map of IAM callers (account ids or IAM ARNs; a role ARN covers its sessions) to their scopes (\"check\", \"seats\", \"check,seats\"); others are refused. Null: every allowed caller has every scope."
  type        = map(string)
  default     = null
}

variable "public_url" {
  description = "Custom https base URL of oauth-callback, if it has one (TOLLGATE_PUBLIC_URL). Null: the function URL."
  type        = string
  default     = null
}

variable "link_ttl" {
  description = "How long an app user's link to a customer lives unless a sign-in renews it (TOLLGATE_LINK_TTL, e.g. \"30d\"). Null: 30 days."
  type        = string
  default     = null
}

variable "gcp_provider_id" {
  description = "Google Producer Portal provider id (TOLLGATE_GCP_PROVIDER_ID). Null: Google Cloud Marketplace off."
  type        = string
  default     = null
}

variable "gcp_push_audience" {
  description = "Audience of the Pub/Sub push subscription's OIDC token (TOLLGATE_GCP_PUSH_AUDIENCE)."
  type        = string
  default     = null
}

variable "gcp_push_service_account" {
  description = "Service account email of the push subscription (TOLLGATE_GCP_PUSH_SERVICE_ACCOUNT)."
  type        = string
  default     = null
}

variable "gcp_signup_audience" {
  description = "`aud` of Google's sign-up tokens, your product's domain (TOLLGATE_GCP_SIGNUP_AUDIENCE)."
  type        = string
  default     = null
}

variable "gcp_external_account_json" {
  description = "Workload Identity Federation credential configuration JSON (TOLLGATE_GCP_EXTERNAL_ACCOUNT), if not in the secret."
  type        = string
  default     = null
}

variable "secrets_extension_layer_arn" {
  description = "AWS Parameters and Secrets Lambda Extension layer, arm64, in aws_region. The default is us-east-1's; AWS lists every region's ARN in its Secrets Manager docs (\"Use AWS Secrets Manager secrets in AWS Lambda functions\")."
  type        = string
  default     = "arn:aws:lambda:us-east-1:177933569100:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:17"

  validation {
    condition     = strcontains(var.secrets_extension_layer_arn, ":lambda:${var.aws_region}:")
    error_message = "secrets_extension_layer_arn is for another region than aws_region: use the arm64 ARN AWS publishes for your region."
  }
}

variable "log_level" {
  description = "RUST_LOG of every function."
  type        = string
  default     = "info"
}

variable "log_retention_days" {
  description = "CloudWatch log retention, days."
  type        = number
  default     = 365
}

variable "function_sizing" {
  description = "Per-function overrides: { \"<function>\" = { memory_mb = ..., timeout_s = ..., reserved_concurrency = ... } }."
  type = map(object({
    memory_mb            = optional(number)
    timeout_s            = optional(number)
    reserved_concurrency = optional(number)
  }))
  default = {}
}

variable "table_deletion_protection" {
  description = "DynamoDB deletion protection."
  type        = bool
  default     = true
}

variable "pitr_recovery_days" {
  description = "Point-in-time recovery window, 1-35 days."
  type        = number
  default     = 35
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret stays restorable (0 or 7-30)."
  type        = number
  default     = 30
}

variable "alarm_topic_arn" {
  description = "Existing SNS topic for the alarms."
  type        = string
  default     = null
}

variable "create_alarm_topic" {
  description = "Create an encrypted SNS topic for the alarms."
  type        = bool
  default     = false
}

variable "alarm_emails" {
  description = "Emails subscribed to the created alarm topic."
  type        = list(string)
  default     = []
}

variable "metric_namespace" {
  description = "CloudWatch namespace of Tollgate's own metrics."
  type        = string
  default     = "Tollgate"
}

variable "pending_delivery_age_alarm_seconds" {
  description = "Alarm when a delivery has been pending longer than this many seconds."
  type        = number
  default     = 900
}

variable "reconcile_schedule" {
  description = "EventBridge schedule of the reconciliation (rate(...) or cron(...)); null: none."
  type        = string
  default     = "rate(6 hours)"
}

variable "notify_retry_schedule" {
  description = "How often purchase-webhook sends change notifications whose retry came due (EventBridge rate(...) or cron(...)); null: no timer."
  type        = string
  default     = "rate(1 minute)"
}
