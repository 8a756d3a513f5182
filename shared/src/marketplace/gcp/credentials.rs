//! OAuth 2.0 access tokens for Google APIs (the Procurement API), minted
//! from AWS Lambda in one of two ways:
//!
//! - **a service-account key** (`credentials/service_account.rs`): the
//!   JWT-bearer grant of RFC 7523 as Google documents it for service
//!   accounts
//!   (<https://developers.google.com/identity/protocols/oauth2/service-account#httprest>);
//! - **Workload Identity Federation from AWS**, keyless
//!   (`credentials/aws.rs`): the Lambda's own AWS role signs an STS
//!   `GetCallerIdentity` request, Google's STS exchanges it for a federated
//!   token, and IAM Credentials turns that into the linked service
//!   account's token (<https://google.aip.dev/auth/4117>,
//!   <https://cloud.google.com/iam/docs/workload-identity-federation-with-other-clouds>).
//!
//! Either way the token is cached per process ([`TokenCache`]) until
//! [`REFRESH_EARLY`] before it expires, and one refresh runs at a time: the
//! callers that arrive during a refresh wait for it and share its token.
//!
//! Tokens, keys and signed requests travel as [`Secret`]s and never print;
//! error messages name the endpoint and what went wrong, never a credential
//! or a value from a reply.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::secret::{Secret, Secrets};
use crate::settings::Settings;

mod aws;
mod service_account;

pub use aws::{
    AwsWorkloadIdentity, ExternalAccountConfig, STS_TOKEN_URL, SUBJECT_TOKEN_TYPE_AWS,
    subject_token,
};
pub use service_account::{JwtBearer, ServiceAccountKey};

/// The one OAuth scope the Procurement API accepts.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Secret holding the service account's JSON key, as Google lets you
/// download it (`client_email`, `private_key`, `private_key_id`, ...).
pub const SERVICE_ACCOUNT_KEY_SECRET: &str = "gcp_service_account_key";
/// Secret holding a Workload Identity Federation credential configuration
/// (`"type": "external_account"`, AWS-sourced). It holds no secret, so it
/// may come from [`EXTERNAL_ACCOUNT_ENV`] instead.
pub const EXTERNAL_ACCOUNT_SECRET: &str = "gcp_external_account";
/// Environment variable with the same content as [`EXTERNAL_ACCOUNT_SECRET`].
pub const EXTERNAL_ACCOUNT_ENV: &str = "TOLLGATE_GCP_EXTERNAL_ACCOUNT";
/// How long before expiry a cached token is replaced (at most half its
/// lifetime, for short-lived tokens).
pub const REFRESH_EARLY: Duration = Duration::from_secs(5 * 60);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Per token request. The Procurement client bounds a whole call
/// (token included) with its own deadline.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
/// Token replies are small; anything larger is refused, not buffered.
const MAX_REPLY_BYTES: usize = 64 * 1024;
pub(crate) const USER_AGENT: &str = concat!("tollgate/", env!("CARGO_PKG_VERSION"));

/// Reads an environment variable. Passed in, so tests never touch the
/// process environment.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment (what Lambda injects: `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`).
pub fn process_env() -> EnvLookup {
    Arc::new(|name| std::env::var(name).ok())
}

/// An OAuth access token and when it expires. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    token: Secret,
    expires_at: DateTime<Utc>,
}

impl AccessToken {
    pub fn new(token: impl Into<String>, expires_at: DateTime<Utc>) -> Self {
        Self {
            token: Secret::new(token),
            expires_at,
        }
    }

    /// The bearer value, for an `Authorization` header only.
    pub fn expose(&self) -> &str {
        self.token.expose()
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where the Procurement client gets its bearer token.
#[async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// A token valid for a while yet (cached, or fetched now).
    async fn token(&self) -> Result<AccessToken, CredentialsError>;

    /// Google refused `rejected` (401): forget it, if it is still the
    /// cached one, so the next [`TokenSource::token`] fetches another.
    async fn invalidate(&self, rejected: &AccessToken) {
        let _ = rejected;
    }
}

/// Mints a new token; [`TokenCache`] decides when.
#[async_trait]
pub trait FetchToken: Send + Sync + fmt::Debug {
    async fn fetch(&self, now: DateTime<Utc>) -> Result<AccessToken, CredentialsError>;
}

/// A [`TokenSource`] over a [`FetchToken`]: caches the token until
/// [`REFRESH_EARLY`] before expiry and lets one refresh run at a time.
///
/// The cache is an async mutex held across the fetch: callers arriving
/// during a refresh queue on it and find the fresh token when they get it,
/// so N concurrent callers cost one token request, not N.
pub struct TokenCache<F> {
    fetcher: F,
    clock: Arc<dyn Clock>,
    refresh_early: Duration,
    slot: tokio::sync::Mutex<Option<Cached>>,
}

struct Cached {
    token: AccessToken,
    refresh_at: DateTime<Utc>,
}

/// A failed early refresh keeps using the cached token while it has at
/// least this long to live.
const STILL_VALID_MARGIN: chrono::Duration = chrono::Duration::seconds(30);

impl<F: FetchToken> TokenCache<F> {
    pub fn new(fetcher: F, clock: Arc<dyn Clock>) -> Self {
        Self {
            fetcher,
            clock,
            refresh_early: REFRESH_EARLY,
            slot: tokio::sync::Mutex::new(None),
        }
    }

    pub fn with_refresh_early(mut self, early: Duration) -> Self {
        self.refresh_early = early;
        self
    }

    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }
}

impl<F: fmt::Debug> fmt::Debug for TokenCache<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("fetcher", &self.fetcher)
            .field("refresh_early", &self.refresh_early)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<F: FetchToken> TokenSource for TokenCache<F> {
    async fn token(&self) -> Result<AccessToken, CredentialsError> {
        let mut slot = self.slot.lock().await;
        let now = self.clock.now();
        if let Some(cached) = slot.as_ref()
            && now < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let token = match self.fetcher.fetch(now).await {
            Ok(token) => token,
            // Refreshing early failed: the cached token still works.
            Err(e) => match slot.as_ref() {
                Some(cached) if cached.token.expires_at - STILL_VALID_MARGIN > now => {
                    tracing::warn!(error = %e, "Google token refresh failed; using the cached token");
                    return Ok(cached.token.clone());
                }
                _ => return Err(e),
            },
        };
        let lifetime = (token.expires_at - now).to_std().unwrap_or_default();
        let early = self.refresh_early.min(lifetime / 2);
        let refresh_at = token.expires_at
            - chrono::Duration::from_std(early).unwrap_or(chrono::Duration::zero());
        *slot = Some(Cached {
            token: token.clone(),
            refresh_at,
        });
        Ok(token)
    }

    async fn invalidate(&self, rejected: &AccessToken) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|c| &c.token == rejected) {
            *slot = None;
        }
    }
}

/// A fixed token (local development against a stand-in, tests).
#[derive(Debug, Clone)]
pub struct StaticToken(pub AccessToken);

#[async_trait]
impl TokenSource for StaticToken {
    async fn token(&self) -> Result<AccessToken, CredentialsError> {
        Ok(self.0.clone())
    }
}

/// Why no token could be had. Messages name the endpoint or the setting,
/// never a key, token, signed request or value from a reply.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("no Google credentials configured: {0}")]
    NotConfigured(String),
    /// The key or credential configuration is unusable. `message` says what
    /// and where (line, column), never a value.
    #[error("`{source_name}` is not usable: {message}")]
    InvalidConfig {
        source_name: &'static str,
        message: String,
    },
    #[error("AWS credentials for Workload Identity Federation are missing: set {0}")]
    AwsEnvironment(&'static str),
    /// The endpoint refused (4xx other than 429). `error` is the OAuth
    /// error code or Google status; `description` Google's explanation, kept
    /// only when it is short prose that quotes nothing we sent.
    #[error("{endpoint} refused the credentials ({status}{}{})",
        error.as_deref().map(|e| format!(" {e}")).unwrap_or_default(),
        description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        endpoint: &'static str,
        status: u16,
        error: Option<String>,
        description: Option<String>,
    },
    #[error("{endpoint} answered {status}")]
    Unavailable { endpoint: &'static str, status: u16 },
    #[error("{endpoint} did not answer in time")]
    Timeout { endpoint: &'static str },
    #[error("cannot reach {endpoint}: {message}")]
    Unreachable {
        endpoint: &'static str,
        message: String,
    },
    /// The reply is not what the endpoint documents; position only.
    #[error("unexpected reply from {endpoint}: {message}")]
    Decode {
        endpoint: &'static str,
        message: String,
    },
    /// The reply passed its size cap; reading stopped there.
    #[error("reply from {endpoint} larger than {cap} bytes")]
    TooLarge { endpoint: &'static str, cap: usize },
    #[error("cannot sign the {0}")]
    Signing(&'static str),
    #[error("invalid URL for {0}")]
    Url(&'static str),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl CredentialsError {
    /// The token endpoint is down or slow: trying again later may work.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Timeout { .. } | Self::Unreachable { .. }
        )
    }
}

/// Credentials failures: the token endpoint's fault or slowness (502/504,
/// 503 when it said "later"), or our own configuration (500).
impl From<CredentialsError> for crate::web::ApiError {
    fn from(e: CredentialsError) -> Self {
        use crate::web::ApiError;
        use CredentialsError as E;
        use http::StatusCode;
        let message = e.to_string();
        match e {
            E::Unavailable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "gcp_token_unavailable",
                message,
            ),
            E::Timeout { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "gcp_token_timeout", message)
            }
            E::Unreachable { .. } | E::Decode { .. } | E::TooLarge { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "gcp_token_error", message)
            }
            E::Refused { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "gcp_token_refused", message)
            }
            E::NotConfigured(_)
            | E::InvalidConfig { .. }
            | E::AwsEnvironment(_)
            | E::Signing(_)
            | E::Url(_)
            | E::Client(_) => ApiError::internal(message),
        }
    }
}

/// The token source the deployment is configured for:
///
/// 1. the secret [`SERVICE_ACCOUNT_KEY_SECRET`] → JWT-bearer grant at
///    `TOLLGATE_GOOGLE_TOKEN_URL` (`settings.google_token_url`);
/// 2. else the secret [`EXTERNAL_ACCOUNT_SECRET`] or the variable
///    [`EXTERNAL_ACCOUNT_ENV`] → Workload Identity Federation from the
///    Lambda's AWS role (AWS credentials read through `env` at each
///    refresh);
/// 3. else [`CredentialsError::NotConfigured`], naming what to set.
pub fn from_config(
    settings: &Settings,
    secrets: &Secrets,
    env: EnvLookup,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn TokenSource>, CredentialsError> {
    if let Some(key) = secrets.get(SERVICE_ACCOUNT_KEY_SECRET) {
        let key = ServiceAccountKey::from_json(key)?;
        let fetcher = JwtBearer::new(key, &settings.google_token_url)?;
        return Ok(Arc::new(TokenCache::new(fetcher, clock)));
    }
    let external = match secrets.get(EXTERNAL_ACCOUNT_SECRET) {
        Some(s) => Some((EXTERNAL_ACCOUNT_SECRET, s.expose().to_owned())),
        None => env(EXTERNAL_ACCOUNT_ENV)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (EXTERNAL_ACCOUNT_ENV, v)),
    };
    if let Some((source_name, json)) = external {
        let config = ExternalAccountConfig::from_json(source_name, &json)?;
        let fetcher = AwsWorkloadIdentity::new(config, env)?;
        return Ok(Arc::new(TokenCache::new(fetcher, clock)));
    }
    Err(CredentialsError::NotConfigured(format!(
        "add the secret `{SERVICE_ACCOUNT_KEY_SECRET}` (the service account's JSON key) or, \
         keyless, the secret `{EXTERNAL_ACCOUNT_SECRET}` or the variable \
         {EXTERNAL_ACCOUNT_ENV} (a Workload Identity Federation credential configuration \
         for AWS)"
    )))
}

/// The HTTP client for token endpoints: short timeouts, no redirects (a
/// redirect would carry an assertion or federated token elsewhere).
pub(crate) fn http_client() -> Result<reqwest::Client, CredentialsError> {
    crate::https::client_builder()
        .map_err(|e| CredentialsError::Client(e.to_string()))?
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| CredentialsError::Client(e.to_string()))
}

/// Checks an endpoint URL: http(s) with a host.
pub(crate) fn endpoint_url(raw: &str, what: &'static str) -> Result<url::Url, CredentialsError> {
    match url::Url::parse(raw.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
        _ => Err(CredentialsError::Url(what)),
    }
}

/// Sends a token request; returns the 2xx body, or the error the reply
/// means. `sent` are the secrets in the request, which a refusal's
/// description must not quote.
pub(crate) async fn exchange(
    endpoint: &'static str,
    req: reqwest::RequestBuilder,
    sent: &[&str],
) -> Result<Vec<u8>, CredentialsError> {
    let res = req.send().await.map_err(|e| transport(endpoint, e))?;
    let status = res.status().as_u16();
    let body = read_limited(res)
        .await
        .map_err(|e| read_error(endpoint, e))?;
    if (200..300).contains(&status) {
        return Ok(body);
    }
    if status == 429 || status >= 500 {
        return Err(CredentialsError::Unavailable { endpoint, status });
    }
    let (error, description) = refusal_details(&body, sent);
    Err(CredentialsError::Refused {
        endpoint,
        status,
        error,
        description,
    })
}

/// Deserializes a token reply; the error gives the position, never a value.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    endpoint: &'static str,
    body: &[u8],
) -> Result<T, CredentialsError> {
    serde_json::from_slice(body).map_err(|e| CredentialsError::Decode {
        endpoint,
        message: describe_json_error(&e),
    })
}

pub(crate) use crate::marketplace::github::webhook::describe_json_error;
use crate::outbound::{ReadError, read_capped};

fn transport(endpoint: &'static str, e: reqwest::Error) -> CredentialsError {
    if e.is_timeout() {
        return CredentialsError::Timeout { endpoint };
    }
    CredentialsError::Unreachable {
        endpoint,
        message: error_chain(&e.without_url()),
    }
}

/// An error and its sources, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
}

/// Reads a token reply, at most [`MAX_REPLY_BYTES`], while streaming.
async fn read_limited(res: reqwest::Response) -> Result<Vec<u8>, ReadError> {
    read_capped(res, MAX_REPLY_BYTES).await
}

fn read_error(endpoint: &'static str, e: ReadError) -> CredentialsError {
    match e {
        ReadError::TooLarge { cap } => CredentialsError::TooLarge { endpoint, cap },
        ReadError::Transport(e) => transport(endpoint, e),
    }
}

/// The error code and description of a refusal, in either shape Google
/// uses: OAuth's `{"error": "...", "error_description": "..."}` (token
/// endpoint, STS) or `{"error": {"code", "message", "status"}}` (IAM
/// Credentials and the other REST APIs).
fn refusal_details(body: &[u8], sent: &[&str]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let error = value.get("error");
    match error {
        Some(serde_json::Value::String(code)) => (
            safe_code(code),
            value
                .get("error_description")
                .and_then(|d| d.as_str())
                .and_then(|d| safe_text(d, sent)),
        ),
        Some(serde_json::Value::Object(e)) => (
            e.get("status").and_then(|s| s.as_str()).and_then(safe_code),
            e.get("message")
                .and_then(|m| m.as_str())
                .and_then(|m| safe_text(m, sent)),
        ),
        _ => (None, None),
    }
}

/// An error code (`invalid_grant`, `PERMISSION_DENIED`): identifier
/// characters only, short; anything else is dropped.
pub(crate) fn safe_code(raw: &str) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    ok.then(|| raw.to_owned())
}

/// Longest explanation kept from a reply.
const MAX_TEXT: usize = 200;
/// Words longer than this look like tokens, keys or signatures.
const MAX_WORD: usize = 40;

/// A server's explanation, kept only when it is short prose: no word long
/// enough to be a credential, none of `sent` quoted, printable characters
/// only. Otherwise dropped whole (a partial credential is still a leak).
pub(crate) fn safe_text(raw: &str, sent: &[&str]) -> Option<String> {
    let text = raw.trim();
    if text.is_empty()
        || text.len() > MAX_TEXT
        || text.chars().any(|c| c.is_control())
        || text.split_whitespace().any(|w| w.len() > MAX_WORD)
        || sent.iter().any(|s| !s.is_empty() && text.contains(s))
    {
        return None;
    }
    Some(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let t = AccessToken::new("ya29.secret-token", Utc::now());
        let shown = format!("{t:?} {:?}", StaticToken(t.clone()));
        assert!(!shown.contains("ya29"), "{shown}");
    }

    #[test]
    fn explanations_are_kept_only_when_they_quote_nothing() {
        assert_eq!(
            safe_text("Invalid JWT Signature.", &[]).as_deref(),
            Some("Invalid JWT Signature.")
        );
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        assert_eq!(safe_text(&format!("bad assertion {jwt}"), &[]), None);
        assert_eq!(safe_text("bad token abc123", &["abc123"]), None);
        assert_eq!(safe_text("two\nlines", &[]), None);
        assert_eq!(safe_text(&"x ".repeat(150), &[]), None);
        assert_eq!(safe_code("invalid_grant").as_deref(), Some("invalid_grant"));
        assert_eq!(safe_code("<script>"), None);
    }

    #[test]
    fn refusals_are_read_in_both_shapes() {
        let (e, d) = refusal_details(
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
            &[],
        );
        assert_eq!(e.as_deref(), Some("invalid_grant"));
        assert_eq!(d.as_deref(), Some("Invalid JWT Signature."));
        let (e, d) = refusal_details(
            br#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied","status":"PERMISSION_DENIED"}}"#,
            &[],
        );
        assert_eq!(e.as_deref(), Some("PERMISSION_DENIED"));
        assert!(d.unwrap().starts_with("Permission"));
        assert_eq!(refusal_details(b"<html>", &[]), (None, None));
    }

    #[test]
    fn without_configuration_the_error_names_what_to_set() {
        let settings = Settings::from_lookup(|_| None);
        let err = from_config(
            &settings,
            &Secrets::default(),
            Arc::new(|_| None),
            Arc::new(crate::clock::SystemClock),
        )
        .unwrap_err()
        .to_string();
        for name in [
            SERVICE_ACCOUNT_KEY_SECRET,
            EXTERNAL_ACCOUNT_SECRET,
            EXTERNAL_ACCOUNT_ENV,
        ] {
            assert!(err.contains(name), "{err}");
        }
    }
}
