//! A failed store call in the operator's log: the call and the SDK's own
//! error chain, not just "storage failure"; the caller's answer stays
//! short. One test in its own binary: tracing caches per call site whether
//! anyone listens, and call sites first hit by concurrently running tests
//! could be cached as unheard.

use std::sync::Arc;
use std::time::Duration;

use tollgate::api::auth::Authenticator;
use tollgate::store::Store;
use tollgate::testing::TestApp;
use tollgate::web::{Body, serve};
use tollgate_tests::silent::{silent_server, store_on};

/// Far above the store's own 3 s bound: only a missing bound trips it.
const GUARD: Duration = Duration::from_secs(20);

/// The operator's log says which store call failed and why (the SDK's own
/// error chain), not just "storage failure"; the caller's answer stays short.
#[tokio::test]
async fn a_failed_store_call_is_logged_with_its_source() {
    let (url, _server) = silent_server().await;
    let store: Arc<dyn Store> = Arc::new(store_on(&url));
    let check = TestApp::new()
        .store(store)
        .entitlement_check(Authenticator::new(vec![], true));
    let req = http::Request::builder()
        .method("POST")
        .uri("/v1/check")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"marketplace":"github","customer_id":"77","product":"acme-ci"}"#.to_owned(),
        ))
        .unwrap();
    let (logs, _guard) = tollgate_tests::logs::capture();
    let res = tokio::time::timeout(GUARD, serve(&check, req))
        .await
        .expect("answered within the store's bound");
    assert_eq!(res.status(), 503);
    let body = String::from_utf8_lossy(res.body().as_ref()).into_owned();
    assert!(
        !body.contains("CUST#"),
        "the answer names no store key: {body}"
    );
    let failed = logs
        .text()
        .lines()
        .find(|l| l.contains("request failed"))
        .map(str::to_owned)
        .expect("the failure is logged");
    let line: serde_json::Value = serde_json::from_str(&failed).unwrap();
    let cause = line["fields"]["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("subscriptions of CUST#github#77") && cause.contains("timeout"),
        "the cause names the call and the SDK's reason: {failed}"
    );
}
