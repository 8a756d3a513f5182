//! entitlement-check's caller authentication as deployed: the handler built
//! the way its cold start builds it (`EntitlementCheck::configured`, from
//! settings and secrets), driven through `tollgate::web::serve` on the test
//! clock. API keys re-read from `TOLLGATE_SECRETS` (revocation without a
//! redeploy), keys with an expiry, the IAM allow-list, and hand-written
//! events that must not pass for IAM-authenticated function URL requests.

use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use tollgate::api::auth::{Scopes, generate};
use tollgate::functions::entitlement_check::EntitlementCheck;
use tollgate::testing::TestApp;
use tollgate::web::{Body, Request, serve};

const IAM_EVENT: &str = include_str!("../fixtures/entitlement-check/function-url-iam-check.json");
const CALLER_ROLE: &str = "arn:aws:iam::123456789012:role/acme-ci-app";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0)
        .single()
        .unwrap()
}

fn check_with_key(key: &str) -> Request {
    http::Request::builder()
        .method("POST")
        .uri("/v1/check")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::Text(
            json!({"marketplace": "github", "customer_id": "1", "product": "acme-ci"}).to_string(),
        ))
        .unwrap()
}

fn from_event(event: &Value) -> Request {
    lambda_http::request::from_str(&event.to_string()).expect("a function URL event")
}

/// Status and error code (`ok` for a 200).
async fn answer(check: &EntitlementCheck, req: Request) -> (u16, String) {
    let res = serve(check, req).await;
    let status = res.status().as_u16();
    let body: Value = serde_json::from_slice(res.body().as_ref()).expect("JSON");
    let code = body["error"]["code"].as_str().unwrap_or("ok").to_owned();
    (status, code)
}

fn write_secrets(path: &Path, secrets: &[(&str, String)]) {
    let map: serde_json::Map<String, Value> = secrets
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    std::fs::write(path, Value::Object(map).to_string()).unwrap();
}

#[tokio::test]
async fn a_key_deleted_from_the_secrets_stops_working_without_a_redeploy() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.json");
    let keep = generate("keep", Scopes::ALL).unwrap();
    let revoke = generate("revoke", Scopes::ALL).unwrap();
    let both = [
        ("api_key.keep", keep.entry.secret_value()),
        ("api_key.revoke", revoke.entry.secret_value()),
    ];
    write_secrets(&file, &both);
    let mut app = TestApp::new()
        .now(t0())
        .setting("TOLLGATE_SECRETS", &format!("file:{}", file.display()))
        .setting("TOLLGATE_API_KEYS_TTL", "60")
        .setting("TOLLGATE_API_KEYS_MAX_AGE", "300");
    // What the cold start read (`Deps::secrets`), the same as the file.
    for (name, value) in &both {
        app = app.secret(name, value);
    }
    let clock = app.fixed_clock();
    let check = app.entitlement_check_configured().unwrap();
    assert_eq!(
        answer(&check, check_with_key(revoke.key.expose())).await,
        (200, "ok".into())
    );

    // The entry is deleted from the secrets; the instance stays warm.
    write_secrets(&file, &both[..1]);
    // Past the maximum age the old list is never used: the request reads
    // the secrets again first, and the revoked key is refused.
    clock.set(t0() + Duration::seconds(300));
    assert_eq!(
        answer(&check, check_with_key(revoke.key.expose())).await,
        (401, "invalid_api_key".into())
    );
    assert_eq!(
        answer(&check, check_with_key(keep.key.expose())).await,
        (200, "ok".into())
    );

    // A secrets source that cannot be read: the last list serves until it is
    // too old, then the API fails closed.
    std::fs::write(&file, "{not json").unwrap();
    clock.set(t0() + Duration::seconds(599));
    assert_eq!(
        answer(&check, check_with_key(keep.key.expose())).await,
        (200, "ok".into())
    );
    clock.set(t0() + Duration::seconds(600));
    assert_eq!(
        answer(&check, check_with_key(keep.key.expose())).await,
        (503, "api_keys_unavailable".into())
    );
}

#[tokio::test]
async fn an_expired_key_is_401_expired_api_key() {
    let new = generate("contractor", Scopes::ALL).unwrap();
    let entry = new.entry.with_expiry(Some(t0() + Duration::days(1)));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.json");
    write_secrets(&file, &[("api_key.contractor", entry.secret_value())]);
    let mut app = TestApp::new()
        .now(t0())
        .setting("TOLLGATE_SECRETS", &format!("file:{}", file.display()))
        .secret("api_key.contractor", &entry.secret_value());
    let clock = app.fixed_clock();
    let check = app.entitlement_check_configured().unwrap();
    let key = new.key.expose();
    clock.set(t0() + Duration::days(1) - Duration::seconds(1));
    assert_eq!(
        answer(&check, check_with_key(key)).await,
        (200, "ok".into())
    );
    clock.set(t0() + Duration::days(1));
    assert_eq!(
        answer(&check, check_with_key(key)).await,
        (401, "expired_api_key".into())
    );
}

#[tokio::test]
async fn in_iam_mode_listed_principals_get_their_scopes_and_others_403() {
    let event: Value = serde_json::from_str(IAM_EVENT).unwrap();
    let deployed = |principals: Option<Value>| {
        let mut app = TestApp::new()
            .now(t0())
            .setting("TOLLGATE_CHECK_AUTH", "aws_iam")
            .setting("AWS_REGION", "us-east-1");
        if let Some(p) = principals {
            app = app.setting("TOLLGATE_IAM_PRINCIPALS", &p.to_string());
        }
        app.entitlement_check_configured().unwrap()
    };
    // Without a list: every IAM caller the URL let through, every scope.
    assert_eq!(
        answer(&deployed(None), from_event(&event)).await,
        (200, "ok".into())
    );
    // The caller's role (its session is in the event) with `check`.
    let listed = deployed(Some(json!({ CALLER_ROLE: "check" })));
    assert_eq!(
        answer(&listed, from_event(&event)).await,
        (200, "ok".into())
    );
    let mut seats = event.clone();
    seats["rawPath"] = json!("/v1/seats/github/1");
    seats["requestContext"]["http"]["method"] = json!("GET");
    seats["requestContext"]["http"]["path"] = json!("/v1/seats/github/1");
    seats.as_object_mut().unwrap().remove("body");
    assert_eq!(
        answer(&listed, from_event(&seats)).await,
        (403, "insufficient_scope".into())
    );
    // Another role only: this caller is not on the list.
    let others = deployed(Some(
        json!({"arn:aws:iam::123456789012:role/reporting": "check,seats"}),
    ));
    assert_eq!(
        answer(&others, from_event(&event)).await,
        (403, "principal_not_allowed".into())
    );
    // A malformed list stops the cold start, naming the variable.
    let bad = TestApp::new()
        .setting("TOLLGATE_IAM_PRINCIPALS", r#"{"acme": "check"}"#)
        .entitlement_check_configured()
        .err()
        .expect("refused");
    assert!(bad.to_string().contains("TOLLGATE_IAM_PRINCIPALS"), "{bad}");
}

#[tokio::test]
async fn a_direct_invoke_with_a_hand_written_event_is_not_an_iam_caller() {
    let key = generate("app", Scopes::ALL).unwrap();
    let app = TestApp::new()
        .now(t0())
        .setting("TOLLGATE_CHECK_AUTH", "aws_iam")
        .setting("AWS_REGION", "us-east-1")
        .secret("api_key.app", &key.entry.secret_value());
    let check = app.entitlement_check_configured().unwrap();
    let real: Value = serde_json::from_str(IAM_EVENT).unwrap();
    assert_eq!(answer(&check, from_event(&real)).await, (200, "ok".into()));

    // The console's kind of test event: no IAM caller, a key in a header.
    let mut no_iam = real.clone();
    no_iam["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    no_iam["headers"]["authorization"] = json!(format!("Bearer {}", key.key.expose()));
    assert_eq!(
        answer(&check, from_event(&no_iam)).await,
        (401, "untrusted_event".into())
    );
    // An IAM caller in an event that is not shaped like this function's
    // URL: an API Gateway host, another region.
    for host in [
        "abcdefghij0123456789klmnop.execute-api.us-east-1.amazonaws.com",
        "abcdefghij0123456789klmnop.lambda-url.eu-west-1.on.aws",
    ] {
        let mut other = real.clone();
        other["requestContext"]["domainName"] = json!(host);
        assert_eq!(
            answer(&check, from_event(&other)).await,
            (401, "untrusted_event".into()),
            "{host}"
        );
    }

    // Behind a public URL (API keys), an event naming an IAM caller is
    // refused even though it carries no key at all.
    let public = TestApp::new()
        .now(t0())
        .setting("TOLLGATE_CHECK_AUTH", "api_key")
        .secret("api_key.app", &key.entry.secret_value())
        .entitlement_check_configured()
        .unwrap();
    assert_eq!(
        answer(&public, from_event(&real)).await,
        (401, "untrusted_event".into())
    );
}
