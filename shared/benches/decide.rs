//! The entitlement hot path (budget: a decision in ≤ 2 µs in memory; README "Budgets, measured").
//!
//! - `decide/*`: the pure decision for a realistic customer holding three
//!   subscriptions (another product, a cancelled one, an active seat-counted
//!   team plan with 5 of 10 seats held), asked for a feature and a user.
//! - `handler/check_by_customer`: the whole `POST /v1/check` path through
//!   `tollgate::web::serve` — routing, API-key auth (SHA-256 + constant-time
//!   compare), JSON parse, one read of an in-memory SQLite store, decision,
//!   JSON reply — without a network.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use tollgate::api::auth::{Authenticator, Scopes, generate};
use tollgate::config::Catalog;
use tollgate::entitlement::{Question, decide};
use tollgate::model::{
    Customer, CustomerKey, Marketplace, Plan, Seats, Status, Subscription, SubscriptionKey,
};
use tollgate::store::sqlite::SqliteStore;
use tollgate::store::{Commit, Commits};
use tollgate::testing::TestApp;
use tollgate::web::{Body, serve};

const CONFIG: &str = include_str!("../../tollgate.example.toml");

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0)
        .single()
        .unwrap()
}

fn subscription(id: &str, product: &str, plan: &str, status: Status) -> Subscription {
    Subscription {
        key: SubscriptionKey::new(Marketplace::Github, id),
        customer: Customer::new(CustomerKey::new(Marketplace::Github, "4242")),
        product: product.into(),
        plan: Plan::new(plan),
        status,
        awaiting: None,
        seats: Seats::default(),
        billing_cycle: None,
        trial_ends_at: None,
        next_billing_at: Some(now() + Duration::days(20)),
        access_until: None,
        pending_change: None,
        last_applied: None,
        version: 3,
        created_at: now() - Duration::days(90),
        updated_at: now() - Duration::days(1),
    }
}

/// Another product, a cancelled old plan, and the active team plan.
fn customer_subscriptions() -> Vec<Subscription> {
    let mut team = subscription("4242", "acme-ci", "1002", Status::Active);
    team.seats = Seats {
        limit: Some(10),
        used: 5,
    };
    vec![
        subscription("4242-other", "acme-docs", "7", Status::Active),
        subscription("4242-old", "acme-ci", "1001", Status::Cancelled),
        team,
    ]
}

fn bench_decide(c: &mut Criterion) {
    let catalog = Catalog::parse(CONFIG, Path::new("tollgate.example.toml")).unwrap();
    let subs = customer_subscriptions();
    let feature_and_user = Question {
        product: "acme-ci",
        feature: Some("private-repos"),
        user: Some("carol"),
        seated: &[],
    };
    let product_only = Question {
        product: "acme-ci",
        feature: None,
        user: None,
        seated: &[],
    };
    let denied = Question {
        product: "acme-ci",
        feature: Some("sso"),
        user: Some("zoe"),
        seated: &[],
    };
    c.bench_function("decide/3_subscriptions_feature_and_user", |b| {
        b.iter(|| {
            decide(
                &catalog,
                black_box(&subs),
                black_box(&feature_and_user),
                now(),
            )
        })
    });
    c.bench_function("decide/1_subscription_product_only", |b| {
        b.iter(|| {
            decide(
                &catalog,
                black_box(&subs[2..]),
                black_box(&product_only),
                now(),
            )
        })
    });
    c.bench_function("decide/3_subscriptions_feature_not_in_plan", |b| {
        b.iter(|| decide(&catalog, black_box(&subs), black_box(&denied), now()))
    });
}

fn bench_handler(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = SqliteStore::open_in_memory().unwrap();
    for sub in customer_subscriptions() {
        let commit = Commit {
            subscription: sub.key.clone(),
            expected_version: 0,
            log: tollgate::model::LogEntry {
                subscription: sub.key.clone(),
                event_id: format!("seed-{}", sub.key.id),
                event: "purchased".into(),
                effective_at: now(),
                recorded_at: now(),
                disposition: tollgate::model::Disposition::Applied,
                note: "bench seed".into(),
                status_before: None,
                status_after: Some(sub.status),
            },
            state: Some(Subscription { version: 1, ..sub }),
            delivery: None,
        };
        rt.block_on(store.commit(&commit)).unwrap();
    }
    let issued = generate("bench", Scopes::ALL).unwrap();
    let handler = TestApp::new()
        .config(CONFIG)
        .store(Arc::new(store))
        .now(now())
        .entitlement_check(Authenticator::new(vec![issued.entry], false));
    let body = r#"{"marketplace":"github","customer_id":"4242","product":"acme-ci","feature":"private-repos"}"#;
    let bearer = format!("Bearer {}", issued.key.expose());
    let request = || {
        http::Request::builder()
            .method("POST")
            .uri("/v1/check")
            .header("content-type", "application/json")
            .header("authorization", &bearer)
            .header("x-request-id", "bench-1")
            .body(Body::Text(body.to_owned()))
            .unwrap()
    };
    let first = rt.block_on(serve(&handler, request()));
    assert_eq!(first.status(), 200, "{:?}", first.body());
    c.bench_function("handler/check_by_customer", |b| {
        b.iter(|| rt.block_on(serve(&handler, request())))
    });
}

criterion_group!(benches, bench_decide, bench_handler);
criterion_main!(benches);
