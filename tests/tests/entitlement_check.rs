//! entitlement-check, black-box through `tollgate::web::serve` on the real
//! handler and real stores (SQLite in memory; DynamoDB on moto for the seat
//! race): every reason code, seats, auth, and clear errors.

#[path = "entitlement_check_support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;
use serde_json::{Value, json};
use support::{Keys, Reply, Tollgate, ask, ask_with, purchased, request, t0};
use tollgate::api::auth::Authenticator;
use tollgate::entitlement::Reason;
use tollgate::model::{AppUser, Awaiting, CustomerKey, EventKind, Marketplace};
use tollgate::store::{Store, UserLink};
use tollgate::web::MAX_BODY_BYTES;

// ------------------------------------------------------------------ reasons --

#[tokio::test]
async fn every_reason_code_comes_back_through_the_handler() {
    let tg = Tollgate::sqlite();
    let mut seen = BTreeSet::new();
    let mut expect = |reason: Reason, allowed: bool, d: &Value| {
        assert_eq!(d["reason"], reason.as_str(), "{d}");
        assert_eq!(d["allowed"], allowed, "{d}");
        seen.insert(reason.as_str());
    };

    tg.purchase("1", "acme-ci", "1002", Some(5)).await;
    expect(
        Reason::Ok,
        true,
        &tg.check(ask_with(
            "1",
            "acme-ci",
            json!({"feature": "private-repos"}),
        ))
        .await,
    );

    expect(
        Reason::NoSubscription,
        false,
        &tg.check(ask("404", "acme-ci")).await,
    );

    tg.event(
        "2",
        "acme-ci",
        purchased("1002", Some(5), None, Some(Awaiting::Signup)),
    )
    .await;
    expect(
        Reason::PendingSignup,
        false,
        &tg.check(ask("2", "acme-ci")).await,
    );

    tg.event(
        "3",
        "acme-ci",
        purchased("1002", Some(5), None, Some(Awaiting::Approval)),
    )
    .await;
    expect(
        Reason::PendingApproval,
        false,
        &tg.check(ask("3", "acme-ci")).await,
    );

    // A 14-day trial bought 20 days ago that never converted.
    let bought = t0() - Duration::days(20);
    let trial = purchased("1002", Some(5), Some(bought + Duration::days(14)), None);
    tg.event_at("4", "acme-ci", trial, bought).await;
    expect(
        Reason::TrialExpired,
        false,
        &tg.check(ask("4", "acme-ci")).await,
    );

    tg.purchase("5", "acme-ci", "1002", Some(5)).await;
    tg.event(
        "5",
        "acme-ci",
        EventKind::Cancelled {
            plan: None,
            access_until: None,
        },
    )
    .await;
    expect(
        Reason::Cancelled,
        false,
        &tg.check(ask("5", "acme-ci")).await,
    );

    tg.purchase("6", "acme-ci", "1002", Some(5)).await;
    tg.event("6", "acme-ci", EventKind::Suspended).await;
    expect(
        Reason::Suspended,
        false,
        &tg.check(ask("6", "acme-ci")).await,
    );

    tg.purchase("7", "acme-ci", "1001", None).await;
    let d = tg
        .check(ask_with(
            "7",
            "acme-ci",
            json!({"feature": "private-repos"}),
        ))
        .await;
    expect(Reason::FeatureNotInPlan, false, &d);
    assert_eq!(
        (&d["tier"], &d["features"]),
        (&json!("free"), &json!(["public-repos"]))
    );

    tg.purchase("8", "acme-ci", "1002", Some(1)).await;
    tg.check(ask_with(
        "8",
        "acme-ci",
        json!({"user": "alice", "claim_seat": true}),
    ))
    .await;
    let d = tg
        .check(ask_with("8", "acme-ci", json!({"user": "bob"})))
        .await;
    expect(Reason::SeatLimitReached, false, &d);
    assert_eq!(d["seats"], json!({"limit": 1, "used": 1}));

    tg.purchase("9", "acme-ci", "9999", None).await;
    let d = tg.check(ask("9", "acme-ci")).await;
    expect(Reason::UnknownPlan, false, &d);
    assert_eq!((&d["tier"], &d["features"]), (&Value::Null, &json!([])));

    expect(
        Reason::UnknownProduct,
        false,
        &tg.check(ask("1", "acme-cl")).await,
    );
    expect(
        Reason::UnknownFeature,
        false,
        &tg.check(ask_with("1", "acme-ci", json!({"feature": "private-repo"})))
            .await,
    );

    let all: BTreeSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(seen, all, "every documented reason was produced");
}

#[tokio::test]
async fn a_decision_reports_status_plan_tier_features_trial_and_seats() {
    let tg = Tollgate::sqlite();
    let trial_end = t0() + Duration::days(3) + Duration::hours(2);
    tg.event(
        "10",
        "acme-ci",
        purchased("1002", Some(4), Some(trial_end), None),
    )
    .await;
    let d = tg.check(ask("10", "acme-ci")).await;
    assert_eq!(
        d,
        json!({
            "allowed": true,
            "reason": "ok",
            "subscription": {"marketplace": "github", "id": "10"},
            "status": "trial",
            "plan": "1002",
            "tier": "team",
            "features": ["private-repos", "public-repos"],
            "trial_days_left": 4,
            "access_until": null,
            "seats": {"limit": 4, "used": 0},
        })
    );
}

#[tokio::test]
async fn a_pending_cancellation_is_entitled_until_access_until() {
    let tg = Tollgate::sqlite();
    tg.purchase("11", "acme-ci", "1002", Some(2)).await;
    let until = t0() + Duration::days(9);
    tg.event(
        "11",
        "acme-ci",
        EventKind::CancellationPending {
            effective_at: until,
        },
    )
    .await;
    let d = tg.check(ask("11", "acme-ci")).await;
    assert_eq!(
        (&d["allowed"], &d["status"]),
        (&json!(true), &json!("pending_cancellation"))
    );
    assert_eq!(
        d["access_until"],
        json!(until.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    );
}

#[tokio::test]
async fn a_cancelled_product_with_a_cancelled_tier_falls_back_to_it() {
    let tg = Tollgate::sqlite();
    tg.purchase("12", "acme-docs", "2002", None).await;
    tg.event(
        "12",
        "acme-docs",
        EventKind::Cancelled {
            plan: None,
            access_until: None,
        },
    )
    .await;
    let d = tg
        .check(ask_with("12", "acme-docs", json!({"feature": "read"})))
        .await;
    assert_eq!(
        (&d["allowed"], &d["tier"], &d["status"]),
        (&json!(true), &json!("free"), &json!("cancelled"))
    );
    let d = tg
        .check(ask_with("12", "acme-docs", json!({"feature": "write"})))
        .await;
    assert_eq!(d["reason"], "feature_not_in_plan");
}

#[tokio::test]
async fn an_app_user_is_checked_against_every_customer_linked_at_sign_up() {
    let tg = Tollgate::sqlite();
    tg.purchase("20", "acme-ci", "1002", Some(3)).await;
    tg.event(
        "20",
        "acme-ci",
        EventKind::Cancelled {
            plan: None,
            access_until: None,
        },
    )
    .await;
    tg.purchase("21", "acme-ci", "1003", None).await;
    let user = AppUser("github-user:77".into());
    for org in ["20", "21"] {
        tg.store
            .link_user(
                &user,
                &UserLink::new(
                    CustomerKey::new(Marketplace::Github, org),
                    t0(),
                    Duration::days(30),
                ),
            )
            .await
            .unwrap();
    }
    let d = tg
        .check(json!({"app_user": "github-user:77", "product": "acme-ci", "feature": "sso"}))
        .await;
    assert_eq!(
        (&d["allowed"], &d["tier"]),
        (&json!(true), &json!("business")),
        "{d}"
    );
    assert_eq!(
        d["subscription"]["id"], "21",
        "the allowing subscription wins"
    );
    let d = tg
        .check(json!({"app_user": "github-user:78", "product": "acme-ci"}))
        .await;
    assert_eq!(
        d["reason"], "no_subscription",
        "an unlinked user has nothing"
    );
}

// ----------------------------------------------------------------- hot path --

#[tokio::test]
async fn a_check_by_customer_costs_exactly_one_store_read() {
    let sqlite: Arc<dyn Store> =
        Arc::new(tollgate::store::sqlite::SqliteStore::open_in_memory().unwrap());
    let counting = Arc::new(support::CountingStore::new(sqlite));
    let tg = Tollgate::on(counting.clone());
    tg.purchase("80", "acme-ci", "1002", Some(3)).await;
    counting.take_calls();

    tg.check(ask_with(
        "80",
        "acme-ci",
        json!({"feature": "private-repos", "user": "alice"}),
    ))
    .await;
    assert_eq!(counting.take_calls(), ["customer_subscriptions"]);

    // Claiming adds the one atomic claim, and nothing else; a holder's next
    // claim too (the state counts holders, it does not list them; the
    // claim's own read answers "already held" without writing).
    for _ in 0..2 {
        tg.check(ask_with(
            "80",
            "acme-ci",
            json!({"user": "alice", "claim_seat": true}),
        ))
        .await;
        assert_eq!(
            counting.take_calls(),
            ["customer_subscriptions", "claim_seat"]
        );
    }

    // Only when the seats are full does a user's check look the user up,
    // once, on the full subscription; with a seat free it needs no lookup.
    for user in ["bob", "carol"] {
        tg.check(ask_with("80", "acme-ci", json!({"user": user})))
            .await;
        assert_eq!(counting.take_calls(), ["customer_subscriptions"], "{user}");
        tg.check(ask_with(
            "80",
            "acme-ci",
            json!({"user": user, "claim_seat": true}),
        ))
        .await;
        counting.take_calls();
    }
    for (user, allowed) in [("alice", true), ("dave", false)] {
        let d = tg
            .check(ask_with("80", "acme-ci", json!({"user": user})))
            .await;
        assert_eq!(d["allowed"], allowed, "{user}: {d}");
        assert_eq!(
            counting.take_calls(),
            ["customer_subscriptions", "holds_seat"],
            "{user}"
        );
    }
    // Without a user, or for a feature the tier lacks, nothing is looked up.
    for extra in [json!({}), json!({"user": "dave", "feature": "sso"})] {
        tg.check(ask_with("80", "acme-ci", extra)).await;
        assert_eq!(counting.take_calls(), ["customer_subscriptions"]);
    }

    // By app user: the links, then one read per linked customer.
    let user = AppUser("u-80".into());
    tg.store
        .link_user(
            &user,
            &UserLink::new(
                CustomerKey::new(Marketplace::Github, "80"),
                t0(),
                Duration::days(30),
            ),
        )
        .await
        .unwrap();
    counting.take_calls();
    tg.check(json!({"app_user": "u-80", "product": "acme-ci"}))
        .await;
    assert_eq!(
        counting.take_calls(),
        ["user_links", "customer_subscriptions"]
    );

    // A product or feature tollgate.toml does not define: answered
    // without reading anything, whoever is asked about.
    for body in [
        ask("80", "acme-cl"),
        ask_with("80", "acme-ci", json!({"feature": "private-repo"})),
        ask_with(
            "80",
            "acme-ci",
            json!({"feature": "ssso", "user": "zed", "claim_seat": true}),
        ),
        json!({"app_user": "u-80", "product": "acme-cl", "user": "zed"}),
    ] {
        let d = tg.check(body.clone()).await;
        assert!(d["reason"].as_str().unwrap().starts_with("unknown_"), "{d}");
        assert_eq!(counting.take_calls(), Vec::<&str>::new(), "{body}");
    }

    // Refused before any read: no credentials, bad body.
    tg.post("/v1/check", None, &ask("80", "acme-ci")).await;
    tg.send(request(
        "POST",
        "/v1/check",
        Some(&tg.keys.all),
        Some("{".into()),
    ))
    .await;
    assert_eq!(counting.take_calls(), Vec::<&str>::new());
}

// -------------------------------------------------------------------- seats --

#[tokio::test]
async fn claim_seat_in_a_check_takes_a_seat_and_refuses_past_the_purchased_count() {
    let tg = Tollgate::sqlite();
    tg.purchase("30", "acme-ci", "1002", Some(2)).await;
    let claim = |user: &str| ask_with("30", "acme-ci", json!({"user": user, "claim_seat": true}));

    let d = tg.check(claim("alice")).await;
    assert_eq!(
        (&d["allowed"], &d["seats"]),
        (&json!(true), &json!({"limit": 2, "used": 1}))
    );
    assert_eq!(tg.check(claim("bob")).await["seats"]["used"], 2);
    let d = tg.check(claim("carol")).await;
    assert_eq!(
        (&d["allowed"], &d["reason"]),
        (&json!(false), &json!("seat_limit_reached")),
        "HTTP 200, a denial"
    );
    assert_eq!(
        tg.check(claim("alice")).await["allowed"],
        true,
        "a holder keeps the seat (idempotent)"
    );
    let list = tg.get("/v1/seats/github/30", Some(&tg.keys.all)).await;
    assert_eq!(list.body["holders"], json!(["alice", "bob"]));

    // A check without a claim on the full subscription: holders are in,
    // everybody else is refused.
    for (user, allowed) in [("alice", true), ("bob", true), ("carol", false)] {
        let d = tg
            .check(ask_with("30", "acme-ci", json!({"user": user})))
            .await;
        assert_eq!(d["allowed"], allowed, "{user}: {d}");
        assert_eq!(d["seats"], json!({"limit": 2, "used": 2}), "{user}");
    }
}

#[tokio::test]
async fn after_a_downgrade_below_the_holders_they_keep_their_seats_and_nobody_new_gets_one() {
    let tg = Tollgate::sqlite();
    tg.purchase("33", "acme-ci", "1002", Some(3)).await;
    for user in ["a", "b", "c"] {
        let r = tg
            .post("/v1/seats/claim", Some(&tg.keys.all), &seat("33", user))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut terms = tollgate::model::PlanTerms::new(tollgate::model::Plan::new("1002"));
    terms.seats = Some(2);
    tg.event("33", "acme-ci", EventKind::Changed { terms })
        .await;

    for (user, allowed) in [("a", true), ("c", true), ("d", false)] {
        let d = tg
            .check(ask_with("33", "acme-ci", json!({"user": user})))
            .await;
        assert_eq!(d["allowed"], allowed, "{user}: {d}");
        assert_eq!(d["seats"], json!({"limit": 2, "used": 3}), "{user}");
    }
    let d = tg
        .check(ask_with(
            "33",
            "acme-ci",
            json!({"user": "d", "claim_seat": true}),
        ))
        .await;
    assert_eq!(
        (&d["reason"], &d["seats"]),
        (
            &json!("seat_limit_reached"),
            &json!({"limit": 2, "used": 3})
        )
    );
    let r = tg
        .post("/v1/seats/claim", Some(&tg.keys.all), &seat("33", "d"))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (409, Some("seat_limit_reached")),
        "{}",
        r.body
    );
    let r = tg
        .post("/v1/seats/claim", Some(&tg.keys.all), &seat("33", "a"))
        .await;
    assert_eq!(
        (r.status, &r.body["already_held"], &r.body["seats"]),
        (200, &json!(true), &json!({"limit": 2, "used": 3}))
    );
    // Two holders must leave before a new user fits.
    for user in ["a", "b"] {
        tg.post("/v1/seats/release", Some(&tg.keys.all), &seat("33", user))
            .await;
    }
    let r = tg
        .post("/v1/seats/claim", Some(&tg.keys.all), &seat("33", "d"))
        .await;
    assert_eq!(
        (r.status, &r.body["seats"]),
        (200, &json!({"limit": 2, "used": 2})),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn seat_policies_come_from_the_tier() {
    let tg = Tollgate::sqlite();
    // business: a fixed 3 seats whatever was bought.
    tg.purchase("31", "acme-ci", "1003", Some(50)).await;
    for (user, allowed) in [("a", true), ("b", true), ("c", true), ("d", false)] {
        let d = tg
            .check(ask_with(
                "31",
                "acme-ci",
                json!({"user": user, "claim_seat": true}),
            ))
            .await;
        assert_eq!(d["allowed"], allowed, "{user}: {d}");
        assert_eq!(d["seats"]["limit"], 3);
    }
    // free: unlimited, nothing to claim or record.
    tg.purchase("32", "acme-ci", "1001", None).await;
    let d = tg
        .check(ask_with(
            "32",
            "acme-ci",
            json!({"user": "a", "claim_seat": true}),
        ))
        .await;
    assert_eq!(
        (&d["allowed"], &d["seats"]),
        (&json!(true), &json!({"limit": null, "used": 0}))
    );
    let r = tg
        .post("/v1/seats/claim", Some(&tg.keys.all), &seat("32", "a"))
        .await;
    assert_eq!(
        (r.status, &r.body["seats"]),
        (200, &json!({"limit": null, "used": 0}))
    );
}

fn seat(subscription_id: &str, user: &str) -> Value {
    json!({"marketplace": "github", "subscription_id": subscription_id, "user": user})
}

#[tokio::test]
async fn seats_are_claimed_idempotently_released_and_listed() {
    let tg = Tollgate::sqlite();
    tg.purchase("40", "acme-ci", "1002", Some(1)).await;
    let key = Some(tg.keys.seats_only.as_str());

    let r = tg.post("/v1/seats/claim", key, &seat("40", "alice")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"subscription": {"marketplace": "github", "id": "40"}, "user": "alice",
               "already_held": false, "seats": {"limit": 1, "used": 1}})
    );
    let r = tg.post("/v1/seats/claim", key, &seat("40", "alice")).await;
    assert_eq!((r.status, &r.body["already_held"]), (200, &json!(true)));

    let r = tg.post("/v1/seats/claim", key, &seat("40", "bob")).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (409, Some("seat_limit_reached"))
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 seats"),
        "{}",
        r.body
    );

    let r = tg.get("/v1/seats/github/40", key).await;
    assert_eq!(
        r.body,
        json!({"subscription": {"marketplace": "github", "id": "40"}, "product": "acme-ci",
               "seats": {"limit": 1, "used": 1}, "holders": ["alice"]})
    );

    let r = tg
        .post("/v1/seats/release", key, &seat("40", "alice"))
        .await;
    assert_eq!((r.status, &r.body["released"]), (200, &json!(true)));
    let r = tg
        .post("/v1/seats/release", key, &seat("40", "alice"))
        .await;
    assert_eq!(
        (r.status, &r.body["released"]),
        (200, &json!(false)),
        "releasing twice is harmless"
    );
    assert_eq!(
        tg.post("/v1/seats/claim", key, &seat("40", "bob"))
            .await
            .status,
        200,
        "the freed seat goes to bob"
    );
}

#[tokio::test]
async fn seats_of_missing_or_unentitled_subscriptions_are_refused() {
    let tg = Tollgate::sqlite();
    let key = Some(tg.keys.all.as_str());
    let r = tg
        .post("/v1/seats/claim", key, &seat("nope", "alice"))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    assert_eq!(tg.get("/v1/seats/github/nope", key).await.status, 404);

    tg.purchase("41", "acme-ci", "1002", Some(5)).await;
    tg.event("41", "acme-ci", EventKind::Suspended).await;
    let r = tg.post("/v1/seats/claim", key, &seat("41", "alice")).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (409, Some("suspended")),
        "{}",
        r.body
    );
}

// ---------------------------------------------------------------- customers --

#[tokio::test]
async fn a_customer_lists_its_subscriptions_as_apps_see_them() {
    let tg = Tollgate::sqlite();
    tg.purchase("50", "acme-ci", "1002", Some(5)).await;
    let change_at = t0() + Duration::days(12);
    let change = EventKind::ChangePending {
        plan: tollgate::model::Plan::new("1001"),
        seats: None,
        effective_at: change_at,
    };
    tg.event("50", "acme-ci", change).await;
    tg.purchase("50", "acme-docs", "2001", None).await;
    tg.check(ask_with(
        "50",
        "acme-ci",
        json!({"user": "alice", "claim_seat": true}),
    ))
    .await;

    let r = tg
        .get("/v1/customers/github/50", Some(&tg.keys.check_only))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["customer"],
        json!({"marketplace": "github", "id": "50"})
    );
    let subs = r.body["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 2);
    let ci = subs.iter().find(|s| s["product"] == "acme-ci").unwrap();
    assert_eq!(
        (&ci["tier"], &ci["status"], &ci["allowed"]),
        (&json!("team"), &json!("active"), &json!(true))
    );
    assert_eq!(ci["seats"], json!({"limit": 5, "used": 1}));
    assert_eq!(ci["pending_change"]["kind"], "plan");
    assert_eq!(ci["pending_change"]["plan"], "1001");
    let docs = subs.iter().find(|s| s["product"] == "acme-docs").unwrap();
    assert_eq!(
        docs["subscription"],
        json!({"marketplace": "github", "id": "50-acme-docs"})
    );

    let r = tg
        .get("/v1/customers/gcp/unknown-account", Some(&tg.keys.all))
        .await;
    assert_eq!((r.status, &r.body["subscriptions"]), (200, &json!([])));
}

// --------------------------------------------------------------------- auth --

#[tokio::test]
async fn requests_without_a_key_are_401_and_wrong_keys_401() {
    let tg = Tollgate::sqlite();
    let r = tg.post("/v1/check", None, &ask("1", "acme-ci")).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (401, Some("missing_credentials"))
    );
    let r = tg
        .post("/v1/check", Some("tgk_guessed"), &ask("1", "acme-ci"))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let x_api_key = http::Request::builder()
        .method("GET")
        .uri("/v1/customers/github/1")
        .header("x-api-key", &tg.keys.all)
        .body(tollgate::web::Body::Empty)
        .unwrap();
    assert_eq!(tg.send(x_api_key).await.status, 200, "x-api-key works too");
}

#[tokio::test]
async fn a_key_without_the_routes_scope_is_403() {
    let tg = Tollgate::sqlite();
    tg.purchase("60", "acme-ci", "1002", Some(5)).await;
    let checker = Some(tg.keys.check_only.as_str());
    let seater = Some(tg.keys.seats_only.as_str());
    let forbidden = |r: Reply| {
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (403, Some("insufficient_scope")),
            "{}",
            r.body
        )
    };
    forbidden(tg.post("/v1/seats/claim", checker, &seat("60", "a")).await);
    forbidden(
        tg.post("/v1/seats/release", checker, &seat("60", "a"))
            .await,
    );
    forbidden(tg.get("/v1/seats/github/60", checker).await);
    forbidden(
        tg.post(
            "/v1/check",
            checker,
            &ask_with("60", "acme-ci", json!({"user": "a", "claim_seat": true})),
        )
        .await,
    );
    forbidden(tg.post("/v1/check", seater, &ask("60", "acme-ci")).await);
    forbidden(tg.get("/v1/customers/github/60", seater).await);
    assert_eq!(
        tg.post("/v1/check", checker, &ask("60", "acme-ci"))
            .await
            .status,
        200
    );
    let list = tg.get("/v1/seats/github/60", seater).await;
    assert_eq!(
        list.body["holders"],
        json!([]),
        "the refused claim took no seat"
    );
}

#[tokio::test]
async fn an_iam_signed_function_url_request_is_trusted_without_a_key() {
    let tg = Tollgate::sqlite();
    tg.purchase("4242", "acme-ci", "1002", Some(5)).await;
    let fixture = include_str!("../fixtures/entitlement-check/function-url-iam-check.json");
    let req = lambda_http::request::from_str(fixture).expect("a function URL event");
    let r = tg.send(req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["allowed"], &r.body["tier"]),
        (&json!(true), &json!("team"))
    );

    // The same event through a URL without IAM auth (no authorizer): the
    // SigV4 header alone proves nothing to us.
    let mut event: Value = serde_json::from_str(fixture).unwrap();
    event["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let req = lambda_http::request::from_str(&event.to_string()).unwrap();
    let r = tg.send(req).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (401, Some("missing_credentials"))
    );
}

#[tokio::test]
async fn without_keys_requests_are_refused_unless_the_development_flag_is_set() {
    let store: Arc<dyn Store> =
        Arc::new(tollgate::store::sqlite::SqliteStore::open_in_memory().unwrap());
    let no_keys = || Keys {
        all: String::new(),
        check_only: String::new(),
        seats_only: String::new(),
    };
    let strict = Tollgate::with_auth(
        Arc::clone(&store),
        Authenticator::new(vec![], false),
        no_keys(),
    );
    let r = strict
        .send(request(
            "POST",
            "/v1/check",
            None,
            Some(ask("1", "acme-ci").to_string()),
        ))
        .await;
    assert_eq!(r.status, 401);
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains("IAM"),
        "{}",
        r.body
    );

    let dev = Tollgate::with_auth(store, Authenticator::new(vec![], true), no_keys());
    let r = dev
        .send(request(
            "POST",
            "/v1/check",
            None,
            Some(ask("1", "acme-ci").to_string()),
        ))
        .await;
    assert_eq!(
        (r.status, &r.body["reason"]),
        (200, &json!("no_subscription"))
    );
}

#[tokio::test]
async fn health_and_the_openapi_document_need_no_credentials() {
    let tg = Tollgate::sqlite();
    let r = tg.get("/healthz", None).await;
    assert_eq!(
        (r.status, &r.body["function"]),
        (200, &json!("entitlement-check"))
    );
    let r = tg.get("/v1/openapi.json", None).await;
    assert_eq!((r.status, &r.body["openapi"]), (200, &json!("3.1.0")));
}

// ------------------------------------------------------------------- errors --

#[tokio::test]
async fn malformed_bodies_get_clear_json_errors() {
    let tg = Tollgate::sqlite();
    let key = Some(tg.keys.all.as_str());
    let send = |body: &str| request("POST", "/v1/check", key, Some(body.to_owned()));

    let r = tg.send(send(r#"{"product": "acme-ci""#)).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{}",
        r.body
    );

    for (body, names) in [
        (r#"{"marketplace":"github","customer_id":"1"}"#, "product"),
        (r#"{"product":"acme-ci"}"#, "customer_id"),
        (
            r#"{"marketplace":"aws","customer_id":"1","product":"acme-ci"}"#,
            // The value is never echoed: what was expected is.
            "unknown variant, expected one of `github`",
        ),
        (
            r#"{"app_user":"u","product":"acme-ci","feautre":"sso"}"#,
            "feautre",
        ),
        (
            r#"{"app_user":"u","product":"acme-ci","claim_seat":true}"#,
            "user",
        ),
        (r#"{"app_user":"u","product":7}"#, "string"),
        (r#"[]"#, "CheckRequest"),
    ] {
        let r = tg.send(send(body)).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{body}: {message}");
        assert_eq!(r.body["error"]["request_id"], r.request_id.as_str());
    }

    let mut form = send("product=acme-ci");
    form.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    assert_eq!(tg.send(form).await.status, 415);

    let huge = format!(
        r#"{{"app_user":"u","product":"{}"}}"#,
        "x".repeat(MAX_BODY_BYTES)
    );
    let r = tg.send(send(&huge)).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
}

#[tokio::test]
async fn unknown_routes_are_json_404_and_wrong_methods_405() {
    let tg = Tollgate::sqlite();
    let key = Some(tg.keys.all.as_str());
    let r = tg.get("/v2/check", key).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let r = tg.get("/v1/check", key).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST")
    );
    let r = tg
        .send(request("DELETE", "/v1/seats/github/1", key, None))
        .await;
    assert_eq!(r.status, 405);
    let r = tg.get("/v1/customers/aws/1", key).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`github`") && !message.contains("aws"),
        "{message}"
    );
    let r = tg.get("/nope", None).await;
    assert_eq!(
        r.status, 404,
        "unknown routes are 404 even without credentials"
    );
}

// ------------------------------------------------ undefined product or feature --

/// A check naming a product or feature tollgate.toml does not define is told
/// apart from a denial: `unknown_product` / `unknown_feature`, HTTP 200 like
/// every decision, the same for a paying customer, an unknown one and an app
/// user, naming no subscription, and never taking a seat.
async fn undefined_names_are_not_denials(tg: Tollgate) {
    tg.purchase("1", "acme-ci", "1002", Some(1)).await;
    tg.store
        .link_user(
            &AppUser("u-1".into()),
            &UserLink::new(
                CustomerKey::new(Marketplace::Github, "1"),
                t0(),
                Duration::days(30),
            ),
        )
        .await
        .unwrap();
    let subjects = [
        json!({"marketplace": "github", "customer_id": "1"}),
        json!({"marketplace": "github", "customer_id": "404"}),
        json!({"app_user": "u-1"}),
    ];
    let with = |subject: &Value, extra: Value| {
        let mut body = subject.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for subject in &subjects {
        for (extra, reason) in [
            (json!({"product": "acme-cl"}), "unknown_product"),
            (
                json!({"product": "acme-cl", "feature": "private-repos"}),
                "unknown_product",
            ),
            (
                json!({"product": "acme-ci", "feature": "private-repo"}),
                "unknown_feature",
            ),
            (
                json!({"product": "acme-ci", "feature": "priv", "user": "bob", "claim_seat": true}),
                "unknown_feature",
            ),
            // A feature of another product is not this product's.
            (
                json!({"product": "acme-ci", "feature": "write"}),
                "unknown_feature",
            ),
        ] {
            let body = with(subject, extra);
            let reply = tg.post("/v1/check", Some(&tg.keys.all), &body).await;
            assert_eq!(reply.status, 200, "{body}: {}", reply.body);
            assert_eq!(
                reply.body,
                json!({
                    "allowed": false, "reason": reason, "subscription": null,
                    "status": null, "plan": null, "tier": null, "features": [],
                    "trial_days_left": null, "access_until": null, "seats": null
                }),
                "{body}"
            );
        }
        // Defined names are real questions: a feature of a higher tier is
        // not in the plan (or there is no subscription at all).
        let d = tg
            .check(with(
                subject,
                json!({"product": "acme-ci", "feature": "sso"}),
            ))
            .await;
        assert!(
            ["feature_not_in_plan", "no_subscription"].contains(&d["reason"].as_str().unwrap()),
            "{d}"
        );
    }
    let seats = tg.get("/v1/seats/github/1", Some(&tg.keys.all)).await;
    assert_eq!(seats.body["holders"], json!([]), "no seat was taken");
}

#[tokio::test]
async fn undefined_names_are_not_denials_on_sqlite() {
    undefined_names_are_not_denials(Tollgate::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undefined_names_are_not_denials_on_dynamodb() {
    let store = tollgate_tests::moto::fresh_store().await;
    undefined_names_are_not_denials(Tollgate::on(Arc::new(store))).await;
}

/// The app's side, over real HTTP: `RequireEntitlement` asking about a
/// product or feature Tollgate does not define answers 500 with the reason
/// (the app needs fixing; the customer can do nothing) and never calls the
/// app; a defined one passes.
#[tokio::test]
async fn the_entitlement_layer_fails_closed_with_500_on_an_undefined_name() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tollgate_client::{CustomerRef, EntitlementClient, RequireEntitlement, Subject};
    use tower::{Layer, ServiceExt};

    let tg = Tollgate::sqlite();
    tg.purchase("1", "acme-ci", "1002", Some(5)).await;
    let served = tollgate_tests::serve::serve_function(Arc::clone(&tg.handler)).await;
    let client = EntitlementClient::new(&served.url(""), Some(&tg.keys.all)).unwrap();
    let reached = Arc::new(AtomicUsize::new(0));
    let customer = CustomerRef::customer(Marketplace::Github, "1");
    for (product, feature, status, code) in [
        ("acme-cl", None, 500, Some("unknown_product")),
        (
            "acme-ci",
            Some("private-repo"),
            500,
            Some("unknown_feature"),
        ),
        ("acme-ci", Some("sso"), 402, Some("feature_not_in_plan")),
        ("acme-ci", Some("private-repos"), 200, None),
    ] {
        let app = {
            let reached = Arc::clone(&reached);
            tower::service_fn(move |_req: http::Request<()>| {
                reached.fetch_add(1, Ordering::SeqCst);
                async {
                    Ok::<_, std::convert::Infallible>(axum::response::Response::new(
                        axum::body::Body::empty(),
                    ))
                }
            })
        };
        let customer = customer.clone();
        let mut layer = RequireEntitlement::new(client.clone(), product, move |_| {
            Some(Subject::new(customer.clone(), None))
        });
        if let Some(feature) = feature {
            layer = layer.feature(feature);
        }
        let before = reached.load(Ordering::SeqCst);
        let res = layer
            .layer(app)
            .oneshot(http::Request::new(()))
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "{product} {feature:?}");
        let passed = reached.load(Ordering::SeqCst) > before;
        assert_eq!(passed, status == 200, "{product} {feature:?}");
        if let Some(code) = code {
            let body = axum::body::to_bytes(res.into_body(), 1 << 16)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"]["code"], code, "{body}");
        }
    }
}

/// Every function answers a method its path does not take with 405 and an
/// `Allow` header naming the methods it does (RFC 9110 requires it), and an
/// unknown path with 404 and no `Allow`: entitlement-check's routes, and the
/// webhook, Pub/Sub and page routes of the other three functions.
#[tokio::test]
async fn every_functions_wrong_methods_are_405_with_allow() {
    use tollgate::testing::TestApp;
    use tollgate::web::{Function, serve};

    async fn answer(f: &dyn Function, method: &str, path: &str) -> (u16, Option<String>, Value) {
        let res = serve(f, request(method, path, None, None)).await;
        let allow = res
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = serde_json::from_slice(res.body().as_ref()).unwrap_or(Value::Null);
        (res.status().as_u16(), allow, body)
    }

    let tg = Tollgate::sqlite();
    let app = TestApp::new();
    /// A function and its routes: (method, path or template).
    type Served = (
        &'static str,
        Box<dyn Function>,
        Vec<(&'static str, &'static str)>,
    );
    let fill = |template: &str| {
        template
            .replace("{marketplace}", "github")
            .replace("{app_user}", "github:7")
            .replace("{customer_id}", "1")
            .replace("{subscription_id}", "1")
    };
    let functions: [Served; 4] = [
        (
            "entitlement-check",
            Box::new(Arc::clone(&tg.handler)),
            tollgate::api::routes::ROUTES
                .iter()
                .map(|r| (r.method, r.path))
                .collect(),
        ),
        (
            "purchase-webhook",
            Box::new(app.purchase_webhook().unwrap()),
            vec![
                ("GET", "/healthz"),
                ("POST", "/github"),
                ("POST", "/"),
                ("POST", "/q2"),
            ],
        ),
        (
            "pubsub-push",
            Box::new(app.pubsub_push().unwrap()),
            vec![("GET", "/healthz"), ("POST", "/")],
        ),
        (
            "oauth-callback",
            Box::new(app.oauth_callback().unwrap()),
            vec![
                ("GET", "/healthz"),
                ("GET", "/github/setup"),
                ("GET", "/github/callback"),
                ("POST", "/gcp/signup"),
                ("GET", "/gcp/login"),
                ("POST", "/gcp/login"),
            ],
        ),
    ];
    for (name, f, routes) in &functions {
        let paths: BTreeSet<String> = routes.iter().map(|(_, p)| fill(p)).collect();
        for path in paths {
            let template_methods: Vec<&str> = routes
                .iter()
                .filter(|(_, p)| fill(p) == path)
                .map(|(m, _)| *m)
                .collect();
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                if template_methods.contains(&method) {
                    continue;
                }
                let (status, allow, body) = answer(&**f, method, &path).await;
                assert_eq!(status, 405, "{name}: {method} {path}");
                assert_eq!(
                    allow.as_deref(),
                    Some(template_methods.join(", ").as_str()),
                    "{name}: {method} {path}"
                );
                assert_eq!(body["error"]["code"], "method_not_allowed", "{name}");
            }
        }
        let (status, allow, _) = answer(&**f, "GET", "/no/such/path").await;
        assert_eq!((status, allow), (404, None), "{name}");
    }
}

// ------------------------------------------------------ concurrent seat race --

/// 50 users claim at once through `/v1/seats/claim` on a 10-seat plan.
async fn fifty_claims_for_ten_seats(tg: Tollgate) {
    let tg = Arc::new(tg);
    tg.purchase("70", "acme-ci", "1002", Some(10)).await;
    let claims = (0..50).map(|i| {
        let tg = Arc::clone(&tg);
        tokio::spawn(async move {
            let r = tg
                .post(
                    "/v1/seats/claim",
                    Some(&tg.keys.all),
                    &seat("70", &format!("user-{i:02}")),
                )
                .await;
            (r.status, r.body)
        })
    });
    let mut granted = Vec::new();
    let mut refused = 0;
    for claim in claims.collect::<Vec<_>>() {
        match claim.await.unwrap() {
            (200, body) => granted.push(body["user"].as_str().unwrap().to_owned()),
            (409, body) => {
                assert_eq!(body["error"]["code"], "seat_limit_reached", "{body}");
                refused += 1;
            }
            (status, body) => panic!("{status}: {body}"),
        }
    }
    assert_eq!((granted.len(), refused), (10, 40));
    let list = tg.get("/v1/seats/github/70", Some(&tg.keys.all)).await;
    granted.sort();
    assert_eq!(list.body["holders"], json!(granted));
    assert_eq!(list.body["seats"], json!({"limit": 10, "used": 10}));

    // Releasing three frees exactly three seats for the next rush.
    for user in &granted[..3] {
        let r = tg
            .post("/v1/seats/release", Some(&tg.keys.all), &seat("70", user))
            .await;
        assert_eq!(r.body["released"], true);
    }
    let rush = (0..10).map(|i| {
        let tg = Arc::clone(&tg);
        tokio::spawn(async move {
            let body = ask_with(
                "70",
                "acme-ci",
                json!({"user": format!("late-{i}"), "claim_seat": true}),
            );
            tg.check(body).await
        })
    });
    let mut allowed = 0;
    for d in rush.collect::<Vec<_>>() {
        let d = d.await.unwrap();
        if d["allowed"] == true {
            allowed += 1;
        } else {
            assert_eq!(d["reason"], "seat_limit_reached", "{d}");
        }
    }
    assert_eq!(allowed, 3);
    let list = tg.get("/v1/seats/github/70", Some(&tg.keys.all)).await;
    assert_eq!(list.body["seats"]["used"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_seat_claims_for_ten_seats_on_dynamodb_grant_exactly_ten() {
    let store = tollgate_tests::moto::fresh_store().await;
    fifty_claims_for_ten_seats(Tollgate::on(Arc::new(store))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_seat_claims_for_ten_seats_on_sqlite_grant_exactly_ten() {
    fifty_claims_for_ten_seats(Tollgate::sqlite()).await;
}
