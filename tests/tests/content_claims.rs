//! One content, one apply, whatever the delivery ids (ARCHITECTURE.md,
//! step 3 of a delivery's way): a GitHub body delivered under its own id, again under that id (a
//! copy found pending, or `tollgate replay`) and under new ids (a replay of
//! its content) is applied by one id's commit and only logged as a replay
//! for the others — whichever copy reaches the content claim first, and
//! also when the first claim failed or was held up.
//!
//! The content claim is held up or failed on demand by a wrapper around the
//! pipeline's `Tokens` role, so the interleavings are forced, not hoped for.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use http::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;
use tollgate::clock::{Clock, FixedClock};
use tollgate::ingest::Pipeline;
use tollgate::ingest::replay::replay_pending;
use tollgate::marketplace::github::{GithubAdapter, WebhookSecrets};
use tollgate::model::{Disposition, LogEntry, Marketplace, SubscriptionKey};
use tollgate::store::{Store, StoreError, Token, Tokens};
use tollgate::testing::TestApp;
use tollgate_tests::deliver::{GITHUB_CONFIG, GithubPlan, github_body, github_request};

const SECRET: &str = "content-claims-secret";
const ACCOUNT: u64 = 4242;

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, d, 0, 0, 0).unwrap()
}

mod harness {
    use std::sync::Arc;
    use tollgate::store::Store;
    use tollgate::store::sqlite::SqliteStore;

    pub async fn sqlite() -> Arc<dyn Store> {
        Arc::new(SqliteStore::open_in_memory().expect("in-memory store"))
    }

    pub async fn dynamodb() -> Arc<dyn Store> {
        Arc::new(tollgate_tests::moto::fresh_store().await)
    }
}

tollgate_tests::on_both_stores!(harness;
    a_copy_found_pending_claims_the_content_before_a_new_id_can,
    a_delivery_finished_by_replay_after_its_claim_failed_holds_its_content,
    a_delivery_finished_by_a_redelivery_after_its_claim_failed_holds_its_content,
    a_pending_delivery_whose_content_a_new_id_claimed_is_logged_as_a_replay,
    many_copies_and_replays_at_once_apply_once,
);

/// What the next content claim put does.
enum Hold {
    /// Says it has been reached, then waits to be released.
    Block {
        reached: oneshot::Sender<()>,
        release: oneshot::Receiver<()>,
    },
    /// Fails without taking effect.
    Fail,
}

/// The pipeline's content claims on the real store, the next claim put
/// held up or failed when armed.
struct Claims {
    inner: Arc<dyn Store>,
    hold: Mutex<Option<Hold>>,
}

impl Claims {
    fn arm(&self, hold: Hold) {
        *self.hold.lock().expect("not poisoned") = Some(hold);
    }
}

#[async_trait]
impl Tokens for Claims {
    async fn put_token(&self, token: &Token, now: DateTime<Utc>) -> Result<(), StoreError> {
        let hold = self.hold.lock().expect("not poisoned").take();
        match hold {
            None => {}
            Some(Hold::Fail) => return Err(StoreError::Transient("injected".into())),
            Some(Hold::Block { reached, release }) => {
                reached.send(()).expect("the test waits for the claim");
                release.await.expect("the test releases the claim");
            }
        }
        self.inner.put_token(token, now).await
    }

    async fn peek_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.inner.peek_token(kind, id, now).await
    }

    async fn take_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.inner.take_token(kind, id, now).await
    }
}

struct World {
    store: Arc<dyn Store>,
    claims: Arc<Claims>,
    clock: Arc<FixedClock>,
    pipeline: Arc<Pipeline<GithubAdapter>>,
    /// The purchase every test delivers.
    body: Vec<u8>,
}

impl World {
    fn new(store: Arc<dyn Store>) -> Self {
        let clock = Arc::new(FixedClock::new(day(20)));
        let deps = TestApp::new()
            .config(GITHUB_CONFIG)
            .secret(tollgate::marketplace::github::SECRET_NAME, SECRET)
            .store(Arc::clone(&store))
            .clock(Arc::clone(&clock))
            .deps();
        let secrets = WebhookSecrets::from_secrets(&deps.secrets)
            .expect("secrets")
            .expect("a webhook secret");
        let product = deps
            .catalog
            .product_for(Marketplace::Github, None)
            .expect("a GitHub product");
        let claims = Arc::new(Claims {
            inner: Arc::clone(&store),
            hold: Mutex::new(None),
        });
        let pipeline = Pipeline::new(
            GithubAdapter::new(Some(secrets), product),
            store.clone(),
            store.clone(),
            claims.clone(),
        )
        .with_clock(clock.clone());
        let body = serde_json::to_vec(&github_body(
            "purchased",
            ACCOUNT,
            GithubPlan::TEAM,
            5,
            day(1),
        ))
        .expect("body");
        Self {
            store,
            claims,
            clock,
            pipeline: Arc::new(pipeline),
            body,
        }
    }

    /// POSTs the purchase under delivery `id`: the status and `status` field.
    async fn post(&self, id: &str) -> (StatusCode, String) {
        post(&self.pipeline, id, &self.body).await
    }

    fn key(&self) -> SubscriptionKey {
        SubscriptionKey::new(Marketplace::Github, ACCOUNT.to_string())
    }

    async fn log(&self) -> Vec<LogEntry> {
        self.store.log(&self.key()).await.expect("log")
    }

    async fn replays(&self) -> Vec<String> {
        let key = SubscriptionKey::new(Marketplace::Github, "_replays");
        let log = self.store.log(&key).await.expect("replays");
        log.into_iter().map(|e| e.event_id).collect()
    }

    /// The purchase applied once, under `id`; nothing left pending.
    async fn assert_applied_once_under(&self, id: &str) {
        let log = self.log().await;
        assert_eq!(log.len(), 1, "{log:#?}");
        assert_eq!(
            (log[0].event_id.as_str(), log[0].disposition),
            (id, Disposition::Applied),
            "{log:#?}"
        );
        let state = self.store.get(&self.key()).await.expect("get");
        assert_eq!(state.map(|s| s.version), Some(1));
        let pending = self
            .store
            .pending_deliveries(Marketplace::Github, self.clock_now())
            .await
            .expect("pending");
        assert!(pending.is_empty(), "left pending: {pending:?}");
    }

    fn clock_now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn replay(&self) {
        let summary = replay_pending(&*self.pipeline, &*self.store, &*self.clock, |_| {})
            .await
            .expect("replay runs");
        assert_eq!(summary.failed, 0, "{summary:?}");
    }
}

async fn post(pipeline: &Pipeline<GithubAdapter>, id: &str, body: &[u8]) -> (StatusCode, String) {
    let req = github_request(SECRET, "marketplace_purchase", id, body);
    match pipeline.handle(req.headers(), body).await {
        Ok(res) => {
            let json: Value = serde_json::from_slice(res.body().as_ref()).unwrap_or(Value::Null);
            let status = json["status"].as_str().unwrap_or_default().to_owned();
            (res.status(), status)
        }
        Err(e) => (e.status, e.code.to_owned()),
    }
}

/// Two copies of delivery `d` and the same body under `r`: the first copy
/// of `d` is held up in its content claim while the second copy (found
/// pending) and `r` go through. The second copy must claim the content,
/// so `r` is a replay; the first copy then finds the claim its id's own and
/// the delivery done.
async fn a_copy_found_pending_claims_the_content_before_a_new_id_can(store: Arc<dyn Store>) {
    let world = Arc::new(World::new(store));
    let (reached_tx, reached) = oneshot::channel();
    let (release, release_rx) = oneshot::channel();
    world.claims.arm(Hold::Block {
        reached: reached_tx,
        release: release_rx,
    });
    let first = tokio::spawn({
        let world = Arc::clone(&world);
        async move { world.post("d").await }
    });
    // A bound, not a synchronization: code that never claims the content
    // fails here instead of hanging.
    tokio::time::timeout(std::time::Duration::from_secs(30), reached)
        .await
        .expect("the first copy never claimed its content")
        .expect("the first copy reaches its claim");

    let second = world.post("d").await;
    assert_eq!(second, (StatusCode::OK, "applied".to_owned()));
    let replay = world.post("r").await;
    assert_eq!(replay.0, StatusCode::OK);
    assert_ne!(
        replay.1, "applied",
        "the same content under `r` applied again"
    );

    release.send(()).expect("the first copy waits");
    let first = first.await.expect("no panic");
    assert_eq!(first, (StatusCode::OK, "duplicate".to_owned()));
    world.assert_applied_once_under("d").await;
    assert_eq!(world.replays().await, ["r"]);
}

/// `d`'s claim fails (503, left pending); `tollgate replay` finishes it.
/// The same body under `r` afterwards is a replay.
async fn a_delivery_finished_by_replay_after_its_claim_failed_holds_its_content(
    store: Arc<dyn Store>,
) {
    let world = World::new(store);
    world.claims.arm(Hold::Fail);
    assert_eq!(world.post("d").await.0, StatusCode::SERVICE_UNAVAILABLE);
    world.replay().await;
    world.assert_applied_once_under("d").await;

    let replay = world.post("r").await;
    assert_eq!(replay.0, StatusCode::OK);
    assert_ne!(
        replay.1, "applied",
        "the same content under `r` applied again"
    );
    world.assert_applied_once_under("d").await;
    assert_eq!(world.replays().await, ["r"]);
}

/// As above, finished by GitHub's redelivery of `d` instead of a replay.
async fn a_delivery_finished_by_a_redelivery_after_its_claim_failed_holds_its_content(
    store: Arc<dyn Store>,
) {
    let world = World::new(store);
    world.claims.arm(Hold::Fail);
    assert_eq!(world.post("d").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        world.post("d").await,
        (StatusCode::OK, "applied".to_owned())
    );

    let replay = world.post("r").await;
    assert_eq!(replay.0, StatusCode::OK);
    assert_ne!(
        replay.1, "applied",
        "the same content under `r` applied again"
    );
    world.assert_applied_once_under("d").await;
    assert_eq!(world.replays().await, ["r"]);
}

/// `d`'s claim fails and, before anything finishes it, the same body
/// arrives under `r` and claims the content: `r` applies it, and replaying
/// `d` logs it as a replay and marks it done rather than applying it again.
async fn a_pending_delivery_whose_content_a_new_id_claimed_is_logged_as_a_replay(
    store: Arc<dyn Store>,
) {
    let world = World::new(store);
    world.claims.arm(Hold::Fail);
    assert_eq!(world.post("d").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        world.post("r").await,
        (StatusCode::OK, "applied".to_owned())
    );
    world.replay().await;
    world.assert_applied_once_under("r").await;
    assert_eq!(world.replays().await, ["d"]);
    assert_eq!(
        world.post("d").await,
        (StatusCode::OK, "duplicate".to_owned())
    );
}

/// Copies of `d` and the body under new ids, all at once, over several
/// rounds (a fresh account each): applied once per round.
async fn many_copies_and_replays_at_once_apply_once(store: Arc<dyn Store>) {
    let world = World::new(store);
    for round in 0..8u64 {
        let account = ACCOUNT + 1 + round;
        let body = serde_json::to_vec(&github_body(
            "purchased",
            account,
            GithubPlan::TEAM,
            5,
            day(1),
        ))
        .expect("body");
        let ids: Vec<String> = ["d", "r1", "d", "r2", "d", "r3"]
            .iter()
            .map(|id| format!("{id}-{round}"))
            .collect();
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let pipeline = Arc::clone(&world.pipeline);
                let (id, body) = (id.clone(), body.clone());
                tokio::spawn(async move { post(&pipeline, &id, &body).await })
            })
            .collect();
        for (task, id) in tasks.into_iter().zip(&ids) {
            let (status, what) = task.await.expect("no panic");
            assert_eq!(status, StatusCode::OK, "{id}: {what}");
        }
        let key = SubscriptionKey::new(Marketplace::Github, account.to_string());
        let log = world.store.log(&key).await.expect("log");
        assert_eq!(log.len(), 1, "round {round}: {log:#?}");
        let state = world.store.get(&key).await.expect("get");
        assert_eq!(state.map(|s| s.version), Some(1), "round {round}");
    }
}
