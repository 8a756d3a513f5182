//! The Google stand-ins answer like Google: the Procurement API's methods,
//! request fields and resources are checked against its discovery document
//! (`fixtures/gcp/cloudcommerceprocurement-v1-discovery.json`, see the README
//! there for its source); the token endpoint, JWKS and x509 certificate map
//! against Google's documented formats; the publisher's Pub/Sub envelope by
//! decoding it and verifying its token.

use std::sync::{Arc, Mutex};

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use tollgate_sim::gcp::control::Remote;
use tollgate_sim::gcp::{
    BadPushToken, BadSignupToken, CLOUD_PLATFORM_SCOPE, EntitlementState, EntitlementStep,
    EventType, Fault, GcpSim, JWT_BEARER_GRANT, Listing, Notification, OIDC_ISSUER,
    PROCUREMENT_METHODS, PUSH_USER_AGENT, PlanChangeTiming, PushConfig, Running, SIGNUP_ISSUER,
};

// ---------------------------------------------------------------- helpers --

fn discovery() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/gcp/cloudcommerceprocurement-v1-discovery.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every method of the document, by id.
fn discovery_methods(doc: &Value) -> Map<String, Value> {
    fn walk(resources: &Value, out: &mut Map<String, Value>) {
        for r in resources.as_object().into_iter().flat_map(|o| o.values()) {
            for m in r["methods"]
                .as_object()
                .into_iter()
                .flat_map(|o| o.values())
            {
                out.insert(m["id"].as_str().unwrap().to_owned(), m.clone());
            }
            walk(&r["resources"], out);
        }
    }
    let mut out = Map::new();
    walk(&doc["resources"], &mut out);
    out
}

/// Checks `value` against a discovery schema: types, `enum`, `$ref`,
/// `items`, `additionalProperties`, `google-datetime` timestamps. Stricter
/// than the document on one point: a key the schema does not list is an
/// error, so the stand-in never invents fields.
fn validate(schema: &Value, value: &Value, schemas: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return validate(&schemas[r], value, schemas, at, errors);
    }
    let ty = schema["type"].as_str().unwrap_or("any");
    let ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !ok {
        errors.push(format!("{at}: expected {ty}, got {value}"));
        return;
    }
    if let (Some(allowed), Some(s)) = (schema["enum"].as_array(), value.as_str())
        && !allowed.iter().any(|a| a == s)
    {
        errors.push(format!("{at}: `{s}` is not one of {allowed:?}"));
    }
    if schema["format"] == "google-datetime"
        && let Some(s) = value.as_str()
        && DateTime::parse_from_rfc3339(s).is_err()
    {
        errors.push(format!("{at}: `{s}` is not an RFC 3339 timestamp"));
    }
    if let Some(obj) = value.as_object() {
        let props = schema["properties"].as_object();
        for (k, v) in obj {
            match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => validate(s, v, schemas, &format!("{at}.{k}"), errors),
                (None, Some(s)) if props.is_none() => {
                    validate(s, v, schemas, &format!("{at}.{k}"), errors)
                }
                _ => errors.push(format!("{at}: `{k}` is not in the schema")),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            validate(items, v, schemas, &format!("{at}[{i}]"), errors);
        }
    }
}

fn assert_schema(doc: &Value, schema: &str, value: &Value) {
    let mut errors = Vec::new();
    validate(
        &doc["schemas"][schema],
        value,
        &doc["schemas"],
        schema,
        &mut errors,
    );
    assert!(errors.is_empty(), "{schema}: {errors:#?}\n{value:#}");
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn assertion(sim: &GcpSim, claims: Value, header: Header) -> String {
    let key = sim.service_account_key();
    let pem = EncodingKey::from_rsa_pem(key.private_key.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &pem).unwrap()
}

fn good_claims(sim: &GcpSim) -> Value {
    let key = sim.service_account_key();
    let now = Utc::now().timestamp();
    json!({
        "iss": key.client_email,
        "scope": CLOUD_PLATFORM_SCOPE,
        "aud": key.token_uri,
        "iat": now,
        "exp": now + 3600,
    })
}

fn rs256_with_kid(sim: &GcpSim) -> Header {
    Header {
        kid: Some(sim.service_account_key().private_key_id),
        ..Header::new(Algorithm::RS256)
    }
}

async fn exchange(run: &Running, assertion: &str) -> (StatusCode, Value) {
    let res = http()
        .post(&run.token_url)
        .form(&[("grant_type", JWT_BEARER_GRANT), ("assertion", assertion)])
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

/// An access token through the service-account flow, as Tollgate gets one.
async fn access_token(sim: &GcpSim, run: &Running) -> String {
    let (status, body) =
        exchange(run, &assertion(sim, good_claims(sim), rs256_with_kid(sim))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A Procurement API client for the tests: `(status, JSON body)`.
struct Api {
    base: String,
    provider: String,
    token: String,
}

impl Api {
    async fn new(sim: &GcpSim, run: &Running) -> Self {
        Self {
            base: run.procurement_url.clone(),
            provider: sim.listing().provider_id,
            token: access_token(sim, run).await,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}/v1/providers/{}/{path}", self.base, self.provider);
        let mut req = http()
            .request(method.parse().unwrap(), url)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(body)).await
    }

    async fn entitlement(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("entitlements/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn precondition_failed() -> Value {
    json!({"error":{"code":400,"message":"Precondition check failed.","status":"FAILED_PRECONDITION"}})
}

/// One request a push endpoint received: headers and body.
type Received = (axum::http::HeaderMap, Vec<u8>);

/// A push endpoint that records what it receives and answers `status`.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<Vec<u16>>>,
    /// Signalled after each request is recorded.
    arrived: Arc<tokio::sync::Notify>,
}

impl Receiver {
    async fn start(&self) -> (String, tokio::task::JoinHandle<()>) {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/push",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let me = me.clone();
                    async move {
                        me.got.lock().unwrap().push((headers, body.to_vec()));
                        me.arrived.notify_one();
                        let status = me.status.lock().unwrap().pop().unwrap_or(204);
                        axum::http::StatusCode::from_u16(status).unwrap()
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/push", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (url, task)
    }

    /// The next answers, in order.
    fn answer(&self, statuses: &[u16]) {
        let mut s = self.status.lock().unwrap();
        s.clear();
        s.extend(statuses.iter().rev());
    }

    /// Waits until `n` requests have arrived (for pushes made in the
    /// background); the timeout only bounds a broken test.
    async fn wait_for(&self, n: usize) {
        let deadline = std::time::Duration::from_secs(60);
        while self.got.lock().unwrap().len() < n {
            tokio::time::timeout(deadline, self.arrived.notified())
                .await
                .expect("the push never arrived");
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect()
    }
}

/// What a push body's `message.data` says.
fn decode_data(envelope: &Value) -> Notification {
    let data = envelope["message"]["data"].as_str().unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

/// A reference verifier of push tokens, per Google's checklist: RS256 by a
/// key of the JWKS named by `kid`, `iss`, `aud`, `exp`, `email`,
/// `email_verified`.
async fn verify_push_token(
    run: &Running,
    token: &str,
    audience: &str,
    email: &str,
) -> Result<(), String> {
    let jwks: Value = http()
        .get(&run.oidc_certs_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("alg {:?}", header.alg));
    }
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or("unknown kid")?;
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[OIDC_ISSUER, "accounts.google.com"]);
    v.set_audience(&[audience]);
    v.leeway = 60;
    let claims = jsonwebtoken::decode::<Value>(token, &key, &v)
        .map_err(|e| e.to_string())?
        .claims;
    if claims["email"] != email {
        return Err("email".into());
    }
    if claims["email_verified"] != true {
        return Err("email_verified".into());
    }
    Ok(())
}

/// A reference verifier of sign-up tokens, per Google's list: RS256 by the
/// certificate named by `kid`, `exp`, `aud`, `iss` exactly, `sub` not empty,
/// plus a lifetime of at most 5 minutes.
async fn verify_signup_token(run: &Running, token: &str, audience: &str) -> Result<Value, String> {
    let certs: Value = http()
        .get(&run.signup_certs_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("alg {:?}", header.alg));
    }
    let kid = header.kid.ok_or("no kid")?;
    let cert = certs[kid.as_str()].as_str().ok_or("unknown kid")?;
    let key = DecodingKey::from_rsa_pem(cert.as_bytes()).map_err(|e| e.to_string())?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[SIGNUP_ISSUER]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    v.leeway = 30;
    let claims = jsonwebtoken::decode::<Value>(token, &key, &v)
        .map_err(|e| e.to_string())?
        .claims;
    if claims["sub"].as_str().unwrap_or("").is_empty() {
        return Err("empty sub".into());
    }
    if claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() > 300 {
        return Err("lifetime over 5 minutes".into());
    }
    Ok(claims)
}

// ------------------------------------------------------------------ tests --

#[test]
fn the_vendored_discovery_document_is_googles() {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/gcp/cloudcommerceprocurement-v1-discovery.json"
    ))
    .unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &text);
    assert_eq!(
        hex::encode(digest.as_ref()),
        "f190f8d674e5cd6ff6b1ca3aae1c13349c481e6b66efdf581029692ba0d4d842"
    );
    assert_eq!(discovery()["revision"], "20250914");
}

#[test]
fn every_served_method_is_in_the_discovery_document() {
    let doc = discovery();
    let methods = discovery_methods(&doc);
    for m in PROCUREMENT_METHODS {
        let d = methods
            .get(m.id)
            .unwrap_or_else(|| panic!("{} is not in the document", m.id));
        assert_eq!(d["httpMethod"], m.http_method, "{}", m.id);
        assert_eq!(d["flatPath"], m.flat_path, "{}", m.id);
        assert_eq!(d["response"]["$ref"], m.response, "{}", m.id);
        let mut query: Vec<&str> = d["parameters"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, p)| p["location"] == "query")
            .map(|(k, _)| k.as_str())
            .collect();
        query.sort_unstable();
        let mut served = m.query.to_vec();
        served.sort_unstable();
        assert_eq!(served, query, "{} query parameters", m.id);
        match m.request {
            None => assert!(d.get("request").is_none(), "{} takes a body", m.id),
            Some((schema, fields)) => {
                assert_eq!(d["request"]["$ref"], schema, "{}", m.id);
                let mut documented: Vec<&str> = doc["schemas"][schema]["properties"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                documented.sort_unstable();
                let mut accepted = fields.to_vec();
                accepted.sort_unstable();
                assert_eq!(accepted, documented, "{} request fields", m.id);
            }
        }
    }
    // Everything but suspend ("This is not yet supported.") is served.
    let served: Vec<&str> = PROCUREMENT_METHODS.iter().map(|m| m.id).collect();
    let missing: Vec<&String> = methods
        .keys()
        .filter(|id| !served.contains(&id.as_str()))
        .collect();
    assert_eq!(
        missing,
        ["cloudcommerceprocurement.providers.entitlements.suspend"]
    );
}

#[tokio::test]
async fn served_methods_answer_at_their_documented_paths_with_their_documented_fields() {
    let sim = GcpSim::generate().unwrap();
    let run = sim.start().await.unwrap();
    let api = Api::new(&sim, &run).await;
    let order = sim.order("acct-routes", "team-monthly").await.unwrap();
    let ent = order.entitlement_id;
    // Every method, at its flat path with real ids and a body of all its
    // documented fields: routed (never "Method not found"), never refused
    // for an unknown field.
    for m in PROCUREMENT_METHODS {
        let path = m
            .flat_path
            .replace("{providersId}", &api.provider)
            .replace("{accountsId}", "acct-routes")
            .replace("{entitlementsId}", &ent);
        let url = format!("{}/{path}", run.procurement_url);
        let mut req = http()
            .request(m.http_method.parse().unwrap(), &url)
            .bearer_auth(&api.token);
        if let Some((_, fields)) = m.request {
            let body: Map<String, Value> = fields
                .iter()
                .filter(|f| {
                    ![
                        "properties",
                        "consumers",
                        "entitlementBenefitIds",
                        "inputProperties",
                    ]
                    .contains(f)
                })
                .map(|f| ((*f).to_owned(), json!("x")))
                .collect();
            req = req.json(&body);
        }
        if m.http_method == "PATCH" {
            req = req.query(&[("updateMask", "messageToUser")]);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(
            !message.starts_with("Method not found") && !message.contains("Unknown name"),
            "{} {url}: {status} {body}",
            m.id
        );
    }
    // suspend is not served; nor is a verb on the wrong method.
    let (status, body) = api
        .post(&format!("entitlements/{ent}:suspend"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["status"].clone()),
        (StatusCode::NOT_FOUND, json!("NOT_FOUND"))
    );
    let (status, _) = api.get("accounts/acct-routes:approve").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // An undocumented field or query parameter is refused, as Google does.
    let (status, body) = api
        .post(
            "accounts/acct-routes:approve",
            json!({"approval_name": "signup"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown name \"approval_name\"")
    );
    let (status, body) = api.get("entitlements?state=active").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Standard parameters are fine.
    let (status, _) = api.get("entitlements?prettyPrint=false&alt=json").await;
    assert_eq!(status, StatusCode::OK);
    // Another provider's resources are not the caller's.
    let res = http()
        .get(format!(
            "{}/v1/providers/someone-else/entitlements/{ent}",
            run.procurement_url
        ))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn resources_in_every_state_validate_against_the_discovery_schemas() {
    let doc = discovery();
    let sim = GcpSim::new(Listing::demo().with_plan_change(PlanChangeTiming::AtTermEnd)).unwrap();
    let run = sim.start().await.unwrap();
    let api = Api::new(&sim, &run).await;
    let mut seen_states = Vec::new();
    let mut check = |e: &Value| {
        assert_schema(&doc, "Entitlement", e);
        seen_states.push(e["state"].as_str().unwrap().to_owned());
    };

    let a = sim
        .order("acct-a", "team-monthly")
        .await
        .unwrap()
        .entitlement_id;
    let (status, account) = api.get("accounts/acct-a").await;
    assert_eq!(status, StatusCode::OK);
    assert_schema(&doc, "Account", &account);
    assert_eq!(
        account["approvals"],
        json!([{"name": "signup", "state": "PENDING", "updateTime": account["approvals"][0]["updateTime"]}])
    );
    // messageToUser may be set while the customer waits.
    let (status, patched) = api
        .call(
            "PATCH",
            &format!("entitlements/{a}?updateMask=messageToUser"),
            Some(json!({"messageToUser": "Provisioning, about 5 minutes"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["messageToUser"], "Provisioning, about 5 minutes");
    check(&patched);

    let (status, empty) = api
        .post(
            "accounts/acct-a:approve",
            json!({"approvalName": "signup", "reason": "signed up"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_schema(&doc, "Empty", &empty);
    let (_, account) = api.get("accounts/acct-a").await;
    assert_schema(&doc, "Account", &account);
    assert_eq!(account["approvals"][0]["state"], "APPROVED");
    api.post(&format!("entitlements/{a}:approve"), json!({}))
        .await;
    let active = api.entitlement(&a).await;
    assert!(
        active.get("messageToUser").is_none(),
        "cleared on the state change"
    );
    check(&active);
    sim.request_plan_change(&a, "business-yearly")
        .await
        .unwrap();
    check(&api.entitlement(&a).await);
    api.post(
        &format!("entitlements/{a}:approvePlanChange"),
        json!({"pendingPlanName": "business-yearly"}),
    )
    .await;
    let pending = api.entitlement(&a).await;
    assert_eq!(pending["state"], "ENTITLEMENT_PENDING_PLAN_CHANGE");
    check(&pending);
    sim.cancel(&a).await.unwrap();
    check(&api.entitlement(&a).await);
    sim.end_term(&a).await.unwrap();
    check(&api.entitlement(&a).await);

    let b = sim
        .accept_private_offer("acct-b", "free")
        .await
        .unwrap()
        .entitlement_id;
    check(&api.entitlement(&b).await);

    let mut states: Vec<&str> = seen_states.iter().map(String::as_str).collect();
    states.sort_unstable();
    states.dedup();
    assert_eq!(
        states,
        [
            "ENTITLEMENT_ACTIVATION_REQUESTED",
            "ENTITLEMENT_ACTIVE",
            "ENTITLEMENT_CANCELLED",
            "ENTITLEMENT_PENDING_CANCELLATION",
            "ENTITLEMENT_PENDING_PLAN_CHANGE",
            "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL",
        ]
    );

    let (status, list) = api.get("entitlements").await;
    assert_eq!(status, StatusCode::OK);
    assert_schema(&doc, "ListEntitlementsResponse", &list);
    assert_eq!(list["entitlements"].as_array().unwrap().len(), 2);
    let (status, list) = api.get("accounts").await;
    assert_eq!(status, StatusCode::OK);
    assert_schema(&doc, "ListAccountsResponse", &list);
    assert_eq!(list["accounts"].as_array().unwrap().len(), 2);
    // Nothing matches: proto3 JSON leaves the empty list out.
    let (_, none) = api.get("entitlements?filter=plan%3Dnope").await;
    assert_eq!(none, json!({}));
    assert_schema(&doc, "ListEntitlementsResponse", &none);
}

#[tokio::test]
async fn token_endpoint_accepts_the_service_account_grant_and_refuses_bad_assertions() {
    let sim = GcpSim::generate().unwrap();
    let run = sim.start().await.unwrap();
    let key = sim.service_account_key();
    // The key file has the fields of Google's, pointing at the stand-in.
    let file: Value = serde_json::from_str(&key.to_json()).unwrap();
    for field in [
        "type",
        "project_id",
        "private_key_id",
        "private_key",
        "client_email",
        "client_id",
        "auth_uri",
        "token_uri",
        "auth_provider_x509_cert_url",
        "client_x509_cert_url",
        "universe_domain",
    ] {
        assert!(
            file[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}"
        );
    }
    assert_eq!(file["type"], "service_account");
    assert_eq!(file["token_uri"], run.token_url.as_str());
    assert!(key.private_key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(key.client_email.ends_with(".iam.gserviceaccount.com"));
    assert!(!format!("{key:?}").contains("PRIVATE KEY"));

    let good = assertion(&sim, good_claims(&sim), rs256_with_kid(&sim));
    let (status, body) = exchange(&run, &good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));
    // Without kid too (it is optional).
    let (status, _) = exchange(
        &run,
        &assertion(&sim, good_claims(&sim), Header::new(Algorithm::RS256)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.access_tokens_issued(), 2);

    let other = tollgate_sim::gcp::GcpSim::generate()
        .unwrap()
        .service_account_key();
    let other_key = EncodingKey::from_rsa_pem(other.private_key.as_bytes()).unwrap();
    let now = Utc::now().timestamp();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good_claims(&sim);
        f(&mut c);
        assertion(&sim, c, rs256_with_kid(&sim))
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "signed by another key",
            jsonwebtoken::encode(&rs256_with_kid(&sim), &good_claims(&sim), &other_key).unwrap(),
            "invalid_grant",
        ),
        (
            "another kid",
            assertion(
                &sim,
                good_claims(&sim),
                Header {
                    kid: Some("0".repeat(40)),
                    ..Header::new(Algorithm::RS256)
                },
            ),
            "invalid_grant",
        ),
        (
            "unknown issuer",
            with(&|c| c["iss"] = json!("someone-else@acme-public.iam.gserviceaccount.com")),
            "invalid_grant",
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("https://oauth2.googleapis.com/token")),
            "invalid_grant",
        ),
        (
            "expired",
            with(&|c| {
                c["iat"] = json!(now - 7200);
                c["exp"] = json!(now - 3600);
            }),
            "invalid_grant",
        ),
        (
            "over an hour",
            with(&|c| c["exp"] = json!(now + 7200)),
            "invalid_grant",
        ),
        (
            "issued in the future",
            with(&|c| {
                c["iat"] = json!(now + 600);
                c["exp"] = json!(now + 1200);
            }),
            "invalid_grant",
        ),
        (
            "no scope",
            with(&|c| {
                c.as_object_mut().unwrap().remove("scope");
            }),
            "invalid_scope",
        ),
        (
            "another scope",
            with(&|c| c["scope"] = json!("https://www.googleapis.com/auth/pubsub")),
            "invalid_scope",
        ),
        ("not a JWT", "nope".to_owned(), "invalid_grant"),
    ];
    for (what, assertion, error) in cases {
        let (status, body) = exchange(&run, &assertion).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["error"], error, "{what}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{what}"
        );
    }
    let res = http()
        .post(&run.token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("assertion", good.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    // Nothing but the two good exchanges issued a token; no form was recorded.
    assert_eq!(sim.access_tokens_issued(), 2);
    assert!(sim.seen().iter().all(|s| s.body.is_none()));
}

#[tokio::test]
async fn procurement_api_needs_a_live_access_token() {
    let sim = GcpSim::generate().unwrap();
    let run = sim.start().await.unwrap();
    let url = format!(
        "{}/v1/providers/acme-public/entitlements",
        run.procurement_url
    );
    let res = http().get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["status"],
        "UNAUTHENTICATED"
    );
    let res = http()
        .get(&url)
        .bearer_auth("ya29.made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let token = access_token(&sim, &run).await;
    let res = http().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    sim.expire_access_tokens();
    let res = http().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let fresh = access_token(&sim, &run).await;
    let res = http().get(&url).bearer_auth(&fresh).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The standard `access_token` parameter works too, and is never recorded.
    let res = http()
        .get(&url)
        .query(&[("access_token", fresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = sim.seen();
    assert_eq!(
        seen.last().unwrap().query.as_deref(),
        Some("access_token=***")
    );
    assert!(!format!("{seen:?}").contains(&fresh));
}

#[tokio::test]
async fn jwks_verifies_push_tokens_and_every_bad_one_is_refused() {
    let sim = GcpSim::generate().unwrap();
    let run = sim.start().await.unwrap();
    let audience = "https://pubsub-push.example/gcp";
    sim.set_push(PushConfig::new("http://127.0.0.1:9/unused").with_audience(audience));
    let email = sim.push_service_account();

    let jwks: Value = http()
        .get(&run.oidc_certs_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    for field in ["kty", "alg", "use", "kid", "n", "e"] {
        assert!(keys[0][field].is_string(), "{field}");
    }
    assert_eq!(
        (
            keys[0]["kty"].clone(),
            keys[0]["alg"].clone(),
            keys[0]["use"].clone()
        ),
        (json!("RSA"), json!("RS256"), json!("sig"))
    );

    let token = sim.push_token();
    verify_push_token(&run, &token, audience, &email)
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), keys[0]["kid"].as_str());
    let claims = sim.push_claims();
    assert_eq!(
        (
            claims.iss.as_str(),
            claims.aud.as_str(),
            claims.email_verified
        ),
        (OIDC_ISSUER, audience, true)
    );
    assert_eq!(claims.exp - claims.iat, 3600);

    for case in BadPushToken::ALL {
        let bad = sim.bad_push_token(case).unwrap();
        assert!(
            verify_push_token(&run, &bad, audience, &email)
                .await
                .is_err(),
            "{case:?} passed the reference verifier"
        );
    }

    // After a rotation the JWKS has both keys; new tokens use the new one.
    sim.rotate_oidc_key().unwrap();
    let jwks: Value = http()
        .get(&run.oidc_certs_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let rotated = sim.push_token();
    assert_ne!(
        jsonwebtoken::decode_header(&rotated).unwrap().kid,
        header.kid
    );
    verify_push_token(&run, &rotated, audience, &email)
        .await
        .unwrap();
    verify_push_token(&run, &token, audience, &email)
        .await
        .unwrap();
}

#[tokio::test]
async fn certificate_map_verifies_signup_tokens_and_every_bad_one_is_refused() {
    let sim = GcpSim::generate().unwrap();
    let run = sim.start().await.unwrap();
    let audience = sim.listing().signup_audience;
    let order = sim.order("E-1234-5678", "team-monthly").await.unwrap();

    let res = http().get(&run.signup_certs_url).send().await.unwrap();
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let certs: Value = res.json().await.unwrap();
    let certs = certs.as_object().unwrap();
    assert_eq!(certs.len(), 1);
    let (kid, cert) = certs.iter().next().unwrap();
    assert_eq!(kid.len(), 40);
    let cert = cert.as_str().unwrap();
    assert!(
        cert.starts_with("-----BEGIN CERTIFICATE-----\n")
            && cert.ends_with("-----END CERTIFICATE-----\n")
    );

    // An X.509 v3 end-entity certificate as rustls's webpki reads one, whose
    // public key checks the token.
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            cert.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let der = rustls_pki_types::CertificateDer::from(der);
    let parsed = webpki::EndEntityCert::try_from(&der).unwrap();
    let spki =
        base64::engine::general_purpose::STANDARD.encode(parsed.subject_public_key_info().as_ref());
    let from_spki = DecodingKey::from_rsa_pem(
        format!("-----BEGIN PUBLIC KEY-----\n{spki}\n-----END PUBLIC KEY-----\n").as_bytes(),
    )
    .unwrap();

    let token = sim.signup_token("E-1234-5678");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[&audience]);
    jsonwebtoken::decode::<Value>(&token, &from_spki, &v).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (Algorithm::RS256, Some(kid.as_str()))
    );
    let claims = verify_signup_token(&run, &token, &audience).await.unwrap();
    assert_eq!(claims["sub"], "E-1234-5678");
    assert_eq!(claims["iss"], SIGNUP_ISSUER);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    assert_eq!(claims["google"]["orders"], json!([order.entitlement_id]));
    assert!(claims["google"]["user_identity"].is_string());
    // The same person gets the same user identity.
    let again = verify_signup_token(&run, &sim.signup_token("E-1234-5678"), &audience)
        .await
        .unwrap();
    assert_eq!(
        again["google"]["user_identity"],
        claims["google"]["user_identity"]
    );

    for case in BadSignupToken::ALL {
        let bad = sim.bad_signup_token("E-1234-5678", case).unwrap();
        assert!(
            verify_signup_token(&run, &bad, &audience).await.is_err(),
            "{case:?} passed the reference verifier"
        );
    }

    sim.rotate_signup_key().unwrap();
    let certs: Value = http()
        .get(&run.signup_certs_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(certs.as_object().unwrap().len(), 2);
    verify_signup_token(&run, &sim.signup_token("E-1234-5678"), &audience)
        .await
        .unwrap();
    verify_signup_token(&run, &token, &audience).await.unwrap();
}

#[tokio::test]
async fn entitlements_move_the_way_googles_do() {
    let sim = GcpSim::generate().unwrap();
    let run = sim.start().await.unwrap();
    let api = Api::new(&sim, &run).await;
    let id = sim
        .order("acct-1", "team-monthly")
        .await
        .unwrap()
        .entitlement_id;
    let e = api.entitlement(&id).await;
    assert_eq!(e["state"], "ENTITLEMENT_ACTIVATION_REQUESTED");
    assert_eq!(e["account"], "providers/acme-public/accounts/acct-1");
    assert_eq!(
        e["productExternalName"],
        "acme-ci.endpoints.acme-public.cloud.goog"
    );
    assert_eq!(e["plan"], "team-monthly");

    // Approving before the account's sign-up approval: Google's 400.
    let (status, body) = api
        .post(&format!("entitlements/{id}:approve"), json!({}))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, precondition_failed())
    );
    // The account is approved at sign-up, then the entitlement.
    let (status, body) = api
        .post("accounts/acct-1:approve", json!({"approvalName": "signup"}))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, _) = api
        .post("accounts/acct-1:approve", json!({"approvalName": "signup"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "approving twice");
    let (status, body) = api
        .post(&format!("entitlements/{id}:approve"), json!({}))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let e = api.entitlement(&id).await;
    assert_eq!(e["state"], "ENTITLEMENT_ACTIVE");
    assert!(e["offerEndTime"].is_string());
    let (status, body) = api
        .post(&format!("entitlements/{id}:approve"), json!({}))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, precondition_failed())
    );
    // Messages wait for the vendor only: no messageToUser while active.
    let (status, _) = api
        .call(
            "PATCH",
            &format!("entitlements/{id}?updateMask=messageToUser"),
            Some(json!({"messageToUser": "hi"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = api
        .call(
            "PATCH",
            &format!("entitlements/{id}?updateMask=plan"),
            Some(json!({"plan": "free"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].clone()),
        (StatusCode::BAD_REQUEST, json!("INVALID_ARGUMENT"))
    );

    // A plan change waits for approval with newPendingPlan ...
    let pushed = sim
        .request_plan_change(&id, "business-yearly")
        .await
        .unwrap();
    assert!(pushed.is_empty(), "no push endpoint: messages stay queued");
    let e = api.entitlement(&id).await;
    assert_eq!(
        (
            e["state"].clone(),
            e["plan"].clone(),
            e["newPendingPlan"].clone()
        ),
        (
            json!("ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL"),
            json!("team-monthly"),
            json!("business-yearly")
        )
    );
    // ... refused with the wrong plan name, applied with the right one.
    let (status, body) = api
        .post(
            &format!("entitlements/{id}:approvePlanChange"),
            json!({"pendingPlanName": "free"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, precondition_failed())
    );
    let (status, body) = api
        .post(&format!("entitlements/{id}:approvePlanChange"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["status"].clone()),
        (StatusCode::BAD_REQUEST, json!("INVALID_ARGUMENT"))
    );
    let (status, _) = api
        .post(
            &format!("entitlements/{id}:approvePlanChange"),
            json!({"pendingPlanName": "business-yearly"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let e = api.entitlement(&id).await;
    assert_eq!(
        (e["state"].clone(), e["plan"].clone()),
        (json!("ENTITLEMENT_ACTIVE"), json!("business-yearly"))
    );
    assert!(e.get("newPendingPlan").is_none());
    // A rejected change leaves the old plan.
    sim.request_plan_change(&id, "free").await.unwrap();
    let (status, _) = api
        .post(
            &format!("entitlements/{id}:rejectPlanChange"),
            json!({"pendingPlanName": "free", "reason": "not offered"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.entitlement(&id).await["plan"], "business-yearly");
    // A renewal moves the term end.
    let before = sim.entitlement(&id).unwrap().term_end;
    sim.end_term(&id).await.unwrap();
    assert!(sim.entitlement(&id).unwrap().term_end > before);

    // Cancelling waits for the end of the term, and can be reverted.
    sim.cancel(&id).await.unwrap();
    assert_eq!(
        api.entitlement(&id).await["state"],
        "ENTITLEMENT_PENDING_CANCELLATION"
    );
    let refused = sim.request_plan_change(&id, "free").await.unwrap_err();
    assert!(
        refused.to_string().contains("PENDING_CANCELLATION"),
        "{refused}"
    );
    sim.revert_cancellation(&id).await.unwrap();
    assert_eq!(api.entitlement(&id).await["state"], "ENTITLEMENT_ACTIVE");
    sim.cancel(&id).await.unwrap();
    sim.end_term(&id).await.unwrap();
    let e = api.entitlement(&id).await;
    assert_eq!(
        (e["state"].clone(), e["cancellationReason"].clone()),
        (json!("ENTITLEMENT_CANCELLED"), json!("user-cancelled"))
    );
    assert!(sim.revert_cancellation(&id).await.is_err(), "final");

    // Deleted: 404 with Google's body; then the account can go too.
    sim.delete_entitlement(&id).await.unwrap();
    let (status, body) = api.get(&format!("entitlements/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}})
    );
    sim.delete_account("acct-1").await.unwrap();
    let (status, _) = api.get("accounts/acct-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        EntitlementState::Cancelled.as_str(),
        "ENTITLEMENT_CANCELLED"
    );
}

#[tokio::test]
async fn accounts_reject_and_reset_and_deletion_needs_cancelled_entitlements() {
    let sim = GcpSim::generate().unwrap();
    let run = sim.start().await.unwrap();
    let api = Api::new(&sim, &run).await;
    let id = sim.order("acct-2", "free").await.unwrap().entitlement_id;
    let (status, _) = api
        .post(
            "accounts/acct-2:reject",
            json!({"approvalName": "signup", "reason": "unknown company"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, account) = api.get("accounts/acct-2").await;
    assert_eq!(account["approvals"][0]["state"], "REJECTED");
    assert_eq!(account["approvals"][0]["reason"], "unknown company");
    // A rejected sign-up may still be approved; an unknown approval is refused.
    let (status, _) = api
        .post(
            "accounts/acct-2:approve",
            json!({"approvalName": "billing"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api.post("accounts/acct-2:approve", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    api.post(&format!("entitlements/{id}:approve"), json!({}))
        .await;
    assert_eq!(
        sim.entitlement(&id).unwrap().state,
        EntitlementState::Active
    );
    let err = sim.delete_account("acct-2").await.unwrap_err();
    assert!(err.to_string().contains(&id), "{err}");
    // Reset: pending again, entitlements cancelled, nothing published.
    let queued_before = sim.queued().len();
    let (status, _) = api.post("accounts/acct-2:reset", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.queued().len(), queued_before);
    let (_, account) = api.get("accounts/acct-2").await;
    assert_eq!(account["approvals"][0]["state"], "PENDING");
    assert_eq!(api.entitlement(&id).await["state"], "ENTITLEMENT_CANCELLED");
    sim.delete_account("acct-2").await.unwrap();
    let (status, _) = api.get("accounts/acct-2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.get("accounts/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Rejecting an order cancels it.
    let other = sim.order("acct-3", "free").await.unwrap().entitlement_id;
    let (status, _) = api
        .post(
            &format!("entitlements/{other}:reject"),
            json!({"reason": "no"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sim.entitlement(&other).unwrap().state,
        EntitlementState::Cancelled
    );
}

#[tokio::test]
async fn list_filters_and_pages() {
    let sim = GcpSim::generate().unwrap();
    let run = sim.start().await.unwrap();
    let api = Api::new(&sim, &run).await;
    let mut ids = Vec::new();
    for (account, plan) in [
        ("A-1", "free"),
        ("A-1", "team-monthly"),
        ("B-2", "free"),
        ("C-3", "free"),
    ] {
        ids.push(sim.order(account, plan).await.unwrap().entitlement_id);
    }
    api.post("accounts/B-2:approve", json!({"approvalName": "signup"}))
        .await;
    api.post(&format!("entitlements/{}:approve", ids[2]), json!({}))
        .await;

    let names = |list: &Value| -> Vec<String> {
        list["entitlements"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        e["name"]
                            .as_str()
                            .unwrap()
                            .rsplit('/')
                            .next()
                            .unwrap()
                            .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let query = |f: &str| {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filter", f)
            .finish();
        format!("entitlements?{q}")
    };
    let (_, l) = api
        .get(&query("account=A-1 state=activation_requested"))
        .await;
    assert_eq!(names(&l), [ids[0].clone(), ids[1].clone()]);
    let (_, l) = api.get(&query("state=ENTITLEMENT_ACTIVE")).await;
    assert_eq!(names(&l), [ids[2].clone()]);
    let (_, l) = api
        .get(&query("plan=free AND NOT (account=A-1 OR account=B-2)"))
        .await;
    assert_eq!(names(&l), [ids[3].clone()]);
    let (status, body) = api.get(&query("colour=red")).await;
    assert_eq!(
        (status, body["error"]["status"].clone()),
        (StatusCode::BAD_REQUEST, json!("INVALID_ARGUMENT"))
    );

    // pageSize 1: four pages, each pointing at the next; the last has no token.
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let path = match &token {
            Some(t) => format!("entitlements?pageSize=1&pageToken={t}"),
            None => "entitlements?pageSize=1".to_owned(),
        };
        let (status, page) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        all.extend(names(&page));
        token = page["nextPageToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(all, ids);
    let (status, _) = api.get("entitlements?pageToken=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, accounts) = api.get("accounts?pageSize=2").await;
    assert_eq!(accounts["accounts"].as_array().unwrap().len(), 2);
    assert!(accounts["nextPageToken"].is_string());

    // A stand-in maximum of 3: the default page (200) and a larger pageSize
    // both stop at 3; a smaller pageSize is still honoured; lifted, one page.
    sim.set_max_page_size(Some(3));
    for path in ["entitlements", "entitlements?pageSize=50"] {
        let (_, page) = api.get(path).await;
        assert_eq!(names(&page), ids[..3], "{path}");
        let token = page["nextPageToken"].as_str().unwrap().to_owned();
        let (_, rest) = api
            .get(&format!(
                "{path}{}pageToken={token}",
                if path.contains('?') { "&" } else { "?" }
            ))
            .await;
        assert_eq!(names(&rest), ids[3..], "{path}");
        assert!(rest["nextPageToken"].is_null(), "{rest}");
    }
    let (_, page) = api.get("entitlements?pageSize=2").await;
    assert_eq!(names(&page).len(), 2);
    sim.set_max_page_size(None);
    let (_, page) = api.get("entitlements").await;
    assert_eq!(
        (names(&page), page["nextPageToken"].is_null()),
        (ids.clone(), true)
    );
}

#[tokio::test]
async fn faults_answer_the_next_calls_like_google_then_recover() {
    let sim = GcpSim::generate().unwrap();
    let run = sim.start().await.unwrap();
    let api = Api::new(&sim, &run).await;
    sim.fail_next(2, Fault::Unavailable);
    sim.fail_next(1, Fault::RateLimited);
    let (status, body) = api.get("entitlements").await;
    assert_eq!(
        (status, body["error"]["status"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, json!("UNAVAILABLE"))
    );
    assert_eq!(body["error"]["code"], 503);
    let (status, _) = api.get("entitlements").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = api.get("entitlements").await;
    assert_eq!(
        (status, body["error"]["status"].clone()),
        (StatusCode::TOO_MANY_REQUESTS, json!("RESOURCE_EXHAUSTED"))
    );
    let (status, _) = api.get("entitlements").await;
    assert_eq!(status, StatusCode::OK);

    sim.fail_next_token_requests(1, Fault::Unavailable);
    let (status, _) = exchange(
        &run,
        &assertion(&sim, good_claims(&sim), rs256_with_kid(&sim)),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = exchange(
        &run,
        &assertion(&sim, good_claims(&sim), rs256_with_kid(&sim)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Every call was recorded with its status.
    let statuses: Vec<u16> = sim
        .seen()
        .iter()
        .filter(|s| s.path.ends_with("/entitlements"))
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, [503, 503, 429, 200]);
}

#[tokio::test]
async fn pushes_are_pubsub_envelopes_with_a_verifiable_oidc_token() {
    let sim = GcpSim::generate().unwrap();
    let run = sim.start().await.unwrap();
    let receiver = Receiver::default();
    let (endpoint, _task) = receiver.start().await;
    sim.set_push(PushConfig::new(&endpoint));

    let order = sim.order("acct-p", "team-monthly").await.unwrap();
    let types: Vec<&str> = order.pushed.iter().map(|p| p.event_type()).collect();
    assert_eq!(types, ["ACCOUNT_ACTIVE", "ENTITLEMENT_CREATION_REQUESTED"]);
    assert!(
        order
            .pushed
            .iter()
            .all(|p| p.acked() && p.status == Some(204))
    );

    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    for (headers, body) in &got {
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["user-agent"], PUSH_USER_AGENT);
        let token = headers["authorization"]
            .to_str()
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap()
            .to_owned();
        verify_push_token(&run, &token, &endpoint, &sim.push_service_account())
            .await
            .unwrap();
        let envelope: Value = serde_json::from_slice(body).unwrap();
        let message = envelope["message"].as_object().unwrap();
        let mut keys: Vec<&str> = message.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "attributes",
                "data",
                "messageId",
                "message_id",
                "publishTime",
                "publish_time"
            ]
        );
        assert_eq!(message["messageId"], message["message_id"]);
        assert_eq!(message["publishTime"], message["publish_time"]);
        assert!(DateTime::parse_from_rfc3339(message["publishTime"].as_str().unwrap()).is_ok());
        assert_eq!(
            envelope["subscription"],
            "projects/acme-public/subscriptions/tollgate-marketplace"
        );
    }
    let bodies = receiver.bodies();
    let account = decode_data(&bodies[0]);
    assert_eq!(account.event_type, "ACCOUNT_ACTIVE");
    assert_eq!(account.provider_id, "acme-public");
    assert_eq!(account.account.as_ref().unwrap().id, "acct-p");
    assert!(account.entitlement.is_none());
    let created = decode_data(&bodies[1]);
    assert_eq!(
        created.entitlement.as_ref().unwrap().id,
        order.entitlement_id
    );
    assert!(
        created
            .event_id
            .starts_with("ENTITLEMENT_CREATION_REQUESTED-")
    );
    // The data is exactly {eventId,eventType,providerId,entitlement:{id,updateTime}}.
    let raw: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(bodies[1]["message"]["data"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut keys: Vec<&str> = raw
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["entitlement", "eventId", "eventType", "providerId"]);
    let mut keys: Vec<&str> = raw["entitlement"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["id", "updateTime"]);

    // What the vendor does through the API is published too, on the next flush.
    let api = Api::new(&sim, &run).await;
    api.post("accounts/acct-p:approve", json!({"approvalName": "signup"}))
        .await;
    api.post(
        &format!("entitlements/{}:approve", order.entitlement_id),
        json!({}),
    )
    .await;
    assert_eq!(
        sim.queued()
            .iter()
            .map(|n| n.event_type.as_str())
            .collect::<Vec<_>>(),
        ["ENTITLEMENT_ACTIVE"]
    );
    let pushed = sim.deliver_queued().await;
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].event_type(), "ENTITLEMENT_ACTIVE");
    assert!(sim.queued().is_empty());

    // A plan-change request names the new plan.
    let pushed = sim
        .request_plan_change(&order.entitlement_id, "business-yearly")
        .await
        .unwrap();
    let n = &pushed[0].request.notification;
    assert_eq!(
        n.entitlement.as_ref().unwrap().new_plan.as_deref(),
        Some("business-yearly")
    );
    assert_eq!(decode_data(&pushed[0].request.envelope()), *n);

    // A negative acknowledgement keeps the message for redelivery, same id.
    receiver.answer(&[503]);
    let pushed = sim.cancel(&order.entitlement_id).await.unwrap();
    assert_eq!(
        (pushed.len(), pushed[0].acked(), pushed[0].status),
        (1, false, Some(503))
    );
    assert_eq!(sim.queued().len(), 1);
    let again = sim.deliver_queued().await;
    assert!(again[0].acked());
    assert_eq!(again[0].request.message_id, pushed[0].request.message_id);
    assert!(sim.queued().is_empty());
}

#[tokio::test]
async fn held_messages_can_be_replayed_duplicated_and_reordered() {
    let sim = GcpSim::generate().unwrap();
    let _run = sim.start().await.unwrap();
    let receiver = Receiver::default();
    let (endpoint, _task) = receiver.start().await;
    sim.set_push(
        PushConfig::new(&endpoint)
            .with_audience("marketplace-push")
            .with_subscription("projects/acme-public/subscriptions/custom"),
    );
    sim.hold_deliveries(true);
    let order = sim.order("acct-h", "free").await.unwrap();
    assert!(order.pushed.is_empty());
    let requests = sim.take_queued();
    assert_eq!(requests.len(), 2);
    assert!(sim.queued().is_empty());
    assert!(
        receiver.got.lock().unwrap().is_empty(),
        "nothing sent while held"
    );
    // Reordered and duplicated.
    for r in [&requests[1], &requests[0], &requests[1]] {
        assert!(sim.deliver(r).await.acked());
    }
    let ids: Vec<String> = receiver
        .bodies()
        .iter()
        .map(|b| b["message"]["messageId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            requests[1].message_id.clone(),
            requests[0].message_id.clone(),
            requests[1].message_id.clone()
        ]
    );
    assert_eq!(
        receiver.bodies()[0]["subscription"],
        "projects/acme-public/subscriptions/custom"
    );
    let token = requests[0].token().unwrap();
    let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims;
    assert_eq!(claims["aud"], "marketplace-push");
    // Another token on the same request.
    let mut forged = requests[0].clone();
    forged.authorization = Some(format!(
        "Bearer {}",
        sim.bad_push_token(BadPushToken::WrongEmail).unwrap()
    ));
    sim.deliver(&forged).await;
    let last = receiver.got.lock().unwrap().last().unwrap().0["authorization"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(last, forged.authorization.unwrap());
    // Released: the next step pushes at once again.
    sim.hold_deliveries(false);
    let pushed = sim
        .publish(Notification {
            event_id: "SOMETHING_NEW-1".into(),
            event_type: "SOMETHING_NEW".into(),
            provider_id: "acme-public".into(),
            account: None,
            entitlement: None,
        })
        .await;
    assert_eq!(pushed.len(), 1);
    assert_eq!(
        decode_data(&receiver.bodies().last().unwrap().clone()).event_type,
        "SOMETHING_NEW"
    );
}

#[tokio::test]
async fn a_full_lifecycle_publishes_every_marketplace_event_type() {
    let sim = GcpSim::new(Listing::demo().with_plan_change(PlanChangeTiming::AtTermEnd)).unwrap();
    let run = sim.start().await.unwrap();
    let receiver = Receiver::default();
    let (endpoint, _task) = receiver.start().await;
    sim.set_push(PushConfig::new(&endpoint));
    let api = Api::new(&sim, &run).await;

    let id = sim
        .order("acct-l", "team-monthly")
        .await
        .unwrap()
        .entitlement_id;
    api.post("accounts/acct-l:approve", json!({})).await;
    api.post(&format!("entitlements/{id}:approve"), json!({}))
        .await;
    sim.deliver_queued().await;
    sim.request_plan_change(&id, "business-yearly")
        .await
        .unwrap();
    sim.cancel_plan_change(&id).await.unwrap();
    sim.request_plan_change(&id, "business-yearly")
        .await
        .unwrap();
    api.post(
        &format!("entitlements/{id}:approvePlanChange"),
        json!({"pendingPlanName": "business-yearly"}),
    )
    .await;
    sim.end_term(&id).await.unwrap(); // the change applies
    sim.end_term(&id).await.unwrap(); // renewal
    sim.cancel(&id).await.unwrap();
    sim.revert_cancellation(&id).await.unwrap();
    sim.cancel(&id).await.unwrap();
    sim.end_term(&id).await.unwrap();
    sim.delete_entitlement(&id).await.unwrap();

    let offer = sim.accept_private_offer("acct-l", "free").await.unwrap();
    let accepted = &offer.pushed[0].request.notification;
    assert_eq!(accepted.event_type, "ENTITLEMENT_OFFER_ACCEPTED");
    let r = accepted.entitlement.as_ref().unwrap();
    assert_eq!(r.new_plan.as_deref(), Some("free"));
    assert!(r.new_offer.as_deref().unwrap().contains("/privateOffers/"));
    assert_eq!(r.order_id.as_deref(), Some(offer.entitlement_id.as_str()));
    api.post(
        &format!("entitlements/{}:approve", offer.entitlement_id),
        json!({}),
    )
    .await;
    sim.end_offer(&offer.entitlement_id).await.unwrap();
    sim.cancel_now(&offer.entitlement_id, "billing-disabled")
        .await
        .unwrap();
    assert_eq!(
        api.entitlement(&offer.entitlement_id).await["cancellationReason"],
        "billing-disabled"
    );
    sim.delete_entitlement(&offer.entitlement_id).await.unwrap();
    sim.delete_account("acct-l").await.unwrap();

    let published: Vec<String> = receiver
        .bodies()
        .iter()
        .map(|b| decode_data(b).event_type)
        .collect();
    for t in EventType::ALL {
        if t == EventType::AccountCreationRequested {
            assert!(
                !published.contains(&t.as_str().to_owned()),
                "deprecated, never sent"
            );
            continue;
        }
        assert!(
            published.contains(&t.as_str().to_owned()),
            "{t} never published: {published:?}"
        );
    }
    assert!(sim.queued().is_empty());
    assert_eq!(published.len(), receiver.got.lock().unwrap().len());
}

#[tokio::test]
async fn the_http_control_api_drives_the_same_scenarios() {
    let sim = GcpSim::generate().unwrap();
    let run = sim.start().await.unwrap();
    let receiver = Receiver::default();
    let (endpoint, _task) = receiver.start().await;
    sim.set_push(PushConfig::new(&endpoint));
    let remote = Remote::new(&run.base_url);

    let order = remote.order("acct-r", "team-monthly", false).await.unwrap();
    assert_eq!(order.pushed.len(), 2);
    assert!(order.pushed.iter().all(|p| p.acked));
    assert_eq!(
        order.pushed[1].entitlement_id.as_deref(),
        Some(order.entitlement_id.as_str())
    );
    let err = remote
        .act(
            &order.entitlement_id,
            &EntitlementStep::RequestPlanChange {
                plan: "free".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("409"), "not active yet: {err}");
    let err = remote
        .act("nope", &EntitlementStep::Cancel)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    let token = remote.signup_token("acct-r").await.unwrap();
    verify_signup_token(&run, &token, &sim.listing().signup_audience)
        .await
        .unwrap();
    let state = remote.state().await.unwrap();
    assert_eq!(
        state["entitlements"][0]["state"],
        "ENTITLEMENT_ACTIVATION_REQUESTED"
    );
    assert_eq!(
        state["accounts"][0]["name"],
        "providers/acme-public/accounts/acct-r"
    );
    assert!(remote.deliver_queued().await.unwrap().is_empty());
    assert_eq!(
        tollgate_sim::gcp::control::parse_step("end-term", None, None).unwrap(),
        EntitlementStep::EndTerm
    );
    assert!(tollgate_sim::gcp::control::parse_step("explode", None, None).is_err());
}

#[tokio::test]
async fn auto_delivery_pushes_what_the_api_queues_in_the_background() {
    let sim = GcpSim::generate().unwrap();
    let run = sim.start().await.unwrap();
    let receiver = Receiver::default();
    let (endpoint, _task) = receiver.start().await;
    sim.set_push(PushConfig::new(&endpoint));
    sim.set_auto_deliver(true);
    let api = Api::new(&sim, &run).await;
    let id = sim.order("acct-auto", "free").await.unwrap().entitlement_id;
    assert_eq!(receiver.got.lock().unwrap().len(), 2);
    api.post(
        "accounts/acct-auto:approve",
        json!({"approvalName": "signup"}),
    )
    .await;
    let (status, _) = api
        .post(&format!("entitlements/{id}:approve"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Nobody flushes: the background deliverer pushes ENTITLEMENT_ACTIVE.
    receiver.wait_for(3).await;
    assert_eq!(
        decode_data(&receiver.bodies()[2]).event_type,
        "ENTITLEMENT_ACTIVE"
    );
    // The account view parameter takes the documented values only.
    let (status, _) = api.get("accounts/acct-auto?view=ACCOUNT_VIEW_FULL").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.get("accounts/acct-auto?view=EVERYTHING").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
