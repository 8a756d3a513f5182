# Function URLs and who may call them.
#
# Since October 2025 a function URL needs two resource-policy statements: one
# for lambda:InvokeFunctionUrl and one for lambda:InvokeFunction (scoped to
# calls through a function URL). Both are declared here so Terraform tracks
# them. (Provider >= 6.28 also adds two untracked statements,
# FunctionURLAllowPublicAccess and FunctionURLAllowInvokeAction, when it
# creates a NONE URL; the statement ids below differ so the two sets never
# collide.)

resource "aws_lambda_function_url" "fn" {
  for_each = local.functions

  function_name      = aws_lambda_function.fn[each.key].function_name
  authorization_type = local.url_auth[each.key]
  invoke_mode        = "BUFFERED"

  #checkov:skip=CKV_AWS_258:purchase-webhook, pubsub-push and oauth-callback are called by GitHub, Google and browsers, which cannot sign with SigV4; each request is authenticated by the function (HMAC signature, Google OIDC token, single-use OAuth state, signed sign-up token) before anything is stored. entitlement-check is AWS_IAM unless check_auth = "api_key", where every request needs an API key.
}

# Public URLs: anyone may send a request; the function decides.
resource "aws_lambda_permission" "public_url" {
  for_each = local.public_functions

  statement_id           = "TollgatePublicUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.fn[each.key].function_name
  principal              = "*"
  function_url_auth_type = "NONE"

  #checkov:skip=CKV_AWS_301:Public by design: the caller is GitHub, Google or a browser; the function authenticates every request itself (see aws_lambda_function_url.fn).
}

resource "aws_lambda_permission" "public_url_invoke" {
  for_each = local.public_functions

  statement_id             = "TollgatePublicUrlInvoke"
  action                   = "lambda:InvokeFunction"
  function_name            = aws_lambda_function.fn[each.key].function_name
  principal                = "*"
  invoked_via_function_url = true

  #checkov:skip=CKV_AWS_301:Public only through the function URL (invoked_via_function_url): the second statement the October 2025 model requires; the function authenticates every request itself.
}

# AWS_IAM: the listed principals may call entitlement-check's URL (SigV4,
# service "lambda"). Lambda refuses any other request before the code runs.
locals {
  check_callers = var.check_auth == "aws_iam" ? toset(var.check_caller_arns) : toset([])
}

resource "aws_lambda_permission" "check_caller_url" {
  for_each = local.check_callers

  statement_id           = "TollgateCheckCallerUrl-${substr(sha256(each.key), 0, 16)}"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.fn["entitlement-check"].function_name
  principal              = each.key
  function_url_auth_type = "AWS_IAM"
}

resource "aws_lambda_permission" "check_caller_invoke" {
  for_each = local.check_callers

  statement_id             = "TollgateCheckCallerInvoke-${substr(sha256(each.key), 0, 16)}"
  action                   = "lambda:InvokeFunction"
  function_name            = aws_lambda_function.fn["entitlement-check"].function_name
  principal                = each.key
  invoked_via_function_url = true
}
