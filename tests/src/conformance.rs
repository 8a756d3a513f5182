//! The store conformance suite: what every [`Store`] must do, asserted the
//! same way on SQLite and DynamoDB.
//!
//! Each case is `pub async fn case(store: &dyn Store)` and expects a fresh,
//! empty store. [`crate::conformance_suite!`] turns every case into a
//! `#[tokio::test]` for one implementation:
//!
//! ```ignore
//! async fn fresh() -> tollgate_tests::conformance::Fixture { /* new store */ }
//! tollgate_tests::conformance_suite!(fresh);
//! ```
//!
//! Conventions the implementations agree on, beyond the trait docs:
//! - A record with `expires_at <= now` is expired and counts as absent. For
//!   `record_delivery` "now" is the delivery's `received_at`; for `commit`
//!   it is the log entry's `recorded_at`; every other method is given `now`.
//!   No store reads the system clock.
//! - `log` is ordered by `recorded_at` (ties in any order).
//! - A commit whose state is not `expected_version + 1`, or is for another
//!   key, is refused (any error) and writes nothing.
//! - Times must fit in epoch nanoseconds (1677-09-21 to 2262-04-11); a call
//!   with any other is refused ([`StoreError::Backend`]) and writes nothing.
//! - Errors read the same on every store (a duplicate token's error never
//!   contains the token id).
//!
//! The concurrency cases race real OS threads (see [`race`]), so they need a
//! multi-thread runtime; the macro provides one. Time is passed explicitly
//! everywhere: no case reads the system clock.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use tollgate::api::wire::MAX_ID_BYTES;
use tollgate::ingest::{self, DEDUPE_TTL, Ingested};
use tollgate::model::{
    AccountKind, AppUser, AppliedMark, Awaiting, BillingCycle, Customer, CustomerKey, Disposition,
    EventKind, LogEntry, MarketEvent, Marketplace, PendingChange, Plan, PlanTerms, PriceModel,
    Seats, Status, Subscription, SubscriptionKey,
};
use tollgate::rules;
use tollgate::store::{
    Commit, Delivery, DeliveryMark, DeliveryStatus, Enrolled, Enrollment, GroupKey, Recorded,
    SeatClaim, SeatLimit, Store, StoreError, Token, UserLink, sha256_hex,
};

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

/// A store under test plus whatever must outlive it (a temporary directory,
/// a database server process). The store is dropped first.
pub struct Fixture {
    store: Box<dyn Store>,
    _guard: Box<dyn Send>,
}

impl Fixture {
    pub fn new(store: impl Store + 'static, guard: impl Send + 'static) -> Self {
        Self {
            store: Box::new(store),
            _guard: Box::new(guard),
        }
    }
}

/// What a [`crate::conformance_suite!`] factory may return: a store itself
/// or a [`Fixture`].
pub trait UnderTest {
    fn store(&self) -> &dyn Store;
}

impl<S: Store> UnderTest for S {
    fn store(&self) -> &dyn Store {
        self
    }
}

impl UnderTest for Fixture {
    fn store(&self) -> &dyn Store {
        &*self.store
    }
}

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

/// 2026-03-01T00:00:00Z plus `secs`.
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_323_200 + secs, 0).expect("test time in range")
}

pub fn sub_key(id: &str) -> SubscriptionKey {
    SubscriptionKey::new(Marketplace::Github, id)
}

pub fn customer(marketplace: Marketplace, id: &str) -> Customer {
    Customer {
        key: CustomerKey::new(marketplace, id),
        name: Some(format!("org-{id}")),
        kind: Some(AccountKind::Organization),
        billing_email: Some(format!("billing-{id}@example.com")),
    }
}

fn per_unit(id: &str) -> Plan {
    Plan {
        id: id.into(),
        name: Some(format!("Plan {id}")),
        price_model: Some(PriceModel::PerUnit),
    }
}

fn terms(plan: &str, seats: u32) -> PlanTerms {
    PlanTerms {
        seats: Some(seats),
        billing_cycle: Some(BillingCycle::Monthly),
        ..PlanTerms::new(per_unit(plan))
    }
}

pub fn event(
    key: &SubscriptionKey,
    cust: &Customer,
    id: &str,
    at: DateTime<Utc>,
    kind: EventKind,
) -> MarketEvent {
    MarketEvent {
        id: id.into(),
        subscription: key.clone(),
        customer: cust.clone(),
        product: "acme-ci".into(),
        effective_at: at,
        kind,
    }
}

/// A per-unit purchase of `seats` seats.
pub fn purchase(
    key: &SubscriptionKey,
    cust: &Customer,
    id: &str,
    at: DateTime<Utc>,
    seats: u32,
) -> MarketEvent {
    let kind = EventKind::Purchased {
        terms: terms("team", seats),
        awaiting: None,
    };
    event(key, cust, id, at, kind)
}

/// A change to `seats` seats that takes effect at once.
pub fn change(
    key: &SubscriptionKey,
    cust: &Customer,
    id: &str,
    at: DateTime<Utc>,
    seats: u32,
) -> MarketEvent {
    let kind = EventKind::Changed {
        terms: terms("team", seats),
    };
    event(key, cust, id, at, kind)
}

pub fn mark(id: &str, now: DateTime<Utc>) -> DeliveryMark {
    DeliveryMark {
        marketplace: Marketplace::Github,
        id: id.into(),
        expires_at: now + DEDUPE_TTL,
    }
}

/// The commit `ingest` would make for `event` on top of `current`, at `now`.
pub fn commit_for(
    current: Option<&Subscription>,
    event: &MarketEvent,
    now: DateTime<Utc>,
) -> Commit {
    let outcome = rules::apply(current, event, now);
    Commit {
        subscription: event.subscription.clone(),
        expected_version: current.map_or(0, |c| c.version),
        state: outcome.next,
        log: outcome.log,
        delivery: Some(mark(&event.id, now)),
    }
}

/// Buys subscription `id` for customer `cust` (delivery `buy-<id>`) and
/// returns the stored state (version 1).
pub async fn bought(store: &dyn Store, id: &str, cust: &Customer, seats: u32) -> Subscription {
    let key = sub_key(id);
    let buy = purchase(&key, cust, &format!("buy-{id}"), at(0), seats);
    store
        .commit(&commit_for(None, &buy, at(0)))
        .await
        .expect("purchase commits");
    store.get(&key).await.expect("get").expect("bought")
}

/// A subscription with every optional field set, for round trips.
fn full_subscription(key: &SubscriptionKey) -> Subscription {
    Subscription {
        key: key.clone(),
        customer: customer(Marketplace::Github, "100"),
        product: "acme-ci".into(),
        plan: per_unit("team"),
        status: Status::PendingCancellation,
        awaiting: Some(Awaiting::Approval),
        seats: Seats {
            limit: Some(25),
            used: 0,
        },
        billing_cycle: Some(BillingCycle::Yearly),
        trial_ends_at: Some(at(14 * 86_400)),
        next_billing_at: Some(at(30 * 86_400)),
        access_until: Some(at(31 * 86_400)),
        pending_change: Some(PendingChange::Plan {
            plan: per_unit("starter"),
            seats: Some(5),
            effective_at: at(30 * 86_400),
        }),
        last_applied: Some(AppliedMark {
            effective_at: at(3),
            event_id: "evt-3".into(),
        }),
        version: 1,
        created_at: at(1) + Duration::nanoseconds(123_456_789),
        updated_at: at(2) + Duration::milliseconds(5),
    }
}

pub fn log_entry(
    key: &SubscriptionKey,
    event_id: &str,
    effective: DateTime<Utc>,
    recorded: DateTime<Utc>,
) -> LogEntry {
    LogEntry {
        subscription: key.clone(),
        event_id: event_id.into(),
        event: "changed".into(),
        effective_at: effective,
        recorded_at: recorded,
        disposition: Disposition::Applied,
        note: format!("note for {event_id}"),
        status_before: Some(Status::Trial),
        status_after: Some(Status::Active),
    }
}

/// The next version of `cur` on plan `plan`, as a commit at `now`.
fn next_commit(cur: &Subscription, plan: &str, event_id: &str, now: DateTime<Utc>) -> Commit {
    let mut next = cur.clone();
    next.plan = per_unit(plan);
    next.version = cur.version + 1;
    next.updated_at = now;
    next.last_applied = Some(AppliedMark {
        effective_at: now,
        event_id: event_id.into(),
    });
    Commit {
        subscription: cur.key.clone(),
        expected_version: cur.version,
        state: Some(next),
        log: log_entry(&cur.key, event_id, now, now),
        delivery: Some(mark(event_id, now)),
    }
}

pub fn delivery(id: &str, received: DateTime<Utc>) -> Delivery {
    let body = format!("{{\"delivery\":\"{id}\"}}").into_bytes();
    Delivery {
        marketplace: Marketplace::Github,
        id: id.into(),
        kind: "marketplace_purchase".into(),
        status: DeliveryStatus::Pending,
        body_sha256: sha256_hex(&body),
        body: Some(body),
        received_at: received,
        expires_at: received + DEDUPE_TTL,
    }
}

/// Everything a commit on `key` could have written.
#[derive(Debug, PartialEq)]
struct Snapshot {
    state: Option<Subscription>,
    log: Vec<LogEntry>,
    deliveries: Vec<Option<Delivery>>,
    pending: Vec<Delivery>,
}

async fn snapshot(
    store: &dyn Store,
    key: &SubscriptionKey,
    deliveries: &[&str],
    now: DateTime<Utc>,
) -> Snapshot {
    let mut found = Vec::new();
    for id in deliveries {
        found.push(
            store
                .delivery(Marketplace::Github, id, now)
                .await
                .expect("delivery"),
        );
    }
    Snapshot {
        state: store.get(key).await.expect("get"),
        log: store.log(key).await.expect("log"),
        deliveries: found,
        pending: store
            .pending_deliveries(Marketplace::Github, now)
            .await
            .expect("pending"),
    }
}

fn event_ids(log: &[LogEntry]) -> Vec<&str> {
    log.iter().map(|e| e.event_id.as_str()).collect()
}

/// Runs `f(0)`, ..., `f(n - 1)` at the same moment on `n` OS threads, each
/// driving its future on the test's runtime; returns the results in index
/// order. Threads rather than tasks so the cases can borrow the store, and
/// so the contenders truly run in parallel.
pub fn race<T, Fut>(n: usize, f: impl Fn(usize) -> Fut + Sync) -> Vec<T>
where
    Fut: Future<Output = T>,
    T: Send,
{
    let handle = tokio::runtime::Handle::current();
    let start = std::sync::Barrier::new(n);
    tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..n)
                .map(|i| {
                    let (f, start, handle) = (&f, &start, &handle);
                    s.spawn(move || {
                        start.wait();
                        handle.block_on(f(i))
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    })
}

// ---------------------------------------------------------------------------
// Subscriptions and commits
// ---------------------------------------------------------------------------

pub async fn get_of_a_missing_subscription_is_none(store: &dyn Store) {
    assert_eq!(store.get(&sub_key("nope")).await, Ok(None));
    assert_eq!(store.log(&sub_key("nope")).await, Ok(vec![]));
}

pub async fn commit_then_get_round_trips_every_field(store: &dyn Store) {
    let key = sub_key("s1");
    let state = full_subscription(&key);
    let entry = log_entry(&key, "evt-3", at(3), at(4));
    let commit = Commit {
        subscription: key.clone(),
        expected_version: 0,
        state: Some(state.clone()),
        log: entry.clone(),
        delivery: Some(mark("d-3", at(4))),
    };
    store.commit(&commit).await.expect("commit");

    assert_eq!(store.get(&key).await, Ok(Some(state.clone())));
    assert_eq!(store.log(&key).await, Ok(vec![entry]));
    assert_eq!(
        store.customer_subscriptions(&state.customer.key).await,
        Ok(vec![state])
    );
    let d = store
        .delivery(Marketplace::Github, "d-3", at(5))
        .await
        .expect("delivery")
        .expect("the commit leaves a dedupe mark");
    assert_eq!(d.status, DeliveryStatus::Done);
    assert_eq!(d.expires_at, at(4) + DEDUPE_TTL);
}

pub async fn a_stale_version_conflicts_and_writes_nothing(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 5).await;
    let key = v1.key.clone();
    store
        .commit(&next_commit(&v1, "pro", "e2", at(10)))
        .await
        .expect("v2");
    assert_eq!(
        store.record_delivery(&delivery("e3", at(20))).await,
        Ok(Recorded::New)
    );
    let before = snapshot(store, &key, &["e2", "e3"], at(30)).await;

    // Built from v1, which is no longer current.
    let stale = next_commit(&v1, "enterprise", "e3", at(20));
    assert!(matches!(
        store.commit(&stale).await,
        Err(StoreError::Conflict(_))
    ));

    let after = snapshot(store, &key, &["e2", "e3"], at(30)).await;
    assert_eq!(after, before);
    let state = after.state.expect("exists");
    assert_eq!((state.version, state.plan.id.as_str()), (2, "pro"));
    assert_eq!(
        after.deliveries[1].as_ref().map(|d| d.status),
        Some(DeliveryStatus::Pending),
        "the failed commit must not mark its delivery done"
    );
}

pub async fn creating_a_subscription_that_exists_conflicts(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 5).await;
    let before = snapshot(store, &v1.key, &["again"], at(30)).await;

    let again = purchase(&v1.key, &cust, "again", at(5), 50);
    let create = commit_for(None, &again, at(5));
    assert_eq!(create.expected_version, 0);
    assert!(matches!(
        store.commit(&create).await,
        Err(StoreError::Conflict(_))
    ));

    assert_eq!(snapshot(store, &v1.key, &["again"], at(30)).await, before);
}

pub async fn a_version_for_a_missing_subscription_conflicts(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let key = sub_key("ghost");
    let mut state = rules::apply(None, &purchase(&key, &cust, "e1", at(0), 1), at(0))
        .next
        .expect("purchase applies");
    state.version = 4;
    let commit = Commit {
        subscription: key.clone(),
        expected_version: 3,
        state: Some(state),
        log: log_entry(&key, "e1", at(0), at(0)),
        delivery: Some(mark("e1", at(0))),
    };
    assert!(matches!(
        store.commit(&commit).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        snapshot(store, &key, &["e1"], at(1)).await,
        Snapshot {
            state: None,
            log: vec![],
            deliveries: vec![None],
            pending: vec![],
        }
    );
}

pub async fn a_failed_condition_applies_nothing(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 5).await;
    let key = v1.key.clone();
    store
        .commit(&next_commit(&v1, "pro", "e2", at(10)))
        .await
        .expect("v2");
    let before = snapshot(store, &key, &["e3", "e4"], at(30)).await;

    // A state write, a log-only write and a fresh delivery mark, each at the
    // stale version: none of their parts may land.
    let with_state = next_commit(&v1, "enterprise", "e3", at(20));
    let log_only = Commit {
        state: None,
        log: log_entry(&key, "e4", at(21), at(21)),
        delivery: Some(mark("e4", at(21))),
        ..with_state.clone()
    };
    for commit in [&with_state, &log_only] {
        assert!(matches!(
            store.commit(commit).await,
            Err(StoreError::Conflict(_))
        ));
    }
    assert_eq!(snapshot(store, &key, &["e3", "e4"], at(30)).await, before);

    // No dedupe mark was left behind: retried at the current version, both
    // deliveries go through.
    let v2 = store.get(&key).await.expect("get").expect("exists");
    store
        .commit(&next_commit(&v2, "enterprise", "e3", at(20)))
        .await
        .expect("retry of e3");
    let retry = Commit {
        expected_version: 3,
        ..log_only
    };
    store.commit(&retry).await.expect("retry of e4");
    let log = store.log(&key).await.expect("log");
    assert_eq!(event_ids(&log), ["buy-s1", "e2", "e3", "e4"]);
}

pub async fn a_duplicate_delivery_is_refused_and_writes_nothing(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 5).await;
    let key = v1.key.clone();
    let before = snapshot(store, &key, &["buy-s1"], at(30)).await;

    // The same delivery again, at the current version.
    let redelivered = next_commit(&v1, "pro", "buy-s1", at(10));
    assert!(matches!(
        store.commit(&redelivered).await,
        Err(StoreError::Duplicate(_))
    ));
    // Also when it would only be logged.
    let log_only = Commit {
        state: None,
        ..redelivered
    };
    assert!(matches!(
        store.commit(&log_only).await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(snapshot(store, &key, &["buy-s1"], at(30)).await, before);
    assert_eq!(
        before.deliveries[0].as_ref().map(|d| d.status),
        Some(DeliveryStatus::Done)
    );

    // Through ingest: acknowledged as a duplicate, nothing changes.
    let buy = purchase(&key, &cust, "buy-s1", at(0), 5);
    assert_eq!(
        ingest::ingest(store, &buy, at(40)).await,
        Ok(Ingested::Duplicate)
    );
    assert_eq!(snapshot(store, &key, &["buy-s1"], at(30)).await, before);
}

pub async fn an_expired_dedupe_mark_does_not_refuse_a_commit(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 5).await;
    let mut first = next_commit(&v1, "pro", "d", at(10));
    first.delivery = Some(DeliveryMark {
        marketplace: Marketplace::Github,
        id: "d".into(),
        expires_at: at(100),
    });
    store.commit(&first).await.expect("first");
    let v2 = store.get(&v1.key).await.expect("get").expect("exists");

    // Still live when the next commit is recorded: refused.
    let early = next_commit(&v2, "enterprise", "d", at(99));
    assert!(matches!(
        store.commit(&early).await,
        Err(StoreError::Duplicate(_))
    ));
    // Expired by then (expires_at <= recorded_at): a new delivery.
    let late = next_commit(&v2, "enterprise", "d", at(100));
    store.commit(&late).await.expect("expired mark is absent");
    let v3 = store.get(&v1.key).await.expect("get").expect("exists");
    assert_eq!((v3.version, v3.plan.id.as_str()), (3, "enterprise"));
}

pub async fn a_log_only_commit_writes_log_and_mark_but_not_state(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 5).await;
    let key = v1.key.clone();
    store
        .commit(&next_commit(&v1, "pro", "e2", at(10)))
        .await
        .expect("v2");
    let v2 = store.get(&key).await.expect("get").expect("exists");

    // Older than what is applied: rules log it without a next state.
    let old = change(&key, &cust, "old", at(5), 9);
    let stale = commit_for(Some(&v2), &old, at(20));
    assert!(stale.state.is_none());
    assert_eq!(stale.log.disposition, Disposition::Stale);

    // Still conditional on the version.
    let at_v1 = Commit {
        expected_version: 1,
        ..stale.clone()
    };
    assert!(matches!(
        store.commit(&at_v1).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.log(&key).await.expect("log").len(), 2);

    store.commit(&stale).await.expect("log-only commit");
    assert_eq!(store.get(&key).await, Ok(Some(v2)), "state untouched");
    let log = store.log(&key).await.expect("log");
    assert_eq!(event_ids(&log), ["buy-s1", "e2", "old"]);
    assert_eq!(log[2], stale.log);
    let d = store
        .delivery(Marketplace::Github, "old", at(21))
        .await
        .expect("delivery")
        .expect("marked");
    assert_eq!(d.status, DeliveryStatus::Done);

    // An event for a subscription never seen: logged, nothing created.
    let never = sub_key("never");
    let suspend = event(&never, &cust, "orphan", at(30), EventKind::Suspended);
    let orphan = commit_for(None, &suspend, at(30));
    assert!(orphan.state.is_none());
    store.commit(&orphan).await.expect("orphan log entry");
    assert_eq!(store.get(&never).await, Ok(None));
    assert_eq!(store.log(&never).await, Ok(vec![orphan.log]));
}

pub async fn the_log_is_oldest_first(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let key = sub_key("s1");
    // Neither event ids nor effective times sort like the recording order.
    let events = [
        (purchase(&key, &cust, "z-buy", at(10), 5), at(10)),
        (change(&key, &cust, "a-change", at(20), 6), at(20)),
        (change(&key, &cust, "m-stale", at(1), 7), at(30)),
        (change(&key, &cust, "b-change", at(40), 8), at(40)),
    ];
    let mut current = None;
    for (event, now) in &events {
        let commit = commit_for(current.as_ref(), event, *now);
        store.commit(&commit).await.expect("commit");
        current = store.get(&key).await.expect("get");
    }
    let log = store.log(&key).await.expect("log");
    assert_eq!(
        event_ids(&log),
        ["z-buy", "a-change", "m-stale", "b-change"]
    );
    assert_eq!(log[2].disposition, Disposition::Stale);
    // Another subscription's entries stay out of it.
    bought(store, "s2", &cust, 1).await;
    assert_eq!(store.log(&key).await.expect("log").len(), 4);
}

pub async fn a_commit_that_would_break_the_version_sequence_is_refused(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 5).await;
    let key = v1.key.clone();
    let before = snapshot(store, &key, &["e2"], at(30)).await;

    // The state keeps the version it was read at: a second writer at
    // version 1 would then overwrite it silently.
    let mut same_version = next_commit(&v1, "pro", "e2", at(10));
    if let Some(s) = same_version.state.as_mut() {
        s.version = 1;
    }
    assert!(store.commit(&same_version).await.is_err());

    // A state filed under another subscription's key.
    let mut other_key = next_commit(&v1, "pro", "e2", at(10));
    if let Some(s) = other_key.state.as_mut() {
        s.key = sub_key("s2");
    }
    assert!(store.commit(&other_key).await.is_err());

    assert_eq!(snapshot(store, &key, &["e2"], at(30)).await, before);
    assert_eq!(store.get(&sub_key("s2")).await, Ok(None));
}

pub async fn a_commit_past_the_last_version_is_refused_without_a_panic(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 5).await;
    let key = v1.key.clone();
    let before = snapshot(store, &key, &["e2"], at(30)).await;

    // No version follows u64::MAX; 0 is what `u64::MAX + 1` wraps to.
    let mut last = next_commit(&v1, "pro", "e2", at(10));
    last.expected_version = u64::MAX;
    if let Some(s) = last.state.as_mut() {
        s.version = 0;
    }
    assert!(matches!(
        store.commit(&last).await,
        Err(StoreError::Backend(_))
    ));
    assert_eq!(snapshot(store, &key, &["e2"], at(30)).await, before);
}

/// The errors of a refused commit say what they are about in the same
/// words on every store: a conflict names the subscription and the version
/// it expected, a duplicate names the delivery.
pub async fn commit_errors_name_the_subscription_or_the_delivery(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 5).await;
    store
        .commit(&next_commit(&v1, "pro", "e2", at(10)))
        .await
        .expect("v2");
    assert_eq!(
        store.commit(&next_commit(&v1, "pro", "e3", at(20))).await,
        Err(StoreError::Conflict(
            "github:s1 (expected version 1)".into()
        ))
    );
    let v2 = store.get(&v1.key).await.expect("get").expect("exists");
    assert_eq!(
        store.commit(&next_commit(&v2, "pro", "e2", at(20))).await,
        Err(StoreError::Duplicate(
            "delivery github:e2 (already processed)".into()
        ))
    );
}

pub async fn customer_subscriptions_returns_all_of_a_customers_and_none_of_anothers(
    store: &dyn Store,
) {
    let a = customer(Marketplace::Github, "100");
    let b = customer(Marketplace::Github, "200");
    // Same customer id, other marketplace: another customer.
    let gcp = customer(Marketplace::Gcp, "100");

    let s1 = bought(store, "s1", &a, 5).await;
    bought(store, "s2", &a, 5).await;
    bought(store, "s3", &b, 5).await;
    let gcp_key = SubscriptionKey::new(Marketplace::Gcp, "s1");
    let gcp_buy = purchase(&gcp_key, &gcp, "gcp-buy", at(0), 1);
    store
        .commit(&commit_for(None, &gcp_buy, at(0)))
        .await
        .expect("gcp purchase");

    // The hot path sees the latest version and the count of seat holders.
    store
        .commit(&next_commit(&s1, "pro", "e2", at(10)))
        .await
        .expect("v2");
    store
        .claim_seat(&s1.key, "alice", SeatLimit::Purchased)
        .await
        .expect("claim");

    let mut of_a = store.customer_subscriptions(&a.key).await.expect("a");
    of_a.sort_by(|x, y| x.key.cmp(&y.key));
    let expected = vec![
        store.get(&sub_key("s1")).await.expect("get").expect("s1"),
        store.get(&sub_key("s2")).await.expect("get").expect("s2"),
    ];
    assert_eq!(of_a, expected);
    assert_eq!(of_a[0].version, 2);
    assert_eq!(of_a[0].seats.used, 1);

    let of_b = store.customer_subscriptions(&b.key).await.expect("b");
    assert_eq!(
        of_b.iter().map(|s| s.key.id.as_str()).collect::<Vec<_>>(),
        ["s3"]
    );
    let of_gcp = store.customer_subscriptions(&gcp.key).await.expect("gcp");
    assert_eq!(
        of_gcp.iter().map(|s| &s.key).collect::<Vec<_>>(),
        [&gcp_key]
    );
    let nobody = CustomerKey::new(Marketplace::Q2, "100");
    assert_eq!(store.customer_subscriptions(&nobody).await, Ok(vec![]));
}

// ---------------------------------------------------------------------------
// Deliveries
// ---------------------------------------------------------------------------

pub async fn record_delivery_goes_new_then_pending_then_done(store: &dyn Store) {
    let d = delivery("d1", at(0));
    assert_eq!(store.record_delivery(&d).await, Ok(Recorded::New));
    assert_eq!(
        store.delivery(Marketplace::Github, "d1", at(1)).await,
        Ok(Some(d.clone())),
        "the pending record keeps the body for replay"
    );
    let mut again = delivery("d1", at(5));
    again.body = Some(b"a redelivery".to_vec());
    assert_eq!(store.record_delivery(&again).await, Ok(Recorded::Pending));
    assert_eq!(
        store.delivery(Marketplace::Github, "d1", at(6)).await,
        Ok(Some(d.clone())),
        "recording again changes nothing"
    );

    let cust = customer(Marketplace::Github, "100");
    let buy = purchase(&sub_key("s1"), &cust, "d1", at(0), 5);
    assert!(matches!(
        ingest::ingest(store, &buy, at(10)).await,
        Ok(Ingested::Committed(_))
    ));

    assert_eq!(store.record_delivery(&again).await, Ok(Recorded::Done));
    let done = store
        .delivery(Marketplace::Github, "d1", at(11))
        .await
        .expect("delivery")
        .expect("still recorded");
    assert_eq!(done.status, DeliveryStatus::Done);
    assert_eq!(done.body, None, "the body is dropped once processed");
    assert_eq!(
        (&done.kind, &done.body_sha256, done.received_at),
        (&d.kind, &d.body_sha256, d.received_at)
    );
    assert_eq!(
        store.delivery(Marketplace::Gcp, "d1", at(11)).await,
        Ok(None),
        "delivery ids are per marketplace"
    );
}

pub async fn concurrent_records_of_one_delivery_report_new_once(store: &dyn Store) {
    let results = race(10, |i| async move {
        store
            .record_delivery(&delivery("d1", at(i as i64)))
            .await
            .expect("record")
    });
    let new = results.iter().filter(|r| **r == Recorded::New).count();
    let pending = results.iter().filter(|r| **r == Recorded::Pending).count();
    assert_eq!((new, pending), (1, 9), "{results:?}");
}

pub async fn an_expired_delivery_counts_as_absent(store: &dyn Store) {
    let mut d = delivery("d1", at(0));
    d.expires_at = at(100);
    assert_eq!(store.record_delivery(&d).await, Ok(Recorded::New));
    assert!(
        store
            .delivery(Marketplace::Github, "d1", at(99))
            .await
            .expect("d")
            .is_some()
    );
    assert_eq!(
        store.delivery(Marketplace::Github, "d1", at(100)).await,
        Ok(None)
    );
    assert_eq!(
        store.pending_deliveries(Marketplace::Github, at(100)).await,
        Ok(vec![])
    );

    // Received again after it expired: new again, with the new record.
    let mut again = delivery("d1", at(100));
    again.expires_at = at(200);
    assert_eq!(store.record_delivery(&again).await, Ok(Recorded::New));
    assert_eq!(
        store.delivery(Marketplace::Github, "d1", at(150)).await,
        Ok(Some(again.clone()))
    );

    // A done record also expires.
    let cust = customer(Marketplace::Github, "100");
    let buy = purchase(&sub_key("s1"), &cust, "d1", at(0), 5);
    let mut commit = commit_for(None, &buy, at(150));
    commit.delivery = Some(DeliveryMark {
        marketplace: Marketplace::Github,
        id: "d1".into(),
        expires_at: at(300),
    });
    store.commit(&commit).await.expect("commit");
    assert_eq!(
        store.record_delivery(&delivery("d1", at(299))).await,
        Ok(Recorded::Done)
    );
    assert_eq!(
        store.record_delivery(&delivery("d1", at(300))).await,
        Ok(Recorded::New)
    );
}

pub async fn pending_deliveries_lists_only_live_pending_ones_oldest_first(store: &dyn Store) {
    for (id, secs) in [("d3", 30), ("d1", 10), ("d4", 40), ("d2", 20)] {
        assert_eq!(
            store.record_delivery(&delivery(id, at(secs))).await,
            Ok(Recorded::New)
        );
    }
    let mut expiring = delivery("d0", at(0));
    expiring.expires_at = at(50);
    store.record_delivery(&expiring).await.expect("d0");
    let mut gcp = delivery("dx", at(5));
    gcp.marketplace = Marketplace::Gcp;
    store.record_delivery(&gcp).await.expect("dx");

    // d4 gets processed.
    let cust = customer(Marketplace::Github, "100");
    let buy = purchase(&sub_key("s1"), &cust, "d4", at(40), 5);
    ingest::ingest(store, &buy, at(45))
        .await
        .expect("ingest d4");

    let pending = store
        .pending_deliveries(Marketplace::Github, at(60))
        .await
        .expect("pending");
    let ids: Vec<&str> = pending.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["d1", "d2", "d3"]);
    assert_eq!(
        pending[0],
        delivery("d1", at(10)),
        "with the body to replay"
    );

    let at_49 = store
        .pending_deliveries(Marketplace::Github, at(49))
        .await
        .expect("pending");
    assert_eq!(at_49.first().map(|d| d.id.as_str()), Some("d0"));
    assert_eq!(
        store.pending_deliveries(Marketplace::Gcp, at(60)).await,
        Ok(vec![gcp])
    );
}

pub async fn record_delivery_records_pending_whatever_status_it_carries(store: &dyn Store) {
    let mut d = delivery("d1", at(0));
    d.status = DeliveryStatus::Done;
    assert_eq!(store.record_delivery(&d).await, Ok(Recorded::New));
    let pending = Delivery {
        status: DeliveryStatus::Pending,
        ..d.clone()
    };
    assert_eq!(
        store.delivery(Marketplace::Github, "d1", at(1)).await,
        Ok(Some(pending.clone()))
    );
    assert_eq!(
        store.pending_deliveries(Marketplace::Github, at(1)).await,
        Ok(vec![pending])
    );
    assert_eq!(store.record_delivery(&d).await, Ok(Recorded::Pending));
}

/// A commit's dedupe mark keeps what a record already there says about the
/// delivery (kind, body hash, received_at), even an expired one; only
/// without a record does the mark make one up (empty kind and hash,
/// received "now").
pub async fn a_dedupe_mark_keeps_the_receipt_details_of_the_record(store: &dyn Store) {
    let mut d = delivery("d1", at(0));
    d.expires_at = at(100);
    assert_eq!(store.record_delivery(&d).await, Ok(Recorded::New));

    let cust = customer(Marketplace::Github, "100");
    let buy = purchase(&sub_key("s1"), &cust, "d1", at(0), 5);
    let mut commit = commit_for(None, &buy, at(150));
    commit.delivery = Some(DeliveryMark {
        expires_at: at(500),
        ..mark("d1", at(150))
    });
    store
        .commit(&commit)
        .await
        .expect("the expired record is no duplicate");
    assert_eq!(
        store.delivery(Marketplace::Github, "d1", at(151)).await,
        Ok(Some(Delivery {
            status: DeliveryStatus::Done,
            body: None,
            expires_at: at(500),
            ..d
        }))
    );
    assert_eq!(
        store.pending_deliveries(Marketplace::Github, at(50)).await,
        Ok(vec![]),
        "done, so no longer pending even before its old expiry"
    );

    let other = purchase(&sub_key("s2"), &cust, "d2", at(0), 5);
    store
        .commit(&commit_for(None, &other, at(160)))
        .await
        .expect("commit");
    assert_eq!(
        store.delivery(Marketplace::Github, "d2", at(161)).await,
        Ok(Some(Delivery {
            marketplace: Marketplace::Github,
            id: "d2".into(),
            kind: String::new(),
            status: DeliveryStatus::Done,
            body_sha256: String::new(),
            body: None,
            received_at: at(160),
            expires_at: at(160) + DEDUPE_TTL,
        }))
    );
}

// ---------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------

/// Stored times must fit in epoch nanoseconds (1677-09-21 to 2262-04-11):
/// DynamoDB compares expiries that way, and within that range the stored
/// text is fixed width. Outside it every store refuses the call and writes
/// nothing; the range's ends themselves are fine.
pub async fn out_of_range_times_are_refused_and_write_nothing(store: &dyn Store) {
    let last = DateTime::from_timestamp_nanos(i64::MAX);
    let first = DateTime::from_timestamp_nanos(i64::MIN);
    let too_late = last + Duration::nanoseconds(1);
    let too_early = first - Duration::nanoseconds(1);
    let refused = |what: &str, r: Result<(), StoreError>| {
        assert!(matches!(r, Err(StoreError::Backend(_))), "{what}: {r:?}");
    };

    for bad in [too_late, too_early] {
        let t = token("oauth_state", "st-1", "p", bad);
        refused("token expiry", store.put_token(&t, at(0)).await);
        let t = token("oauth_state", "st-1", "p", at(100));
        refused("put at", store.put_token(&t, bad).await);
        refused(
            "take at",
            store.take_token("oauth_state", "st-1", bad).await.map(drop),
        );

        refused(
            "received at",
            store.record_delivery(&delivery("d1", bad)).await.map(drop),
        );
        let mut d = delivery("d1", at(0));
        d.expires_at = bad;
        refused("delivery expiry", store.record_delivery(&d).await.map(drop));
        refused(
            "delivery at",
            store
                .delivery(Marketplace::Github, "d1", bad)
                .await
                .map(drop),
        );
        refused(
            "pending at",
            store
                .pending_deliveries(Marketplace::Github, bad)
                .await
                .map(drop),
        );

        let cust = customer(Marketplace::Github, "100");
        let buy = purchase(&sub_key("s1"), &cust, "e1", at(0), 5);
        let mut recorded = commit_for(None, &buy, at(0));
        recorded.log.recorded_at = bad;
        recorded.delivery = None;
        refused("recorded at", store.commit(&recorded).await);
        let mut marked = commit_for(None, &buy, at(0));
        marked.delivery = Some(DeliveryMark {
            expires_at: bad,
            ..mark("e1", at(0))
        });
        refused("mark expiry", store.commit(&marked).await);
    }
    assert_eq!(
        snapshot(store, &sub_key("s1"), &["d1", "e1"], at(1)).await,
        Snapshot {
            state: None,
            log: vec![],
            deliveries: vec![None, None],
            pending: vec![],
        }
    );
    assert_eq!(
        store.take_token("oauth_state", "st-1", at(1)).await,
        Ok(None)
    );

    // The ends of the range are storable.
    store
        .put_token(&token("oauth_state", "st-2", "last", last), first)
        .await
        .expect("put at the range's ends");
    assert_eq!(
        store.take_token("oauth_state", "st-2", at(0)).await,
        Ok(Some("last".into()))
    );
}

// ---------------------------------------------------------------------------
// Concurrency on one subscription
// ---------------------------------------------------------------------------

pub async fn concurrent_ingests_lose_no_update(store: &dyn Store) {
    const N: usize = 20;
    let cust = customer(Marketplace::Github, "100");
    bought(store, "s1", &cust, 1).await;
    let key = sub_key("s1");
    // Same effective time, so every one applies whatever order they land in.
    let events: Vec<MarketEvent> = (0..N)
        .map(|i| change(&key, &cust, &format!("chg-{i:02}"), at(100), 100 + i as u32))
        .collect();

    let results = race(N, |i| {
        let event = &events[i];
        async move { ingest::ingest(store, event, at(100)).await }
    });
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(Ingested::Committed(outcome)) => {
                assert_eq!(outcome.disposition(), Disposition::Applied, "event {i}")
            }
            other => panic!("event {i}: {other:?}"),
        }
    }

    let state = store.get(&key).await.expect("get").expect("exists");
    assert_eq!(state.version, 1 + N as u64, "one version per event");
    let log = store.log(&key).await.expect("log");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in &log {
        *counts.entry(entry.event_id.as_str()).or_default() += 1;
        assert_eq!(entry.disposition, Disposition::Applied);
    }
    assert_eq!(log.len(), 1 + N);
    assert_eq!(counts.get("buy-s1"), Some(&1));
    for event in &events {
        assert_eq!(counts.get(event.id.as_str()), Some(&1), "{}", event.id);
    }
    // The stored state is the one the last applied event produced.
    let last = state.last_applied.as_ref().expect("mark").event_id.clone();
    let last_seats = events
        .iter()
        .find(|e| e.id == last)
        .map(|e| match &e.kind {
            EventKind::Changed { terms } => terms.seats,
            _ => None,
        })
        .expect("the mark names one of the events");
    assert_eq!(state.seats.limit, last_seats);

    // Redelivered: all duplicates, nothing moves.
    for event in &events {
        assert_eq!(
            ingest::ingest(store, event, at(200)).await,
            Ok(Ingested::Duplicate)
        );
    }
    assert_eq!(
        store.get(&key).await.expect("get").map(|s| s.version),
        Some(1 + N as u64)
    );
}

pub async fn concurrent_redeliveries_apply_once(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 1).await;
    let same = change(&v1.key, &cust, "chg", at(100), 7);

    let results = race(10, |_| ingest::ingest(store, &same, at(100)));
    let committed = results
        .iter()
        .filter(|r| matches!(r, Ok(Ingested::Committed(_))))
        .count();
    let duplicates = results
        .iter()
        .filter(|r| matches!(r, Ok(Ingested::Duplicate)))
        .count();
    assert_eq!((committed, duplicates), (1, 9), "{results:?}");
    assert_eq!(
        store.get(&v1.key).await.expect("get").map(|s| s.version),
        Some(2)
    );
    let log = store.log(&v1.key).await.expect("log");
    assert_eq!(event_ids(&log), ["buy-s1", "chg"]);
}

pub async fn racing_commits_at_one_version_have_one_winner(store: &dyn Store) {
    const N: usize = 10;
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 1).await;
    let commits: Vec<Commit> = (0..N)
        .map(|i| next_commit(&v1, &format!("plan-{i}"), &format!("e{i}"), at(10)))
        .collect();

    let results = race(N, |i| store.commit(&commits[i]));
    let winners: Vec<usize> = (0..N).filter(|i| results[*i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (i, r) in results.iter().enumerate() {
        if i != winners[0] {
            assert!(
                matches!(r, Err(StoreError::Conflict(_))),
                "commit {i}: {r:?}"
            );
        }
    }
    let w = winners[0];

    let state = store.get(&v1.key).await.expect("get").expect("exists");
    assert_eq!(Some(state), commits[w].state);
    let log = store.log(&v1.key).await.expect("log");
    assert_eq!(log.len(), 2);
    assert_eq!(log[1], commits[w].log);
    for (i, commit) in commits.iter().enumerate() {
        let mark = commit.delivery.as_ref().expect("mark");
        let d = store
            .delivery(Marketplace::Github, &mark.id, at(11))
            .await
            .expect("delivery");
        assert_eq!(d.is_some(), i == w, "only the winner's mark: {}", mark.id);
    }
}

// ---------------------------------------------------------------------------
// Seats
// ---------------------------------------------------------------------------

/// The seat holders of `key` and its state's count of them, which must agree.
async fn seats_of(store: &dyn Store, key: &SubscriptionKey) -> BTreeSet<String> {
    let holders = store.seat_holders(key).await.expect("holders");
    let sorted = {
        let mut v = holders.clone();
        v.sort();
        v
    };
    assert_eq!(holders, sorted, "holders come sorted");
    let state = store.get(key).await.expect("get").expect("exists");
    assert_eq!(
        state.seats.used as usize,
        holders.len(),
        "the state's count is the number of holders"
    );
    holders.into_iter().collect()
}

fn users(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

pub async fn seat_limit_holds_under_50_concurrent_claims(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let sub = bought(store, "s1", &cust, 10).await;
    let key = &sub.key;

    let results = race(50, |i| async move {
        store
            .claim_seat(key, &format!("user-{i:02}"), SeatLimit::Purchased)
            .await
            .expect("claim")
    });
    let mut granted = BTreeSet::new();
    for (i, r) in results.iter().enumerate() {
        match r {
            SeatClaim::Granted { used, limit } => {
                assert!((1..=10).contains(used), "{r:?}");
                assert_eq!(*limit, Some(10));
                granted.insert(format!("user-{i:02}"));
            }
            SeatClaim::LimitReached { used, limit } => assert_eq!((*used, *limit), (10, 10)),
            SeatClaim::AlreadyHeld { .. } => panic!("distinct users: {r:?}"),
        }
    }
    assert_eq!(granted.len(), 10);
    assert_eq!(seats_of(store, key).await, granted);
}

pub async fn claims_are_granted_up_to_the_purchased_limit_and_refused_at_it(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let sub = bought(store, "s1", &cust, 3).await;
    let key = &sub.key;
    for (i, user) in ["u1", "u2", "u3"].into_iter().enumerate() {
        assert_eq!(
            store.claim_seat(key, user, SeatLimit::Purchased).await,
            Ok(SeatClaim::Granted {
                used: i as u32 + 1,
                limit: Some(3)
            }),
            "{user}"
        );
        assert_eq!(store.holds_seat(key, user).await, Ok(true), "{user}");
    }
    assert_eq!(
        store.claim_seat(key, "u4", SeatLimit::Purchased).await,
        Ok(SeatClaim::LimitReached { used: 3, limit: 3 })
    );
    assert_eq!(store.holds_seat(key, "u4").await, Ok(false));
    assert_eq!(seats_of(store, key).await, users(&["u1", "u2", "u3"]));

    // A fixed limit from the configuration is judged the same way, against
    // the same holders, whatever was bought.
    assert_eq!(
        store.claim_seat(key, "u4", SeatLimit::Fixed(4)).await,
        Ok(SeatClaim::Granted {
            used: 4,
            limit: Some(4)
        })
    );
    assert_eq!(
        store.claim_seat(key, "u5", SeatLimit::Fixed(4)).await,
        Ok(SeatClaim::LimitReached { used: 4, limit: 4 })
    );
    // Other subscriptions are counted apart.
    let other = bought(store, "s2", &cust, 1).await;
    assert_eq!(
        store
            .claim_seat(&other.key, "u1", SeatLimit::Purchased)
            .await,
        Ok(SeatClaim::Granted {
            used: 1,
            limit: Some(1)
        })
    );
    assert_eq!(seats_of(store, &other.key).await, users(&["u1"]));
    assert_eq!(seats_of(store, key).await.len(), 4);
}

pub async fn seat_claims_are_idempotent_per_user(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let sub = bought(store, "s1", &cust, 2).await;
    let key = &sub.key;
    let fixed = SeatLimit::Fixed;
    assert_eq!(
        store.claim_seat(key, "u1", fixed(2)).await,
        Ok(SeatClaim::Granted {
            used: 1,
            limit: Some(2)
        })
    );
    assert_eq!(
        store.claim_seat(key, "u1", fixed(2)).await,
        Ok(SeatClaim::AlreadyHeld {
            used: 1,
            limit: Some(2)
        })
    );
    assert_eq!(
        store.claim_seat(key, "u2", fixed(2)).await,
        Ok(SeatClaim::Granted {
            used: 2,
            limit: Some(2)
        })
    );
    // Holding a seat beats the limit, even one lowered since.
    assert_eq!(
        store.claim_seat(key, "u1", fixed(1)).await,
        Ok(SeatClaim::AlreadyHeld {
            used: 2,
            limit: Some(1)
        })
    );
    assert_eq!(
        store.claim_seat(key, "u3", fixed(2)).await,
        Ok(SeatClaim::LimitReached { used: 2, limit: 2 })
    );

    // One user claiming from many places at once gets one seat.
    let results = race(10, |_| store.claim_seat(key, "u4", fixed(5)));
    let granted = results
        .iter()
        .filter(|r| matches!(r, Ok(SeatClaim::Granted { .. })))
        .count();
    let held = results
        .iter()
        .filter(|r| matches!(r, Ok(SeatClaim::AlreadyHeld { .. })))
        .count();
    assert_eq!((granted, held), (1, 9), "{results:?}");
    assert_eq!(seats_of(store, key).await, users(&["u1", "u2", "u4"]));
}

pub async fn a_released_seat_can_be_claimed_by_another_user(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let sub = bought(store, "s1", &cust, 1).await;
    let key = &sub.key;
    let purchased = SeatLimit::Purchased;
    assert_eq!(
        store.claim_seat(key, "u1", purchased).await,
        Ok(SeatClaim::Granted {
            used: 1,
            limit: Some(1)
        })
    );
    assert_eq!(
        store.claim_seat(key, "u2", purchased).await,
        Ok(SeatClaim::LimitReached { used: 1, limit: 1 })
    );
    assert_eq!(store.release_seat(key, "u1").await, Ok(true));
    assert_eq!(store.holds_seat(key, "u1").await, Ok(false));
    assert_eq!(store.release_seat(key, "u1").await, Ok(false));
    assert_eq!(store.release_seat(key, "never").await, Ok(false));
    assert_eq!(seats_of(store, key).await, BTreeSet::new());
    assert_eq!(
        store.claim_seat(key, "u2", purchased).await,
        Ok(SeatClaim::Granted {
            used: 1,
            limit: Some(1)
        })
    );
    assert_eq!(seats_of(store, key).await, users(&["u2"]));

    // Concurrent releases of one seat free it once.
    let results = race(10, |_| store.release_seat(key, "u2"));
    let freed = results.iter().filter(|r| **r == Ok(true)).count();
    assert_eq!(freed, 1, "{results:?}");
    assert_eq!(seats_of(store, key).await, BTreeSet::new());
}

pub async fn claiming_a_seat_of_a_missing_subscription_is_not_found(store: &dyn Store) {
    let missing = StoreError::NotFound("subscription github:nope".into());
    assert_eq!(
        store
            .claim_seat(&sub_key("nope"), "u1", SeatLimit::Purchased)
            .await,
        Err(missing.clone())
    );
    assert_eq!(
        store
            .claim_seat(&sub_key("nope"), "u1", SeatLimit::Fixed(5))
            .await,
        Err(missing.clone())
    );
    assert_eq!(
        store
            .claim_seat(&sub_key("nope"), "u1", SeatLimit::Fixed(0))
            .await,
        Err(missing),
        "also when there is no seat to give"
    );
    assert_eq!(store.get(&sub_key("nope")).await, Ok(None));
    assert_eq!(store.release_seat(&sub_key("nope"), "u1").await, Ok(false));
    assert_eq!(store.holds_seat(&sub_key("nope"), "u1").await, Ok(false));
    assert_eq!(store.seat_holders(&sub_key("nope")).await, Ok(vec![]));
}

pub async fn commits_keep_seat_holders(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 5).await;
    let key = v1.key.clone();
    let purchased = SeatLimit::Purchased;
    store.claim_seat(&key, "u1", purchased).await.expect("u1");
    store.claim_seat(&key, "u2", purchased).await.expect("u2");
    let read = store.get(&key).await.expect("get").expect("exists");
    assert_eq!(read.seats.used, 2);

    // A seat claimed after the state was read...
    store.claim_seat(&key, "u3", purchased).await.expect("u3");
    // ...survives a commit of that state (which counts only u1 and u2).
    let event = change(&key, &cust, "e2", at(10), 6);
    store
        .commit(&commit_for(Some(&read), &event, at(10)))
        .await
        .expect("commit");
    let after = store.get(&key).await.expect("get").expect("exists");
    assert_eq!(after.version, 2);
    assert_eq!(after.seats.limit, Some(6));
    let all = users(&["u1", "u2", "u3"]);
    assert_eq!(seats_of(store, &key).await, all);

    // A committed state that counts seats of its own does not set the count.
    let mut commit = next_commit(&after, "pro", "e3", at(20));
    if let Some(s) = commit.state.as_mut() {
        s.seats.used = 99;
    }
    store.commit(&commit).await.expect("commit");
    assert_eq!(seats_of(store, &key).await, all);
    // And the count still gates claims: 3 of 6 used, so 3 more fit.
    for user in ["u4", "u5", "u6"] {
        assert!(matches!(
            store.claim_seat(&key, user, purchased).await,
            Ok(SeatClaim::Granted { .. })
        ));
    }
    assert_eq!(
        store.claim_seat(&key, "u7", purchased).await,
        Ok(SeatClaim::LimitReached { used: 6, limit: 6 })
    );
}

pub async fn a_claim_honours_a_limit_lowered_by_a_commit_a_moment_before(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let v1 = bought(store, "s1", &cust, 5).await;
    let key = v1.key.clone();
    let purchased = SeatLimit::Purchased;
    for user in ["u1", "u2", "u3"] {
        store.claim_seat(&key, user, purchased).await.expect(user);
    }
    // The copy a caller decided with: 5 seats, 3 used, room for more.
    let stale = store.get(&key).await.expect("get").expect("exists");
    assert_eq!((stale.seats.limit, stale.seats.used), (Some(5), 3));

    // Downgraded to 2 seats, below the 3 holders.
    let down = change(&key, &cust, "down", at(10), 2);
    store
        .commit(&commit_for(Some(&stale), &down, at(10)))
        .await
        .expect("downgrade");

    // The very next claim is judged against 2, not the 5 of the copy.
    assert_eq!(
        store.claim_seat(&key, "u4", purchased).await,
        Ok(SeatClaim::LimitReached { used: 3, limit: 2 })
    );
    // Holders keep their seats; releasing one still leaves it full.
    assert_eq!(
        store.claim_seat(&key, "u1", purchased).await,
        Ok(SeatClaim::AlreadyHeld {
            used: 3,
            limit: Some(2)
        })
    );
    assert_eq!(store.release_seat(&key, "u1").await, Ok(true));
    assert_eq!(
        store.claim_seat(&key, "u4", purchased).await,
        Ok(SeatClaim::LimitReached { used: 2, limit: 2 })
    );
    assert_eq!(store.release_seat(&key, "u2").await, Ok(true));
    assert_eq!(
        store.claim_seat(&key, "u4", purchased).await,
        Ok(SeatClaim::Granted {
            used: 2,
            limit: Some(2)
        })
    );

    // An upgrade is honoured as promptly.
    let v2 = store.get(&key).await.expect("get").expect("exists");
    let up = change(&key, &cust, "up", at(20), 4);
    store
        .commit(&commit_for(Some(&v2), &up, at(20)))
        .await
        .expect("upgrade");
    assert_eq!(
        store.claim_seat(&key, "u5", purchased).await,
        Ok(SeatClaim::Granted {
            used: 3,
            limit: Some(4)
        })
    );

    // A plan without a unit count puts no limit on purchased seats.
    let v3 = store.get(&key).await.expect("get").expect("exists");
    let flat = event(
        &key,
        &cust,
        "flat",
        at(30),
        EventKind::Changed {
            terms: PlanTerms::new(Plan::new("flat")),
        },
    );
    store
        .commit(&commit_for(Some(&v3), &flat, at(30)))
        .await
        .expect("flat");
    for (i, user) in ["u6", "u7", "u8"].into_iter().enumerate() {
        assert_eq!(
            store.claim_seat(&key, user, purchased).await,
            Ok(SeatClaim::Granted {
                used: 4 + i as u32,
                limit: None
            })
        );
    }
    assert_eq!(
        seats_of(store, &key).await,
        users(&["u3", "u4", "u5", "u6", "u7", "u8"])
    );
}

pub async fn racing_claims_for_the_last_seats_never_exceed_the_limit(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let sub = bought(store, "s1", &cust, 10).await;
    let key = &sub.key;
    for i in 0..8 {
        store
            .claim_seat(key, &format!("early-{i}"), SeatLimit::Purchased)
            .await
            .expect("early");
    }
    // 30 users rush for the last 2 seats.
    let results = race(30, |i| async move {
        store
            .claim_seat(key, &format!("late-{i:02}"), SeatLimit::Purchased)
            .await
            .expect("claim")
    });
    let mut granted = BTreeSet::new();
    for (i, r) in results.iter().enumerate() {
        match r {
            SeatClaim::Granted { used, limit } => {
                assert!((9..=10).contains(used) && *limit == Some(10), "{r:?}");
                granted.insert(format!("late-{i:02}"));
            }
            SeatClaim::LimitReached { used, limit } => assert_eq!((*used, *limit), (10, 10)),
            SeatClaim::AlreadyHeld { .. } => panic!("distinct users: {r:?}"),
        }
    }
    assert_eq!(granted.len(), 2, "{results:?}");
    let held = seats_of(store, key).await;
    assert_eq!(held.len(), 10);
    assert!(granted.is_subset(&held));

    // Holders leaving while others rush in: whatever the interleaving, a
    // claim only ever takes a seat that is free.
    let results = race(12, |i| async move {
        if i < 2 {
            let released = store.release_seat(key, &format!("early-{i}")).await;
            assert_eq!(released, Ok(true));
            false
        } else {
            let claim = store
                .claim_seat(key, &format!("rush-{i:02}"), SeatLimit::Purchased)
                .await
                .expect("claim");
            assert!(
                matches!(
                    claim,
                    SeatClaim::Granted { used: 9..=10, .. }
                        | SeatClaim::LimitReached { used: 9..=10, .. }
                ),
                "{claim:?}"
            );
            matches!(claim, SeatClaim::Granted { .. })
        }
    });
    let rushed_in = results.iter().filter(|granted| **granted).count();
    assert!(rushed_in <= 2, "{results:?}");
    assert_eq!(seats_of(store, key).await.len(), 8 + rushed_in);
}

pub async fn claims_racing_commits_keep_the_count(store: &dyn Store) {
    const CLAIMS: usize = 12;
    const CHANGES: usize = 8;
    let cust = customer(Marketplace::Github, "100");
    let sub = bought(store, "s1", &cust, 100).await;
    let key = &sub.key;
    // Seat changes that never go below the claims: every claim fits.
    let events: Vec<MarketEvent> = (0..CHANGES)
        .map(|i| change(key, &cust, &format!("chg-{i}"), at(100), 50 + i as u32))
        .collect();
    let results = race(CLAIMS + CHANGES, |i| {
        let events = &events;
        async move {
            if i < CLAIMS {
                match store
                    .claim_seat(key, &format!("u{i:02}"), SeatLimit::Purchased)
                    .await
                {
                    Ok(SeatClaim::Granted { .. }) => Ok(()),
                    other => Err(format!("claim {i}: {other:?}")),
                }
            } else {
                match ingest::ingest(store, &events[i - CLAIMS], at(100)).await {
                    Ok(Ingested::Committed(_)) => Ok(()),
                    other => Err(format!("change {i}: {other:?}")),
                }
            }
        }
    });
    for r in &results {
        assert_eq!(r, &Ok(()));
    }
    let state = store.get(key).await.expect("get").expect("exists");
    assert_eq!(state.version, 1 + CHANGES as u64, "every change committed");
    let held = seats_of(store, key).await;
    assert_eq!(held.len(), CLAIMS, "no commit reset or rewrote the count");
}

/// A seat holder id of exactly `len` bytes, unique for `i`, sorting like `i`.
pub fn long_user_id(i: usize, len: usize) -> String {
    let head = format!("{i:06}-");
    format!("{head}{}", "x".repeat(len.saturating_sub(head.len())))
}

/// More holders, of the longest ids the API accepts, than one DynamoDB item
/// (400 KB) could list: 820 × 512 B = 410 KB. Claimed one by one through
/// the store, so kept as small as that allows (moto copies the table for
/// every transaction); the DynamoDB tests also seed 3,000 holders of 200 B.
pub const OVER_ONE_ITEM: usize = 400 * 1024 / MAX_ID_BYTES + 20;

pub async fn more_holders_than_one_item_could_list_do_not_stop_commits(store: &dyn Store) {
    let cust = customer(Marketplace::Github, "100");
    let sub = bought(store, "s1", &cust, OVER_ONE_ITEM as u32).await;
    let key = &sub.key;
    let id = |i: usize| long_user_id(i, MAX_ID_BYTES);
    const { assert!(OVER_ONE_ITEM * MAX_ID_BYTES > 400 * 1024) };

    // Claimed 8 at a time, so the suite does not take all day.
    const LANES: usize = 8;
    let lanes = race(LANES, |lane| async move {
        for i in (lane..OVER_ONE_ITEM).step_by(LANES) {
            match store.claim_seat(key, &id(i), SeatLimit::Purchased).await {
                Ok(SeatClaim::Granted { .. }) => {}
                other => return Err(format!("claim {i}: {other:?}")),
            }
        }
        Ok(())
    });
    assert!(lanes.iter().all(Result::is_ok), "{lanes:?}");
    let all = OVER_ONE_ITEM as u32;
    assert_eq!(
        store
            .claim_seat(key, "one-too-many", SeatLimit::Purchased)
            .await,
        Ok(SeatClaim::LimitReached {
            used: all,
            limit: all
        })
    );
    seats_survive_a_downgrade_and_a_cancellation(store, &cust, key, OVER_ONE_ITEM).await;
    let holders = store.seat_holders(key).await.expect("holders");
    assert_eq!(holders, (0..OVER_ONE_ITEM).map(id).collect::<Vec<_>>());
}

/// Commits a plan change down to 10 seats, then a cancellation, on a
/// subscription whose `holders` seats are all taken; both must commit and
/// leave the holders in place. Shared with the DynamoDB tests, which seed
/// their holders.
pub async fn seats_survive_a_downgrade_and_a_cancellation(
    store: &dyn Store,
    cust: &Customer,
    key: &SubscriptionKey,
    holders: usize,
) {
    let v1 = store.get(key).await.expect("get").expect("exists");
    assert_eq!(v1.seats.used as usize, holders);
    let down = change(key, cust, "down", at(10), 10);
    store
        .commit(&commit_for(Some(&v1), &down, at(10)))
        .await
        .expect("a plan change commits");
    let v2 = store.get(key).await.expect("get").expect("exists");
    let cancel = event(
        key,
        cust,
        "cancel",
        at(20),
        EventKind::Cancelled {
            plan: None,
            access_until: Some(at(30 * 86_400)),
        },
    );
    store
        .commit(&commit_for(Some(&v2), &cancel, at(20)))
        .await
        .expect("the cancellation commits");

    let v3 = store.get(key).await.expect("get").expect("exists");
    assert_eq!(v3.version, v1.version + 2);
    assert_eq!(v3.status, Status::PendingCancellation);
    assert_eq!(v3.seats.limit, Some(10));
    assert_eq!(v3.seats.used as usize, holders, "holders keep their seats");
    let listed = store.customer_subscriptions(&cust.key).await.expect("list");
    assert_eq!(listed, vec![v3]);
    assert_eq!(
        store.claim_seat(key, "late", SeatLimit::Purchased).await,
        Ok(SeatClaim::LimitReached {
            used: holders as u32,
            limit: 10
        })
    );
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

/// A token of `kind` expiring at `expires_at`.
fn token(kind: &str, id: &str, payload: &str, expires_at: DateTime<Utc>) -> Token {
    Token {
        kind: kind.into(),
        id: id.into(),
        payload: payload.into(),
        expires_at,
    }
}

pub async fn a_token_is_single_use(store: &dyn Store) {
    let state = token("oauth_state", "st-1", "{\"return\":\"/\"}", at(3600));
    store.put_token(&state, at(0)).await.expect("put");
    assert_eq!(
        store.take_token("oauth_state", "st-1", at(60)).await,
        Ok(Some(state.payload.clone()))
    );
    assert_eq!(
        store.take_token("oauth_state", "st-1", at(61)).await,
        Ok(None)
    );
    assert_eq!(
        store.take_token("oauth_state", "never", at(61)).await,
        Ok(None)
    );

    // Kinds are separate namespaces.
    store
        .put_token(&token("gcp_signup_jti", "st-1", "jti", at(3600)), at(70))
        .await
        .expect("put");
    assert_eq!(
        store.take_token("oauth_state", "st-1", at(80)).await,
        Ok(None)
    );
    assert_eq!(
        store.take_token("gcp_signup_jti", "st-1", at(80)).await,
        Ok(Some("jti".into()))
    );
}

pub async fn an_expired_token_is_not_taken(store: &dyn Store) {
    let expiring = token("oauth_state", "st-1", "p", at(600));
    store.put_token(&expiring, at(0)).await.expect("put");
    assert_eq!(
        store.take_token("oauth_state", "st-1", at(600)).await,
        Ok(None),
        "expires_at <= now is expired"
    );
    assert_eq!(
        store.take_token("oauth_state", "st-1", at(660)).await,
        Ok(None)
    );
    store
        .put_token(&token("oauth_state", "st-2", "q", at(600)), at(0))
        .await
        .expect("put");
    assert_eq!(
        store.take_token("oauth_state", "st-2", at(599)).await,
        Ok(Some("q".into()))
    );
}

/// Peeking reads a live token's payload and leaves it in place (the
/// pipeline reads who holds a content claim this way); an expired, taken
/// or unknown token, or another kind, reads as none.
pub async fn a_peeked_token_stays_until_taken(store: &dyn Store) {
    let claim = token("content_github", "digest-1", "delivery-1", at(600));
    store.put_token(&claim, at(0)).await.expect("put");
    for now in [at(1), at(599)] {
        assert_eq!(
            store.peek_token("content_github", "digest-1", now).await,
            Ok(Some("delivery-1".into()))
        );
    }
    assert_eq!(
        store
            .peek_token("content_github", "digest-1", at(600))
            .await,
        Ok(None),
        "expires_at <= now is expired"
    );
    assert_eq!(
        store.peek_token("content_q2", "digest-1", at(1)).await,
        Ok(None)
    );
    assert_eq!(
        store.peek_token("content_github", "never", at(1)).await,
        Ok(None)
    );
    assert_eq!(
        store.take_token("content_github", "digest-1", at(2)).await,
        Ok(Some("delivery-1".into())),
        "peeking took the token"
    );
    assert_eq!(
        store.peek_token("content_github", "digest-1", at(3)).await,
        Ok(None)
    );
}

pub async fn concurrent_takes_of_a_token_have_one_winner(store: &dyn Store) {
    let once = token("oauth_state", "st-1", "once", at(3600));
    store.put_token(&once, at(0)).await.expect("put");
    let results = race(10, |_| store.take_token("oauth_state", "st-1", at(60)));
    let won: Vec<_> = results
        .iter()
        .filter(|r| matches!(r, Ok(Some(_))))
        .collect();
    assert_eq!(won, [&Ok(Some("once".to_owned()))], "{results:?}");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
}

pub async fn putting_a_live_token_twice_is_duplicate(store: &dyn Store) {
    let first = token("oauth_state", "st-1", "first", at(3600));
    store.put_token(&first, at(0)).await.expect("put");
    assert!(matches!(
        store
            .put_token(&token("oauth_state", "st-1", "second", at(7200)), at(10))
            .await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(
        store.take_token("oauth_state", "st-1", at(60)).await,
        Ok(Some("first".into()))
    );

    // An expired token may be replaced.
    store
        .put_token(&token("oauth_state", "st-2", "stale", at(100)), at(0))
        .await
        .expect("put");
    store
        .put_token(&token("oauth_state", "st-2", "fresh", at(3600)), at(200))
        .await
        .expect("replace expired");
    assert_eq!(
        store.take_token("oauth_state", "st-2", at(250)).await,
        Ok(Some("fresh".into()))
    );
}

/// Liveness at `put_token` is judged by the `now` passed, never by the
/// system clock: the times here are decades before and after any plausible
/// clock, so a store that asked the clock would get both halves wrong.
pub async fn token_liveness_is_judged_by_the_now_passed(store: &dyn Store) {
    let past = DateTime::parse_from_rfc3339("1980-01-01T00:00:00Z")
        .expect("valid time")
        .with_timezone(&Utc);
    let hours = |h: i64| Duration::hours(h);

    // Long expired by the clock, live at the `now` given: a duplicate.
    store
        .put_token(&token("oauth_state", "old", "first", past + hours(1)), past)
        .await
        .expect("put");
    assert!(matches!(
        store
            .put_token(
                &token("oauth_state", "old", "second", past + hours(3)),
                past + hours(1) - Duration::nanoseconds(1)
            )
            .await,
        Err(StoreError::Duplicate(_))
    ));
    // Expired at the `now` given (expires_at <= now): replaced.
    store
        .put_token(
            &token("oauth_state", "old", "third", past + hours(3)),
            past + hours(1),
        )
        .await
        .expect("an expired token is replaced");
    assert_eq!(
        store
            .take_token("oauth_state", "old", past + hours(2))
            .await,
        Ok(Some("third".into()))
    );

    // Live by the clock for a long while yet, expired at the `now` given.
    let future = past + Duration::days(220 * 365);
    store
        .put_token(
            &token("oauth_state", "new", "first", future + hours(1)),
            future,
        )
        .await
        .expect("put");
    store
        .put_token(
            &token("oauth_state", "new", "second", future + hours(3)),
            future + hours(2),
        )
        .await
        .expect("an expired token is replaced");
    assert_eq!(
        store
            .take_token("oauth_state", "new", future + hours(2))
            .await,
        Ok(Some("second".into()))
    );
}

/// A token id may be a secret (an OAuth `state`): the duplicate error names
/// the kind but never the id, since errors reach logs and responses.
pub async fn a_duplicate_token_error_never_contains_the_token_id(store: &dyn Store) {
    let id = "s3cr3t-7f3a9c0e";
    store
        .put_token(&token("oauth_state", id, "p", at(3600)), at(0))
        .await
        .expect("put");
    let err = store
        .put_token(&token("oauth_state", id, "q", at(3600)), at(1))
        .await
        .expect_err("a live token with this id exists");
    let StoreError::Duplicate(message) = &err else {
        panic!("expected a duplicate, got {err:?}");
    };
    assert!(message.contains("oauth_state"), "{message}");
    for shown in [message.clone(), err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(id), "the token id leaks: {shown}");
    }
}

/// Token kinds are namespaces and may not contain `#` (DynamoDB's keys
/// separate kind and id with it); ids may.
pub async fn a_token_kind_containing_a_hash_is_refused(store: &dyn Store) {
    assert!(matches!(
        store
            .put_token(&token("oauth#state", "st-1", "p", at(3600)), at(0))
            .await,
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(
        store.take_token("oauth#state", "st-1", at(1)).await,
        Err(StoreError::Backend(_))
    ));
    store
        .put_token(&token("oauth", "state#st-1", "p", at(3600)), at(0))
        .await
        .expect("a `#` in an id is fine");
    assert_eq!(
        store.take_token("oauth", "state#st-1", at(1)).await,
        Ok(Some("p".into()))
    );
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

/// A link written at `at(secs)` that lives `ttl` seconds.
pub fn link(customer: &CustomerKey, secs: i64, ttl: i64) -> UserLink {
    UserLink::new(customer.clone(), at(secs), Duration::seconds(ttl))
}

async fn linked(store: &dyn Store, user: &AppUser, now: DateTime<Utc>) -> Vec<CustomerKey> {
    store
        .user_links(user, now)
        .await
        .expect("user links")
        .into_iter()
        .map(|l| l.customer)
        .collect()
}

pub async fn link_user_is_idempotent_and_lists_linked_customers(store: &dyn Store) {
    let alice = AppUser("github:1".into());
    let bob = AppUser("github:2".into());
    let a = CustomerKey::new(Marketplace::Github, "100");
    let b = CustomerKey::new(Marketplace::Gcp, "acct-1");
    assert_eq!(store.user_links(&alice, at(0)).await, Ok(vec![]));

    store
        .link_user(&alice, &link(&a, 0, 60))
        .await
        .expect("link");
    store
        .link_user(&alice, &link(&a, 0, 60))
        .await
        .expect("link again");
    store
        .link_user(&alice, &link(&b, 1, 60))
        .await
        .expect("link b");
    store
        .link_user(&bob, &link(&a, 2, 60))
        .await
        .expect("link bob");

    // Key order: marketplace (`gcp` < `github`), then id; every field kept.
    assert_eq!(
        store.user_links(&alice, at(3)).await,
        Ok(vec![link(&b, 1, 60), link(&a, 0, 60)])
    );
    assert_eq!(
        store.user_links(&bob, at(3)).await,
        Ok(vec![link(&a, 2, 60)])
    );
    assert_eq!(
        store.user_links(&AppUser("github:3".into()), at(3)).await,
        Ok(vec![])
    );
}

pub async fn an_expired_link_grants_nothing_and_linking_again_renews_it(store: &dyn Store) {
    let user = AppUser("google:gaia-1".into());
    let a = CustomerKey::new(Marketplace::Gcp, "acct-1");
    let b = CustomerKey::new(Marketplace::Gcp, "acct-2");
    store
        .link_user(&user, &link(&a, 0, 100))
        .await
        .expect("link a");
    store
        .link_user(&user, &link(&b, 0, 500))
        .await
        .expect("link b");
    assert_eq!(linked(store, &user, at(99)).await, [a.clone(), b.clone()]);
    // `expires_at <= now` is expired, judged by the `now` passed.
    assert_eq!(
        linked(store, &user, at(100)).await,
        std::slice::from_ref(&b)
    );
    assert_eq!(linked(store, &user, at(99)).await, [a.clone(), b.clone()]);
    // Linking again (another sign-in) renews it; it never shortens by
    // being read.
    store
        .link_user(&user, &link(&a, 200, 100))
        .await
        .expect("renew a");
    assert_eq!(
        store.user_links(&user, at(250)).await,
        Ok(vec![link(&a, 200, 100), link(&b, 0, 500)])
    );
    assert_eq!(linked(store, &user, at(300)).await, [b]);
}

pub async fn replace_links_makes_a_marketplaces_links_exactly_the_new_set(store: &dyn Store) {
    let alice = AppUser("github:1".into());
    let bob = AppUser("github:2".into());
    let gh = |id: &str| CustomerKey::new(Marketplace::Github, id);
    let gcp = CustomerKey::new(Marketplace::Gcp, "acct-1");
    for c in [gh("1"), gh("2")] {
        store
            .link_user(&alice, &link(&c, 0, 500))
            .await
            .expect("link");
    }
    store
        .link_user(&alice, &link(&gh("9"), 0, 50))
        .await
        .expect("9");
    store
        .link_user(&alice, &link(&gcp, 0, 500))
        .await
        .expect("gcp");
    store
        .link_user(&bob, &link(&gh("1"), 0, 500))
        .await
        .expect("bob");

    // Org 1 left, org 2 kept (renewed), org 3 joined; org 9's link had
    // expired anyway.
    store
        .replace_links(
            &alice,
            Marketplace::Github,
            &[link(&gh("2"), 60, 100), link(&gh("3"), 60, 100)],
            at(60),
        )
        .await
        .expect("replace");
    assert_eq!(
        store.user_links(&alice, at(61)).await,
        Ok(vec![
            link(&gcp, 0, 500),
            link(&gh("2"), 60, 100),
            link(&gh("3"), 60, 100)
        ])
    );
    assert_eq!(
        linked(store, &bob, at(61)).await,
        [gh("1")],
        "another user's links stay"
    );

    // GitHub lists nothing any more: every GitHub link goes, Google's stays.
    store
        .replace_links(&alice, Marketplace::Github, &[], at(80))
        .await
        .expect("replace with nothing");
    assert_eq!(linked(store, &alice, at(81)).await, [gcp]);
}

pub async fn replace_links_refuses_a_link_to_another_marketplace_and_writes_nothing(
    store: &dyn Store,
) {
    let user = AppUser("github:1".into());
    let kept = CustomerKey::new(Marketplace::Github, "1");
    store
        .link_user(&user, &link(&kept, 0, 100))
        .await
        .expect("link");
    let wrong = [
        link(&CustomerKey::new(Marketplace::Github, "2"), 10, 100),
        link(&CustomerKey::new(Marketplace::Q2, "fi:u"), 10, 100),
    ];
    assert!(matches!(
        store
            .replace_links(&user, Marketplace::Github, &wrong, at(10))
            .await,
        Err(StoreError::Backend(_))
    ));
    assert_eq!(linked(store, &user, at(11)).await, [kept]);
}

/// The promise of `replace_links`: whatever moment a check reads at, it
/// sees a subset of the old set or of the new one, never more (a user who
/// left org 1 while joining org 6 never holds both).
pub async fn readers_racing_a_replace_never_see_more_than_the_old_or_the_new_set(
    store: &dyn Store,
) {
    let user = AppUser("github:1".into());
    let gh = |id: usize| CustomerKey::new(Marketplace::Github, id.to_string());
    let old: BTreeSet<CustomerKey> = (1..=5).map(gh).collect();
    let new: BTreeSet<CustomerKey> = (6..=10).map(gh).collect();
    for c in &old {
        store
            .link_user(&user, &link(c, 0, 1000))
            .await
            .expect("link");
    }
    let new_links: Vec<UserLink> = new.iter().map(|c| link(c, 10, 1000)).collect();
    let seen = race(4, |i| {
        let new_links = &new_links;
        let user = &user;
        async move {
            if i == 0 {
                store
                    .replace_links(user, Marketplace::Github, new_links, at(10))
                    .await
                    .expect("replace");
                return Vec::new();
            }
            let mut reads = Vec::new();
            for _ in 0..15 {
                let now: BTreeSet<CustomerKey> =
                    linked(store, user, at(11)).await.into_iter().collect();
                reads.push(now);
            }
            reads
        }
    });
    for read in seen.into_iter().flatten() {
        assert!(
            read.is_subset(&old) || read.is_subset(&new),
            "a reader saw {read:?}: more than the old or the new set"
        );
    }
    assert_eq!(
        linked(store, &user, at(11)).await,
        new.into_iter().collect::<Vec<_>>()
    );
}

pub async fn unlink_user_removes_a_live_link_once_and_nothing_else(store: &dyn Store) {
    let alice = AppUser("github:1".into());
    let bob = AppUser("github:2".into());
    let a = CustomerKey::new(Marketplace::Github, "1");
    let b = CustomerKey::new(Marketplace::Github, "2");
    store.link_user(&alice, &link(&a, 0, 100)).await.expect("a");
    store.link_user(&alice, &link(&b, 0, 100)).await.expect("b");
    store.link_user(&bob, &link(&a, 0, 100)).await.expect("bob");

    assert_eq!(store.unlink_user(&alice, &a, at(10)).await, Ok(true));
    assert_eq!(store.unlink_user(&alice, &a, at(10)).await, Ok(false));
    assert_eq!(
        store
            .unlink_user(&alice, &CustomerKey::new(Marketplace::Gcp, "1"), at(10))
            .await,
        Ok(false)
    );
    assert_eq!(
        linked(store, &alice, at(10)).await,
        std::slice::from_ref(&b)
    );
    assert_eq!(linked(store, &bob, at(10)).await, [a]);
    // An expired link granted nothing: removing it reports nothing removed.
    assert_eq!(store.unlink_user(&alice, &b, at(100)).await, Ok(false));
    assert_eq!(linked(store, &alice, at(10)).await, []);
}

// ---------------------------------------------------------------------------
// Capped groups (Q2: a product's users per financial institution)
// ---------------------------------------------------------------------------

pub fn group(institution: &str) -> GroupKey {
    GroupKey::new(Marketplace::Q2, "budget-helper", institution)
}

fn members(places: &[Enrollment]) -> Vec<(&str, &str)> {
    places
        .iter()
        .map(|e| (e.member.as_str(), e.subscription.as_str()))
        .collect()
}

pub async fn enrollment_is_idempotent_per_member_and_subscription(store: &dyn Store) {
    let g = group("fi-1");
    assert_eq!(store.enrollment(&g, "u1").await, Ok(None));
    assert_eq!(
        store.enroll(&g, "u1", "s1", Some(2), at(0)).await,
        Ok(Enrolled::New)
    );
    assert_eq!(
        store.enroll(&g, "u1", "s1", Some(2), at(5)).await,
        Ok(Enrolled::Already)
    );
    assert_eq!(
        store.enrollment(&g, "u1").await,
        Ok(Some(Enrollment {
            member: "u1".into(),
            subscription: "s1".into(),
            since: at(0),
        }))
    );
    // Enrolling again took no second place: one more member still fits.
    assert_eq!(
        store.enroll(&g, "u2", "s2", Some(2), at(1)).await,
        Ok(Enrolled::New)
    );
}

pub async fn a_member_held_for_another_subscription_is_reported_with_its_holder(store: &dyn Store) {
    let g = group("fi-1");
    store
        .enroll(&g, "u1", "s1", None, at(0))
        .await
        .expect("enroll");
    assert_eq!(
        store.enroll(&g, "u1", "s2", None, at(1)).await,
        Ok(Enrolled::HeldBy(Enrollment {
            member: "u1".into(),
            subscription: "s1".into(),
            since: at(0),
        }))
    );
    assert_eq!(
        members(&store.enrollments(&g).await.expect("list")),
        [("u1", "s1")]
    );
}

pub async fn a_full_group_refuses_new_members_but_not_its_own(store: &dyn Store) {
    let g = group("fi-1");
    for (u, sub) in [("u1", "s1"), ("u2", "s2")] {
        assert_eq!(
            store.enroll(&g, u, sub, Some(2), at(0)).await,
            Ok(Enrolled::New)
        );
    }
    assert_eq!(
        store.enroll(&g, "u3", "s3", Some(2), at(1)).await,
        Ok(Enrolled::Full { cap: 2 })
    );
    assert_eq!(
        store.enroll(&g, "u1", "s1", Some(2), at(1)).await,
        Ok(Enrolled::Already),
        "a redelivered order of a member is not refused by the cap"
    );
    assert_eq!(store.enrollment(&g, "u3").await, Ok(None));
    // A lower cap than the members already there refuses, never evicts.
    assert_eq!(
        store.enroll(&g, "u3", "s3", Some(1), at(1)).await,
        Ok(Enrolled::Full { cap: 1 })
    );
    assert_eq!(store.enrollments(&g).await.expect("list").len(), 2);
}

pub async fn a_cap_of_zero_admits_nobody_and_no_cap_admits_everybody(store: &dyn Store) {
    let g = group("fi-1");
    assert_eq!(
        store.enroll(&g, "u1", "s1", Some(0), at(0)).await,
        Ok(Enrolled::Full { cap: 0 })
    );
    assert_eq!(store.enrollments(&g).await, Ok(vec![]));
    for i in 0..12 {
        assert_eq!(
            store
                .enroll(&g, &format!("u{i:02}"), &format!("s{i}"), None, at(0))
                .await,
            Ok(Enrolled::New)
        );
    }
    assert_eq!(store.enrollments(&g).await.expect("list").len(), 12);
}

pub async fn the_cap_holds_under_30_concurrent_enrollments(store: &dyn Store) {
    let g = &group("fi-1");
    let results = race(30, |i| async move {
        store
            .enroll(
                g,
                &format!("user-{i:02}"),
                &format!("sub-{i:02}"),
                Some(7),
                at(0),
            )
            .await
            .expect("enroll")
    });
    let mut admitted = Vec::new();
    for (i, r) in results.iter().enumerate() {
        match r {
            Enrolled::New => admitted.push(format!("user-{i:02}")),
            Enrolled::Full { cap } => assert_eq!(*cap, 7),
            other => panic!("distinct members: {other:?}"),
        }
    }
    assert_eq!(admitted.len(), 7, "{results:?}");
    let listed: Vec<String> = store
        .enrollments(g)
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.member)
        .collect();
    assert_eq!(listed, admitted);
    // The count agrees with the members: leaving frees exactly one place.
    assert_eq!(
        store.enroll(g, "late", "sub-late", Some(7), at(1)).await,
        Ok(Enrolled::Full { cap: 7 })
    );
    let leaver = &admitted[0];
    let leaver_sub = leaver.replace("user", "sub");
    assert_eq!(store.unenroll(g, leaver, &leaver_sub).await, Ok(true));
    assert_eq!(
        store.enroll(g, "late", "sub-late", Some(7), at(1)).await,
        Ok(Enrolled::New)
    );
}

pub async fn concurrent_enrollments_of_one_member_for_different_subscriptions_have_one_winner(
    store: &dyn Store,
) {
    let g = &group("fi-1");
    let results = race(12, |i| async move {
        store
            .enroll(g, "u1", &format!("sub-{i:02}"), Some(5), at(0))
            .await
            .expect("enroll")
    });
    let winners: Vec<usize> = (0..results.len())
        .filter(|i| results[*i] == Enrolled::New)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = format!("sub-{:02}", winners[0]);
    for r in &results {
        match r {
            Enrolled::New => {}
            Enrolled::HeldBy(held) => assert_eq!(held.subscription, winner),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        members(&store.enrollments(g).await.expect("list")),
        [("u1", winner.as_str())]
    );
}

pub async fn unenroll_frees_a_place_only_for_its_holding_subscription(store: &dyn Store) {
    let g = group("fi-1");
    store
        .enroll(&g, "u1", "s1", Some(1), at(0))
        .await
        .expect("enroll");
    assert_eq!(store.unenroll(&g, "u1", "s-other").await, Ok(false));
    assert_eq!(store.unenroll(&g, "nobody", "s1").await, Ok(false));
    assert_eq!(
        store.enroll(&g, "u2", "s2", Some(1), at(1)).await,
        Ok(Enrolled::Full { cap: 1 })
    );
    assert_eq!(store.unenroll(&g, "u1", "s1").await, Ok(true));
    assert_eq!(store.unenroll(&g, "u1", "s1").await, Ok(false), "once");
    assert_eq!(store.enrollment(&g, "u1").await, Ok(None));
    assert_eq!(
        store.enroll(&g, "u2", "s2", Some(1), at(1)).await,
        Ok(Enrolled::New)
    );
}

pub async fn a_transfer_moves_a_place_only_from_its_holder_and_keeps_the_count(store: &dyn Store) {
    let g = group("fi-1");
    store
        .enroll(&g, "u1", "s1", Some(2), at(0))
        .await
        .expect("enroll");
    store
        .enroll(&g, "u2", "s2", Some(2), at(0))
        .await
        .expect("enroll");
    assert_eq!(
        store
            .transfer_enrollment(&g, "u1", "s-wrong", "s9", at(3))
            .await,
        Ok(false)
    );
    assert_eq!(
        store
            .transfer_enrollment(&g, "nobody", "s1", "s9", at(3))
            .await,
        Ok(false)
    );
    assert_eq!(
        store.transfer_enrollment(&g, "u1", "s1", "s9", at(3)).await,
        Ok(true)
    );
    assert_eq!(
        store.enrollment(&g, "u1").await,
        Ok(Some(Enrollment {
            member: "u1".into(),
            subscription: "s9".into(),
            since: at(3),
        }))
    );
    assert_eq!(
        store.enroll(&g, "u3", "s3", Some(2), at(4)).await,
        Ok(Enrolled::Full { cap: 2 }),
        "a transfer takes no extra place"
    );
    assert_eq!(store.unenroll(&g, "u1", "s9").await, Ok(true));
    assert_eq!(
        store.enroll(&g, "u3", "s3", Some(2), at(4)).await,
        Ok(Enrolled::New),
        "nor leaves one behind"
    );
}

pub async fn groups_are_counted_apart_by_institution_product_and_marketplace(store: &dyn Store) {
    let groups = [
        group("fi-1"),
        group("fi-2"),
        GroupKey::new(Marketplace::Q2, "other-product", "fi-1"),
        GroupKey::new(Marketplace::Gcp, "budget-helper", "fi-1"),
        // An institution whose name has the key separator in it.
        group("fi-1#x"),
    ];
    for g in &groups {
        assert_eq!(
            store.enroll(g, "u1", "s1", Some(1), at(0)).await,
            Ok(Enrolled::New),
            "{g}"
        );
    }
    for g in &groups {
        assert_eq!(
            members(&store.enrollments(g).await.expect("list")),
            [("u1", "s1")],
            "{g}"
        );
    }
}

pub async fn a_group_product_containing_a_hash_is_refused(store: &dyn Store) {
    let g = GroupKey::new(Marketplace::Q2, "a#b", "fi");
    assert!(matches!(
        store.enroll(&g, "u", "s", None, at(0)).await,
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(
        store.enrollments(&g).await,
        Err(StoreError::Backend(_))
    ));
}
