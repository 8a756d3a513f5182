//! The GitHub HTTP client: the OAuth code exchange on github.com and the REST
//! calls on api.github.com that Tollgate makes (`GET /user`,
//! `GET /user/marketplace_purchases`, and the app-authenticated
//! `/marketplace_listing/...` endpoints used for reconciliation).
//!
//! One client is built at cold start and shared. Every request has a connect
//! and a total timeout, so a caller always answers well inside GitHub's 10 s;
//! a rate-limit reply becomes [`GithubError::RateLimited`] with the time to
//! come back, never a retry loop. Tokens travel as [`UserToken`] / app JWTs,
//! which never print, and nothing here logs a request or reply body.
//!
//! Shapes per `@octokit/openapi@23.0.2` (spec §5); every field that GitHub's
//! own material shows as absent or null somewhere is optional here, unknown
//! fields are ignored.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::app_jwt::{AppJwtError, AppJwtSigner};
use crate::model::{AccountKind, PriceModel};
use crate::setup::{Secret, Settings};

/// The REST API version Tollgate is written against.
pub const API_VERSION: &str = "2022-11-28";
/// GitHub refuses requests without a `User-Agent`.
pub const USER_AGENT: &str = concat!("tollgate/", env!("CARGO_PKG_VERSION"));
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Per request. A caller making a few calls in a row (the OAuth callback
/// makes three) bounds the whole with its own deadline.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
/// Pages followed at most per listing (100 items each).
pub const DEFAULT_MAX_PAGES: usize = 50;
/// GitHub's largest page.
const PER_PAGE: &str = "100";
/// Replies larger than this are refused rather than buffered.
const MAX_REPLY_BYTES: usize = 8 * 1024 * 1024;
/// Wait suggested when GitHub rate-limits without saying until when
/// (GitHub's docs: "wait at least one minute").
const DEFAULT_RATE_LIMIT_WAIT: chrono::Duration = chrono::Duration::seconds(60);

/// A user's OAuth access token. Lives only for the request that got it:
/// never stored, never printed.
#[derive(Clone)]
pub struct UserToken(Secret);

impl UserToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(Secret::new(token))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for UserToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserToken(***)")
    }
}

/// The `error` of a refused code exchange (GitHub answers these with 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OauthErrorCode {
    /// The code is wrong, expired (10 minutes) or already used.
    BadVerificationCode,
    IncorrectClientCredentials,
    RedirectUriMismatch,
    UnverifiedUserEmail,
    Other(String),
}

impl OauthErrorCode {
    pub fn parse(code: &str) -> Self {
        match code {
            "bad_verification_code" => Self::BadVerificationCode,
            "incorrect_client_credentials" => Self::IncorrectClientCredentials,
            "redirect_uri_mismatch" => Self::RedirectUriMismatch,
            "unverified_user_email" => Self::UnverifiedUserEmail,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::BadVerificationCode => "bad_verification_code",
            Self::IncorrectClientCredentials => "incorrect_client_credentials",
            Self::RedirectUriMismatch => "redirect_uri_mismatch",
            Self::UnverifiedUserEmail => "unverified_user_email",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for OauthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong talking to GitHub. Messages name the endpoint, never a
/// token, code or secret.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub refused the OAuth code exchange: {code}")]
    OauthExchange {
        code: OauthErrorCode,
        description: Option<String>,
    },
    #[error("GitHub rate limit reached for {endpoint}; retry after {reset_at}")]
    RateLimited {
        endpoint: &'static str,
        reset_at: DateTime<Utc>,
    },
    #[error("GitHub rejected the credentials for {endpoint} (401)")]
    Unauthorized { endpoint: &'static str },
    #[error("GitHub answered {status} to {endpoint}")]
    Status { endpoint: &'static str, status: u16 },
    #[error("GitHub did not answer {endpoint} in time")]
    Timeout { endpoint: &'static str },
    #[error("cannot reach GitHub for {endpoint}: {message}")]
    Unreachable {
        endpoint: &'static str,
        message: String,
    },
    #[error("unexpected reply from GitHub to {endpoint}: {message}")]
    Decode {
        endpoint: &'static str,
        message: String,
    },
    #[error("{endpoint} has more than {max} pages; stopped")]
    TooManyPages { endpoint: &'static str, max: usize },
    #[error("GitHub's next-page link for {endpoint} points off the API host; not followed")]
    ForeignLink { endpoint: &'static str },
    #[error("invalid GitHub base URL `{0}`")]
    BaseUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error(transparent)]
    AppJwt(#[from] AppJwtError),
}

impl GithubError {
    /// Worth trying again later (the user reloading, a later reconcile run).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Timeout { .. } | Self::Unreachable { .. }
        ) || matches!(self, Self::Status { status, .. } if *status >= 500)
    }
}

/// `GET /user` (the fields Tollgate uses of `private-user`/`public-user`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub id: u64,
    pub login: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// `marketplace-account`: who bought.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MarketplaceAccount {
    pub id: u64,
    pub login: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub organization_billing_email: Option<String>,
}

impl MarketplaceAccount {
    pub fn account_kind(&self) -> Option<AccountKind> {
        account_kind(&self.kind)
    }
}

fn account_kind(kind: &str) -> Option<AccountKind> {
    match kind {
        "User" => Some(AccountKind::User),
        "Organization" => Some(AccountKind::Organization),
        _ => None,
    }
}

/// `marketplace-listing-plan`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListingPlan {
    pub id: u64,
    #[serde(default)]
    pub number: Option<u64>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub monthly_price_in_cents: Option<u64>,
    #[serde(default)]
    pub yearly_price_in_cents: Option<u64>,
    /// As GitHub spells it (`FLAT_RATE`, `flat-rate`, ...); see [`Self::price_model`].
    #[serde(default)]
    pub price_model: Option<String>,
    #[serde(default)]
    pub has_free_trial: Option<bool>,
    #[serde(default)]
    pub unit_name: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub bullets: Option<Vec<Option<String>>>,
}

impl ListingPlan {
    /// The price model in any casing/separator GitHub has used.
    pub fn price_model(&self) -> Option<PriceModel> {
        parse_price_model(self.price_model.as_deref()?)
    }
}

/// `FREE`/`FLAT_RATE`/`PER_UNIT`, in any casing, `-` or `_`.
pub fn parse_price_model(raw: &str) -> Option<PriceModel> {
    match raw.trim().to_ascii_uppercase().replace('-', "_").as_str() {
        "FREE" => Some(PriceModel::Free),
        "FLAT_RATE" => Some(PriceModel::FlatRate),
        "PER_UNIT" => Some(PriceModel::PerUnit),
        _ => None,
    }
}

/// `user-marketplace-purchase`: one of the signed-in user's subscriptions
/// (their own account's or an organization's they can see).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserMarketplacePurchase {
    #[serde(default)]
    pub billing_cycle: Option<String>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub next_billing_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub unit_count: Option<u64>,
    #[serde(default)]
    pub on_free_trial: Option<bool>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub free_trial_ends_on: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub updated_at: Option<DateTime<Utc>>,
    pub account: MarketplaceAccount,
    pub plan: ListingPlan,
}

impl UserMarketplacePurchase {
    /// Whole days left of a free trial, rounded up (a trial ending in an
    /// hour has 1 day left); `None` when not on a trial.
    pub fn trial_days_left(&self, now: DateTime<Utc>) -> Option<u32> {
        if self.on_free_trial != Some(true) {
            return None;
        }
        self.free_trial_ends_on
            .map(|ends| crate::entitlement::days_left(ends, now))
    }
}

/// `marketplace-purchase` (`/marketplace_listing/accounts/{id}` and
/// `/marketplace_listing/plans/{id}/accounts`): the account at the top
/// level, its purchase and any pending change nested.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccountPurchase {
    pub id: u64,
    pub login: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub organization_billing_email: Option<String>,
    #[serde(default)]
    pub marketplace_pending_change: Option<PendingChange>,
    pub marketplace_purchase: PurchaseTerms,
}

impl AccountPurchase {
    pub fn account_kind(&self) -> Option<AccountKind> {
        account_kind(&self.kind)
    }
}

/// The `marketplace_purchase` object of an [`AccountPurchase`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PurchaseTerms {
    #[serde(default)]
    pub billing_cycle: Option<String>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub next_billing_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_installed: Option<bool>,
    #[serde(default)]
    pub unit_count: Option<u64>,
    #[serde(default)]
    pub on_free_trial: Option<bool>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub free_trial_ends_on: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub plan: Option<ListingPlan>,
}

/// `marketplace_pending_change`: a downgrade or cancellation announced for
/// `effective_date`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PendingChange {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub effective_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub unit_count: Option<u64>,
    #[serde(default)]
    pub is_installed: Option<bool>,
    #[serde(default)]
    pub plan: Option<ListingPlan>,
}

/// RFC 3339 (`Z` or `+00:00`) or a bare date; anything else reads as absent
/// rather than failing the whole reply.
fn lenient_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.and_then(|s| parse_time(&s)))
}

/// Parses GitHub's timestamps: RFC 3339 with any offset, or `YYYY-MM-DD`.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// How a request authenticates.
enum Auth<'a> {
    User(&'a UserToken),
    App(&'a AppJwtSigner),
}

/// The GitHub client. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct GithubClient {
    http: reqwest::Client,
    web: String,
    api: String,
    api_origin: url::Origin,
    max_pages: usize,
}

impl fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubClient")
            .field("web", &self.web)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl GithubClient {
    /// The client for `TOLLGATE_GITHUB_URL` / `TOLLGATE_GITHUB_API_URL`.
    pub fn new(settings: &Settings) -> Result<Self, GithubError> {
        Self::with_urls(&settings.github_url, &settings.github_api_url)
    }

    pub fn with_urls(web: &str, api: &str) -> Result<Self, GithubError> {
        Self::with_timeouts(web, api, CONNECT_TIMEOUT, REQUEST_TIMEOUT)
    }

    pub fn with_timeouts(
        web: &str,
        api: &str,
        connect: Duration,
        total: Duration,
    ) -> Result<Self, GithubError> {
        let web = base_url(web)?;
        let api = base_url(api)?;
        let api_origin = url::Url::parse(&api)
            .map_err(|_| GithubError::BaseUrl(api.clone()))?
            .origin();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static(API_VERSION),
        );
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .connect_timeout(connect)
            .timeout(total)
            // Nothing Tollgate calls redirects; not following keeps
            // credentials on the hosts they were meant for.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GithubError::Client(e.to_string()))?;
        Ok(Self {
            http,
            web,
            api,
            api_origin,
            max_pages: DEFAULT_MAX_PAGES,
        })
    }

    /// Caps how many pages a listing follows (default [`DEFAULT_MAX_PAGES`]).
    pub fn with_max_pages(mut self, max_pages: usize) -> Self {
        self.max_pages = max_pages.max(1);
        self
    }

    pub fn web_url(&self) -> &str {
        &self.web
    }

    pub fn api_url(&self) -> &str {
        &self.api
    }

    /// Where to send the user to authorize the app.
    pub fn authorize_url(&self, client_id: &str, redirect_uri: &str, state: &str) -> String {
        let base = format!("{}/login/oauth/authorize", self.web);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .finish();
        format!("{base}?{query}")
    }

    /// Exchanges an OAuth `code` for the user's token. A 200 reply with an
    /// `error` field is a failure ([`GithubError::OauthExchange`]).
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &Secret,
        code: &str,
        redirect_uri: &str,
    ) -> Result<UserToken, GithubError> {
        const ENDPOINT: &str = "POST /login/oauth/access_token";
        // No Debug: the token must not end up in a log line by accident.
        #[derive(Deserialize)]
        struct Reply {
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            error: Option<String>,
            #[serde(default)]
            error_description: Option<String>,
        }
        let res = self
            .http
            .post(format!("{}/login/oauth/access_token", self.web))
            .header(header::ACCEPT, "application/json")
            .form(&[
                ("client_id", client_id),
                ("client_secret", client_secret.expose()),
                ("code", code),
                ("redirect_uri", redirect_uri),
            ])
            .send()
            .await
            .map_err(|e| transport(ENDPOINT, e))?;
        let res = check(ENDPOINT, res)?;
        let reply: Reply = read_json(ENDPOINT, res).await?;
        if let Some(error) = reply.error {
            return Err(GithubError::OauthExchange {
                code: OauthErrorCode::parse(&error),
                description: reply.error_description,
            });
        }
        match reply.access_token {
            Some(token) if !token.is_empty() => Ok(UserToken::new(token)),
            _ => Err(GithubError::Decode {
                endpoint: ENDPOINT,
                message: "neither `access_token` nor `error` in the reply".into(),
            }),
        }
    }

    /// `GET /user`: who the token belongs to.
    pub async fn user(&self, token: &UserToken) -> Result<User, GithubError> {
        const ENDPOINT: &str = "GET /user";
        let res = self
            .get(ENDPOINT, &format!("{}/user", self.api), &Auth::User(token))
            .await?;
        read_json(ENDPOINT, check(ENDPOINT, res)?).await
    }

    /// `GET /user/marketplace_purchases`, every page.
    pub async fn user_marketplace_purchases(
        &self,
        token: &UserToken,
    ) -> Result<Vec<UserMarketplacePurchase>, GithubError> {
        let url = format!(
            "{}/user/marketplace_purchases?per_page={PER_PAGE}",
            self.api
        );
        self.get_all("GET /user/marketplace_purchases", url, &Auth::User(token))
            .await
    }

    /// `GET /marketplace_listing/accounts/{account_id}` as the app: the
    /// account's plan, or `None` (404) if it has not bought the listing.
    pub async fn listing_account(
        &self,
        app: &AppJwtSigner,
        account_id: u64,
    ) -> Result<Option<AccountPurchase>, GithubError> {
        const ENDPOINT: &str = "GET /marketplace_listing/accounts/{account_id}";
        let url = format!("{}/marketplace_listing/accounts/{account_id}", self.api);
        let res = self.get(ENDPOINT, &url, &Auth::App(app)).await?;
        if res.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        read_json(ENDPOINT, check(ENDPOINT, res)?).await.map(Some)
    }

    /// `GET /marketplace_listing/plans` as the app, every page.
    pub async fn listing_plans(&self, app: &AppJwtSigner) -> Result<Vec<ListingPlan>, GithubError> {
        let url = format!("{}/marketplace_listing/plans?per_page={PER_PAGE}", self.api);
        self.get_all("GET /marketplace_listing/plans", url, &Auth::App(app))
            .await
    }

    /// `GET /marketplace_listing/plans/{plan_id}/accounts` as the app, every
    /// page (free plans included; per-unit plans carry their unit count).
    pub async fn plan_accounts(
        &self,
        app: &AppJwtSigner,
        plan_id: u64,
    ) -> Result<Vec<AccountPurchase>, GithubError> {
        let url = format!(
            "{}/marketplace_listing/plans/{plan_id}/accounts?per_page={PER_PAGE}",
            self.api
        );
        self.get_all(
            "GET /marketplace_listing/plans/{plan_id}/accounts",
            url,
            &Auth::App(app),
        )
        .await
    }

    async fn get(
        &self,
        endpoint: &'static str,
        url: &str,
        auth: &Auth<'_>,
    ) -> Result<reqwest::Response, GithubError> {
        let req = self.http.get(url);
        // `bearer_auth` marks the header sensitive.
        let req = match auth {
            Auth::User(token) => req.bearer_auth(token.expose()),
            Auth::App(signer) => req.bearer_auth(signer.sign()?.expose()),
        };
        req.send().await.map_err(|e| transport(endpoint, e))
    }

    /// Follows `Link: rel="next"` from `url`, at most `max_pages` pages, and
    /// only on the API's own origin (the token goes with every page).
    async fn get_all<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        mut url: String,
        auth: &Auth<'_>,
    ) -> Result<Vec<T>, GithubError> {
        let mut items = Vec::new();
        for _ in 0..self.max_pages {
            let res = check(endpoint, self.get(endpoint, &url, auth).await?)?;
            let next = res
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let page: Vec<T> = read_json(endpoint, res).await?;
            items.extend(page);
            let Some(next) = next else {
                return Ok(items);
            };
            let same_origin = url::Url::parse(&next)
                .map(|u| u.origin() == self.api_origin)
                .unwrap_or(false);
            if !same_origin {
                return Err(GithubError::ForeignLink { endpoint });
            }
            url = next;
        }
        Err(GithubError::TooManyPages {
            endpoint,
            max: self.max_pages,
        })
    }
}

/// Trims the trailing `/` and checks the URL parses.
fn base_url(raw: &str) -> Result<String, GithubError> {
    let trimmed = raw.trim().trim_end_matches('/');
    match url::Url::parse(trimmed) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(trimmed.to_owned())
        }
        _ => Err(GithubError::BaseUrl(raw.to_owned())),
    }
}

fn transport(endpoint: &'static str, e: reqwest::Error) -> GithubError {
    if e.is_timeout() {
        return GithubError::Timeout { endpoint };
    }
    // `without_url`: URLs carry no secrets here, but keep messages short.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    GithubError::Unreachable { endpoint, message }
}

/// Maps non-2xx replies to errors: rate limits first, then 401, then the rest.
fn check(endpoint: &'static str, res: reqwest::Response) -> Result<reqwest::Response, GithubError> {
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    if let Some(reset_at) = rate_limit_reset(status.as_u16(), res.headers(), Utc::now()) {
        return Err(GithubError::RateLimited { endpoint, reset_at });
    }
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(GithubError::Unauthorized { endpoint });
    }
    Err(GithubError::Status {
        endpoint,
        status: status.as_u16(),
    })
}

/// When a 403/429 is a rate limit, the time to come back: the primary
/// limit's `x-ratelimit-reset` when `x-ratelimit-remaining` is 0, else
/// `retry-after` (secondary limits), else a minute for a bare 429.
pub fn rate_limit_reset(
    status: u16,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if status != 403 && status != 429 {
        return None;
    }
    let num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    if num("x-ratelimit-remaining") == Some(0) {
        let reset = num("x-ratelimit-reset").and_then(|s| DateTime::from_timestamp(s, 0));
        return Some(reset.unwrap_or(now + DEFAULT_RATE_LIMIT_WAIT));
    }
    if let Some(secs) = num(header::RETRY_AFTER.as_str()) {
        return Some(now + chrono::Duration::seconds(secs.clamp(0, 86_400)));
    }
    (status == 429).then_some(now + DEFAULT_RATE_LIMIT_WAIT)
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let after = &rest[close + 1..];
        let params_end = after.find('<').unwrap_or(after.len());
        let is_next = after[..params_end].split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.strip_prefix("rel=")
                .map(|v| v.trim_matches('"').split_whitespace().any(|r| r == "next"))
                .unwrap_or(false)
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = &after[params_end..];
    }
    None
}

async fn read_json<T: DeserializeOwned>(
    endpoint: &'static str,
    res: reqwest::Response,
) -> Result<T, GithubError> {
    if res
        .content_length()
        .is_some_and(|n| n > MAX_REPLY_BYTES as u64)
    {
        return Err(GithubError::Decode {
            endpoint,
            message: "reply too large".into(),
        });
    }
    let bytes = res.bytes().await.map_err(|e| transport(endpoint, e))?;
    if bytes.len() > MAX_REPLY_BYTES {
        return Err(GithubError::Decode {
            endpoint,
            message: "reply too large".into(),
        });
    }
    // serde_json's message names the position and the expected type, not
    // the document, so no token from the body ends up in it.
    serde_json::from_slice(&bytes).map_err(|e| GithubError::Decode {
        endpoint,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn next_link_follows_githubs_link_header() {
        let h = r#"<https://api.github.com/user/marketplace_purchases?per_page=1&page=1>; rel="prev", <https://api.github.com/user/marketplace_purchases?per_page=1&page=3>; rel="next", <https://api.github.com/user/marketplace_purchases?per_page=1&page=5>; rel="last", <https://api.github.com/user/marketplace_purchases?per_page=1&page=1>; rel="first""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/user/marketplace_purchases?per_page=1&page=3")
        );
        let last_page = r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#;
        assert_eq!(next_link(last_page), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(
            next_link("<https://a/b?c=1,2>; rel=next").as_deref(),
            Some("https://a/b?c=1,2")
        );
    }

    #[test]
    fn rate_limits_are_read_from_githubs_headers() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert(
            "x-ratelimit-reset",
            HeaderValue::from(now.timestamp() + 120),
        );
        assert_eq!(
            rate_limit_reset(403, &h, now),
            Some(now + chrono::Duration::seconds(120))
        );
        assert_eq!(rate_limit_reset(200, &h, now), None);
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("30"));
        assert_eq!(
            rate_limit_reset(429, &h, now),
            Some(now + chrono::Duration::seconds(30))
        );
        assert_eq!(
            rate_limit_reset(429, &HeaderMap::new(), now),
            Some(now + DEFAULT_RATE_LIMIT_WAIT)
        );
        // A plain 403 (no permission) is not a rate limit.
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("4999"));
        assert_eq!(rate_limit_reset(403, &h, now), None);
    }

    #[test]
    fn purchases_parse_tolerantly() {
        let json = r#"{"billing_cycle":null,"next_billing_date":null,"unit_count":null,
            "on_free_trial":true,"free_trial_ends_on":"2017-11-11T00:00:00+00:00","updated_at":"nonsense",
            "account":{"login":"u","id":3,"type":"User","url":"x","email":null,"organization_billing_email":null,"extra":1},
            "plan":{"id":9,"name":"Pro","price_model":"per-unit","bullets":[null,"a"],"unit_name":null}}"#;
        let p: UserMarketplacePurchase = serde_json::from_str(json).unwrap();
        assert_eq!(p.plan.price_model(), Some(PriceModel::PerUnit));
        assert_eq!(p.updated_at, None);
        assert_eq!(p.account.account_kind(), Some(AccountKind::User));
        let now = Utc.with_ymd_and_hms(2017, 11, 2, 1, 12, 12).unwrap();
        assert_eq!(p.trial_days_left(now), Some(9));
        assert_eq!(
            p.trial_days_left(Utc.with_ymd_and_hms(2018, 1, 1, 0, 0, 0).unwrap()),
            Some(0)
        );
    }

    #[test]
    fn price_models_in_every_spelling() {
        for (raw, want) in [
            ("FLAT_RATE", PriceModel::FlatRate),
            ("flat-rate", PriceModel::FlatRate),
            ("Per_Unit", PriceModel::PerUnit),
            ("free", PriceModel::Free),
        ] {
            assert_eq!(parse_price_model(raw), Some(want), "{raw}");
        }
        assert_eq!(parse_price_model("bogus"), None);
    }

    #[test]
    fn base_urls_are_checked_and_the_authorize_url_is_encoded() {
        assert!(matches!(
            GithubClient::with_urls("github.com", "https://api.github.com"),
            Err(GithubError::BaseUrl(_))
        ));
        let c = GithubClient::with_urls("https://github.com/", "https://api.github.com").unwrap();
        let url = c.authorize_url("Iv1.x", "https://t.example/github/callback", "a b&c");
        assert_eq!(
            url,
            "https://github.com/login/oauth/authorize?client_id=Iv1.x&redirect_uri=https%3A%2F%2Ft.example%2Fgithub%2Fcallback&state=a+b%26c"
        );
    }

    #[test]
    fn tokens_never_print() {
        let t = UserToken::new("gho_secret");
        assert_eq!(format!("{t:?}"), "UserToken(***)");
    }
}
