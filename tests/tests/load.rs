//! Load, bounded and on 127.0.0.1 only (the functions in process, moto on
//! loopback):
//!
//! - 100 concurrent GitHub deliveries for one subscription on DynamoDB
//!   (moto) all take effect, each exactly once (invariant 3, no lost
//!   update, under real contention).
//! - The entitlement check under sustained concurrent load on both stores:
//!   zero errors, seats never past the limit; p50/p99 printed (run with
//!   `--nocapture` to see them; README "Budgets, measured").
//!
//! Sizes: `TOLLGATE_LOAD_DELIVERIES` (default 100) and
//! `TOLLGATE_LOAD_CHECKS` (checks per store; defaults 4000 on SQLite, 600
//! on moto), README "Testing".

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use http::StatusCode;
use serde_json::json;
use tollgate::api::auth::Authenticator;
use tollgate::clock::FixedClock;
use tollgate::functions::purchase_webhook::github_pipeline;
use tollgate::ingest::replay::replay_pending;
use tollgate::model::{Disposition, Marketplace, SubscriptionKey};
use tollgate::store::Store;
use tollgate::store::sqlite::SqliteStore;
use tollgate::testing::TestApp;
use tollgate_tests::deliver::{
    GITHUB_CONFIG, GithubPlan, check_request, github_body, github_request, knob, send,
};

const SECRET: &str = "load-secret";
/// Far above any honest run; only a hang trips it.
const GUARD: Duration = Duration::from_secs(120);

/// The moto harness answers one request at a time (tests/src/moto.rs), so
/// the two moto load tests take turns rather than queue behind each other.
static MOTO_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn app(store: &Arc<dyn Store>) -> TestApp {
    TestApp::new()
        .config(GITHUB_CONFIG)
        .secret(tollgate::marketplace::github::SECRET_NAME, SECRET)
        .store(Arc::clone(store))
        .clock(Arc::new(FixedClock::new(
            Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0).unwrap(),
        )))
}

fn purchase(account: u64, units: u32) -> Vec<u8> {
    serde_json::to_vec(&github_body(
        "purchased",
        account,
        GithubPlan::TEAM,
        units,
        Utc.with_ymd_and_hms(2025, 1, 10, 0, 0, 0).unwrap(),
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_100_concurrent_deliveries_for_one_subscription_all_take_effect_exactly_once() {
    let _turn = MOTO_TURN.lock().await;
    let n = knob(&["TOLLGATE_LOAD_DELIVERIES"]).unwrap_or(100);
    let store: Arc<dyn Store> = Arc::new(tollgate_tests::moto::fresh_store().await);
    // The production bounds: moto serves one request at a time, so under
    // this contention some deliveries time out or give up after 64 version
    // conflicts. They answer 503 and stay pending (or, not recorded, are
    // redelivered from the listing), and recovery must finish each once.
    let function = Arc::new(app(&store).purchase_webhook().unwrap());
    let account = 77;
    let first = send(
        &*function,
        github_request(SECRET, "marketplace_purchase", "p", &purchase(account, 1)),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    // `n` seat changes on the same day: each applies, in arrival order.
    let day = Utc.with_ymd_and_hms(2025, 1, 12, 0, 0, 0).unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (1..=n)
        .map(|i| {
            let f = Arc::clone(&function);
            let body = serde_json::to_vec(&github_body(
                "changed",
                account,
                GithubPlan::TEAM,
                i + 1,
                day,
            ))
            .unwrap();
            let req = github_request(SECRET, "marketplace_purchase", &format!("c-{i}"), &body);
            tokio::spawn(async move { send(&*f, req).await })
        })
        .collect();
    let mut pending = 0;
    let mut not_recorded = Vec::new();
    for (i, t) in (1..=n).zip(tasks) {
        let a = tokio::time::timeout(GUARD, t)
            .await
            .expect("bounded")
            .expect("no panic");
        match (a.status, a.error_code()) {
            (StatusCode::OK, _) => assert_eq!(a.json["status"], "applied", "{}", a.json),
            (StatusCode::SERVICE_UNAVAILABLE, "delivery_pending") => pending += 1,
            (StatusCode::SERVICE_UNAVAILABLE, "not_recorded") => not_recorded.push(i),
            _ => panic!("c-{i}: {} {}", a.status, a.json),
        }
    }
    let took = started.elapsed();
    println!(
        "{n} concurrent deliveries for one subscription on moto: {took:?}; {pending} left pending, {} not recorded",
        not_recorded.len()
    );
    // Recovery: GitHub's redelivery of what was not recorded, then replay.
    for i in &not_recorded {
        let body = serde_json::to_vec(&github_body(
            "changed",
            account,
            GithubPlan::TEAM,
            i + 1,
            day,
        ))
        .unwrap();
        // moto still works through the requests the first attempts gave up
        // on; like an operator pressing "Redeliver" again, try a few times.
        let mut answer = None;
        for _ in 0..5 {
            let req = github_request(SECRET, "marketplace_purchase", &format!("c-{i}"), &body);
            let a = send(&*function, req).await;
            if a.error_code() != "not_recorded" {
                answer = Some(a);
                break;
            }
        }
        let a = answer.expect("recorded within five redeliveries");
        assert!(
            a.status == StatusCode::OK || a.error_code() == "delivery_pending",
            "{}",
            a.json
        );
    }
    let clock = FixedClock::new(Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0).unwrap());
    let pipeline = github_pipeline(&app(&store).deps()).unwrap();
    let summary = replay_pending(&pipeline, &*store, &clock, |_| {})
        .await
        .expect("replay");
    assert_eq!(summary.failed, 0, "{summary:?}");
    let key = SubscriptionKey::new(Marketplace::Github, account.to_string());
    let state = store.get(&key).await.unwrap().expect("stored");
    assert_eq!(
        state.version,
        u64::from(n) + 1,
        "every delivery applied once"
    );
    let log = store.log(&key).await.unwrap();
    let ids: BTreeSet<_> = log.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!((log.len(), ids.len()), (n as usize + 1, n as usize + 1));
    assert!(log.iter().all(|e| e.disposition == Disposition::Applied));
    let now = Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0).unwrap();
    assert!(
        store
            .pending_deliveries(Marketplace::Github, now)
            .await
            .unwrap()
            .is_empty()
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `checks` checks from 16 concurrent callers over eight customers, by
/// customer and by customer + feature: zero errors, every one allowed;
/// p50/p99 printed. (Seat claims under load are the conformance suite's
/// `seat_limit_holds_under_50_concurrent_claims`.)
async fn checks_under_load(store: Arc<dyn Store>, label: &str, checks: u32) {
    const CALLERS: u32 = 16;
    const CUSTOMERS: u64 = 8;
    const SEATS: u32 = 5;
    let app = app(&store);
    let webhook = app.purchase_webhook().unwrap();
    for c in 0..CUSTOMERS {
        let a = send(
            &webhook,
            github_request(
                SECRET,
                "marketplace_purchase",
                &format!("p-{c}"),
                &purchase(c, SEATS),
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    }
    let check = Arc::new(app.entitlement_check(Authenticator::new(vec![], true)));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let check = Arc::clone(&check);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut allowed = BTreeSet::new();
                let mut errors = Vec::new();
                let mut k = caller;
                while k < checks {
                    let customer = u64::from(k) % CUSTOMERS;
                    let mut q = json!({"marketplace": "github", "customer_id": customer.to_string(),
                                       "product": "acme-ci"});
                    if k % 2 == 0 {
                        q["feature"] = json!("private-repos");
                    }
                    let t = Instant::now();
                    let a = send(&*check, check_request(&q)).await;
                    latencies.push(t.elapsed());
                    if a.status != StatusCode::OK {
                        errors.push(format!("{}: {}", a.status, a.json));
                    } else if a.json["allowed"] != true {
                        errors.push(format!("denied: {}", a.json));
                    } else {
                        allowed.insert(customer);
                    }
                    k += CALLERS;
                }
                (latencies, allowed, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut allowed = BTreeSet::new();
    let mut errors = Vec::new();
    for t in tasks {
        let (l, a, e) = tokio::time::timeout(GUARD, t)
            .await
            .expect("bounded")
            .expect("no panic");
        latencies.extend(l);
        allowed.extend(a);
        errors.extend(e);
    }
    let took = started.elapsed();
    assert!(
        errors.is_empty(),
        "{} errors, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert_eq!(allowed.len() as u64, CUSTOMERS.min(u64::from(checks)));
    latencies.sort();
    println!(
        "check under load on {label}: {} checks, {CALLERS} concurrent callers, {:.0} checks/s, p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        f64::from(checks) / took.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_check_under_sustained_concurrent_load_has_zero_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("load.db")).unwrap());
    let checks = knob(&["TOLLGATE_LOAD_CHECKS"]).unwrap_or(4000);
    checks_under_load(store, "SQLite (file)", checks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_check_under_sustained_concurrent_load_has_zero_errors() {
    let _turn = MOTO_TURN.lock().await;
    let store = Arc::new(tollgate_tests::moto::fresh_store().await);
    let checks = knob(&["TOLLGATE_LOAD_CHECKS"]).unwrap_or(600);
    checks_under_load(store, "DynamoDB (moto)", checks).await;
}
