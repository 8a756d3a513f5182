# `terraform test` for the module, on mock providers: no AWS account, no
# credentials, nothing leaves the machine. infra/check.sh runs it whenever
# `terraform init` can install the providers; it needs hashicorp/aws >= 6.28.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { region = "us-east-1" }
  }
  # Mocked data sources compute nothing: the policy documents are placeholders
  # here (tests/tests/infra.rs checks what the policies grant).
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_lambda_layer_version" {
    defaults = { arn = "arn:aws:lambda:us-east-1:123456789012:layer:tollgate-config:1" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/tollgate" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/tollgate" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/tollgate" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tollgate/secrets-AbCdEf" }
  }
  mock_resource "aws_lambda_function" {
    defaults = { arn = "arn:aws:lambda:us-east-1:123456789012:function:tollgate" }
  }
  mock_resource "aws_lambda_function_url" {
    defaults = { function_url = "https://abc.lambda-url.us-east-1.on.aws/" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:tollgate-alarms" }
  }
}

mock_provider "archive" {}

variables {
  lambda_zip_dir              = "tests/fixtures/lambda"
  config_file                 = "tests/fixtures/tollgate.toml"
  secrets_extension_layer_arn = "arn:aws:lambda:us-east-1:177933569100:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:17"
}

run "defaults" {
  command = apply

  assert {
    condition     = toset(keys(aws_lambda_function.fn)) == toset(["purchase-webhook", "pubsub-push", "oauth-callback", "entitlement-check"])
    error_message = "one Lambda per function folder"
  }
  assert {
    condition     = alltrue([for f in aws_lambda_function.fn : f.runtime == "provided.al2023" && f.architectures == tolist(["arm64"])])
    error_message = "provided.al2023 on arm64"
  }
  assert {
    condition     = { for k, u in aws_lambda_function_url.fn : k => u.authorization_type } == { "purchase-webhook" = "NONE", "pubsub-push" = "NONE", "oauth-callback" = "NONE", "entitlement-check" = "AWS_IAM" }
    error_message = "entitlement-check is AWS_IAM by default, the others NONE"
  }
  assert {
    condition     = toset(keys(aws_lambda_permission.public_url)) == toset(["purchase-webhook", "pubsub-push", "oauth-callback"]) && toset(keys(aws_lambda_permission.public_url_invoke)) == toset(keys(aws_lambda_permission.public_url))
    error_message = "both statements for each public URL"
  }
  assert {
    condition     = alltrue([for p in aws_lambda_permission.public_url_invoke : p.invoked_via_function_url && p.action == "lambda:InvokeFunction"])
    error_message = "the InvokeFunction statement is scoped to function URL calls"
  }
  assert {
    condition     = aws_lambda_function.fn["entitlement-check"].environment[0].variables["TOLLGATE_CHECK_AUTH"] == "aws_iam" && !contains(keys(aws_lambda_function.fn["purchase-webhook"].environment[0].variables), "TOLLGATE_CHECK_AUTH")
    error_message = "TOLLGATE_CHECK_AUTH only on entitlement-check"
  }
  assert {
    condition = alltrue([for f in aws_lambda_function.fn : toset(keys(f.environment[0].variables)) == toset(concat(
      ["TOLLGATE_STORE", "TOLLGATE_SECRETS", "TOLLGATE_CONFIG", "RUST_LOG"],
      f.function_name == "tollgate-entitlement-check" ? ["TOLLGATE_CHECK_AUTH", "SECRETS_MANAGER_TTL"] : [],
    ))])
    error_message = "the environment holds settings only (optional Google settings unset when null)"
  }
  assert {
    condition     = aws_lambda_function.fn["pubsub-push"].environment[0].variables["TOLLGATE_STORE"] == "dynamodb:tollgate" && aws_lambda_function.fn["pubsub-push"].environment[0].variables["TOLLGATE_CONFIG"] == "/opt/tollgate.toml"
    error_message = "store and config"
  }
  assert {
    condition     = alltrue([for f in aws_lambda_function.fn : length(f.layers) == 2])
    error_message = "config layer and secrets extension on every function"
  }
  assert {
    condition     = aws_dynamodb_table.this.deletion_protection_enabled && aws_dynamodb_table.this.point_in_time_recovery[0].enabled
    error_message = "deletion protection and PITR"
  }
  assert {
    condition     = length(aws_lambda_permission.check_caller_url) == 0 && length(aws_sns_topic.alarms) == 0
    error_message = "no callers, no topic by default"
  }
  assert {
    condition     = length(aws_cloudwatch_log_metric_filter.pending) == 4
    error_message = "two pending-delivery metric filters on each function holding Deliveries"
  }
  assert {
    condition     = output.github_webhook_url == "https://abc.lambda-url.us-east-1.on.aws/github" && output.gcp_push_endpoint == "https://abc.lambda-url.us-east-1.on.aws/"
    error_message = "URLs to paste"
  }
}

run "api_key_mode" {
  command = apply

  variables {
    check_auth = "api_key"
  }

  assert {
    condition     = aws_lambda_function_url.fn["entitlement-check"].authorization_type == "NONE" && contains(keys(aws_lambda_permission.public_url_invoke), "entitlement-check")
    error_message = "api_key: a public URL with both statements"
  }
  assert {
    condition     = aws_lambda_function.fn["entitlement-check"].environment[0].variables["TOLLGATE_CHECK_AUTH"] == "api_key"
    error_message = "the function is told"
  }
}

run "iam_callers" {
  command = apply

  variables {
    check_caller_arns    = ["arn:aws:iam::123456789012:role/app-a", "111122223333"]
    check_iam_principals = { "arn:aws:iam::123456789012:role/app-a" = "check,seats", "111122223333" = "check" }
  }

  assert {
    condition     = jsondecode(aws_lambda_function.fn["entitlement-check"].environment[0].variables["TOLLGATE_IAM_PRINCIPALS"]) == { "arn:aws:iam::123456789012:role/app-a" = "check,seats", "111122223333" = "check" }
    error_message = "the allow-list reaches the function as JSON"
  }

  assert {
    condition     = length(aws_lambda_permission.check_caller_url) == 2 && alltrue([for p in aws_lambda_permission.check_caller_url : p.function_url_auth_type == "AWS_IAM" && p.action == "lambda:InvokeFunctionUrl"])
    error_message = "InvokeFunctionUrl for each caller"
  }
  assert {
    condition     = length(aws_lambda_permission.check_caller_invoke) == 2 && alltrue([for p in aws_lambda_permission.check_caller_invoke : p.invoked_via_function_url])
    error_message = "InvokeFunction via the URL for each caller"
  }
}

run "overrides_and_alarm_topic" {
  command = apply

  variables {
    function_sizing    = { "entitlement-check" = { reserved_concurrency = 100 } }
    create_alarm_topic = true
    alarm_emails       = ["ops@example.com"]
    gcp_provider_id    = "acme-public"
  }

  assert {
    condition     = aws_lambda_function.fn["entitlement-check"].reserved_concurrent_executions == 100 && aws_lambda_function.fn["entitlement-check"].memory_size == 256 && aws_lambda_function.fn["entitlement-check"].timeout == 5
    error_message = "an override changes only what it names"
  }
  assert {
    condition     = length(aws_sns_topic_subscription.alarm_email) == 1 && aws_cloudwatch_metric_alarm.errors["pubsub-push"].alarm_actions == toset(["arn:aws:sns:us-east-1:123456789012:tollgate-alarms"])
    error_message = "alarms notify the created topic"
  }
  assert {
    condition     = strcontains(aws_kms_key.data.policy, "cloudwatch.amazonaws.com")
    error_message = "CloudWatch may use the key of the encrypted topic"
  }
  assert {
    condition     = aws_lambda_function.fn["oauth-callback"].environment[0].variables["TOLLGATE_GCP_PROVIDER_ID"] == "acme-public"
    error_message = "Google settings reach the functions"
  }
}

run "missing_zip" {
  command = plan

  variables {
    lambda_zip_dir = "tests/fixtures/nowhere"
  }

  expect_failures = [aws_lambda_function.fn]
}
