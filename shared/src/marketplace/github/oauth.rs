//! Sign-in after a GitHub Marketplace purchase: the Setup URL and the OAuth
//! callback, plus the pages the buyer sees.
//!
//! GitHub sends the buyer to the app's Setup URL (`GET /github/setup`) with
//! an `installation_id` anyone could forge, so it is ignored. Tollgate signs
//! a `state` (10 minutes) and sets its nonce in the browser's
//! `__Host-tollgate_oauth` cookie — nothing is stored, so anonymous hits cost
//! no write ([`super::oauth_state`]) — and redirects to GitHub's authorize
//! page; GitHub comes back to `GET /github/callback` with `code` and `state`.
//! The callback checks the state against the cookie, exchanges the code,
//! records the state as used, asks GitHub who the user is and what they
//! bought (`GET /user`, `GET /user/marketplace_purchases`), makes the user's
//! GitHub links exactly the purchasing accounts GitHub lists now (a user who
//! left an organization loses its link; each kept link is renewed for the
//! link TTL) and shows plan, seats and trial days left. The user's token
//! lives only for that request: it is never stored or logged.
//!
//! GitHub's side of this flow: the Setup URL
//! (<https://docs.github.com/apps/github-marketplace/using-the-github-marketplace-api-in-your-app/handling-new-purchases-and-free-trials>)
//! and the OAuth web flow
//! (<https://docs.github.com/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps>).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::client::{
    GithubClient, GithubError, OauthErrorCode, User, UserMarketplacePurchase, safe_code,
};
use super::oauth_state::{self, STATE_KEY_SECRET, StateError, StateKeys, USED_STATE_KIND};
use crate::clock::Clock;
use crate::config::{Catalog, SeatPolicy};
use crate::model::{AccountKind, AppUser, CustomerKey, Marketplace, PriceModel};
use crate::secret::{Secret, Secrets};
use crate::settings::SetupError;
use crate::store::{Store, StoreError, Token, Tokens, UserLink, UserLinks, sha256_hex};
pub use crate::web::pages::escape;
use crate::web::pages::{Brand, Page, day, render};

pub use super::oauth_state::{COOKIE_NAME, STATE_TTL};
/// The callback's GitHub calls together (exchange, user, purchases) must
/// finish within this, whatever the per-request timeouts add up to.
pub const CALLBACK_DEADLINE: Duration = Duration::from_secs(8);
pub const SETUP_PATH: &str = "/github/setup";
pub const CALLBACK_PATH: &str = "/github/callback";
pub const CLIENT_ID_SECRET: &str = "github_client_id";
pub const CLIENT_SECRET_SECRET: &str = "github_client_secret";

/// The app's OAuth client credentials.
#[derive(Debug, Clone)]
pub struct OauthApp {
    pub client_id: String,
    pub client_secret: Secret,
}

impl OauthApp {
    /// Both secrets, or neither (GitHub sign-in not configured, e.g. a
    /// deployment that sells only on Google); one without the other is a
    /// configuration error.
    pub fn from_secrets(secrets: &Secrets) -> Result<Option<Self>, SetupError> {
        match (
            secrets.get(CLIENT_ID_SECRET),
            secrets.get(CLIENT_SECRET_SECRET),
        ) {
            (Some(id), Some(secret)) => Ok(Some(Self {
                client_id: id.expose().trim().to_owned(),
                client_secret: secret.clone(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(SetupError::MissingSecret(CLIENT_SECRET_SECRET.into())),
            (None, Some(_)) => Err(SetupError::MissingSecret(CLIENT_ID_SECRET.into())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OauthError {
    #[error(
        "GitHub sign-in is not configured: secrets `{CLIENT_ID_SECRET}` and `{CLIENT_SECRET_SECRET}` are missing"
    )]
    NotConfigured,
    /// The client credentials are there but the key that signs the `state`
    /// is not: refusing beats signing with a made-up key that other
    /// instances would not share.
    #[error("GitHub sign-in is not configured: secret `{STATE_KEY_SECRET}` is missing")]
    NoStateKey,
    #[error("no public URL to build the OAuth redirect URI from: set TOLLGATE_PUBLIC_URL")]
    NoPublicUrl,
    #[error("the callback carries no `state`")]
    MissingState,
    #[error(transparent)]
    InvalidState(#[from] StateError),
    /// No nonce for the `state` and its cookie: the OS random source failed.
    #[error(transparent)]
    NoRandomness(#[from] crate::web::NoRandomness),
    #[error("the user declined to authorize the app")]
    AccessDenied,
    /// Another `error` from the authorize step (`redirect_uri_mismatch`,
    /// `application_suspended`, ...), reduced to safe characters
    /// (the client's `safe_code`).
    #[error("GitHub's authorize step failed: {0}")]
    AuthorizeFailed(String),
    #[error("the callback carries no `code`")]
    MissingCode,
    /// `bad_verification_code`: expired (10 minutes) or already used.
    #[error("GitHub refused the code: expired or already used")]
    CodeRejected,
    #[error("GitHub did not finish answering within {}s", CALLBACK_DEADLINE.as_secs())]
    Deadline,
    #[error(transparent)]
    Github(#[from] GithubError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OauthError {
    /// Whether the callback's answer should delete the browser's
    /// `__Host-tollgate_oauth` cookie: yes once the state matched it (the
    /// sign-in it started is over, whatever happened next), no when the
    /// state did not — a forged callback opened in the buyer's browser must
    /// not end the sign-in the buyer has in progress.
    pub fn ends_the_sign_in(&self) -> bool {
        !matches!(self, Self::MissingState | Self::InvalidState(_))
    }
}

/// The query of `GET /github/callback`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// What a completed sign-in found and linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub user: User,
    pub app_user: AppUser,
    pub purchases: Vec<UserMarketplacePurchase>,
    pub linked: Vec<CustomerKey>,
}

/// Where `GET /github/setup` sends the browser, and the nonce for its
/// `__Host-tollgate_oauth` cookie. (No `Debug`: the nonce is a bearer value.)
pub struct Started {
    pub location: String,
    pub cookie_nonce: String,
}

/// The GitHub sign-in flow, built once at cold start.
pub struct GithubSignIn {
    client: GithubClient,
    app: Option<OauthApp>,
    /// Signs and checks the `state`; `None`: sign-in answers 503.
    state_keys: Option<StateKeys>,
    /// Used `state`s, written only after GitHub accepted the code.
    tokens: Arc<dyn Tokens>,
    /// Links from the signed-in user to the accounts that bought.
    links: Arc<dyn UserLinks>,
    /// How long a link lives unless a later sign-in renews it.
    link_ttl: chrono::Duration,
    clock: Arc<dyn Clock>,
    public_url: Option<String>,
}

impl GithubSignIn {
    /// `public_url`: the oauth-callback function's public base URL; `None`
    /// takes it from each request (see [`Self::start`]). `link_ttl`: how
    /// long each link a sign-in writes lives.
    pub fn new(
        client: GithubClient,
        app: Option<OauthApp>,
        state_keys: Option<StateKeys>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        public_url: Option<String>,
        link_ttl: chrono::Duration,
    ) -> Self {
        Self {
            client,
            app,
            state_keys,
            tokens: store.clone(),
            links: store,
            link_ttl,
            clock,
            public_url,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The redirect URI for this deployment: `TOLLGATE_PUBLIC_URL` if set,
    /// else `request_base` (scheme + host the request came in on).
    pub fn redirect_uri(&self, request_base: Option<&str>) -> Result<String, OauthError> {
        let base = self
            .public_url
            .as_deref()
            .or(request_base)
            .ok_or(OauthError::NoPublicUrl)?;
        Ok(format!("{}{CALLBACK_PATH}", base.trim_end_matches('/')))
    }

    /// The app's credentials and the state key, or why sign-in is off.
    fn configured(&self) -> Result<(&OauthApp, &StateKeys), OauthError> {
        let app = self.app.as_ref().ok_or(OauthError::NotConfigured)?;
        let keys = self.state_keys.as_ref().ok_or(OauthError::NoStateKey)?;
        Ok((app, keys))
    }

    /// `GET /github/setup`: signs a fresh `state` and returns GitHub's
    /// authorize URL to redirect to, with the nonce the browser's cookie
    /// must carry back. Writes nothing: the setup URL is open to anyone.
    /// Any `installation_id` the request carries is ignored: it can be
    /// forged.
    pub fn start(&self, request_base: Option<&str>) -> Result<Started, OauthError> {
        let (app, keys) = self.configured()?;
        let redirect_uri = self.redirect_uri(request_base)?;
        // The callback exchanges the code with exactly this URI, read back
        // from the signed state.
        let issued = oauth_state::issue(keys, &redirect_uri, self.now())?;
        Ok(Started {
            location: self
                .client
                .authorize_url(&app.client_id, &redirect_uri, &issued.state),
            cookie_nonce: issued.nonce,
        })
    }

    /// `GET /github/callback`: checks the `state` against `cookie` (the
    /// browser's `__Host-tollgate_oauth`) before anything else, then
    /// exchanges the code, records the state as used (only now: GitHub has
    /// vouched for the request), reads the user and their purchases, and
    /// replaces the user's GitHub links with the purchasing accounts.
    pub async fn finish(
        &self,
        params: CallbackParams,
        cookie: Option<&str>,
    ) -> Result<Provisioned, OauthError> {
        let (app, keys) = self.configured()?;
        let state = params
            .state
            .filter(|s| !s.is_empty())
            .ok_or(OauthError::MissingState)?;
        let verified = oauth_state::verify(keys, &state, cookie, self.now())?;
        if let Some(error) = params.error {
            return Err(match error.as_str() {
                "access_denied" => OauthError::AccessDenied,
                other => OauthError::AuthorizeFailed(safe_code(other)),
            });
        }
        let code = params
            .code
            .filter(|c| !c.is_empty())
            .ok_or(OauthError::MissingCode)?;
        let github = async {
            let token = self
                .client
                .exchange_code(
                    &app.client_id,
                    &app.client_secret,
                    &code,
                    &verified.redirect_uri,
                )
                .await
                .map_err(|e| match e {
                    GithubError::OauthExchange {
                        code: OauthErrorCode::BadVerificationCode,
                        ..
                    } => OauthError::CodeRejected,
                    e => OauthError::Github(e),
                })?;
            self.use_up(&verified).await?;
            let user = self.client.user(&token).await?;
            let purchases = self.client.user_marketplace_purchases(&token).await?;
            // `token` is dropped here: it is never stored.
            Ok::<_, OauthError>((user, purchases))
        };
        let (user, purchases) = tokio::time::timeout(CALLBACK_DEADLINE, github)
            .await
            .map_err(|_| OauthError::Deadline)??;
        let app_user = AppUser(format!("github:{}", user.id));
        let mut linked: Vec<CustomerKey> = Vec::new();
        for p in &purchases {
            let customer = CustomerKey::new(Marketplace::Github, p.account.id.to_string());
            if !linked.contains(&customer) {
                linked.push(customer);
            }
        }
        // What GitHub lists now is the whole truth about this user's GitHub
        // accounts: an organization the user left is no longer listed, so
        // its link goes, and every link kept is renewed.
        let now = self.now();
        let links: Vec<UserLink> = linked
            .iter()
            .map(|c| UserLink::new(c.clone(), now, self.link_ttl))
            .collect();
        self.links
            .replace_links(&app_user, Marketplace::Github, &links, now)
            .await?;
        tracing::info!(
            github_user = user.id,
            accounts = linked.len(),
            "github sign-in linked"
        );
        Ok(Provisioned {
            user,
            app_user,
            purchases,
            linked,
        })
    }

    /// Records a state as used until it expires; a second use is refused.
    /// Keyed by the nonce's hash: the store never holds a live bearer value.
    async fn use_up(&self, verified: &oauth_state::VerifiedState) -> Result<(), OauthError> {
        let used = Token {
            kind: USED_STATE_KIND.to_owned(),
            id: sha256_hex(verified.nonce.as_bytes()),
            payload: String::new(),
            expires_at: verified.expires_at,
        };
        match self.tokens.put_token(&used, self.now()).await {
            Err(StoreError::Duplicate(_)) => Err(StateError::Used.into()),
            other => Ok(other?),
        }
    }
}

fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The trial banner text: `Free trial: 5 days left (ends 2026-03-06).`
pub fn trial_banner(days_left: u32, ends: Option<DateTime<Utc>>) -> String {
    let left = match days_left {
        0 => "ends today".to_owned(),
        1 => "1 day left".to_owned(),
        n => format!("{n} days left"),
    };
    match ends {
        Some(ends) => format!("Free trial: {left} (ends {}).", date(ends)),
        None => format!("Free trial: {left}."),
    }
}

/// What the customer's seats are, in words: the tier's seat policy when
/// the plan is configured, else the units bought on a per-unit plan.
fn seats(p: &UserMarketplacePurchase, policy: Option<SeatPolicy>) -> Option<String> {
    let unit = p
        .plan
        .unit_name
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or("seat");
    let count = |n: u64| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {}", plural(unit))
        }
    };
    let per_unit = p.plan.price_model() == Some(PriceModel::PerUnit);
    let bought = p.unit_count.filter(|n| per_unit || *n > 1);
    match policy {
        Some(SeatPolicy::Unlimited) => Some("Unlimited".to_owned()),
        Some(SeatPolicy::Fixed(n)) => Some(count(u64::from(n))),
        Some(SeatPolicy::Purchased) | None => bought.map(count),
    }
}

fn purchase_card(
    p: &UserMarketplacePurchase,
    now: DateTime<Utc>,
    policy: Option<SeatPolicy>,
) -> String {
    let mut html = String::from("<section class=\"card\">\n");
    html.push_str(&format!("<h2>{}</h2>\n", escape(&p.plan.name)));
    if let Some(days) = p.trial_days_left(now) {
        html.push_str(&format!(
            "<p class=\"trial\" role=\"status\"><strong>{}</strong> You have the full plan until then; \
             GitHub starts billing when the trial ends unless you cancel.</p>\n",
            escape(&trial_banner(days, p.free_trial_ends_on))
        ));
    }
    html.push_str("<dl>\n");
    let account = match p.account.account_kind() {
        Some(AccountKind::Organization) => format!("{} (organization)", p.account.login),
        Some(AccountKind::User) => format!("{} (personal account)", p.account.login),
        None => p.account.login.clone(),
    };
    html.push_str(&format!("<dt>Account</dt><dd>{}</dd>\n", escape(&account)));
    html.push_str(&format!("<dt>Plan</dt><dd>{}</dd>\n", escape(&p.plan.name)));
    if let Some(seats) = seats(p, policy) {
        html.push_str(&format!("<dt>Seats</dt><dd>{}</dd>\n", escape(&seats)));
    }
    if p.trial_days_left(now).is_some()
        && let Some(ends) = p.free_trial_ends_on
    {
        html.push_str(&format!("<dt>Trial ends</dt><dd>{}</dd>\n", day(ends)));
    }
    if let Some(cycle) = p.billing_cycle.as_deref().filter(|c| !c.is_empty()) {
        let next = p
            .next_billing_date
            .map(|d| format!(", next bill on {}", day(d)))
            .unwrap_or_default();
        html.push_str(&format!(
            "<dt>Billing</dt><dd>{}{next}</dd>\n",
            escape(cycle)
        ));
    }
    html.push_str("</dl>\n</section>\n");
    html
}

fn plural(unit: &str) -> String {
    if unit.ends_with('s') {
        unit.to_owned()
    } else {
        format!("{unit}s")
    }
}

/// The page after a successful sign-in: the product, each purchase (plan,
/// account, seats, trial, billing) and the way into the app. `catalog`
/// gives each plan's seat policy (GitHub's plan ids mapped under
/// `marketplaces.github.product`).
pub fn success_page(p: &Provisioned, now: DateTime<Utc>, brand: &Brand, catalog: &Catalog) -> Page {
    let product = catalog.product_for(Marketplace::Github, None);
    let policy = |purchase: &UserMarketplacePurchase| {
        let plan = purchase.plan.id.to_string();
        product
            .and_then(|id| catalog.tier_for(Marketplace::Github, id, &plan))
            .map(|t| t.tier.seats)
    };
    let who = p.user.name.as_deref().unwrap_or(&p.user.login);
    let mut body = format!("<h1>Welcome, {}</h1>\n", escape(who));
    if p.purchases.is_empty() {
        body.push_str(&format!(
            "<section class=\"card\"><p>You are signed in as <strong>{}</strong>, but GitHub lists no \
             Marketplace purchase of {} that you can see. If you just bought it, GitHub can take a \
             minute to show it: <a href=\"{SETUP_PATH}\">check again</a>. If you bought it for an \
             organization, sign in with an account that belongs to it.</p></section>\n",
            escape(&p.user.login),
            escape(product_or_app(brand)),
        ));
        return render(brand, "No purchase found", &body);
    }
    let what = if p.purchases.len() == 1 {
        "purchase is ready"
    } else {
        "purchases are ready"
    };
    body.push_str(&format!(
        "<p>You are signed in with GitHub as <strong>{}</strong>. Your {} {what}:</p>\n",
        escape(&p.user.login),
        escape(product_or_app(brand)),
    ));
    for purchase in &p.purchases {
        body.push_str(&purchase_card(purchase, now, policy(purchase)));
    }
    match brand.continue_link() {
        Some(link) => body.push_str(&link),
        None => body.push_str("<p>You can close this page and start using the app.</p>\n"),
    }
    render(brand, "You're all set", &body)
}

fn product_or_app(brand: &Brand) -> &str {
    if brand.name.is_empty() {
        "GitHub Marketplace"
    } else {
        &brand.name
    }
}

/// The page for a failed sign-in: what happened and what to do, never a
/// token, code or internal detail.
pub fn error_page(err: &OauthError, brand: &Brand) -> Page {
    let again = format!("<p><a class=\"button\" href=\"{SETUP_PATH}\">Start again</a></p>");
    let (title, text, retry) = match err {
        OauthError::MissingState | OauthError::InvalidState(_) => (
            "This sign-in link is no longer valid",
            "It was already used, is more than 10 minutes old, or was started in another \
             browser. Nothing was changed. Start the sign-in again."
                .to_owned(),
            true,
        ),
        OauthError::AccessDenied => (
            "Authorization cancelled",
            "You chose not to authorize the app on GitHub, so we could not look up your purchase. \
             Nothing was changed. To finish setting up, start again and choose Authorize."
                .to_owned(),
            true,
        ),
        OauthError::AuthorizeFailed(code) => (
            "GitHub could not authorize the sign-in",
            format!(
                "GitHub reported <code>{}</code>. Please try again; if it keeps happening, contact the \
                 app's vendor.",
                escape(code)
            ),
            true,
        ),
        OauthError::MissingCode => (
            "GitHub did not send a sign-in code",
            "The link back from GitHub was incomplete. Start the sign-in again.".to_owned(),
            true,
        ),
        OauthError::CodeRejected => (
            "The sign-in code expired",
            "GitHub sign-in codes work once and only for 10 minutes. Start the sign-in again."
                .to_owned(),
            true,
        ),
        OauthError::NotConfigured | OauthError::NoStateKey | OauthError::NoPublicUrl => (
            "GitHub sign-in is not set up",
            "The app's vendor has not finished configuring GitHub sign-in. Please contact them."
                .to_owned(),
            false,
        ),
        OauthError::Github(GithubError::RateLimited { reset_at, .. }) => (
            "GitHub is busy",
            format!(
                "GitHub asked us to slow down. Please try again after {} UTC.",
                escape(&reset_at.format("%H:%M").to_string())
            ),
            true,
        ),
        OauthError::Deadline
        | OauthError::Github(GithubError::Timeout { .. } | GithubError::Unreachable { .. }) => (
            "GitHub is not answering",
            "We could not reach GitHub just now. Please try again in a minute.".to_owned(),
            true,
        ),
        OauthError::Github(_) => (
            "Something went wrong talking to GitHub",
            "Please try again; if it keeps happening, contact the app's vendor.".to_owned(),
            true,
        ),
        OauthError::Store(_) => (
            "We could not save your sign-in",
            "Please try again in a minute.".to_owned(),
            true,
        ),
        OauthError::NoRandomness(_) => (
            "We could not start the sign-in",
            "Please try again in a minute.".to_owned(),
            true,
        ),
    };
    let body = format!(
        "<h1>{}</h1>\n<section class=\"card error\"><p>{text}</p></section>\n{}",
        escape(title),
        if retry { again.as_str() } else { "" }
    );
    render(brand, title, &body)
}

/// The GitHub sign-in flow: the buyer's request is at fault (bad or reused
/// `state`, declined, expired code) → 400; configuration → 503; GitHub and
/// the store map as they do everywhere.
impl From<OauthError> for crate::web::ApiError {
    fn from(e: OauthError) -> Self {
        use crate::web::ApiError;
        use OauthError as E;
        use http::StatusCode;
        let message = e.to_string();
        match e {
            E::NotConfigured | E::NoStateKey | E::NoPublicUrl => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_configured", message)
            }
            E::MissingState => ApiError::bad_request("invalid_state", message),
            E::InvalidState(s) => s.into(),
            E::NoRandomness(r) => r.into(),
            E::AccessDenied => ApiError::bad_request("access_denied", message),
            E::AuthorizeFailed(_) => ApiError::bad_request("authorize_failed", message),
            E::MissingCode => ApiError::bad_request("missing_code", message),
            E::CodeRejected => ApiError::bad_request("code_rejected", message),
            E::Deadline => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "github_timeout", message),
            E::Github(g) => g.into(),
            E::Store(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marketplace::github::client::{ListingPlan, MarketplaceAccount};
    use chrono::TimeZone;

    fn purchase(login: &str, plan: &str) -> UserMarketplacePurchase {
        UserMarketplacePurchase {
            billing_cycle: Some("monthly".into()),
            next_billing_date: None,
            unit_count: Some(5),
            on_free_trial: Some(true),
            free_trial_ends_on: Some(Utc.with_ymd_and_hms(2026, 3, 6, 0, 0, 0).unwrap()),
            updated_at: None,
            account: MarketplaceAccount {
                id: 7,
                login: login.into(),
                kind: "Organization".into(),
                email: None,
                organization_billing_email: None,
            },
            plan: ListingPlan {
                id: 1,
                number: None,
                name: plan.into(),
                description: None,
                monthly_price_in_cents: None,
                yearly_price_in_cents: None,
                price_model: Some("PER_UNIT".into()),
                has_free_trial: Some(true),
                unit_name: Some("seat".into()),
                state: None,
                bullets: None,
            },
        }
    }

    #[test]
    fn everything_interpolated_is_escaped() {
        let p = Provisioned {
            user: User {
                id: 1,
                login: "<script>alert(1)</script>".into(),
                name: Some("\"Mallory\" & co".into()),
                email: None,
            },
            app_user: AppUser("github:1".into()),
            purchases: vec![purchase("<img src=x onerror=alert(1)>", "<b>Pro</b>")],
            linked: vec![],
        };
        let catalog = Catalog::parse(
            "[products.a.tiers.t]\n[products.a.plans.github]\n\"1\" = \"t\"\n[marketplaces.github]\nproduct = \"a\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let brand = Brand::of(&catalog, "a");
        let html = success_page(
            &p,
            Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
            &brand,
            &catalog,
        )
        .html;
        assert!(
            !html.contains("<script>alert")
                && !html.contains("<img src=x")
                && !html.contains("<b>Pro")
        );
        assert!(html.contains("&lt;script&gt;") && html.contains("&quot;Mallory&quot; &amp; co"));
        assert!(
            html.contains("Free trial: 5 days left (ends 2026-03-06)."),
            "{html}"
        );
        assert!(html.contains("<dt>Seats</dt><dd>5 seats</dd>"), "{html}");
        let err = error_page(
            &OauthError::AuthorizeFailed(safe_code("x<script>y")),
            &brand,
        )
        .html;
        assert!(!err.contains("<script>") && err.contains("xscripty"));
    }

    #[test]
    fn the_trial_banner_counts_days() {
        assert_eq!(trial_banner(0, None), "Free trial: ends today.");
        assert_eq!(trial_banner(1, None), "Free trial: 1 day left.");
        let ends = Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap();
        assert_eq!(
            trial_banner(14, Some(ends)),
            "Free trial: 14 days left (ends 2026-01-15)."
        );
    }

    #[test]
    fn pages_are_self_contained() {
        for html in [
            error_page(
                &OauthError::InvalidState(StateError::NoCookie),
                &Brand::default(),
            )
            .html,
            error_page(&OauthError::AccessDenied, &Brand::default()).html,
            error_page(&OauthError::Deadline, &Brand::default()).html,
        ] {
            assert!(
                !html.contains("<script")
                    && !html.contains("http://")
                    && !html.contains("https://")
            );
        }
    }

    #[test]
    fn every_state_refusal_is_400_invalid_state_and_keeps_the_cookie() {
        use crate::web::ApiError;
        for e in [
            OauthError::MissingState,
            OauthError::InvalidState(StateError::Malformed),
            OauthError::InvalidState(StateError::BadSignature),
            OauthError::InvalidState(StateError::Expired),
            OauthError::InvalidState(StateError::NoCookie),
            OauthError::InvalidState(StateError::CookieMismatch),
            OauthError::InvalidState(StateError::Used),
        ] {
            assert!(!e.ends_the_sign_in(), "{e}");
            assert!(
                error_page(&e, &Brand::default())
                    .html
                    .contains("started in another"),
                "{e}"
            );
            let api = ApiError::from(e);
            assert_eq!((api.status.as_u16(), api.code), (400, "invalid_state"));
        }
        assert!(OauthError::AccessDenied.ends_the_sign_in());
        assert!(OauthError::CodeRejected.ends_the_sign_in());
        let no_key = ApiError::from(OauthError::NoStateKey);
        assert_eq!(
            (no_key.status.as_u16(), no_key.code),
            (503, "not_configured")
        );
        assert!(
            no_key.message.contains("oauth_state_key"),
            "{}",
            no_key.message
        );
    }

    #[test]
    fn a_failed_random_source_is_a_503_page_never_a_weaker_state() {
        use crate::web::{ApiError, NoRandomness};
        let e = OauthError::NoRandomness(NoRandomness(getrandom::Error::UNSUPPORTED));
        assert!(
            error_page(&e, &Brand::default())
                .html
                .contains("We could not start the sign-in")
        );
        let api = ApiError::from(e);
        assert_eq!((api.status.as_u16(), api.code), (503, "no_randomness"));
        assert!(api.cause.is_some(), "the OS error is kept for the log");
    }

    #[test]
    fn client_credentials_come_as_a_pair() {
        assert!(
            OauthApp::from_secrets(&Secrets::default())
                .unwrap()
                .is_none()
        );
        let one = Secrets::from_pairs([(CLIENT_ID_SECRET, "Iv1")]);
        assert!(matches!(
            OauthApp::from_secrets(&one),
            Err(SetupError::MissingSecret(s)) if s == CLIENT_SECRET_SECRET
        ));
        let both = Secrets::from_pairs([(CLIENT_ID_SECRET, " Iv1 "), (CLIENT_SECRET_SECRET, "s")]);
        let app = OauthApp::from_secrets(&both).unwrap().unwrap();
        assert_eq!(app.client_id, "Iv1");
        assert!(!format!("{app:?}").contains("\"s\""));
    }
}
