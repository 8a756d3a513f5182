//! `ProcurementClient` and its credentials over real HTTP, against stand-ins
//! of Google's endpoints written here and served on 127.0.0.1:
//!
//! - an OAuth token endpoint that verifies the JWT-bearer assertion (RS256,
//!   with the public half of a key made at test time; `kid`, `iss`, `scope`,
//!   `aud`, lifetime);
//! - Google STS, which verifies the AWS SigV4 signature of the subject token
//!   with its own implementation of the algorithm, and IAM Credentials'
//!   `generateAccessToken`, which only accepts STS's federated tokens;
//! - the Procurement API, which only accepts tokens the stand-ins issued and
//!   otherwise answers what each test scripts.
//!
//! Nothing is mocked inside the client; no test sleeps to synchronize.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Method, Response, Uri};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tollgate::clock::{FixedClock, SystemClock};
use tollgate::marketplace::gcp::credentials::{
    self, AccessToken, CredentialsError, EnvLookup, JwtBearer, SCOPE, ServiceAccountKey,
    TokenCache, TokenSource,
};
use tollgate::marketplace::gcp::procurement::{
    ApproveAccountRequest, ApproveEntitlementRequest, EntitlementState, ProcurementClient,
    ProcurementError, RejectAccountRequest, RetryPolicy, filter_term,
};
use tollgate::secret::{Secret, Secrets};
use tollgate::settings::Settings;
use tollgate::web::ApiError;

const PROVIDER: &str = "DEMO-tollgate";
const EMAIL: &str = "tollgate@demo-tollgate.iam.gserviceaccount.com";
const KEY_ID: &str = "3f2a9c0e5b7d";
const AUDIENCE: &str = "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/aws-pool/providers/aws";
/// AWS's documented example credentials (not a real key).
const AWS_KEY_ID: &str = "AKIDEXAMPLE";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const AWS_SESSION: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSION";
const AWS_REGION: &str = "eu-central-1";

// ---------------------------------------------------------------- keys

/// An RSA key made once per test binary: (PKCS#8 PEM, public `RSAPublicKey` DER).
fn key(which: usize) -> &'static (String, Vec<u8>) {
    static KEYS: [OnceLock<(String, Vec<u8>)>; 2] = [OnceLock::new(), OnceLock::new()];
    KEYS[which].get_or_init(|| {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        use aws_lc_rs::signature::KeyPair as _;
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = AsDer::<Pkcs8V1Der>::as_der(&pair).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        (pem, pair.public_key().as_ref().to_vec())
    })
}

/// The JSON key Google hands out for a service account, with key `which`.
fn key_json(which: usize, token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "demo-tollgate",
        "private_key_id": KEY_ID,
        "private_key": key(which).0,
        "client_email": EMAIL,
        "client_id": "104729",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}

// ---------------------------------------------------------- stand-ins

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: body.to_string(),
    }
}

/// Google's error body.
fn google_error(status: u16, name: &str, message: &str) -> Reply {
    reply(
        status,
        json!({"error": {"code": status, "message": message, "status": name}}),
    )
}

fn entitlement(id: &str, state: &str) -> Value {
    json!({
        "name": format!("providers/{PROVIDER}/entitlements/{id}"),
        "account": format!("providers/{PROVIDER}/accounts/A-1"),
        "provider": PROVIDER,
        "productExternalName": "tollgate.endpoints.demo-tollgate.cloud.goog",
        "plan": "pro",
        "state": state,
        "createTime": "2026-03-01T12:00:00Z",
        "updateTime": "2026-03-01T12:00:01.5Z",
    })
}

/// A request the Procurement stand-in received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: String,
}

/// Holds the token endpoint inside a request until the test releases it.
struct Gate {
    entered: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
}

struct Google {
    base: String,
    expires_in: i64,
    gate: Option<Gate>,
    token_requests: AtomicUsize,
    token_down: AtomicBool,
    sts_requests: AtomicUsize,
    iam_requests: AtomicUsize,
    /// Access tokens the Procurement stand-in accepts.
    issued: Mutex<Vec<String>>,
    federated: Mutex<Vec<String>>,
    script: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Reply>,
    seen: Mutex<Vec<Seen>>,
}

impl Google {
    async fn start(expires_in: i64, gate: bool) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let google = Arc::new(Self {
            base,
            expires_in,
            gate: gate.then(|| Gate {
                entered: tokio::sync::Notify::new(),
                release: tokio::sync::Semaphore::new(0),
            }),
            token_requests: AtomicUsize::new(0),
            token_down: AtomicBool::new(false),
            sts_requests: AtomicUsize::new(0),
            iam_requests: AtomicUsize::new(0),
            issued: Mutex::new(vec![]),
            federated: Mutex::new(vec![]),
            script: Mutex::new(VecDeque::new()),
            fallback: Mutex::new(reply(200, entitlement("E-1", "ENTITLEMENT_ACTIVE"))),
            seen: Mutex::new(vec![]),
        });
        let app = Router::new()
            .route("/token", post(token_endpoint))
            .route("/sts/v1/token", post(sts))
            .route("/iam/v1/projects/-/serviceAccounts/{target}", post(iam))
            .fallback(procurement)
            .with_state(google.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        google
    }

    fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }

    fn then(&self, r: Reply) -> &Self {
        self.script.lock().unwrap().push_back(r);
        self
    }

    fn always(&self, r: Reply) {
        *self.fallback.lock().unwrap() = r;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn tokens(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }

    fn issued(&self) -> Vec<String> {
        self.issued.lock().unwrap().clone()
    }

    /// A token source on the service-account key, through `from_config`
    /// with `TOLLGATE_GOOGLE_TOKEN_URL` pointing here.
    fn key_source(&self) -> Arc<dyn TokenSource> {
        let url = self.token_url();
        let settings =
            Settings::from_lookup(|k| (k == "TOLLGATE_GOOGLE_TOKEN_URL").then(|| url.clone()));
        let json = key_json(0, "https://oauth2.googleapis.com/token");
        let secrets =
            Secrets::from_pairs([(credentials::SERVICE_ACCOUNT_KEY_SECRET, json.as_str())]);
        credentials::from_config(
            &settings,
            &secrets,
            Arc::new(|_| None),
            Arc::new(SystemClock),
        )
        .unwrap()
    }

    fn client(&self, tokens: Arc<dyn TokenSource>) -> ProcurementClient {
        let base = self.base.clone();
        let settings =
            Settings::from_lookup(|k| (k == "TOLLGATE_PROCUREMENT_URL").then(|| base.clone()));
        ProcurementClient::new(&settings, PROVIDER, tokens)
            .unwrap()
            .with_retry_policy(fast(Duration::from_secs(3)))
    }

    /// The external-account configuration Google generates, pointed here.
    fn external_account(&self) -> String {
        json!({
            "universe_domain": "googleapis.com",
            "type": "external_account",
            "audience": AUDIENCE,
            "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
            "service_account_impersonation_url": format!(
                "{}/iam/v1/projects/-/serviceAccounts/{EMAIL}:generateAccessToken", self.base),
            "token_url": format!("{}/sts/v1/token", self.base),
            "credential_source": {
                "environment_id": "aws1",
                "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
                "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
                "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
            }
        })
        .to_string()
    }
}

/// Short pauses so tests run fast; `deadline` as given.
fn fast(deadline: Duration) -> RetryPolicy {
    RetryPolicy {
        deadline,
        attempt_timeout: Duration::from_secs(2),
        // Only the deadline ends a run of failures: without it, 1000
        // attempts would take many seconds.
        max_attempts: 1000,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    }
}

fn respond(r: &Reply) -> Response<Body> {
    let mut res = Response::builder()
        .status(r.status)
        .header("content-type", "application/json");
    for (k, v) in &r.headers {
        res = res.header(*k, v);
    }
    res.body(Body::from(r.body.clone())).unwrap()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

fn random_suffix() -> String {
    let mut b = [0u8; 12];
    getrandom_fill(&mut b);
    hex::encode(b)
}

fn getrandom_fill(b: &mut [u8]) {
    aws_lc_rs::rand::fill(b).unwrap();
}

#[derive(serde::Deserialize)]
struct AssertionClaims {
    iss: String,
    scope: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// `POST /token`: the JWT-bearer grant, verified as Google would.
async fn token_endpoint(
    State(g): State<Arc<Google>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response<Body> {
    g.token_requests.fetch_add(1, Ordering::SeqCst);
    if let Some(gate) = &g.gate {
        gate.entered.notify_one();
        if let Ok(permit) = gate.release.acquire().await {
            permit.forget();
        }
    }
    if g.token_down.load(Ordering::SeqCst) {
        return respond(&reply(503, json!({"error": "temporarily_unavailable"})));
    }
    let refuse = |why: &str| {
        respond(&reply(
            400,
            json!({"error": "invalid_grant", "error_description": why}),
        ))
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return refuse("Invalid grant_type.");
    }
    let Some(assertion) = form.get("assertion") else {
        return refuse("Missing assertion.");
    };
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[g.token_url()]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let decoded = match jsonwebtoken::decode::<AssertionClaims>(
        assertion,
        &DecodingKey::from_rsa_der(&key(0).1),
        &v,
    ) {
        Ok(d) => d,
        // Echoes the assertion back, as a careless server might.
        Err(_) => return refuse(&format!("Invalid JWT Signature: {assertion}")),
    };
    let c = decoded.claims;
    let ok = decoded.header.kid.as_deref() == Some(KEY_ID)
        && c.iss == EMAIL
        && c.scope == SCOPE
        && c.aud == g.token_url()
        && c.exp - c.iat == 3600;
    if !ok {
        return refuse("Invalid JWT claims.");
    }
    let token = format!("ya29.sa-{}", random_suffix());
    g.issued.lock().unwrap().push(token.clone());
    respond(&reply(
        200,
        json!({"access_token": token, "expires_in": g.expires_in, "token_type": "Bearer"}),
    ))
}

/// `POST /sts/v1/token`: the RFC 8693 exchange of an AWS-signed request.
async fn sts(
    State(g): State<Arc<Google>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response<Body> {
    g.sts_requests.fetch_add(1, Ordering::SeqCst);
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let refuse = |why: String| {
        respond(&reply(
            400,
            json!({"error": "invalid_grant", "error_description": why}),
        ))
    };
    let expected = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("audience", AUDIENCE),
        ("scope", SCOPE),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        (
            "subject_token_type",
            "urn:ietf:params:aws:token-type:aws4_request",
        ),
    ];
    for (k, want) in expected {
        if field(k) != want {
            return refuse(format!("Unexpected {k}."));
        }
    }
    if let Err(why) = verify_aws_request(field("subject_token")) {
        return refuse(why);
    }
    let token = format!("federated-{}", random_suffix());
    g.federated.lock().unwrap().push(token.clone());
    respond(&reply(
        200,
        json!({
            "access_token": token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 3600
        }),
    ))
}

/// `POST .../serviceAccounts/{email}:generateAccessToken`.
async fn iam(
    State(g): State<Arc<Google>>,
    Path(target): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response<Body> {
    g.iam_requests.fetch_add(1, Ordering::SeqCst);
    let federated = bearer(&headers).unwrap_or_default();
    if !g.federated.lock().unwrap().contains(&federated) {
        return respond(&google_error(
            401,
            "UNAUTHENTICATED",
            "Invalid credentials.",
        ));
    }
    if target != format!("{EMAIL}:generateAccessToken")
        || body != json!({"scope": [SCOPE], "lifetime": "3600s"})
    {
        return respond(&google_error(400, "INVALID_ARGUMENT", "Bad request."));
    }
    let token = format!("ya29.impersonated-{}", random_suffix());
    g.issued.lock().unwrap().push(token.clone());
    let expire = (Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    respond(&reply(
        200,
        json!({"accessToken": token, "expireTime": expire}),
    ))
}

/// Everything else: the Procurement API.
async fn procurement(
    State(g): State<Arc<Google>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    g.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_owned(),
        query: url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let token = bearer(&headers).unwrap_or_default();
    if !g.issued.lock().unwrap().contains(&token) {
        return respond(&google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        ));
    }
    let scripted = g.script.lock().unwrap().pop_front();
    respond(&scripted.unwrap_or_else(|| g.fallback.lock().unwrap().clone()))
}

// ------------------------------------------------- SigV4, independently

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// What Google's STS learns from AWS: the subject token is a
/// `GetCallerIdentity` request signed (SigV4) by `AWS_KEY_ID`/`AWS_SECRET`,
/// for our audience, signed within the last few minutes. Written from
/// AWS's description of the algorithm
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>),
/// not with the client's signer.
fn verify_aws_request(subject_token: &str) -> Result<(), String> {
    let decoded: String = url::form_urlencoded::parse(format!("t={subject_token}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or("empty subject token")?;
    let req: Value = serde_json::from_str(&decoded).map_err(|_| "subject token is not JSON")?;
    let url_str = req["url"].as_str().ok_or("no url")?;
    let url = url::Url::parse(url_str).map_err(|_| "bad url")?;
    if url.host_str() != Some(&format!("sts.{AWS_REGION}.amazonaws.com")) || url.scheme() != "https"
    {
        return Err("not the regional AWS STS endpoint".into());
    }
    if req["method"] != "POST" || req["body"] != "" {
        return Err("not an empty POST".into());
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    if pairs
        != [
            ("Action".to_owned(), "GetCallerIdentity".to_owned()),
            ("Version".to_owned(), "2011-06-15".to_owned()),
        ]
    {
        return Err("not GetCallerIdentity".into());
    }
    let mut headers = HashMap::new();
    for h in req["headers"].as_array().ok_or("no headers")? {
        let k = h["key"].as_str().ok_or("header key")?.to_ascii_lowercase();
        let v = h["value"].as_str().ok_or("header value")?.to_owned();
        headers.insert(k, v);
    }
    let header = |k: &str| headers.get(k).cloned().ok_or(format!("no {k} header"));
    if header("x-goog-cloud-target-resource")? != AUDIENCE {
        return Err("signed for another audience".into());
    }
    if header("host")? != url.host_str().unwrap() {
        return Err("host header differs".into());
    }
    if header("x-amz-security-token")? != AWS_SESSION {
        return Err("session token differs".into());
    }
    let amz_date = header("x-amz-date")?;
    let signed_at = chrono::NaiveDateTime::parse_from_str(&amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| "bad x-amz-date")?
        .and_utc();
    if (Utc::now() - signed_at).num_seconds().abs() > 300 {
        return Err("signature too old".into());
    }
    let auth = header("authorization")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let mut credential = "";
    let mut signed_headers = "";
    let mut signature = "";
    for part in rest.split(", ") {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = v;
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = v;
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = v;
        }
    }
    let scope_parts: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, terminator] = scope_parts.as_slice() else {
        return Err("bad credential scope".into());
    };
    if *key_id != AWS_KEY_ID
        || *date != &amz_date[..8]
        || *region != AWS_REGION
        || *service != "sts"
        || *terminator != "aws4_request"
    {
        return Err("credential scope differs".into());
    }
    for needed in [
        "host",
        "x-amz-date",
        "x-amz-security-token",
        "x-goog-cloud-target-resource",
    ] {
        if !signed_headers.split(';').any(|h| h == needed) {
            return Err(format!("{needed} is not signed"));
        }
    }
    let mut canonical_headers = String::new();
    for h in signed_headers.split(';') {
        canonical_headers.push_str(&format!("{h}:{}\n", header(h)?.trim()));
    }
    let canonical_request = format!(
        "POST\n{}\nAction=GetCallerIdentity&Version=2011-06-15\n{canonical_headers}\n{signed_headers}\n{}",
        url.path(),
        sha256_hex(b"")
    );
    let scope = format!("{date}/{region}/sts/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac(format!("AWS4{AWS_SECRET}").as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, "sts");
    let k_signing = hmac(&k_service, "aws4_request");
    if hex::encode(hmac(&k_signing, &string_to_sign)) != signature {
        return Err("The AWS signature does not match.".into());
    }
    Ok(())
}

/// The Lambda environment, as a lookup (the process env is never touched).
fn lambda_env(secret: &'static str, external_account: Option<String>) -> EnvLookup {
    Arc::new(move |name| match name {
        "AWS_REGION" => Some(AWS_REGION.to_owned()),
        "AWS_ACCESS_KEY_ID" => Some(AWS_KEY_ID.to_owned()),
        "AWS_SECRET_ACCESS_KEY" => Some(secret.to_owned()),
        "AWS_SESSION_TOKEN" => Some(AWS_SESSION.to_owned()),
        "TOLLGATE_GCP_EXTERNAL_ACCOUNT" => external_account.clone(),
        _ => None,
    })
}

fn assert_shows_no_secret(shown: &str, google: &Google) {
    for token in google.issued() {
        assert!(!shown.contains(&token), "a token leaked: {shown}");
    }
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(
        !shown.contains(&key(0).0[40..80]),
        "key material leaked: {shown}"
    );
    assert!(
        !shown.contains(AWS_SECRET) && !shown.contains(AWS_SESSION),
        "{shown}"
    );
}

// --------------------------------------------------------------- tests

#[tokio::test]
async fn a_service_account_token_is_fetched_once_and_reused_across_calls() {
    let g = Google::start(3599, false).await;
    let client = g.client(g.key_source());
    for id in [
        "E-1",
        "entitlements/E-1",
        "providers/DEMO-tollgate/entitlements/E-1",
    ] {
        let e = client.get_entitlement(id).await.unwrap();
        assert_eq!(e.id(), Some("E-1"));
        assert_eq!(e.account_id(), Some("A-1"));
        assert_eq!(e.state, Some(EntitlementState::Active));
        assert_eq!(e.plan.as_deref(), Some("pro"));
    }
    assert_eq!(g.tokens(), 1, "one token request for three calls");
    let seen = g.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(
        |s| s.method == Method::GET && s.path == "/v1/providers/DEMO-tollgate/entitlements/E-1"
    ));
}

#[tokio::test]
async fn the_token_is_refreshed_shortly_before_it_expires() {
    let g = Google::start(3600, false).await;
    let t0 = Utc::now();
    let clock = Arc::new(FixedClock::new(t0));
    let key = ServiceAccountKey::from_json(&Secret::new(key_json(0, &g.token_url()))).unwrap();
    let tokens = TokenCache::new(JwtBearer::new(key, &g.token_url()).unwrap(), clock.clone());
    let first = tokens.token().await.unwrap();
    assert_eq!(first.expires_at(), t0 + chrono::Duration::seconds(3600));
    clock.set(t0 + chrono::Duration::minutes(54));
    assert_eq!(
        tokens.token().await.unwrap(),
        first,
        "still 6 min left: cached"
    );
    assert_eq!(g.tokens(), 1);
    clock.set(t0 + chrono::Duration::minutes(56));
    let second = tokens.token().await.unwrap();
    assert_ne!(second, first, "4 min left: refreshed");
    assert_eq!(g.tokens(), 2);
    assert_eq!(
        second.expires_at(),
        clock_now(&clock) + chrono::Duration::seconds(3600)
    );

    // The endpoint goes down: a refresh that fails keeps the token that
    // still works, until it has too little time left.
    g.token_down.store(true, Ordering::SeqCst);
    let t1 = clock_now(&clock);
    clock.set(t1 + chrono::Duration::minutes(56));
    assert_eq!(tokens.token().await.unwrap(), second);
    assert_eq!(g.tokens(), 3, "the refresh was tried");
    clock.set(t1 + chrono::Duration::minutes(59) + chrono::Duration::seconds(45));
    let err = tokens.token().await.unwrap_err();
    assert!(
        matches!(err, CredentialsError::Unavailable { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
}

fn clock_now(clock: &FixedClock) -> DateTime<Utc> {
    use tollgate::clock::Clock;
    clock.now()
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    let g = Google::start(3600, true).await;
    let tokens = g.key_source();
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await })
        })
        .collect();
    // The first refresh is inside the token endpoint, held there; the other
    // callers wait for it.
    let gate = g.gate.as_ref().unwrap();
    gate.entered.notified().await;
    gate.release.add_permits(64);
    let mut got = Vec::new();
    for c in callers {
        got.push(c.await.unwrap().unwrap());
    }
    assert_eq!(g.tokens(), 1, "one token request for 16 concurrent callers");
    assert!(got.iter().all(|t| t == &got[0]));
}

#[tokio::test]
async fn a_503_then_200_is_retried_and_succeeds() {
    let g = Google::start(3600, false).await;
    g.then(google_error(
        503,
        "UNAVAILABLE",
        "The service is currently unavailable.",
    ));
    let client = g.client(g.key_source());
    let e = client.get_entitlement("E-1").await.unwrap();
    assert_eq!(e.id(), Some("E-1"));
    assert_eq!(g.seen().len(), 2);
}

#[tokio::test]
async fn a_429_waits_for_retry_after_but_never_past_the_deadline() {
    let g = Google::start(3600, false).await;
    let mut limited = google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.");
    limited.headers.push(("retry-after", "1".into()));
    g.then(limited.clone());
    let client = g.client(g.key_source());
    let started = Instant::now();
    client.get_entitlement("E-1").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(g.seen().len(), 2);

    // A Retry-After beyond the deadline: no pointless wait, a typed answer.
    limited.headers = vec![("retry-after", "120".into())];
    g.then(limited);
    let started = Instant::now();
    let err = client.get_entitlement("E-1").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(err, ProcurementError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(120)),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(ApiError::from(err).status.as_u16(), 503);
    assert_eq!(g.seen().len(), 3, "not retried");
}

#[tokio::test]
async fn a_persistent_503_gives_up_at_the_deadline_with_a_transient_error() {
    let g = Google::start(3600, false).await;
    g.always(google_error(
        503,
        "UNAVAILABLE",
        "The service is currently unavailable.",
    ));
    let deadline = Duration::from_millis(600);
    let client = g.client(g.key_source()).with_retry_policy(fast(deadline));
    let started = Instant::now();
    let err = client.get_entitlement("E-1").await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, ProcurementError::Unavailable { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(took < deadline + Duration::from_millis(700), "{took:?}");
    assert!(g.seen().len() >= 3, "retried: {}", g.seen().len());
    assert_eq!(ApiError::from(err).status.as_u16(), 502);
}

#[tokio::test]
async fn a_token_endpoint_that_is_down_is_transient_and_bounded() {
    let g = Google::start(3600, false).await;
    g.token_down.store(true, Ordering::SeqCst);
    let deadline = Duration::from_millis(500);
    let client = g.client(g.key_source()).with_retry_policy(fast(deadline));
    let started = Instant::now();
    let err = client.get_entitlement("E-1").await.unwrap_err();
    assert!(started.elapsed() < deadline + Duration::from_millis(700));
    assert!(
        matches!(
            err,
            ProcurementError::Credentials(CredentialsError::Unavailable { status: 503, .. })
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(g.tokens() >= 2, "the token was retried");
    assert!(g.seen().is_empty(), "no call without a token");
}

#[tokio::test]
async fn not_found_and_failed_precondition_are_typed_and_not_retried() {
    let g = Google::start(3600, false).await;
    let client = g.client(g.key_source());
    g.then(google_error(404, "NOT_FOUND", "Entitlement not found."));
    let err = client.get_entitlement("E-gone").await.unwrap_err();
    assert!(matches!(err, ProcurementError::NotFound { .. }), "{err:?}");
    assert!(!err.is_transient());

    g.then(google_error(
        400,
        "FAILED_PRECONDITION",
        "Precondition check failed.",
    ));
    let err = client
        .approve_entitlement("E-1", ApproveEntitlementRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProcurementError::FailedPrecondition {
                after_retry: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        "entitlements.approve: precondition failed at Google (400 FAILED_PRECONDITION): Precondition check failed."
    );
    assert_eq!(g.seen().len(), 2, "neither was retried");
}

#[tokio::test]
async fn an_approval_is_retried_and_a_precondition_after_an_ambiguous_attempt_says_so() {
    let g = Google::start(3600, false).await;
    let client = g.client(g.key_source());
    // The 503 may have been applied: the repeat's refusal is flagged.
    g.then(google_error(503, "UNAVAILABLE", "Backend error."))
        .then(google_error(
            400,
            "FAILED_PRECONDITION",
            "Precondition check failed.",
        ));
    let err = client
        .approve_entitlement("E-1", ApproveEntitlementRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProcurementError::FailedPrecondition {
                after_retry: true,
                ..
            }
        ),
        "{err:?}"
    );
    // A 429 is refused before processing: nothing to flag.
    g.then(google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded."))
        .then(google_error(
            400,
            "FAILED_PRECONDITION",
            "Precondition check failed.",
        ));
    let err = client
        .approve_entitlement("E-1", ApproveEntitlementRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProcurementError::FailedPrecondition {
                after_retry: false,
                ..
            }
        ),
        "{err:?}"
    );
    // A 503 then success: the approval went through once.
    g.then(google_error(503, "UNAVAILABLE", "Backend error."))
        .then(reply(200, json!({})));
    client
        .approve_entitlement("E-1", ApproveEntitlementRequest::default())
        .await
        .unwrap();
    let seen = g.seen();
    assert_eq!(seen.len(), 6);
    assert!(seen.iter().all(|s| s.method == Method::POST
        && s.path == "/v1/providers/DEMO-tollgate/entitlements/E-1:approve"
        && s.body == "{}"));
}

#[tokio::test]
async fn every_method_sends_what_the_api_describes() {
    let g = Google::start(3600, false).await;
    let client = g.client(g.key_source());
    g.always(reply(200, json!({})));
    client
        .approve_account("A-1", ApproveAccountRequest::signup())
        .await
        .unwrap();
    client
        .reject_account(
            "accounts/A-1",
            RejectAccountRequest {
                approval_name: Some("signup".into()),
                reason: Some("unknown customer".into()),
            },
        )
        .await
        .unwrap();
    client.reset_account("A-1").await.unwrap();
    client
        .reject_entitlement("E-1", "no capacity")
        .await
        .unwrap();
    client
        .approve_plan_change("E-1", "enterprise")
        .await
        .unwrap();
    client
        .reject_plan_change("E-1", "enterprise", "not offered")
        .await
        .unwrap();
    g.always(reply(
        200,
        json!({"name": "providers/DEMO-tollgate/accounts/A-1", "state": "ACCOUNT_ACTIVE",
               "approvals": [{"name": "signup", "state": "APPROVED", "updateTime": "2026-03-01T12:00:00Z"}]}),
    ));
    let account = client.get_account("A-1").await.unwrap();
    assert!(account.signup_approved());
    let mut patched = entitlement("E-1", "ENTITLEMENT_ACTIVATION_REQUESTED");
    patched["messageToUser"] = json!("Provisioning; ready in 5 minutes");
    g.always(reply(200, patched));
    let e = client
        .set_message_to_user("E-1", "Provisioning; ready in 5 minutes")
        .await
        .unwrap();
    assert_eq!(
        e.message_to_user.as_deref(),
        Some("Provisioning; ready in 5 minutes")
    );

    /// Method, path, query, JSON body.
    type Sent = (Method, String, Vec<(String, String)>, Value);
    let seen: Vec<Sent> = g
        .seen()
        .into_iter()
        .map(|s| {
            let body = if s.body.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&s.body).unwrap()
            };
            (s.method, s.path, s.query, body)
        })
        .collect();
    let a = "/v1/providers/DEMO-tollgate/accounts/A-1";
    let e = "/v1/providers/DEMO-tollgate/entitlements/E-1";
    let q = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
    assert_eq!(
        seen,
        vec![
            (
                Method::POST,
                format!("{a}:approve"),
                vec![],
                json!({"approvalName": "signup"})
            ),
            (
                Method::POST,
                format!("{a}:reject"),
                vec![],
                json!({"approvalName": "signup", "reason": "unknown customer"})
            ),
            (Method::POST, format!("{a}:reset"), vec![], json!({})),
            (
                Method::POST,
                format!("{e}:reject"),
                vec![],
                json!({"reason": "no capacity"})
            ),
            (
                Method::POST,
                format!("{e}:approvePlanChange"),
                vec![],
                json!({"pendingPlanName": "enterprise"})
            ),
            (
                Method::POST,
                format!("{e}:rejectPlanChange"),
                vec![],
                json!({"pendingPlanName": "enterprise", "reason": "not offered"})
            ),
            (Method::GET, a.to_owned(), vec![], Value::Null),
            (
                Method::PATCH,
                e.to_owned(),
                q("updateMask", "messageToUser"),
                json!({"messageToUser": "Provisioning; ready in 5 minutes"})
            ),
        ]
    );
    // Names of another provider or with a method suffix are refused unsent.
    for bad in ["providers/other/entitlements/E-1", "E-1:approve", "../E-1"] {
        let err = client.get_entitlement(bad).await.unwrap_err();
        assert!(
            matches!(err, ProcurementError::InvalidInput { .. }),
            "{err:?}"
        );
        assert_eq!(ApiError::from(err).status.as_u16(), 400);
    }
    assert_eq!(g.seen().len(), 8);
}

#[tokio::test]
async fn listing_follows_next_page_token_within_a_bound() {
    let g = Google::start(3600, false).await;
    let client = g.client(g.key_source());
    let page = |ids: &[&str], next: Option<&str>| {
        let mut body = json!({"entitlements": ids.iter().map(|id| entitlement(id, "ENTITLEMENT_ACTIVATION_REQUESTED")).collect::<Vec<_>>()});
        if let Some(next) = next {
            body["nextPageToken"] = json!(next);
        }
        reply(200, body)
    };
    g.then(page(&["E-1", "E-2"], Some("tok-2")))
        .then(page(&["E-3", "E-4"], Some("tok-3")))
        .then(page(&["E-5"], Some("")));
    let filter = format!(
        "{} {}",
        filter_term("account", "eda2a6ce-2e2d-44ff"),
        filter_term("state", "activation_requested")
    );
    let all = client.list_entitlements(Some(&filter)).await.unwrap();
    let ids: Vec<&str> = all.iter().filter_map(|e| e.id()).collect();
    assert_eq!(ids, ["E-1", "E-2", "E-3", "E-4", "E-5"]);
    let seen = g.seen();
    let f = (
        "filter".to_owned(),
        r#"account="eda2a6ce-2e2d-44ff" state=activation_requested"#.to_owned(),
    );
    assert_eq!(seen[0].query, vec![f.clone()]);
    assert_eq!(
        seen[1].query,
        vec![("pageToken".to_owned(), "tok-2".to_owned()), f.clone()]
    );
    assert_eq!(
        seen[2].query,
        vec![("pageToken".to_owned(), "tok-3".to_owned()), f]
    );
    assert!(
        seen.iter()
            .all(|s| s.path == "/v1/providers/DEMO-tollgate/entitlements")
    );

    // A listing that never ends stops at the cap.
    g.always(page(&["E-9"], Some("again")));
    let err = client
        .clone()
        .with_max_pages(3)
        .list_entitlements(None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProcurementError::TooManyPages { max: 3, .. }),
        "{err:?}"
    );
    assert_eq!(g.seen().len(), 6);

    g.always(reply(
        200,
        json!({"accounts": [{"name": "providers/DEMO-tollgate/accounts/A-1"}]}),
    ));
    let accounts = client.list_accounts().await.unwrap();
    assert_eq!(accounts[0].id(), Some("A-1"));
    assert_eq!(
        g.seen()[6].query,
        vec![("pageSize".to_owned(), "200".to_owned())]
    );
}

#[tokio::test]
async fn decode_errors_never_quote_the_reply() {
    let g = Google::start(3600, false).await;
    let client = g.client(g.key_source());
    g.then(reply(
        200,
        json!({"name": "providers/DEMO-tollgate/entitlements/E-1", "plan": {"leak": "customer@example.com"}}),
    ));
    let err = client.get_entitlement("E-1").await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, ProcurementError::Decode { .. }), "{err:?}");
    assert!(
        !shown.contains("customer@example.com") && !shown.contains("leak"),
        "{shown}"
    );
    assert!(shown.contains("line 1 column"), "{shown}");
    assert!(!err.is_transient());
    assert_eq!(g.seen().len(), 1, "not retried");
}

#[tokio::test]
async fn tokens_and_keys_never_appear_in_errors_or_debug_output() {
    let g = Google::start(3600, false).await;
    let tokens = g.key_source();
    let client = g.client(tokens.clone());
    // Google refuses the token twice: the client drops it, gets another and
    // tries once more, then reports.
    g.then(google_error(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials.",
    ))
    .then(google_error(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials.",
    ));
    let err = client.get_entitlement("E-1").await.unwrap_err();
    assert!(
        matches!(err, ProcurementError::Unauthenticated { .. }),
        "{err:?}"
    );
    assert_eq!(g.tokens(), 2, "the refused token was replaced once");
    assert_eq!(g.seen().len(), 2);
    assert_shows_no_secret(&format!("{err} {err:?}"), &g);

    // A reply quoting the bearer token back: the message is dropped.
    let token = g.issued().last().unwrap().clone();
    g.then(google_error(
        403,
        "PERMISSION_DENIED",
        &format!("token {token} lacks permission"),
    ));
    let err = client.get_entitlement("E-1").await.unwrap_err();
    assert!(
        matches!(
            err,
            ProcurementError::PermissionDenied { message: None, .. }
        ),
        "{err:?}"
    );
    let shown = format!("{err} {err:?}");
    let api = ApiError::from(err);
    assert_shows_no_secret(&format!("{shown} {api:?}"), &g);

    let current = tokens.token().await.unwrap();
    assert_shows_no_secret(&format!("{client:?} {tokens:?} {current:?}"), &g);
}

#[tokio::test]
async fn a_key_google_does_not_know_is_refused_without_echoing_the_assertion() {
    let g = Google::start(3600, false).await;
    // Signed with another key than the one the token endpoint knows.
    let key = ServiceAccountKey::from_json(&Secret::new(key_json(1, &g.token_url()))).unwrap();
    let tokens = Arc::new(TokenCache::new(
        JwtBearer::new(key, &g.token_url()).unwrap(),
        Arc::new(SystemClock),
    ));
    let client = g.client(tokens);
    let err = client.get_entitlement("E-1").await.unwrap_err();
    let ProcurementError::Credentials(CredentialsError::Refused {
        status: 400,
        error,
        description,
        ..
    }) = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(error.as_deref(), Some("invalid_grant"));
    assert_eq!(
        description, &None,
        "the description quoted the assertion: dropped"
    );
    assert!(!err.is_transient());
    assert_eq!(g.tokens(), 1, "a refusal is not retried");
    assert!(!err.to_string().contains("eyJ"), "{err}");
    assert_eq!(ApiError::from(err).status.as_u16(), 502);
}

#[tokio::test]
async fn workload_identity_federation_from_aws_reaches_the_api_keyless() {
    let g = Google::start(3600, false).await;
    // The configuration from the environment; AWS credentials as Lambda
    // injects them, through a lookup.
    let env = lambda_env(AWS_SECRET, Some(g.external_account()));
    let settings = Settings::from_lookup(|_| None);
    let tokens =
        credentials::from_config(&settings, &Secrets::default(), env, Arc::new(SystemClock))
            .unwrap();
    let client = g.client(tokens.clone());
    client.get_entitlement("E-1").await.unwrap();
    client.get_entitlement("E-1").await.unwrap();
    assert_eq!(
        g.sts_requests.load(Ordering::SeqCst),
        1,
        "STS once, then cached"
    );
    assert_eq!(g.iam_requests.load(Ordering::SeqCst), 1);
    assert_eq!(g.tokens(), 0, "no service-account key involved");
    let issued = g.issued();
    assert_eq!(issued.len(), 1);
    assert!(
        issued[0].starts_with("ya29.impersonated-"),
        "the API got the impersonated token"
    );
    let shown = format!("{tokens:?} {client:?}");
    assert_shows_no_secret(&shown, &g);
    assert!(!shown.contains("federated-"), "{shown}");
}

#[tokio::test]
async fn a_wrong_aws_signature_is_refused_by_sts_and_reported_without_secrets() {
    let g = Google::start(3600, false).await;
    // The configuration as a secret this time; a wrong AWS secret key.
    let json = g.external_account();
    let secrets = Secrets::from_pairs([(credentials::EXTERNAL_ACCOUNT_SECRET, json.as_str())]);
    let env = lambda_env("not-the-secret-key", None);
    let tokens = credentials::from_config(
        &Settings::from_lookup(|_| None),
        &secrets,
        env,
        Arc::new(SystemClock),
    )
    .unwrap();
    let err = g.client(tokens).get_entitlement("E-1").await.unwrap_err();
    let ProcurementError::Credentials(CredentialsError::Refused {
        endpoint, error, ..
    }) = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*endpoint, "Google STS token exchange");
    assert_eq!(error.as_deref(), Some("invalid_grant"));
    assert!(!err.is_transient());
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("The AWS signature does not match."),
        "{shown}"
    );
    assert!(
        !shown.contains("not-the-secret-key") && !shown.contains(AWS_SESSION),
        "{shown}"
    );
    assert_eq!(g.iam_requests.load(Ordering::SeqCst), 0);
    assert!(g.seen().is_empty());

    // Without AWS credentials in the environment: named, not guessed.
    let none: EnvLookup = Arc::new(|_| None);
    let tokens = credentials::from_config(
        &Settings::from_lookup(|_| None),
        &secrets,
        none,
        Arc::new(SystemClock),
    )
    .unwrap();
    let err = tokens.token().await.unwrap_err();
    assert!(err.to_string().ends_with("set AWS_REGION"), "{err}");
}

#[tokio::test]
async fn an_unreachable_google_is_transient_and_bounded() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let tokens = Arc::new(credentials::StaticToken(AccessToken::new(
        "ya29.static",
        Utc::now() + chrono::Duration::hours(1),
    )));
    let deadline = Duration::from_millis(400);
    let client = ProcurementClient::with_base_url(&base, PROVIDER, tokens)
        .unwrap()
        .with_retry_policy(fast(deadline));
    let started = Instant::now();
    let err = client.get_entitlement("E-1").await.unwrap_err();
    assert!(
        matches!(err, ProcurementError::Unreachable { .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(started.elapsed() < deadline + Duration::from_millis(700));
    assert!(!format!("{err:?}").contains("ya29.static"));
}
