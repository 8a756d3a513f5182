//! Google Cloud Marketplace end to end: the real `pubsub-push` and
//! `oauth-callback` functions over HTTP, driven by the Google stand-in
//! (`tollgate_sim::gcp`), which signs its Pub/Sub pushes and sign-up tokens
//! with keys made at test time and moves its entitlements the way Google
//! does. Every scenario runs on the embedded store and on DynamoDB (moto).

use std::sync::Arc;

use serde_json::{Value, json};
use tollgate::api::auth::Authenticator;
use tollgate::model::{Marketplace, Status, SubscriptionKey};
use tollgate::store::Store;
use tollgate::store::sqlite::SqliteStore;
use tollgate::testing::TestApp;
use tollgate::web::{Body, Function, serve};
use tollgate_sim::gcp::{
    ApprovalState, BadPushToken, BadSignupToken, EventType, Fault, GcpSim, Notification,
    PushConfig, Pushed, Running,
};
use tollgate_tests::serve::{Served, serve_function};

/// The push subscription's audience.
const AUDIENCE: &str = "https://tollgate.example/pubsub";
const PRODUCT: &str = "acme-ci";

struct World {
    sim: GcpSim,
    _google: Running,
    store: Arc<dyn Store>,
    _pubsub: Served,
    oauth: Served,
    check: tollgate::functions::entitlement_check::EntitlementCheck,
    http: reqwest::Client,
    _guard: Box<dyn Send + Sync>,
}

impl World {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tollgate.db")).unwrap();
        Self::start(Arc::new(store), Box::new(dir)).await
    }

    async fn dynamodb() -> Self {
        Self::start(
            Arc::new(tollgate_tests::moto::fresh_store().await),
            Box::new(()),
        )
        .await
    }

    async fn start(store: Arc<dyn Store>, guard: Box<dyn Send + Sync>) -> Self {
        let sim = GcpSim::generate().expect("stand-in keys");
        let google = sim.start().await.expect("stand-in starts");
        // Tokens are minted on the real clock, so the functions use it too.
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
        let check = app.entitlement_check(Authenticator::new(vec![], true));
        World {
            sim,
            _google: google,
            store,
            _pubsub: pubsub,
            oauth,
            check,
            http: reqwest::Client::new(),
            _guard: guard,
        }
    }

    /// `POST /gcp/signup` as the customer's browser does.
    async fn sign_up_with(&self, token: &str) -> (u16, String) {
        let res = self
            .http
            .post(self.oauth.url("/gcp/signup"))
            .form(&[("x-gcp-marketplace-token", token)])
            .send()
            .await
            .expect("oauth-callback answers");
        let status = res.status().as_u16();
        (status, res.text().await.unwrap_or_default())
    }

    async fn sign_up(&self, account: &str) -> String {
        let (status, page) = self.sign_up_with(&self.sim.signup_token(account)).await;
        assert_eq!(status, 200, "{page}");
        page
    }

    /// The single-use record of a sign-up token, taken (so at most once).
    async fn used_record(&self, token: &str) -> Option<String> {
        use tollgate::marketplace::gcp::signup::USED_TOKEN_KIND;
        self.store
            .take_token(
                USED_TOKEN_KIND,
                &tollgate::store::sha256_hex(token.trim().as_bytes()),
                chrono::Utc::now(),
            )
            .await
            .expect("the store answers")
    }

    /// `/v1/check` for the account, as an app would ask.
    async fn check(&self, account: &str) -> Value {
        let body = json!({"marketplace": "gcp", "customer_id": account, "product": PRODUCT});
        let req = http::Request::builder()
            .method("POST")
            .uri("/v1/check")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let res = serve(&self.check, req).await;
        assert_eq!(res.status(), 200);
        serde_json::from_slice(res.body().as_ref()).unwrap()
    }

    async fn state(&self, entitlement: &str) -> tollgate::model::Subscription {
        self.store
            .get(&SubscriptionKey::new(Marketplace::Gcp, entitlement))
            .await
            .unwrap()
            .expect("the entitlement is stored")
    }

    async fn log_len(&self, entitlement: &str) -> usize {
        self.store
            .log(&SubscriptionKey::new(Marketplace::Gcp, entitlement))
            .await
            .unwrap()
            .len()
    }

    async fn pending(&self) -> usize {
        self.store
            .pending_deliveries(Marketplace::Gcp, chrono::Utc::now())
            .await
            .unwrap()
            .len()
    }

    /// An active `team-monthly` entitlement of `account`, signed up.
    async fn active(&self, account: &str) -> String {
        let order = self.sim.order(account, "team-monthly").await.unwrap();
        all_acked(&order.pushed);
        self.sign_up(account).await;
        all_acked(&self.sim.deliver_queued().await);
        assert_eq!(self.check(account).await["status"], "active");
        order.entitlement_id
    }
}

fn all_acked(pushed: &[Pushed]) {
    for p in pushed {
        assert!(
            p.acked(),
            "{} was not acknowledged: {:?} {}",
            p.event_type(),
            p.status,
            p.reply
        );
    }
}

tollgate_tests::on_both_stores!(World;
    an_order_before_sign_up_waits_and_is_approved_at_sign_up,
    an_order_after_sign_up_is_approved_at_once,
    a_plan_change_is_approved_then_applied_when_google_says_changed,
    a_pending_cancellation_keeps_access_and_can_be_reverted,
    a_pending_cancellation_ends_access_at_the_end_of_the_term,
    an_unconfigured_plan_is_rejected_with_a_reason,
    duplicate_and_reordered_messages_change_state_once_and_never_back,
    a_republished_notification_is_a_duplicate_and_a_reused_event_id_is_refused,
    a_procurement_outage_is_retried_inside_the_push_or_by_pubsub,
    an_unknown_event_type_is_recorded_and_acknowledged,
    a_deleted_account_loses_every_entitlement,
    forged_push_tokens_are_refused_and_store_nothing,
    bad_and_replayed_sign_up_tokens_are_refused_and_link_nothing,
    a_second_sign_up_duplicates_nothing,
    a_rotated_google_key_is_fetched_once,
    a_private_offer_renews_and_outlives_its_discount,
    a_google_user_who_signs_up_for_a_second_account_keeps_the_first,
);

async fn an_order_before_sign_up_waits_and_is_approved_at_sign_up(w: World) {
    let order = w.sim.order("acct-1", "team-monthly").await.unwrap();
    all_acked(&order.pushed);
    let c = w.check("acct-1").await;
    assert_eq!(
        (&c["allowed"], &c["reason"]),
        (&json!(false), &json!("pending_signup"))
    );
    assert_eq!(
        w.sim
            .entitlement(&order.entitlement_id)
            .unwrap()
            .state
            .as_str(),
        "ENTITLEMENT_ACTIVATION_REQUESTED",
        "never approved before sign-up"
    );

    let page = w.sign_up("acct-1").await;
    assert!(page.contains("team"), "{page}");
    assert!(w.sim.account("acct-1").unwrap().signup == ApprovalState::Approved);
    all_acked(&w.sim.deliver_queued().await);
    let c = w.check("acct-1").await;
    assert_eq!(
        (&c["allowed"], &c["status"], &c["tier"]),
        (&json!(true), &json!("active"), &json!("team"))
    );
}

async fn an_order_after_sign_up_is_approved_at_once(w: World) {
    w.active("acct-2").await;
    let second = w.sim.order("acct-2", "business-yearly").await.unwrap();
    all_acked(&second.pushed);
    // Our approval queued ENTITLEMENT_ACTIVE at Google.
    all_acked(&w.sim.deliver_queued().await);
    let s = w.state(&second.entitlement_id).await;
    assert_eq!(
        (s.status, s.plan.id.as_str()),
        (Status::Active, "business-yearly")
    );
}

async fn a_plan_change_is_approved_then_applied_when_google_says_changed(w: World) {
    let ent = w.active("acct-3").await;
    all_acked(
        &w.sim
            .request_plan_change(&ent, "business-yearly")
            .await
            .unwrap(),
    );
    let approvals: Vec<_> = w
        .sim
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with(":approvePlanChange"))
        .collect();
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    assert_eq!(
        approvals[0].body.as_ref().unwrap()["pendingPlanName"],
        "business-yearly"
    );
    all_acked(&w.sim.deliver_queued().await);
    let c = w.check("acct-3").await;
    assert_eq!(
        (&c["status"], &c["plan"]),
        (&json!("active"), &json!("business-yearly"))
    );
}

async fn a_pending_cancellation_keeps_access_and_can_be_reverted(w: World) {
    let ent = w.active("acct-4").await;
    all_acked(&w.sim.cancel(&ent).await.unwrap());
    let c = w.check("acct-4").await;
    assert_eq!(
        (&c["allowed"], &c["status"]),
        (&json!(true), &json!("pending_cancellation"))
    );
    assert!(c["access_until"].is_string(), "{c}");
    all_acked(&w.sim.revert_cancellation(&ent).await.unwrap());
    let c = w.check("acct-4").await;
    assert_eq!(
        (&c["status"], &c["access_until"]),
        (&json!("active"), &Value::Null)
    );
}

async fn a_pending_cancellation_ends_access_at_the_end_of_the_term(w: World) {
    let ent = w.active("acct-5").await;
    all_acked(&w.sim.cancel(&ent).await.unwrap());
    all_acked(&w.sim.end_term(&ent).await.unwrap());
    // The example config keeps cancelled customers on its free tier.
    let c = w.check("acct-5").await;
    assert_eq!(
        (&c["status"], &c["tier"], &c["access_until"]),
        (&json!("cancelled"), &json!("free"), &Value::Null)
    );
}

async fn an_unconfigured_plan_is_rejected_with_a_reason(w: World) {
    w.active("acct-6").await;
    let order = w.sim.order("acct-6", "enterprise-custom").await.unwrap();
    all_acked(&order.pushed);
    let rejects: Vec<_> = w
        .sim
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with(":reject"))
        .collect();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert!(
        rejects[0].body.as_ref().unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("enterprise-custom")
    );
}

async fn duplicate_and_reordered_messages_change_state_once_and_never_back(w: World) {
    let ent = w.active("acct-7").await;
    let before = w.log_len(&ent).await;
    w.sim.hold_deliveries(true);
    w.sim.cancel(&ent).await.unwrap();
    w.sim.revert_cancellation(&ent).await.unwrap();
    let held = w.sim.take_queued();
    assert_eq!(held.len(), 2, "pending cancellation and its revert");
    // Newest first, then the older one twice: each GET sees Google's
    // current state (active), so the late messages change nothing.
    for request in [&held[1], &held[0], &held[0]] {
        let pushed = w.sim.deliver(request).await;
        assert!(pushed.acked(), "{:?} {}", pushed.status, pushed.reply);
    }
    let s = w.state(&ent).await;
    assert_eq!((s.status, s.access_until), (Status::Active, None));
    // Two distinct messages recorded; the duplicate is not logged again.
    assert_eq!(w.log_len(&ent).await, before + 2);
}

/// The push under another `messageId` (and `message_id`), with `data`
/// replaced by `notification` when given.
fn republished(
    request: &tollgate_sim::gcp::PushRequest,
    message_id: &str,
    notification: Option<&Notification>,
) -> tollgate_sim::gcp::PushRequest {
    use base64::Engine;
    let mut envelope = request.envelope();
    envelope["message"]["messageId"] = message_id.into();
    envelope["message"]["message_id"] = message_id.into();
    let mut copy = request.clone();
    if let Some(n) = notification {
        let data = serde_json::to_vec(n).unwrap();
        envelope["message"]["data"] = base64::engine::general_purpose::STANDARD
            .encode(data)
            .into();
        copy.notification = n.clone();
    }
    copy.body = serde_json::to_vec(&envelope).unwrap();
    copy.message_id = message_id.to_owned();
    copy
}

/// Content-level idempotency for Google. A delivery is named by the
/// notification's `eventId` (Pub/Sub's `messageId` only when there is
/// none), so the same notification published again under a fresh
/// `messageId` is the same delivery: acknowledged, nothing changes. An
/// `eventId` seen before carrying other content is refused (409) and
/// changes nothing.
async fn a_republished_notification_is_a_duplicate_and_a_reused_event_id_is_refused(w: World) {
    let ent = w.active("acct-17").await;
    w.sim.hold_deliveries(true);
    w.sim.cancel(&ent).await.unwrap();
    let held = w.sim.take_queued();
    assert_eq!(held.len(), 1, "the pending cancellation");
    assert!(w.sim.deliver(&held[0]).await.acked());
    let before = (w.state(&ent).await, w.log_len(&ent).await);
    assert_eq!(before.0.status, Status::PendingCancellation);

    let again = w
        .sim
        .deliver(&republished(&held[0], "republished-1", None))
        .await;
    assert!(again.acked(), "{:?} {}", again.status, again.reply);
    assert!(again.reply.contains("duplicate"), "{}", again.reply);
    assert_eq!((w.state(&ent).await, w.log_len(&ent).await), before);

    // Another notification (the revert) under the first one's event id.
    w.sim.revert_cancellation(&ent).await.unwrap();
    let revert = w.sim.take_queued();
    assert_eq!(revert.len(), 1);
    let mut forged = revert[0].notification.clone();
    forged.event_id = held[0].notification.event_id.clone();
    let refused = w
        .sim
        .deliver(&republished(&revert[0], "republished-2", Some(&forged)))
        .await;
    assert_eq!(refused.status, Some(409), "{}", refused.reply);
    assert!(
        refused.reply.contains("delivery_id_reused"),
        "{}",
        refused.reply
    );
    assert_eq!((w.state(&ent).await, w.log_len(&ent).await), before);
    assert_eq!(w.pending().await, 0);
}

async fn a_procurement_outage_is_retried_inside_the_push_or_by_pubsub(w: World) {
    // One 503: the client retries within the push.
    w.sim.fail_next(1, Fault::Unavailable);
    let order = w.sim.order("acct-8", "team-monthly").await.unwrap();
    all_acked(&order.pushed);
    assert_eq!(w.check("acct-8").await["reason"], "pending_signup");

    // Google down for longer than the push's deadline: 503, nothing stored,
    // the message stays with Pub/Sub and is redelivered later.
    // Five failures: every attempt the client makes within its deadline.
    w.sim.fail_next(5, Fault::Unavailable);
    let pushed = w
        .sim
        .cancel_now(&order.entitlement_id, "user-cancelled")
        .await;
    let pushed = pushed.unwrap();
    assert!(
        pushed.iter().all(|p| p.status == Some(503)),
        "{:?}",
        pushed
            .iter()
            .map(|p| (p.status, &p.reply))
            .collect::<Vec<_>>()
    );
    assert_eq!(w.state(&order.entitlement_id).await.status, Status::Pending);
    all_acked(&w.sim.deliver_queued().await);
    assert_eq!(
        w.state(&order.entitlement_id).await.status,
        Status::Cancelled
    );
}

async fn an_unknown_event_type_is_recorded_and_acknowledged(w: World) {
    let ent = w.active("acct-9").await;
    let current = w.sim.entitlement(&ent).unwrap();
    let mut n = Notification::entitlement(
        &w.sim.listing().provider_id,
        EventType::EntitlementActive,
        &current,
    );
    n.event_type = "ENTITLEMENT_TELEPORTED".into();
    n.event_id = format!("ENTITLEMENT_TELEPORTED-{ent}");
    let pushed = w.sim.publish(n).await;
    all_acked(&pushed);
    // Fetched and observed unchanged: still active, one more log line.
    assert_eq!(w.state(&ent).await.status, Status::Active);
    assert_eq!(w.pending().await, 0);
}

async fn a_deleted_account_loses_every_entitlement(w: World) {
    let first = w.active("acct-10").await;
    let second = w.sim.order("acct-10", "business-yearly").await.unwrap();
    all_acked(&w.sim.deliver_queued().await);
    for ent in [&first, &second.entitlement_id] {
        w.sim.cancel_now(ent, "account-closed").await.unwrap();
    }
    all_acked(&w.sim.delete_account("acct-10").await.unwrap());
    for ent in [&first, &second.entitlement_id] {
        assert_eq!(w.state(ent).await.status, Status::Cancelled);
    }
    let c = w.check("acct-10").await;
    assert_eq!(
        (&c["status"], &c["tier"]),
        (&json!("cancelled"), &json!("free"))
    );
}

async fn forged_push_tokens_are_refused_and_store_nothing(w: World) {
    w.sim.hold_deliveries(true);
    w.sim.order("acct-11", "team-monthly").await.unwrap();
    let genuine = w.sim.take_queued();
    assert!(!genuine.is_empty());
    for case in BadPushToken::ALL {
        let mut forged = genuine[0].clone();
        forged.authorization = Some(format!("Bearer {}", w.sim.bad_push_token(case).unwrap()));
        let pushed = w.sim.deliver(&forged).await;
        assert!(
            matches!(pushed.status, Some(401 | 403)),
            "{case:?}: {:?} {}",
            pushed.status,
            pushed.reply
        );
    }
    let mut unsigned = genuine[0].clone();
    unsigned.authorization = None;
    assert_eq!(w.sim.deliver(&unsigned).await.status, Some(401));
    assert_eq!(w.pending().await, 0, "nothing recorded");
    assert_eq!(w.check("acct-11").await["reason"], "no_subscription");
    // The genuine one still goes through.
    assert!(w.sim.deliver(&genuine[0]).await.acked());
}

async fn bad_and_replayed_sign_up_tokens_are_refused_and_link_nothing(w: World) {
    let order = w.sim.order("acct-12", "team-monthly").await.unwrap();
    all_acked(&order.pushed);
    for case in BadSignupToken::ALL {
        let token = w.sim.bad_signup_token("acct-12", case).unwrap();
        let (status, page) = w.sign_up_with(&token).await;
        assert!(matches!(status, 400 | 401), "{case:?}: {status} {page}");
        assert!(!page.contains("signed up"), "{page}");
        // A refused token costs no write: the single-use record is made
        // only after the signature verified.
        assert_eq!(w.used_record(&token).await, None, "{case:?}");
    }
    let (status, _) = w.sign_up_with("").await;
    assert_eq!(status, 400);
    assert!(w.sim.account("acct-12").unwrap().signup != ApprovalState::Approved);

    let token = w.sim.signup_token("acct-12");
    assert_eq!(w.sign_up_with(&token).await.0, 200);
    let (status, page) = w.sign_up_with(&token).await;
    assert_eq!(status, 400, "a replayed token is refused: {page}");
    assert!(page.contains("already used"), "{page}");
    // The probe does see the record of a verified token.
    assert_eq!(w.used_record(&token).await.as_deref(), Some("acct-12"));
}

async fn a_second_sign_up_duplicates_nothing(w: World) {
    let ent = w.active("acct-13").await;
    let approvals = |w: &World| {
        w.sim
            .seen()
            .into_iter()
            .filter(|s| s.path.ends_with(":approve") && s.status == 200)
            .count()
    };
    let before = approvals(&w);
    let log = w.log_len(&ent).await;
    // A new token (Google mints one per visit), not the first one again.
    let mut claims = w.sim.signup_claims("acct-13");
    claims.iat -= 100;
    claims.exp -= 100;
    let (status, page) = w.sign_up_with(&w.sim.mint_signup_token(&claims)).await;
    assert_eq!(status, 200, "{page}");
    all_acked(&w.sim.deliver_queued().await);
    assert_eq!(approvals(&w), before, "nothing approved twice");
    assert_eq!(w.log_len(&ent).await, log);
    assert_eq!(w.check("acct-13").await["status"], "active");
}

async fn a_rotated_google_key_is_fetched_once(w: World) {
    w.active("acct-14").await;
    w.sim.rotate_oidc_key().unwrap();
    w.sim.rotate_signup_key().unwrap();
    let order = w.sim.order("acct-14", "business-yearly").await.unwrap();
    all_acked(&order.pushed);
    w.sign_up("acct-14").await;
}

#[tokio::test]
async fn without_push_settings_every_push_is_refused_not_trusted() {
    let sim = GcpSim::generate().unwrap();
    let _google = sim.start().await.unwrap();
    let app = TestApp::new().system_clock();
    let f = app.pubsub_push().unwrap();
    let req = http::Request::builder()
        .method("POST")
        .uri("/")
        .header("authorization", format!("Bearer {}", sim.push_token()))
        .body(Body::from("{}".to_owned()))
        .unwrap();
    let err = f.call(req).await.unwrap_err();
    assert_eq!((err.status.as_u16(), err.code), (503, "not_configured"));
}

async fn a_private_offer_renews_and_outlives_its_discount(w: World) {
    w.active("acct-15").await;
    let offer = w
        .sim
        .accept_private_offer("acct-15", "business-yearly")
        .await
        .unwrap();
    all_acked(&offer.pushed);
    all_acked(&w.sim.deliver_queued().await);
    let ent = offer.entitlement_id;
    assert_eq!(w.state(&ent).await.status, Status::Active);
    // ENTITLEMENT_RENEWED: a new term, still entitled.
    let renewed = w.sim.end_term(&ent).await.unwrap();
    all_acked(&renewed);
    assert!(
        renewed
            .iter()
            .any(|p| p.event_type() == "ENTITLEMENT_RENEWED")
    );
    assert_eq!(w.state(&ent).await.status, Status::Active);
    // ENTITLEMENT_OFFER_ENDED alone revokes nothing.
    let ended = w.sim.end_offer(&ent).await.unwrap();
    all_acked(&ended);
    assert!(
        ended
            .iter()
            .any(|p| p.event_type() == "ENTITLEMENT_OFFER_ENDED")
    );
    assert_ne!(w.state(&ent).await.status, Status::Pending);
}

/// A sign-up names one procurement account; a Google user who belongs to
/// two billing accounts signs up for each. The second sign-up adds its link
/// and keeps the first (unlike GitHub's sign-in, which lists every account
/// at once and replaces); each link lives the default link TTL, 30 days.
async fn a_google_user_who_signs_up_for_a_second_account_keeps_the_first(w: World) {
    use tollgate::model::{AppUser, CustomerKey};
    for account in ["acct-20", "acct-21"] {
        all_acked(&w.sim.order(account, "team-monthly").await.unwrap().pushed);
    }
    let first = w.sim.signup_claims("acct-20");
    let identity = first
        .google
        .as_ref()
        .and_then(|g| g.user_identity.clone())
        .unwrap();
    let before = chrono::Utc::now();
    assert_eq!(
        w.sign_up_with(&w.sim.mint_signup_token(&first)).await.0,
        200
    );
    let mut second = w.sim.signup_claims("acct-21");
    if let Some(g) = second.google.as_mut() {
        g.user_identity = Some(identity.clone());
    }
    assert_eq!(
        w.sign_up_with(&w.sim.mint_signup_token(&second)).await.0,
        200
    );
    let after = chrono::Utc::now();

    let links = w
        .store
        .user_links(&AppUser(format!("google:{identity}")), after)
        .await
        .unwrap();
    let accounts: Vec<&CustomerKey> = links.iter().map(|l| &l.customer).collect();
    assert_eq!(
        accounts,
        [
            &CustomerKey::new(Marketplace::Gcp, "acct-20"),
            &CustomerKey::new(Marketplace::Gcp, "acct-21")
        ]
    );
    for l in &links {
        // Whole seconds: the stored expiry keeps the clock's nanoseconds.
        let ttl = l.expires_at - l.linked_at;
        assert_eq!(ttl, chrono::Duration::days(30), "{l:?}");
        assert!(before <= l.linked_at && l.linked_at <= after, "{l:?}");
    }
}
