//! Q2 subscription events, black-box: the real `PurchaseWebhook` `POST /q2`
//! through `tollgate::web::serve`, signed like the relay signs, the
//! fixtures in `tests/fixtures/q2` (each event type in snake_case,
//! camelCase and as a bare AppDirect event), answers read as Q2 reads them
//! and entitlements read through the real `EntitlementCheck`. Every case
//! runs once per store: `sqlite::<case>` and `dynamodb::<case>` (moto).

#[macro_use]
mod q2_support;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use http::StatusCode;
use serde_json::{Value, json};
use tollgate::marketplace::q2::{PREVIOUS_SECRET_NAME, SECRET_NAME};
use tollgate::model::{BillingCycle, CustomerKey, Marketplace, Status};
use tollgate::store::GroupKey;
use tollgate::testing::TestApp;

use q2_support::{
    BARE_FI, BARE_SUB, BARE_USER, FI, Harness, Post, SUB, USER, body, cancel, event, fixture,
    fixture_json, order, t0,
};

on_both_stores!(
    snake_case_fixtures_order_change_and_cancel_with_access_to_the_end_of_the_month,
    camel_case_fixtures_read_the_same,
    bare_appdirect_fixtures_read_the_same,
    a_redelivery_gets_the_first_answer_and_changes_nothing,
    a_refusal_is_final_for_its_delivery,
    bad_signatures_and_stale_or_future_timestamps_are_refused_and_store_nothing,
    the_previous_secret_verifies_during_a_rotation,
    unreadable_events_are_invalid_response_and_oversized_or_non_json_bodies_are_refused,
    an_unknown_product_or_edition_is_a_configuration_error,
    a_second_subscription_for_the_same_user_is_user_already_exists_until_the_first_ends,
    changes_to_unknown_subscriptions_are_user_or_account_not_found,
    a_cancel_inside_the_minimum_term_is_do_not_cancel_and_afterwards_ends_access_at_once,
    a_cancel_of_an_unknown_subscription_succeeds,
    the_user_cap_refuses_the_fourth_user_of_an_institution_until_one_leaves,
    concurrent_orders_never_pass_the_user_cap,
    concurrent_orders_of_one_user_create_one_subscription,
    a_storage_failure_is_unknown_error_with_the_request_id_and_a_retry_succeeds,
    a_place_left_by_a_lost_order_is_reclaimed_when_the_institution_is_full,
    a_stateless_ping_is_acknowledged_and_changes_nothing,
);

const BH: &str = "budget-helper";

fn customer(fi: &str, user: &str) -> String {
    format!("{fi}:{user}")
}

// ------------------------------------------------------------ fixtures --

/// Order (Premium), change (to Standard), cancel: the subscription, the
/// answers and the entitlement per extension at each step.
async fn lifecycle(h: &Harness, casing: &str, sub: &str, fi: &str, user: &str) {
    let who = customer(fi, user);
    let r = h.deliver_fixture(&format!("order.{casing}.json")).await;
    assert!(r.success(), "{r:?}");
    assert_eq!(r.json["accountIdentifier"], sub, "{r:?}");
    assert!(r.json.get("errorCode").is_none());
    let s = h.state(sub).await.expect("ordered");
    assert_eq!(
        (s.status, s.plan.id.as_str(), s.product.as_str()),
        (Status::Active, "PREMIUM", BH)
    );
    assert_eq!(s.customer.key, CustomerKey::new(Marketplace::Q2, &who));
    assert_eq!(s.customer.name.as_deref(), Some(fi));
    assert_eq!(s.billing_cycle, Some(BillingCycle::Monthly));
    let d = h.check(&who, BH, Some("BudgetHelperReports")).await;
    assert_eq!(
        (&d["allowed"], &d["tier"]),
        (&json!(true), &json!("premium")),
        "{d}"
    );

    let r = h.deliver_fixture(&format!("change.{casing}.json")).await;
    assert!(r.success(), "{r:?}");
    assert_eq!(h.state(sub).await.expect("kept").plan.id, "STANDARD");
    let d = h.check(&who, BH, Some("BudgetHelperReports")).await;
    assert_eq!(
        (&d["allowed"], &d["reason"]),
        (&json!(false), &json!("feature_not_in_plan")),
        "{d}"
    );
    let d = h.check(&who, BH, Some("BudgetHelper")).await;
    assert_eq!(d["allowed"], true, "{d}");

    // Q2 bills monthly from the order and does not refund: access runs to
    // the end of the month already paid.
    let r = h.deliver_fixture(&format!("cancel.{casing}.json")).await;
    assert!(r.success(), "{r:?}");
    let s = h.state(sub).await.expect("kept");
    let month_end = Utc.with_ymd_and_hms(2025, 2, 15, 12, 0, 0).unwrap();
    assert_eq!(
        (s.status, s.access_until),
        (Status::PendingCancellation, Some(month_end))
    );
    assert_eq!(
        h.check(&who, BH, Some("BudgetHelper")).await["allowed"],
        true
    );
    let group = GroupKey::new(Marketplace::Q2, BH, fi);
    assert_eq!(
        h.store.enrollments(&group).await.unwrap(),
        vec![],
        "the cancelling user's place is given back"
    );
    h.clock.set(month_end + Duration::seconds(1));
    let d = h.check(&who, BH, Some("BudgetHelper")).await;
    assert_eq!(
        (&d["allowed"], &d["reason"]),
        (&json!(false), &json!("cancelled")),
        "{d}"
    );
}

async fn snake_case_fixtures_order_change_and_cancel_with_access_to_the_end_of_the_month(
    h: Harness,
) {
    lifecycle(&h, "snake", SUB, FI, USER).await;
}

async fn camel_case_fixtures_read_the_same(h: Harness) {
    lifecycle(&h, "camel", SUB, FI, USER).await;
}

async fn bare_appdirect_fixtures_read_the_same(h: Harness) {
    // A bare order names no subscription: Tollgate derives one and answers
    // it as `accountIdentifier`; the fixtures' change and cancel carry it
    // back as `payload.account.accountIdentifier`.
    lifecycle(&h, "bare", BARE_SUB, BARE_FI, BARE_USER).await;
}

// --------------------------------------------------------- idempotency --

async fn a_redelivery_gets_the_first_answer_and_changes_nothing(h: Harness) {
    let post = h.post(fixture("order.snake.json"));
    let first = h.send(&post).await;
    assert!(first.success(), "{first:?}");
    let before = h.snapshot(&[SUB], USER).await;
    // The same request again (a replay inside the window), and the same
    // body signed afresh a minute later (the relay retrying).
    let again = h.send(&post).await;
    h.clock.set(t0() + Duration::minutes(1));
    let resigned = h.send(&h.post(fixture("order.snake.json"))).await;
    for reply in [&again, &resigned] {
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json, first.json);
    }
    assert_eq!(h.snapshot(&[SUB], USER).await, before);
    assert_eq!(h.log(SUB).await.len(), 1);
}

async fn a_refusal_is_final_for_its_delivery(h: Harness) {
    assert!(h.deliver(&order("sub-a", "7")).await.success());
    let second = h.post(body(&order("sub-b", "7")));
    let refused = h.send(&second).await;
    assert_eq!(refused.code(), "USER_ALREADY_EXISTS", "{refused:?}");
    // Once sub-a is cancelled a new order for sub-b succeeds, but Q2 acted
    // on the refusal of *this* delivery: repeating it repeats the refusal.
    assert!(h.deliver(&cancel("sub-a", "7")).await.success());
    let repeated = h.send(&second).await;
    assert_eq!(repeated.json, refused.json);
    assert_eq!(h.state("sub-b").await, None);
    let log = h.log("sub-b").await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].event, "refused");
}

// ---------------------------------------------------------- signatures --

async fn bad_signatures_and_stale_or_future_timestamps_are_refused_and_store_nothing(h: Harness) {
    let body = fixture("order.snake.json");
    let now = h.now().timestamp();
    let before = h.snapshot(&[SUB], USER).await;
    let mut unsigned = h.post(body.clone());
    unsigned.signature = None;
    let mut malformed = h.post(body.clone());
    malformed.signature = Some("sha256=abc".into());
    let mut tampered = h.post(body.clone());
    tampered.body = body
        .iter()
        .map(|b| if *b == b'1' { b'2' } else { *b })
        .collect();
    let cases = [
        (
            h.post_signed(b"not the secret", now, body.clone()),
            "signature_mismatch",
        ),
        (unsigned, "signature_missing"),
        (malformed, "signature_malformed"),
        (tampered, "signature_mismatch"),
        (
            h.post_signed(h.secret.as_bytes(), now - 301, body.clone()),
            "signature_expired",
        ),
        (
            h.post_signed(h.secret.as_bytes(), now + 301, body.clone()),
            "signature_expired",
        ),
    ];
    for (post, code) in &cases {
        let r = h.send(post).await;
        assert_eq!(
            (r.status, r.http_error()),
            (StatusCode::UNAUTHORIZED, *code),
            "{r:?}"
        );
    }
    assert_eq!(h.snapshot(&[SUB], USER).await, before, "nothing stored");
    // The window's edges are inside it.
    for (sub, user, t) in [("edge-old", "1", now - 300), ("edge-new", "2", now + 300)] {
        let r = h
            .send(&h.post_signed(h.secret.as_bytes(), t, body_of(&order(sub, user))))
            .await;
        assert!(r.success(), "{r:?}");
    }
    // A captured request replayed after the window is refused.
    let captured = h.post(body.clone());
    h.clock.set(t0() + Duration::seconds(301));
    assert_eq!(h.send(&captured).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.state(SUB).await, None);
}

fn body_of(v: &Value) -> Vec<u8> {
    body(v)
}

async fn the_previous_secret_verifies_during_a_rotation(h: Harness) {
    let rotating = Harness::new(
        Arc::clone(&h.store),
        Box::new(()),
        &[(PREVIOUS_SECRET_NAME, "the old secret")],
    );
    let now = rotating.now().timestamp();
    let old = rotating.post_signed(b"the old secret", now, body(&order("s1", "1")));
    assert!(rotating.send(&old).await.success());
    let new = rotating.post(body(&order("s2", "2")));
    assert!(rotating.send(&new).await.success());
    let other = rotating.post_signed(b"neither", now, body(&order("s3", "3")));
    assert_eq!(rotating.send(&other).await.status, StatusCode::UNAUTHORIZED);
    // Rotation over: the old secret is removed and no longer verifies.
    let late = h.post_signed(b"the old secret", now, body(&order("s4", "4")));
    assert_eq!(h.send(&late).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.state("s4").await, None);
}

// ------------------------------------------------------- bad requests --

async fn unreadable_events_are_invalid_response_and_oversized_or_non_json_bodies_are_refused(
    h: Harness,
) {
    let before = h.snapshot(&[SUB], USER).await;
    let mut no_user = fixture_json("order.snake.json");
    no_user.as_object_mut().unwrap().remove("user_id");
    no_user.as_object_mut().unwrap().remove("sso_user_id");
    no_user["event"].as_object_mut().unwrap().remove("creator");
    let mut assignment = fixture_json("order.snake.json");
    assignment["event_type"] = json!("USER_ASSIGNMENT");
    assignment["event"]["type"] = json!("USER_ASSIGNMENT");
    for bad in [
        b"{not json".to_vec(),
        b"[1, 2]".to_vec(),
        Vec::new(),
        body(&no_user),
        body(&assignment),
        "[".repeat(10_000).into_bytes(),
    ] {
        let r = h.send(&h.post(bad.clone())).await;
        assert_eq!(
            (r.status, r.json["success"].clone(), r.code()),
            (StatusCode::OK, json!(false), "INVALID_RESPONSE"),
            "{}: {r:?}",
            String::from_utf8_lossy(&bad[..bad.len().min(40)])
        );
        assert!(!r.json["message"].as_str().unwrap_or_default().is_empty());
    }
    let mut form = h.post(fixture("order.snake.json"));
    form.content_type = Some("application/x-www-form-urlencoded".into());
    let r = h.send(&form).await;
    assert_eq!(
        (r.status, r.http_error()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let huge = h.post(vec![b' '; tollgate::web::MAX_BODY_BYTES + 1]);
    assert_eq!(h.send(&huge).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let get = http::Request::builder()
        .method("GET")
        .uri("/q2")
        .body(tollgate::web::Body::Empty)
        .unwrap();
    let res = tollgate::web::serve(&*h.function, get).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h.snapshot(&[SUB], USER).await, before, "nothing stored");
}

#[tokio::test]
async fn without_a_signing_secret_the_route_says_it_is_not_configured() {
    let f = TestApp::new().purchase_webhook().unwrap();
    let post = Post {
        signature: Some(tollgate::marketplace::q2::signature::sign(
            b"s",
            t0().timestamp(),
            b"{}",
        )),
        content_type: Some("application/json".into()),
        request_id: None,
        body: b"{}".to_vec(),
    };
    let r = Harness::send_to(&f, &post).await;
    assert_eq!(
        (r.status, r.http_error()),
        (StatusCode::SERVICE_UNAVAILABLE, "not_configured")
    );
}

#[test]
fn an_empty_signing_secret_is_a_cold_start_error() {
    assert!(
        TestApp::new()
            .secret(SECRET_NAME, "")
            .purchase_webhook()
            .is_err()
    );
}

async fn an_unknown_product_or_edition_is_a_configuration_error(h: Harness) {
    let unknown = event("order", "s1", "1", "not-a-product", Some("PREMIUM"));
    let gold = event("order", "s2", "2", "3f2c7f0e-budgethelper", Some("GOLD"));
    let no_edition = event("order", "s3", "3", "3f2c7f0e-budgethelper", None);
    for (v, sub) in [(&unknown, "s1"), (&gold, "s2"), (&no_edition, "s3")] {
        let post = h.post(body(v));
        let r = h.send(&post).await;
        assert_eq!(r.code(), "CONFIGURATION_ERROR", "{r:?}");
        assert_eq!(h.state(sub).await, None);
        assert_eq!(h.send(&post).await.json, r.json, "the same answer again");
    }
    assert_eq!(
        h.places(BH).await,
        vec![],
        "no place taken by a refused order"
    );
    // A product with a default edition orders it when the event names none.
    let savings = event("order", "s4", "4", "77aa-savings", None);
    assert!(h.deliver(&savings).await.success());
    assert_eq!(h.state("s4").await.expect("ordered").plan.id, "BASIC");
}

// ------------------------------------------------------------ semantics --

async fn a_second_subscription_for_the_same_user_is_user_already_exists_until_the_first_ends(
    h: Harness,
) {
    let first = h.deliver(&order("sub-a", "7")).await;
    assert!(first.success());
    // The same subscription ordered again (other bytes): the same success.
    let mut again = order("sub-a", "7");
    again["processed"] = json!("2025-01-15T12:00:05Z");
    let r = h.deliver(&again).await;
    assert!(r.success(), "{r:?}");
    assert_eq!(r.json["accountIdentifier"], "sub-a");
    let r = h.deliver(&order("sub-b", "7")).await;
    assert_eq!(r.code(), "USER_ALREADY_EXISTS", "{r:?}");
    assert!(r.json["message"].as_str().unwrap().contains("sub-a"));
    assert_eq!(h.state("sub-b").await, None);
    // Another user of the institution is not affected.
    assert!(h.deliver(&order("sub-c", "8")).await.success());
    // Once sub-a is cancelled, the user may subscribe again.
    assert!(h.deliver(&cancel("sub-a", "7")).await.success());
    let mut retry = order("sub-b", "7");
    retry["processed"] = json!("2025-01-15T12:01:00Z");
    let r = h.deliver(&retry).await;
    assert!(r.success(), "{r:?}");
    let places: BTreeSet<(String, String)> = h
        .places(BH)
        .await
        .into_iter()
        .map(|p| (p.member, p.subscription))
        .collect();
    assert_eq!(
        places,
        BTreeSet::from([("7".into(), "sub-b".into()), ("8".into(), "sub-c".into())])
    );
}

async fn changes_to_unknown_subscriptions_are_user_or_account_not_found(h: Harness) {
    let change = |sub: &str, user: &str, edition: &str| {
        event("change", sub, user, "3f2c7f0e-budgethelper", Some(edition))
    };
    let r = h.deliver(&change("sub-x", "7", "STANDARD")).await;
    assert_eq!(r.code(), "USER_NOT_FOUND", "{r:?}");
    assert!(h.deliver(&order("sub-a", "7")).await.success());
    // A new request (the same bytes would be a redelivery of the first).
    let mut later = change("sub-x", "7", "STANDARD");
    later["processed"] = json!("2025-01-15T12:00:30Z");
    let r = h.deliver(&later).await;
    assert_eq!(r.code(), "ACCOUNT_NOT_FOUND", "{r:?}");
    let r = h.deliver(&change("sub-a", "8", "STANDARD")).await;
    assert_eq!(
        r.code(),
        "USER_NOT_FOUND",
        "another user's subscription: {r:?}"
    );
    let r = h.deliver(&change("sub-a", "7", "GOLD")).await;
    assert_eq!(r.code(), "CONFIGURATION_ERROR", "{r:?}");
    assert_eq!(h.state("sub-a").await.expect("kept").plan.id, "PREMIUM");
    assert_eq!(h.state("sub-x").await, None);
    let r = h.deliver(&change("sub-a", "7", "STANDARD")).await;
    assert!(r.success(), "{r:?}");
    assert_eq!(h.state("sub-a").await.expect("kept").plan.id, "STANDARD");
}

async fn a_cancel_inside_the_minimum_term_is_do_not_cancel_and_afterwards_ends_access_at_once(
    h: Harness,
) {
    let product = "77aa-savings";
    let who = customer(FI, "7");
    assert!(
        h.deliver(&event("order", "sav-1", "7", product, None))
            .await
            .success()
    );
    h.clock.set(t0() + Duration::days(10));
    let r = h
        .deliver(&event("cancel", "sav-1", "7", product, None))
        .await;
    assert_eq!(r.code(), "DO_NOT_CANCEL", "{r:?}");
    assert!(
        r.json["message"].as_str().unwrap().contains("2025-02-14"),
        "{r:?}"
    );
    assert_eq!(h.state("sav-1").await.expect("kept").status, Status::Active);
    assert_eq!(
        h.check(&who, "savings-goals", Some("SavingsGoals")).await["allowed"],
        true
    );
    h.clock.set(t0() + Duration::days(31));
    let mut later = event("cancel", "sav-1", "7", product, None);
    later["processed"] = json!("2025-02-15T12:00:00Z");
    let r = h.deliver(&later).await;
    assert!(r.success(), "{r:?}");
    assert_eq!(
        h.state("sav-1").await.expect("kept").status,
        Status::Cancelled
    );
    let d = h.check(&who, "savings-goals", Some("SavingsGoals")).await;
    assert_eq!(
        (&d["allowed"], &d["reason"]),
        (&json!(false), &json!("cancelled")),
        "{d}"
    );
}

async fn a_cancel_of_an_unknown_subscription_succeeds(h: Harness) {
    let r = h.deliver(&cancel("never-ordered", "7")).await;
    assert!(r.success(), "{r:?}");
    let d = h.check(&customer(FI, "7"), BH, None).await;
    assert_eq!(d["allowed"], false, "{d}");
}

// ------------------------------------------------------------ user cap --

fn order_at(sub: &str, user: &str, fi: &str) -> Value {
    let mut v = order(sub, user);
    v["fi_name"] = json!(fi);
    v
}

async fn the_user_cap_refuses_the_fourth_user_of_an_institution_until_one_leaves(h: Harness) {
    for user in ["1", "2", "3"] {
        assert!(
            h.deliver(&order(&format!("sub-{user}"), user))
                .await
                .success()
        );
    }
    let r = h.deliver(&order("sub-4", "4")).await;
    assert_eq!(r.code(), "MAX_USERS_REACHED", "{r:?}");
    assert!(r.json["message"].as_str().unwrap().contains('3'), "{r:?}");
    assert_eq!(h.state("sub-4").await, None);
    // The cap is per institution.
    assert!(
        h.deliver(&order_at("sub-9", "9", "Other Bank"))
            .await
            .success()
    );
    assert!(h.deliver(&cancel("sub-1", "1")).await.success());
    assert!(h.deliver(&order("sub-4b", "4")).await.success());
    assert_eq!(h.places(BH).await.len(), 3);
}

async fn concurrent_orders_never_pass_the_user_cap(h: Harness) {
    let h = Arc::new(h);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let h = Arc::clone(&h);
        tasks.spawn(async move {
            let sub = format!("race-{i:02}");
            let r = h.deliver(&order(&sub, &format!("u{i:02}"))).await;
            (sub, r)
        });
    }
    let mut won = BTreeSet::new();
    while let Some(joined) = tasks.join_next().await {
        let (sub, r) = joined.expect("task");
        if r.success() {
            won.insert(sub);
        } else {
            assert_eq!(r.code(), "MAX_USERS_REACHED", "{r:?}");
            assert_eq!(h.state(&sub).await, None);
        }
    }
    assert_eq!(won.len(), 3, "{won:?}");
    let held: BTreeSet<String> = h
        .places(BH)
        .await
        .into_iter()
        .map(|p| p.subscription)
        .collect();
    assert_eq!(held, won);
    for sub in &won {
        assert_eq!(h.state(sub).await.expect("ordered").status, Status::Active);
    }
}

async fn concurrent_orders_of_one_user_create_one_subscription(h: Harness) {
    let h = Arc::new(h);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let h = Arc::clone(&h);
        tasks.spawn(async move { h.deliver(&order(&format!("dup-{i}"), "7")).await });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let r = joined.expect("task");
        outcomes.push(if r.success() {
            "ok".to_owned()
        } else {
            r.code().to_owned()
        });
    }
    outcomes.sort();
    let mut expected = vec!["USER_ALREADY_EXISTS".to_owned(); 7];
    expected.push("ok".into());
    assert_eq!(outcomes, expected);
    let subs = h
        .store
        .customer_subscriptions(&CustomerKey::new(Marketplace::Q2, customer(FI, "7")))
        .await
        .unwrap();
    assert_eq!(subs.len(), 1, "{subs:?}");
}

// ------------------------------------------------------------- failures --

async fn a_storage_failure_is_unknown_error_with_the_request_id_and_a_retry_succeeds(h: Harness) {
    h.flaky.fail_commits(true);
    let mut post = h.post(fixture("order.snake.json"));
    post.request_id = Some("req-q2-0001".into());
    let r = h.send(&post).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::OK, "UNKNOWN_ERROR"),
        "{r:?}"
    );
    assert!(
        r.json["message"].as_str().unwrap().contains("req-q2-0001"),
        "{r:?}"
    );
    assert_eq!(h.state(SUB).await, None);
    assert!(h.log(SUB).await.is_empty());
    // The store recovers; Q2 (or the extension's user) tries again.
    h.flaky.fail_commits(false);
    let r = h.send(&post).await;
    assert!(r.success(), "{r:?}");
    assert_eq!(h.state(SUB).await.expect("ordered").status, Status::Active);
    assert_eq!(h.places(BH).await.len(), 1, "one place, taken once");
}

async fn a_place_left_by_a_lost_order_is_reclaimed_when_the_institution_is_full(h: Harness) {
    h.flaky.fail_commits(true);
    let r = h.deliver(&order("lost", "1")).await;
    assert_eq!(r.code(), "UNKNOWN_ERROR");
    h.flaky.fail_commits(false);
    assert!(h.deliver(&order("sub-2", "2")).await.success());
    assert!(h.deliver(&order("sub-3", "3")).await.success());
    // The lost order's place may still be an order on its way: it counts.
    let r = h.deliver(&order("sub-4", "4")).await;
    assert_eq!(r.code(), "MAX_USERS_REACHED", "{r:?}");
    // Minutes later it cannot be: the next order reclaims it.
    h.clock.set(t0() + Duration::minutes(3));
    let r = h.deliver(&order("sub-4b", "4")).await;
    assert!(r.success(), "{r:?}");
    let held: BTreeSet<String> = h
        .places(BH)
        .await
        .into_iter()
        .map(|p| p.subscription)
        .collect();
    assert_eq!(
        held,
        BTreeSet::from(["sub-2".into(), "sub-3".into(), "sub-4b".into()])
    );
}

async fn a_stateless_ping_is_acknowledged_and_changes_nothing(h: Harness) {
    let mut ping = fixture_json("order.snake.json");
    ping["event"]["flag"] = json!("STATELESS");
    let before = h.snapshot(&[SUB], USER).await;
    let r = h.deliver(&ping).await;
    assert!(r.success(), "{r:?}");
    assert_eq!(h.snapshot(&[SUB], USER).await, before);
}
