//! User links have a lifecycle, end to end: the real `OauthCallback`
//! (GitHub sign-in against the GitHub stand-in) and the real
//! `EntitlementCheck` (served over HTTP, asked through `tollgate-client`)
//! on one store and one clock.
//!
//! Mona (GitHub user 1) belongs to `acme` (org 42, which bought `app`) and
//! `beta` (org 43, which bought `docs`). She signs in: entitled to both.
//! She leaves `beta` and signs in again: `app` only. Her link to `acme` is
//! removed through the API: nothing. She signs in again: `app` again, for
//! the link TTL — and not a second longer unless she signs in once more.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tollgate::api::auth::{Authenticator, Scopes, generate};
use tollgate::clock::{Clock, FixedClock};
use tollgate::functions::oauth_callback::OauthCallback;
use tollgate::ingest::{Ingested, ingest};
use tollgate::model::{
    Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan, PlanTerms, SubscriptionKey,
};
use tollgate::store::Store;
use tollgate::store::sqlite::SqliteStore;
use tollgate::testing::TestApp;
use tollgate::web::{Body, serve};
use tollgate_client::{AppUser, CheckRequest, CustomerRef, EntitlementClient, Reason};
use tollgate_sim::github::{GithubSim, Org, Plan as SimPlan, PriceModel, Purchase, Running, User};
use tollgate_tests::serve::{Served, serve_function};

const PUBLIC_URL: &str = "https://tollgate.example";
const COOKIE: &str = "__Host-tollgate_oauth";
const STATE_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const CONFIG: &str = r#"
[products.app.tiers.team]
features = ["builds"]
[products.app.plans.github]
"10" = "team"
[products.docs.tiers.pro]
features = ["read"]
[products.docs.plans.github]
"10" = "pro"
[marketplaces.github]
product = "app"
"#;
const MONA: u64 = 1;
const ACME: u64 = 42;
const BETA: u64 = 43;

struct World {
    store: Arc<dyn Store>,
    clock: Arc<FixedClock>,
    sim: GithubSim,
    _github: Running,
    oauth: OauthCallback,
    _check: Served,
    client: EntitlementClient,
}

impl World {
    /// Links live `ttl` (`TOLLGATE_LINK_TTL`).
    async fn new(ttl: &str) -> Self {
        // The stand-in's codes expire by the real clock; ours starts there.
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let sim = GithubSim::generate().unwrap();
        sim.add_callback_url(format!("{PUBLIC_URL}/github/callback"));
        sim.add_plan(SimPlan::new(10, 1, "Team", PriceModel::FlatRate));
        sim.add_user(User::new(MONA, "mona"));
        sim.add_org(Org::new(ACME, "acme").with_member(MONA));
        sim.add_org(Org::new(BETA, "beta").with_member(MONA));
        sim.add_purchase(Purchase::new(ACME, 10));
        sim.add_purchase(Purchase::new(BETA, 10));
        let github = sim.start().await.unwrap();

        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let clock = Arc::new(FixedClock::new(now));
        let app = sim.app();
        let test_app = TestApp::new()
            .config(CONFIG)
            .store(Arc::clone(&store))
            .clock(Arc::clone(&clock))
            .setting("TOLLGATE_GITHUB_URL", &github.web_url)
            .setting("TOLLGATE_GITHUB_API_URL", &github.api_url)
            .setting("TOLLGATE_PUBLIC_URL", PUBLIC_URL)
            .setting("TOLLGATE_LINK_TTL", ttl)
            .secret("github_client_id", &app.client_id)
            .secret("github_client_secret", &app.client_secret)
            .secret("oauth_state_key", STATE_KEY);
        let oauth = test_app.oauth_callback().unwrap();
        let key = generate("app", Scopes::parse("check,seats").unwrap()).unwrap();
        let check = serve_function(
            test_app.entitlement_check(Authenticator::new(vec![key.entry.clone()], false)),
        )
        .await;
        let client = EntitlementClient::new(&check.url(""), Some(key.key.expose())).unwrap();

        let w = Self {
            store,
            clock,
            sim,
            _github: github,
            oauth,
            _check: check,
            client,
        };
        w.bought(ACME, "app").await;
        w.bought(BETA, "docs").await;
        w
    }

    /// GitHub account `account` bought `product` (plan 10) a day ago.
    async fn bought(&self, account: u64, product: &str) {
        let now = self.clock.now();
        let customer = CustomerKey::new(Marketplace::Github, account.to_string());
        let event = MarketEvent {
            id: format!("purchase-{account}"),
            subscription: SubscriptionKey::new(Marketplace::Github, format!("{account}-{product}")),
            customer: Customer::new(customer),
            product: product.into(),
            effective_at: now - Duration::days(1),
            kind: EventKind::Purchased {
                terms: PlanTerms::new(Plan::new("10")),
                awaiting: None,
            },
        };
        let outcome = ingest(&*self.store, &event, now).await.unwrap();
        assert!(matches!(outcome, Ingested::Committed(_)));
    }

    /// The whole sign-in, as a browser does it: the Setup URL (keeping the
    /// cookie it sets), GitHub's authorize page, the callback.
    async fn sign_in(&self) {
        let setup = self.get("/github/setup", None).await;
        assert_eq!(setup.status(), 302);
        let set_cookie = setup.headers()["set-cookie"].to_str().unwrap();
        let nonce = set_cookie
            .split(';')
            .next()
            .and_then(|c| c.strip_prefix(&format!("{COOKIE}=")))
            .unwrap()
            .to_owned();
        let location = setup.headers()["location"].to_str().unwrap();
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let authorized = browser.get(location).send().await.unwrap();
        assert_eq!(authorized.status(), 302);
        let back = url::Url::parse(authorized.headers()["location"].to_str().unwrap()).unwrap();
        let callback = format!("{}?{}", back.path(), back.query().unwrap_or(""));
        let done = self.get(&callback, Some(&nonce)).await;
        assert_eq!(
            done.status(),
            200,
            "{}",
            String::from_utf8_lossy(done.body().as_ref())
        );
    }

    async fn get(&self, path: &str, nonce: Option<&str>) -> tollgate::web::Response {
        let mut req = http::Request::builder()
            .uri(path)
            .header("host", "tollgate.example");
        if let Some(nonce) = nonce {
            req = req.header("cookie", format!("{COOKIE}={nonce}"));
        }
        serve(&self.oauth, req.body(Body::Empty).unwrap()).await
    }

    /// May Mona use `product`? (The reason, `ok` when allowed.)
    async fn mona_may_use(&self, product: &str) -> Reason {
        let d = self
            .client
            .check(&CheckRequest::new(
                CustomerRef::app_user(format!("github:{MONA}")),
                product,
            ))
            .await
            .unwrap();
        assert_eq!(d.allowed, d.reason == Reason::Ok);
        d.reason
    }
}

fn acme() -> CustomerKey {
    CustomerKey::new(Marketplace::Github, ACME.to_string())
}

#[tokio::test]
async fn leaving_an_organization_removal_and_expiry_each_end_an_entitlement() {
    let w = World::new("7d").await;
    let mona = AppUser(format!("github:{MONA}"));

    // Never signed in: no links, nothing.
    assert_eq!(w.mona_may_use("app").await, Reason::NoSubscription);

    // Signed in while in both organizations: entitled through both.
    w.sign_in().await;
    assert_eq!(w.mona_may_use("app").await, Reason::Ok);
    assert_eq!(w.mona_may_use("docs").await, Reason::Ok);

    // She leaves beta. Until she signs in again nothing has told Tollgate;
    // at the next sign-in GitHub no longer lists beta's purchase.
    assert!(w.sim.remove_member(BETA, MONA));
    w.clock.set(w.clock.now() + Duration::hours(1));
    w.sign_in().await;
    assert_eq!(w.mona_may_use("app").await, Reason::Ok);
    assert_eq!(w.mona_may_use("docs").await, Reason::NoSubscription);

    // Her link to acme removed through the API: 204, then 404.
    assert!(w.client.remove_link(&mona, &acme()).await.unwrap());
    assert!(!w.client.remove_link(&mona, &acme()).await.unwrap());
    assert_eq!(w.mona_may_use("app").await, Reason::NoSubscription);

    // Signing in links her again, for the TTL: a second before it ends she
    // is entitled, at its end she is not.
    w.sign_in().await;
    let signed_in = w.clock.now();
    w.clock
        .set(signed_in + Duration::days(7) - Duration::seconds(1));
    assert_eq!(w.mona_may_use("app").await, Reason::Ok);
    w.clock.set(signed_in + Duration::days(7));
    assert_eq!(w.mona_may_use("app").await, Reason::NoSubscription);
    // An expired link is not there to remove.
    assert!(!w.client.remove_link(&mona, &acme()).await.unwrap());
}

#[tokio::test]
async fn a_user_who_keeps_signing_in_keeps_access() {
    let w = World::new("7d").await;
    let start = w.clock.now();
    // Signing in every 5 days for a month: each sign-in renews the link.
    for day in (0..=30).step_by(5) {
        w.clock.set(start + Duration::days(day));
        w.sign_in().await;
        w.clock.set(start + Duration::days(day) + Duration::days(5));
        assert_eq!(w.mona_may_use("app").await, Reason::Ok, "day {day}");
    }
}
