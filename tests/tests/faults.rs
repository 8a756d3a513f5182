//! Fault injection: the store fails, fails after the call took effect,
//! hangs, or hangs after the call took effect — at every call a run of
//! deliveries makes, one at a time ([`FaultyStore`]). After the
//! marketplace's own recovery (GitHub: `tollgate replay` for what stayed
//! pending, a redelivery from the listing of what was answered with an
//! error; Q2: the relay retries an `UNKNOWN_ERROR`) nothing is lost and
//! nothing is doubled: every delivery is logged exactly once, the state is
//! the one a run without faults ends in, no delivery stays pending, the same
//! content under a new delivery id applies nothing, and Q2's places match
//! its subscriptions.
//!
//! Recovery by `tollgate reconcile` is not covered here yet (see README
//! "Testing").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use http::StatusCode;
use tollgate::clock::{Clock, FixedClock};
use tollgate::functions::purchase_webhook::{PurchaseWebhook, github_pipeline};
use tollgate::ingest::replay::replay_pending;
use tollgate::model::{Disposition, Marketplace, Status, SubscriptionKey};
use tollgate::store::sqlite::SqliteStore;
use tollgate::store::{GroupKey, Store};
use tollgate::testing::TestApp;
use tollgate_tests::deliver::{
    GITHUB_CONFIG, GithubPlan, github_body, github_request, q2_body, q2_request, send,
};
use tollgate_tests::faults::{Fault, FaultyStore};

/// Bounds short enough that a hang costs little, long enough for SQLite.
const SQLITE_BOUNDS: (Duration, Duration) = (Duration::from_millis(80), Duration::from_millis(160));
/// moto answers in milliseconds but is one process for every test: the
/// production bounds.
const MOTO_BOUNDS: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(5));

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, d, 0, 0, 0).unwrap()
}

/// Stores are made per run on SQLite and shared (one account or
/// institution per run) on moto.
#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Moto,
}

impl Backend {
    async fn store(self, shared: &Option<Arc<dyn Store>>) -> Arc<dyn Store> {
        match (self, shared) {
            (_, Some(store)) => Arc::clone(store),
            (Backend::Sqlite, None) => Arc::new(SqliteStore::open_in_memory().expect("sqlite")),
            (Backend::Moto, None) => Arc::new(tollgate_tests::moto::fresh_store().await),
        }
    }

    fn bounds(self) -> (Duration, Duration) {
        match self {
            Backend::Sqlite => SQLITE_BOUNDS,
            Backend::Moto => MOTO_BOUNDS,
        }
    }
}

// -------------------------------------------------------------- GitHub --

/// Purchase (team, 5), upgrade (business, 10), seat change (team, 3): the
/// bodies, in the order GitHub sends them.
fn github_bodies(account: u64) -> Vec<Vec<u8>> {
    [
        ("purchased", GithubPlan::TEAM, 5, day(1)),
        ("changed", GithubPlan::BUSINESS, 10, day(2)),
        ("changed", GithubPlan::TEAM, 3, day(3)),
    ]
    .into_iter()
    .map(|(action, plan, units, at)| {
        serde_json::to_vec(&github_body(action, account, plan, units, at)).unwrap()
    })
    .collect()
}

struct GithubRun {
    store: Arc<FaultyStore>,
    clock: Arc<FixedClock>,
    app: TestApp,
    function: PurchaseWebhook,
    secret: String,
    account: u64,
}

impl GithubRun {
    async fn new(backend: Backend, shared: &Option<Arc<dyn Store>>, account: u64) -> Self {
        let store = FaultyStore::new(backend.store(shared).await);
        let clock = Arc::new(FixedClock::new(day(20)));
        let secret = format!("secret-{account}");
        let app = TestApp::new()
            .config(GITHUB_CONFIG)
            .secret(tollgate::marketplace::github::SECRET_NAME, &secret)
            .store(store.clone())
            .clock(Arc::clone(&clock));
        let (record, process) = backend.bounds();
        let function = app
            .purchase_webhook()
            .expect("function")
            .with_timeouts(record, process);
        Self {
            store,
            clock,
            app,
            function,
            secret,
            account,
        }
    }

    fn id(&self, i: usize) -> String {
        format!("d-{}-{i}", self.account)
    }

    /// Sends every delivery once; the ids whose answer was not a 2xx.
    async fn deliver(&self) -> Vec<usize> {
        let mut failed = Vec::new();
        for (i, body) in github_bodies(self.account).iter().enumerate() {
            // A minute apart, so replay (oldest first) keeps GitHub's order.
            self.clock
                .set(self.clock.now() + chrono::Duration::minutes(1));
            let req = github_request(&self.secret, "marketplace_purchase", &self.id(i), body);
            let answer = send(&self.function, req).await;
            if !answer.status.is_success() {
                assert!(
                    answer.status.is_server_error()
                        || answer.status == StatusCode::UNPROCESSABLE_ENTITY,
                    "{}",
                    answer.json
                );
                failed.push(i);
            }
        }
        failed
    }

    /// `tollgate replay`, then GitHub's redelivery of what failed, then
    /// every delivery again (and, with `content_replays`, the same content
    /// under new ids).
    async fn recover(&self, failed: &[usize], content_replays: bool) {
        self.store.disarm();
        self.clock
            .set(self.clock.now() + chrono::Duration::minutes(1));
        let pipeline = github_pipeline(&self.app.deps())
            .expect("pipeline")
            .with_clock(self.clock.clone());
        let summary = replay_pending(&pipeline, &*self.store, &*self.clock, |_| {})
            .await
            .expect("replay runs");
        assert_eq!(summary.failed, 0, "{summary:?}");
        let bodies = github_bodies(self.account);
        for &i in failed {
            let req = github_request(
                &self.secret,
                "marketplace_purchase",
                &self.id(i),
                &bodies[i],
            );
            let answer = send(&self.function, req).await;
            assert_eq!(answer.status, StatusCode::OK, "redelivery: {}", answer.json);
        }
        for (i, body) in bodies.iter().enumerate() {
            let again = github_request(&self.secret, "marketplace_purchase", &self.id(i), body);
            let answer = send(&self.function, again).await;
            assert_eq!(answer.json["status"], "duplicate", "{}", answer.json);
            if !content_replays {
                continue;
            }
            let fresh_id = format!("{}-again", self.id(i));
            let replay = github_request(&self.secret, "marketplace_purchase", &fresh_id, body);
            let answer = send(&self.function, replay).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
            assert_ne!(
                answer.json["status"], "applied",
                "the same content under a new id applied again: {}",
                answer.json
            );
        }
    }

    /// Exactly once: each delivery logged once, nothing pending, the state
    /// of a run without faults.
    async fn assert_exactly_once(&self, what: &str) {
        let inner = self.store.inner();
        let key = SubscriptionKey::new(Marketplace::Github, self.account.to_string());
        let pending = inner
            .pending_deliveries(Marketplace::Github, self.clock.now())
            .await
            .unwrap();
        assert!(pending.is_empty(), "{what}: left pending {pending:?}");
        let log = inner.log(&key).await.unwrap();
        for i in 0..3 {
            let n = log.iter().filter(|e| e.event_id == self.id(i)).count();
            assert_eq!(n, 1, "{what}: delivery {i} logged {n} times: {log:#?}");
        }
        assert_eq!(log.len(), 3, "{what}: {log:#?}");
        let state = inner.get(&key).await.unwrap().expect("stored");
        let applied = log
            .iter()
            .filter(|e| e.disposition == Disposition::Applied)
            .count();
        assert_eq!(state.version, applied as u64, "{what}: {log:#?}");
        assert_eq!(
            (state.status, state.plan.id.as_str(), state.seats.limit),
            (Status::Active, "435", Some(3)),
            "{what}"
        );
    }
}

async fn github_sweep(backend: Backend, faults: &[Fault], content_replays: bool) {
    let shared = match backend {
        Backend::Moto => Some(backend.store(&None).await),
        Backend::Sqlite => None,
    };
    // A clean run says how many calls there are to fail.
    let clean = GithubRun::new(backend, &shared, 1).await;
    assert!(clean.deliver().await.is_empty());
    let calls = clean.store.calls();
    clean.recover(&[], true).await;
    clean.assert_exactly_once("clean run").await;
    assert!(calls.len() >= 12, "{calls:?}");
    let mut account = 100;
    for &fault in faults {
        for (at, call) in calls.iter().enumerate() {
            account += 1;
            let run = GithubRun::new(backend, &shared, account).await;
            run.store.arm(at, fault);
            let failed = run.deliver().await;
            assert!(run.store.fired(), "{fault:?} at call {at} never fired");
            run.recover(&failed, content_replays).await;
            run.assert_exactly_once(&format!("{fault:?} at call {at} ({call})"))
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_sqlite_every_fault_at_every_call_is_recovered_exactly_once() {
    github_sweep(Backend::Sqlite, &Fault::ALL, false).await;
}

/// A delivery recorded but not answered (record failed after it took
/// effect), or whose content claim failed, is finished by replay or a
/// redelivery, which claim its content too: the same signed body under a
/// new delivery id afterwards applies nothing (invariant 2; found with
/// `Fail at call 1 (put_token)` when only the first copy claimed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_content_replayed_under_a_new_id_after_any_fault_applies_nothing() {
    github_sweep(Backend::Sqlite, &Fault::ALL, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_dynamodb_failures_at_every_call_are_recovered_exactly_once() {
    github_sweep(Backend::Moto, &[Fault::Fail, Fault::FailAfter], false).await;
}

// ------------------------------------------------------------------ Q2 --

/// One product, two users per institution, access ends with the cancel.
const Q2_CONFIG: &str = r#"
[products.bh]
[products.bh.tiers.standard]
features = ["BudgetHelper"]
[products.bh.tiers.premium]
features = ["BudgetHelper", "BudgetHelperReports"]
[products.bh.plans.q2]
STANDARD = "standard"
PREMIUM = "premium"
[products.bh.q2]
product_identifier = "bh-id"
extensions = ["BudgetHelper", "BudgetHelperReports"]
max_users_per_institution = 2
cancel_access = "immediate"
"#;

/// User 1 orders (A), changes, cancels, orders again (B); user 2 orders (C).
fn q2_events(fi: &str) -> Vec<Vec<u8>> {
    [
        q2_body("order", "A", fi, "1", "bh-id", Some("PREMIUM")),
        q2_body("change", "A", fi, "1", "bh-id", Some("STANDARD")),
        q2_body("order", "C", fi, "2", "bh-id", Some("STANDARD")),
        q2_body("cancel", "A", fi, "1", "bh-id", None),
        q2_body("order", "B", fi, "1", "bh-id", Some("PREMIUM")),
    ]
    .iter()
    .map(|v| serde_json::to_vec(v).unwrap())
    .collect()
}

async fn q2_run(
    backend: Backend,
    shared: &Option<Arc<dyn Store>>,
    fi: &str,
    arm: Option<(usize, Fault)>,
) -> Vec<&'static str> {
    let store = FaultyStore::new(backend.store(shared).await);
    let clock = Arc::new(FixedClock::new(day(5)));
    let secret = "q2-secret";
    let (record, process) = backend.bounds();
    let function = TestApp::new()
        .config(Q2_CONFIG)
        .secret(tollgate::marketplace::q2::SECRET_NAME, secret)
        .store(store.clone())
        .clock(Arc::clone(&clock))
        .purchase_webhook()
        .expect("function")
        .with_timeouts(record, process);
    if let Some((at, fault)) = arm {
        store.arm(at, fault);
    }
    let what = format!("{arm:?}");
    for (i, body) in q2_events(fi).iter().enumerate() {
        // The relay retries what Tollgate failed on, until it is answered.
        for attempt in 0.. {
            clock.set(clock.now() + chrono::Duration::minutes(1));
            let req = q2_request(secret, clock.now().timestamp(), body);
            let answer = tokio::time::timeout(Duration::from_secs(5), send(&function, req))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{what}: event {i} hung past the pipeline's bounds: {:?}",
                        store.calls()
                    )
                });
            if answer.status == StatusCode::OK && answer.json["errorCode"] != "UNKNOWN_ERROR" {
                assert_eq!(
                    answer.json["success"], true,
                    "{what}: event {i} attempt {attempt}: {}",
                    answer.json
                );
                break;
            }
            assert!(
                attempt < 3,
                "{what}: event {i} never answered: {}",
                answer.json
            );
            store.disarm();
        }
    }
    if let Some((at, fault)) = arm {
        assert!(store.fired(), "{fault:?} at call {at} never fired");
    }
    // Exactly once, and the places are the live subscriptions' users.
    let inner = store.inner();
    let state = |sub: &str| {
        let key = SubscriptionKey::new(Marketplace::Q2, sub);
        let inner = Arc::clone(&inner);
        async move { inner.get(&key).await.unwrap().expect("stored") }
    };
    let (a, b, c) = (state("A").await, state("B").await, state("C").await);
    assert_eq!(
        [
            (a.status, a.plan.id.as_str()),
            (b.status, b.plan.id.as_str()),
            (c.status, c.plan.id.as_str())
        ],
        [
            (Status::Cancelled, "STANDARD"),
            (Status::Active, "PREMIUM"),
            (Status::Active, "STANDARD")
        ],
        "{what}"
    );
    for (sub, events) in [("A", 3), ("B", 1), ("C", 1)] {
        let log = inner
            .log(&SubscriptionKey::new(Marketplace::Q2, sub))
            .await
            .unwrap();
        assert_eq!(log.len(), events, "{what}: {sub}: {log:#?}");
    }
    let places: BTreeMap<String, String> = inner
        .enrollments(&GroupKey::new(Marketplace::Q2, "bh", fi))
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.member, p.subscription))
        .collect();
    let expected: BTreeMap<String, String> = [("1", "B"), ("2", "C")]
        .into_iter()
        .map(|(m, s)| (m.to_owned(), s.to_owned()))
        .collect();
    assert_eq!(places, expected, "{what}");
    store.calls()
}

async fn q2_sweep(backend: Backend, faults: &[Fault]) {
    let shared = match backend {
        Backend::Moto => Some(backend.store(&None).await),
        Backend::Sqlite => None,
    };
    let calls = q2_run(backend, &shared, "FI clean", None).await;
    assert!(calls.len() >= 15, "{calls:?}");
    for &fault in faults {
        for at in 0..calls.len() {
            let fi = format!("FI {fault:?} {at}");
            q2_run(backend, &shared, &fi, Some((at, fault))).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q2_sqlite_every_failure_at_every_call_is_answered_and_retried_exactly_once() {
    q2_sweep(
        Backend::Sqlite,
        &[Fault::Fail, Fault::Backend, Fault::FailAfter],
    )
    .await;
}

/// Follow-ups run inside the pipeline's time bound: a store that hangs in
/// Q2's follow-up (`unenroll` after a cancel) ends with the pipeline's
/// deadline, not the store SDK's or the Lambda's, and the relay's retry
/// finishes it exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q2_sqlite_every_hang_at_every_call_is_bounded_and_retried_exactly_once() {
    q2_sweep(Backend::Sqlite, &[Fault::Hang, Fault::HangAfter]).await;
}
