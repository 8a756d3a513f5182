//! Signed entitlement tokens against `/v1/check`, in the same run (README
//! "Signed entitlement tokens"): what an app pays per request when it
//! verifies a token locally, against a round trip to Tollgate.
//!
//! The real entitlement-check handler (an in-memory SQLite store, an API
//! key, a signing key) is served over HTTP on 127.0.0.1, and
//! `tollgate-client` talks to it:
//!
//! - `token/verify_locally`: [`TokenVerifier::verify`] of a token, keys
//!   already fetched — EdDSA signature, `alg`/`iss`/`aud`/`exp` checks, the
//!   claims parsed. What checking a token another service forwarded costs.
//! - `token/decide_cached`: `EntitlementClient::decide` answered from the
//!   cached, already verified token — what `RequireEntitlement` pays per
//!   request while a token lives.
//! - `token/check_round_trip`: `EntitlementClient::check`, a `POST
//!   /v1/check` over loopback HTTP (keep-alive) to the handler: auth, one
//!   store read, the decision. A deployed round trip adds the network and
//!   Lambda's own latency on top.
//!
//! All three run their futures on one current-thread runtime (`block_on`),
//! so that overhead is on every side alike.

use std::hint::black_box;
use std::sync::Arc;

use axum::body::{Body as AxumBody, to_bytes};
use axum::extract::{Request as AxumRequest, State};
use axum::response::Response as AxumResponse;
use chrono::{Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use tollgate::api::auth::{Authenticator, Scopes, generate};
use tollgate::api::token::{TOKEN_KEY_SECRET, TokenIssuer, generate_key};
use tollgate::functions::entitlement_check::EntitlementCheck;
use tollgate::ingest::ingest;
use tollgate::model::{
    Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan, PlanTerms, SubscriptionKey,
};
use tollgate::secret::Secrets;
use tollgate::store::Store;
use tollgate::store::sqlite::SqliteStore;
use tollgate::testing::TestApp;
use tollgate::web::{Body, MAX_BODY_BYTES, serve};
use tollgate_client::{CheckRequest, CustomerRef, EntitlementClient, TokenOptions};

const CONFIG: &str = include_str!("../../tollgate.example.toml");

async fn forward(State(handler): State<Arc<EntitlementCheck>>, req: AxumRequest) -> AxumResponse {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, MAX_BODY_BYTES + 1).await.unwrap_or_default();
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes.to_vec())
    };
    let (parts, body) = serve(&*handler, http::Request::from_parts(parts, body))
        .await
        .into_parts();
    let bytes = match body {
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    AxumResponse::from_parts(parts, AxumBody::from(bytes))
}

fn bench_tokens(c: &mut Criterion) {
    // The server on its own runtime, as a separate process would be.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let api_key = generate("bench", Scopes::ALL).unwrap();
    let token_key = generate_key().unwrap();
    let issuer = TokenIssuer::from_secrets(
        &Secrets::from_pairs([(TOKEN_KEY_SECRET, token_key.expose())]),
        Default::default(),
    )
    .unwrap();
    let handler = TestApp::new()
        .config(CONFIG)
        .store(Arc::clone(&store))
        .system_clock()
        .entitlement_check(Authenticator::new(vec![api_key.entry.clone()], false))
        .with_tokens(issuer);
    let addr = server.block_on(async {
        let now = Utc::now();
        let mut terms = PlanTerms::new(Plan::new("1002"));
        terms.seats = Some(10);
        let event = MarketEvent {
            id: "bench-seed".into(),
            subscription: SubscriptionKey::new(Marketplace::Github, "4242"),
            customer: Customer::new(CustomerKey::new(Marketplace::Github, "4242")),
            product: "acme-ci".into(),
            effective_at: now - Duration::days(1),
            kind: EventKind::Purchased {
                terms,
                awaiting: None,
            },
        };
        ingest(&*store, &event, now).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::new(handler));
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = EntitlementClient::new(&format!("http://{addr}"), Some(api_key.key.expose()))
        .unwrap()
        .with_tokens(TokenOptions::default());
    let q = CheckRequest::new(
        CustomerRef::customer(Marketplace::Github, "4242"),
        "acme-ci",
    )
    .feature("private-repos");
    let verifier = client.token_verifier().unwrap().clone();
    let token = rt.block_on(async {
        let token = client.token(&q).await.unwrap().token.unwrap();
        // Fetches the keys once; the cache starts warm.
        verifier.verify(&token).await.unwrap();
        assert!(client.decide(&q).await.unwrap().allowed);
        assert!(client.check(&q).await.unwrap().allowed);
        token
    });

    let mut g = c.benchmark_group("token");
    g.bench_function("verify_locally", |b| {
        b.iter(|| rt.block_on(verifier.verify(black_box(&token))).unwrap())
    });
    g.bench_function("decide_cached", |b| {
        b.iter(|| rt.block_on(client.decide(black_box(&q))).unwrap())
    });
    g.bench_function("check_round_trip", |b| {
        b.iter(|| rt.block_on(client.check(black_box(&q))).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_tokens);
criterion_main!(benches);
