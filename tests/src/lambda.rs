//! The functions' release binaries run as Lambda runs them, for the
//! release-binary tests (`tests/tests/lambda_runtime.rs`) and the function
//! benchmarks (`tests/benches/functions.rs`): building them, a deployment on
//! moto (table, secrets file, configuration, environment), and function-URL
//! events (payload format 2.0) in and out.

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
use tollgate::marketplace::github::SECRET_NAME as WEBHOOK_SECRET;
use tollgate::store::dynamo::{DynamoStore, create_table};

use crate::runtime_api::{FunctionConfig, FunctionProcess, Outcome};

/// The four functions, as the Makefile lists them.
pub const FUNCTIONS: [&str; 4] = [
    "purchase-webhook",
    "pubsub-push",
    "oauth-callback",
    "entitlement-check",
];

pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The target directory this test binary was built in
/// (`<target>/<profile>/deps/<test>`), so the release binaries land where
/// `make build`/`make test` put them.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds (if anything changed) the four release binaries, once per test
/// binary, and returns the directory they are in.
pub fn release_binaries() -> &'static Path {
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
pub struct Deployment {
    pub store: DynamoStore,
    pub table: String,
    pub webhook_secret: String,
    pub api_key: String,
    pub dir: tempfile::TempDir,
}

impl Deployment {
    pub async fn new() -> Self {
        let client = crate::moto::client();
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
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL_DYNAMODB".into(),
                crate::moto::endpoint().into(),
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
        ]
    }

    /// Adds `extra` to the deployment's secrets file (read at cold start).
    pub fn add_secrets(&self, extra: &Value) {
        let path = self.dir.path().join("secrets.json");
        let mut secrets: Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("secrets are JSON");
        if let (Some(secrets), Some(extra)) = (secrets.as_object_mut(), extra.as_object()) {
            secrets.extend(extra.clone());
        }
        std::fs::write(&path, secrets.to_string()).unwrap();
    }

    /// Starts `function`'s release binary and waits for its cold start.
    pub async fn start(&self, function: &str) -> FunctionProcess {
        self.start_with(function, &[]).await
    }

    /// [`Deployment::start`] with `extra` variables in its environment.
    pub async fn start_with(&self, function: &str, extra: &[(&str, &str)]) -> FunctionProcess {
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
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

// --------------------------------------------------- function-URL events --

/// One HTTP request to a function URL, as Lambda turns it into an event.
pub struct UrlRequest {
    pub method: &'static str,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub base64: bool,
    pub iam: bool,
}

impl UrlRequest {
    pub fn get(path: &str) -> Self {
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

    pub fn post_json(path: &str, body: &Value) -> Self {
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

    /// A POST with the given headers (names as sent; lower-cased here, as
    /// function URLs hand them over) and raw body.
    pub fn post<N: AsRef<str>>(path: &str, headers: Vec<(N, String)>, body: Vec<u8>) -> Self {
        Self {
            method: "POST",
            path: path.into(),
            query: String::new(),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v))
                .collect(),
            body: Some(body),
            base64: false,
            iam: false,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The function URL hands the body over base64-encoded.
    pub fn base64(mut self) -> Self {
        self.base64 = true;
        self
    }

    /// Signed with SigV4 through an `AWS_IAM` function URL: Lambda puts the
    /// caller in `requestContext.authorizer.iam`.
    pub fn iam(mut self) -> Self {
        self.iam = true;
        self
    }

    /// The payload format 2.0 event Lambda builds for this request.
    pub fn event(&self, url_id: &str) -> Value {
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
            "requestId": crate::runtime_api::uuid_v4(),
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
pub struct UrlResponse {
    pub request_id: String,
    pub status: u16,
    pub headers: Map<String, Value>,
    pub body: Vec<u8>,
}

impl UrlResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }
}

/// Sends `req` to `f` as a function-URL event; checks the answer is a
/// well-formed function-URL response carrying the Lambda request id.
pub async fn call(f: &mut FunctionProcess, req: UrlRequest) -> UrlResponse {
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
