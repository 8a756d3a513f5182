# One secret: the JSON object of strings the functions read at cold start
# (github_webhook_secret, github_client_id, ..., q2_signing_secret,
# api_key.<name>; README "Deploy"). Terraform creates the secret, never its
# value: set it with `aws secretsmanager put-secret-value` (output
# `secret_put_command`), so no secret is ever written into Terraform state.

resource "aws_secretsmanager_secret" "this" {
  name                    = "${var.name_prefix}/secrets"
  description             = "Tollgate secrets: one JSON object of strings. Set the value out of band (aws secretsmanager put-secret-value); Terraform never writes it."
  kms_key_id              = aws_kms_key.data.arn
  recovery_window_in_days = var.secret_recovery_window_days

  #checkov:skip=CKV2_AWS_57:No automatic rotation: the values are issued by GitHub, Google and Q2 (webhook secrets, OAuth credentials, keys) and rotated by hand with the *_previous entries the code accepts during a rotation (README).
}
