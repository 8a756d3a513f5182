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

// -------------------------------------------------------------- Google --

/// Google's Procurement API fails at one call a push makes, for each
/// [`GcpFault`] the stand-in has: once (the client retries inside the
/// push) and, for 503, at every attempt within the push's deadline (the
/// push is answered with an error and Pub/Sub redelivers it). Scenario:
/// order → sign-up → plan change → cancel. The calls are counted by a proxy
/// in front of the stand-in, which arms `fail_next` just before the chosen
/// one. After Pub/Sub's redeliveries the state is the one of the run
/// without faults and every notification is logged once.
mod gcp {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::body::{Body as AxumBody, to_bytes};
    use axum::extract::{Request as AxumRequest, State};
    use axum::response::Response as AxumResponse;
    use tollgate::model::{Marketplace, Status, SubscriptionKey};
    use tollgate::store::Store;
    use tollgate::store::sqlite::SqliteStore;
    use tollgate::testing::TestApp;
    use tollgate_sim::gcp::{EntitlementState, Fault as GcpFault, GcpSim, PushConfig, Running};
    use tollgate_tests::serve::{Served, serve_function};

    const AUDIENCE: &str = "https://tollgate.example/pubsub";

    /// Forwards to the stand-in; counts Procurement (`/v1/`) calls and
    /// arms the stand-in's fault just before call number `at`.
    #[derive(Clone)]
    struct Proxy {
        sim: GcpSim,
        upstream: String,
        http: reqwest::Client,
        calls: Arc<AtomicUsize>,
        armed: Arc<Mutex<Option<(usize, usize, GcpFault)>>>,
        fired: Arc<AtomicBool>,
    }

    async fn forward(State(p): State<Proxy>, req: AxumRequest) -> AxumResponse {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        if path.starts_with("/v1/") {
            let n = p.calls.fetch_add(1, Ordering::SeqCst);
            let armed = *p.armed.lock().unwrap();
            if let Some((at, count, fault)) = armed
                && at == n
            {
                p.sim.fail_next(count, fault);
                p.fired.store(true, Ordering::SeqCst);
            }
        }
        let bytes = to_bytes(body, 1 << 20).await.unwrap_or_default();
        let mut out = p
            .http
            .request(parts.method, format!("{}{path}", p.upstream))
            .body(bytes.to_vec());
        for name in ["authorization", "content-type"] {
            if let Some(v) = parts.headers.get(name) {
                out = out.header(name, v);
            }
        }
        let res = out.send().await.expect("the stand-in answers");
        let status = res.status();
        let content_type = res.headers().get("content-type").cloned();
        let body = res.bytes().await.unwrap_or_default();
        let mut reply = AxumResponse::new(AxumBody::from(body));
        *reply.status_mut() = status;
        if let Some(ct) = content_type {
            reply.headers_mut().insert("content-type", ct);
        }
        reply
    }

    struct World {
        sim: GcpSim,
        _google: Running,
        proxy: Proxy,
        _proxy_task: tokio::task::JoinHandle<()>,
        store: Arc<dyn Store>,
        _pubsub: Served,
        oauth: Served,
        http: reqwest::Client,
        /// Pushes answered with an error (left for Pub/Sub to redeliver).
        unacked: AtomicUsize,
    }

    impl World {
        async fn start(store: Arc<dyn Store>) -> Self {
            let sim = GcpSim::generate().expect("stand-in keys");
            let google = sim.start().await.expect("stand-in starts");
            let proxy = Proxy {
                sim: sim.clone(),
                upstream: google.procurement_url.trim_end_matches('/').to_owned(),
                http: reqwest::Client::new(),
                calls: Arc::default(),
                armed: Arc::default(),
                fired: Arc::default(),
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let proxy_url = format!("http://{}", listener.local_addr().unwrap());
            let router = axum::Router::new()
                .fallback(forward)
                .with_state(proxy.clone());
            let proxy_task = tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
            let app = TestApp::new()
                .store(Arc::clone(&store))
                .system_clock()
                .settings(sim.tollgate_settings(&google, AUDIENCE))
                .setting("TOLLGATE_PROCUREMENT_URL", &proxy_url)
                .secret(
                    "gcp_service_account_key",
                    &sim.service_account_key().to_json(),
                );
            let pubsub = serve_function(app.pubsub_push().expect("pubsub-push")).await;
            let oauth = serve_function(app.oauth_callback().expect("oauth-callback")).await;
            sim.set_push(PushConfig::new(pubsub.url("/")).with_audience(AUDIENCE));
            sim.hold_deliveries(true);
            World {
                sim,
                _google: google,
                proxy,
                _proxy_task: proxy_task,
                store,
                _pubsub: pubsub,
                oauth,
                http: reqwest::Client::new(),
                unacked: AtomicUsize::new(0),
            }
        }

        fn calls(&self) -> usize {
            self.proxy.calls.load(Ordering::SeqCst)
        }

        /// Pub/Sub: pushes what is queued, keeps what was not acknowledged
        /// and redelivers it, until nothing is left. The Procurement call
        /// numbers the pushes made.
        async fn pubsub(&self, what: &str, push_calls: &mut Vec<usize>) {
            for round in 0.. {
                if self.sim.queued().is_empty() {
                    return;
                }
                assert!(
                    round < 6,
                    "{what}: never acknowledged: {:?}",
                    self.sim.queued()
                );
                let start = self.calls();
                for p in self.sim.deliver_queued().await {
                    if !p.acked() {
                        self.unacked.fetch_add(1, Ordering::SeqCst);
                    }
                    assert!(
                        p.acked() || matches!(p.status, Some(500..)),
                        "{what}: {} answered {:?} {}",
                        p.event_type(),
                        p.status,
                        p.reply
                    );
                }
                push_calls.extend(start..self.calls());
            }
        }

        /// order → sign-up → plan change → cancel for `account`, faults
        /// armed by the caller. The Procurement calls pushes made (relative
        /// to the run's first call), and the final stored state and log.
        async fn run(&self, account: &str) -> (Vec<usize>, Outcome) {
            let base = self.calls();
            let mut push_calls = Vec::new();
            let order = self.sim.order(account, "team-monthly").await.unwrap();
            let ent = order.entitlement_id;
            self.pubsub(account, &mut push_calls).await;
            let res = self
                .http
                .post(self.oauth.url("/gcp/signup"))
                .form(&[("x-gcp-marketplace-token", self.sim.signup_token(account))])
                .send()
                .await
                .expect("oauth-callback answers");
            assert_eq!(res.status(), 200, "{account}: sign-up");
            self.pubsub(account, &mut push_calls).await;
            self.sim
                .request_plan_change(&ent, "business-yearly")
                .await
                .unwrap();
            self.pubsub(account, &mut push_calls).await;
            self.sim.cancel(&ent).await.unwrap();
            self.pubsub(account, &mut push_calls).await;

            let key = SubscriptionKey::new(Marketplace::Gcp, &ent);
            let stored = self.store.get(&key).await.unwrap().expect("stored");
            let log = self.store.log(&key).await.unwrap();
            let mut ids: Vec<String> = log.iter().map(|e| e.event_id.clone()).collect();
            ids.sort();
            let logged = ids.len();
            ids.dedup();
            assert_eq!(logged, ids.len(), "{account}: logged twice: {log:#?}");
            let mut events: Vec<String> = log.iter().map(|e| e.event.clone()).collect();
            events.sort();
            let google = self.sim.entitlement(&ent).expect("at Google");
            let pending = self
                .store
                .pending_deliveries(Marketplace::Gcp, chrono::Utc::now())
                .await
                .unwrap();
            assert!(pending.is_empty(), "{account}: left pending {pending:?}");
            let push_calls = push_calls.into_iter().map(|c| c - base).collect();
            (
                push_calls,
                Outcome {
                    google: (google.state, google.plan),
                    stored: (stored.status, stored.plan.id),
                    events,
                },
            )
        }
    }

    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        google: (EntitlementState, String),
        stored: (Status, String),
        events: Vec<String>,
    }

    async fn sweep(store: Arc<dyn Store>) {
        let w = World::start(store).await;
        let (push_calls, clean) = w.run("gcp-clean").await;
        assert_eq!(
            (clean.google.0, clean.stored.0, clean.stored.1.as_str()),
            (
                EntitlementState::PendingCancellation,
                Status::PendingCancellation,
                "business-yearly"
            ),
            "{clean:?}"
        );
        assert!(push_calls.len() >= 4, "{push_calls:?}");
        let faults = [
            (1, GcpFault::Unavailable),
            (1, GcpFault::RateLimited),
            (1, GcpFault::Internal),
            // Every attempt the client makes within the push's deadline:
            // the push fails and Pub/Sub redelivers it.
            (5, GcpFault::Unavailable),
        ];
        for (count, fault) in faults {
            let unacked = w.unacked.load(Ordering::SeqCst);
            for &at in &push_calls {
                let what = format!("gcp-{fault:?}x{count}-at-{at}");
                *w.proxy.armed.lock().unwrap() = Some((w.calls() + at, count, fault));
                w.proxy.fired.store(false, Ordering::SeqCst);
                let (_, outcome) = w.run(&what).await;
                assert!(w.proxy.fired.load(Ordering::SeqCst), "{what} never fired");
                assert_eq!(outcome, clean, "{what}");
            }
            // Failing every attempt of a call fails its push: redelivery
            // is exercised, not only the client's own retries.
            if count > 1 {
                assert!(
                    w.unacked.load(Ordering::SeqCst) > unacked,
                    "{fault:?}x{count}"
                );
            }
        }
        *w.proxy.armed.lock().unwrap() = None;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gcp_sqlite_a_procurement_failure_at_every_push_call_is_recovered_exactly_once() {
        sweep(Arc::new(SqliteStore::open_in_memory().expect("sqlite"))).await;
    }
}
