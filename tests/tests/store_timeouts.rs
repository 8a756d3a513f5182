//! A DynamoDB that accepts connections and never answers: every call is
//! bounded by the store's SDK timeouts, fails as transient, and the
//! entitlement check answers 503 `store_unavailable` (the client library
//! then fails closed) instead of hanging until the Lambda's own timeout.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use tokio::net::TcpListener;
use tollgate::api::auth::Authenticator;
use tollgate::model::{Marketplace, SubscriptionKey};
use tollgate::store::dynamo::DynamoStore;
use tollgate::store::prelude::*;
use tollgate::store::{Store, StoreError};
use tollgate::testing::TestApp;
use tollgate::web::{Body, serve};

/// A server that takes connections and holds them, silent, until dropped.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

fn store_on(url: &str) -> DynamoStore {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(url)
        .timeout_config(DynamoStore::timeouts())
        .build();
    DynamoStore::new(Client::from_conf(conf), "tollgate")
}

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
