//! The GitHub HTTP client: the OAuth code exchange on github.com and the REST
//! calls on api.github.com that Tollgate makes.
//!
//! - `client/mod.rs`: the client, its configuration (base URLs, timeouts,
//!   page cap) and its errors;
//! - `client/transport.rs`: sending a request, rate limits, `Link` pagination,
//!   reading and decoding the reply;
//! - `client/user.rs`: as the signed-in user — the OAuth code exchange,
//!   `GET /user`, `GET /user/marketplace_purchases`;
//! - `client/listing.rs`: as the app (app JWT) — the
//!   `/marketplace_listing/...` endpoints used for reconciliation.
//!
//! One client is built at cold start and shared. Every request has a connect
//! and a total timeout, so a caller always answers well inside GitHub's 10 s;
//! a rate-limit reply becomes [`GithubError::RateLimited`] with the time to
//! come back, never a retry loop. Tokens travel as [`UserToken`] / app JWTs,
//! which never print, and nothing here logs a request or reply body. Error
//! messages never quote a value from a reply.
//!
//! Reply shapes follow GitHub's OpenAPI description as published in
//! `@octokit/openapi@23.0.2` (<https://github.com/octokit/openapi>; the
//! schemas Tollgate relies on are copied in
//! `sim/fixtures/github/openapi-subset.json`). Every field that GitHub's own
//! material shows as absent or null somewhere is optional here, unknown
//! fields are ignored.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};

use super::app_jwt::AppJwtError;
use crate::secret::Secret;
use crate::settings::Settings;

mod listing;
mod transport;
mod user;

pub use super::webhook::parse_time;
/// The price model reader shared with the webhook:
/// [`super::webhook::price_model`].
pub use super::webhook::price_model as parse_price_model;
pub use listing::{AccountPurchase, ListingPlan, PendingChange, PurchaseTerms};
pub use transport::{Page, next_link, rate_limit_reset};
pub(crate) use user::safe_code;
pub use user::{MarketplaceAccount, OauthErrorCode, User, UserMarketplacePurchase};

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

/// What went wrong talking to GitHub. Messages name the endpoint, never a
/// token, code, secret or value from a reply.
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
    /// The reply is not what the endpoint documents. `message` says what and
    /// where (line, column), never a value from the reply.
    #[error("unexpected reply from GitHub to {endpoint}: {message}")]
    Decode {
        endpoint: &'static str,
        message: String,
    },
    /// The reply passed its size cap; reading stopped there.
    #[error("reply from GitHub to {endpoint} larger than {cap} bytes")]
    TooLarge { endpoint: &'static str, cap: usize },
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
        let http = crate::https::client_builder()
            .map_err(|e| GithubError::Client(e.to_string()))?
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

    /// The most pages a listing follows.
    pub fn max_pages(&self) -> usize {
        self.max_pages
    }

    pub fn web_url(&self) -> &str {
        &self.web
    }

    pub fn api_url(&self) -> &str {
        &self.api
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

/// GitHub API failures: the upstream's fault (502/504), or a rate limit
/// (503, come back later); never the caller's.
impl From<GithubError> for crate::web::ApiError {
    fn from(e: GithubError) -> Self {
        use crate::web::ApiError;
        use GithubError as E;
        use http::StatusCode;
        let message = e.to_string();
        match e {
            E::RateLimited { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "github_rate_limited",
                message,
            ),
            E::Timeout { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "github_timeout", message)
            }
            E::Unreachable { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "github_unreachable", message)
            }
            // Wrong client credentials or redirect URI: the vendor's setup.
            E::OauthExchange { .. } | E::Unauthorized { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "github_refused", message)
            }
            E::Status { .. }
            | E::Decode { .. }
            | E::TooLarge { .. }
            | E::TooManyPages { .. }
            | E::ForeignLink { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "github_error", message)
            }
            E::BaseUrl(_) | E::Client(_) | E::AppJwt(_) => ApiError::internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
