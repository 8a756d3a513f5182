//! The stand-ins as the marketplace (`/_sim`, what `tollgate fire` drives):
//! each action changes the stand-in's own record, which GitHub's API then
//! reports, and sends the event signed the way the marketplace signs it —
//! checked here with Tollgate's own signature checks and parsers, against a
//! webhook endpoint that records what it receives.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use tollgate::marketplace::github::{signature, webhook as parsed};
use tollgate_sim::github::control::{ControlError, FireRequest, Remote};
use tollgate_sim::github::webhook::Action;
use tollgate_sim::github::{GithubSim, Org, Plan, PriceModel, Purchase, User};
use tollgate_sim::q2::stand_in::{Q2Request, Q2Sim};

/// What the endpoint received: headers and body of each request.
type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A webhook endpoint on a free port answering `reply`; its URL and what it
/// received.
async fn endpoint(reply: Value) -> (String, Received) {
    let received: Received = Arc::default();
    let app =
        axum::Router::new()
            .fallback(
                |State((seen, reply)): State<(Received, Value)>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    seen.lock().unwrap().push((headers, body.to_vec()));
                    axum::Json(reply)
                },
            )
            .with_state((received.clone(), reply));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// The demo listing: Free, Team (per seat, trial), Business (flat rate);
/// octocat, member of acme, which is on Team x5.
fn github() -> GithubSim {
    let sim = GithubSim::generate().unwrap();
    sim.add_plan(Plan::new(1001, 1, "Free", PriceModel::Free));
    sim.add_plan(Plan::new(1002, 2, "Team", PriceModel::PerUnit).with_free_trial());
    sim.add_plan(Plan::new(1003, 3, "Business", PriceModel::FlatRate));
    sim.add_user(User::new(1, "octocat"));
    sim.add_org(Org::new(2001, "acme").with_member(1));
    sim.add_purchase(Purchase::new(2001, 1002).with_units(5));
    sim
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn each_action_changes_the_purchase_and_sends_a_webhook_signed_like_github() {
    let sim = github();
    let (url, received) = endpoint(json!({"status": "applied"})).await;
    sim.set_webhook(format!("{url}/github"), b"listing-secret".to_vec());

    // Fewer seats: the plan stays, only the units change.
    let fired = sim
        .fire(
            2001,
            Action::Changed,
            &FireRequest {
                units: Some(2),
                ..FireRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fired.webhook.status, Some(200));
    let after = sim.purchase_view(2001).unwrap();
    assert_eq!((after.plan_id, after.unit_count), (1002, Some(2)));

    let (headers, body) = received.lock().unwrap()[0].clone();
    assert_eq!(
        signature::verify(
            b"listing-secret",
            &body,
            header(&headers, "x-hub-signature-256")
        ),
        Ok(())
    );
    assert!(signature::verify(b"another", &body, header(&headers, "x-hub-signature-256")).is_err());
    assert_eq!(
        header(&headers, "x-github-event"),
        Some("marketplace_purchase")
    );
    assert_eq!(
        header(&headers, "x-github-delivery"),
        Some(fired.delivery_id.as_str())
    );
    let p = parsed::parse(&body).unwrap();
    assert_eq!(p.action.as_str(), "changed");
    assert_eq!(p.purchase.plan.id, 1002);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["marketplace_purchase"]["unit_count"], 2);
    assert_eq!(v["previous_marketplace_purchase"]["unit_count"], 5);

    // A pending change, then `changed` without flags: the change applies.
    sim.fire(
        2001,
        Action::PendingChange,
        &FireRequest {
            plan: Some(1003),
            ..FireRequest::default()
        },
    )
    .await
    .unwrap();
    let pending = sim.purchase_view(2001).unwrap().pending_change.unwrap();
    assert_eq!((pending.plan_id, pending.cancellation), (1003, false));
    sim.fire(2001, Action::Changed, &FireRequest::default())
        .await
        .unwrap();
    let after = sim.purchase_view(2001).unwrap();
    assert_eq!((after.plan_id, after.unit_count), (1003, None));
    assert!(after.pending_change.is_none());

    // A paid plan's cancellation: a pending change back to the same
    // purchase, effective at the end of the cycle ...
    let fired = sim
        .fire(2001, Action::Cancelled, &FireRequest::default())
        .await
        .unwrap();
    assert_eq!(fired.action, "pending_change");
    let body = received.lock().unwrap().last().unwrap().1.clone();
    let p = parsed::parse(&body).unwrap();
    let info = parsed::DeliveryInfo {
        id: "d",
        received_at: Utc::now(),
    };
    assert_eq!(
        parsed::normalize(&p, info, "acme-ci").kind.name(),
        "cancellation_pending"
    );
    assert!(
        sim.purchase_view(2001)
            .unwrap()
            .pending_change
            .unwrap()
            .cancellation
    );
    // ... and `cancelled` again is the end of the cycle: the purchase goes.
    let fired = sim
        .fire(2001, Action::Cancelled, &FireRequest::default())
        .await
        .unwrap();
    assert_eq!(fired.action, "cancelled");
    assert!(sim.purchase_view(2001).is_none());

    // A new purchase starts from the last one's plan.
    let fired = sim
        .fire(2001, Action::Purchased, &FireRequest::default())
        .await
        .unwrap();
    assert_eq!(fired.purchase.unwrap().plan_id, 1003);
    assert_eq!(received.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn a_trial_ends_at_once_and_refused_actions_send_nothing() {
    let sim = github();
    let (url, received) = endpoint(json!({"status": "applied"})).await;
    sim.set_webhook(format!("{url}/github"), b"s".to_vec());
    let fired = sim
        .fire(
            2001,
            Action::Purchased,
            &FireRequest {
                trial: true,
                ..FireRequest::default()
            },
        )
        .await
        .unwrap();
    let trial = fired.purchase.unwrap();
    assert!(trial.on_free_trial);
    let ends = (Utc::now() + Duration::days(14)).date_naive().to_string();
    assert_eq!(trial.free_trial_ends_on.as_deref(), Some(ends.as_str()));
    let fired = sim
        .fire(2001, Action::Cancelled, &FireRequest::default())
        .await
        .unwrap();
    assert_eq!(fired.action, "cancelled");
    let sent = received.lock().unwrap().len();

    for (account, action, req, expected) in [
        (
            2001,
            Action::PendingChangeCancelled,
            FireRequest::default(),
            "has no purchase",
        ),
        (9, Action::Changed, FireRequest::default(), "no account 9"),
        (
            2001,
            Action::Purchased,
            FireRequest {
                plan: Some(1003),
                trial: true,
                ..FireRequest::default()
            },
            "no free trial",
        ),
    ] {
        let err = sim.fire(account, action, &req).await.unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    sim.fire(2001, Action::Purchased, &FireRequest::default())
        .await
        .unwrap();
    let err = sim
        .fire(2001, Action::Changed, &FireRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ControlError::Invalid(_)), "{err}");
    assert_eq!(received.lock().unwrap().len(), sent + 1);

    // Without a webhook URL nothing changes.
    let quiet = github();
    let err = quiet
        .fire(2001, Action::Cancelled, &FireRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err, ControlError::NoWebhook);
    assert!(quiet.purchase_view(2001).is_some());
}

#[tokio::test]
async fn the_api_and_the_control_routes_report_the_same_purchase() {
    let sim = github();
    let (url, _) = endpoint(json!({"status": "applied"})).await;
    sim.set_webhook(format!("{url}/github"), b"s".to_vec());
    let running = sim.start().await.unwrap();
    let remote = Remote::new(&running.web_url);

    let fired = remote
        .fire(
            3001,
            Action::Purchased,
            &FireRequest {
                plan: Some(1002),
                units: Some(4),
                login: Some("newco".into()),
                ..FireRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fired.webhook.status, Some(200));
    let view = remote.purchase(3001).await.unwrap().unwrap();
    assert_eq!(
        (
            view.login.as_str(),
            view.account_type.as_str(),
            view.unit_count
        ),
        ("newco", "Organization", Some(4))
    );
    assert!(remote.purchase(4242).await.unwrap().is_none());
    let err = remote
        .fire(4242, Action::Changed, &FireRequest::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

fn q2_request(action: &str) -> Q2Request {
    Q2Request {
        action: action.into(),
        subscription: None,
        fi_name: "Local Credit Union".into(),
        user_id: 7,
        product_identifier: "3f2c7f0e-budgethelper".into(),
        edition: None,
        users: None,
        pricing: None,
        casing: None,
    }
}

#[tokio::test]
async fn the_q2_stand_in_relays_signed_events_and_keeps_only_what_succeeded() {
    let sim = Q2Sim::new();
    let (url, received) = endpoint(json!({"success": true, "accountIdentifier": "x"})).await;
    sim.set_relay(format!("{url}/q2"), b"q2-secret".to_vec());

    let fired = sim.fire(&q2_request("subscribe")).await.unwrap();
    assert!(fired.relay.succeeded());
    assert_eq!(fired.customer_id, "Local Credit Union:7");
    assert_eq!(fired.subscription.edition.as_deref(), Some("PREMIUM"));
    let (headers, body) = received.lock().unwrap()[0].clone();
    assert_eq!(
        tollgate::marketplace::q2::signature::verify_any(
            [b"q2-secret".as_slice()],
            &body,
            header(&headers, "tollgate-signature"),
            Utc::now()
        ),
        Ok(())
    );
    let read = tollgate::marketplace::q2::event::parse(&body).unwrap();
    assert_eq!(read.subscription_id, fired.subscription.subscription_id);

    // An update starts from what Q2 holds: only the users change.
    let mut more = q2_request("update");
    more.users = Some(4);
    let fired = sim.fire(&more).await.unwrap();
    assert_eq!(
        (
            fired.subscription.edition.as_deref(),
            fired.subscription.users
        ),
        (Some("PREMIUM"), 4)
    );
    assert!(sim.fire(&q2_request("update")).await.is_err());

    // A refused event changes nothing at Q2.
    let refusing = Q2Sim::new();
    let (url, _) = endpoint(json!({"success": false, "errorCode": "MAX_USERS_REACHED"})).await;
    refusing.set_relay(format!("{url}/q2"), b"q2-secret".to_vec());
    let fired = refusing.fire(&q2_request("subscribe")).await.unwrap();
    assert!(!fired.relay.succeeded());
    assert!(refusing.subscriptions().is_empty());
}
