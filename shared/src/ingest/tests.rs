//! The pipeline with a scripted adapter, one per durability mode: the order
//! of steps, follow-ups after the commit, failures answered by durability,
//! and replay. GitHub's adapter is tested through the real function in
//! `tests/tests/github_webhook.rs`.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::adapter::Resolution;
use super::replay::{ReplayRunError, replay_pending};
use super::*;
use crate::clock::FixedClock;
use crate::model::{
    Awaiting, Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan, PlanTerms, Status,
    SubscriptionKey,
};
use crate::rules::Action;
use crate::store::Delivery;
use crate::store::prelude::*;
use crate::store::sqlite::SqliteStore;
use crate::web::{ApiError, json_response};

trait Mode: Send + Sync + 'static {
    const DURABILITY: Durability;
}
struct RecordFirst;
struct Redelivered;
struct Synchronous;
impl Mode for RecordFirst {
    const DURABILITY: Durability = Durability::RecordFirst;
}
impl Mode for Redelivered {
    const DURABILITY: Durability = Durability::Redelivered;
}
impl Mode for Synchronous {
    const DURABILITY: Durability = Durability::Synchronous;
}

#[derive(Debug, thiserror::Error)]
#[error("no x-fake-id header")]
struct Unauthenticated;

impl From<Unauthenticated> for ApiError {
    fn from(e: Unauthenticated) -> Self {
        ApiError::unauthorized("unauthenticated", e.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot resolve: {0}")]
struct CannotResolve(&'static str, bool);

impl ResolveFailure for CannotResolve {
    fn is_transient(&self) -> bool {
        self.1
    }
}

/// Authenticates by an `x-fake-id` header, resolves bodies that are
/// `MarketEvent` JSON, records every follow-up it is asked for.
struct Scripted<M> {
    /// The marketplace API is "down": resolving fails transiently.
    api_down: Mutex<bool>,
    follow_ups_fail: Mutex<Option<bool>>,
    followed_up: Mutex<Vec<(SubscriptionKey, Vec<Action>)>>,
    mode: PhantomData<M>,
}

impl<M> Scripted<M> {
    fn new() -> Self {
        Self {
            api_down: Mutex::new(false),
            follow_ups_fail: Mutex::new(None),
            followed_up: Mutex::new(Vec::new()),
            mode: PhantomData,
        }
    }
}

#[async_trait]
impl<M: Mode> Adapter for Scripted<M> {
    const MARKETPLACE: Marketplace = Marketplace::Gcp;
    const DURABILITY: Durability = M::DURABILITY;
    type Refusal = Unauthenticated;
    type ResolveError = CannotResolve;
    type Context = ();

    async fn authenticate(
        &self,
        headers: &HeaderMap,
        _body: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<Admission, Unauthenticated> {
        if headers.contains_key("x-fake-ping") {
            return Ok(Admission::Answer(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "pong"}),
            )));
        }
        let id = headers
            .get("x-fake-id")
            .and_then(|v| v.to_str().ok())
            .ok_or(Unauthenticated)?;
        Ok(Admission::Deliver {
            id: id.to_owned(),
            kind: "fake".to_owned(),
        })
    }

    async fn resolve(&self, delivery: &Delivery) -> Result<Resolution<()>, CannotResolve> {
        if *self.api_down.lock().unwrap() {
            return Err(CannotResolve("the marketplace API is down", true));
        }
        serde_json::from_slice(delivery.body.as_deref().unwrap_or_default())
            .map(|event| Resolution::one(event, ()))
            .map_err(|_| CannotResolve("not an event", false))
    }

    async fn follow_up(&self, _: &(), processed: &Processed) -> Result<(), FollowUpError> {
        let actions = match &processed.result {
            Ingested::Committed(outcome) => outcome.actions.clone(),
            Ingested::Duplicate => Vec::new(),
        };
        self.followed_up
            .lock()
            .unwrap()
            .push((processed.event.subscription.clone(), actions));
        match *self.follow_ups_fail.lock().unwrap() {
            Some(transient) => Err(FollowUpError {
                message: "approve refused".into(),
                transient,
            }),
            None => Ok(()),
        }
    }
}

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn key() -> SubscriptionKey {
    SubscriptionKey::new(Marketplace::Gcp, "ent-1")
}

fn event(id: &str, at: i64, kind: EventKind) -> Vec<u8> {
    serde_json::to_vec(&MarketEvent {
        id: id.into(),
        subscription: key(),
        customer: Customer {
            key: CustomerKey::new(Marketplace::Gcp, "acct-1"),
            name: None,
            kind: None,
            billing_email: None,
        },
        product: "acme-ci".into(),
        effective_at: t(at),
        kind,
    })
    .unwrap()
}

fn order_awaiting_signup() -> Vec<u8> {
    event(
        "order",
        0,
        EventKind::Purchased {
            terms: PlanTerms::new(Plan::new("team")),
            awaiting: Some(Awaiting::Signup),
        },
    )
}

struct World<M: Mode> {
    store: Arc<SqliteStore>,
    pipeline: Pipeline<Scripted<M>>,
}

impl<M: Mode> World<M> {
    fn new() -> Self {
        let store = Arc::new(SqliteStore::open_in_memory().unwrap());
        let pipeline = Pipeline::new(Scripted::new(), store.clone(), store.clone(), store.clone())
            .with_clock(Arc::new(FixedClock::new(t(1))));
        Self { store, pipeline }
    }

    fn adapter(&self) -> &Scripted<M> {
        self.pipeline.adapter()
    }

    async fn send(&self, id: Option<&str>, body: &[u8]) -> Result<serde_json::Value, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(id) = id {
            headers.insert("x-fake-id", HeaderValue::from_str(id).unwrap());
        }
        let res = self.pipeline.handle(&headers, body).await?;
        assert_eq!(res.status(), StatusCode::OK);
        Ok(serde_json::from_slice(res.body().as_ref()).unwrap())
    }

    async fn pending(&self) -> Vec<Delivery> {
        self.store
            .pending_deliveries(Marketplace::Gcp, t(2))
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn follow_ups_run_after_the_commit_with_the_rules_actions() {
    let w = World::<Redelivered>::new();
    w.send(Some("m1"), &order_awaiting_signup()).await.unwrap();
    assert_eq!(
        *w.adapter().followed_up.lock().unwrap(),
        vec![(key(), vec![])],
        "a pending order has nothing to approve yet"
    );
    let approved = w
        .send(Some("m2"), &event("ok", 1, EventKind::Approved))
        .await
        .unwrap();
    assert_eq!(approved["status"], "applied");
    assert_eq!(
        w.adapter().followed_up.lock().unwrap().last(),
        Some(&(key(), vec![Action::ApproveOrder]))
    );
    assert_eq!(
        w.store.get(&key()).await.unwrap().unwrap().status,
        Status::Active
    );
}

#[tokio::test]
async fn a_failed_follow_up_keeps_the_commit_and_asks_a_redelivering_marketplace_again() {
    let w = World::<Redelivered>::new();
    w.send(Some("m1"), &order_awaiting_signup()).await.unwrap();
    *w.adapter().follow_ups_fail.lock().unwrap() = Some(true);
    let err = w
        .send(Some("m2"), &event("ok", 1, EventKind::Approved))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status, err.code),
        (StatusCode::SERVICE_UNAVAILABLE, "follow_up_failed")
    );
    assert_eq!(
        w.store.get(&key()).await.unwrap().unwrap().status,
        Status::Active,
        "the state change stands"
    );

    // Pub/Sub redelivers: the state is not applied twice, the follow-up runs
    // again, and once it succeeds the message is acknowledged.
    *w.adapter().follow_ups_fail.lock().unwrap() = None;
    let calls = w.adapter().followed_up.lock().unwrap().len();
    let again = w
        .send(Some("m2"), &event("ok", 1, EventKind::Approved))
        .await
        .unwrap();
    assert_eq!(again["status"], "duplicate");
    assert_eq!(w.adapter().followed_up.lock().unwrap().len(), calls + 1);
    assert_eq!(w.store.log(&key()).await.unwrap().len(), 2, "applied once");
}

#[tokio::test]
async fn a_record_first_redelivery_of_a_done_delivery_runs_nothing_again() {
    let w = World::<RecordFirst>::new();
    let body = order_awaiting_signup();
    w.send(Some("m1"), &body).await.unwrap();
    let calls = w.adapter().followed_up.lock().unwrap().len();
    assert_eq!(
        w.send(Some("m1"), &body).await.unwrap()["status"],
        "duplicate"
    );
    assert_eq!(w.adapter().followed_up.lock().unwrap().len(), calls);
}

#[tokio::test]
async fn a_permanently_failed_follow_up_is_a_bad_gateway() {
    let w = World::<Synchronous>::new();
    w.send(Some("m1"), &order_awaiting_signup()).await.unwrap();
    *w.adapter().follow_ups_fail.lock().unwrap() = Some(false);
    let err = w
        .send(Some("m2"), &event("ok", 1, EventKind::Approved))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status, err.code),
        (StatusCode::BAD_GATEWAY, "follow_up_failed")
    );
}

#[tokio::test]
async fn a_refused_request_stores_nothing() {
    let w = World::<RecordFirst>::new();
    let err = w.send(None, &order_awaiting_signup()).await.unwrap_err();
    assert_eq!(err.status, StatusCode::UNAUTHORIZED);
    assert!(w.pending().await.is_empty());
    assert!(w.store.get(&key()).await.unwrap().is_none());
}

#[tokio::test]
async fn an_answered_request_is_never_recorded() {
    let w = World::<RecordFirst>::new();
    let mut headers = HeaderMap::new();
    headers.insert("x-fake-ping", HeaderValue::from_static("1"));
    headers.insert("x-fake-id", HeaderValue::from_static("p"));
    let res = w.pipeline.handle(&headers, b"{}").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(w.pending().await.is_empty());
}

#[tokio::test]
async fn a_delivery_done_before_is_a_duplicate() {
    let w = World::<RecordFirst>::new();
    let body = order_awaiting_signup();
    assert_eq!(
        w.send(Some("m1"), &body).await.unwrap()["status"],
        "applied"
    );
    let again = w.send(Some("m1"), &body).await.unwrap();
    assert_eq!(
        (&again["status"], &again["delivery"]),
        (&"duplicate".into(), &"m1".into())
    );
}

#[tokio::test]
async fn record_first_failures_stay_pending_until_replay_finishes_them() {
    let w = World::<RecordFirst>::new();
    *w.adapter().api_down.lock().unwrap() = true;
    let err = w
        .send(Some("m1"), &order_awaiting_signup())
        .await
        .unwrap_err();
    assert_eq!(
        (err.status, err.code),
        (StatusCode::SERVICE_UNAVAILABLE, "delivery_pending")
    );
    assert!(err.message.contains("tollgate replay"), "{}", err.message);
    assert_eq!(w.pending().await.len(), 1);

    // Still down: the replay reports it and it stays pending.
    let clock = FixedClock::new(t(2));
    let mut seen = Vec::new();
    let summary = replay_pending(&w.pipeline, &*w.store, &clock, |r| {
        seen.push((r.delivery.id.clone(), r.result.is_ok()))
    })
    .await
    .unwrap();
    assert_eq!((summary.done, summary.failed), (0, 1));
    assert_eq!(seen, [("m1".to_owned(), false)]);

    *w.adapter().api_down.lock().unwrap() = false;
    let summary = replay_pending(&w.pipeline, &*w.store, &clock, |_| {})
        .await
        .unwrap();
    assert_eq!((summary.done, summary.failed), (1, 0));
    assert!(w.pending().await.is_empty());
    assert_eq!(
        w.store.get(&key()).await.unwrap().unwrap().status,
        Status::Pending
    );
}

#[tokio::test]
async fn a_redelivering_marketplace_gets_503_for_transient_failures_and_an_ack_for_permanent_ones()
{
    let w = World::<Redelivered>::new();
    *w.adapter().api_down.lock().unwrap() = true;
    let err = w
        .send(Some("m1"), &order_awaiting_signup())
        .await
        .unwrap_err();
    assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!err.message.contains("replay"), "{}", err.message);

    *w.adapter().api_down.lock().unwrap() = false;
    let acked = w.send(Some("m2"), b"not an event").await.unwrap();
    assert_eq!(acked["status"], "unprocessable");
    assert_eq!(
        w.pending()
            .await
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        ["m1", "m2"],
        "both stay recorded for an operator"
    );
}

#[tokio::test]
async fn replay_refuses_marketplaces_that_finish_deliveries_themselves() {
    let clock = FixedClock::new(t(2));
    let redelivered = World::<Redelivered>::new();
    let synchronous = World::<Synchronous>::new();
    assert!(matches!(
        replay_pending(&redelivered.pipeline, &*redelivered.store, &clock, |_| {}).await,
        Err(ReplayRunError::NotReplayable { .. })
    ));
    assert!(matches!(
        replay_pending(&synchronous.pipeline, &*synchronous.store, &clock, |_| {}).await,
        Err(ReplayRunError::NotReplayable { .. })
    ));
}

#[tokio::test]
async fn the_same_content_under_another_id_is_a_replay_and_changes_nothing() {
    let w = World::<RecordFirst>::new();
    let body = order_awaiting_signup();
    assert_eq!(
        w.send(Some("m1"), &body).await.unwrap()["status"],
        "applied"
    );
    let version = w.store.get(&key()).await.unwrap().unwrap().version;
    let replay = w
        .send(Some("m1-again-under-a-new-id"), &body)
        .await
        .unwrap();
    assert_eq!(replay["status"], "ignored", "{replay}");
    assert_eq!(w.store.get(&key()).await.unwrap().unwrap().version, version);
    let replays = SubscriptionKey::new(Marketplace::Gcp, super::pipeline::REPLAYS_LOG);
    assert_eq!(w.store.log(&replays).await.unwrap().len(), 1);
    assert!(w.pending().await.is_empty(), "the replay's id is done too");
}

#[tokio::test]
async fn a_known_id_with_other_content_is_refused_with_409() {
    let w = World::<Redelivered>::new();
    w.send(Some("m1"), &order_awaiting_signup()).await.unwrap();
    let err = w
        .send(Some("m1"), &event("other", 2, EventKind::Approved))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status, err.code),
        (StatusCode::CONFLICT, "delivery_id_reused")
    );
    assert_eq!(
        w.store.get(&key()).await.unwrap().unwrap().status,
        Status::Pending,
        "nothing applied"
    );
}
