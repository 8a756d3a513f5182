//! GitHub Marketplace webhooks, black-box: real `PurchaseWebhook` handler
//! through `tollgate::web::serve`, real HMAC signatures, GitHub's published
//! example payloads plus our own (`tests/fixtures/github/SOURCE.md`), on both
//! stores (an SQLite file and DynamoDB on moto). Every case runs once per
//! store: `sqlite::<case>` and `dynamodb::<case>`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use http::StatusCode;
use serde_json::{Value, json};
use tollgate::clock::{Clock, FixedClock};
use tollgate::functions::purchase_webhook::PurchaseWebhook;
use tollgate::ingest::ProcessedStatus;
use tollgate::marketplace::github::signature::sign;
use tollgate::marketplace::github::webhook::{subscription_key, unrouted_key};
use tollgate::marketplace::github::{PREVIOUS_SECRET_NAME, SECRET_NAME};
use tollgate::model::{
    AccountKind, AppUser, BillingCycle, CustomerKey, Disposition, LogEntry, Marketplace,
    PendingChange, PriceModel, Status, Subscription, SubscriptionKey,
};
use tollgate::store::sqlite::SqliteStore;
use tollgate::store::{Commit, Delivery, Recorded, SeatClaim, Store, StoreError, Token};
use tollgate::testing::TestApp;
use tollgate::web::{Body, Function, MAX_BODY_BYTES, serve};

// ------------------------------------------------------------- harness --

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/github");

/// GitHub's documentation test secret; the function-URL fixture is signed with it.
const DOCS_SECRET: &str = "It's a Secret to Everybody";

const CONFIG: &str = r#"
[products.acme-ci]
[products.acme-ci.tiers.free]
features = ["public-repos"]
[products.acme-ci.tiers.team]
features = ["public-repos", "private-repos"]
[products.acme-ci.tiers.business]
features = ["public-repos", "private-repos", "sso"]
[products.acme-ci.plans.github]
"433" = "free"
"435" = "team"
"686" = "business"
[marketplaces.github]
product = "acme-ci"
"#;

/// Accounts of the fixtures.
const ORG: u64 = 18404719; // octokit examples: purchased, changed
const ORG_CANCELLED: u64 = 28536653; // octokit cancelled example
const ORG_TRIAL: u64 = 4242;

fn day(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(FIXTURES).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fixture with a change applied, re-serialized (then signed as is).
fn derived(name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture(name)).unwrap();
    edit(&mut v);
    serde_json::to_vec_pretty(&v).unwrap()
}

/// One POST to the function, as GitHub would send it unless edited.
#[derive(Clone)]
struct Post {
    path: &'static str,
    event: Option<String>,
    delivery: Option<String>,
    signature: Option<String>,
    sha1_signature: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Post {
    fn signed(secret: &str, event: &str, delivery: &str, body: Vec<u8>) -> Self {
        Self {
            path: "/github",
            event: Some(event.into()),
            delivery: Some(delivery.into()),
            signature: Some(sign(secret.as_bytes(), &body)),
            sha1_signature: None,
            content_type: Some("application/json".into()),
            body,
        }
    }

    fn request(&self) -> tollgate::web::Request {
        let mut b = http::Request::builder()
            .method("POST")
            .uri(self.path)
            .header("user-agent", "GitHub-Hookshot/044aadd");
        for (name, value) in [
            ("x-github-event", &self.event),
            ("x-github-delivery", &self.delivery),
            ("x-hub-signature-256", &self.signature),
            ("x-hub-signature", &self.sha1_signature),
            ("content-type", &self.content_type),
        ] {
            if let Some(v) = value {
                b = b.header(name, v);
            }
        }
        b.body(Body::Binary(self.body.clone())).unwrap()
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    json: Value,
}

impl Reply {
    fn field(&self, name: &str) -> &str {
        self.json[name].as_str().unwrap_or_default()
    }

    fn error_code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or_default()
    }
}

/// Everything a delivery could change, for "nothing changed" checks.
#[derive(Debug, PartialEq)]
struct Snapshot {
    states: Vec<Option<Subscription>>,
    logs: Vec<Vec<LogEntry>>,
    pending: Vec<Delivery>,
    deliveries: Vec<Option<Delivery>>,
}

struct Harness {
    store: Arc<dyn Store>,
    clock: Arc<FixedClock>,
    secret: String,
    function: Arc<PurchaseWebhook>,
    _guard: Box<dyn Send + Sync>,
}

impl Harness {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tollgate.db")).unwrap();
        Self::new(Arc::new(store), Box::new(dir))
    }

    async fn dynamodb() -> Self {
        Self::new(
            Arc::new(tollgate_tests::moto::fresh_store().await),
            Box::new(()),
        )
    }

    fn new(store: Arc<dyn Store>, guard: Box<dyn Send + Sync>) -> Self {
        // Test keys are generated at test time.
        let secret = tollgate::web::random_token(20).expect("OS random source");
        let clock = Arc::new(FixedClock::new(day(2017, 10, 25, 12)));
        let function = Arc::new(Self::build(&store, &clock, &[(SECRET_NAME, &secret)]));
        Self {
            store,
            clock,
            secret,
            function,
            _guard: guard,
        }
    }

    /// The test app on `store` with these secrets and the harness clock.
    fn app(store: &Arc<dyn Store>, clock: &Arc<FixedClock>, secrets: &[(&str, &str)]) -> TestApp {
        secrets
            .iter()
            .fold(TestApp::new(), |app, (k, v)| app.secret(k, v))
            .config(CONFIG)
            .store(Arc::clone(store))
            .clock(Arc::clone(clock))
    }

    /// A function on `store` with these secrets and the harness clock.
    fn build(
        store: &Arc<dyn Store>,
        clock: &Arc<FixedClock>,
        secrets: &[(&str, &str)],
    ) -> PurchaseWebhook {
        Self::app(store, clock, secrets).purchase_webhook().unwrap()
    }

    fn at(&self, t: DateTime<Utc>) -> &Self {
        self.clock.set(t);
        self
    }

    fn post(&self, delivery: &str, body: Vec<u8>) -> Post {
        Post::signed(&self.secret, "marketplace_purchase", delivery, body)
    }

    async fn send_to(function: &dyn Function, post: &Post) -> Reply {
        let res = serve(function, post.request()).await;
        let status = res.status();
        let json = serde_json::from_slice(res.body().as_ref()).unwrap_or(Value::Null);
        Reply { status, json }
    }

    async fn send(&self, post: &Post) -> Reply {
        Self::send_to(&*self.function, post).await
    }

    /// Delivers a fixture, signed, and expects GitHub to see a 200.
    async fn deliver(&self, delivery: &str, body: Vec<u8>) -> Reply {
        let reply = self.send(&self.post(delivery, body)).await;
        assert_eq!(reply.status, StatusCode::OK, "{delivery}: {}", reply.json);
        reply
    }

    async fn state(&self, account: u64) -> Subscription {
        self.store
            .get(&subscription_key(account))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no subscription for account {account}"))
    }

    async fn log(&self, key: &SubscriptionKey) -> Vec<LogEntry> {
        self.store.log(key).await.unwrap()
    }

    async fn snapshot(&self, deliveries: &[&str]) -> Snapshot {
        let keys = [subscription_key(ORG), unrouted_key()];
        let now = self.clock.now();
        let mut snap = Snapshot {
            states: vec![],
            logs: vec![],
            pending: self
                .store
                .pending_deliveries(Marketplace::Github, now)
                .await
                .unwrap(),
            deliveries: vec![],
        };
        for key in &keys {
            snap.states.push(self.store.get(key).await.unwrap());
            snap.logs.push(self.log(key).await);
        }
        for id in deliveries {
            snap.deliveries.push(
                self.store
                    .delivery(Marketplace::Github, id, now)
                    .await
                    .unwrap(),
            );
        }
        snap
    }
}

tollgate_tests::on_both_stores!(Harness;
    octokit_purchased_examples_start_active_per_unit_plans_with_their_seats,
    octokit_changed_example_sets_ten_seats,
    octokit_changed_example_alone_creates_the_subscription,
    octokit_cancelled_example_ends_access,
    personal_account_with_null_billing_email_is_active_without_seats,
    free_plan_with_null_billing_cycle_is_active,
    per_unit_purchase_has_seats_equal_to_unit_count,
    trial_purchase_is_a_trial_until_free_trial_ends_on,
    trial_converts_to_paid_on_changed,
    trial_cancellation_ends_access_at_once,
    pending_downgrade_keeps_the_plan_and_records_the_target,
    pending_change_cancelled_clears_the_pending_downgrade,
    pending_cancellation_keeps_access_until_effective_date_and_can_be_withdrawn,
    unknown_action_is_recorded_and_acknowledged,
    unknown_event_type_is_recorded_and_acknowledged,
    ping_is_answered_and_not_stored,
    bad_input_is_refused_and_changes_nothing,
    the_same_delivery_five_times_applies_once,
    concurrent_redeliveries_apply_once,
    cancelled_delivered_before_an_earlier_changed_stays_cancelled,
    same_day_purchase_delivered_after_its_upgrade_is_stale,
    same_day_trial_purchase_delivered_after_its_cancellation_stays_cancelled,
    an_upgrade_after_a_pending_downgrade_is_not_stale,
    base64_function_url_body_is_verified_over_the_decoded_bytes,
    previous_secret_still_verifies_during_rotation,
    a_hung_store_gets_a_reply_in_time_and_replay_finishes_the_delivery,
    an_authentic_but_unreadable_payload_stays_pending,
    logs_never_contain_the_payload_or_the_secret,
    a_signed_body_re_sent_under_a_new_delivery_id_changes_nothing,
    a_delivery_id_reused_for_other_content_is_refused,
);

// ------------------------------------------------- fixtures end to end --

async fn octokit_purchased_examples_start_active_per_unit_plans_with_their_seats(h: Harness) {
    // Both examples are for the same account and day; the second is a
    // same-day purchase after the first, i.e. a late duplicate, and stale.
    let first = h
        .deliver("p-upper", fixture("octokit-purchased-PER_UNIT.json"))
        .await;
    assert_eq!(first.field("status"), "applied");
    assert_eq!(first.field("subscription"), "github:18404719");
    let s = h.state(ORG).await;
    assert_eq!(s.status, Status::Active);
    assert_eq!(s.plan.id, "435");
    assert_eq!(s.plan.name.as_deref(), Some("Basic Plan"));
    assert_eq!(s.plan.price_model, Some(PriceModel::PerUnit));
    assert_eq!(s.seats.limit, Some(1));
    assert_eq!(s.billing_cycle, Some(BillingCycle::Monthly));
    assert_eq!(s.next_billing_at, Some(day(2017, 11, 5, 0)));
    assert_eq!(s.product, "acme-ci");
    assert_eq!(
        s.customer.key,
        CustomerKey::new(Marketplace::Github, "18404719")
    );
    assert_eq!(s.customer.kind, Some(AccountKind::Organization));
    assert_eq!(s.customer.name.as_deref(), Some("username"));
    assert_eq!(
        s.customer.billing_email.as_deref(),
        Some("username@email.com")
    );

    let second = h
        .deliver("p-lower", fixture("octokit-purchased-per-unit.json"))
        .await;
    assert_eq!(second.field("status"), "stale");
    assert_eq!(h.state(ORG).await.version, 1);
    // The lower-case `per-unit` example on its own: `octokit_changed_example_sets_ten_seats`.
}

async fn octokit_changed_example_sets_ten_seats(h: Harness) {
    h.deliver("p", fixture("octokit-purchased-per-unit.json"))
        .await;
    let s = h.state(ORG).await;
    assert_eq!(
        (s.plan.price_model, s.seats.limit),
        (Some(PriceModel::PerUnit), Some(1))
    );
    // Same day: applied in arrival order after the purchase.
    let reply = h
        .deliver("c", fixture("octokit-changed-seats-1-to-10.json"))
        .await;
    assert_eq!(reply.field("status"), "applied", "{}", reply.json);
    let s = h.state(ORG).await;
    assert_eq!(
        (s.status, s.seats.limit, s.version),
        (Status::Active, Some(10), 2)
    );
}

async fn octokit_changed_example_alone_creates_the_subscription(h: Harness) {
    // GitHub never retries: if the purchase was lost, the change (which
    // carries the whole purchase) is enough to start from.
    h.deliver("c", fixture("octokit-changed-seats-1-to-10.json"))
        .await;
    let s = h.state(ORG).await;
    assert_eq!(
        (s.status, s.plan.id.as_str(), s.seats.limit),
        (Status::Active, "435", Some(10))
    );
}

async fn octokit_cancelled_example_ends_access(h: Harness) {
    let bought = derived("octokit-cancelled-flat-rate.json", |v| {
        v["action"] = json!("purchased");
        v["effective_date"] = json!("2017-10-08T00:00:00+00:00");
    });
    h.at(day(2017, 10, 8, 9)).deliver("p", bought).await;
    assert_eq!(h.state(ORG_CANCELLED).await.status, Status::Active);
    let reply = h
        .at(day(2017, 10, 25, 12))
        .deliver("x", fixture("octokit-cancelled-flat-rate.json"))
        .await;
    assert_eq!(reply.field("event"), "cancelled");
    let s = h.state(ORG_CANCELLED).await;
    assert_eq!((s.status, s.access_until), (Status::Cancelled, None));
    assert_eq!(s.plan.price_model, Some(PriceModel::FlatRate));
    assert_eq!(s.seats.limit, None, "flat-rate plans carry no seats");
}

async fn personal_account_with_null_billing_email_is_active_without_seats(h: Harness) {
    h.deliver("u", fixture("own-purchased-user-null-email.json"))
        .await;
    let s = h.state(583231).await;
    assert_eq!(s.status, Status::Active);
    assert_eq!(s.customer.kind, Some(AccountKind::User));
    assert_eq!(s.customer.billing_email, None);
    assert_eq!(s.billing_cycle, Some(BillingCycle::Yearly));
    assert_eq!(
        (s.plan.price_model, s.seats.limit),
        (Some(PriceModel::FlatRate), None)
    );
}

async fn free_plan_with_null_billing_cycle_is_active(h: Harness) {
    h.deliver("f", fixture("own-purchased-free-null-billing-cycle.json"))
        .await;
    let s = h.state(9919).await;
    assert_eq!(s.status, Status::Active);
    assert_eq!(s.plan.price_model, Some(PriceModel::Free));
    assert_eq!(
        (s.billing_cycle, s.next_billing_at, s.seats.limit),
        (None, None, None)
    );
    assert_eq!(s.customer.billing_email, None);
}

async fn per_unit_purchase_has_seats_equal_to_unit_count(h: Harness) {
    h.deliver("s", fixture("own-purchased-per-unit-7-seats.json"))
        .await;
    assert_eq!(h.state(31337).await.seats.limit, Some(7));
}

async fn trial_purchase_is_a_trial_until_free_trial_ends_on(h: Harness) {
    h.deliver("t", fixture("own-purchased-trial.json")).await;
    let s = h.state(ORG_TRIAL).await;
    assert_eq!(
        (s.status, s.trial_ends_at),
        (Status::Trial, Some(day(2017, 11, 8, 0)))
    );
}

async fn trial_converts_to_paid_on_changed(h: Harness) {
    h.deliver("t", fixture("own-purchased-trial.json")).await;
    let reply = h
        .at(day(2017, 11, 8, 1))
        .deliver("conv", fixture("own-changed-trial-converted.json"))
        .await;
    assert!(
        reply.field("note").contains("trial converted"),
        "{}",
        reply.json
    );
    let s = h.state(ORG_TRIAL).await;
    assert_eq!((s.status, s.trial_ends_at), (Status::Active, None));
    assert_eq!(s.next_billing_at, Some(day(2017, 12, 8, 0)));
}

async fn trial_cancellation_ends_access_at_once(h: Harness) {
    h.deliver("t", fixture("own-purchased-trial.json")).await;
    h.at(day(2017, 10, 27, 9))
        .deliver("x", fixture("own-cancelled-trial.json"))
        .await;
    let s = h.state(ORG_TRIAL).await;
    assert_eq!((s.status, s.access_until), (Status::Cancelled, None));
}

/// Purchase (1 seat) then the change to 10 seats, both on 2017-10-25.
async fn ten_seats(h: &Harness) {
    h.deliver("p", fixture("octokit-purchased-per-unit.json"))
        .await;
    h.deliver("c", fixture("octokit-changed-seats-1-to-10.json"))
        .await;
}

async fn pending_downgrade_keeps_the_plan_and_records_the_target(h: Harness) {
    ten_seats(&h).await;
    h.at(day(2017, 10, 27, 9))
        .deliver("pc", fixture("own-pending_change-downgrade.json"))
        .await;
    let s = h.state(ORG).await;
    assert_eq!(
        (s.status, s.seats.limit),
        (Status::Active, Some(10)),
        "current plan kept"
    );
    match &s.pending_change {
        Some(PendingChange::Plan {
            plan,
            seats,
            effective_at,
        }) => {
            assert_eq!((plan.id.as_str(), *seats), ("435", Some(5)));
            assert_eq!(*effective_at, day(2017, 11, 5, 0));
        }
        other => panic!("expected a pending plan change, got {other:?}"),
    }
    // Ordered on the day it was announced, not on the future date.
    assert_eq!(
        s.last_applied.map(|m| m.effective_at),
        Some(day(2017, 10, 27, 0))
    );
}

async fn pending_change_cancelled_clears_the_pending_downgrade(h: Harness) {
    ten_seats(&h).await;
    h.at(day(2017, 10, 27, 9))
        .deliver("pc", fixture("own-pending_change-downgrade.json"))
        .await;
    let reply = h
        .at(day(2017, 10, 28, 9))
        .deliver("pcc", fixture("own-pending_change_cancelled.json"))
        .await;
    assert_eq!(reply.field("status"), "applied", "{}", reply.json);
    let s = h.state(ORG).await;
    assert_eq!(
        (s.pending_change, s.seats.limit, s.status),
        (None, Some(10), Status::Active)
    );
}

async fn pending_cancellation_keeps_access_until_effective_date_and_can_be_withdrawn(h: Harness) {
    let bought = derived("octokit-cancelled-flat-rate.json", |v| {
        v["action"] = json!("purchased");
        v["effective_date"] = json!("2017-10-08T00:00:00+00:00");
    });
    h.at(day(2017, 10, 8, 9)).deliver("p", bought).await;
    h.at(day(2017, 10, 27, 9))
        .deliver("pc", fixture("own-pending_change-cancellation.json"))
        .await;
    let s = h.state(ORG_CANCELLED).await;
    assert_eq!(
        (s.status, s.access_until),
        (Status::PendingCancellation, Some(day(2017, 11, 8, 0)))
    );
    let withdrawn = derived("own-pending_change-cancellation.json", |v| {
        v["action"] = json!("pending_change_cancelled");
        v["effective_date"] = json!("2017-10-29T00:00:00+00:00");
    });
    h.at(day(2017, 10, 29, 9)).deliver("pcc", withdrawn).await;
    let s = h.state(ORG_CANCELLED).await;
    assert_eq!(
        (s.status, s.access_until, s.pending_change),
        (Status::Active, None, None)
    );
}

async fn unknown_action_is_recorded_and_acknowledged(h: Harness) {
    ten_seats(&h).await;
    let before = h.state(ORG).await;
    let reply = h
        .at(day(2017, 10, 26, 9))
        .deliver("u", fixture("own-unknown-action.json"))
        .await;
    assert_eq!(reply.field("status"), "ignored", "{}", reply.json);
    assert_eq!(h.state(ORG).await, before, "state unchanged");
    let log = h.log(&subscription_key(ORG)).await;
    let last = log.last().unwrap();
    assert_eq!(
        (last.event.as_str(), last.disposition),
        ("marketplace_purchase.renewed", Disposition::Ignored)
    );
    assert!(
        h.store
            .pending_deliveries(Marketplace::Github, h.clock.now())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn unknown_event_type_is_recorded_and_acknowledged(h: Harness) {
    let post = Post::signed(
        &h.secret,
        "installation",
        "i-1",
        br#"{"action":"created","installation":{"id":1}}"#.to_vec(),
    );
    let reply = h.send(&post).await;
    assert_eq!(
        (reply.status, reply.field("status")),
        (StatusCode::OK, "ignored")
    );
    let log = h.log(&unrouted_key()).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].event.as_str(), log[0].event_id.as_str()),
        ("installation", "i-1")
    );
    // Recorded as done: a redelivery is a no-op.
    assert_eq!(h.send(&post).await.field("status"), "duplicate");
}

async fn ping_is_answered_and_not_stored(h: Harness) {
    let post = Post::signed(
        &h.secret,
        "ping",
        "ping-1",
        br#"{"zen":"Keep it logically awesome.","hook_id":1}"#.to_vec(),
    );
    let before = h.snapshot(&["ping-1"]).await;
    let reply = h.send(&post).await;
    assert_eq!(
        (reply.status, reply.field("status")),
        (StatusCode::OK, "pong")
    );
    assert_eq!(h.snapshot(&["ping-1"]).await, before);
}

// ------------------------------------------------------------ bad input --

async fn bad_input_is_refused_and_changes_nothing(h: Harness) {
    h.deliver("p", fixture("octokit-purchased-per-unit.json"))
        .await;
    let body = fixture("octokit-changed-seats-1-to-10.json");
    let good = |id: &str| h.post(id, body.clone());

    let mut cases: Vec<(&str, Post, StatusCode, &str)> = Vec::new();
    let mut p = good("missing-signature");
    p.signature = None;
    cases.push((
        "missing signature",
        p,
        StatusCode::UNAUTHORIZED,
        "signature_missing",
    ));
    let mut p = good("malformed-signature");
    p.signature = Some("sha256=not-hex".into());
    cases.push((
        "malformed signature",
        p,
        StatusCode::UNAUTHORIZED,
        "signature_malformed",
    ));
    let mut p = good("sha1-only");
    p.signature = None;
    p.sha1_signature = Some(format!("sha1={}", "ab".repeat(20)));
    cases.push((
        "sha1-only signature",
        p,
        StatusCode::UNAUTHORIZED,
        "signature_unsupported",
    ));
    let mut p = good("wrong-signature");
    p.signature = Some(sign(h.secret.as_bytes(), b"another body"));
    cases.push((
        "signature of another body",
        p,
        StatusCode::UNAUTHORIZED,
        "signature_mismatch",
    ));
    let p = Post::signed(
        "not the listing's secret",
        "marketplace_purchase",
        "wrong-secret",
        body.clone(),
    );
    cases.push((
        "wrong secret",
        p,
        StatusCode::UNAUTHORIZED,
        "signature_mismatch",
    ));
    let mut p = good("flipped-byte");
    let middle = p.body.len() / 2;
    p.body[middle] ^= 0x01;
    cases.push((
        "one flipped body byte",
        p,
        StatusCode::UNAUTHORIZED,
        "signature_mismatch",
    ));
    let mut big = body.clone();
    big.resize(MAX_BODY_BYTES + 1, b' ');
    cases.push((
        "body over 1 MiB",
        h.post("too-large", big),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    ));
    let form: Vec<u8> = format!(
        "payload={}",
        url_encode(std::str::from_utf8(&body).unwrap())
    )
    .into_bytes();
    let mut p = h.post("form-encoded", form);
    p.content_type = Some("application/x-www-form-urlencoded".into());
    cases.push((
        "form-encoded",
        p,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    ));
    let mut p = h.post("text-plain", body.clone());
    p.content_type = Some("text/plain".into());
    cases.push((
        "not a JSON content type",
        p,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    ));
    cases.push((
        "non-JSON body",
        h.post("non-json", b"<xml>nope</xml>".to_vec()),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    ));
    let mut p = good("no-delivery-id");
    p.delivery = None;
    cases.push((
        "missing delivery id",
        p,
        StatusCode::BAD_REQUEST,
        "missing_delivery_id",
    ));
    let mut p = good("bad-delivery-id");
    p.delivery = Some("a b".into());
    cases.push((
        "invalid delivery id",
        p,
        StatusCode::BAD_REQUEST,
        "invalid_delivery_id",
    ));
    let mut p = good("no-event");
    p.event = None;
    cases.push((
        "missing event header",
        p,
        StatusCode::BAD_REQUEST,
        "missing_event",
    ));
    let mut p = good("q2");
    p.path = "/q2";
    cases.push((
        "Q2 route (GitHub's signature is no Q2 signature; no Q2 secret here)",
        p,
        StatusCode::SERVICE_UNAVAILABLE,
        "not_configured",
    ));

    for (name, post, status, code) in cases {
        let id = post.delivery.clone().unwrap_or_default();
        let before = h.snapshot(&[&id]).await;
        let reply = h.send(&post).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (status, code),
            "{name}: {}",
            reply.json
        );
        let message = reply.json["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{name}: a clear message");
        assert!(
            !message.contains(&h.secret),
            "{name}: the secret is never echoed"
        );
        assert_eq!(
            h.snapshot(&[&id]).await,
            before,
            "{name}: the store changed"
        );
    }
    assert_eq!(h.state(ORG).await.version, 1);
}

/// Form encoding as GitHub does it (`payload=<percent-encoded JSON>`).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// -------------------------------------------- duplicates and ordering --

async fn the_same_delivery_five_times_applies_once(h: Harness) {
    let post = h.post("same", fixture("octokit-purchased-per-unit.json"));
    let statuses: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            let reply = h.send(&post).await;
            assert_eq!(reply.status, StatusCode::OK);
            v.push(reply.field("status").to_owned());
        }
        v
    };
    assert_eq!(
        statuses,
        [
            "applied",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    assert_eq!(h.log(&subscription_key(ORG)).await.len(), 1);
    assert_eq!(h.state(ORG).await.version, 1);
}

async fn concurrent_redeliveries_apply_once(h: Harness) {
    let post = h.post("racing", fixture("octokit-purchased-per-unit.json"));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let function = Arc::clone(&h.function);
            let post = post.clone();
            tokio::spawn(async move { Harness::send_to(&*function, &post).await })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        if reply.field("status") == "applied" {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(h.log(&subscription_key(ORG)).await.len(), 1);
    assert_eq!(h.state(ORG).await.version, 1);
}

async fn cancelled_delivered_before_an_earlier_changed_stays_cancelled(h: Harness) {
    h.deliver("p", fixture("octokit-purchased-per-unit.json"))
        .await;
    let cancelled = derived("octokit-changed-seats-1-to-10.json", |v| {
        v["action"] = json!("cancelled");
        v["effective_date"] = json!("2017-11-05T00:00:00+00:00");
    });
    let changed_earlier = derived("octokit-changed-seats-1-to-10.json", |v| {
        v["effective_date"] = json!("2017-10-30T00:00:00+00:00");
    });
    h.at(day(2017, 11, 5, 9)).deliver("x", cancelled).await;
    let late = h
        .at(day(2017, 11, 5, 10))
        .deliver("c", changed_earlier)
        .await;
    assert_eq!(late.field("status"), "stale", "{}", late.json);
    let s = h.state(ORG).await;
    assert_eq!(
        (s.status, s.seats.limit, s.version),
        (Status::Cancelled, Some(1), 2)
    );
    let log = h.log(&subscription_key(ORG)).await;
    let dispositions: Vec<_> = log.iter().map(|e| e.disposition).collect();
    assert_eq!(
        dispositions,
        [
            Disposition::Applied,
            Disposition::Applied,
            Disposition::Stale
        ]
    );
}

async fn same_day_purchase_delivered_after_its_upgrade_is_stale(h: Harness) {
    h.deliver("c", fixture("octokit-changed-seats-1-to-10.json"))
        .await;
    let late = h
        .deliver("p", fixture("octokit-purchased-per-unit.json"))
        .await;
    assert_eq!(late.field("status"), "stale", "{}", late.json);
    assert_eq!(h.state(ORG).await.seats.limit, Some(10));
}

async fn same_day_trial_purchase_delivered_after_its_cancellation_stays_cancelled(h: Harness) {
    let cancelled_same_day = derived("own-cancelled-trial.json", |v| {
        v["effective_date"] = json!("2017-10-25T00:00:00+00:00");
    });
    h.deliver("x", cancelled_same_day).await;
    let late = h.deliver("t", fixture("own-purchased-trial.json")).await;
    assert_eq!(late.field("status"), "stale", "{}", late.json);
    assert_eq!(h.state(ORG_TRIAL).await.status, Status::Cancelled);
}

async fn an_upgrade_after_a_pending_downgrade_is_not_stale(h: Harness) {
    ten_seats(&h).await;
    h.at(day(2017, 10, 27, 9))
        .deliver("pc", fixture("own-pending_change-downgrade.json"))
        .await;
    // Two days later, before the downgrade's date, the customer upgrades.
    let upgrade = derived("octokit-changed-seats-1-to-10.json", |v| {
        v["effective_date"] = json!("2017-10-29T00:00:00+00:00");
        v["marketplace_purchase"]["unit_count"] = json!(20);
    });
    let reply = h.at(day(2017, 10, 29, 9)).deliver("up", upgrade).await;
    assert_eq!(reply.field("status"), "applied", "{}", reply.json);
    let s = h.state(ORG).await;
    assert_eq!((s.seats.limit, s.pending_change), (Some(20), None));
}

// ----------------------------------------------------- Lambda specifics --

async fn base64_function_url_body_is_verified_over_the_decoded_bytes(h: Harness) {
    let event = String::from_utf8(fixture("function-url-event-base64.json")).unwrap();
    let function = Harness::build(&h.store, &h.clock, &[(SECRET_NAME, DOCS_SECRET)]);
    let req = lambda_http::request::from_str(&event).unwrap();
    assert_eq!(
        req.body().as_ref(),
        fixture("octokit-purchased-per-unit.json").as_slice()
    );
    let res = serve(&function, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.state(ORG).await.seats.limit, Some(1));

    // The same event signed over the base64 text (not the bytes) is refused.
    let mut v: Value = serde_json::from_str(&event).unwrap();
    let encoded = v["body"].as_str().unwrap().to_owned();
    v["headers"]["x-hub-signature-256"] = json!(sign(DOCS_SECRET.as_bytes(), encoded.as_bytes()));
    v["headers"]["x-github-delivery"] = json!("another-delivery");
    let req = lambda_http::request::from_str(&v.to_string()).unwrap();
    assert_eq!(
        serve(&function, req).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn previous_secret_still_verifies_during_rotation(h: Harness) {
    let function = Harness::build(
        &h.store,
        &h.clock,
        &[
            (SECRET_NAME, "the new secret"),
            (PREVIOUS_SECRET_NAME, &h.secret),
        ],
    );
    let old = h.post("p", fixture("octokit-purchased-per-unit.json"));
    assert_eq!(
        Harness::send_to(&function, &old).await.status,
        StatusCode::OK
    );
    let new = Post::signed(
        "the new secret",
        "marketplace_purchase",
        "c",
        fixture("octokit-changed-seats-1-to-10.json"),
    );
    assert_eq!(
        Harness::send_to(&function, &new).await.status,
        StatusCode::OK
    );
    assert_eq!(h.state(ORG).await.seats.limit, Some(10));
}

/// A store whose commits never finish: a hung DynamoDB call.
struct HangingCommits(Arc<dyn Store>);

#[async_trait]
impl tollgate::store::Subscriptions for HangingCommits {
    async fn get(&self, key: &SubscriptionKey) -> Result<Option<Subscription>, StoreError> {
        self.0.get(key).await
    }
    async fn log(&self, key: &SubscriptionKey) -> Result<Vec<LogEntry>, StoreError> {
        self.0.log(key).await
    }
    async fn customer_subscriptions(
        &self,
        c: &CustomerKey,
    ) -> Result<Vec<Subscription>, StoreError> {
        self.0.customer_subscriptions(c).await
    }
}

#[async_trait]
impl tollgate::store::Commits for HangingCommits {
    async fn commit(&self, _: &Commit) -> Result<(), StoreError> {
        std::future::pending().await
    }
}

#[async_trait]
impl tollgate::store::Deliveries for HangingCommits {
    async fn record_delivery(&self, d: &Delivery) -> Result<Recorded, StoreError> {
        self.0.record_delivery(d).await
    }
    async fn delivery(
        &self,
        m: Marketplace,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, StoreError> {
        self.0.delivery(m, id, now).await
    }
    async fn pending_deliveries(
        &self,
        m: Marketplace,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.0.pending_deliveries(m, now).await
    }
}

#[async_trait]
impl tollgate::store::SeatClaims for HangingCommits {
    async fn claim_seat(
        &self,
        key: &SubscriptionKey,
        user: &str,
        limit: tollgate::store::SeatLimit,
    ) -> Result<SeatClaim, StoreError> {
        self.0.claim_seat(key, user, limit).await
    }
    async fn release_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError> {
        self.0.release_seat(key, user).await
    }
    async fn holds_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError> {
        self.0.holds_seat(key, user).await
    }
    async fn seat_holders(&self, key: &SubscriptionKey) -> Result<Vec<String>, StoreError> {
        self.0.seat_holders(key).await
    }
}

#[async_trait]
impl tollgate::store::Inventory for HangingCommits {
    async fn subscription_keys(
        &self,
        m: Marketplace,
        cursor: Option<&str>,
    ) -> Result<tollgate::store::KeyPage, StoreError> {
        self.0.subscription_keys(m, cursor).await
    }
}

#[async_trait]
impl tollgate::store::Tokens for HangingCommits {
    async fn put_token(&self, token: &Token, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.0.put_token(token, now).await
    }
    async fn peek_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.0.peek_token(kind, id, now).await
    }
    async fn take_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.0.take_token(kind, id, now).await
    }
}

#[async_trait]
impl tollgate::store::UserLinks for HangingCommits {
    async fn link_user(
        &self,
        user: &AppUser,
        link: &tollgate::store::UserLink,
    ) -> Result<(), StoreError> {
        self.0.link_user(user, link).await
    }
    async fn replace_links(
        &self,
        user: &AppUser,
        marketplace: Marketplace,
        links: &[tollgate::store::UserLink],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.0.replace_links(user, marketplace, links, now).await
    }
    async fn user_links(
        &self,
        user: &AppUser,
        now: DateTime<Utc>,
    ) -> Result<Vec<tollgate::store::UserLink>, StoreError> {
        self.0.user_links(user, now).await
    }
    async fn unlink_user(
        &self,
        user: &AppUser,
        c: &CustomerKey,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.0.unlink_user(user, c, now).await
    }
}

#[async_trait]
impl tollgate::store::Enrollments for HangingCommits {
    async fn enroll(
        &self,
        g: &tollgate::store::GroupKey,
        member: &str,
        sub: &str,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<tollgate::store::Enrolled, StoreError> {
        self.0.enroll(g, member, sub, cap, now).await
    }
    async fn enrollment(
        &self,
        g: &tollgate::store::GroupKey,
        member: &str,
    ) -> Result<Option<tollgate::store::Enrollment>, StoreError> {
        self.0.enrollment(g, member).await
    }
    async fn enrollments(
        &self,
        g: &tollgate::store::GroupKey,
    ) -> Result<Vec<tollgate::store::Enrollment>, StoreError> {
        self.0.enrollments(g).await
    }
    async fn transfer_enrollment(
        &self,
        g: &tollgate::store::GroupKey,
        member: &str,
        from: &str,
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.0.transfer_enrollment(g, member, from, to, now).await
    }
    async fn unenroll(
        &self,
        g: &tollgate::store::GroupKey,
        member: &str,
        sub: &str,
    ) -> Result<bool, StoreError> {
        self.0.unenroll(g, member, sub).await
    }
}

async fn a_hung_store_gets_a_reply_in_time_and_replay_finishes_the_delivery(h: Harness) {
    let hanging: Arc<dyn Store> = Arc::new(HangingCommits(Arc::clone(&h.store)));
    let function = Harness::build(&hanging, &h.clock, &[(SECRET_NAME, &h.secret)])
        .with_timeouts(Duration::from_secs(2), Duration::from_millis(300));
    let started = std::time::Instant::now();
    let reply = Harness::send_to(
        &function,
        &h.post("slow", fixture("octokit-purchased-per-unit.json")),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::SERVICE_UNAVAILABLE, "delivery_pending"),
        "{}",
        reply.json
    );
    assert!(h.store.get(&subscription_key(ORG)).await.unwrap().is_none());

    // Recorded, pending, with its raw body: replay finishes it.
    let now = h.clock.now();
    let pending = h
        .store
        .pending_deliveries(Marketplace::Github, now)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].body.as_deref(),
        Some(fixture("octokit-purchased-per-unit.json").as_slice())
    );
    // The pipeline replay uses, with the store answering again.
    let pipeline = tollgate::functions::purchase_webhook::github_pipeline(
        &Harness::app(&h.store, &h.clock, &[(SECRET_NAME, &h.secret)]).deps(),
    )
    .unwrap()
    .with_clock(h.clock.clone());
    let done = pipeline.process(&pending[0], now).await.unwrap();
    assert_eq!(done.status(), ProcessedStatus::Applied);
    assert!(
        h.store
            .pending_deliveries(Marketplace::Github, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.state(ORG).await.seats.limit, Some(1));
    // GitHub's manual redelivery afterwards is a no-op.
    let again = h
        .send(&h.post("slow", fixture("octokit-purchased-per-unit.json")))
        .await;
    assert_eq!(again.field("status"), "duplicate");
}

async fn an_authentic_but_unreadable_payload_stays_pending(h: Harness) {
    let body = br#"{"action":"purchased","effective_date":"2017-10-25T00:00:00+00:00"}"#.to_vec();
    let reply = h.send(&h.post("odd", body)).await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_payload"),
        "{}",
        reply.json
    );
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("marketplace_purchase")
    );
    let pending = h
        .store
        .pending_deliveries(Marketplace::Github, h.clock.now())
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["odd"]
    );
}

/// Collects formatted log lines.
async fn logs_never_contain_the_payload_or_the_secret(h: Harness) {
    let (logs, _guard) = tollgate_tests::logs::capture();
    let body = fixture("octokit-purchased-per-unit.json");
    let mut forged = h.post("forged", body.clone());
    forged.signature = Some(sign(b"attacker", &body));
    let forged_signature = forged.signature.clone().unwrap();
    assert_eq!(h.send(&forged).await.status, StatusCode::UNAUTHORIZED);
    let good = h.post("good", body.clone());
    let signature = good.signature.clone().unwrap();
    h.deliver("good", body).await;
    h.send(&h.post("broken", br#"{"action":"purchased","effective_date":"2017-10-25","marketplace_purchase":{"account":{"id":"username@email.com"}}}"#.to_vec())).await;

    let text = logs.text();
    assert!(
        text.contains("delivery processed") && text.contains(r#""marketplace":"github""#),
        "logs were captured: {text}"
    );
    assert!(text.contains("delivery refused"), "{text}");
    for secret_or_payload in [
        h.secret.as_str(),
        &signature["sha256=".len()..],
        &forged_signature["sha256=".len()..],
        "username@email.com",
        "Because Basic",
        "MDQ6VXNlcjIxMDMxMDY3",
    ] {
        assert!(
            !text.contains(secret_or_payload),
            "`{secret_or_payload}` leaked into the logs:\n{text}"
        );
    }
}

/// The attack found from outside: after a same-day upgrade and downgrade,
/// the upgrade's signed body re-sent under a fresh `X-GitHub-Delivery` put
/// the account back on the upgraded plan. A signature covers the body, not
/// the delivery id, so the same content is a replay whatever the id.
async fn a_signed_body_re_sent_under_a_new_delivery_id_changes_nothing(h: Harness) {
    h.deliver("p", fixture("octokit-purchased-per-unit.json"))
        .await;
    let upgrade = fixture("octokit-changed-seats-1-to-10.json");
    assert_eq!(
        h.deliver("up", upgrade.clone()).await.field("status"),
        "applied"
    );
    let mut downgrade: Value = serde_json::from_slice(&upgrade).unwrap();
    downgrade["marketplace_purchase"]["unit_count"] = 3.into();
    let downgrade = serde_json::to_vec(&downgrade).unwrap();
    assert_eq!(
        h.deliver("down", downgrade).await.field("status"),
        "applied"
    );
    let before = h.state(ORG).await;
    assert_eq!(before.seats.limit, Some(3));

    let replay = h.deliver("up-again-under-a-new-id", upgrade).await;
    assert_eq!(replay.field("status"), "ignored", "{}", replay.json);
    assert!(replay.field("note").contains("replay"), "{}", replay.json);
    let after = h.state(ORG).await;
    assert_eq!(
        (after.seats.limit, after.version),
        (Some(3), before.version)
    );
    // Logged as a replay, and the new id is done (not left pending).
    let replays = h
        .store
        .log(&SubscriptionKey::new(Marketplace::Github, "_replays"))
        .await
        .unwrap();
    assert_eq!(replays.len(), 1);
    assert!(
        h.store
            .pending_deliveries(Marketplace::Github, h.clock.now())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_delivery_id_reused_for_other_content_is_refused(h: Harness) {
    h.deliver("p", fixture("octokit-purchased-per-unit.json"))
        .await;
    let before = h.state(ORG).await;
    let reply = h
        .send(&h.post("p", fixture("octokit-changed-seats-1-to-10.json")))
        .await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::CONFLICT, "delivery_id_reused"),
        "{}",
        reply.json
    );
    assert_eq!(h.state(ORG).await, before, "nothing changed");
}
