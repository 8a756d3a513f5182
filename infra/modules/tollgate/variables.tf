# Inputs of the Tollgate module. The root configuration (infra/) passes them
# through from infra/tollgate.tfvars; see infra/tollgate.tfvars.example.

variable "name_prefix" {
  description = "Prefix of every resource name (functions, table, secret, key alias, alarms). One deployment per prefix and region."
  type        = string
  default     = "tollgate"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix: 3-32 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "lambda_zip_dir" {
  description = "Directory holding <function>/bootstrap.zip as `make build` writes them (target/lambda)."
  type        = string
}

variable "config_file" {
  description = "Path of the vendor's tollgate.toml (relative paths are relative to the directory Terraform runs in). Shipped as a Lambda layer at /opt/tollgate.toml."
  type        = string

  validation {
    condition     = fileexists(var.config_file)
    error_message = "config_file: no such file. Point it at your tollgate.toml (start from tollgate.example.toml)."
  }
}

variable "check_auth" {
  description = "How callers authenticate to entitlement-check: \"aws_iam\" (function URL auth AWS_IAM, callers sign with SigV4; API keys cannot get through) or \"api_key\" (function URL auth NONE, every request needs an API key from the secret)."
  type        = string
  default     = "aws_iam"

  validation {
    condition     = contains(["aws_iam", "api_key"], var.check_auth)
    error_message = "check_auth must be \"aws_iam\" or \"api_key\"."
  }
}

variable "check_caller_arns" {
  description = "With check_auth = \"aws_iam\": IAM principals (role/user ARNs, or account ids) allowed to call entitlement-check's URL. Principals of the same account may instead be granted lambda:InvokeFunctionUrl, and lambda:InvokeFunction only with the condition lambda:InvokedViaFunctionUrl = true, in their own policies: a plain lambda:InvokeFunction lets them invoke the function with an event of their own making."
  type        = list(string)
  default     = []
}

variable "check_iam_principals" {
  description = "With check_auth = \"aws_iam\": optional allow-list of IAM callers (12-digit account ids or IAM ARNs; a role ARN covers its sessions) to their entitlement-check scopes (\"check\", \"seats\" or \"check,seats\"), set as TOLLGATE_IAM_PRINCIPALS. Others are refused with 403. Null: every caller the resource policy lets through has every scope."
  type        = map(string)
  default     = null

  validation {
    condition     = var.check_iam_principals == null || var.check_auth == "aws_iam"
    error_message = "check_iam_principals only applies with check_auth = \"aws_iam\"."
  }
  validation {
    condition = var.check_iam_principals == null || alltrue([
      for k, v in coalesce(var.check_iam_principals, {}) :
      can(regex("^([0-9]{12}|arn:[a-z-]+:(iam|sts)::[0-9]{12}:.+)$", k)) && can(regex("^(check|seats)( *, *(check|seats))?$", v))
    ])
    error_message = "check_iam_principals: keys are 12-digit account ids or IAM/STS ARNs, values \"check\", \"seats\" or \"check,seats\"."
  }
}

variable "public_url" {
  description = "Public base URL of oauth-callback when it sits behind a custom domain (TOLLGATE_PUBLIC_URL, no trailing slash). Leave null to use the function URL the request came in on."
  type        = string
  default     = null

  validation {
    condition     = var.public_url == null || can(regex("^https://[^/]+$", var.public_url))
    error_message = "public_url: https://host, no path, no trailing slash."
  }
}

variable "link_ttl" {
  description = "TOLLGATE_LINK_TTL: how long a link from an app user to a customer lives after the sign-in that wrote it (`30d`, `12h`, `90m`, `3600s`). Null: 30 days."
  type        = string
  default     = null

  validation {
    condition     = var.link_ttl == null || can(regex("^[0-9]+[dhms]?$", var.link_ttl))
    error_message = "link_ttl: a number with an optional unit d, h, m or s, e.g. \"30d\"."
  }
}

variable "gcp_provider_id" {
  description = "TOLLGATE_GCP_PROVIDER_ID: your provider id in Google's Producer Portal. Null leaves Google Cloud Marketplace off."
  type        = string
  default     = null
}

variable "gcp_push_audience" {
  description = "TOLLGATE_GCP_PUSH_AUDIENCE: the audience set on the Pub/Sub push subscription's authentication."
  type        = string
  default     = null
}

variable "gcp_push_service_account" {
  description = "TOLLGATE_GCP_PUSH_SERVICE_ACCOUNT: the push subscription's service account email."
  type        = string
  default     = null
}

variable "gcp_signup_audience" {
  description = "TOLLGATE_GCP_SIGNUP_AUDIENCE: the `aud` of Google's sign-up tokens (your product's domain)."
  type        = string
  default     = null
}

variable "gcp_external_account_json" {
  description = "TOLLGATE_GCP_EXTERNAL_ACCOUNT: a Workload Identity Federation credential configuration (JSON, no key material). Alternatively put it in the secret as gcp_external_account."
  type        = string
  default     = null
}

variable "secrets_extension_layer_arn" {
  description = "ARN of the AWS Parameters and Secrets Lambda Extension layer for arm64 in the deployment's region (AWS publishes one per region: see infra/README.md)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:[0-9]+$", var.secrets_extension_layer_arn))
    error_message = "secrets_extension_layer_arn must be the arm64 layer (…:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:<version>): the functions are arm64."
  }
}

variable "log_level" {
  description = "RUST_LOG: error, warn, info, debug or trace."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["error", "warn", "info", "debug", "trace"], var.log_level)
    error_message = "log_level must be error, warn, info, debug or trace."
  }
}

variable "log_retention_days" {
  description = "Retention of each function's CloudWatch log group, in days."
  type        = number
  default     = 365
}

variable "function_sizing" {
  description = "Per-function overrides of memory_mb, timeout_s and reserved_concurrency (-1 = unreserved). Defaults and their reasons: modules/tollgate/functions.tf."
  type = map(object({
    memory_mb            = optional(number)
    timeout_s            = optional(number)
    reserved_concurrency = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for name in keys(var.function_sizing) : contains(["purchase-webhook", "pubsub-push", "oauth-callback", "entitlement-check"], name)])
    error_message = "function_sizing: keys must be function names (purchase-webhook, pubsub-push, oauth-callback, entitlement-check)."
  }
}

variable "table_deletion_protection" {
  description = "DynamoDB deletion protection. Turn it off (and apply) only to delete the table on purpose."
  type        = bool
  default     = true
}

variable "pitr_recovery_days" {
  description = "Point-in-time recovery window of the table, 1-35 days."
  type        = number
  default     = 35

  validation {
    condition     = var.pitr_recovery_days >= 1 && var.pitr_recovery_days <= 35
    error_message = "pitr_recovery_days must be between 1 and 35."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the customer-managed key is deleted after a destroy, 7-30 days."
  type        = number
  default     = 30
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can still be restored (0 deletes at once), 0 or 7-30."
  type        = number
  default     = 30
}

variable "alarm_topic_arn" {
  description = "An existing SNS topic for the alarms. Null: use the topic created with create_alarm_topic, or none."
  type        = string
  default     = null
}

variable "create_alarm_topic" {
  description = "Create an SNS topic (encrypted with the module's key) for the alarms."
  type        = bool
  default     = false
}

variable "alarm_emails" {
  description = "Email addresses subscribed to the created alarm topic (each must confirm the subscription)."
  type        = list(string)
  default     = []
}

variable "metric_namespace" {
  description = "CloudWatch namespace of the metrics Tollgate logs (PendingDeliveries, OldestPendingDeliveryAgeSeconds). Give each deployment in one account and region its own."
  type        = string
  default     = "Tollgate"
}

variable "pending_delivery_age_alarm_seconds" {
  description = "Alarm when a delivery has been pending longer than this (GitHub never retries: someone must run `tollgate replay`)."
  type        = number
  default     = 900
}

variable "reconcile_schedule" {
  description = "EventBridge schedule expression of the reconciliation purchase-webhook runs (rate(...) or cron(...)); null: no schedule."
  type        = string
  default     = "rate(6 hours)"

  validation {
    condition     = var.reconcile_schedule == null || can(regex("^(rate|cron)\\(.+\\)$", var.reconcile_schedule))
    error_message = "reconcile_schedule must be rate(...) or cron(...), or null."
  }
}

variable "notify_retry_schedule" {
  description = "EventBridge schedule expression of the timer that sends change notifications whose retry came due (purchase-webhook); null: retries wait for the next commit or reconciliation."
  type        = string
  default     = "rate(1 minute)"

  validation {
    condition     = var.notify_retry_schedule == null || can(regex("^(rate|cron)\\(.+\\)$", var.notify_retry_schedule))
    error_message = "notify_retry_schedule must be rate(...) or cron(...), or null."
  }
}
