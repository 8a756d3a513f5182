//! A real `EntitlementCheck` handler, driven through `tollgate::web::serve`
//! exactly as Lambda and the dev server drive it, on a real store. States are
//! built by ingesting normalized marketplace events, never by hand.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use tollgate::api::auth::{ApiKeyEntry, Authenticator, Scopes, generate};
use tollgate::clock::FixedClock;
use tollgate::functions::entitlement_check::EntitlementCheck;
use tollgate::ingest::{Ingested, ingest};
use tollgate::model::{
    Awaiting, Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan, PlanTerms,
    SubscriptionKey,
};
use tollgate::store::Store;
use tollgate::store::sqlite::SqliteStore;
use tollgate::testing::TestApp;
use tollgate::web::{Body, Request, serve};

/// `acme-ci`: free (unlimited seats), team (purchased seats), business (3
/// seats, fixed); no fallback after cancellation. `acme-docs` falls back to
/// its free tier after a cancellation.
pub const CATALOG: &str = r#"
[products.acme-ci.tiers.free]
features = ["public-repos"]
seats = "unlimited"
[products.acme-ci.tiers.team]
features = ["public-repos", "private-repos"]
seats = "purchased"
[products.acme-ci.tiers.business]
features = ["public-repos", "private-repos", "sso"]
seats = 3
[products.acme-ci.plans.github]
"1001" = "free"
"1002" = "team"
"1003" = "business"

[products.acme-docs]
cancelled_tier = "free"
[products.acme-docs.tiers.free]
features = ["read"]
[products.acme-docs.tiers.pro]
features = ["read", "write"]
[products.acme-docs.plans.github]
"2001" = "free"
"2002" = "pro"

[marketplaces.github]
product = "acme-ci"
"#;

/// An entitlement-token issuer with a fresh key and the default policy.
pub fn token_issuer() -> tollgate::api::token::TokenIssuer {
    use tollgate::api::token::{TOKEN_KEY_SECRET, TokenIssuer, generate_key};
    let key = generate_key().unwrap();
    let secrets = tollgate::secret::Secrets::from_pairs([(TOKEN_KEY_SECRET, key.expose())]);
    TokenIssuer::from_secrets(&secrets, Default::default())
        .unwrap()
        .unwrap()
}

/// The instant every test's clock shows.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0)
        .single()
        .unwrap()
}

/// API keys issued for the test deployment, one per scope set.
pub struct Keys {
    pub all: String,
    pub check_only: String,
    pub seats_only: String,
}

pub struct Tollgate {
    pub handler: Arc<EntitlementCheck>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<FixedClock>,
    pub keys: Keys,
    events: std::sync::atomic::AtomicU32,
}

/// A reply: status, the `x-request-id` header, the JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub request_id: String,
    pub body: Value,
}

impl Tollgate {
    /// Three API keys configured (so keys are required).
    pub fn on(store: Arc<dyn Store>) -> Self {
        let issue =
            |name: &str, scopes: &str| generate(name, Scopes::parse(scopes).unwrap()).unwrap();
        let (all, check, seats) = (
            issue("all", "check,seats"),
            issue("checker", "check"),
            issue("seater", "seats"),
        );
        let entries: Vec<ApiKeyEntry> =
            vec![all.entry.clone(), check.entry.clone(), seats.entry.clone()];
        let keys = Keys {
            all: all.key.expose().to_owned(),
            check_only: check.key.expose().to_owned(),
            seats_only: seats.key.expose().to_owned(),
        };
        Self::with_auth(store, Authenticator::new(entries, false), keys)
    }

    pub fn with_auth(store: Arc<dyn Store>, auth: Authenticator, keys: Keys) -> Self {
        let mut app = TestApp::new()
            .config(CATALOG)
            .store(Arc::clone(&store))
            .now(t0());
        let clock = app.fixed_clock();
        // `/v1/token` signs with a key made for this deployment.
        let handler = Arc::new(
            app.entitlement_check(auth)
                .with_tokens(Some(token_issuer())),
        );
        Self {
            handler,
            store,
            clock,
            keys,
            events: Default::default(),
        }
    }

    pub fn sqlite() -> Self {
        Self::on(Arc::new(SqliteStore::open_in_memory().unwrap()))
    }

    /// Sends a request through `serve`; every reply must be JSON with a
    /// request id, or a 204 with no body at all (`body` is then `null`).
    pub async fn send(&self, req: Request) -> Reply {
        let res = serve(&*self.handler, req).await;
        let status = res.status().as_u16();
        let request_id = res
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("every reply carries x-request-id")
            .to_owned();
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if status == 204 {
            assert!(res.body().as_ref().is_empty(), "a 204 with a body");
            assert_eq!(ct, "", "a 204 with a content type");
            return Reply {
                status,
                request_id,
                body: Value::Null,
            };
        }
        assert_eq!(ct, "application/json", "status {status}");
        let body = serde_json::from_slice(res.body().as_ref()).expect("JSON body");
        Reply {
            status,
            request_id,
            body,
        }
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Reply {
        self.send(request("POST", path, key, Some(body.to_string())))
            .await
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        self.send(request("GET", path, key, None)).await
    }

    /// `POST /v1/check` with the all-scopes key; must answer 200.
    pub async fn check(&self, body: Value) -> Value {
        let reply = self.post("/v1/check", Some(&self.keys.all), &body).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    }

    /// Ingests `kind` for GitHub account `org`, effective a minute after the
    /// previous event, processed at `processed_at`.
    pub async fn event_at(
        &self,
        org: &str,
        product: &str,
        kind: EventKind,
        processed_at: DateTime<Utc>,
    ) {
        let n = self
            .events
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let event = MarketEvent {
            id: format!("delivery-{n}"),
            subscription: subscription_key(org, product),
            customer: Customer::new(CustomerKey::new(Marketplace::Github, org)),
            product: product.into(),
            effective_at: processed_at - Duration::days(1) + Duration::minutes(i64::from(n)),
            kind,
        };
        let outcome = ingest(&*self.store, &event, processed_at).await.unwrap();
        match outcome {
            Ingested::Committed(o) => assert!(o.next.is_some(), "{:?}", o.log.note),
            Ingested::Duplicate => panic!("fresh delivery ids are never duplicates"),
        }
    }

    pub async fn event(&self, org: &str, product: &str, kind: EventKind) {
        self.event_at(org, product, kind, t0()).await
    }

    /// A GitHub purchase of `plan` with `seats` units.
    pub async fn purchase(&self, org: &str, product: &str, plan: &str, seats: Option<u32>) {
        self.event(org, product, purchased(plan, seats, None, None))
            .await
    }
}

/// One subscription per account and product: `<org>` for acme-ci (as on
/// GitHub, one per listing), `<org>-<product>` otherwise.
pub fn subscription_key(org: &str, product: &str) -> SubscriptionKey {
    let id = if product == "acme-ci" {
        org.to_owned()
    } else {
        format!("{org}-{product}")
    };
    SubscriptionKey::new(Marketplace::Github, id)
}

pub fn purchased(
    plan: &str,
    seats: Option<u32>,
    trial_ends_at: Option<DateTime<Utc>>,
    awaiting: Option<Awaiting>,
) -> EventKind {
    let mut terms = PlanTerms::new(Plan::new(plan));
    terms.seats = seats;
    terms.trial_ends_at = trial_ends_at;
    EventKind::Purchased { terms, awaiting }
}

pub fn request(method: &str, path: &str, key: Option<&str>, body: Option<String>) -> Request {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(key) = key {
        b = b.header("authorization", format!("Bearer {key}"));
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    b.body(body.map_or(Body::Empty, Body::Text)).unwrap()
}

/// The `/v1/check` body for GitHub account `org`.
pub fn ask(org: &str, product: &str) -> Value {
    serde_json::json!({"marketplace": "github", "customer_id": org, "product": product})
}

/// `ask(...)` plus extra fields.
pub fn ask_with(org: &str, product: &str, extra: Value) -> Value {
    let mut body = ask(org, product);
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// A store that records which calls the handler makes, so tests can prove
/// the hot path's cost (one read per check by customer), not just its result.
pub struct CountingStore {
    inner: Arc<dyn Store>,
    calls: std::sync::Mutex<Vec<&'static str>>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            calls: Default::default(),
        }
    }

    /// The calls made since the last `take_calls`.
    pub fn take_calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn note(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }
}

#[async_trait::async_trait]
impl tollgate::store::Subscriptions for CountingStore {
    async fn get(
        &self,
        key: &SubscriptionKey,
    ) -> Result<Option<tollgate::model::Subscription>, tollgate::store::StoreError> {
        self.note("get");
        self.inner.get(key).await
    }
    async fn log(
        &self,
        key: &SubscriptionKey,
    ) -> Result<Vec<tollgate::model::LogEntry>, tollgate::store::StoreError> {
        self.note("log");
        self.inner.log(key).await
    }
    async fn customer_subscriptions(
        &self,
        c: &CustomerKey,
    ) -> Result<Vec<tollgate::model::Subscription>, tollgate::store::StoreError> {
        self.note("customer_subscriptions");
        self.inner.customer_subscriptions(c).await
    }
}

#[async_trait::async_trait]
impl tollgate::store::Commits for CountingStore {
    async fn commit(&self, c: &tollgate::store::Commit) -> Result<(), tollgate::store::StoreError> {
        self.note("commit");
        self.inner.commit(c).await
    }
}

#[async_trait::async_trait]
impl tollgate::store::Deliveries for CountingStore {
    async fn record_delivery(
        &self,
        d: &tollgate::store::Delivery,
    ) -> Result<tollgate::store::Recorded, tollgate::store::StoreError> {
        self.note("record_delivery");
        self.inner.record_delivery(d).await
    }
    async fn delivery(
        &self,
        m: Marketplace,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<tollgate::store::Delivery>, tollgate::store::StoreError> {
        self.note("delivery");
        self.inner.delivery(m, id, now).await
    }
    async fn pending_deliveries(
        &self,
        m: Marketplace,
        now: DateTime<Utc>,
    ) -> Result<Vec<tollgate::store::Delivery>, tollgate::store::StoreError> {
        self.note("pending_deliveries");
        self.inner.pending_deliveries(m, now).await
    }
}

#[async_trait::async_trait]
impl tollgate::store::SeatClaims for CountingStore {
    async fn claim_seat(
        &self,
        key: &SubscriptionKey,
        user: &str,
        limit: tollgate::store::SeatLimit,
    ) -> Result<tollgate::store::SeatClaim, tollgate::store::StoreError> {
        self.note("claim_seat");
        self.inner.claim_seat(key, user, limit).await
    }
    async fn release_seat(
        &self,
        key: &SubscriptionKey,
        user: &str,
    ) -> Result<bool, tollgate::store::StoreError> {
        self.note("release_seat");
        self.inner.release_seat(key, user).await
    }
    async fn holds_seat(
        &self,
        key: &SubscriptionKey,
        user: &str,
    ) -> Result<bool, tollgate::store::StoreError> {
        self.note("holds_seat");
        self.inner.holds_seat(key, user).await
    }
    async fn seat_holders(
        &self,
        key: &SubscriptionKey,
    ) -> Result<Vec<String>, tollgate::store::StoreError> {
        self.note("seat_holders");
        self.inner.seat_holders(key).await
    }
}

#[async_trait::async_trait]
impl tollgate::store::Tokens for CountingStore {
    async fn put_token(
        &self,
        t: &tollgate::store::Token,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), tollgate::store::StoreError> {
        self.note("put_token");
        self.inner.put_token(t, now).await
    }
    async fn peek_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, tollgate::store::StoreError> {
        self.note("peek_token");
        self.inner.peek_token(kind, id, now).await
    }
    async fn take_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, tollgate::store::StoreError> {
        self.note("take_token");
        self.inner.take_token(kind, id, now).await
    }
}

#[async_trait::async_trait]
impl tollgate::store::UserLinks for CountingStore {
    async fn link_user(
        &self,
        u: &tollgate::model::AppUser,
        link: &tollgate::store::UserLink,
    ) -> Result<(), tollgate::store::StoreError> {
        self.note("link_user");
        self.inner.link_user(u, link).await
    }
    async fn replace_links(
        &self,
        u: &tollgate::model::AppUser,
        marketplace: Marketplace,
        links: &[tollgate::store::UserLink],
        now: DateTime<Utc>,
    ) -> Result<(), tollgate::store::StoreError> {
        self.note("replace_links");
        self.inner.replace_links(u, marketplace, links, now).await
    }
    async fn user_links(
        &self,
        u: &tollgate::model::AppUser,
        now: DateTime<Utc>,
    ) -> Result<Vec<tollgate::store::UserLink>, tollgate::store::StoreError> {
        self.note("user_links");
        self.inner.user_links(u, now).await
    }
    async fn unlink_user(
        &self,
        u: &tollgate::model::AppUser,
        c: &CustomerKey,
        now: DateTime<Utc>,
    ) -> Result<bool, tollgate::store::StoreError> {
        self.note("unlink_user");
        self.inner.unlink_user(u, c, now).await
    }
}

#[async_trait::async_trait]
impl tollgate::store::Enrollments for CountingStore {
    async fn enroll(
        &self,
        g: &tollgate::store::GroupKey,
        member: &str,
        sub: &str,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<tollgate::store::Enrolled, tollgate::store::StoreError> {
        self.note("enroll");
        self.inner.enroll(g, member, sub, cap, now).await
    }
    async fn enrollment(
        &self,
        g: &tollgate::store::GroupKey,
        member: &str,
    ) -> Result<Option<tollgate::store::Enrollment>, tollgate::store::StoreError> {
        self.note("enrollment");
        self.inner.enrollment(g, member).await
    }
    async fn enrollments(
        &self,
        g: &tollgate::store::GroupKey,
    ) -> Result<Vec<tollgate::store::Enrollment>, tollgate::store::StoreError> {
        self.note("enrollments");
        self.inner.enrollments(g).await
    }
    async fn transfer_enrollment(
        &self,
        g: &tollgate::store::GroupKey,
        member: &str,
        from: &str,
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, tollgate::store::StoreError> {
        self.note("transfer_enrollment");
        self.inner
            .transfer_enrollment(g, member, from, to, now)
            .await
    }
    async fn unenroll(
        &self,
        g: &tollgate::store::GroupKey,
        member: &str,
        sub: &str,
    ) -> Result<bool, tollgate::store::StoreError> {
        self.note("unenroll");
        self.inner.unenroll(g, member, sub).await
    }
}

#[async_trait::async_trait]
impl tollgate::store::Inventory for CountingStore {
    async fn subscription_keys(
        &self,
        marketplace: Marketplace,
        cursor: Option<&str>,
    ) -> Result<tollgate::store::KeyPage, tollgate::store::StoreError> {
        self.note("subscription_keys");
        self.inner.subscription_keys(marketplace, cursor).await
    }
}
