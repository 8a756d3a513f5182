//! The DynamoDB store against a real DynamoDB-compatible server (moto, started
//! by `tollgate_tests::moto`), a fresh table per test: the shared conformance
//! suite (the same cases the SQLite store passes), then DynamoDB-specific
//! smoke tests (table layout, TTL, isolation, seat and commit details).

use std::sync::{Arc, Mutex};
use tollgate::store::prelude::*;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{AttributeValue, TableStatus, TimeToLiveStatus};
use chrono::{DateTime, Duration, Utc};
use tollgate::model::{
    AppUser, Customer, CustomerKey, Disposition, LogEntry, Marketplace, Plan, Seats, Status,
    Subscription, SubscriptionKey,
};
use tollgate::store::dynamo::DynamoStore;
use tollgate::store::{
    Commit, Delivery, DeliveryMark, DeliveryStatus, Recorded, SeatClaim, SeatLimit, StoreError,
    Token, UserLink, sha256_hex,
};
use tollgate_tests::conformance as suite;
use tollgate_tests::moto;

tollgate_tests::conformance_suite!(tollgate_tests::moto::fresh_store);

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-01T12:00:00.123456789Z")
        .map(|t| t.with_timezone(&Utc))
        .expect("valid time")
}

fn key(id: &str) -> SubscriptionKey {
    SubscriptionKey::new(Marketplace::Github, id)
}

fn customer() -> CustomerKey {
    CustomerKey::new(Marketplace::Github, "acct-1")
}

fn state(key: &SubscriptionKey, version: u64, status: Status) -> Subscription {
    Subscription {
        key: key.clone(),
        customer: Customer::new(customer()),
        product: "widgets".into(),
        plan: Plan::new("pro"),
        status,
        awaiting: None,
        seats: Seats {
            limit: Some(5),
            used: 0,
        },
        billing_cycle: None,
        trial_ends_at: None,
        next_billing_at: None,
        access_until: None,
        pending_change: None,
        last_applied: None,
        version,
        created_at: t0(),
        updated_at: t0(),
    }
}

fn entry(key: &SubscriptionKey, event_id: &str, at: DateTime<Utc>) -> LogEntry {
    LogEntry {
        subscription: key.clone(),
        event_id: event_id.into(),
        event: "purchased".into(),
        effective_at: at,
        recorded_at: at,
        disposition: Disposition::Applied,
        note: "test".into(),
        status_before: None,
        status_after: Some(Status::Active),
    }
}

fn commit(key: &SubscriptionKey, expected: u64, event_id: &str, at: DateTime<Utc>) -> Commit {
    Commit {
        subscription: key.clone(),
        expected_version: expected,
        state: Some(state(key, expected + 1, Status::Active)),
        log: entry(key, event_id, at),
        delivery: Some(DeliveryMark {
            marketplace: key.marketplace,
            id: event_id.into(),
            expires_at: at + Duration::days(35),
        }),
    }
}

#[tokio::test]
async fn moto_is_really_serving_a_fresh_table_per_test() {
    let a = moto::fresh_store().await;
    let b = moto::fresh_store().await;
    assert_ne!(a.table(), b.table());

    let described = a
        .client()
        .describe_table()
        .table_name(a.table())
        .send()
        .await
        .expect("DescribeTable of the fresh table");
    let table = described.table().expect("table description");
    assert_eq!(table.table_status(), Some(&TableStatus::Active));
    assert!(
        table
            .global_secondary_indexes()
            .iter()
            .any(|g| g.index_name() == Some("GSI1")),
        "GSI1 exists"
    );
    let ttl = a
        .client()
        .describe_time_to_live()
        .table_name(a.table())
        .send()
        .await
        .expect("DescribeTimeToLive");
    let ttl = ttl.time_to_live_description().expect("TTL description");
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));

    let k = key("isolated");
    a.commit(&commit(&k, 0, "evt-1", t0()))
        .await
        .expect("commit");
    assert!(a.get(&k).await.expect("get").is_some());
    assert_eq!(b.get(&k).await.expect("get"), None, "tables are isolated");

    // And the server is a live process we started.
    let pid = moto::server().pid;
    // SAFETY: signal 0 only checks that the process exists.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "moto pid {pid} is alive");
}

#[tokio::test]
async fn commit_round_trips_state_log_and_customer_index() {
    let store = moto::fresh_store().await;
    let k = key("round-trip");
    let c = commit(&k, 0, "evt-1", t0());
    store.commit(&c).await.expect("first commit");

    let got = store.get(&k).await.expect("get").expect("stored");
    assert_eq!(Some(got.clone()), c.state);
    assert_eq!(got.version, 1);

    let later = t0() + Duration::seconds(1);
    let mut next = commit(&k, 1, "evt-2", later);
    if let Some(s) = next.state.as_mut() {
        s.status = Status::Suspended;
    }
    store.commit(&next).await.expect("second commit");

    let got = store.get(&k).await.expect("get").expect("stored");
    assert_eq!(got.version, 2);
    assert_eq!(got.status, Status::Suspended);
    let log = store.log(&k).await.expect("log");
    assert_eq!(log, vec![c.log, next.log]);
    let subs = store
        .customer_subscriptions(&customer())
        .await
        .expect("customer subscriptions");
    assert_eq!(subs, vec![got]);
    assert_eq!(store.get(&key("never")).await.expect("get"), None);
}

#[tokio::test]
async fn stale_version_is_a_conflict_and_writes_nothing() {
    let store = moto::fresh_store().await;
    let k = key("conflict");
    store
        .commit(&commit(&k, 0, "evt-1", t0()))
        .await
        .expect("commit");

    let stale = commit(&k, 0, "evt-2", t0() + Duration::seconds(1));
    let err = store.commit(&stale).await.expect_err("stale commit");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    assert_eq!(
        store.get(&k).await.expect("get").map(|s| s.version),
        Some(1)
    );
    assert_eq!(store.log(&k).await.expect("log").len(), 1);
    let mark = store
        .delivery(Marketplace::Github, "evt-2", t0())
        .await
        .expect("delivery");
    assert_eq!(mark, None, "no dedupe mark from a failed commit");
}

#[tokio::test]
async fn done_delivery_is_a_duplicate() {
    let store = moto::fresh_store().await;
    let k = key("dup");
    let body = b"{\"action\":\"purchased\"}".to_vec();
    let delivery = Delivery {
        marketplace: Marketplace::Github,
        id: "evt-1".into(),
        kind: "marketplace_purchase".into(),
        status: DeliveryStatus::Pending,
        body_sha256: sha256_hex(&body),
        body: Some(body),
        received_at: t0(),
        expires_at: t0() + Duration::days(35),
    };
    assert_eq!(
        store.record_delivery(&delivery).await.expect("record"),
        Recorded::New
    );
    assert_eq!(
        store.record_delivery(&delivery).await.expect("record"),
        Recorded::Pending
    );
    assert_eq!(
        store
            .delivery(Marketplace::Github, "evt-1", t0())
            .await
            .expect("delivery"),
        Some(delivery.clone())
    );
    let pending = store
        .pending_deliveries(Marketplace::Github, t0())
        .await
        .expect("pending");
    assert_eq!(pending, vec![delivery.clone()]);

    store
        .commit(&commit(&k, 0, "evt-1", t0()))
        .await
        .expect("commit");
    assert_eq!(
        store.record_delivery(&delivery).await.expect("record"),
        Recorded::Done
    );
    let done = store
        .delivery(Marketplace::Github, "evt-1", t0())
        .await
        .expect("delivery")
        .expect("still remembered");
    assert_eq!(done.status, DeliveryStatus::Done);
    assert_eq!(done.body, None, "body dropped once processed");
    assert!(
        store
            .pending_deliveries(Marketplace::Github, t0())
            .await
            .expect("pending")
            .is_empty()
    );

    let again = commit(&k, 1, "evt-1", t0() + Duration::seconds(1));
    let err = store.commit(&again).await.expect_err("duplicate commit");
    assert!(matches!(err, StoreError::Duplicate(_)), "{err:?}");
    assert_eq!(
        store.get(&k).await.expect("get").map(|s| s.version),
        Some(1)
    );
}

#[tokio::test]
async fn claim_seat_enforces_the_limit_and_survives_commits() {
    let store = moto::fresh_store().await;
    let k = key("seats");
    let two = SeatLimit::Fixed(2);
    assert_eq!(
        store.claim_seat(&k, "alice", two).await,
        Err(StoreError::NotFound(format!("subscription {k}")))
    );
    store
        .commit(&commit(&k, 0, "evt-1", t0()))
        .await
        .expect("commit");

    let granted = |used| {
        Ok(SeatClaim::Granted {
            used,
            limit: Some(2),
        })
    };
    assert_eq!(store.claim_seat(&k, "alice", two).await, granted(1));
    assert_eq!(store.claim_seat(&k, "bob", two).await, granted(2));
    assert_eq!(
        store.claim_seat(&k, "alice", two).await,
        Ok(SeatClaim::AlreadyHeld {
            used: 2,
            limit: Some(2)
        })
    );
    assert_eq!(
        store.claim_seat(&k, "carol", two).await,
        Ok(SeatClaim::LimitReached { used: 2, limit: 2 })
    );

    // A state commit leaves the holders and their count alone.
    store
        .commit(&commit(&k, 1, "evt-2", t0() + Duration::seconds(1)))
        .await
        .expect("commit");
    let got = store.get(&k).await.expect("get").expect("stored");
    assert_eq!(got.seats.used, 2);
    assert_eq!(
        store.seat_holders(&k).await,
        Ok(vec!["alice".into(), "bob".into()])
    );

    assert_eq!(store.release_seat(&k, "alice").await, Ok(true));
    assert_eq!(store.release_seat(&k, "alice").await, Ok(false));
    assert_eq!(store.claim_seat(&k, "carol", two).await, granted(2));
    assert_eq!(
        store.claim_seat(&k, "dave", SeatLimit::Fixed(0)).await,
        Ok(SeatClaim::LimitReached { used: 2, limit: 0 })
    );
}

#[tokio::test]
async fn a_seat_limit_of_zero_grants_nothing() {
    let store = moto::fresh_store().await;
    let k = key("no-seats");
    let mut zero = commit(&k, 0, "evt-1", t0());
    if let Some(s) = zero.state.as_mut() {
        s.seats.limit = Some(0);
    }
    store.commit(&zero).await.expect("commit");
    assert_eq!(
        store.claim_seat(&k, "alice", SeatLimit::Fixed(0)).await,
        Ok(SeatClaim::LimitReached { used: 0, limit: 0 })
    );
    assert_eq!(
        store.claim_seat(&k, "alice", SeatLimit::Purchased).await,
        Ok(SeatClaim::LimitReached { used: 0, limit: 0 })
    );
    assert_eq!(store.seat_holders(&k).await, Ok(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_claims_grant_exactly_the_limit() {
    let store = moto::fresh_store().await;
    let k = key("rush");
    store
        .commit(&commit(&k, 0, "evt-1", t0()))
        .await
        .expect("commit");
    let claims = (0..50).map(|i| {
        let store = store.clone();
        let k = k.clone();
        tokio::spawn(async move {
            store
                .claim_seat(&k, &format!("user-{i}"), SeatLimit::Fixed(10))
                .await
        })
    });
    let mut granted = 0;
    for claim in claims {
        match claim.await.expect("task").expect("claim") {
            SeatClaim::Granted { .. } => granted += 1,
            SeatClaim::LimitReached { used, limit } => assert_eq!((used, limit), (10, 10)),
            SeatClaim::AlreadyHeld { .. } => panic!("nobody claimed twice"),
        }
    }
    assert_eq!(granted, 10);
    let got = store.get(&k).await.expect("get").expect("stored");
    assert_eq!(got.seats.used, 10);
    assert_eq!(store.seat_holders(&k).await.map(|h| h.len()), Ok(10));
}

/// The DynamoDB operations a client sends, in order (`TransactGetItems`,
/// `GetItem`, ...), read from each request's `X-Amz-Target` header.
#[derive(Debug, Clone, Default)]
struct Requests(Arc<Mutex<Vec<String>>>);

impl Requests {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

impl Intercept for Requests {
    fn name(&self) -> &'static str {
        "Requests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?");
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        self.0.lock().expect("lock").push(operation);
        Ok(())
    }
}

/// A store on a fresh table whose client records every request it sends.
async fn counted_store() -> (DynamoStore, Requests) {
    let table = moto::fresh_store().await;
    let requests = Requests::default();
    let conf = moto::client()
        .config()
        .to_builder()
        .interceptor(requests.clone())
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), table.table());
    (store, requests)
}

#[tokio::test]
async fn seat_operations_cost_the_requests_the_module_docs_say() {
    let (store, requests) = counted_store().await;
    let k = key("counted");
    let mut one_seat = commit(&k, 0, "evt-1", t0());
    if let Some(s) = one_seat.state.as_mut() {
        s.seats.limit = Some(1);
    }
    store.commit(&one_seat).await.expect("commit");
    assert_eq!(requests.take(), ["TransactWriteItems"]);

    let purchased = SeatLimit::Purchased;
    let cost = async |what: &str, claim: SeatClaim, user: &str| {
        assert_eq!(
            store.claim_seat(&k, user, purchased).await,
            Ok(claim),
            "{what}"
        );
        requests.take()
    };
    let granted = SeatClaim::Granted {
        used: 1,
        limit: Some(1),
    };
    let held = SeatClaim::AlreadyHeld {
        used: 1,
        limit: Some(1),
    };
    let full = SeatClaim::LimitReached { used: 1, limit: 1 };
    // A new holder: one read, one write transaction.
    assert_eq!(
        cost("granted", granted, "alice").await,
        ["TransactGetItems", "TransactWriteItems"]
    );
    // Already held or full: answered by the read alone, nothing written.
    assert_eq!(cost("held", held, "alice").await, ["TransactGetItems"]);
    assert_eq!(cost("full", full, "bob").await, ["TransactGetItems"]);

    assert_eq!(store.holds_seat(&k, "alice").await, Ok(true));
    assert_eq!(requests.take(), ["GetItem"]);
    assert_eq!(store.seat_holders(&k).await, Ok(vec!["alice".to_owned()]));
    assert_eq!(requests.take(), ["Query"]);
    assert_eq!(store.release_seat(&k, "alice").await, Ok(true));
    assert_eq!(requests.take(), ["TransactWriteItems"]);
    assert_eq!(store.release_seat(&k, "alice").await, Ok(false));
    assert_eq!(requests.take(), ["TransactWriteItems"]);

    // The hot path is still one query, holders or not.
    store.claim_seat(&k, "bob", purchased).await.expect("bob");
    requests.take();
    let subs = store
        .customer_subscriptions(&customer())
        .await
        .expect("subs");
    assert_eq!(subs.iter().map(|s| s.seats.used).collect::<Vec<_>>(), [1]);
    assert_eq!(requests.take(), ["Query"]);
}

#[tokio::test]
async fn holders_are_items_of_their_own_and_the_state_item_only_counts_them() {
    let store = moto::fresh_store().await;
    let k = key("layout");
    store
        .commit(&commit(&k, 0, "evt-1", t0()))
        .await
        .expect("commit");
    for user in ["alice", "bob"] {
        store
            .claim_seat(&k, user, SeatLimit::Purchased)
            .await
            .expect("claim");
    }
    let raw = |sk: &str| {
        let store = store.clone();
        let sk = sk.to_owned();
        async move {
            store
                .client()
                .get_item()
                .table_name(store.table())
                .key("PK", AttributeValue::S("SUB#github#layout".into()))
                .key("SK", AttributeValue::S(sk))
                .consistent_read(true)
                .send()
                .await
                .expect("GetItem")
                .item
        }
    };
    let state = raw("STATE").await.expect("state item");
    assert_eq!(
        state.get("seats_used"),
        Some(&AttributeValue::N("2".into()))
    );
    assert_eq!(
        state.get("seat_limit"),
        Some(&AttributeValue::N("5".into()))
    );
    assert!(!state.contains_key("seat_holders"), "{state:?}");
    let doc = state.get("doc").and_then(|d| d.as_s().ok()).expect("doc");
    assert!(!doc.contains("alice"), "{doc}");
    let seat = raw("SEAT#alice").await.expect("seat item");
    assert_eq!(seat.get("user"), Some(&AttributeValue::S("alice".into())));
    assert!(
        !seat.contains_key("GSI1PK"),
        "seat items stay out of the customer index"
    );

    // A plan without a unit count drops the mirrored limit, not the count.
    let mut flat = commit(&k, 1, "evt-2", t0() + Duration::seconds(1));
    if let Some(s) = flat.state.as_mut() {
        s.seats.limit = None;
    }
    store.commit(&flat).await.expect("commit");
    let state = raw("STATE").await.expect("state item");
    assert!(!state.contains_key("seat_limit"), "{state:?}");
    assert_eq!(
        state.get("seats_used"),
        Some(&AttributeValue::N("2".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_on_one_version_have_one_winner() {
    let store = moto::fresh_store().await;
    let k = key("race");
    store
        .commit(&commit(&k, 0, "evt-0", t0()))
        .await
        .expect("commit");
    let tries = (0..20).map(|i| {
        let store = store.clone();
        let c = commit(
            &k,
            1,
            &format!("evt-{}", i + 1),
            t0() + Duration::seconds(i + 1),
        );
        tokio::spawn(async move { store.commit(&c).await })
    });
    let mut won = 0;
    for t in tries {
        match t.await.expect("task") {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        store.get(&k).await.expect("get").map(|s| s.version),
        Some(2)
    );
    assert_eq!(store.log(&k).await.expect("log").len(), 2);
}

#[tokio::test]
async fn tokens_are_single_use_and_expire() {
    let store = moto::fresh_store().await;
    let now = t0();
    let token = Token {
        kind: "oauth_state".into(),
        id: "abc".into(),
        payload: "{\"return_to\":\"/\"}".into(),
        expires_at: now + Duration::minutes(10),
    };
    store.put_token(&token, now).await.expect("put");
    assert!(matches!(
        store.put_token(&token, now).await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(
        store.take_token("oauth_state", "abc", now).await,
        Ok(Some(token.payload.clone()))
    );
    assert_eq!(store.take_token("oauth_state", "abc", now).await, Ok(None));

    let expired = Token {
        id: "old".into(),
        expires_at: now - Duration::seconds(1),
        ..token
    };
    store.put_token(&expired, now).await.expect("put expired");
    assert_eq!(store.take_token("oauth_state", "old", now).await, Ok(None));
    // An expired token no longer blocks its id.
    store
        .put_token(&expired, now)
        .await
        .expect("put over expired");
}

#[tokio::test]
async fn users_link_to_customers_idempotently() {
    let store = moto::fresh_store().await;
    let user = AppUser("gh-user-9".into());
    let other = CustomerKey::new(Marketplace::Q2, "fi-1#user-2");
    let link = |c: CustomerKey| UserLink::new(c, t0(), Duration::days(1));
    store
        .link_user(&user, &link(customer()))
        .await
        .expect("link");
    store
        .link_user(&user, &link(customer()))
        .await
        .expect("link again");
    store
        .link_user(&user, &link(other.clone()))
        .await
        .expect("link other");
    let mut linked = store.user_links(&user, t0()).await.expect("linked");
    linked.sort_by(|a, b| a.customer.cmp(&b.customer));
    assert_eq!(linked, vec![link(customer()), link(other)]);
    assert_eq!(
        store
            .user_links(&AppUser("nobody".into()), t0())
            .await
            .expect("linked"),
        vec![]
    );
}

/// A link item written before links expired has no expiry: its age is
/// unknown, so it grants nothing, and removing it reports nothing removed.
#[tokio::test]
async fn a_link_item_without_an_expiry_counts_as_expired() {
    let store = moto::fresh_store().await;
    let user = AppUser("gh-user-9".into());
    store
        .client()
        .put_item()
        .table_name(store.table())
        .item("PK", AttributeValue::S("USER#gh-user-9".into()))
        .item("SK", AttributeValue::S("CUST#github#42".into()))
        .item("marketplace", AttributeValue::S("github".into()))
        .item("customer_id", AttributeValue::S("42".into()))
        .send()
        .await
        .expect("legacy item");
    assert_eq!(store.user_links(&user, t0()).await, Ok(vec![]));
    let legacy = CustomerKey::new(Marketplace::Github, "42");
    assert_eq!(store.unlink_user(&user, &legacy, t0()).await, Ok(false));
}

/// Writes `users` as seat holders of `key` straight into the table (25 per
/// `BatchWriteItem`) and sets the state's count to match: claiming 3,000
/// seats one transaction at a time takes moto minutes, and what is under
/// test here is what the state item holds, not the claims.
async fn seed_holders(store: &DynamoStore, key: &SubscriptionKey, users: &[String]) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let pk = format!("SUB#{}#{}", key.marketplace, key.id);
    for chunk in users.chunks(25) {
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|user| {
                let put = PutRequest::builder()
                    .item("PK", AttributeValue::S(pk.clone()))
                    .item("SK", AttributeValue::S(format!("SEAT#{user}")))
                    .item("user", AttributeValue::S(user.clone()))
                    .build()
                    .expect("put request");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        while !pending.is_empty() {
            let out = store
                .client()
                .batch_write_item()
                .request_items(store.table(), pending)
                .send()
                .await
                .expect("BatchWriteItem");
            pending = out
                .unprocessed_items
                .and_then(|mut u| u.remove(store.table()))
                .unwrap_or_default();
        }
    }
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("PK", AttributeValue::S(pk))
        .key("SK", AttributeValue::S("STATE".into()))
        .update_expression("SET seats_used = :n")
        .expression_attribute_values(":n", AttributeValue::N(users.len().to_string()))
        .send()
        .await
        .expect("set the count");
}

#[tokio::test]
async fn three_thousand_holders_of_200_byte_ids_leave_the_state_item_small() {
    const HOLDERS: usize = 3_000;
    let store = moto::fresh_store().await;
    let cust = suite::customer(Marketplace::Github, "100");
    let sub = suite::bought(&store, "big", &cust, HOLDERS as u32).await;
    let users: Vec<String> = (0..HOLDERS).map(|i| suite::long_user_id(i, 200)).collect();
    seed_holders(&store, &sub.key, &users).await;
    const { assert!(HOLDERS * 200 > 400 * 1024, "more than one item could list") };

    suite::seats_survive_a_downgrade_and_a_cancellation(&store, &cust, &sub.key, HOLDERS).await;

    // The state item stays a few hundred bytes whatever the holders.
    let state = store
        .client()
        .get_item()
        .table_name(store.table())
        .key("PK", AttributeValue::S("SUB#github#big".into()))
        .key("SK", AttributeValue::S("STATE".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("state item");
    let bytes: usize = state
        .iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                    _ => 0,
                }
        })
        .sum();
    assert!(bytes < 4 * 1024, "{bytes} bytes: {state:?}");

    // Listing pages through more than a MB of seat items.
    assert_eq!(store.seat_holders(&sub.key).await, Ok(users.clone()));
    assert_eq!(store.holds_seat(&sub.key, &users[1234]).await, Ok(true));
    assert_eq!(store.release_seat(&sub.key, &users[1234]).await, Ok(true));
    assert_eq!(
        store
            .claim_seat(&sub.key, "new", SeatLimit::Purchased)
            .await,
        Ok(SeatClaim::LimitReached {
            used: HOLDERS as u32 - 1,
            limit: 10
        })
    );
}
