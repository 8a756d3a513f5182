//! The Cloud Commerce Partner Procurement API client
//! (<https://cloud.google.com/marketplace/docs/partners/commerce-procurement-api/reference/rest>):
//! reading and approving a provider's accounts and entitlements.
//!
//! - `procurement/mod.rs`: the client, its configuration (base URL,
//!   provider, retry policy, page cap), resource names and errors;
//! - `procurement/types.rs`: the resources and request bodies;
//! - `procurement/transport.rs`: one call with its deadline, retries,
//!   Google's error body and decoding;
//! - `procurement/methods.rs`: the methods, one per API method.
//!
//! One client is built at cold start and shared; its bearer token comes
//! from a [`TokenSource`]. Every call has
//! an overall deadline ([`RetryPolicy::deadline`]) that covers the token,
//! every attempt and every pause, so a caller always answers in time.
//! Nothing here logs a token or a body; error messages never quote a value
//! from a reply.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::credentials::{CredentialsError, TokenSource};
use crate::settings::Settings;

mod methods;
mod transport;
mod types;

pub use types::{
    Account, AccountState, Approval, ApprovalState, ApproveAccountRequest,
    ApproveEntitlementRequest, ApprovePlanChangeRequest, Consumer, Entitlement, EntitlementState,
    ListAccountsResponse, ListEntitlementsResponse, RejectAccountRequest, RejectEntitlementRequest,
    RejectPlanChangeRequest, SIGNUP_APPROVAL, filter_term, last_segment,
};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pages followed at most by a listing (200 items each).
pub const DEFAULT_MAX_PAGES: usize = 50;

/// How long one call may take in all, and how it retries inside that.
///
/// Retried: 429, 5xx, timeouts, connection failures, and a token endpoint
/// that is down — with exponential backoff and full jitter (a random pause
/// between 0 and `base_delay · 2^(attempt-1)`, at most `max_delay`), or
/// the reply's `Retry-After` when it has one. A pause that would leave no
/// time for another attempt (50 ms) before the deadline is not taken: the
/// last error is returned at once. A 401 drops the cached token and is
/// retried once with a fresh one. Not retried: any other 4xx, a reply that
/// does not decode, a refused credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The whole call: token, attempts and pauses.
    pub deadline: Duration,
    /// One attempt (never more than what is left of the deadline).
    pub attempt_timeout: Duration,
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// The default deadline. The Google adapter calls the API inside the
/// ingest pipeline's processing bound ([`crate::ingest::pipeline::PROCESS_TIMEOUT`],
/// 5 s), itself inside Pub/Sub's default 10 s acknowledgement deadline
/// (<https://cloud.google.com/pubsub/docs/push#push_backoff>) and the
/// functions' timeout; 4 s leaves room for the commit after it.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(4);

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            deadline: DEFAULT_DEADLINE,
            attempt_timeout: Duration::from_secs(3),
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }
}

/// What went wrong with a Procurement API call. Messages name the method
/// and Google's status, never a token or a value from a reply (Google's
/// own explanation is kept only when it is short prose quoting nothing we
/// sent).
#[derive(Debug, thiserror::Error)]
pub enum ProcurementError {
    /// 404: the account or entitlement does not exist (or no longer does).
    #[error("{endpoint}: not found at Google (404)")]
    NotFound { endpoint: &'static str },
    /// 400 `FAILED_PRECONDITION`: the resource is not in a state that
    /// allows this (an entitlement approved before its account, or
    /// already approved). `after_retry`: an earlier attempt of this very
    /// call ended ambiguously (5xx, timeout) and may have been applied, so
    /// the precondition may have failed because of it — read the resource
    /// to know.
    #[error("{endpoint}: precondition failed at Google (400 FAILED_PRECONDITION){}{}",
        detail(message),
        if *after_retry { "; an earlier attempt may have been applied" } else { "" })]
    FailedPrecondition {
        endpoint: &'static str,
        message: Option<String>,
        after_retry: bool,
    },
    /// 400 otherwise (`INVALID_ARGUMENT`, `OUT_OF_RANGE`, ...).
    #[error(
        "{endpoint}: Google found the request invalid ({status}{}){}",
        status_name(google_status),
        detail(message)
    )]
    InvalidArgument {
        endpoint: &'static str,
        status: u16,
        google_status: Option<String>,
        message: Option<String>,
    },
    /// 401: the access token was refused (twice: a 401 is retried once with
    /// a fresh token).
    #[error("{endpoint}: Google refused the access token (401){}", detail(message))]
    Unauthenticated {
        endpoint: &'static str,
        message: Option<String>,
    },
    /// 403: the service account may not do this (not the one linked in
    /// Producer Portal, wrong provider id, API not enabled).
    #[error("{endpoint}: permission denied by Google (403{}){}",
        reason.as_deref().map(|r| format!(" {r}")).unwrap_or_default(), detail(message))]
    PermissionDenied {
        endpoint: &'static str,
        reason: Option<String>,
        message: Option<String>,
    },
    /// 429 or `RESOURCE_EXHAUSTED`, still so at the deadline.
    #[error("{endpoint}: rate limited by Google{}",
        retry_after.map(|d| format!("; retry after {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        endpoint: &'static str,
        retry_after: Option<Duration>,
    },
    /// 5xx, still so at the deadline.
    #[error("{endpoint}: Google answered {status}")]
    Unavailable { endpoint: &'static str, status: u16 },
    /// Any other refusal (409, 412, ...).
    #[error(
        "{endpoint}: Google answered {status}{}{}",
        status_name(google_status),
        detail(message)
    )]
    Status {
        endpoint: &'static str,
        status: u16,
        google_status: Option<String>,
        message: Option<String>,
    },
    #[error("{endpoint}: Google did not answer in time")]
    Timeout { endpoint: &'static str },
    #[error("{endpoint}: cannot reach Google: {message}")]
    Unreachable {
        endpoint: &'static str,
        message: String,
    },
    /// The reply is not what the API documents; the position, never a
    /// value.
    #[error("{endpoint}: unexpected reply from Google: {message}")]
    Decode {
        endpoint: &'static str,
        message: String,
    },
    /// The reply passed its size cap; reading stopped there.
    #[error("{endpoint}: reply from Google larger than {cap} bytes")]
    TooLarge { endpoint: &'static str, cap: usize },
    #[error("{endpoint} has more than {max} pages; stopped")]
    TooManyPages { endpoint: &'static str, max: usize },
    /// A name or argument we were given cannot be sent (not quoted: it may
    /// come from a request).
    #[error("invalid {what}")]
    InvalidInput { what: &'static str },
    #[error("invalid Procurement API provider id (letters, digits, `.`, `_`, `-`)")]
    InvalidProvider,
    #[error("invalid Procurement API base URL `{0}`")]
    BaseUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

fn detail(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

fn status_name(status: &Option<String>) -> String {
    status
        .as_deref()
        .map(|s| format!(" {s}"))
        .unwrap_or_default()
}

impl ProcurementError {
    /// Worth trying again later (a redelivery, the next reconcile run):
    /// rate limits, Google's 5xx, timeouts, connection failures, a token
    /// endpoint that is down. Not: 4xx answers, decode errors,
    /// configuration.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. }
            | Self::Unavailable { .. }
            | Self::Timeout { .. }
            | Self::Unreachable { .. } => true,
            Self::Credentials(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Procurement API failures: Google's fault or slowness (502/504), a rate
/// limit (503, come back later), a name we were handed that cannot be a
/// resource (400), or our own configuration (500).
impl From<ProcurementError> for crate::web::ApiError {
    fn from(e: ProcurementError) -> Self {
        use crate::web::ApiError;
        use ProcurementError as E;
        use http::StatusCode;
        let message = e.to_string();
        let gateway = |code| ApiError::new(StatusCode::BAD_GATEWAY, code, message.clone());
        match e {
            E::RateLimited { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "gcp_procurement_rate_limited",
                message,
            ),
            E::Timeout { .. } => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "gcp_procurement_timeout",
                message,
            ),
            E::Unavailable { .. } => gateway("gcp_procurement_unavailable"),
            E::Unreachable { .. } => gateway("gcp_procurement_unreachable"),
            E::NotFound { .. } => gateway("gcp_procurement_not_found"),
            E::FailedPrecondition { .. } => gateway("gcp_procurement_precondition_failed"),
            // The service account or provider id: the vendor's setup.
            E::Unauthenticated { .. } | E::PermissionDenied { .. } => {
                gateway("gcp_procurement_refused")
            }
            E::InvalidArgument { .. }
            | E::Status { .. }
            | E::Decode { .. }
            | E::TooLarge { .. }
            | E::TooManyPages { .. } => gateway("gcp_procurement_error"),
            E::InvalidInput { .. } => ApiError::bad_request("gcp_invalid_input", message),
            E::Credentials(e) => e.into(),
            E::InvalidProvider | E::BaseUrl(_) | E::Client(_) => ApiError::internal(message),
        }
    }
}

/// The Procurement API client for one provider. Cheap to clone (one
/// connection pool, one shared token source).
#[derive(Clone)]
pub struct ProcurementClient {
    http: reqwest::Client,
    base: String,
    provider: String,
    tokens: Arc<dyn TokenSource>,
    retry: RetryPolicy,
    max_pages: usize,
}

impl fmt::Debug for ProcurementClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcurementClient")
            .field("base", &self.base)
            .field("provider", &self.provider)
            .field("tokens", &self.tokens)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ProcurementClient {
    /// The client for `TOLLGATE_PROCUREMENT_URL` and `provider` (the
    /// Marketplace provider id, usually the listing's project id).
    pub fn new(
        settings: &Settings,
        provider: &str,
        tokens: Arc<dyn TokenSource>,
    ) -> Result<Self, ProcurementError> {
        Self::with_base_url(&settings.procurement_url, provider, tokens)
    }

    pub fn with_base_url(
        base: &str,
        provider: &str,
        tokens: Arc<dyn TokenSource>,
    ) -> Result<Self, ProcurementError> {
        let base = base_url(base)?;
        let provider = provider.trim();
        if !is_plain_id(provider) {
            return Err(ProcurementError::InvalidProvider);
        }
        let http = crate::https::client_builder()
            .map_err(|e| ProcurementError::Client(e.to_string()))?
            .user_agent(super::credentials::USER_AGENT)
            .connect_timeout(CONNECT_TIMEOUT)
            // Google's APIs do not redirect; not following keeps the bearer
            // token on the host it was meant for.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProcurementError::Client(e.to_string()))?;
        Ok(Self {
            http,
            base,
            provider: provider.to_owned(),
            tokens,
            retry: RetryPolicy::default(),
            max_pages: DEFAULT_MAX_PAGES,
        })
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = RetryPolicy {
            max_attempts: retry.max_attempts.max(1),
            ..retry
        };
        self
    }

    /// Caps how many pages a listing follows (default [`DEFAULT_MAX_PAGES`]).
    pub fn with_max_pages(mut self, max_pages: usize) -> Self {
        self.max_pages = max_pages.max(1);
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// `providers/{provider}/accounts/{id}` from a bare id,
    /// `accounts/{id}` or the full name (of this provider).
    pub fn account_name(&self, account: &str) -> Result<String, ProcurementError> {
        self.resource_name("accounts", "account name", account)
    }

    /// `providers/{provider}/entitlements/{id}` from a bare id or the full
    /// name (of this provider).
    pub fn entitlement_name(&self, entitlement: &str) -> Result<String, ProcurementError> {
        self.resource_name("entitlements", "entitlement name", entitlement)
    }

    fn resource_name(
        &self,
        collection: &str,
        what: &'static str,
        raw: &str,
    ) -> Result<String, ProcurementError> {
        let invalid = ProcurementError::InvalidInput { what };
        let parts: Vec<&str> = raw.trim().split('/').collect();
        let id = match parts.as_slice() {
            [id] => *id,
            [c, id] if *c == collection => *id,
            ["providers", p, c, id] if *p == self.provider && *c == collection => *id,
            _ => return Err(invalid),
        };
        if !is_plain_id(id) {
            return Err(invalid);
        }
        Ok(format!("providers/{}/{collection}/{id}", self.provider))
    }

    fn url(&self, name: &str, verb: Option<&str>) -> String {
        match verb {
            Some(verb) => format!("{}/v1/{name}:{verb}", self.base),
            None => format!("{}/v1/{name}", self.base),
        }
    }
}

/// Ids and provider ids: characters that need no escaping in a path (and
/// no `:`, which would change the method).
fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        && id != "."
        && id != ".."
}

/// Trims the trailing `/` and checks the URL parses (http or https, with a
/// host).
fn base_url(raw: &str) -> Result<String, ProcurementError> {
    let trimmed = raw.trim().trim_end_matches('/');
    match url::Url::parse(trimmed) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.query().is_none() =>
        {
            Ok(trimmed.to_owned())
        }
        _ => Err(ProcurementError::BaseUrl(raw.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marketplace::gcp::credentials::{AccessToken, StaticToken};

    fn client() -> ProcurementClient {
        let tokens = Arc::new(StaticToken(AccessToken::new("t", chrono::Utc::now())));
        ProcurementClient::with_base_url(
            "https://cloudcommerceprocurement.googleapis.com/",
            "DEMO-proj",
            tokens,
        )
        .unwrap()
    }

    #[test]
    fn names_are_built_from_ids_or_full_names_of_this_provider_only() {
        let c = client();
        assert_eq!(
            c.base_url(),
            "https://cloudcommerceprocurement.googleapis.com"
        );
        for ok in [
            "E-1",
            "entitlements/E-1",
            "providers/DEMO-proj/entitlements/E-1",
        ] {
            assert_eq!(
                c.entitlement_name(ok).unwrap(),
                "providers/DEMO-proj/entitlements/E-1"
            );
        }
        assert_eq!(
            c.account_name("accounts/a1").unwrap(),
            "providers/DEMO-proj/accounts/a1"
        );
        for bad in [
            "",
            "providers/other/entitlements/E-1",
            "providers/DEMO-proj/accounts/E-1",
            "E-1:approve",
            "E 1",
            "..",
            "E-1?x=1",
            "a/b/c",
        ] {
            let err = c.entitlement_name(bad).unwrap_err();
            assert!(
                matches!(err, ProcurementError::InvalidInput { .. }),
                "{bad}"
            );
            assert!(bad.is_empty() || !err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn base_urls_and_provider_ids_are_checked() {
        let tokens: Arc<dyn TokenSource> =
            Arc::new(StaticToken(AccessToken::new("t", chrono::Utc::now())));
        assert!(matches!(
            ProcurementClient::with_base_url(
                "cloudcommerceprocurement.googleapis.com",
                "p",
                tokens.clone()
            ),
            Err(ProcurementError::BaseUrl(_))
        ));
        assert!(matches!(
            ProcurementClient::with_base_url("https://x.test", "p/../q", tokens),
            Err(ProcurementError::InvalidProvider)
        ));
    }

    #[test]
    fn errors_map_to_http_answers() {
        use crate::web::ApiError;
        let status = |e: ProcurementError| ApiError::from(e).status.as_u16();
        let ep = "entitlements.get";
        assert_eq!(
            status(ProcurementError::RateLimited {
                endpoint: ep,
                retry_after: None
            }),
            503
        );
        assert_eq!(status(ProcurementError::Timeout { endpoint: ep }), 504);
        assert_eq!(
            status(ProcurementError::Unavailable {
                endpoint: ep,
                status: 500
            }),
            502
        );
        assert_eq!(status(ProcurementError::NotFound { endpoint: ep }), 502);
        assert_eq!(status(ProcurementError::InvalidInput { what: "x" }), 400);
        assert_eq!(status(ProcurementError::InvalidProvider), 500);
        assert_eq!(
            status(ProcurementError::Credentials(CredentialsError::Timeout {
                endpoint: ep
            })),
            504
        );
    }
}
