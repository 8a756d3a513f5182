//! Change notifications: the outbox is written in the commit's own
//! transaction (SQLite and DynamoDB on moto), and the sender delivers from
//! it at least once — signed, same `webhook-id` on every attempt, backing
//! off, dead-lettering after the last attempt or a refusal, replaying dead
//! letters — with nothing lost to a crash or a receiver that is down.
//!
//! The receiver is a scripted [`Transport`] and time a [`FixedClock`]:
//! nothing sleeps. The signatures are checked here with the core's own
//! verifier; `notify_standard_webhooks.rs` checks them with an independent
//! implementation of the specification.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use tollgate::clock::FixedClock;
use tollgate::config::Catalog;
use tollgate::ingest::{self, Ingested};
use tollgate::model::{Customer, EventKind, MarketEvent, Marketplace, Status};
use tollgate::notify::spec::{Notification, SigningKey, verify};
use tollgate::notify::{Answer, Sender, Transport};
use tollgate::secret::Secrets;
use tollgate::store::sqlite::SqliteStore;
use tollgate::store::{Commit, DeadLetter, EventLedger, Outbox, StoreError};
use tollgate_tests::conformance::{at, customer, event, purchase, sub_key};

const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGhlLWFwcA==";

fn config(endpoints: &str) -> Arc<Catalog> {
    let text = format!(
        r#"
[products.acme-ci]
name = "Acme CI"
[products.acme-ci.tiers.team]
features = ["private-repos"]
seats = "purchased"
[products.acme-ci.plans.github]
team = "team"

{endpoints}
"#
    );
    Arc::new(Catalog::parse(&text, Path::new("tollgate.toml")).expect("config"))
}

const ONE_ENDPOINT: &str = r#"
[[notifications.endpoints]]
name = "app"
url = "https://app.example/hooks"
secret = "notify_app"

[notifications.retry]
max_attempts = 3
"#;

fn secrets() -> Secrets {
    Secrets::from_pairs([("notify_app", SECRET)])
}

/// One POST the sender made.
#[derive(Debug, Clone)]
struct Sent {
    url: String,
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

/// A receiver that answers from a script (then 200), and records.
#[derive(Default)]
struct Receiver {
    script: Mutex<VecDeque<Answer>>,
    sent: Mutex<Vec<Sent>>,
}

impl Receiver {
    fn answering(answers: impl IntoIterator<Item = Answer>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(answers.into_iter().collect()),
            sent: Mutex::default(),
        })
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Transport for Receiver {
    async fn post(&self, url: &str, headers: &[(&'static str, String)], body: &[u8]) -> Answer {
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        self.sent.lock().unwrap().push(Sent {
            url: url.to_owned(),
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body: body.to_vec(),
        });
        self.script.lock().unwrap().pop_front().unwrap_or(Ok(200))
    }
}

fn sender<O: Outbox + 'static>(
    outbox: Arc<O>,
    catalog: Arc<Catalog>,
    receiver: Arc<Receiver>,
    clock: Arc<FixedClock>,
) -> Sender {
    Sender::new(outbox, catalog, &secrets(), receiver, clock)
        .expect("sender")
        // A fixed draw: every wait is this many milliseconds modulo its cap.
        .with_random(Arc::new(|| 7_777_777))
}

fn acme() -> Customer {
    customer(Marketplace::Github, "acme")
}

fn buy(id: &str, secs: i64) -> MarketEvent {
    purchase(&sub_key("s1"), &acme(), id, at(secs), 5)
}

async fn apply<S: EventLedger + ?Sized>(store: &S, e: &MarketEvent, now: DateTime<Utc>) {
    match ingest::ingest(store, e, now).await.expect("ingest") {
        Ingested::Committed(_) => {}
        Ingested::Duplicate => panic!("{} was a duplicate", e.id),
    }
}

fn signed_by(sent: &Sent, key: &str, now: DateTime<Utc>) -> bool {
    let key = SigningKey::parse(key).unwrap();
    verify(
        &[key],
        &sent.id,
        &sent.timestamp,
        &sent.signature,
        &sent.body,
        now,
    )
    .is_ok()
}

// ---------------------------------------------------------------------------
// The outbox, on both stores
// ---------------------------------------------------------------------------

/// A commit that applies a change writes exactly one outbox entry with it;
/// a log-only commit, a duplicate and a refused commit write none; settling
/// is conditional on the entry's version; dead letters round-trip.
async fn outbox_is_written_with_the_commit<S: EventLedger + Outbox>(store: &S) {
    let first = buy("e1", 10);
    apply(store, &first, at(10)).await;
    let due = store.due_notifications(at(10), 10).await.unwrap();
    assert_eq!(due.len(), 1, "one entry per applied change");
    let entry = &due[0];
    assert_eq!(entry.log.event_id, "e1");
    assert_eq!(entry.state.version, 1);
    assert_eq!(entry.state.status, Status::Active);
    assert_eq!(entry.due_at, at(10));
    assert!(entry.id.starts_with("msg_"), "{}", entry.id);
    assert!(
        store.due_notifications(at(9), 10).await.unwrap().is_empty(),
        "not due before it was committed"
    );

    // The same delivery again changes nothing, and writes nothing.
    assert_eq!(
        ingest::ingest(store, &first, at(11)).await.unwrap(),
        Ingested::Duplicate
    );
    // An event that is only logged writes no entry.
    let unknown = event(
        &sub_key("s1"),
        &acme(),
        "e2",
        at(12),
        EventKind::Unknown {
            name: "mystery".into(),
        },
    );
    apply(store, &unknown, at(12)).await;
    // A commit refused on its version writes nothing at all.
    let stale = Commit {
        subscription: sub_key("s1"),
        expected_version: 0,
        state: Some(entry.state.clone()),
        log: entry.log.clone(),
        delivery: None,
    };
    assert!(matches!(
        store.commit(&stale).await,
        Err(StoreError::Conflict(_))
    ));
    let due = store.due_notifications(at(100), 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");

    // Settling: only at the version read.
    let mut next = due[0].clone();
    next.version = 1;
    next.due_at = at(50);
    let mut elsewhere = next.clone();
    elsewhere.version = 6;
    assert!(matches!(
        store
            .settle_notification(&next.id, 5, Some(&elsewhere), &[])
            .await,
        Err(StoreError::Conflict(_))
    ));
    // A next entry that is not the next version is refused before any write.
    assert!(matches!(
        store
            .settle_notification(&next.id, 5, Some(&next), &[])
            .await,
        Err(StoreError::Backend(_))
    ));
    store
        .settle_notification(&next.id, 0, Some(&next), &[])
        .await
        .unwrap();
    assert!(
        store
            .due_notifications(at(49), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.due_notifications(at(50), 10).await.unwrap(),
        [next.clone()]
    );
    let letter = DeadLetter {
        id: next.id.clone(),
        endpoint: "app".into(),
        body: "{}".into(),
        event_type: "subscription.created".into(),
        attempts: 3,
        last_error: "HTTP 500".into(),
        dead_at: at(60),
    };
    store
        .settle_notification(&next.id, 1, None, std::slice::from_ref(&letter))
        .await
        .unwrap();
    assert!(
        store
            .due_notifications(at(1000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.settle_notification(&next.id, 1, None, &[]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.dead_letters().await.unwrap(),
        std::slice::from_ref(&letter)
    );
    assert!(store.remove_dead_letter(&letter.id, "app").await.unwrap());
    assert!(!store.remove_dead_letter(&letter.id, "app").await.unwrap());
    assert!(store.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn outbox_is_written_with_the_commit_on_sqlite() {
    outbox_is_written_with_the_commit(&SqliteStore::open_in_memory().unwrap()).await;
}

#[tokio::test]
async fn outbox_is_written_with_the_commit_on_dynamodb() {
    outbox_is_written_with_the_commit(&tollgate_tests::moto::fresh_store().await).await;
}

/// Commit, then the process dies before sending: a new sender (another
/// process, on the same file or table) finds the change and delivers it.
async fn a_crash_between_commit_and_send_loses_nothing<S: EventLedger + Outbox + 'static>(
    before: Arc<S>,
    after: Arc<S>,
) {
    let catalog = config(ONE_ENDPOINT);
    let clock = Arc::new(FixedClock::new(at(10)));
    let receiver = Receiver::answering([]);
    {
        let _doomed = sender(
            Arc::clone(&before),
            Arc::clone(&catalog),
            Arc::clone(&receiver),
            Arc::clone(&clock),
        );
        apply(&*before, &buy("e1", 10), at(10)).await;
        // Dropped without draining: the crash.
    }
    drop(before);
    assert!(receiver.sent().is_empty());
    let survivor = sender(after, catalog, Arc::clone(&receiver), Arc::clone(&clock));
    let report = survivor.drain().await.unwrap();
    assert_eq!((report.entries, report.delivered), (1, 1));
    let sent = receiver.sent();
    assert_eq!(sent.len(), 1);
    assert!(signed_by(&sent[0], SECRET, at(10)));
    let body: Notification = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body.data.event.id, "e1");
    // Delivered: the outbox is empty, a second pass sends nothing.
    assert_eq!(survivor.drain().await.unwrap().entries, 0);
    assert_eq!(receiver.sent().len(), 1);
}

#[tokio::test]
async fn a_crash_between_commit_and_send_loses_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.db");
    let first = Arc::new(SqliteStore::open(&path).unwrap());
    let second = Arc::new(SqliteStore::open(&path).unwrap());
    a_crash_between_commit_and_send_loses_nothing(first, second).await;
}

#[tokio::test]
async fn a_crash_between_commit_and_send_loses_nothing_on_dynamodb() {
    let store = tollgate_tests::moto::fresh_store().await;
    let other = tollgate::store::dynamo::DynamoStore::new(
        tollgate_tests::moto::client(),
        store.table().to_owned(),
    );
    a_crash_between_commit_and_send_loses_nothing(Arc::new(store), Arc::new(other)).await;
}

// ---------------------------------------------------------------------------
// The sender (SQLite: the logic is the store's-agnostic)
// ---------------------------------------------------------------------------

struct World {
    store: Arc<SqliteStore>,
    clock: Arc<FixedClock>,
    receiver: Arc<Receiver>,
    sender: Sender,
}

fn world(endpoints: &str, answers: impl IntoIterator<Item = Answer>) -> World {
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let clock = Arc::new(FixedClock::new(at(10)));
    let receiver = Receiver::answering(answers);
    let sender = sender(
        Arc::clone(&store),
        config(endpoints),
        Arc::clone(&receiver),
        Arc::clone(&clock),
    );
    World {
        store,
        clock,
        receiver,
        sender,
    }
}

#[tokio::test]
async fn the_payload_is_the_event_and_the_entitlement_check_answers() {
    let w = world(ONE_ENDPOINT, []);
    apply(&*w.store, &buy("e1", 10), at(10)).await;
    w.sender.drain().await.unwrap();
    let sent = w.receiver.sent();
    assert_eq!(sent[0].url, "https://app.example/hooks");
    assert_eq!(sent[0].timestamp, at(10).timestamp().to_string());
    let json: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(json["type"], "subscription.created");
    assert_eq!(json["data"]["event"]["id"], "e1");
    assert_eq!(json["data"]["event"]["status_after"], "active");
    let entitlement = &json["data"]["entitlement"];
    assert_eq!(entitlement["allowed"], true);
    assert_eq!(entitlement["tier"], "team");
    assert_eq!(
        entitlement["features"],
        serde_json::json!(["private-repos"])
    );
    assert_eq!(entitlement["seats"]["limit"], 5);
    assert_eq!(json["data"]["subscription"]["plan"], "team");

    // The cancellation that follows is its own notification.
    let cancel = event(
        &sub_key("s1"),
        &acme(),
        "e2",
        at(20),
        EventKind::Cancelled {
            plan: None,
            access_until: None,
        },
    );
    apply(&*w.store, &cancel, at(20)).await;
    w.clock.set(at(20));
    w.sender.drain().await.unwrap();
    let sent = w.receiver.sent();
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0].id, sent[1].id, "one message id per change");
    let json: serde_json::Value = serde_json::from_slice(&sent[1].body).unwrap();
    assert_eq!(json["type"], "subscription.cancelled");
    assert_eq!(json["data"]["entitlement"]["allowed"], false);
    assert_eq!(json["data"]["entitlement"]["reason"], "cancelled");
}

#[tokio::test]
async fn a_redelivery_carries_the_same_id_and_body_and_retries_back_off() {
    // 503, then no answer at all, then 200.
    let w = world(ONE_ENDPOINT, [Ok(503), Err("connection failed".into())]);
    apply(&*w.store, &buy("e1", 10), at(10)).await;
    let policy = tollgate::notify::spec::RetryPolicy {
        max_attempts: 3,
        ..Default::default()
    };

    let r = w.sender.drain().await.unwrap();
    assert_eq!((r.delivered, r.retrying), (0, 1));
    let entry = w.store.due_notifications(at(100_000), 10).await.unwrap()[0].clone();
    let wait1 = entry.due_at - at(10);
    assert_eq!(wait1, policy.backoff(1, 7_777_777));
    assert!(wait1 > Duration::zero() && wait1 <= Duration::seconds(30));

    // Not due yet: nothing is sent.
    w.clock.set(entry.due_at - Duration::milliseconds(1));
    assert_eq!(w.sender.drain().await.unwrap().entries, 0);
    assert_eq!(w.receiver.sent().len(), 1);

    // Due: the second attempt fails too; the next wait is drawn from a
    // doubled range.
    let t2 = entry.due_at;
    w.clock.set(t2);
    assert_eq!(w.sender.drain().await.unwrap().retrying, 1);
    let entry = w.store.due_notifications(at(100_000), 10).await.unwrap()[0].clone();
    assert_eq!(entry.due_at - t2, policy.backoff(2, 7_777_777));
    assert!(entry.due_at - t2 <= Duration::seconds(60));
    assert_eq!(entry.endpoints["app"].attempts, 2);
    assert_eq!(
        entry.endpoints["app"].last_error.as_deref(),
        Some("connection failed")
    );

    w.clock.set(entry.due_at);
    assert_eq!(w.sender.drain().await.unwrap().delivered, 1);
    let sent = w.receiver.sent();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|s| s.id == sent[0].id), "same webhook-id");
    assert!(sent.iter().all(|s| s.body == sent[0].body), "same body");
    assert_ne!(
        sent[0].timestamp, sent[2].timestamp,
        "each attempt's own time"
    );
    for s in &sent {
        let at = DateTime::from_timestamp(s.timestamp.parse().unwrap(), 0).unwrap();
        assert!(signed_by(s, SECRET, at));
    }
    assert!(
        w.store
            .due_notifications(at(100_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(w.store.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_last_failed_attempt_leaves_a_dead_letter_that_replay_delivers() {
    let w = world(ONE_ENDPOINT, [Ok(500), Ok(429), Ok(502), Ok(500)]);
    apply(&*w.store, &buy("e1", 10), at(10)).await;
    for attempt in 1..=3 {
        let r = w.sender.drain().await.unwrap();
        assert_eq!(r.entries, 1, "attempt {attempt}");
        w.clock.set(w.clock_now() + Duration::hours(1));
    }
    assert_eq!(w.receiver.sent().len(), 3, "max_attempts = 3");
    assert!(
        w.store
            .due_notifications(at(100_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let dead = w.store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].endpoint.as_str(), dead[0].attempts), ("app", 3));
    assert_eq!(dead[0].last_error, "HTTP 502");
    assert_eq!(dead[0].id, w.receiver.sent()[0].id);

    // Replay: the receiver still fails once, then recovers.
    let report = w.sender.replay(|_, _| {}).await.unwrap();
    assert_eq!(
        (report.total, report.delivered, report.failed.len()),
        (1, 0, 1)
    );
    assert_eq!(w.store.dead_letters().await.unwrap().len(), 1);
    let mut progress = Vec::new();
    let report = w
        .sender
        .replay(|done, total| progress.push((done, total)))
        .await
        .unwrap();
    assert_eq!((report.total, report.delivered), (1, 1));
    assert_eq!(progress, [(1, 1)]);
    assert!(w.store.dead_letters().await.unwrap().is_empty());
    let sent = w.receiver.sent();
    assert_eq!(sent.len(), 5);
    assert_eq!(sent[4].id, sent[0].id, "a replay keeps the webhook-id");
    assert_eq!(sent[4].body, sent[0].body);
}

impl World {
    fn clock_now(&self) -> DateTime<Utc> {
        use tollgate::clock::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn a_refusal_is_final_at_once_but_408_and_429_are_retried() {
    let w = world(ONE_ENDPOINT, [Ok(408), Ok(410)]);
    apply(&*w.store, &buy("e1", 10), at(10)).await;
    assert_eq!(w.sender.drain().await.unwrap().retrying, 1);
    w.clock.set(at(10) + Duration::hours(1));
    let r = w.sender.drain().await.unwrap();
    assert_eq!((r.dead, r.retrying), (1, 0));
    let dead = w.store.dead_letters().await.unwrap();
    assert_eq!(
        (dead[0].attempts, dead[0].last_error.as_str()),
        (2, "HTTP 410")
    );
}

#[tokio::test]
async fn each_endpoint_has_its_own_attempts_and_filter() {
    let endpoints = r#"
[[notifications.endpoints]]
name = "app"
url = "https://app.example/hooks"
secret = "notify_app"

[[notifications.endpoints]]
name = "billing"
url = "https://billing.example/hooks"
secret = "notify_app"

[[notifications.endpoints]]
name = "churn"
url = "https://churn.example/hooks"
secret = "notify_app"
events = ["subscription.cancelled"]
"#;
    // app answers 200, billing is down for its first attempt.
    let w = world(endpoints, [Ok(200), Err("timeout".into())]);
    apply(&*w.store, &buy("e1", 10), at(10)).await;
    let r = w.sender.drain().await.unwrap();
    assert_eq!((r.delivered, r.retrying), (1, 1));
    w.clock.set(at(10) + Duration::hours(1));
    assert_eq!(w.sender.drain().await.unwrap().delivered, 1);
    let urls: Vec<String> = w.receiver.sent().into_iter().map(|s| s.url).collect();
    assert_eq!(
        urls,
        [
            "https://app.example/hooks",
            "https://billing.example/hooks",
            "https://billing.example/hooks"
        ],
        "app once, billing until delivered, churn never (it wants cancellations)"
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_for_a_while_loses_nothing() {
    let down = (0..2).map(|_| Err::<u16, String>("connection failed".into()));
    let w = world(ONE_ENDPOINT, down);
    for (i, secs) in [10, 11, 12].into_iter().enumerate() {
        let key = sub_key(&format!("s{i}"));
        let e = purchase(&key, &acme(), &format!("e{i}"), at(secs), 1);
        apply(&*w.store, &e, at(secs)).await;
    }
    w.clock.set(at(12));
    let r = w.sender.drain().await.unwrap();
    assert_eq!((r.entries, r.delivered, r.retrying), (3, 1, 2));
    w.clock.set(at(12) + Duration::hours(1));
    let r = w.sender.drain().await.unwrap();
    assert_eq!((r.entries, r.delivered), (2, 2));
    let mut ids: Vec<String> = w.receiver.sent().into_iter().map(|s| s.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "every change delivered");
    assert!(w.store.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn two_senders_at_once_send_an_entry_once() {
    let w = world(ONE_ENDPOINT, []);
    apply(&*w.store, &buy("e1", 10), at(10)).await;
    let other = sender(
        Arc::clone(&w.store),
        config(ONE_ENDPOINT),
        Arc::clone(&w.receiver),
        Arc::clone(&w.clock),
    );
    let (a, b) = tokio::join!(w.sender.drain(), other.drain());
    assert_eq!(a.unwrap().delivered + b.unwrap().delivered, 1);
    assert_eq!(w.receiver.sent().len(), 1);
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_and_missing_secrets_are_refused() {
    let old = "whsec_b2xkLXNlY3JldA==";
    let secrets = Secrets::from_pairs([("notify_app", SECRET), ("notify_app_previous", old)]);
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let receiver = Receiver::answering([]);
    let clock = Arc::new(FixedClock::new(at(10)));
    let sender = Sender::new(
        Arc::clone(&store) as Arc<dyn Outbox>,
        config(ONE_ENDPOINT),
        &secrets,
        Arc::clone(&receiver) as Arc<dyn Transport>,
        clock,
    )
    .unwrap();
    apply(&*store, &buy("e1", 10), at(10)).await;
    sender.drain().await.unwrap();
    let sent = &receiver.sent()[0];
    assert_eq!(sent.signature.split(' ').count(), 2);
    assert!(signed_by(sent, SECRET, at(10)) && signed_by(sent, old, at(10)));

    let none = Secrets::from_pairs([]);
    let err = Sender::new(
        store.clone(),
        config(ONE_ENDPOINT),
        &none,
        Receiver::answering([]),
        Arc::new(FixedClock::new(at(0))),
    )
    .err()
    .expect("a missing secret is refused");
    assert!(err.to_string().contains("notify_app"), "{err}");
    let bad = Secrets::from_pairs([("notify_app", "whsec_not base64!")]);
    let err = Sender::new(
        store,
        config(ONE_ENDPOINT),
        &bad,
        Receiver::answering([]),
        Arc::new(FixedClock::new(at(0))),
    )
    .err()
    .expect("a malformed secret is refused");
    assert!(
        !err.to_string().contains("not base64!"),
        "never the value: {err}"
    );
}

#[tokio::test]
async fn without_endpoints_the_outbox_is_emptied_without_sending() {
    let w = world("", []);
    apply(&*w.store, &buy("e1", 10), at(10)).await;
    assert_eq!(w.sender.drain().await.unwrap().entries, 1);
    assert!(w.receiver.sent().is_empty());
    assert!(
        w.store
            .due_notifications(at(100_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------
// purchase-webhook: what the stream and the retry timer invoke in AWS
// ---------------------------------------------------------------------------

type Posts = Arc<Mutex<Vec<String>>>;

/// A receiver on 127.0.0.1 that records each POST's `webhook-id`.
async fn http_receiver() -> (String, Posts) {
    let posts: Posts = Arc::default();
    let sink = Arc::clone(&posts);
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let sink = Arc::clone(&sink);
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                sink.lock().unwrap().push(id.to_owned());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hooks"), posts)
}

#[tokio::test]
async fn purchase_webhook_sends_on_a_stream_batch_and_on_the_retry_timer() {
    use lambda_http::{Context, LambdaEvent};
    use tollgate::functions::scheduled::{ScheduleError, handle};

    let (url, posts) = http_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let config = format!(
        r#"
[products.acme-ci]
name = "Acme CI"
[products.acme-ci.tiers.team]
features = ["private-repos"]
[marketplaces.github]
product = "acme-ci"

[[notifications.endpoints]]
url = "{url}"
secret = "notify_app"
"#
    );
    let app = tollgate::testing::TestApp::new()
        .config(&config)
        .secret("notify_app", SECRET)
        .setting("TOLLGATE_STORE", &format!("sqlite:{}", path.display()))
        .store(Arc::clone(&store) as Arc<dyn tollgate::store::Store>)
        .now(at(10));
    let function = Arc::new(app.purchase_webhook().unwrap());
    let invoke = |payload: serde_json::Value| {
        handle(
            Arc::clone(&function),
            LambdaEvent::new(payload, Context::default()),
        )
    };

    apply(&*store, &buy("e1", 10), at(10)).await;
    let batch = serde_json::json!({"Records": [{
        "eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb",
        "dynamodb": {"Keys": {"PK": {"S": "OUTBOX"}, "SK": {"S": "msg_x"}}}
    }]});
    let answer = invoke(batch).await.unwrap();
    assert_eq!(answer["delivered"], 1, "{answer}");
    assert_eq!(posts.lock().unwrap().len(), 1);

    let cancel = event(
        &sub_key("s1"),
        &acme(),
        "e2",
        at(10),
        EventKind::Cancelled {
            plan: None,
            access_until: None,
        },
    );
    apply(&*store, &cancel, at(10)).await;
    let answer = invoke(serde_json::json!({"tollgate": "drain-notifications"}))
        .await
        .unwrap();
    assert_eq!(answer["delivered"], 1, "{answer}");
    let posts = posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 2);
    assert_ne!(posts[0], posts[1]);
    // Anything else is still refused, never guessed at.
    assert!(matches!(
        invoke(serde_json::json!({"tollgate": "something else"})).await,
        Err(ScheduleError::UnknownEvent)
    ));
}

#[tokio::test]
async fn a_plain_http_endpoint_off_this_machine_is_refused() {
    let endpoints = r#"
[[notifications.endpoints]]
url = "http://app.example/hooks?token=abc"
secret = "notify_app"
"#;
    let err = Sender::new(
        Arc::new(SqliteStore::open_in_memory().unwrap()),
        config(endpoints),
        &secrets(),
        Receiver::answering([]),
        Arc::new(FixedClock::new(at(0))),
    )
    .err()
    .expect("refused");
    let message = err.to_string();
    assert!(message.contains("https://"), "{message}");
    assert!(
        !message.contains("token=abc"),
        "the URL's query is not repeated: {message}"
    );
}

#[tokio::test]
async fn a_drain_near_its_deadline_leaves_the_rest_for_the_next_run() {
    use std::time::{Duration as StdDuration, SystemTime};
    let w = world(ONE_ENDPOINT, []);
    apply(&*w.store, &buy("e1", 10), at(10)).await;
    // Less time left than one attempt may take: nothing is started.
    let soon = SystemTime::now() + StdDuration::from_secs(1);
    assert_eq!(w.sender.drain_before(Some(soon)).await.unwrap().entries, 0);
    assert!(w.receiver.sent().is_empty());
    let later = SystemTime::now() + StdDuration::from_secs(60);
    let r = w.sender.drain_before(Some(later)).await.unwrap();
    assert_eq!((r.entries, r.delivered), (1, 1));
}
