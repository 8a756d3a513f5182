//! Signed entitlement tokens, end to end: the real entitlement-check handler
//! served over HTTP on 127.0.0.1 (SQLite in memory, and DynamoDB on moto),
//! `tollgate-client` and the `RequireEntitlement` layer verifying what it
//! signs, and an independent JWT library (PyJWT, pinned in
//! `tools/requirements-test.txt`) verifying the same tokens against the
//! published JWKS.

#[path = "entitlement_check_support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use support::{Tollgate, purchased, t0};
use tollgate::api::auth::{Authenticator, Scopes, generate};
use tollgate::api::token::{
    TOKEN_KEY_PREVIOUS_SECRET, TOKEN_KEY_SECRET, TokenIssuer, TokenPolicy, generate_key,
};
use tollgate::clock::{Clock, FixedClock};
use tollgate::functions::entitlement_check::EntitlementCheck;
use tollgate::model::{EventKind, Marketplace};
use tollgate::secret::Secrets;
use tollgate::store::Store;
use tollgate::store::sqlite::SqliteStore;
use tollgate::testing::TestApp;
use tollgate::web::{ApiError, Body, Function, Request, Response};
use tollgate_client::{
    CheckRequest, CustomerRef, Entitled, EntitlementClaims, EntitlementClient, Reason,
    RequireEntitlement, Subject, TokenError, TokenOptions, TokenVerifier,
};
use tollgate_tests::serve::{Served, serve_function};
use tower::ServiceExt;

// ------------------------------------------------------------------ harness --

fn new_key() -> String {
    generate_key().unwrap().expose().to_owned()
}

fn issuer(current: &str, previous: Option<&str>, policy: TokenPolicy) -> TokenIssuer {
    let mut pairs = vec![(TOKEN_KEY_SECRET, current)];
    pairs.extend(previous.map(|p| (TOKEN_KEY_PREVIOUS_SECRET, p)));
    TokenIssuer::from_secrets(&Secrets::from_pairs(pairs), policy)
        .unwrap()
        .unwrap()
}

/// What the client is served: the current handler (swapped to rotate
/// keys), every path asked for, optionally `/v1/token` answers whose
/// token was tampered with on the way, or Tollgate down (503 to everything).
struct Front {
    handler: RwLock<Arc<EntitlementCheck>>,
    paths: Mutex<Vec<String>>,
    tamper: AtomicBool,
    down: AtomicBool,
}

#[async_trait]
impl Function for Front {
    async fn call(&self, req: Request) -> Result<Response, ApiError> {
        let path = req.uri().path().to_owned();
        self.paths.lock().unwrap().push(path.clone());
        if self.down.load(Ordering::SeqCst) {
            return Err(ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "down for the test",
            ));
        }
        let handler = Arc::clone(&self.handler.read().unwrap());
        let mut res = handler.call(req).await?;
        if path == "/v1/token" && self.tamper.load(Ordering::SeqCst) {
            let mut body: Value = serde_json::from_slice(res.body().as_ref()).unwrap();
            if let Some(token) = body["token"].as_str() {
                body["token"] = Value::String(tamper(token, |c| c["tier"] = json!("business")));
            }
            *res.body_mut() = Body::Text(body.to_string());
        }
        Ok(res)
    }
}

struct Harness {
    tg: Tollgate,
    front: Arc<Front>,
    served: Served,
    api_key: String,
    entry: tollgate::api::auth::ApiKeyEntry,
    token_key: String,
}

impl Harness {
    /// A deployment on `store` signing with a fresh key under the default policy.
    async fn on(store: Arc<dyn Store>) -> Self {
        let tg = Tollgate::on(store);
        let key = generate("app", Scopes::ALL).unwrap();
        let token_key = new_key();
        let handler = Self::build(
            &tg,
            &key.entry,
            Some(issuer(&token_key, None, TokenPolicy::default())),
        );
        let front = Arc::new(Front {
            handler: RwLock::new(Arc::new(handler)),
            paths: Mutex::default(),
            tamper: AtomicBool::new(false),
            down: AtomicBool::new(false),
        });
        let served = serve_function(Arc::clone(&front)).await;
        Self {
            tg,
            front,
            served,
            api_key: key.key.expose().to_owned(),
            entry: key.entry,
            token_key,
        }
    }

    async fn sqlite() -> Self {
        Self::on(Arc::new(SqliteStore::open_in_memory().unwrap())).await
    }

    fn build(
        tg: &Tollgate,
        entry: &tollgate::api::auth::ApiKeyEntry,
        tokens: Option<TokenIssuer>,
    ) -> EntitlementCheck {
        TestApp::new()
            .config(support::CATALOG)
            .store(Arc::clone(&tg.store))
            .clock(Arc::clone(&tg.clock))
            .entitlement_check(Authenticator::new(vec![entry.clone()], false))
            .with_tokens(tokens)
    }

    /// Serves a handler signing with `tokens` from now on.
    fn deploy(&self, tokens: Option<TokenIssuer>) {
        let handler = Self::build(&self.tg, &self.entry, tokens);
        *self.front.handler.write().unwrap() = Arc::new(handler);
    }

    fn url(&self) -> String {
        self.served.url("")
    }

    /// Token options on the deployment's clock.
    fn options(&self) -> TokenOptions {
        let clock: Arc<FixedClock> = Arc::clone(&self.tg.clock);
        TokenOptions::default().clock(Arc::new(move || SystemTime::from(clock.now())))
    }

    fn client(&self) -> EntitlementClient {
        EntitlementClient::new(&self.url(), Some(&self.api_key))
            .unwrap()
            .with_tokens(self.options())
    }

    fn verifier(&self) -> TokenVerifier {
        let jwks = url::Url::parse(&self.served.url("/.well-known/jwks.json")).unwrap();
        TokenVerifier::new(reqwest::Client::new(), jwks, self.options())
    }

    /// How many requests reached `path` since the last call.
    fn take_calls(&self, path: &str) -> usize {
        let mut paths = self.front.paths.lock().unwrap();
        // "": every path.
        let n = paths
            .iter()
            .filter(|p| path.is_empty() || *p == path)
            .count();
        paths.clear();
        n
    }

    fn set_now(&self, at: DateTime<Utc>) {
        self.tg.clock.set(at);
    }

    async fn raw_token(&self, q: &CheckRequest) -> (String, Value) {
        let res = reqwest::Client::new()
            .post(self.served.url("/v1/token"))
            .bearer_auth(&self.api_key)
            .json(q)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        let token = body["token"]
            .as_str()
            .expect("an allowing answer carries a token");
        (token.to_owned(), body)
    }
}

fn customer(org: &str) -> CheckRequest {
    CheckRequest::new(CustomerRef::customer(Marketplace::Github, org), "acme-ci")
}

/// `token` with its payload rewritten by `edit` and the signature kept.
fn tamper(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut claims);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// A token with a hand-written header over `token`'s payload, signed by `sign`.
fn forged(token: &str, header: Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let signing_input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header.to_string()));
    let sig = URL_SAFE_NO_PAD.encode(sign(signing_input.as_bytes()));
    format!("{signing_input}.{sig}")
}

// ---------------------------------------------------- an independent verifier --

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Verifies `token` with PyJWT against `jwks` (EdDSA only, `iss`, `aud`,
/// `exp` and `iat` checked, every registered claim required) and prints
/// the header's algorithm and the claims as JSON.
const PYJWT_VERIFY: &str = r#"
import json, sys
import jwt
jwks, token, iss, aud = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
header = jwt.get_unverified_header(token)
keys = {k.key_id: k for k in jwt.PyJWKSet.from_dict(jwks).keys}
key = keys[header["kid"]]
claims = jwt.decode(token, key.key, algorithms=["EdDSA"], issuer=iss, audience=aud,
                    options={"require": ["exp", "iat", "iss", "aud", "sub"]})
print(json.dumps({"alg": header["alg"], "version": jwt.__version__, "claims": claims}))
"#;

/// PyJWT's verdict: the printed JSON, or its error output.
fn pyjwt(jwks: &Value, token: &str) -> Result<Value, String> {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: `make test` creates it (or `python3 -m venv .venv && .venv/bin/pip install \
         -r tools/requirements-test.txt`); this test never passes without PyJWT",
        python.display()
    );
    let out = Command::new(&python)
        .args([
            "-c",
            PYJWT_VERIFY,
            &jwks.to_string(),
            token,
            "tollgate",
            "tollgate-entitlement",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'jwt'"),
        "PyJWT is not installed in .venv: `.venv/bin/pip install -r tools/requirements-test.txt`"
    );
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(stderr.into_owned())
    }
}

#[tokio::test]
async fn pyjwt_verifies_the_token_against_the_published_jwks() {
    let h = Harness::sqlite().await;
    // PyJWT judges `exp` and `iat` by the real clock.
    let now = Utc::now();
    let trial_end = now + Duration::days(20);
    h.tg.event(
        "1",
        "acme-ci",
        purchased("1002", Some(5), Some(trial_end), None),
    )
    .await;
    h.set_now(now);
    let q = customer("1").feature("private-repos").user("alice");
    let (token, body) = h.raw_token(&q).await;

    let res = reqwest::get(h.served.url("/.well-known/jwks.json"))
        .await
        .unwrap();
    assert_eq!(
        res.headers()["cache-control"].to_str().unwrap(),
        "public, max-age=300"
    );
    let jwks: Value = res.json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    assert_eq!(jwks["keys"][0]["use"], "sig");
    assert_eq!(jwks["keys"][0]["kty"], "OKP");

    let verified = pyjwt(&jwks, &token).unwrap_or_else(|e| panic!("PyJWT refused the token: {e}"));
    assert_eq!(verified["alg"], "EdDSA");
    let c = &verified["claims"];
    assert_eq!(c["iss"], "tollgate");
    assert_eq!(c["aud"], "tollgate-entitlement");
    assert_eq!(c["sub"], "customer:github:1");
    assert_eq!(c["product"], "acme-ci");
    assert_eq!(c["feature"], "private-repos");
    assert_eq!(c["user"], "alice");
    assert_eq!(c["allowed"], true);
    assert_eq!(c["reason"], "ok");
    assert_eq!(c["status"], "trial");
    assert_eq!(c["tier"], "team");
    assert_eq!(c["features"], json!(["private-repos", "public-repos"]));
    assert_eq!(c["seats"], json!({"limit": 5, "used": 0}));
    assert_eq!(
        c["subscription"],
        json!({"marketplace": "github", "id": "1"})
    );
    assert_eq!(c["iat"], now.timestamp());
    assert_eq!(c["exp"], now.timestamp() + 300);
    // The answer's own copy agrees with what was signed.
    assert_eq!(body["decision"]["tier"], c["tier"]);
    assert_eq!(
        body["expires_at"].as_str().unwrap(),
        DateTime::from_timestamp(now.timestamp() + 300, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    // PyJWT refuses what was changed after signing, and a key not published.
    let err = pyjwt(&jwks, &tamper(&token, |c| c["tier"] = json!("business"))).unwrap_err();
    assert!(err.contains("InvalidSignatureError"), "{err}");
    h.deploy(Some(issuer(&new_key(), None, TokenPolicy::default())));
    let jwks: Value = reqwest::get(h.served.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let err = pyjwt(&jwks, &token).unwrap_err();
    assert!(err.contains("KeyError"), "{err}");
}

// ---------------------------------------------------- what the client refuses --

#[tokio::test]
async fn the_client_refuses_expired_foreign_tampered_and_alg_confused_tokens() {
    let h = Harness::sqlite().await;
    h.tg.purchase("1", "acme-ci", "1002", Some(5)).await;
    let (token, _) = h.raw_token(&customer("1")).await;
    let v = h.verifier();
    let claims: EntitlementClaims = v.verify(&token).await.unwrap();
    assert_eq!(claims.decision.tier.as_deref(), Some("team"));
    assert_eq!(claims.exp, (t0() + Duration::minutes(5)).timestamp());

    // Expired: past `exp` plus the 5 s leeway (and accepted inside it).
    h.set_now(t0() + Duration::seconds(304));
    assert!(v.verify(&token).await.is_ok());
    h.set_now(t0() + Duration::seconds(305));
    assert!(
        matches!(v.verify(&token).await, Err(TokenError::Expired)),
        "expired"
    );
    h.set_now(t0());
    // Signed by the deployment's own key but with `exp` in the past.
    let own = issuer(&h.token_key, None, TokenPolicy::default());
    let mut old = claims.clone();
    (old.iat, old.exp) = (t0().timestamp() - 600, t0().timestamp() - 60);
    assert!(matches!(
        v.verify(&own.sign(&old).unwrap()).await,
        Err(TokenError::Expired)
    ));

    // Tampered payload.
    let t = tamper(&token, |c| c["tier"] = json!("business"));
    assert!(
        matches!(v.verify(&t).await, Err(TokenError::Invalid(_))),
        "tampered"
    );
    let t = tamper(&token, |c| {
        c["exp"] = json!(c["exp"].as_i64().unwrap() + 3600)
    });
    assert!(
        matches!(v.verify(&t).await, Err(TokenError::Invalid(_))),
        "lengthened"
    );

    // A key Tollgate does not publish: unknown kid.
    let stranger = issuer(&new_key(), None, TokenPolicy::default());
    let t = stranger.sign(&claims).unwrap();
    assert!(
        matches!(v.verify(&t).await, Err(TokenError::UnknownKey)),
        "foreign key"
    );
    // The published kid, signed by another key.
    let kid = own.kid().unwrap().to_owned();
    let pkcs8 = URL_SAFE_NO_PAD
        .decode(new_key().strip_prefix("ed25519:").unwrap())
        .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.clone());
    let t = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(&pkcs8),
    )
    .unwrap();
    assert!(
        matches!(v.verify(&t).await, Err(TokenError::Invalid(_))),
        "wrong key for kid"
    );

    // Algorithm confusion: `none`, and HS256 keyed with the public key.
    let t = forged(
        &token,
        json!({"alg": "none", "typ": "JWT", "kid": kid}),
        |_| Vec::new(),
    );
    let r = v.verify(&t).await;
    assert!(
        matches!(
            r,
            Err(TokenError::Malformed | TokenError::WrongAlgorithm(_))
        ),
        "none: {r:?}"
    );
    let t = format!("{}.", t.trim_end_matches('.'));
    assert!(v.verify(&t).await.is_err(), "none, empty signature");
    let jwks: Value = reqwest::get(h.served.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    for secret in [
        x.as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(&x).unwrap(),
        jwks["keys"][0].to_string().into_bytes(),
    ] {
        let t = forged(
            &token,
            json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
            |input| {
                aws_lc_rs::hmac::sign(
                    &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
                    input,
                )
                .as_ref()
                .to_vec()
            },
        );
        assert!(
            matches!(v.verify(&t).await, Err(TokenError::WrongAlgorithm(_))),
            "HS256"
        );
    }

    // Another issuer or audience, signed with the right key.
    let mut other_iss = claims.clone();
    other_iss.iss = "someone-else".into();
    let mut other_aud = claims.clone();
    other_aud.aud = "another-app".into();
    for c in [other_iss, other_aud] {
        let t = own.sign(&c).unwrap();
        assert!(
            matches!(v.verify(&t).await, Err(TokenError::Invalid(_))),
            "iss/aud"
        );
    }
    // The right ones verify (the checks above fail for iss/aud alone).
    assert!(v.verify(&own.sign(&claims).unwrap()).await.is_ok());
    // Not a token at all.
    assert!(matches!(v.verify("nope").await, Err(TokenError::Malformed)));
}

#[tokio::test]
async fn unknown_kids_refetch_the_keys_at_most_once_per_interval() {
    let h = Harness::sqlite().await;
    h.tg.purchase("1", "acme-ci", "1002", Some(5)).await;
    let (token, _) = h.raw_token(&customer("1")).await;
    let v = h.verifier();
    v.verify(&token).await.unwrap();
    h.take_calls("");
    let claims = v.verify(&token).await.unwrap();
    assert_eq!(h.take_calls("/.well-known/jwks.json"), 0, "keys are kept");
    let stranger = issuer(&new_key(), None, TokenPolicy::default());
    let bogus = stranger.sign(&claims).unwrap();
    // Within 30 s of the first fetch: no refetch at all.
    assert!(matches!(
        v.verify(&bogus).await,
        Err(TokenError::UnknownKey)
    ));
    assert_eq!(h.take_calls("/.well-known/jwks.json"), 0);
    h.set_now(t0() + Duration::seconds(30));
    for _ in 0..20 {
        assert!(matches!(
            v.verify(&bogus).await,
            Err(TokenError::UnknownKey)
        ));
    }
    assert_eq!(
        h.take_calls("/.well-known/jwks.json"),
        1,
        "one refetch per 30 s"
    );
    h.set_now(t0() + Duration::seconds(60));
    assert!(v.verify(&bogus).await.is_err());
    assert_eq!(h.take_calls("/.well-known/jwks.json"), 1);
    // The real token still verifies from the kept keys.
    v.verify(&token).await.unwrap();
    assert_eq!(h.take_calls("/.well-known/jwks.json"), 0);
}

// ------------------------------------------------------------------ lifetime --

/// `exp` stops at the next known change, on the store given.
async fn exp_is_capped_at_the_next_known_change_on(store: Arc<dyn Store>) {
    let h = Harness::on(store).await;
    let v = h.verifier();
    // A trial ending in 90 s.
    h.tg.event(
        "1",
        "acme-ci",
        purchased("1002", Some(5), Some(t0() + Duration::seconds(90)), None),
    )
    .await;
    let (token, body) = h.raw_token(&customer("1")).await;
    let c = v.verify(&token).await.unwrap();
    assert_eq!(
        c.exp,
        (t0() + Duration::seconds(90)).timestamp(),
        "trial end"
    );
    assert_eq!(body["expires_at"], "2026-05-10T12:01:30Z");
    // A cancellation effective in 2 minutes.
    h.tg.purchase("2", "acme-ci", "1002", Some(5)).await;
    h.tg.event(
        "2",
        "acme-ci",
        EventKind::CancellationPending {
            effective_at: t0() + Duration::seconds(120),
        },
    )
    .await;
    let (token, _) = h.raw_token(&customer("2")).await;
    assert_eq!(
        v.verify(&token).await.unwrap().exp,
        (t0() + Duration::seconds(120)).timestamp(),
        "pending cancellation"
    );
    // No change known: the maximum lifetime.
    h.tg.purchase("3", "acme-ci", "1002", Some(5)).await;
    let (token, _) = h.raw_token(&customer("3")).await;
    assert_eq!(
        v.verify(&token).await.unwrap().exp,
        (t0() + Duration::minutes(5)).timestamp()
    );
    // The client keeps the answer until then, and asks again after.
    let client = h.client();
    h.take_calls("");
    for _ in 0..3 {
        assert_eq!(
            client.decide(&customer("1")).await.unwrap().reason,
            Reason::Ok
        );
    }
    assert_eq!(h.take_calls("/v1/token"), 1, "cached until exp");
    h.set_now(t0() + Duration::seconds(90));
    let d = client.decide(&customer("1")).await.unwrap();
    assert_eq!(
        (d.allowed, d.reason),
        (false, Reason::TrialExpired),
        "asked again at the trial's end"
    );
    // Denials are answered, not signed, and not cached.
    h.take_calls("");
    for _ in 0..2 {
        let d = client.decide(&customer("404")).await.unwrap();
        assert_eq!(d.reason, Reason::NoSubscription);
    }
    assert_eq!(h.take_calls("/v1/token"), 2, "denials are not cached");
    let answer = client.token(&customer("404")).await.unwrap();
    assert_eq!((answer.token, answer.expires_at), (None, None));
    assert_eq!(h.take_calls("/v1/token"), 1);
}

#[tokio::test]
async fn exp_is_capped_at_the_next_known_change() {
    exp_is_capped_at_the_next_known_change_on(Arc::new(SqliteStore::open_in_memory().unwrap()))
        .await;
}

#[tokio::test]
async fn exp_is_capped_at_the_next_known_change_on_dynamodb() {
    exp_is_capped_at_the_next_known_change_on(Arc::new(tollgate_tests::moto::fresh_store().await))
        .await;
}

#[tokio::test]
async fn an_app_users_token_ends_with_its_link() {
    let h = Harness::sqlite().await;
    h.tg.purchase("1", "acme-ci", "1002", Some(5)).await;
    let expires = t0() + Duration::seconds(42);
    h.tg.store
        .link_user(
            &tollgate::model::AppUser("github:7".into()),
            &tollgate::store::UserLink::new(
                tollgate::model::CustomerKey::new(Marketplace::Github, "1"),
                expires - Duration::days(30),
                Duration::days(30),
            ),
        )
        .await
        .unwrap();
    let q = CheckRequest::new(CustomerRef::app_user("github:7"), "acme-ci");
    let (token, _) = h.raw_token(&q).await;
    let c = h.verifier().verify(&token).await.unwrap();
    assert_eq!(c.sub, "app_user:github:7");
    assert_eq!(c.exp, expires.timestamp());
}

// ------------------------------------------------------------------ rotation --

#[tokio::test]
async fn a_rotated_key_verifies_until_it_is_removed() {
    let h = Harness::sqlite().await;
    h.tg.purchase("1", "acme-ci", "1002", Some(5)).await;
    let v = h.verifier();
    let (old_token, _) = h.raw_token(&customer("1")).await;
    v.verify(&old_token).await.unwrap();

    // Rotation: a new current key, the old one kept as previous (deployed
    // more than the verifier's 30 s refetch interval after its first fetch).
    let new = new_key();
    h.deploy(Some(issuer(
        &new,
        Some(&h.token_key),
        TokenPolicy::default(),
    )));
    h.set_now(t0() + Duration::seconds(30));
    let jwks: Value = reqwest::get(h.served.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let (new_token, _) = h.raw_token(&customer("1")).await;
    let new_kid = jsonwebtoken::decode_header(&new_token)
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(
        jwks["keys"][0]["kid"],
        new_kid.as_str(),
        "the current key signs"
    );
    // The verifier learns the new kid by itself; the old token still verifies.
    h.take_calls("");
    v.verify(&new_token).await.unwrap();
    assert_eq!(h.take_calls("/.well-known/jwks.json"), 1);
    v.verify(&old_token).await.unwrap();
    let fresh = h.verifier();
    fresh.verify(&old_token).await.unwrap();
    fresh.verify(&new_token).await.unwrap();
    // A running verifier whose keys live 60 s, holding both keys now.
    let jwks_url = url::Url::parse(&h.served.url("/.well-known/jwks.json")).unwrap();
    let running = TokenVerifier::new(
        reqwest::Client::new(),
        jwks_url,
        h.options().jwks_max_age(std::time::Duration::from_secs(60)),
    );
    running.verify(&old_token).await.unwrap();

    // The previous key removed: a new verifier refuses the old token at
    // once; a running one still accepts it until its keys reach their
    // maximum age, then fetches them again and refuses it.
    h.deploy(Some(issuer(&new, None, TokenPolicy::default())));
    let fresh = h.verifier();
    fresh.verify(&new_token).await.unwrap();
    assert!(matches!(
        fresh.verify(&old_token).await,
        Err(TokenError::UnknownKey)
    ));
    running.verify(&old_token).await.unwrap();
    h.set_now(t0() + Duration::seconds(90));
    h.take_calls("");
    assert!(matches!(
        running.verify(&old_token).await,
        Err(TokenError::UnknownKey)
    ));
    assert_eq!(h.take_calls("/.well-known/jwks.json"), 1);
    running.verify(&new_token).await.unwrap();
}

// ------------------------------------------------------------------ fallback --

#[tokio::test]
async fn the_client_falls_back_to_check_when_no_valid_token_comes() {
    let h = Harness::sqlite().await;
    h.tg.purchase("1", "acme-ci", "1002", Some(5)).await;
    let client = h.client();
    let q = customer("1").feature("private-repos");

    // Tampered on the way: refused, and `/v1/check` answers instead.
    h.front.tamper.store(true, Ordering::SeqCst);
    h.take_calls("");
    for _ in 0..2 {
        let d = client.decide(&q).await.unwrap();
        assert_eq!(
            (d.allowed, d.tier.as_deref()),
            (true, Some("team")),
            "never the tampered tier"
        );
    }
    let paths = h.front.paths.lock().unwrap().clone();
    assert_eq!(
        paths.iter().filter(|p| *p == "/v1/check").count(),
        2,
        "{paths:?}"
    );
    assert_eq!(
        paths.iter().filter(|p| *p == "/v1/token").count(),
        2,
        "nothing cached: {paths:?}"
    );
    h.take_calls("");

    // A deployment that signs nothing (503 tokens_not_configured).
    h.front.tamper.store(false, Ordering::SeqCst);
    h.deploy(None);
    let err = client.token(&q).await.unwrap_err();
    assert_eq!(err.code(), Some("tokens_not_configured"));
    assert_eq!(client.decide(&q).await.unwrap().reason, Reason::Ok);
    assert_eq!(h.take_calls("/v1/check"), 1);

    // A token for another question is not taken for this one.
    let own = issuer(&h.token_key, None, TokenPolicy::default());
    h.deploy(Some(own));
    let v = h.verifier();
    let (token, _) = h.raw_token(&customer("1")).await;
    let claims = v.verify(&token).await.unwrap();
    assert!(claims.answers(&customer("1")));
    assert!(!claims.answers(&q), "without the feature");
    assert!(!claims.answers(&customer("2")));
}

// --------------------------------------------------------------------- layer --

#[tokio::test]
async fn the_layer_lets_requests_through_on_a_token_and_fails_closed() {
    let h = Harness::sqlite().await;
    h.tg.purchase("1", "acme-ci", "1002", Some(5)).await;
    let app = Router::new()
        .route(
            "/builds",
            get(|Entitled(d): Entitled| async move { d.tier.unwrap_or_default() }),
        )
        .layer(
            RequireEntitlement::new(
                h.client(),
                "acme-ci",
                Subject::from_headers("x-org", "x-user"),
            )
            .feature("private-repos"),
        );
    let call = |org: &'static str| {
        let app = app.clone();
        async move {
            let req = http::Request::builder()
                .uri("/builds")
                .header("x-org", org)
                .body(axum::body::Body::empty())
                .unwrap();
            let res = app.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let body = axum::body::to_bytes(res.into_body(), 1 << 16)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    h.take_calls("");
    assert_eq!(call("github:1").await, (200, "team".to_owned()));
    assert_eq!(call("github:1").await, (200, "team".to_owned()));
    assert_eq!(
        h.take_calls("/v1/token"),
        1,
        "the second request used the cached token"
    );
    let (status, body) = call("github:404").await;
    assert_eq!(status, 402, "{body}");

    // Tollgate down: the cached token still answers until it expires, then
    // the layer fails closed.
    h.front.down.store(true, Ordering::SeqCst);
    h.take_calls("");
    assert_eq!(call("github:1").await.0, 200, "offline, on the token");
    assert_eq!(h.take_calls(""), 0, "no request reached Tollgate");
    h.set_now(t0() + Duration::minutes(5));
    let (status, body) = call("github:1").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("entitlement_unavailable"), "{body}");
}

// ------------------------------------------------------------- as deployed --

#[tokio::test]
async fn the_deployed_handler_reads_its_key_from_the_secrets_and_its_policy_from_the_settings() {
    let tg = Tollgate::sqlite();
    tg.purchase("1", "acme-ci", "1002", Some(5)).await;
    let key = new_key();
    let api = generate("app", Scopes::ALL).unwrap();
    let app = |token_key: &str| {
        TestApp::new()
            .config(support::CATALOG)
            .store(Arc::clone(&tg.store))
            .now(t0())
            .setting("TOLLGATE_TOKEN_MAX_LIFETIME", "60")
            .setting("TOLLGATE_TOKEN_AUDIENCE", "billing")
            .secret(TOKEN_KEY_SECRET, token_key)
            .secret(&api.entry.secret_name(), &api.entry.secret_value())
    };
    let handler = app(&key).entitlement_check_configured().unwrap();
    let req = support::request(
        "POST",
        "/v1/token",
        Some(api.key.expose()),
        Some(support::ask("1", "acme-ci").to_string()),
    );
    let res = tollgate::web::serve(&handler, req).await;
    assert_eq!(res.status(), 200);
    let body: Value = serde_json::from_slice(res.body().as_ref()).unwrap();
    let token = body["token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(
        header.kid.as_deref(),
        Some(
            tollgate::api::token::key_id(&tollgate::secret::Secret::new(key.clone()))
                .unwrap()
                .as_str()
        )
    );
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["aud"], "billing");
    assert_eq!(claims["iss"], "tollgate");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );

    // A malformed key stops the cold start, naming the entry, not its value.
    let Err(err) = app("ed25519:c2VjcmV0LWJ1dC1ub3QtYS1rZXk").entitlement_check_configured() else {
        panic!("a malformed key must stop the cold start");
    };
    let err = err.to_string();
    assert!(err.contains(TOKEN_KEY_SECRET), "{err}");
    assert!(!err.contains("c2VjcmV0LWJ1dC1ub3QtYS1rZXk"), "{err}");
}
