//! What we deploy is what we test: the four functions' release `bootstrap`
//! binaries, built with the workspace's release profile (the profile
//! `make build` ships; here for the host's architecture, since arm64 cannot
//! run on the build machine), each run as its own process under a local
//! Lambda Runtime API ([`tollgate_tests::runtime_api`]) with the environment
//! Lambda gives it, receiving function-URL events (payload format 2.0, text
//! and base64 bodies) and storing state in DynamoDB (moto).
//!
//! The binaries are built by this test (`cargo build --release -p …` for
//! the four functions alone, so cargo resolves their features exactly as
//! `make build` does: no embedded SQLite store). `make test` builds them
//! first, so here that build is a no-op; run alone, `cargo test` rebuilds
//! whatever changed rather than testing a stale binary.
//!
//! Each function's peak resident memory (`VmHWM`) is read before it is
//! stopped, printed next to the budget, and must stay under Lambda's 128 MB.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::Utc;
use serde_json::{Map, Value, json};
use tollgate::api::auth::{Scopes, generate};
use tollgate::ingest::ingest;
use tollgate::marketplace::github::SECRET_NAME as WEBHOOK_SECRET;
use tollgate::marketplace::github::webhook::subscription_key;
use tollgate::model::{
    BillingCycle, Customer, CustomerKey, Disposition, EventKind, MarketEvent, Marketplace,
    PendingChange, Plan as ModelPlan, PlanTerms, PriceModel as ModelPriceModel, Status,
};
use tollgate::store::dynamo::{DynamoStore, create_table};
use tollgate::store::{Deliveries, DeliveryStatus, SeatClaims, Subscriptions};
use tollgate_sim::github::webhook::{Account, Action, Delivery, PurchaseEvent};
use tollgate_sim::github::{Org, Plan, PriceModel, Purchase, User};
use tollgate_tests::runtime_api::{FunctionConfig, FunctionProcess, Outcome};

const FUNCTIONS: [&str; 4] = [
    "purchase-webhook",
    "pubsub-push",
    "oauth-callback",
    "entitlement-check",
];

/// Lambda's hard limit at the configured memory size.
const LAMBDA_MEMORY_MB: u32 = 128;
/// The issue's budget for peak RSS per function.
const BUDGET_MB: f64 = 48.0;

// ------------------------------------------------------------ binaries --

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The target directory this test binary was built in
/// (`<target>/<profile>/deps/<test>`), so the release binaries land where
/// `make build`/`make test` put them.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds (if anything changed) the four release binaries, once per test
/// binary, and returns the directory they are in.
fn release_binaries() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = target_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .current_dir(workspace_root())
            .args(["build", "--release", "--target-dir"])
            .arg(&target);
        for f in FUNCTIONS {
            command.args(["-p", f]);
        }
        let status = command
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo to build the release binaries: {e}"));
        assert!(
            status.success(),
            "building the release binaries failed: {status}"
        );
        let dir = target.join("release");
        for f in FUNCTIONS {
            assert!(
                dir.join(f).is_file(),
                "no release binary {}",
                dir.join(f).display()
            );
        }
        dir
    })
}

// -------------------------------------------------------- environment --

static TABLES: AtomicU64 = AtomicU64::new(0);

/// One deployment: a fresh table on moto, a secrets file, the example
/// configuration, and the functions' environment.
struct Deployment {
    store: DynamoStore,
    table: String,
    webhook_secret: String,
    api_key: String,
    dir: tempfile::TempDir,
}

impl Deployment {
    async fn new() -> Self {
        let client = tollgate_tests::moto::client();
        let table = format!(
            "tollgate-lambda-{}-{}",
            std::process::id(),
            TABLES.fetch_add(1, Ordering::Relaxed)
        );
        create_table(&client, &table)
            .await
            .unwrap_or_else(|e| panic!("creating table {table} on moto: {e}"));
        let dir = tempfile::tempdir().expect("temp dir");
        let webhook_secret = tollgate::web::random_token(32).expect("OS random source");
        let key = generate("lambda-test", Scopes::ALL).expect("a new API key");
        let secrets = json!({
            WEBHOOK_SECRET: webhook_secret,
            key.entry.secret_name(): key.entry.secret_value(),
        });
        std::fs::write(dir.path().join("secrets.json"), secrets.to_string()).unwrap();
        Self {
            store: DynamoStore::new(client, table.clone()),
            table,
            webhook_secret,
            api_key: key.key.expose().to_owned(),
            dir,
        }
    }

    /// The function's configured environment variables (what the Terraform
    /// sets), pointed at moto and the temp secrets file.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "AWS_ENDPOINT_URL_DYNAMODB".into(),
                tollgate_tests::moto::endpoint().into(),
            ),
            ("TOLLGATE_STORE".into(), format!("dynamodb:{}", self.table)),
            (
                "TOLLGATE_SECRETS".into(),
                format!("file:{}", self.dir.path().join("secrets.json").display()),
            ),
            (
                "TOLLGATE_CONFIG".into(),
                workspace_root()
                    .join("tollgate.example.toml")
                    .display()
                    .to_string(),
            ),
            ("RUST_LOG".into(), "info".into()),
        ];
        // The Lambda configuration names one CA bundle (see the README's
        // cold start notes); use the host's, if it has one.
        if let Some(bundle) = [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
        ]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        {
            env.push(("SSL_CERT_FILE".into(), bundle.into()));
        }
        env
    }

    /// Adds `extra` to the deployment's secrets file (read at cold start).
    fn add_secrets(&self, extra: &Value) {
        let path = self.dir.path().join("secrets.json");
        let mut secrets: Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("secrets are JSON");
        if let (Some(secrets), Some(extra)) = (secrets.as_object_mut(), extra.as_object()) {
            secrets.extend(extra.clone());
        }
        std::fs::write(&path, secrets.to_string()).unwrap();
    }

    /// Starts `function`'s release binary and waits for its cold start.
    async fn start(&self, function: &str) -> FunctionProcess {
        self.start_with(function, &[]).await
    }

    /// [`Deployment::start`] with `extra` variables in its environment.
    async fn start_with(&self, function: &str, extra: &[(&str, &str)]) -> FunctionProcess {
        let binary = tokio::task::spawn_blocking(release_binaries)
            .await
            .expect("build the release binaries")
            .join(function);
        let log_dir = target_dir().join("lambda-runtime");
        std::fs::create_dir_all(&log_dir).unwrap();
        // Kept when the test fails (its path is in the message), removed
        // when it passes.
        let log = log_dir.join(format!("{function}-{}.log", self.table));
        let mut env = self.env();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut process =
            FunctionProcess::spawn(&binary, FunctionConfig::new(function), &env, &log).await;
        let cold = process.cold_start().await;
        say(&format!(
            "{function}: release binary {} polled the Runtime API {:.1} ms after spawn",
            binary.display(),
            cold.as_secs_f64() * 1000.0
        ));
        process
    }
}

/// Written to the real stderr, so it shows in `cargo test` output even when
/// the test passes (libtest captures only `print!`/`eprint!`).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

// --------------------------------------------------- function-URL events --

/// One HTTP request to a function URL, as Lambda turns it into an event.
struct UrlRequest {
    method: &'static str,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    base64: bool,
    iam: bool,
}

impl UrlRequest {
    fn get(path: &str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Self {
            method: "GET",
            path: path.into(),
            query: query.into(),
            headers: vec![("accept".into(), "application/json".into())],
            body: None,
            base64: false,
            iam: false,
        }
    }

    fn post_json(path: &str, body: &Value) -> Self {
        Self {
            method: "POST",
            path: path.into(),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(serde_json::to_vec(body).unwrap()),
            base64: false,
            iam: false,
        }
    }

    /// A GitHub delivery, headers and body as GitHub sends them.
    fn github(delivery: &Delivery, secret: &str) -> Self {
        Self {
            method: "POST",
            path: "/github".into(),
            query: String::new(),
            headers: delivery
                .headers(secret.as_bytes())
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            body: Some(delivery.body.clone()),
            base64: false,
            iam: false,
        }
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The function URL hands the body over base64-encoded.
    fn base64(mut self) -> Self {
        self.base64 = true;
        self
    }

    /// Signed with SigV4 through an `AWS_IAM` function URL: Lambda puts the
    /// caller in `requestContext.authorizer.iam`.
    fn iam(mut self) -> Self {
        self.iam = true;
        self
    }

    /// The payload format 2.0 event Lambda builds for this request.
    fn event(&self, url_id: &str) -> Value {
        let domain = format!("{url_id}.lambda-url.us-east-1.on.aws");
        let now = Utc::now();
        let mut headers = Map::new();
        for (k, v) in [
            ("host", domain.as_str()),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-for", "203.0.113.7"),
            (
                "x-amzn-trace-id",
                "Root=1-6660c0de-0123456789abcdef01234567",
            ),
        ] {
            headers.insert(k.into(), json!(v));
        }
        for (k, v) in &self.headers {
            // Repeated headers are joined with commas, as function URLs do.
            let joined = match headers.get(k).and_then(Value::as_str) {
                Some(prev) if k != "host" && !k.starts_with("x-") => format!("{prev},{v}"),
                _ => v.clone(),
            };
            headers.insert(k.clone(), json!(joined));
        }
        if let Some(body) = &self.body {
            headers.insert("content-length".into(), json!(body.len().to_string()));
        }
        let user_agent = headers
            .get("user-agent")
            .and_then(Value::as_str)
            .unwrap_or("test-client/1.0")
            .to_owned();
        let mut context = json!({
            "accountId": "anonymous",
            "apiId": url_id,
            "domainName": domain,
            "domainPrefix": url_id,
            "http": {
                "method": self.method,
                "path": self.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": user_agent,
            },
            "requestId": tollgate_tests::runtime_api::uuid_v4(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        });
        if self.iam {
            context["accountId"] = json!("123456789012");
            context["authorizer"] = json!({ "iam": {
                "accessKey": "ASIAEXAMPLE",
                "accountId": "123456789012",
                "callerId": "AROAEXAMPLE:acme-ci-app",
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": "arn:aws:sts::123456789012:assumed-role/acme-ci-app/acme-ci-app",
                "userId": "AROAEXAMPLE:acme-ci-app",
            }});
        }
        let mut event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": self.path,
            "rawQueryString": self.query,
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": self.base64,
        });
        if !self.query.is_empty() {
            let params: Map<String, Value> = url::form_urlencoded::parse(self.query.as_bytes())
                .map(|(k, v)| (k.into_owned(), json!(v)))
                .collect();
            event["queryStringParameters"] = Value::Object(params);
        }
        if let Some(body) = &self.body {
            event["body"] = if self.base64 {
                json!(B64.encode(body))
            } else {
                json!(String::from_utf8(body.clone()).expect("a text body"))
            };
        }
        event
    }
}

/// The function URL's HTTP response, decoded from the function's answer.
#[derive(Debug)]
struct UrlResponse {
    request_id: String,
    status: u16,
    headers: Map<String, Value>,
    body: Vec<u8>,
}

impl UrlResponse {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }
}

/// Sends `req` to `f` as a function-URL event; checks the answer is a
/// well-formed function-URL response carrying the Lambda request id.
async fn call(f: &mut FunctionProcess, req: UrlRequest) -> UrlResponse {
    let url_id = format!("{}0123456789abcdef", f.config.name.replace('-', ""));
    let event = req.event(&url_id[..24.min(url_id.len())]);
    let (request_id, answer) = match f.invoke(&event).await {
        Outcome::Response { request_id, body } => (request_id, body),
        Outcome::Error {
            request_id,
            error_type,
            body,
        } => f.fail(&format!(
            "{} {}: invocation {request_id} failed: {error_type:?} {}",
            req.method,
            req.path,
            String::from_utf8_lossy(&body)
        )),
    };
    let doc: Value = serde_json::from_slice(&answer).unwrap_or_else(|e| {
        f.fail(&format!(
            "answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&answer)
        ))
    });
    let status = doc["statusCode"]
        .as_u64()
        .unwrap_or_else(|| f.fail(&format!("no statusCode in {doc}")));
    let headers = doc["headers"].as_object().cloned().unwrap_or_default();
    let body = match (doc["body"].as_str(), doc["isBase64Encoded"].as_bool()) {
        (None, _) => Vec::new(),
        (Some(b), Some(true)) => B64
            .decode(b)
            .unwrap_or_else(|e| f.fail(&format!("body is not base64: {e}"))),
        (Some(b), _) => b.as_bytes().to_vec(),
    };
    let res = UrlResponse {
        request_id,
        status: u16::try_from(status).unwrap_or(0),
        headers,
        body,
    };
    // Request ids come from the Lambda context, not the event or a header.
    assert_eq!(
        res.header("x-request-id"),
        Some(res.request_id.as_str()),
        "{} {}: x-request-id is the Lambda request id",
        req.method,
        req.path
    );
    res
}

/// Peak RSS of `f` once it is idle again (it has answered everything and
/// polls for more), printed next to the budget and checked against
/// Lambda's limit; then the process is stopped. Its log must hold none of
/// `secrets`; it is removed once everything passed.
async fn finish(mut f: FunctionProcess, secrets: &[&str]) -> f64 {
    f.until_idle().await;
    let (hwm, rss) = f.memory_kib();
    let name = f.config.name.clone();
    let log_path = f.log.clone();
    let log = f.log_text();
    let invocations = f.invocations();
    f.stop().await;
    let peak_mb = hwm as f64 / 1024.0;
    say(&format!(
        "{name}: peak RSS {peak_mb:.1} MB (VmHWM; {:.1} MB resident when idle) — budget {BUDGET_MB:.0} MB ({}), Lambda limit {LAMBDA_MEMORY_MB} MB",
        rss as f64 / 1024.0,
        if peak_mb <= BUDGET_MB {
            "within"
        } else {
            "OVER"
        },
    ));
    assert!(
        peak_mb < f64::from(LAMBDA_MEMORY_MB),
        "{name}: peak RSS {peak_mb:.1} MB reaches Lambda's {LAMBDA_MEMORY_MB} MB"
    );
    // Every request is logged once (JSON lines, as CloudWatch gets them).
    let logged = log
        .lines()
        .filter(|l| l.contains(r#""message":"request""#))
        .count();
    assert_eq!(
        logged as u64,
        invocations,
        "{name}: one request line per invocation ({})",
        log_path.display()
    );
    for secret in secrets {
        assert!(
            !log.contains(secret),
            "{name}: the log contains a secret ({})",
            log_path.display()
        );
    }
    let _ = std::fs::remove_file(log_path);
    peak_mb
}

// ------------------------------------------------------- GitHub events --

const ORG_ID: u64 = 2001;

fn team() -> Plan {
    Plan::new(1002, 2, "Team", PriceModel::PerUnit)
        .with_free_trial()
        .with_prices(400, 4000)
}

fn business() -> Plan {
    Plan::new(1003, 3, "Business", PriceModel::FlatRate).with_prices(9900, 99000)
}

fn event(action: Action, plan: Plan, purchase: Purchase) -> PurchaseEvent {
    let sender = User::new(1, "octocat");
    let org = Org::new(ORG_ID, "acme")
        .with_billing_email("billing@acme.example")
        .with_member(1);
    PurchaseEvent::new(action, sender, Account::Org(org), plan, purchase)
        .expect("a consistent event")
}

fn team_seats(units: u64) -> Purchase {
    Purchase::new(ORG_ID, 1002).with_units(units)
}

fn business_purchase() -> Purchase {
    Purchase::new(ORG_ID, 1003)
}

// ---------------------------------------------------------------- tests --

/// One GitHub Marketplace lifecycle through purchase-webhook, with
/// entitlement checks and seat claims through entitlement-check in between,
/// both release binaries on one DynamoDB table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_lifecycle_and_entitlement_checks_through_the_release_binaries() {
    let d = Deployment::new().await;
    let mut webhook = d.start("purchase-webhook").await;
    let mut check = d.start("entitlement-check").await;
    let secret = d.webhook_secret.clone();
    let bearer = format!("Bearer {}", d.api_key);
    let key = subscription_key(ORG_ID);
    let customer_check = |feature: &str, extra: Value| {
        let mut q = json!({
            "marketplace": "github",
            "customer_id": ORG_ID.to_string(),
            "product": "acme-ci",
            "feature": feature,
        });
        if let (Some(q), Some(extra)) = (q.as_object_mut(), extra.as_object()) {
            q.extend(extra.clone());
        }
        q
    };

    // Both functions answer their health check.
    for f in [&mut webhook, &mut check] {
        let r = call(f, UrlRequest::get("/healthz")).await;
        assert_eq!((r.status, r.json()["status"].clone()), (200, json!("ok")));
        assert_eq!(r.json()["function"], json!(f.config.name));
    }

    // Before any purchase: no subscription.
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &customer_check("private-repos", json!({})))
            .header("authorization", &bearer),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(
        (r.json()["allowed"].clone(), r.json()["reason"].clone()),
        (json!(false), json!("no_subscription"))
    );

    // purchased: Team, 3 seats (body base64-encoded by the function URL).
    let purchased = event(Action::Purchased, team(), team_seats(3))
        .delivery()
        .unwrap();
    let r = call(
        &mut webhook,
        UrlRequest::github(&purchased, &secret).base64(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["status"], "applied", "{}", r.json());
    assert_eq!(r.json()["delivery"], json!(purchased.id));
    assert_eq!(r.json()["subscription"], json!(key.to_string()));
    let s = d.store.get(&key).await.unwrap().expect("the subscription");
    assert_eq!(
        (s.status, s.plan.id.as_str(), s.seats.limit, s.version),
        (Status::Active, "1002", Some(3), 1)
    );

    // An entitlement check with the API key: Team grants private repos.
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &customer_check("private-repos", json!({})))
            .header("authorization", &bearer),
    )
    .await;
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(
        (&v["allowed"], &v["reason"], &v["tier"], &v["status"]),
        (&json!(true), &json!("ok"), &json!("team"), &json!("active")),
        "{v}"
    );

    // The same check from an IAM-authenticated caller, body base64.
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &customer_check("private-repos", json!({})))
            .base64()
            .iam(),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["allowed"].clone()),
        (200, json!(true)),
        "{}",
        r.json()
    );

    // A wrong key is refused.
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &customer_check("private-repos", json!({})))
            .header("authorization", "Bearer tgk_not-a-key"),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.json());

    // A seat claim (base64 body), then the same claim again (idempotent).
    let claim =
        json!({"marketplace": "github", "subscription_id": ORG_ID.to_string(), "user": "alice"});
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/seats/claim", &claim)
            .header("x-api-key", &d.api_key)
            .base64(),
    )
    .await;
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(
        (&v["already_held"], &v["seats"]),
        (&json!(false), &json!({"limit": 3, "used": 1})),
        "{v}"
    );
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/seats/claim", &claim).header("x-api-key", &d.api_key),
    )
    .await;
    assert_eq!(r.json()["already_held"], json!(true), "{}", r.json());

    // A check that claims a seat for bob in the same call.
    let r = call(
        &mut check,
        UrlRequest::post_json(
            "/v1/check",
            &customer_check("private-repos", json!({"user": "bob", "claim_seat": true})),
        )
        .header("authorization", &bearer),
    )
    .await;
    let v = r.json();
    assert_eq!(
        (&v["allowed"], &v["seats"]),
        (&json!(true), &json!({"limit": 3, "used": 2})),
        "{v}"
    );
    assert_eq!(
        d.store.seat_holders(&key).await.unwrap(),
        ["alice", "bob"],
        "seat holders in DynamoDB"
    );

    // changed: Team x3 -> Business (flat rate, 50 seats by config).
    let changed = event(Action::Changed, business(), business_purchase())
        .with_previous(team(), team_seats(3))
        .unwrap()
        .delivery()
        .unwrap();
    let r = call(&mut webhook, UrlRequest::github(&changed, &secret)).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("applied")),
        "{}",
        r.json()
    );
    let s = d.store.get(&key).await.unwrap().unwrap();
    assert_eq!((s.status, s.plan.id.as_str()), (Status::Active, "1003"));
    assert_eq!(s.seats.used, 2, "a plan change keeps the seat holders");

    // pending_change: down to Team x2 at the end of the cycle.
    let at = Utc::now() + chrono::Duration::days(30);
    let pending = event(Action::PendingChange, team(), team_seats(2))
        .with_previous(business(), business_purchase())
        .unwrap()
        .effective_on(at)
        .delivery()
        .unwrap();
    let r = call(&mut webhook, UrlRequest::github(&pending, &secret).base64()).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("applied")),
        "{}",
        r.json()
    );
    let s = d.store.get(&key).await.unwrap().unwrap();
    assert_eq!(s.plan.id, "1003", "a pending change keeps today's plan");
    match &s.pending_change {
        Some(PendingChange::Plan { plan, seats, .. }) => {
            assert_eq!((plan.id.as_str(), *seats), ("1002", Some(2)));
        }
        other => panic!("expected a pending plan change, got {other:?}"),
    }
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &customer_check("sso", json!({})))
            .header("authorization", &bearer),
    )
    .await;
    assert_eq!(
        (r.json()["allowed"].clone(), r.json()["tier"].clone()),
        (json!(true), json!("business")),
        "{}",
        r.json()
    );

    // A delivery with a bad signature is refused, and nothing is stored.
    let forged = event(Action::Cancelled, business(), business_purchase())
        .delivery()
        .unwrap();
    let r = call(
        &mut webhook,
        UrlRequest::github(&forged, &secret).header(
            "x-hub-signature-256",
            &tollgate_sim::github::webhook::sign(b"not the secret", &forged.body),
        ),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.json());
    assert_eq!(
        r.json()["error"]["code"],
        "signature_mismatch",
        "{}",
        r.json()
    );
    assert_eq!(
        d.store
            .delivery(Marketplace::Github, &forged.id, Utc::now())
            .await
            .unwrap(),
        None,
        "a refused delivery is not recorded"
    );

    // cancelled: access ends today; the config's cancelled tier (free) stays.
    let cancelled = event(Action::Cancelled, business(), business_purchase())
        .delivery()
        .unwrap();
    let r = call(
        &mut webhook,
        UrlRequest::github(&cancelled, &secret).base64(),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("applied")),
        "{}",
        r.json()
    );

    // GitHub redelivers the purchase: answered duplicate, nothing applied.
    let r = call(
        &mut webhook,
        UrlRequest::github(&purchased, &secret).base64(),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("duplicate")),
        "{}",
        r.json()
    );

    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &customer_check("private-repos", json!({})))
            .header("authorization", &bearer),
    )
    .await;
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["allowed"], json!(false), "{v}");
    say(&format!(
        "entitlement-check after the cancellation: private-repos -> {}",
        v["reason"]
    ));

    // What landed in DynamoDB.
    let s = d.store.get(&key).await.unwrap().unwrap();
    assert_eq!((s.status, s.version), (Status::Cancelled, 4), "{s:?}");
    let log = d.store.log(&key).await.unwrap();
    let events: Vec<(&str, Disposition)> = log
        .iter()
        .map(|e| (e.event_id.as_str(), e.disposition))
        .collect();
    assert_eq!(
        events,
        [
            (purchased.id.as_str(), Disposition::Applied),
            (changed.id.as_str(), Disposition::Applied),
            (pending.id.as_str(), Disposition::Applied),
            (cancelled.id.as_str(), Disposition::Applied),
        ],
        "the event log"
    );
    for delivery in [&purchased, &changed, &pending, &cancelled] {
        let recorded = d
            .store
            .delivery(Marketplace::Github, &delivery.id, Utc::now())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("delivery {} recorded", delivery.id));
        assert_eq!(recorded.status, DeliveryStatus::Done);
    }

    let secrets = [d.webhook_secret.as_str(), d.api_key.as_str()];
    let peaks = [
        finish(webhook, &secrets).await,
        finish(check, &secrets).await,
    ];
    assert!(peaks.iter().all(|p| *p > 1.0), "{peaks:?}");
}

/// pubsub-push and oauth-callback start on the same environment and answer
/// their health checks through the Runtime API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_push_and_oauth_callback_answer_health_checks() {
    let d = Deployment::new().await;
    for name in ["pubsub-push", "oauth-callback"] {
        let mut f = d.start(name).await;
        for path in ["/healthz", "/healthz?probe=1"] {
            let r = call(&mut f, UrlRequest::get(path)).await;
            assert_eq!(r.status, 200, "{name} {path}");
            assert_eq!(
                r.json(),
                json!({"status": "ok", "function": name}),
                "{name} {path}"
            );
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
        let r = call(&mut f, UrlRequest::get("/no-such-route")).await;
        assert_eq!(r.status, 404, "{name}: {}", r.json());
        finish(f, &[d.webhook_secret.as_str(), d.api_key.as_str()]).await;
    }
}

/// purchase-webhook's EventBridge schedule through its release binary: a
/// `Scheduled Event` from the Runtime API runs reconciliation against the
/// GitHub stand-in with the deployment's secrets and DynamoDB table, fixes
/// the drift (a lost plan change, a lost cancellation found by the
/// `Inventory` scan), and answers the Runtime API with the report as the
/// invocation's success; the next scheduled run finds nothing to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_event_runs_reconcile_through_the_release_binary() {
    let d = Deployment::new().await;
    let sim = tollgate_sim::github::GithubSim::generate().unwrap();
    sim.add_plan(team());
    sim.add_plan(business());
    let gone = ORG_ID + 1;
    sim.add_org(Org::new(ORG_ID, "acme"));
    sim.add_org(Org::new(gone, "globex"));
    // At GitHub: ORG_ID moved to Business, `gone` cancelled (no longer
    // listed). Both deliveries were lost.
    sim.add_purchase(business_purchase());
    let github = sim.start().await.unwrap();
    let app = sim.app();
    d.add_secrets(&json!({
        "github_app_private_key": app.private_key_pem(),
        "github_app_id": app.app_id.to_string(),
    }));
    // Tollgate's store: both on Team x3 since three days ago.
    let at = Utc::now() - chrono::Duration::days(3);
    for id in [ORG_ID, gone] {
        let purchase = MarketEvent {
            id: format!("delivery-{id}"),
            subscription: subscription_key(id),
            customer: Customer::new(CustomerKey::new(Marketplace::Github, id.to_string())),
            product: "acme-ci".into(),
            effective_at: tollgate::reconcile::day_of(at),
            kind: EventKind::Purchased {
                terms: PlanTerms {
                    seats: Some(3),
                    billing_cycle: Some(BillingCycle::Monthly),
                    ..PlanTerms::new(ModelPlan {
                        id: "1002".into(),
                        name: Some("Team".into()),
                        price_model: Some(ModelPriceModel::PerUnit),
                    })
                },
                awaiting: None,
            },
        };
        ingest(&d.store, &purchase, at).await.unwrap();
    }

    let mut webhook = d
        .start_with(
            "purchase-webhook",
            &[
                ("TOLLGATE_GITHUB_API_URL", github.api_url.as_str()),
                ("TOLLGATE_GITHUB_URL", github.web_url.as_str()),
            ],
        )
        .await;
    let scheduled = json!({
        "version": "0", "id": tollgate_tests::runtime_api::uuid_v4(),
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tollgate-reconcile"],
        "detail": {}
    });
    let report = |f: &mut FunctionProcess, outcome: Outcome| -> Value {
        match outcome {
            Outcome::Response { body, .. } => serde_json::from_slice(&body).unwrap_or_else(|e| {
                f.fail(&format!(
                    "the scheduled run's answer is not JSON ({e}): {}",
                    String::from_utf8_lossy(&body)
                ))
            }),
            Outcome::Error {
                error_type, body, ..
            } => f.fail(&format!(
                "the scheduled run failed: {error_type:?} {}",
                String::from_utf8_lossy(&body)
            )),
        }
    };

    let outcome = webhook.invoke(&scheduled).await;
    let first = report(&mut webhook, outcome);
    assert_eq!(first["dry_run"], json!(false), "{first}");
    let github_report = &first["marketplaces"][0];
    assert_eq!(
        (
            &github_report["marketplace"],
            &github_report["checked"],
            &github_report["fixed"],
            &github_report["errors"]
        ),
        (&json!("github"), &json!(2), &json!(2), &json!(0)),
        "{first}"
    );
    let moved = d
        .store
        .get(&subscription_key(ORG_ID))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (moved.status, moved.plan.id.as_str()),
        (Status::Active, "1003")
    );
    let cancelled = d.store.get(&subscription_key(gone)).await.unwrap().unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    let log = d.store.log(&subscription_key(gone)).await.unwrap();
    assert!(
        tollgate::reconcile::is_reconcile_event(&log.last().unwrap().event_id),
        "{log:?}"
    );

    // The next scheduled run: everything in sync, nothing written.
    let log_len = log.len();
    let outcome = webhook.invoke(&scheduled).await;
    let second = report(&mut webhook, outcome);
    assert_eq!(
        (
            &second["marketplaces"][0]["in_sync"],
            &second["marketplaces"][0]["fixed"]
        ),
        (&json!(1), &json!(0)),
        "{second}"
    );
    assert_eq!(
        d.store.log(&subscription_key(gone)).await.unwrap().len(),
        log_len
    );

    webhook.until_idle().await;
    let text = webhook.log_text();
    let log_path = webhook.log.clone();
    webhook.stop().await;
    assert!(
        text.contains("reconcile run") && text.contains("scheduled run"),
        "the runs are logged ({})",
        log_path.display()
    );
    for secret in [app.private_key_pem(), d.webhook_secret.as_str()] {
        assert!(
            !text.contains(secret),
            "the log contains a secret ({})",
            log_path.display()
        );
    }
    let _ = std::fs::remove_file(log_path);
}

/// entitlement-check deployed behind an `AWS_IAM` URL with an allow-list,
/// through its release binary: a hand-written event invoked directly — no
/// IAM caller, an API key instead — is refused as not a function URL
/// request; a listed IAM caller gets its scopes only; an event without
/// `requestContext.http` is an invocation error, never a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_invoke_is_not_trusted_as_an_iam_function_url_request() {
    let d = Deployment::new().await;
    let principals = json!({"arn:aws:iam::123456789012:role/acme-ci-app": "check"}).to_string();
    let mut check = d
        .start_with(
            "entitlement-check",
            &[
                ("TOLLGATE_CHECK_AUTH", "aws_iam"),
                ("TOLLGATE_IAM_PRINCIPALS", principals.as_str()),
            ],
        )
        .await;
    let ask = json!({"marketplace": "github", "customer_id": "1", "product": "acme-ci"});

    // The emulated URL's IAM caller (a session of role acme-ci-app): `check`.
    let r = call(&mut check, UrlRequest::post_json("/v1/check", &ask).iam()).await;
    assert_eq!(
        (r.status, r.json()["reason"].clone()),
        (200, json!("no_subscription")),
        "{}",
        r.json()
    );
    let r = call(&mut check, UrlRequest::get("/v1/seats/github/1").iam()).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (403, json!("insufficient_scope"))
    );

    // A hand-written event with a valid API key and no IAM caller: an
    // AWS_IAM URL never delivers that, so it was invoked directly.
    let bearer = format!("Bearer {}", d.api_key);
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &ask).header("authorization", &bearer),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (401, json!("untrusted_event")),
        "{}",
        r.json()
    );

    // Not a function URL event at all: refused as an invocation error.
    let mut event = UrlRequest::post_json("/v1/check", &ask)
        .iam()
        .event("entitlementcheck01234567");
    event["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("http");
    match check.invoke(&event).await {
        Outcome::Error { .. } => {}
        Outcome::Response { body, .. } => check.fail(&format!(
            "an event without requestContext.http was answered: {}",
            String::from_utf8_lossy(&body)
        )),
    }
    check.stop().await;
}

#[test]
fn the_functions_list_matches_the_makefile() {
    let makefile = std::fs::read_to_string(workspace_root().join("Makefile")).unwrap();
    let line = makefile
        .lines()
        .find_map(|l| l.strip_prefix("FUNCTIONS := "))
        .expect("FUNCTIONS in the Makefile");
    assert_eq!(line.split_whitespace().collect::<Vec<_>>(), FUNCTIONS);
}
