//! The example app against a real entitlement-check served on 127.0.0.1
//! (the same handler as in Lambda, on an in-memory SQLite store), over real
//! HTTP at both hops: test → app → Tollgate.

use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::Value;
use tokio::net::TcpListener;
use tollgate::api::auth::{Authenticator, Scopes, generate};
use tollgate::ingest::ingest;
use tollgate::model::{
    Awaiting, Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan, PlanTerms,
    SubscriptionKey,
};
use tollgate::store::Store;
use tollgate::store::sqlite::SqliteStore;
use tollgate::testing::TestApp;
use tollgate_client::EntitlementClient;
use tollgate_tests::serve::{Served, serve_function};

const EXAMPLE_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tollgate.example.toml");

/// Tollgate and the app, both listening on 127.0.0.1.
struct World {
    /// Tollgate's entitlement-check, served while the world lives.
    _tollgate: Served,
    store: Arc<dyn Store>,
    app: String,
    http: reqwest::Client,
}

impl World {
    /// `app_key`: what the app sends; `None` sends the key Tollgate issued.
    async fn start(app_key: Option<&str>) -> World {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let issued = generate("acme-ci-app", Scopes::ALL).unwrap();
        let auth = Authenticator::new(vec![issued.entry], false);
        // The real clock: the app's purchases below happen "now".
        let check = TestApp::new()
            .config_file(EXAMPLE_CONFIG.as_ref())
            .store(Arc::clone(&store))
            .system_clock()
            .entitlement_check(auth);
        let tollgate = serve_function(check).await;
        let key = app_key.unwrap_or(issued.key.expose());
        let client = EntitlementClient::new(&tollgate.url(""), Some(key)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = listener.local_addr().unwrap();
        tokio::spawn(
            async move { axum::serve(listener, tollgate_example_axum_app::app(client)).await },
        );
        World {
            _tollgate: tollgate,
            store,
            app: format!("http://{app}"),
            http: reqwest::Client::new(),
        }
    }

    /// A GitHub purchase of `plan` (1001 free, 1002 team, 1003 business).
    async fn purchase(
        &self,
        org: &str,
        plan: &str,
        seats: Option<u32>,
        awaiting: Option<Awaiting>,
    ) {
        let mut terms = PlanTerms::new(Plan::new(plan));
        terms.seats = seats;
        let now = Utc::now();
        let event = MarketEvent {
            id: format!("purchase-{org}"),
            subscription: SubscriptionKey::new(Marketplace::Github, org),
            customer: Customer::new(CustomerKey::new(Marketplace::Github, org)),
            product: "acme-ci".into(),
            effective_at: now - Duration::days(1),
            kind: EventKind::Purchased { terms, awaiting },
        };
        ingest(&*self.store, &event, now).await.unwrap();
    }

    async fn request(&self, method: &str, path: &str, org: &str, user: &str) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = self
            .http
            .request(method, format!("{}{path}", self.app))
            .header("x-org", format!("github:{org}"))
            .header("x-user", user)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn a_team_org_gets_builds_until_its_seats_are_taken_and_sign_out_frees_one() {
    let w = World::start(None).await;
    w.purchase("100", "1002", Some(2), None).await;

    let (status, body) = w.request("GET", "/builds", "100", "alice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tier"], "team");
    assert_eq!(body["seats"], serde_json::json!({"limit": 2, "used": 1}));
    assert_eq!(w.request("GET", "/builds", "100", "bob").await.0, 200);
    assert_eq!(
        w.request("GET", "/builds", "100", "alice").await.0,
        200,
        "a held seat is kept"
    );

    let (status, body) = w.request("GET", "/builds", "100", "carol").await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["error"]["code"], "seat_limit_reached");
    assert_eq!(
        body.get("decision"),
        None,
        "the org's seats are not the user's business"
    );

    let (status, body) = w.request("POST", "/sign-out", "100", "alice").await;
    assert_eq!(
        (status, &body["released"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    assert_eq!(
        w.request("GET", "/builds", "100", "carol").await.0,
        200,
        "alice's seat went to carol"
    );
}

#[tokio::test]
async fn features_follow_the_tier() {
    let w = World::start(None).await;
    w.purchase("200", "1002", Some(5), None).await;
    w.purchase("201", "1003", None, None).await;

    let (status, body) = w.request("GET", "/audit-log", "200", "alice").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (402, &Value::from("feature_not_in_plan"))
    );
    let (status, body) = w.request("GET", "/audit-log", "201", "alice").await;
    assert_eq!(
        (status, &body["tier"]),
        (200, &Value::from("business")),
        "{body}"
    );
}

#[tokio::test]
async fn customers_without_access_are_refused_with_the_reason() {
    let w = World::start(None).await;
    w.purchase("300", "1003", None, Some(Awaiting::Signup))
        .await;

    let (status, body) = w.request("GET", "/builds", "999", "alice").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (402, &Value::from("no_subscription"))
    );
    let (status, body) = w.request("GET", "/builds", "300", "alice").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &Value::from("pending_signup"))
    );

    let res = w
        .http
        .get(format!("{}/builds", w.app))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "no customer named");
    let res = w.http.get(format!("{}/", w.app)).send().await.unwrap();
    assert_eq!(res.status(), 200, "public routes need nothing");
}

#[tokio::test]
async fn the_app_fails_closed_when_tollgate_refuses_its_key() {
    let w = World::start(Some("tgk_not-a-key")).await;
    w.purchase("400", "1003", None, None).await;
    let (status, body) = w.request("GET", "/builds", "400", "alice").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "entitlement_unavailable");
    assert_eq!(body["error"]["cause"], "invalid_api_key");
}
