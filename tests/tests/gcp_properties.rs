//! Property test for Google Cloud Marketplace: random entitlement lifecycle
//! steps driven through the Google stand-in, its Pub/Sub pushes held and
//! then delivered in random order, with duplicates (the same message again)
//! and republications (the same data under a new `messageId`), through the
//! real `pubsub-push` and `oauth-callback` functions over HTTP.
//!
//! Afterwards each entitlement's stored status is what an independent
//! mapping of Google's final state says (README "What each entitlement
//! state means"), stored versions never went backwards, and no
//! notification is logged twice.
//!
//! Case counts: `TOLLGATE_PROPTEST_CASES` (or `PROPTEST_CASES`) overrides
//! the defaults (8 on SQLite, 4 on moto).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tollgate::model::{Marketplace, Status, SubscriptionKey};
use tollgate::store::Store;
use tollgate::store::sqlite::SqliteStore;
use tollgate::testing::TestApp;
use tollgate_sim::gcp::{Entitlement, EntitlementState, GcpSim, PushConfig, PushRequest, Running};
use tollgate_tests::deliver::proptest_cases;
use tollgate_tests::serve::{Served, serve_function};

const AUDIENCE: &str = "https://tollgate.example/pubsub";
const PLANS: [&str; 2] = ["team-monthly", "business-yearly"];

/// One stand-in and one pair of functions per run; one account per case.
struct World {
    sim: GcpSim,
    _google: Running,
    store: Arc<dyn Store>,
    _pubsub: Served,
    oauth: Served,
    http: reqwest::Client,
}

impl World {
    async fn start(store: Arc<dyn Store>) -> Self {
        let sim = GcpSim::generate().expect("stand-in keys");
        let google = sim.start().await.expect("stand-in starts");
        let app = TestApp::new()
            .store(Arc::clone(&store))
            .system_clock()
            .settings(sim.tollgate_settings(&google, AUDIENCE))
            .secret(
                "gcp_service_account_key",
                &sim.service_account_key().to_json(),
            );
        let pubsub = serve_function(app.pubsub_push().expect("pubsub-push builds")).await;
        let oauth = serve_function(app.oauth_callback().expect("oauth-callback builds")).await;
        sim.set_push(PushConfig::new(pubsub.url("/")).with_audience(AUDIENCE));
        sim.hold_deliveries(true);
        World {
            sim,
            _google: google,
            store,
            _pubsub: pubsub,
            oauth,
            http: reqwest::Client::new(),
        }
    }

    async fn sign_up(&self, account: &str) -> Result<(), TestCaseError> {
        let res = self
            .http
            .post(self.oauth.url("/gcp/signup"))
            .form(&[("x-gcp-marketplace-token", self.sim.signup_token(account))])
            .send()
            .await
            .expect("oauth-callback answers");
        let status = res.status().as_u16();
        let page = res.text().await.unwrap_or_default();
        prop_assert_eq!(status, 200, "sign-up: {}", page);
        Ok(())
    }
}

/// A customer or Google step; each names an entitlement of the case by
/// index (modulo how many were ordered). Steps Google would refuse in the
/// entitlement's current state are skipped, as Google would.
#[derive(Debug, Clone)]
enum Step {
    Order(usize),
    SignUp,
    RequestPlanChange(usize),
    CancelPlanChange(usize),
    Cancel(usize),
    RevertCancellation(usize),
    EndTerm(usize),
    CancelNow(usize),
    Delete(usize),
    DeleteAccount,
    /// Pub/Sub delivers what is held so far, in the order `seed` picks.
    Deliver(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let e = 0usize..2;
    prop_oneof![
        3 => (0usize..2).prop_map(Step::Order),
        3 => Just(Step::SignUp),
        2 => e.clone().prop_map(Step::RequestPlanChange),
        1 => e.clone().prop_map(Step::CancelPlanChange),
        2 => e.clone().prop_map(Step::Cancel),
        1 => e.clone().prop_map(Step::RevertCancellation),
        2 => e.clone().prop_map(Step::EndTerm),
        1 => e.clone().prop_map(Step::CancelNow),
        1 => e.prop_map(Step::Delete),
        1 => Just(Step::DeleteAccount),
        2 => any::<u64>().prop_map(Step::Deliver),
    ]
}

#[derive(Debug, Clone)]
struct Scenario {
    steps: Vec<Step>,
    /// The order of the final deliveries.
    seed: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        // The first order is always there: a case without one tests nothing.
        (0usize..2).prop_map(Step::Order),
        proptest::collection::vec(step(), 0..=5),
        any::<u64>(),
    )
        .prop_map(|(first, mut steps, seed)| {
            steps.insert(0, first);
            Scenario { steps, seed }
        })
}

/// xorshift64*: the delivery order from a generated seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        usize::try_from(r % n.max(1) as u64).unwrap_or(0)
    }
}

/// What Tollgate's status must be for Google's final entitlement (`None`:
/// deleted), written from the README table, not from the adapter.
fn expected_status(google: Option<&Entitlement>) -> Status {
    match google.map(|e| e.state) {
        None | Some(EntitlementState::Cancelled) => Status::Cancelled,
        Some(EntitlementState::ActivationRequested) => Status::Pending,
        Some(
            EntitlementState::Active
            | EntitlementState::PendingPlanChangeApproval
            | EntitlementState::PendingPlanChange,
        ) => Status::Active,
        Some(EntitlementState::PendingCancellation) => Status::PendingCancellation,
        Some(EntitlementState::Suspended) => Status::Suspended,
    }
}

static CASE: AtomicU64 = AtomicU64::new(1);

struct Case<'w> {
    w: &'w World,
    account: String,
    entitlements: Vec<String>,
    signed_up: bool,
    account_deleted: bool,
    /// Highest stored version seen per entitlement.
    versions: BTreeMap<String, u64>,
    republications: u64,
}

impl Case<'_> {
    fn nth(&self, i: usize) -> Option<String> {
        (!self.entitlements.is_empty())
            .then(|| self.entitlements[i % self.entitlements.len()].clone())
    }

    async fn apply(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let sim = &self.w.sim;
        let ent = |i: &usize| self.nth(*i);
        // A refusal (the state does not allow the step) changes nothing.
        let _ = match step {
            Step::Order(p) => {
                if !self.account_deleted && self.entitlements.len() < 2 {
                    let o = sim.order(&self.account, PLANS[*p]).await.expect("order");
                    self.entitlements.push(o.entitlement_id);
                }
                Ok(vec![])
            }
            Step::SignUp => {
                if !self.signed_up && !self.account_deleted && !self.entitlements.is_empty() {
                    self.w.sign_up(&self.account).await?;
                    self.signed_up = true;
                }
                Ok(vec![])
            }
            Step::RequestPlanChange(i) => match ent(i) {
                Some(id) => {
                    let current = sim.entitlement(&id).map(|e| e.plan);
                    let other = PLANS
                        .iter()
                        .find(|p| current.as_deref() != Some(**p))
                        .expect("two plans");
                    sim.request_plan_change(&id, other).await
                }
                None => Ok(vec![]),
            },
            Step::CancelPlanChange(i) => match ent(i) {
                Some(id) => sim.cancel_plan_change(&id).await,
                None => Ok(vec![]),
            },
            Step::Cancel(i) => match ent(i) {
                Some(id) => sim.cancel(&id).await,
                None => Ok(vec![]),
            },
            Step::RevertCancellation(i) => match ent(i) {
                Some(id) => sim.revert_cancellation(&id).await,
                None => Ok(vec![]),
            },
            Step::EndTerm(i) => match ent(i) {
                Some(id) => sim.end_term(&id).await,
                None => Ok(vec![]),
            },
            Step::CancelNow(i) => match ent(i) {
                Some(id) => sim.cancel_now(&id, "billing-disabled").await,
                None => Ok(vec![]),
            },
            Step::Delete(i) => match ent(i) {
                Some(id) => sim.delete_entitlement(&id).await,
                None => Ok(vec![]),
            },
            Step::DeleteAccount => {
                let r = if self.entitlements.is_empty() {
                    Ok(vec![])
                } else {
                    sim.delete_account(&self.account).await
                };
                if r.is_ok() && !self.entitlements.is_empty() {
                    self.account_deleted = true;
                }
                r
            }
            Step::Deliver(seed) => {
                self.deliver_held(*seed).await?;
                Ok(vec![])
            }
        };
        Ok(())
    }

    /// Delivers every held push in an order `seed` picks, some twice and
    /// some republished under a new `messageId`; each must be acknowledged.
    async fn deliver_held(&mut self, seed: u64) -> Result<(), TestCaseError> {
        let mut rng = Rng::new(seed);
        let mut batch: Vec<PushRequest> = self.w.sim.take_queued();
        let n = batch.len();
        for i in 0..n {
            match rng.below(4) {
                0 => batch.push(batch[i].clone()),
                1 => {
                    self.republications += 1;
                    let id = format!("republished-{}-{}", self.account, self.republications);
                    batch.push(republished(&batch[i], &id));
                }
                _ => {}
            }
        }
        while !batch.is_empty() {
            let request = batch.swap_remove(rng.below(batch.len()));
            let pushed = self.w.sim.deliver(&request).await;
            prop_assert!(
                pushed.acked(),
                "{} not acknowledged: {:?} {}",
                pushed.event_type(),
                pushed.status,
                pushed.reply
            );
            self.check_versions().await?;
        }
        Ok(())
    }

    async fn check_versions(&mut self) -> Result<(), TestCaseError> {
        for id in &self.entitlements {
            let key = SubscriptionKey::new(Marketplace::Gcp, id);
            if let Some(s) = self.w.store.get(&key).await.expect("store answers") {
                let seen = self.versions.entry(id.clone()).or_default();
                prop_assert!(
                    s.version >= *seen,
                    "{}: version went back from {} to {}",
                    id,
                    seen,
                    s.version
                );
                *seen = s.version;
            }
        }
        Ok(())
    }
}

/// The push under another `messageId` (and `message_id`), data unchanged.
fn republished(request: &PushRequest, message_id: &str) -> PushRequest {
    let mut envelope = request.envelope();
    envelope["message"]["messageId"] = message_id.into();
    envelope["message"]["message_id"] = message_id.into();
    let mut copy = request.clone();
    copy.body = serde_json::to_vec(&envelope).unwrap();
    copy.message_id = message_id.to_owned();
    copy
}

async fn gcp_case(w: &World, s: Scenario) -> Result<(), TestCaseError> {
    let mut case = Case {
        w,
        account: format!("prop-acct-{}", CASE.fetch_add(1, Ordering::Relaxed)),
        entitlements: Vec::new(),
        signed_up: false,
        account_deleted: false,
        versions: BTreeMap::new(),
        republications: 0,
    };
    for step in &s.steps {
        case.apply(step).await?;
    }
    // Pub/Sub delivers everything left, and what our approvals publish.
    let mut rng = Rng::new(s.seed);
    for round in 0.. {
        if w.sim.queued().is_empty() {
            break;
        }
        prop_assert!(round < 8, "the outbox never empties: {:?}", w.sim.queued());
        case.deliver_held(rng.below(usize::MAX) as u64).await?;
    }
    for id in &case.entitlements {
        let google = w.sim.entitlement(id);
        let key = SubscriptionKey::new(Marketplace::Gcp, id);
        let stored = w.store.get(&key).await.expect("store answers");
        // Deleted at Google before Tollgate ever read it alive (every GET
        // answered 404): nothing to store, which entitles no one either.
        let Some(stored) = stored else {
            prop_assert!(google.is_none(), "{} never stored: {:?}", id, google);
            continue;
        };
        prop_assert_eq!(
            stored.status,
            expected_status(google.as_ref()),
            "{} is {:?} at Google",
            id,
            google.as_ref().map(|e| e.state)
        );
        if let Some(g) = google
            .as_ref()
            .filter(|g| g.state != EntitlementState::Cancelled)
        {
            prop_assert_eq!(stored.plan.id.as_str(), g.plan.as_str(), "{}", id);
        }
        let log = w.store.log(&key).await.expect("store answers");
        let mut ids: Vec<&str> = log.iter().map(|e| e.event_id.as_str()).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        prop_assert_eq!(
            before,
            ids.len(),
            "{} logged a message twice: {:#?}",
            id,
            log
        );
    }
    Ok(())
}

fn check(default_cases: u32, store: impl AsyncFnOnce() -> Arc<dyn Store>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let world = rt.block_on(async { World::start(store().await).await });
    let mut runner = TestRunner::new(Config {
        cases: proptest_cases(default_cases),
        failure_persistence: None,
        max_shrink_iters: 32,
        ..Config::default()
    });
    let result = runner.run(&scenario(), |s| rt.block_on(gcp_case(&world, s)));
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn gcp_sqlite_converges_to_googles_state_whatever_the_order_and_duplicates() {
    check(8, async || {
        Arc::new(SqliteStore::open_in_memory().expect("in-memory store")) as Arc<dyn Store>
    });
}

#[test]
fn gcp_dynamodb_converges_to_googles_state_whatever_the_order_and_duplicates() {
    check(4, async || {
        Arc::new(tollgate_tests::moto::fresh_store().await) as Arc<dyn Store>
    });
}
