# The four functions: one per folder in functions/, built by `make build` into
# target/lambda/<name>/bootstrap.zip (arm64, provided.al2023).

locals {
  # What each function's code uses: the store roles it holds, the DynamoDB
  # actions those roles call (on the table and on GSI1) and whether it reads
  # the secret. The IAM policies in iam.tf are built from this file and from
  # nothing else; tests/tests/infra.rs derives the same facts from the Rust
  # source (shared/src/store/dynamo/*.rs, ARCHITECTURE.md's role table) and
  # fails when they drift apart.
  store_access = jsondecode(file("${path.module}/store-access.json"))

  # Memory (MB), timeout (s) and reserved concurrency per function, chosen for
  # what each one waits on. Space is not the constraint: peak RSS is ~8.5 MB
  # per function (README, "Budgets, measured"). Memory buys CPU: at 128 MB
  # Lambda gives about 1/14 of a vCPU, and these are I/O-bound handlers whose
  # CPU work per request is a few microseconds, so more memory would mostly
  # buy faster cold starts. Override any value with var.function_sizing.
  default_sizing = {
    # GitHub waits 10 s for the webhook's answer and never retries a failed
    # delivery; Q2's relay waits for the synchronous answer. The code bounds
    # store work to 2 s (record) + 5 s (process), so 10 s leaves room for a cold
    # start and the reply; past 10 s GitHub has given up anyway and the
    # delivery is pending for `tollgate replay`. 20 concurrent executions
    # serve hundreds of deliveries a second and cap what a flood of forged
    # (401) requests can cost; the throttle alarm says when the cap bites
    # (GitHub does not retry a throttled delivery: redeliver it from the
    # listing's webhook page).
    #
    # The reconciliation schedule (schedule.tf) also runs here, and a run reads
    # every listing page: 300 s. The webhook paths stay bounded by their own
    # 2 s + 5 s whatever the Lambda timeout; a run stops 5 s before its
    # deadline (what it fixed stays fixed).
    purchase-webhook = { memory_mb = 128, timeout_s = 300, reserved_concurrency = 20 }

    # Tollgate bounds a push to ~10 s (2 s record + 8 s resolve, apply and
    # approve, Procurement retries included). 15 s covers that plus a cold
    # start; set the push subscription's ack deadline to 30 s or more so
    # Pub/Sub never redelivers a push that is still running. Pub/Sub backs off
    # on 429/503, so the cap only slows a burst down.
    pubsub-push = { memory_mb = 128, timeout_s = 15, reserved_concurrency = 20 }

    # Browser pages: the GitHub callback has its own 8 s deadline (token
    # exchange, /user, purchases); Google's sign-up makes a few Procurement
    # calls of at most 4 s each. 20 s is the most a person should wait for a
    # page. People sign up at human pace: 10 concurrent executions are plenty
    # and cap what a script hammering /github/setup (a token write each) costs.
    oauth-callback = { memory_mb = 128, timeout_s = 20, reserved_concurrency = 10 }

    # The hot path: every request of the vendor's apps waits on it. 256 MB
    # doubles the CPU share (about 1/7 vCPU), which halves the CPU-bound part
    # of a cold start (TLS handshakes, the CA bundle) on the call users feel;
    # a warm check is one Query. 5 s matches the client's own timeout
    # (tollgate-client gives up after 5 s). Unreserved (-1) by default: with
    # AWS_IAM auth Lambda refuses unsigned requests before the code runs, so
    # there is no anonymous traffic to cap, and a cap would throttle the
    # vendor's own apps. With check_auth = "api_key" (a public URL), set one.
    entitlement-check = { memory_mb = 256, timeout_s = 5, reserved_concurrency = -1 }
  }

  sizing_overrides = {
    for name, o in var.function_sizing : name => { for k, v in o : k => v if v != null }
  }

  functions = {
    for name, access in local.store_access : name => merge(
      local.default_sizing[name],
      lookup(local.sizing_overrides, name, {}),
      access,
      {
        function_name = "${var.name_prefix}-${name}"
        zip           = "${var.lambda_zip_dir}/${name}/bootstrap.zip"
      },
    )
  }

  # Public function URLs (auth NONE): GitHub, Google and browsers cannot sign
  # requests with SigV4, so these functions authenticate every request
  # themselves (HMAC signature, Google's OIDC token, single-use OAuth state,
  # Google's signed sign-up token). entitlement-check is public only when it
  # authenticates with API keys.
  url_auth = {
    for name in keys(local.functions) : name => (
      name == "entitlement-check" && var.check_auth == "aws_iam" ? "AWS_IAM" : "NONE"
    )
  }
  public_functions = toset([for name, auth in local.url_auth : name if auth == "NONE"])

  # Settings every function reads at cold start (shared/src/settings.rs); no
  # secrets here: those come from Secrets Manager.
  environment = merge(
    {
      TOLLGATE_STORE   = "dynamodb:${aws_dynamodb_table.this.name}"
      TOLLGATE_SECRETS = "aws-sm:${aws_secretsmanager_secret.this.arn}"
      TOLLGATE_CONFIG  = "/opt/tollgate.toml" # from the config layer (config.tf)
      RUST_LOG         = var.log_level
      # No SSL_CERT_FILE: TLS trusts Mozilla's roots compiled into the
      # binaries (tollgate::https), read from nowhere at cold start.
    },
    # Optional settings: unset unless given (the code's defaults apply).
    { for k, v in {
      TOLLGATE_PUBLIC_URL               = var.public_url
      TOLLGATE_GCP_PROVIDER_ID          = var.gcp_provider_id
      TOLLGATE_GCP_PUSH_AUDIENCE        = var.gcp_push_audience
      TOLLGATE_GCP_PUSH_SERVICE_ACCOUNT = var.gcp_push_service_account
      TOLLGATE_GCP_SIGNUP_AUDIENCE      = var.gcp_signup_audience
      TOLLGATE_GCP_EXTERNAL_ACCOUNT     = var.gcp_external_account_json
      TOLLGATE_LINK_TTL                 = var.link_ttl
    } : k => v if v != null && v != "" },
  )
}

resource "aws_lambda_function" "fn" {
  for_each = local.functions

  function_name = each.value.function_name
  description   = "Tollgate ${each.key}"
  role          = aws_iam_role.fn[each.key].arn
  runtime       = "provided.al2023"
  architectures = ["arm64"]
  handler       = "bootstrap" # unused by provided.* runtimes

  filename = each.value.zip
  # fileexists() keeps a missing zip to the precondition's message below.
  source_code_hash = fileexists(each.value.zip) ? filebase64sha256(each.value.zip) : null

  memory_size                    = each.value.memory_mb
  timeout                        = each.value.timeout_s
  reserved_concurrent_executions = each.value.reserved_concurrency

  # The config layer provides /opt/tollgate.toml; the AWS Parameters and
  # Secrets Lambda extension serves the secret on localhost:2773.
  layers = concat(
    [aws_lambda_layer_version.config.arn],
    each.value.secrets ? [var.secrets_extension_layer_arn] : [],
  )

  environment {
    variables = merge(
      local.environment,
      # How callers authenticate to entitlement-check (its URL's auth type):
      # the function accepts only IAM callers behind AWS_IAM and refuses
      # events naming one behind NONE. It re-reads its API keys every 60 s
      # (TOLLGATE_API_KEYS_TTL); the secrets extension must not cache the
      # secret longer, or a deleted key would outlive that bound (README,
      # "Ask from your app").
      each.key == "entitlement-check" ? merge(
        { TOLLGATE_CHECK_AUTH = var.check_auth, SECRETS_MANAGER_TTL = "60" },
        var.check_iam_principals == null ? {} : { TOLLGATE_IAM_PRINCIPALS = jsonencode(var.check_iam_principals) },
      ) : {},
    )
  }

  logging_config {
    # The code already writes JSON lines with a "level" key; JSON also makes
    # Lambda's own START/END/REPORT lines structured.
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.fn[each.key].name
  }

  lifecycle {
    precondition {
      condition     = fileexists(each.value.zip)
      error_message = "${each.value.zip} does not exist: run `make build` first (`make deploy` and `make plan` do)."
    }
  }

  # The role must be able to write logs from the first invocation on.
  depends_on = [aws_iam_role_policy.fn]

  #checkov:skip=CKV_AWS_116:No dead-letter queue: function URL invocations are synchronous; the one asynchronous invoke, the reconcile schedule, is not retried on purpose (the next run repeats it) and has its own alarms.
  #checkov:skip=CKV_AWS_117:Not in a VPC: the functions reach DynamoDB, Secrets Manager, GitHub and Google over TLS; a VPC would add NAT cost and cold-start time and protect nothing here.
  #checkov:skip=CKV_AWS_173:The environment holds no secrets (table name, secret ARN, public URLs); Lambda encrypts it at rest with its AWS managed key. Secrets come from Secrets Manager under the CMK.
  #checkov:skip=CKV_AWS_272:No code signing: zips are built by `make build` and uploaded directly; AWS Signer needs signed artifacts in S3, a separate pipeline.
  #checkov:skip=CKV_AWS_50:No X-Ray: the code emits no trace segments; request ids in the JSON logs tie a request together, and active tracing would need xray:Put* on "*".
}
