//! What the Q2 tests share: the real `PurchaseWebhook` and
//! `EntitlementCheck` built with `TestApp` on one store and one clock,
//! requests signed the way the relay signs them, the fixtures, and a store
//! that can be told to fail.

#![allow(dead_code, unused_macros)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use http::StatusCode;
use serde_json::{Value, json};
use tollgate::api::auth::Authenticator;
use tollgate::clock::{Clock, FixedClock};
use tollgate::functions::entitlement_check::EntitlementCheck;
use tollgate::functions::purchase_webhook::PurchaseWebhook;
use tollgate::marketplace::q2::SECRET_NAME;
use tollgate::marketplace::q2::signature::sign;
use tollgate::model::{AppUser, CustomerKey, LogEntry, Marketplace, Subscription, SubscriptionKey};
use tollgate::store::sqlite::SqliteStore;
use tollgate::store::{
    Commit, Delivery, Enrolled, Enrollment, GroupKey, Recorded, SeatClaim, Store, StoreError, Token,
};
use tollgate::testing::TestApp;
use tollgate::web::{Body, Function, serve};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/q2");

/// Two products on Q2: Budget Helper (3 users per institution, access to
/// the end of the paid month after a cancel) and Savings Goals (30-day
/// minimum term, access ends with the cancel, a default edition).
pub const CONFIG: &str = r#"
[products.budget-helper]
name = "Budget Helper"
[products.budget-helper.tiers.standard]
features = ["BudgetHelper"]
[products.budget-helper.tiers.premium]
features = ["BudgetHelper", "BudgetHelperReports"]
[products.budget-helper.plans.q2]
STANDARD = "standard"
PREMIUM = "premium"
[products.budget-helper.q2]
product_identifier = "3f2c7f0e-budgethelper"
extensions = ["BudgetHelper", "BudgetHelperReports"]
max_users_per_institution = 3

[products.savings-goals]
[products.savings-goals.tiers.basic]
features = ["SavingsGoals"]
[products.savings-goals.plans.q2]
BASIC = "basic"
[products.savings-goals.q2]
product_identifier = "77aa-savings"
extensions = ["SavingsGoals"]
minimum_term_days = 30
cancel_access = "immediate"
default_edition = "BASIC"
"#;

pub const SUB: &str = "9b0d6a52-2f0e-4e4f-9a39-0c1f7c1d2e11";
pub const FI: &str = "Local Credit Union";
pub const USER: &str = "123456";
/// The fixtures' bare AppDirect events: institution and user from
/// AppDirect's own fields, and the subscription id Tollgate derives.
pub const BARE_FI: &str = "https://localcu.q2marketplace.example";
pub const BARE_USER: &str = "4fc5fb4b-9809-49b5-abc5-7dab4544e685";
pub const BARE_SUB: &str = "q2-8273269982301e1b0c1a6bfb299d98e9";

/// The fixtures' clock: `TestApp`'s default instant.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0).unwrap()
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(FIXTURES).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// An envelope event (snake_case keys) built from parts.
pub fn event(kind: &str, sub: &str, user: &str, product: &str, edition: Option<&str>) -> Value {
    let event_type = format!("SUBSCRIPTION_{}", kind.to_ascii_uppercase());
    let mut payload = json!({});
    if kind != "order" {
        payload["account"] = json!({"accountIdentifier": sub});
    }
    if let Some(edition) = edition {
        payload["order"] = json!({
            "editionCode": edition,
            "pricingDuration": "MONTHLY",
            "items": [{"unit": "USER", "quantity": "1"}]
        });
    }
    json!({
        "event_type": event_type,
        "subscription_id": sub,
        "sso_user_id": format!("sso-{user}"),
        "user_id": user,
        "fi_name": FI,
        "product_identifier": product,
        "extension_name": "BudgetHelperMarketplace",
        "extension_url": "https://fi.example/marketplace/BudgetHelper",
        "event": {"type": event_type, "payload": payload}
    })
}

pub fn order(sub: &str, user: &str) -> Value {
    event("order", sub, user, "3f2c7f0e-budgethelper", Some("PREMIUM"))
}

pub fn cancel(sub: &str, user: &str) -> Value {
    event("cancel", sub, user, "3f2c7f0e-budgethelper", None)
}

pub fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// One POST to `/q2`.
#[derive(Clone)]
pub struct Post {
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub request_id: Option<String>,
    pub body: Vec<u8>,
}

impl Post {
    pub fn request(&self) -> tollgate::web::Request {
        let mut b = http::Request::builder().method("POST").uri("/q2");
        for (name, value) in [
            ("tollgate-signature", &self.signature),
            ("content-type", &self.content_type),
            ("x-request-id", &self.request_id),
        ] {
            if let Some(v) = value {
                b = b.header(name, v);
            }
        }
        b.body(Body::Binary(self.body.clone())).unwrap()
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub json: Value,
}

impl Reply {
    pub fn success(&self) -> bool {
        self.status == StatusCode::OK && self.json["success"] == json!(true)
    }

    /// The Q2 error code, or `""` on success.
    pub fn code(&self) -> &str {
        self.json["errorCode"].as_str().unwrap_or_default()
    }

    /// The HTTP-level error code (`{"error":{"code"}}`) of a non-200.
    pub fn http_error(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or_default()
    }
}

/// Everything an event could change, for "nothing changed" checks.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub states: Vec<Option<Subscription>>,
    pub logs: Vec<Vec<LogEntry>>,
    pub places: Vec<Enrollment>,
    pub customer: Vec<Subscription>,
}

pub struct Harness {
    pub store: Arc<dyn Store>,
    pub flaky: Arc<Flaky>,
    pub clock: Arc<FixedClock>,
    pub secret: String,
    pub function: Arc<PurchaseWebhook>,
    pub check: Arc<EntitlementCheck>,
    _guard: Box<dyn Send + Sync>,
}

impl Harness {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tollgate.db")).unwrap();
        Self::new(Arc::new(store), Box::new(dir), &[])
    }

    pub async fn dynamodb() -> Self {
        Self::new(
            Arc::new(tollgate_tests::moto::fresh_store().await),
            Box::new(()),
            &[],
        )
    }

    /// The harness on `inner`, behind a store that fails when told to,
    /// with a fresh signing secret plus `secrets`.
    pub fn new(
        inner: Arc<dyn Store>,
        guard: Box<dyn Send + Sync>,
        secrets: &[(&str, &str)],
    ) -> Self {
        let secret = tollgate::web::random_token(24).expect("OS random source");
        let flaky = Arc::new(Flaky::new(inner));
        let store: Arc<dyn Store> = flaky.clone();
        let clock = Arc::new(FixedClock::new(t0()));
        let app = secrets
            .iter()
            .fold(
                TestApp::new().secret(SECRET_NAME, &secret),
                |app, (k, v)| app.secret(k, v),
            )
            .config(CONFIG)
            .store(Arc::clone(&store))
            .clock(Arc::clone(&clock));
        let function = Arc::new(app.purchase_webhook().unwrap());
        let check = Arc::new(app.entitlement_check(Authenticator::new(vec![], true)));
        Self {
            store,
            flaky,
            clock,
            secret,
            function,
            check,
            _guard: guard,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// `body` signed with the harness secret at the clock's time.
    pub fn post(&self, body: Vec<u8>) -> Post {
        self.post_signed(self.secret.as_bytes(), self.now().timestamp(), body)
    }

    pub fn post_signed(&self, secret: &[u8], t: i64, body: Vec<u8>) -> Post {
        Post {
            signature: Some(sign(secret, t, &body)),
            content_type: Some("application/json".into()),
            request_id: None,
            body,
        }
    }

    pub async fn send_to(function: &dyn Function, post: &Post) -> Reply {
        let res = serve(function, post.request()).await;
        let status = res.status();
        let json = serde_json::from_slice(res.body().as_ref()).unwrap_or(Value::Null);
        Reply { status, json }
    }

    pub async fn send(&self, post: &Post) -> Reply {
        Self::send_to(&*self.function, post).await
    }

    /// Sends `v` signed now.
    pub async fn deliver(&self, v: &Value) -> Reply {
        self.send(&self.post(body(v))).await
    }

    /// Sends a fixture signed now, as is.
    pub async fn deliver_fixture(&self, name: &str) -> Reply {
        self.send(&self.post(fixture(name))).await
    }

    pub async fn state(&self, sub: &str) -> Option<Subscription> {
        self.store
            .get(&SubscriptionKey::new(Marketplace::Q2, sub))
            .await
            .unwrap()
    }

    pub async fn log(&self, sub: &str) -> Vec<LogEntry> {
        self.store
            .log(&SubscriptionKey::new(Marketplace::Q2, sub))
            .await
            .unwrap()
    }

    pub async fn places(&self, product: &str) -> Vec<Enrollment> {
        self.store
            .enrollments(&GroupKey::new(Marketplace::Q2, product, FI))
            .await
            .unwrap()
    }

    pub async fn snapshot(&self, subs: &[&str], user: &str) -> Snapshot {
        let mut snap = Snapshot {
            states: vec![],
            logs: vec![],
            places: self.places("budget-helper").await,
            customer: self
                .store
                .customer_subscriptions(&CustomerKey::new(Marketplace::Q2, format!("{FI}:{user}")))
                .await
                .unwrap(),
        };
        for sub in subs {
            snap.states.push(self.state(sub).await);
            snap.logs.push(self.log(sub).await);
        }
        snap
    }

    /// `POST /v1/check` for Q2 customer `<institution>:<user>`.
    pub async fn check(&self, customer: &str, product: &str, feature: Option<&str>) -> Value {
        let mut q = json!({"marketplace": "q2", "customer_id": customer, "product": product});
        if let Some(f) = feature {
            q["feature"] = json!(f);
        }
        let req = http::Request::builder()
            .method("POST")
            .uri("/v1/check")
            .header("content-type", "application/json")
            .body(Body::Binary(serde_json::to_vec(&q).unwrap()))
            .unwrap();
        let res = serve(&*self.check, req).await;
        assert_eq!(res.status(), StatusCode::OK);
        serde_json::from_slice(res.body().as_ref()).unwrap()
    }
}

/// Runs each case once per store, as `sqlite::<case>` and `dynamodb::<case>`.
macro_rules! on_both_stores {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(super::q2_support::Harness::sqlite().await).await;
                }
            )+
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(super::q2_support::Harness::dynamodb().await).await;
                }
            )+
        }
    };
}

/// A store that answers like the one inside it, except that commits fail
/// (transiently) while `fail_commits` is set: storage trouble after an
/// order's user was given a place.
pub struct Flaky {
    inner: Arc<dyn Store>,
    pub fail_commits: AtomicBool,
}

impl Flaky {
    fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            fail_commits: AtomicBool::new(false),
        }
    }

    pub fn fail_commits(&self, fail: bool) {
        self.fail_commits.store(fail, Ordering::SeqCst);
    }
}

#[async_trait]
impl tollgate::store::Subscriptions for Flaky {
    async fn get(&self, key: &SubscriptionKey) -> Result<Option<Subscription>, StoreError> {
        self.inner.get(key).await
    }
    async fn log(&self, key: &SubscriptionKey) -> Result<Vec<LogEntry>, StoreError> {
        self.inner.log(key).await
    }
    async fn customer_subscriptions(
        &self,
        c: &CustomerKey,
    ) -> Result<Vec<Subscription>, StoreError> {
        self.inner.customer_subscriptions(c).await
    }
}

#[async_trait]
impl tollgate::store::Commits for Flaky {
    async fn commit(&self, c: &Commit) -> Result<(), StoreError> {
        if self.fail_commits.load(Ordering::SeqCst) {
            return Err(StoreError::Transient(
                "injected: the table is throttled".into(),
            ));
        }
        self.inner.commit(c).await
    }
}

#[async_trait]
impl tollgate::store::Deliveries for Flaky {
    async fn record_delivery(&self, d: &Delivery) -> Result<Recorded, StoreError> {
        self.inner.record_delivery(d).await
    }
    async fn delivery(
        &self,
        m: Marketplace,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, StoreError> {
        self.inner.delivery(m, id, now).await
    }
    async fn pending_deliveries(
        &self,
        m: Marketplace,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.pending_deliveries(m, now).await
    }
}

#[async_trait]
impl tollgate::store::SeatClaims for Flaky {
    async fn claim_seat(
        &self,
        key: &SubscriptionKey,
        user: &str,
        limit: tollgate::store::SeatLimit,
    ) -> Result<SeatClaim, StoreError> {
        self.inner.claim_seat(key, user, limit).await
    }
    async fn release_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError> {
        self.inner.release_seat(key, user).await
    }
    async fn holds_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError> {
        self.inner.holds_seat(key, user).await
    }
    async fn seat_holders(&self, key: &SubscriptionKey) -> Result<Vec<String>, StoreError> {
        self.inner.seat_holders(key).await
    }
}

#[async_trait]
impl tollgate::store::Inventory for Flaky {
    async fn subscription_keys(
        &self,
        m: Marketplace,
        cursor: Option<&str>,
    ) -> Result<tollgate::store::KeyPage, StoreError> {
        self.inner.subscription_keys(m, cursor).await
    }
}

#[async_trait]
impl tollgate::store::Tokens for Flaky {
    async fn put_token(&self, token: &Token, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.put_token(token, now).await
    }
    async fn peek_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.inner.peek_token(kind, id, now).await
    }
    async fn take_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.inner.take_token(kind, id, now).await
    }
}

#[async_trait]
impl tollgate::store::UserLinks for Flaky {
    async fn link_user(
        &self,
        user: &AppUser,
        link: &tollgate::store::UserLink,
    ) -> Result<(), StoreError> {
        self.inner.link_user(user, link).await
    }
    async fn replace_links(
        &self,
        user: &AppUser,
        marketplace: Marketplace,
        links: &[tollgate::store::UserLink],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner
            .replace_links(user, marketplace, links, now)
            .await
    }
    async fn user_links(
        &self,
        user: &AppUser,
        now: DateTime<Utc>,
    ) -> Result<Vec<tollgate::store::UserLink>, StoreError> {
        self.inner.user_links(user, now).await
    }
    async fn unlink_user(
        &self,
        user: &AppUser,
        c: &CustomerKey,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.unlink_user(user, c, now).await
    }
}

#[async_trait]
impl tollgate::store::Enrollments for Flaky {
    async fn enroll(
        &self,
        g: &GroupKey,
        member: &str,
        sub: &str,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Enrolled, StoreError> {
        self.inner.enroll(g, member, sub, cap, now).await
    }
    async fn enrollment(
        &self,
        g: &GroupKey,
        member: &str,
    ) -> Result<Option<Enrollment>, StoreError> {
        self.inner.enrollment(g, member).await
    }
    async fn enrollments(&self, g: &GroupKey) -> Result<Vec<Enrollment>, StoreError> {
        self.inner.enrollments(g).await
    }
    async fn transfer_enrollment(
        &self,
        g: &GroupKey,
        member: &str,
        from: &str,
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner
            .transfer_enrollment(g, member, from, to, now)
            .await
    }
    async fn unenroll(&self, g: &GroupKey, member: &str, sub: &str) -> Result<bool, StoreError> {
        self.inner.unenroll(g, member, sub).await
    }
}
