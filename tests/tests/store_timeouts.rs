//! A DynamoDB that accepts connections and never answers: every call is
//! bounded by the store's SDK timeouts, fails as transient, and the
//! entitlement check answers 503 `store_unavailable` (the client library
//! then fails closed) instead of hanging until the Lambda's own timeout.

use std::sync::Arc;
use std::time::Duration;

use tollgate::api::auth::Authenticator;
use tollgate::model::{Marketplace, SubscriptionKey};
use tollgate::store::prelude::*;
use tollgate::store::{Store, StoreError};
use tollgate::testing::TestApp;
use tollgate::web::{Body, serve};
use tollgate_tests::silent::{silent_server, store_on};

/// Far above the store's own 3 s bound: only a missing bound trips it.
const GUARD: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_silent_store_fails_as_transient_within_its_own_bound() {
    let (url, _server) = silent_server().await;
    let store = store_on(&url);
    let key = SubscriptionKey::new(Marketplace::Github, "1");
    let got = tokio::time::timeout(GUARD, store.get(&key))
        .await
        .expect("the SDK's timeouts end the call");
    assert!(
        matches!(got, Err(StoreError::Transient(_))),
        "a timeout is transient (503, retried), not a backend failure: {got:?}"
    );
}

#[tokio::test]
async fn a_check_against_a_silent_store_answers_503() {
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
            r#"{"marketplace":"github","customer_id":"1","product":"acme-ci"}"#.to_owned(),
        ))
        .unwrap();
    let res = tokio::time::timeout(GUARD, serve(&check, req))
        .await
        .expect("answered within the store's bound");
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = serde_json::from_slice(res.body().as_ref()).unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable");
}

/// A token's id (an OAuth `state`) is a secret until used: a failing token
/// call must not carry it into the error that gets logged.
#[tokio::test]
async fn a_failed_token_call_does_not_carry_the_token_id() {
    let (url, _server) = silent_server().await;
    let store = store_on(&url);
    let secret_id = "state-5f1d2c9a8b7e6f5d4c3b2a19";
    let now = chrono::Utc::now();
    let token = tollgate::store::Token {
        kind: "oauth_state".into(),
        id: secret_id.into(),
        payload: "{}".into(),
        expires_at: now + chrono::Duration::minutes(10),
    };
    let put = tokio::time::timeout(GUARD, store.put_token(&token, now))
        .await
        .expect("bounded");
    let take = tokio::time::timeout(GUARD, store.take_token("oauth_state", secret_id, now))
        .await
        .expect("bounded");
    for err in [put.unwrap_err(), take.unwrap_err()] {
        assert!(matches!(err, StoreError::Transient(_)), "{err:?}");
        let logged = tollgate::web::ApiError::from(err.clone());
        for text in [err.to_string(), format!("{logged:?}")] {
            assert!(!text.contains(secret_id), "token id leaked: {text}");
            assert!(text.contains("oauth_state"), "names the kind: {text}");
        }
    }
}

/// The app's side of an outage: the client library reports the 503, and
/// the `RequireEntitlement` layer answers 503 without calling the app.
#[tokio::test]
async fn the_client_library_fails_closed_when_the_store_is_silent() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tollgate_client::{CustomerRef, EntitlementClient, RequireEntitlement, Subject};
    use tower::{Layer, ServiceExt};

    let (url, _server) = silent_server().await;
    let store: Arc<dyn Store> = Arc::new(store_on(&url));
    let check = TestApp::new()
        .store(store)
        .entitlement_check(Authenticator::new(vec![], true));
    let served = tollgate_tests::serve::serve_function(check).await;
    let client = EntitlementClient::new(&served.url(""), None).unwrap();
    let customer =
        CustomerRef::Customer(tollgate::model::CustomerKey::new(Marketplace::Github, "1"));

    let err = tokio::time::timeout(
        GUARD,
        client.check(&tollgate_client::CheckRequest::new(
            customer.clone(),
            "acme-ci",
        )),
    )
    .await
    .expect("bounded")
    .expect_err("an outage is an error, never a decision");
    assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(err.code(), Some("store_unavailable"));

    let reached = Arc::new(AtomicBool::new(false));
    let app = {
        let reached = Arc::clone(&reached);
        tower::service_fn(move |_req: http::Request<()>| {
            reached.store(true, Ordering::SeqCst);
            async {
                Ok::<_, std::convert::Infallible>(axum::response::Response::new(
                    axum::body::Body::empty(),
                ))
            }
        })
    };
    let guarded = RequireEntitlement::new(client, "acme-ci", move |_| {
        Some(Subject::new(customer.clone(), None))
    })
    .layer(app);
    let res = tokio::time::timeout(GUARD, guarded.oneshot(http::Request::new(())))
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!(res.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(!reached.load(Ordering::SeqCst), "the app was never called");
}
