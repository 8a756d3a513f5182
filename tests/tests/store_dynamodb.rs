//! The DynamoDB store against a real DynamoDB-compatible server (moto, started
//! by `tollgate_tests::moto`), a fresh table per test: the shared conformance
//! suite (the same cases the SQLite store passes), then DynamoDB-specific
//! smoke tests (table layout, TTL, isolation, seat and commit details).

use std::collections::BTreeSet;
use tollgate::store::prelude::*;

use aws_sdk_dynamodb::types::{TableStatus, TimeToLiveStatus};
use chrono::{DateTime, Duration, Utc};
use tollgate::model::{
    AppUser, Customer, CustomerKey, Disposition, LogEntry, Marketplace, Plan, Seats, Status,
    Subscription, SubscriptionKey,
};
use tollgate::store::{
    Commit, Delivery, DeliveryMark, DeliveryStatus, Recorded, SeatClaim, StoreError, Token,
    sha256_hex,
};
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
            holders: BTreeSet::new(),
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
    assert_eq!(
        store.claim_seat(&k, "alice", 2).await,
        Err(StoreError::NotFound(format!("subscription {k}")))
    );
    store
        .commit(&commit(&k, 0, "evt-1", t0()))
        .await
        .expect("commit");

    assert_eq!(
        store.claim_seat(&k, "alice", 2).await,
        Ok(SeatClaim::Granted { used: 1 })
    );
    assert_eq!(
        store.claim_seat(&k, "bob", 2).await,
        Ok(SeatClaim::Granted { used: 2 })
    );
    assert_eq!(
        store.claim_seat(&k, "alice", 2).await,
        Ok(SeatClaim::AlreadyHeld { used: 2 })
    );
    assert_eq!(
        store.claim_seat(&k, "carol", 2).await,
        Ok(SeatClaim::LimitReached { used: 2 })
    );

    // A state commit leaves the holders alone.
    store
        .commit(&commit(&k, 1, "evt-2", t0() + Duration::seconds(1)))
        .await
        .expect("commit");
    let got = store.get(&k).await.expect("get").expect("stored");
    assert_eq!(
        got.seats.holders,
        BTreeSet::from(["alice".to_owned(), "bob".to_owned()])
    );

    assert_eq!(store.release_seat(&k, "alice").await, Ok(true));
    assert_eq!(store.release_seat(&k, "alice").await, Ok(false));
    assert_eq!(
        store.claim_seat(&k, "carol", 2).await,
        Ok(SeatClaim::Granted { used: 2 })
    );
    assert_eq!(
        store.claim_seat(&k, "dave", 0).await,
        Ok(SeatClaim::LimitReached { used: 2 })
    );
}

#[tokio::test]
async fn a_seat_limit_of_zero_grants_nothing() {
    let store = moto::fresh_store().await;
    let k = key("no-seats");
    store
        .commit(&commit(&k, 0, "evt-1", t0()))
        .await
        .expect("commit");
    assert_eq!(
        store.claim_seat(&k, "alice", 0).await,
        Ok(SeatClaim::LimitReached { used: 0 })
    );
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
        tokio::spawn(async move { store.claim_seat(&k, &format!("user-{i}"), 10).await })
    });
    let mut granted = 0;
    for claim in claims {
        match claim.await.expect("task").expect("claim") {
            SeatClaim::Granted { .. } => granted += 1,
            SeatClaim::LimitReached { used } => assert!(used <= 10),
            SeatClaim::AlreadyHeld { .. } => panic!("nobody claimed twice"),
        }
    }
    assert_eq!(granted, 10);
    let got = store.get(&k).await.expect("get").expect("stored");
    assert_eq!(got.seats.holders.len(), 10);
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
    store.link_user(&user, &customer()).await.expect("link");
    store
        .link_user(&user, &customer())
        .await
        .expect("link again");
    store.link_user(&user, &other).await.expect("link other");
    let mut linked = store.linked_customers(&user).await.expect("linked");
    linked.sort();
    assert_eq!(linked, vec![customer(), other]);
    assert_eq!(
        store
            .linked_customers(&AppUser("nobody".into()))
            .await
            .expect("linked"),
        vec![]
    );
}
