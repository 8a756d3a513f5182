//! The GitHub Marketplace sign-in end to end: `GET /github/setup` →
//! github.com's authorize page → `GET /github/callback`, with the real
//! `OauthCallback` function on a fresh SQLite store talking real HTTP to the
//! local stand-ins for github.com and api.github.com (`tollgate-sim`).
//!
//! The buyer's browser is played by [`World::get`]: it keeps the
//! `__Host-tollgate_oauth` cookie our responses set (checking the attributes
//! a browser requires of a `__Host-` cookie) and sends it back, the way a
//! browser does; github.com never sees it.

use std::sync::Arc;

use base64::Engine;
use tollgate::store::prelude::*;
use tollgate::testing::TestApp;

use chrono::{DateTime, Duration, Utc};
use tollgate::clock::{Clock, FixedClock};
use tollgate::functions::oauth_callback::OauthCallback;
use tollgate::model::{AppUser, CustomerKey, Marketplace};
use tollgate::store::sqlite::SqliteStore;
use tollgate::web::{Body, Response, serve};
use tollgate_sim::github::{
    Authorize, GithubSim, Org, Plan, PriceModel, Purchase, RateLimit, Running, User,
};

const PUBLIC_URL: &str = "https://tollgate.example";
const COOKIE: &str = "__Host-tollgate_oauth";
const STATE_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const CONFIG: &str = r#"
[products.app.tiers.team]
features = ["builds"]
[products.app.plans.github]
"10" = "team"
[marketplaces.github]
product = "app"
"#;

/// User 1 `mona` belongs to org 42 `acme`, which is on a 5-seat trial of
/// the per-unit plan `Team`; her personal account pays for `Pro`.
struct World {
    dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    clock: Arc<FixedClock>,
    sim: GithubSim,
    run: Running,
    function: OauthCallback,
    /// The browser's `__Host-tollgate_oauth`, as our responses left it.
    jar: std::sync::Mutex<Option<String>>,
}

/// Which secrets the function gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Secrets {
    /// Client id, client secret and the state key.
    All,
    /// No GitHub sign-in at all.
    None,
    /// The client credentials without `oauth_state_key`.
    NoStateKey,
}

impl World {
    async fn new() -> Self {
        Self::with_secrets(Secrets::All).await
    }

    async fn with_secrets(secrets: Secrets) -> Self {
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let sim = GithubSim::generate().unwrap();
        sim.add_callback_url(format!("{PUBLIC_URL}/github/callback"));
        sim.add_plan(Plan::new(10, 1, "Team", PriceModel::PerUnit).with_free_trial());
        sim.add_plan(Plan::new(11, 2, "Pro", PriceModel::FlatRate));
        sim.add_user(User::new(1, "mona").with_name("Mona Lisa"));
        sim.add_org(
            Org::new(42, "acme")
                .with_billing_email("billing@acme.example")
                .with_member(1),
        );
        sim.add_purchase(
            Purchase::new(42, 10)
                .with_units(5)
                .on_trial_until(now + Duration::days(5)),
        );
        sim.add_purchase(Purchase::new(1, 11));
        let run = sim.start().await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("tollgate.db")).unwrap());
        let clock = Arc::new(FixedClock::new(now));
        let app = sim.app();
        let mut test_app = TestApp::new()
            .config(CONFIG)
            .store(store.clone())
            .clock(clock.clone())
            .setting("TOLLGATE_GITHUB_URL", &run.web_url)
            .setting("TOLLGATE_GITHUB_API_URL", &run.api_url)
            .setting("TOLLGATE_PUBLIC_URL", PUBLIC_URL);
        if secrets != Secrets::None {
            test_app = test_app
                .secret("github_client_id", &app.client_id)
                .secret("github_client_secret", &app.client_secret);
        }
        if secrets == Secrets::All {
            test_app = test_app.secret("oauth_state_key", STATE_KEY);
        }
        let function = test_app.oauth_callback().unwrap();
        Self {
            dir,
            store,
            clock,
            sim,
            run,
            function,
            jar: std::sync::Mutex::new(None),
        }
    }

    /// A `GET` from the buyer's browser: sends the cookie it holds and
    /// keeps (or deletes) what the response sets.
    async fn get(&self, path_and_query: &str) -> Response {
        let held = self.cookie();
        let res = self.get_with_cookie(path_and_query, held.as_deref()).await;
        if let Some(set) = res.headers().get("set-cookie") {
            let (value, max_age) = host_cookie(set.to_str().unwrap());
            *self.jar.lock().unwrap() = (max_age > 0).then_some(value);
        }
        res
    }

    /// A `GET` with exactly this cookie (another browser, an attacker
    /// holding a copied one, none); the browser's jar is left alone.
    async fn get_with_cookie(&self, path_and_query: &str, cookie: Option<&str>) -> Response {
        let mut req = http::Request::builder()
            .uri(path_and_query)
            .header("host", "tollgate.example");
        if let Some(c) = cookie {
            req = req.header("cookie", format!("other=1; {COOKIE}={c}"));
        }
        serve(&self.function, req.body(Body::Empty).unwrap()).await
    }

    /// The value a response sets our cookie to.
    fn cookie_of(res: &Response) -> String {
        host_cookie(res.headers()["set-cookie"].to_str().unwrap()).0
    }

    /// The browser's `__Host-tollgate_oauth` value, if it holds one.
    fn cookie(&self) -> Option<String> {
        self.jar.lock().unwrap().clone()
    }

    /// `GET /github/setup` (with the untrusted parameters GitHub adds);
    /// returns where it redirects.
    async fn setup(&self) -> String {
        let res = self
            .get("/github/setup?installation_id=999&setup_action=install")
            .await;
        assert_eq!(res.status(), 302, "{}", body(&res));
        assert_eq!(res.headers()["cache-control"], "no-store");
        res.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Follows the redirect to the stand-in's authorize page like a browser;
    /// returns the path and query GitHub sends the browser back to.
    async fn authorize(&self, location: &str) -> String {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let res = browser.get(location).send().await.unwrap();
        assert_eq!(res.status(), 302);
        let back = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(
            format!(
                "{}://{}{}",
                back.scheme(),
                back.host_str().unwrap(),
                back.path()
            ),
            format!("{PUBLIC_URL}/github/callback")
        );
        format!("{}?{}", back.path(), back.query().unwrap_or(""))
    }

    /// The whole flow: setup, authorize, callback.
    async fn sign_in(&self) -> (String, Response) {
        let back = self.authorize(&self.setup().await).await;
        let res = self.get(&back).await;
        (back, res)
    }

    async fn linked(&self) -> Vec<CustomerKey> {
        let mut l: Vec<CustomerKey> = self
            .store
            .user_links(&AppUser("github:1".into()), self.clock.now())
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.customer)
            .collect();
        l.sort();
        l
    }

    /// Requests the stand-ins saw to `path`.
    fn calls(&self, path: &str) -> usize {
        self.sim.seen().iter().filter(|s| s.path == path).count()
    }

    /// Every byte the store wrote, to prove no user token is in it (and, by
    /// comparing two snapshots, that nothing was written in between).
    fn stored_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            all.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        all
    }
}

/// A `Set-Cookie` for our cookie, checked the way a browser checks a
/// `__Host-` cookie (and for `HttpOnly`, `SameSite=Lax`): its value and
/// `Max-Age`.
fn host_cookie(set_cookie: &str) -> (String, i64) {
    let mut parts = set_cookie.split("; ");
    let (name, value) = parts.next().unwrap().split_once('=').unwrap();
    assert_eq!(name, COOKIE, "{set_cookie}");
    let attributes: Vec<&str> = parts.collect();
    let max_age = attributes
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap_or_else(|| panic!("no Max-Age: {set_cookie}"))
        .parse()
        .unwrap();
    let mut rest: Vec<&str> = attributes
        .into_iter()
        .filter(|a| !a.starts_with("Max-Age="))
        .collect();
    rest.sort_unstable();
    assert_eq!(
        rest,
        ["HttpOnly", "Path=/", "SameSite=Lax", "Secure"],
        "exactly these attributes, no Domain: {set_cookie}"
    );
    (value.to_owned(), max_age)
}

fn body(res: &Response) -> String {
    String::from_utf8_lossy(res.body().as_ref()).into_owned()
}

fn github(id: &str) -> CustomerKey {
    CustomerKey::new(Marketplace::Github, id)
}

#[tokio::test]
async fn a_buyer_goes_from_the_setup_url_to_a_page_with_plan_seats_and_trial_days_left() {
    let w = World::new().await;
    let res = w
        .get("/github/setup?installation_id=999&setup_action=install")
        .await;
    assert_eq!(res.status(), 302, "{}", body(&res));
    let nonce = w.cookie().expect("the setup URL sets the sign-in cookie");
    assert_eq!(nonce.len(), 64, "32 random bytes");
    assert_eq!(
        res.headers()["set-cookie"],
        format!("{COOKIE}={nonce}; Path=/; Max-Age=600; Secure; HttpOnly; SameSite=Lax").as_str()
    );
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/login/oauth/authorize?", w.run.web_url)),
        "{location}"
    );
    let authorize = url::Url::parse(&location).unwrap();
    let q: std::collections::HashMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], w.sim.app().client_id);
    assert_eq!(q["redirect_uri"], format!("{PUBLIC_URL}/github/callback"));
    assert!(
        q["state"].len() <= 1024 && !q["state"].contains(STATE_KEY),
        "{}",
        q["state"]
    );
    // Checked on the parsed query, not the raw URL: the random `state` or a
    // port may contain the digits by chance.
    assert!(
        !q.contains_key("installation_id")
            && !q["redirect_uri"].contains("installation_id")
            && !q.values().any(|v| v == "999"),
        "installation_id is not trusted or forwarded: {location}"
    );

    let res = w.get(&w.authorize(&location).await).await;
    let html = body(&res);
    assert_eq!(res.status(), 200, "{html}");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    // Nothing loads but the page's own style, allowed by its hash.
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-")
            && csp.ends_with("; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
            && !csp.contains("unsafe-inline")
            && !csp.contains("img-src"),
        "{csp}"
    );
    assert!(html.contains("Welcome, Mona Lisa"), "{html}");
    assert!(
        html.contains("<h2>Team</h2>") && html.contains("acme (organization)"),
        "{html}"
    );
    assert!(html.contains("<dt>Seats</dt><dd>5 seats</dd>"), "{html}");
    let ends = (w.clock.now() + Duration::days(5)).format("%Y-%m-%d");
    assert!(
        html.contains(&format!("Free trial: 5 days left (ends {ends}).")),
        "{html}"
    );
    assert_eq!(
        html.matches("Free trial:").count(),
        1,
        "only the trial purchase has a banner"
    );
    assert!(
        html.contains("<h2>Pro</h2>") && html.contains("mona (personal account)"),
        "{html}"
    );
    assert!(!html.contains("<link") && !html.contains("<script") && !html.contains("src="));

    assert_eq!(w.linked().await, vec![github("1"), github("42")]);
    assert_eq!(
        res.headers()["set-cookie"],
        format!("{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax").as_str(),
        "the finished sign-in deletes its cookie"
    );
    assert_eq!(w.cookie(), None);
    // The user's token was used and dropped: not in the page, not in the store.
    assert_eq!(w.sim.issued_token_count(), 1);
    assert!(!html.contains("ghu_"));
    let stored = w.stored_bytes();
    assert!(
        !stored.windows(4).any(|b| b == b"ghu_"),
        "a user token reached the store"
    );
}

#[tokio::test]
async fn the_state_is_single_use_so_replaying_the_callback_changes_nothing() {
    let w = World::new().await;
    let location = w.setup().await;
    let stolen = w.cookie().unwrap();
    let back = w.authorize(&location).await;
    let res = w.get(&back).await;
    assert_eq!(res.status(), 200);
    let exchanges = w.calls("/login/oauth/access_token");
    let user_calls = w.calls("/user");

    // Links GitHub would report now: a replay must not add them.
    w.sim.add_org(Org::new(43, "beta").with_member(1));
    w.sim.add_purchase(Purchase::new(43, 11));

    // A reload in the same browser: the cookie is gone, GitHub is not asked.
    let replay = w.get(&back).await;
    assert_eq!(replay.status(), 400);
    assert!(
        body(&replay).contains("This sign-in link is no longer valid"),
        "{}",
        body(&replay)
    );
    assert!(body(&replay).contains("href=\"/github/setup\""));
    assert_eq!(
        w.calls("/login/oauth/access_token"),
        exchanges,
        "no second code exchange"
    );

    // Someone holding a copy of the cookie: the same code is refused by
    // GitHub (codes work once) ...
    let replay = w.get_with_cookie(&back, Some(&stolen)).await;
    assert_eq!(replay.status(), 400, "{}", body(&replay));
    // ... and the same state with a fresh code from GitHub's authorize page
    // is refused by Tollgate: the state was recorded as used.
    let fresh = w.authorize(&location).await;
    assert_ne!(fresh, back);
    let replay = w.get_with_cookie(&fresh, Some(&stolen)).await;
    assert_eq!(replay.status(), 400, "{}", body(&replay));
    assert!(
        body(&replay).contains("This sign-in link is no longer valid"),
        "{}",
        body(&replay)
    );
    assert_eq!(
        w.calls("/user"),
        user_calls,
        "GitHub was not asked who it is"
    );
    assert_eq!(w.linked().await, vec![github("1"), github("42")]);
}

#[tokio::test]
async fn a_callback_is_refused_without_the_browsers_cookie_or_with_another_browsers() {
    let w = World::new().await;
    let location = w.setup().await;
    let mine = w.cookie().unwrap();
    let back = w.authorize(&location).await;
    // Another browser starts its own sign-in: a valid cookie, not ours.
    let theirs = World::cookie_of(&w.get_with_cookie("/github/setup", None).await);
    assert_ne!(theirs, mine);

    for (cookie, why) in [
        (
            None,
            "no cookie (e.g. a callback URL opened in another browser)",
        ),
        (Some(theirs.as_str()), "another browser's cookie"),
        (Some(""), "an empty cookie"),
        (Some(&mine[..63]), "a truncated cookie"),
    ] {
        let res = w.get_with_cookie(&back, cookie).await;
        assert_eq!(res.status(), 400, "{why}");
        assert!(
            body(&res).contains("This sign-in link is no longer valid"),
            "{why}: {}",
            body(&res)
        );
        // A refused state leaves the cookie alone: a forged callback in the
        // buyer's browser must not end the sign-in in progress.
        assert!(res.headers().get("set-cookie").is_none(), "{why}");
    }
    assert_eq!(w.calls("/login/oauth/access_token"), 0);
    assert!(w.linked().await.is_empty());

    // The browser that started it still finishes.
    let res = w.get(&back).await;
    assert_eq!(res.status(), 200, "{}", body(&res));
    assert_eq!(w.linked().await, vec![github("1"), github("42")]);
}

#[tokio::test]
async fn a_tampered_state_is_refused_before_calling_github() {
    let w = World::new().await;
    let back = w.authorize(&w.setup().await).await;
    let url = url::Url::parse(&format!("{PUBLIC_URL}{back}")).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    let (payload, mac) = q["state"].split_once('.').unwrap();
    // The same payload with one MAC character changed, and a payload of
    // the forger's (their own nonce: they can set the cookie only in their
    // own browser) under our MAC.
    let mut flipped = mac.to_owned();
    let first = if flipped.starts_with('A') { "B" } else { "A" };
    flipped.replace_range(0..1, first);
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        serde_json::json!({"n": "f".repeat(64), "exp": 4_000_000_000i64, "uri": format!("{PUBLIC_URL}/github/callback")})
            .to_string(),
    );
    for (state, cookie) in [
        (format!("{payload}.{flipped}"), w.cookie().unwrap()),
        (format!("{forged_payload}.{mac}"), "f".repeat(64)),
    ] {
        let path = format!(
            "/github/callback?code={}&state={}",
            q["code"],
            url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
        );
        let res = w.get_with_cookie(&path, Some(&cookie)).await;
        assert_eq!(res.status(), 400, "{state}");
        assert!(body(&res).contains("This sign-in link is no longer valid"));
    }
    assert_eq!(w.calls("/login/oauth/access_token"), 0);
    assert!(w.linked().await.is_empty());
}

#[tokio::test]
async fn anonymous_visits_to_the_setup_url_write_nothing_to_the_store() {
    let w = World::new().await;
    let before = w.stored_bytes();
    for _ in 0..20 {
        let res = w.get_with_cookie("/github/setup", None).await;
        assert_eq!(res.status(), 302);
    }
    // A refused callback writes nothing either.
    let res = w
        .get_with_cookie("/github/callback?code=c&state=forged", Some("x"))
        .await;
    assert_eq!(res.status(), 400);
    assert!(
        w.stored_bytes() == before,
        "the store changed on anonymous hits"
    );
    // The comparison does see writes: a completed sign-in (links, the used
    // state) changes the bytes.
    let (_, res) = w.sign_in().await;
    assert_eq!(res.status(), 200);
    assert!(w.stored_bytes() != before, "a sign-in is seen as a write");
}

#[tokio::test]
async fn without_the_state_key_github_sign_in_answers_not_set_up() {
    let w = World::with_secrets(Secrets::NoStateKey).await;
    for path in ["/github/setup", "/github/callback?code=c&state=s"] {
        let res = w.get_with_cookie(path, Some("x")).await;
        assert_eq!(res.status(), 503, "{path}");
        assert!(
            body(&res).contains("GitHub sign-in is not set up"),
            "{path}: {}",
            body(&res)
        );
    }
    assert_eq!(w.sim.seen().len(), 0);
}

#[tokio::test]
async fn revisiting_with_a_fresh_state_and_code_is_idempotent() {
    let w = World::new().await;
    for _ in 0..3 {
        let (_, res) = w.sign_in().await;
        assert_eq!(res.status(), 200, "{}", body(&res));
    }
    assert_eq!(w.linked().await, vec![github("1"), github("42")]);
    assert_eq!(w.calls("/login/oauth/access_token"), 3);
}

#[tokio::test]
async fn declining_on_github_shows_a_clear_page_and_links_nothing() {
    let w = World::new().await;
    w.sim.set_authorize(Authorize::Deny);
    let (back, res) = w.sign_in().await;
    assert!(back.contains("error=access_denied"), "{back}");
    assert_eq!(res.status(), 400);
    assert!(
        body(&res).contains("Authorization cancelled"),
        "{}",
        body(&res)
    );
    assert!(w.linked().await.is_empty());
    assert_eq!(w.calls("/login/oauth/access_token"), 0);
}

#[tokio::test]
async fn an_unknown_or_missing_state_is_refused_before_calling_github() {
    let w = World::new().await;
    for path in [
        "/github/callback?code=0123456789abcdef0123&state=forged",
        "/github/callback?code=0123456789abcdef0123",
        "/github/callback?code=x&state=",
    ] {
        let res = w.get(path).await;
        assert_eq!(res.status(), 400, "{path}");
        assert!(
            body(&res).contains("This sign-in link is no longer valid"),
            "{path}"
        );
    }
    assert_eq!(w.calls("/login/oauth/access_token"), 0);
    assert!(w.linked().await.is_empty());
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let w = World::new().await;
    let location = w.setup().await;
    w.clock
        .set(w.clock.now() + Duration::minutes(10) + Duration::seconds(1));
    let res = w.get(&w.authorize(&location).await).await;
    assert_eq!(res.status(), 400);
    assert!(body(&res).contains("This sign-in link is no longer valid"));
    assert_eq!(w.calls("/login/oauth/access_token"), 0);
    assert!(w.linked().await.is_empty());
}

#[tokio::test]
async fn an_expired_code_gets_a_clear_page_although_github_answers_200() {
    let w = World::new().await;
    let back = w.authorize(&w.setup().await).await;
    w.sim.expire_codes();
    let res = w.get(&back).await;
    assert_eq!(res.status(), 400);
    assert!(
        body(&res).contains("The sign-in code expired"),
        "{}",
        body(&res)
    );
    assert_eq!(
        w.calls("/login/oauth/access_token"),
        1,
        "GitHub was asked once"
    );
    assert_eq!(w.calls("/user"), 0);
    assert!(w.linked().await.is_empty());
}

#[tokio::test]
async fn purchases_on_several_pages_are_all_linked_and_shown() {
    let w = World::new().await;
    w.sim.add_org(Org::new(43, "beta").with_member(1));
    w.sim.add_purchase(Purchase::new(43, 11));
    // GitHub pages at most 100; the stand-in is told to page at 1 so three
    // purchases need three requests, each following `Link: rel="next"`.
    w.sim.set_max_per_page(1);
    let (_, res) = w.sign_in().await;
    assert_eq!(res.status(), 200, "{}", body(&res));
    assert_eq!(
        w.linked().await,
        vec![github("1"), github("42"), github("43")]
    );
    assert!(body(&res).contains("beta (organization)"));
    let pages: Vec<String> = w
        .sim
        .seen()
        .into_iter()
        .filter(|s| s.path == "/user/marketplace_purchases")
        .map(|s| s.query.unwrap_or_default())
        .collect();
    assert_eq!(
        pages,
        vec!["per_page=100", "per_page=1&page=2", "per_page=1&page=3"]
    );
}

#[tokio::test]
async fn a_rate_limited_reply_shows_a_try_later_page_and_links_nothing() {
    let w = World::new().await;
    let back = w.authorize(&w.setup().await).await;
    let reset = DateTime::from_timestamp(Utc::now().timestamp() + 1800, 0).unwrap();
    w.sim
        .rate_limit_next(1, RateLimit::Primary { reset_at: reset });
    let res = w.get(&back).await;
    assert_eq!(res.status(), 503);
    let html = body(&res);
    assert!(html.contains("GitHub is busy"), "{html}");
    assert!(
        html.contains(&format!("try again after {} UTC", reset.format("%H:%M"))),
        "{html}"
    );
    assert_eq!(w.calls("/user"), 1, "one try, no hammering");
    assert_eq!(w.calls("/user/marketplace_purchases"), 0);
    assert!(w.linked().await.is_empty());
}

#[tokio::test]
async fn without_client_credentials_the_setup_url_says_sign_in_is_not_set_up() {
    let w = World::with_secrets(Secrets::None).await;
    let res = w.get("/github/setup").await;
    assert_eq!(res.status(), 503);
    assert!(body(&res).contains("GitHub sign-in is not set up"));
    assert_eq!(w.sim.seen().len(), 0);
    let res = w.get("/healthz").await;
    assert_eq!(res.status(), 200);
}
