//! The customer's pages in a real browser: headless Chromium, driven over
//! WebDriver (`tollgate_tests::webdriver`), goes through GitHub's Setup URL
//! → the GitHub stand-in's authorize page → the callback, and through
//! Google's "Sign up with provider" form → the sign-up page, with the real
//! `oauth-callback` function served on 127.0.0.1.
//!
//! Each case asserts what the customer reads and can click (text, links,
//! the product's logo), and every page it lands on is checked for the
//! basics: a language, one `h1` and headings in order, labelled controls,
//! text contrast of at least 4.5:1 computed from the browser's styles, a
//! visible keyboard focus on every link reached with Tab, no console
//! complaint (a CSP refusal would be one), and on a 390×844 phone no
//! horizontal scrolling.
//!
//! One browser session serves every case. A failing case leaves a
//! screenshot and the page's HTML in `target/screenshots/failures/`; with
//! `TOLLGATE_SCREENSHOTS=<dir>` (`make screenshots`) every page is also
//! saved there, desktop and phone.
//!
//! The sign-in's `__Host-tollgate_oauth` cookie is `Secure`. Chromium
//! treats `http://127.0.0.1` (and `localhost`) as potentially trustworthy,
//! so it keeps the cookie over plain HTTP here: the successful sign-ins
//! below prove it (the callback refuses a sign-in without its cookie), and
//! `a_sign_in_that_took_longer_than_ten_minutes_is_refused_clearly` looks
//! at the cookie the browser holds.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tollgate::clock::{Clock, FixedClock};
use tollgate::functions::oauth_callback::OauthCallback;
use tollgate::testing::TestApp;
use tollgate::web::{ApiError, Function, Request, Response};
use tollgate_sim::gcp::{BadSignupToken, GcpSim};
use tollgate_sim::github::{Authorize, GithubSim, Org, Plan, PriceModel, Purchase, User};
use tollgate_tests::serve::{Served, serve_function};
use tollgate_tests::webdriver::{Chrome, DEFAULT_WAIT, PHONE};

const STATE_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const APP_URL: &str = "https://ci.acme.example/welcome?from=marketplace";
const COOKIE: &str = "__Host-tollgate_oauth";
/// The product's logo: inline in the page as a `data:` URI.
const LOGO: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64"><rect width="64" height="64" rx="12" fill="#0b3d91"/><path d="M14 44 32 14l18 30z" fill="#fff"/></svg>"##;
/// A GitHub login of the longest kind (39 characters), to see that long
/// words wrap on a phone.
const LONG_ORG: &str = "a-very-long-organization-name-for-tests";

fn config(approval: &str, google_product: &str) -> String {
    format!(
        r##"
[products.acme-ci]
name = "Acme CI"
cancelled_tier = "free"

[products.acme-ci.branding]
app_url = "{APP_URL}"
logo = "acme-ci.svg"
accent_colour = "#0b3d91"

[products.acme-ci.tiers.free]
features = ["public-repos"]
seats = "unlimited"

[products.acme-ci.tiers.team]
features = ["public-repos", "private-repos"]
seats = "purchased"

[products.acme-ci.tiers.business]
features = ["public-repos", "private-repos", "sso"]
seats = 50

[products.acme-ci.plans.github]
"1001" = "free"
"1002" = "team"
"1003" = "business"

[products.acme-ci.plans.gcp]
"team-monthly" = "team"
"business-yearly" = "business"

[marketplaces.github]
product = "acme-ci"

[marketplaces.gcp]
approval = "{approval}"

[marketplaces.gcp.products]
"{google_product}" = "acme-ci"
"##
    )
}

/// oauth-callback, with a hook that makes the buyer take longer than the
/// sign-in's 10 minutes at GitHub: the next callback finds the clock moved.
struct SlowBuyer {
    inner: OauthCallback,
    clock: Arc<FixedClock>,
    delay: Mutex<Option<chrono::Duration>>,
}

#[async_trait]
impl Function for SlowBuyer {
    async fn call(&self, req: Request) -> Result<Response, ApiError> {
        if req.uri().path() == "/github/callback"
            && let Some(delay) = self.delay.lock().unwrap().take()
        {
            self.clock.set(self.clock.now() + delay);
        }
        self.inner.call(req).await
    }
}

/// Everything the cases share: one browser, the stand-ins, the served
/// functions, where screenshots go.
struct Ctx {
    chrome: Chrome,
    _dir: tempfile::TempDir,
    github: GithubSim,
    _github_run: tollgate_sim::github::Running,
    slow: Arc<SlowBuyer>,
    start: DateTime<Utc>,
    oauth: Served,
    google: GcpSim,
    _google_run: tollgate_sim::gcp::Running,
    signup: Served,
    signup_manual: Served,
    marketplace: Served,
    /// The case running now and how many pages it has looked at.
    case: Mutex<(String, usize)>,
    /// `TOLLGATE_SCREENSHOTS`: every page, desktop and phone.
    all_shots: Option<PathBuf>,
}

impl Ctx {
    async fn start() -> Self {
        let chrome = Chrome::start().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("acme-ci.svg"), LOGO).unwrap();

        // GitHub: mona signs in for org acme's trial; hubot has three
        // accounts that bought.
        let start = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let github = GithubSim::generate().unwrap();
        github.add_plan(Plan::new(1001, 1, "Free", PriceModel::Free));
        github.add_plan(Plan::new(1002, 2, "Team", PriceModel::PerUnit).with_free_trial());
        github.add_plan(Plan::new(1003, 3, "Business", PriceModel::FlatRate));
        github.add_user(User::new(1, "mona").with_name("Mona Lisa"));
        github.add_user(User::new(2, "hubot"));
        github.add_org(Org::new(42, "acme").with_member(1));
        github.add_org(Org::new(43, "beta-industries").with_member(2));
        github.add_org(Org::new(44, LONG_ORG).with_member(2));
        github.add_purchase(
            Purchase::new(42, 1002)
                .with_units(5)
                .on_trial_until(start + chrono::Duration::days(5)),
        );
        github.add_purchase(Purchase::new(2, 1001).unbilled());
        github.add_purchase(Purchase::new(43, 1003).yearly());
        github.add_purchase(Purchase::new(44, 1002).with_units(12));
        let github_run = github.start().await.unwrap();

        let google = GcpSim::generate().unwrap();
        google.hold_deliveries(true);
        let google_run = google.start().await.unwrap();
        let product = google.listing().product_external_name;

        let config_file = |name: &str, approval: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, config(approval, &product)).unwrap();
            path
        };
        let automatic = config_file("tollgate.toml", "automatic");
        let manual = config_file("tollgate-manual.toml", "manual");

        let clock = Arc::new(FixedClock::new(start));
        let app = github.app();
        let inner = TestApp::new()
            .config_file(&automatic)
            .clock(clock.clone())
            .setting("TOLLGATE_GITHUB_URL", &github_run.web_url)
            .setting("TOLLGATE_GITHUB_API_URL", &github_run.api_url)
            .secret("github_client_id", &app.client_id)
            .secret("github_client_secret", &app.client_secret)
            .secret("oauth_state_key", STATE_KEY)
            .oauth_callback()
            .unwrap();
        let slow = Arc::new(SlowBuyer {
            inner,
            clock,
            delay: Mutex::new(None),
        });
        // No TOLLGATE_PUBLIC_URL: the redirect URI is the request's own
        // http://127.0.0.1:<port>, as in `make dev`.
        let oauth = serve_function(Arc::clone(&slow)).await;
        github.add_callback_url(oauth.url("/github/callback"));

        // Google's tokens are minted on the real clock.
        let google_app = |config: &PathBuf| {
            TestApp::new()
                .config_file(config)
                .system_clock()
                .settings(google.tollgate_settings(&google_run, "https://tollgate.example/pubsub"))
                .secret(
                    "gcp_service_account_key",
                    &google.service_account_key().to_json(),
                )
                .oauth_callback()
                .unwrap()
        };
        let signup = serve_function(google_app(&automatic)).await;
        let signup_manual = serve_function(google_app(&manual)).await;
        let marketplace = serve_function(MarketplacePage).await;

        // A relative directory is taken from the workspace root.
        let all_shots = std::env::var_os("TOLLGATE_SCREENSHOTS")
            .map(|d| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(d));
        Self {
            chrome,
            _dir: dir,
            github,
            _github_run: github_run,
            slow,
            start,
            oauth,
            google,
            _google_run: google_run,
            signup,
            signup_manual,
            marketplace,
            case: Mutex::new((String::new(), 0)),
            all_shots,
        }
    }

    /// A fresh GitHub sign-in as `user`, at the start time.
    fn github_as(&self, user: u64) {
        self.slow.clock.set(self.start);
        self.github.set_authorize(Authorize::Approve);
        self.github.sign_in(user);
    }

    /// From the Setup URL (with the parameters GitHub adds, which are
    /// ignored) through GitHub's authorize page to the page the callback
    /// shows.
    async fn github_sign_in(&self) -> Seen {
        self.chrome
            .goto(
                &self
                    .oauth
                    .url("/github/setup?installation_id=999&setup_action=install"),
            )
            .await;
        self.landed("/github/callback").await
    }

    /// Google's "Sign up with provider" button with `token`, for the
    /// function at `signup`; the page it lands on.
    async fn google_sign_up(&self, signup: &Served, token: &str) -> Seen {
        let form = format!(
            "{}?action={}&token={token}",
            self.marketplace.url("/marketplace"),
            url::form_urlencoded::byte_serialize(signup.url("/gcp/signup").as_bytes())
                .collect::<String>()
        );
        self.chrome.goto(&form).await;
        self.click("button[type=submit]").await;
        self.landed("/gcp/signup").await
    }

    /// Clicks `css`, marking the page first so that [`Ctx::landed`] waits
    /// for the page the click leads to, not this one.
    async fn click(&self, css: &str) {
        self.chrome
            .js("window.__tollgateLeft = true;", json!([]))
            .await;
        self.chrome.click(css).await;
    }

    /// Waits until the browser shows a page of ours at `path`, checks it
    /// (accessibility, phone layout, console) and returns what it shows.
    async fn landed(&self, path: &str) -> Seen {
        self.chrome
            .wait_for(
                &format!("a page at {path}"),
                &format!(
                    "return document.readyState === 'complete' && location.pathname === '{path}' \
                     && document.querySelector('main h1') !== null && !window.__tollgateLeft"
                ),
                DEFAULT_WAIT,
            )
            .await;
        self.look().await
    }

    async fn look(&self) -> Seen {
        let seen: Seen = serde_json::from_value(self.chrome.js(LOOK, json!([])).await).unwrap();
        let (name, n) = {
            let mut case = self.case.lock().unwrap();
            case.1 += 1;
            case.clone()
        };
        if let Some(dir) = &self.all_shots {
            self.chrome
                .save_screenshot(&dir.join(format!("{name}-{n}-desktop.png")))
                .await;
        }
        let mut problems: Vec<String> = serde_json::from_value(
            self.chrome
                .js(&format!("{HELPERS}\n{ACCESSIBILITY}"), json!([]))
                .await,
        )
        .unwrap();
        problems.extend(self.keyboard_focus().await);
        problems.extend(self.console_errors().await);
        self.chrome
            .js(
                "document.activeElement && document.activeElement.blur();",
                json!([]),
            )
            .await;
        self.chrome.emulate_phone(Some(PHONE)).await;
        let phone = self.chrome.js(PHONE_LAYOUT, json!([])).await;
        if let Some(dir) = &self.all_shots {
            self.chrome
                .save_screenshot(&dir.join(format!("{name}-{n}-phone.png")))
                .await;
        }
        self.chrome.emulate_phone(None).await;
        if phone["innerWidth"] != PHONE.0 {
            problems.push(format!(
                "on a phone the page is laid out {} px wide, not {}: content wider than the \
                 screen, or no viewport meta",
                phone["innerWidth"], PHONE.0
            ));
        }
        if phone["scrollWidth"].as_u64() > phone["innerWidth"].as_u64() {
            problems.push(format!("on a phone the page scrolls sideways: {phone}"));
        }
        assert!(
            problems.is_empty(),
            "page {:?} ({}):\n  {}",
            seen.title,
            self.chrome.current_url().await,
            problems.join("\n  ")
        );
        seen
    }

    /// Tabs through the page: every link and button must be reached and
    /// show a focus outline (`:focus-visible`) that stands out.
    async fn keyboard_focus(&self) -> Vec<String> {
        let count = self
            .chrome
            .js(
                "document.activeElement && document.activeElement.blur(); \
                 return document.querySelectorAll('a[href], button, input, select, textarea').length;",
                json!([]),
            )
            .await
            .as_u64()
            .unwrap_or(0);
        let mut problems = Vec::new();
        let mut reached = 0;
        for _ in 0..count {
            self.chrome.press("\u{E004}").await;
            let focus = self
                .chrome
                .js(&format!("{HELPERS}\n{FOCUS}"), json!([]))
                .await;
            if focus.is_null() {
                continue;
            }
            reached += 1;
            if let Some(problem) = focus["problem"].as_str() {
                problems.push(problem.to_owned());
            }
        }
        if reached < count {
            problems.push(format!(
                "Tab reached {reached} of {count} links and controls"
            ));
        }
        problems
    }

    /// Console errors of the page (a CSP refusal, a failed load), leaving
    /// out the browser's own request for `/favicon.ico` and the status of
    /// the page itself (an error page is a 4xx on purpose).
    async fn console_errors(&self) -> Vec<String> {
        let here = self.chrome.current_url().await;
        let own_status =
            format!("{here} - Failed to load resource: the server responded with a status of");
        self.chrome
            .console()
            .await
            .into_iter()
            .filter(|m| m["level"] == "SEVERE" || m["level"] == "WARNING")
            .map(|m| m["message"].as_str().unwrap_or_default().to_owned())
            .filter(|m| !m.contains("favicon.ico") && !m.starts_with(&own_status))
            .map(|m| format!("console: {m}"))
            .collect()
    }

    /// Failure artifacts: a screenshot and the HTML of where the browser is.
    async fn keep_failure(&self, case: &str) -> PathBuf {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/screenshots/failures"
        ));
        self.chrome.emulate_phone(None).await;
        let shot = self
            .chrome
            .save_screenshot(&dir.join(format!("{case}.png")))
            .await;
        if let Ok(html) = self.chrome.try_command("GET", "/source", Value::Null).await {
            let _ = std::fs::write(
                dir.join(format!("{case}.html")),
                html.as_str().unwrap_or_default(),
            );
        }
        shot
    }
}

/// What a page shows the customer.
#[derive(Debug, serde::Deserialize)]
struct Seen {
    title: String,
    h1: String,
    h2: Vec<String>,
    /// The brand bar's text.
    brand: Option<String>,
    logo: Option<Logo>,
    /// The text of `<main>`, as rendered (`innerText`).
    text: String,
    links: Vec<Link>,
}

#[derive(Debug, serde::Deserialize)]
struct Logo {
    src: String,
    loaded: bool,
    alt: Option<String>,
}

#[derive(Debug, serde::Deserialize, PartialEq, Eq)]
struct Link {
    text: String,
    href: String,
}

impl Seen {
    fn says(&self, text: &str) -> bool {
        self.text.contains(text)
    }

    fn link(&self, text: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.text == text)
    }

    /// The product's brand bar with its logo, loaded from the page itself.
    fn is_branded(&self) {
        assert_eq!(self.brand.as_deref(), Some("Acme CI"), "{self:#?}");
        let logo = self.logo.as_ref().expect("the logo");
        assert!(
            logo.src.starts_with("data:image/svg+xml;base64,") && logo.loaded,
            "the inline logo shows: {logo:?}"
        );
        assert_eq!(logo.alt.as_deref(), Some(""), "decorative beside the name");
        assert!(self.title.ends_with(" · Acme CI"), "{}", self.title);
    }

    fn continues_to_the_app(&self) {
        assert_eq!(
            self.link("Continue to Acme CI").map(|l| l.href.as_str()),
            Some(APP_URL),
            "{self:#?}"
        );
    }
}

/// Google's listing page, as far as the sign-up goes: a form that posts
/// `x-gcp-marketplace-token` to the product's sign-up URL (another origin).
struct MarketplacePage;

#[async_trait]
impl Function for MarketplacePage {
    async fn call(&self, req: Request) -> Result<Response, ApiError> {
        let q: HashMap<String, String> =
            url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let esc = tollgate::web::pages::escape;
        let html = format!(
            "<!doctype html><html lang=\"en\"><title>Google Cloud Marketplace (stand-in)</title>\
             <form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"x-gcp-marketplace-token\" value=\"{}\">\
             <button type=\"submit\">Sign up with provider</button></form></html>",
            esc(q.get("action").map_or("", String::as_str)),
            esc(q.get("token").map_or("", String::as_str)),
        );
        Ok(tollgate::web::html_response(http::StatusCode::OK, html))
    }
}

// ------------------------------------------------------------------ JS --

/// Colour arithmetic shared by the checks: parse `rgb()`/`rgba()`, put a
/// colour over another, the background an element's text is drawn on
/// (its ancestors' backgrounds composed), WCAG contrast.
const HELPERS: &str = r#"
function parse(c) {
  const m = /rgba?\(([^)]+)\)/.exec(c || '');
  if (!m) return null;
  const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
}
function over(top, bottom) {
  const a = top.a;
  return { r: top.r * a + bottom.r * (1 - a), g: top.g * a + bottom.g * (1 - a), b: top.b * a + bottom.b * (1 - a), a: 1 };
}
function backgroundOf(el) {
  const chain = [];
  for (let e = el; e; e = e.parentElement) chain.push(e);
  let bg = { r: 255, g: 255, b: 255, a: 1 };
  for (const e of chain.reverse()) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0) bg = over(c, bg);
  }
  return bg;
}
function lum(c) {
  const f = v => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
}
function contrast(a, b) {
  const x = lum(a), y = lum(b);
  return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
}
function css(c) { return `rgb(${Math.round(c.r)},${Math.round(c.g)},${Math.round(c.b)})`; }
"#;

/// Language, headings, labels, alt text, text contrast; the page's own
/// style applied (the CSP let it in). Returns a list of problems.
const ACCESSIBILITY: &str = r#"
const problems = [];
const lang = document.documentElement.getAttribute('lang');
if (!lang || !lang.trim()) problems.push('<html> has no lang');
const headings = [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')];
const h1s = headings.filter(h => h.tagName === 'H1').length;
if (h1s !== 1) problems.push(`${h1s} h1 elements, not one`);
if (headings.length && headings[0].tagName !== 'H1') problems.push('the first heading is not the h1');
let level = 0;
for (const h of headings) {
  const l = Number(h.tagName[1]);
  if (level && l > level + 1) problems.push(`${h.tagName} "${h.innerText}" skips a level after h${level}`);
  level = l;
}
for (const c of document.querySelectorAll('input, select, textarea, button')) {
  if (c.type === 'hidden') continue;
  const named = (c.labels && c.labels.length) || c.getAttribute('aria-label') || c.getAttribute('aria-labelledby')
    || (c.tagName === 'BUTTON' && c.innerText.trim());
  if (!named) problems.push(`a form control without a label: ${c.outerHTML.slice(0, 80)}`);
}
for (const img of document.images) if (!img.hasAttribute('alt')) problems.push(`an image without alt: ${img.outerHTML.slice(0, 60)}`);
for (const a of document.querySelectorAll('a')) if (!a.innerText.trim() && !a.getAttribute('aria-label')) problems.push('a link without text');
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const seen = new Set();
let checked = 0;
while (walker.nextNode()) {
  const t = walker.currentNode;
  if (!t.textContent.trim()) continue;
  const el = t.parentElement;
  if (seen.has(el)) continue;
  seen.add(el);
  const s = getComputedStyle(el);
  if (s.visibility === 'hidden' || s.display === 'none') continue;
  const fg0 = parse(s.color);
  if (!fg0) { problems.push(`unreadable colour ${s.color}`); continue; }
  const bg = backgroundOf(el);
  const fg = over(fg0, bg);
  const ratio = contrast(fg, bg);
  checked++;
  if (ratio < 4.5) problems.push(`contrast ${ratio.toFixed(2)}:1 < 4.5:1 for "${t.textContent.trim().slice(0, 40)}" (${css(fg)} on ${css(bg)})`);
}
if (!checked) problems.push('no text to check');
const main = document.querySelector('main');
if (!main || getComputedStyle(main).maxWidth === 'none') problems.push("the page's own style did not apply");
return problems;
"#;

/// The focused element: `null` when focus is on no link or control, else
/// `{problem}` when its focus does not show.
const FOCUS: &str = r#"
const e = document.activeElement;
if (!e || e === document.body || e === document.documentElement) return null;
const s = getComputedStyle(e);
const name = `${e.tagName.toLowerCase()} "${e.innerText.trim().slice(0, 40)}"`;
if (!e.matches(':focus-visible')) return { problem: `${name}: focused by Tab but not :focus-visible` };
const width = parseFloat(s.outlineWidth) || 0;
if (s.outlineStyle === 'none' || width < 2) {
  return { problem: `${name}: no visible focus outline (outline ${s.outlineStyle} ${s.outlineWidth})` };
}
const ring = parse(s.outlineColor);
const behind = backgroundOf(e.parentElement || e);
if (!ring || contrast(over(ring, behind), behind) < 3) {
  return { problem: `${name}: focus outline ${s.outlineColor} does not stand out from ${css(behind)}` };
}
return { ok: name };
"#;

/// What the customer sees: title, headings, brand bar, text, links.
const LOOK: &str = r#"
const main = document.querySelector('main');
const brand = document.querySelector('header.brand');
const img = brand && brand.querySelector('img');
const h1 = document.querySelector('h1');
return {
  title: document.title,
  h1: h1 ? h1.innerText.trim() : '',
  h2: [...document.querySelectorAll('h2')].map(h => h.innerText.trim()),
  brand: brand ? brand.innerText.trim() : null,
  logo: img ? { src: img.getAttribute('src').slice(0, 40), loaded: img.complete && img.naturalWidth > 0, alt: img.getAttribute('alt') } : null,
  text: main ? main.innerText : document.body.innerText,
  links: [...document.querySelectorAll('a')].map(a => ({ text: a.innerText.trim(), href: a.href })),
};
"#;

/// The layout on the phone: the viewport's width and the page's.
const PHONE_LAYOUT: &str = r#"
const wide = [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5)
  .map(e => `${e.tagName.toLowerCase()}.${e.className}`)
  .slice(0, 5);
return { innerWidth, scrollWidth: document.documentElement.scrollWidth, wide };
"#;

// --------------------------------------------------------------- cases --

type Case = fn(Arc<Ctx>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! cases {
    ($($name:ident),+ $(,)?) => {
        [$((stringify!($name), (|ctx| Box::pin($name(ctx))) as Case)),+]
    };
}

/// Every case in one browser session; each failure is reported (with its
/// screenshot) and the others still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_see_clear_pages_in_a_real_browser() {
    let began = Instant::now();
    let ctx = Arc::new(Ctx::start().await);
    let mut failed = Vec::new();
    for (name, case) in cases![
        a_buyer_on_a_trial_sees_the_product_plan_seats_and_days_left,
        reloading_the_callback_says_the_link_is_used_and_start_again_works,
        a_buyer_with_several_accounts_sees_each_purchase,
        declining_on_github_says_nothing_changed_and_offers_to_start_again,
        a_sign_in_that_took_longer_than_ten_minutes_is_refused_clearly,
        a_google_sign_up_shows_the_approved_plan_and_the_way_in,
        a_google_sign_up_waiting_for_the_vendor_says_so,
        a_replayed_google_sign_up_token_is_refused_clearly,
        an_expired_google_sign_up_token_is_refused_clearly,
        google_manage_on_provider_page_names_the_product,
    ] {
        *ctx.case.lock().unwrap() = (name.to_owned(), 0);
        let t = Instant::now();
        let outcome = tokio::spawn(case(Arc::clone(&ctx))).await;
        if let Err(e) = outcome {
            let shot = ctx.keep_failure(name).await;
            let why = match e.try_into_panic() {
                Ok(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            failed.push(format!("{name}: {why}\n    screenshot: {}", shot.display()));
        } else {
            eprintln!("ok {name} ({:.1} s)", t.elapsed().as_secs_f64());
        }
    }
    eprintln!("browser cases: {:.1} s", began.elapsed().as_secs_f64());
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

async fn a_buyer_on_a_trial_sees_the_product_plan_seats_and_days_left(ctx: Arc<Ctx>) {
    ctx.github_as(1);
    let page = ctx.github_sign_in().await;
    page.is_branded();
    assert_eq!(page.h1, "Welcome, Mona Lisa");
    assert!(
        page.says("You are signed in with GitHub as mona. Your Acme CI purchase is ready:"),
        "{page:#?}"
    );
    assert_eq!(page.h2, ["Team"]);
    let ends = (ctx.start + chrono::Duration::days(5)).format("%Y-%m-%d");
    assert!(
        page.says(&format!("Free trial: 5 days left (ends {ends})."))
            && page.says("GitHub starts billing when the trial ends unless you cancel."),
        "{page:#?}"
    );
    for (term, value) in [
        ("Account", "acme (organization)".to_owned()),
        ("Plan", "Team".to_owned()),
        ("Seats", "5 seats".to_owned()),
        ("Trial ends", ends.to_string()),
    ] {
        assert!(
            page.says(&format!("{term}\n{value}")) || page.says(&format!("{term}\t{value}")),
            "{term}: {value} in {:?}",
            page.text
        );
    }
    page.continues_to_the_app();
    assert_eq!(page.title, "You're all set · Acme CI");
    // The sign-in worked, so the browser kept and sent back the Secure
    // `__Host-` cookie it got over http://127.0.0.1; the finished sign-in
    // deleted it.
    let cookies = ctx.chrome.cookies().await;
    assert!(
        cookies.iter().all(|c| c["name"] != COOKIE),
        "a finished sign-in deletes its cookie: {cookies:?}"
    );
}

async fn reloading_the_callback_says_the_link_is_used_and_start_again_works(ctx: Arc<Ctx>) {
    ctx.github_as(1);
    ctx.github_sign_in().await;
    let used = ctx.chrome.current_url().await;
    ctx.chrome.goto(&used).await;
    let page = ctx.landed("/github/callback").await;
    page.is_branded();
    assert_eq!(page.h1, "This sign-in link is no longer valid");
    assert!(
        page.says("It was already used, is more than 10 minutes old, or was started in another browser. Nothing was changed."),
        "{page:#?}"
    );
    assert_eq!(
        page.link("Start again").map(|l| l.href.clone()),
        Some(ctx.oauth.url("/github/setup"))
    );
    assert!(page.link("Continue to Acme CI").is_none());
    ctx.click("a.button").await;
    let again = ctx.landed("/github/callback").await;
    assert_eq!(
        again.h1, "Welcome, Mona Lisa",
        "Start again signs in: {again:#?}"
    );
}

async fn a_buyer_with_several_accounts_sees_each_purchase(ctx: Arc<Ctx>) {
    ctx.github_as(2);
    let page = ctx.github_sign_in().await;
    page.is_branded();
    assert_eq!(page.h1, "Welcome, hubot");
    assert!(page.says("Your Acme CI purchases are ready:"), "{page:#?}");
    assert_eq!(page.h2, ["Free", "Business", "Team"], "{page:#?}");
    for shown in [
        "hubot (personal account)",
        "beta-industries (organization)",
        &format!("{LONG_ORG} (organization)"),
        "Unlimited",
        "50 seats",
        "12 seats",
        "yearly",
    ] {
        assert!(page.says(shown), "{shown} in {:?}", page.text);
    }
    assert!(!page.says("Free trial"), "no trial, no banner");
    page.continues_to_the_app();
}

async fn declining_on_github_says_nothing_changed_and_offers_to_start_again(ctx: Arc<Ctx>) {
    ctx.github_as(1);
    ctx.github.set_authorize(Authorize::Deny);
    let page = ctx.github_sign_in().await;
    ctx.github.set_authorize(Authorize::Approve);
    page.is_branded();
    assert_eq!(page.h1, "Authorization cancelled");
    assert!(
        page.says("You chose not to authorize the app on GitHub")
            && page.says("Nothing was changed."),
        "{page:#?}"
    );
    assert_eq!(
        page.link("Start again").map(|l| l.href.clone()),
        Some(ctx.oauth.url("/github/setup"))
    );
}

async fn a_sign_in_that_took_longer_than_ten_minutes_is_refused_clearly(ctx: Arc<Ctx>) {
    ctx.github_as(1);
    *ctx.slow.delay.lock().unwrap() =
        Some(chrono::Duration::minutes(10) + chrono::Duration::seconds(1));
    let page = ctx.github_sign_in().await;
    ctx.slow.clock.set(ctx.start);
    assert_eq!(page.h1, "This sign-in link is no longer valid");
    assert!(page.says("more than 10 minutes old"), "{page:#?}");
    assert!(page.link("Start again").is_some());
    assert!(!page.says("Welcome"));
    // A refused state leaves the sign-in's cookie alone: here it is, as
    // Chromium keeps it over plain HTTP to 127.0.0.1.
    let cookies = ctx.chrome.cookies().await;
    let cookie = cookies
        .iter()
        .find(|c| c["name"] == COOKIE)
        .unwrap_or_else(|| panic!("the browser holds {COOKIE}: {cookies:?}"));
    assert_eq!(
        (
            &cookie["secure"],
            &cookie["httpOnly"],
            &cookie["path"],
            &cookie["sameSite"],
            &cookie["domain"]
        ),
        (
            &json!(true),
            &json!(true),
            &json!("/"),
            &json!("Lax"),
            &json!("127.0.0.1")
        ),
        "{cookie}"
    );
}

async fn a_google_sign_up_shows_the_approved_plan_and_the_way_in(ctx: Arc<Ctx>) {
    ctx.google.order("acct-1", "team-monthly").await.unwrap();
    let token = ctx.google.signup_token("acct-1");
    let page = ctx.google_sign_up(&ctx.signup, &token).await;
    page.is_branded();
    assert_eq!(page.h1, "You're signed up for Acme CI");
    assert!(
        page.says("Your Google Cloud Marketplace account is connected to Acme CI."),
        "{page:#?}"
    );
    assert_eq!(page.h2, ["Plan: team-monthly"]);
    assert!(
        page.says("Approved. It becomes active within a few minutes."),
        "{page:#?}"
    );
    page.continues_to_the_app();
}

async fn a_google_sign_up_waiting_for_the_vendor_says_so(ctx: Arc<Ctx>) {
    ctx.google.order("acct-2", "business-yearly").await.unwrap();
    let token = ctx.google.signup_token("acct-2");
    let page = ctx.google_sign_up(&ctx.signup_manual, &token).await;
    page.is_branded();
    assert_eq!(page.h1, "You're signed up for Acme CI");
    assert_eq!(page.h2, ["Plan: business-yearly"]);
    assert!(
        page.says("Waiting for approval by the Acme CI team. Your plan becomes active once they approve it."),
        "{page:#?}"
    );
    assert!(
        page.says("Seats\n50 seats") || page.says("Seats\t50 seats"),
        "{page:#?}"
    );
    assert!(!page.says("Approved."));
}

async fn a_replayed_google_sign_up_token_is_refused_clearly(ctx: Arc<Ctx>) {
    ctx.google.order("acct-3", "team-monthly").await.unwrap();
    let token = ctx.google.signup_token("acct-3");
    let first = ctx.google_sign_up(&ctx.signup, &token).await;
    assert_eq!(first.h1, "You're signed up for Acme CI");
    let page = ctx.google_sign_up(&ctx.signup, &token).await;
    page.is_branded();
    assert_eq!(page.h1, "Sign-up not completed");
    assert!(
        page.says("This sign-up link was already used or has expired. Go back to Google Cloud Marketplace and choose \"Sign up with provider\" again."),
        "{page:#?}"
    );
    assert!(page.link("Continue to Acme CI").is_none());
}

async fn an_expired_google_sign_up_token_is_refused_clearly(ctx: Arc<Ctx>) {
    ctx.google.order("acct-4", "team-monthly").await.unwrap();
    let token = ctx
        .google
        .bad_signup_token("acct-4", BadSignupToken::Expired)
        .unwrap();
    let page = ctx.google_sign_up(&ctx.signup, &token).await;
    page.is_branded();
    assert_eq!(page.h1, "Sign-up not completed");
    assert!(page.says("already used or has expired"), "{page:#?}");
}

async fn google_manage_on_provider_page_names_the_product(ctx: Arc<Ctx>) {
    ctx.chrome.goto(&ctx.signup.url("/gcp/login")).await;
    let page = ctx.landed("/gcp/login").await;
    page.is_branded();
    assert_eq!(page.h1, "Acme CI");
    page.continues_to_the_app();
}
