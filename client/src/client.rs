//! The HTTP client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::token::{TokenAnswer, TokenError, TokenOptions, TokenVerifier};
use crate::{
    AppUser, CheckRequest, CustomerKey, CustomerRef, CustomerView, Decision, Marketplace, Reason,
    SeatClaimed, SeatList, SeatReleased, SeatRequest, SubscriptionKey,
};

/// Default per-request timeout: a check is one store read, so anything
/// slower is an outage, and the app should fail closed quickly.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid Tollgate base URL `{url}`: {message}")]
    InvalidBaseUrl { url: String, message: String },
    #[error("the API key contains characters not allowed in an HTTP header")]
    InvalidApiKey,
    /// An API key would travel in clear text: `http://` is only accepted
    /// for loopback hosts (a local `tollgate dev`).
    #[error("refusing to send an API key over plain http to `{host}`: use https")]
    InsecureTransport { host: String },
    /// Connection refused, timeout, TLS failure, ...
    #[error("cannot reach Tollgate: {0}")]
    Transport(#[source] reqwest::Error),
    /// Tollgate answered with an error (`{"error":{"code","message"}}`), e.g.
    /// 401 `invalid_api_key`, 403 `insufficient_scope`, 400 `invalid_request`.
    #[error("Tollgate answered {status} {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// A reply that is not the documented JSON (a proxy's HTML page, ...).
    #[error("unexpected reply from Tollgate ({status}): {detail}")]
    UnexpectedResponse { status: StatusCode, detail: String },
    /// A token from `POST /v1/token` was not accepted.
    #[error("the entitlement token was refused: {0}")]
    Token(#[from] TokenError),
}

impl ClientError {
    /// The API's error code, for [`ClientError::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } | ClientError::UnexpectedResponse { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// What a seat claim came to. A refusal is an answer, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatClaim {
    /// The user holds a seat (maybe already did: see `already_held`).
    Held(SeatClaimed),
    /// Refused: `seat_limit_reached`, or why the subscription is not entitled.
    Refused { reason: Reason, message: String },
}

/// An `http`/`https` base URL without its trailing slash (paths are
/// appended as segments).
fn parse_base(base_url: &str) -> Result<Url, ClientError> {
    let invalid = |message: String| ClientError::InvalidBaseUrl {
        url: base_url.to_owned(),
        message,
    };
    let mut base = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(invalid("expected an http or https URL".into()));
    }
    if base.cannot_be_a_base() {
        return Err(invalid("not a base URL".into()));
    }
    let trimmed = base.path().trim_end_matches('/').to_owned();
    base.set_path(&trimmed);
    Ok(base)
}

/// Whether the URL's host is this machine: the one place a key may travel
/// over plain http.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A client of one entitlement-check deployment. Cheap to clone (it shares
/// its connection pool).
#[derive(Debug, Clone)]
pub struct EntitlementClient {
    http: reqwest::Client,
    base: Url,
    /// Set by [`EntitlementClient::with_tokens`].
    tokens: Option<Arc<Tokens>>,
}

/// Verified answers, kept until their token expires.
#[derive(Debug)]
struct Tokens {
    verifier: TokenVerifier,
    /// By question (its JSON): the decision, the token's `exp`, and its
    /// `sub` (so [`EntitlementClient::forget`] finds a subject's answers).
    cache: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug)]
struct Cached {
    decision: Decision,
    exp: i64,
    sub: String,
}

impl Tokens {
    fn cached(&self, question: &str) -> Option<Decision> {
        let now = self.verifier.options().now();
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(question)
            .filter(|c| now < c.exp)
            .map(|c| c.decision.clone())
    }

    fn keep(&self, question: String, cached: Cached) {
        let options = self.verifier.options();
        let (now, max) = (options.now(), options.max_cached_answers());
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= max {
            cache.retain(|_, c| now < c.exp);
        }
        if cache.len() >= max {
            // Still full of live answers: forget one; it is asked again.
            if let Some(any) = cache.keys().next().cloned() {
                cache.remove(&any);
            }
        }
        if max > 0 {
            cache.insert(question, cached);
        }
    }
}

impl EntitlementClient {
    /// `base_url` like `https://abc.lambda-url.us-east-1.on.aws` or
    /// `http://127.0.0.1:9104`; `api_key` as printed by `tollgate api-key new`.
    ///
    /// With a key, the URL must be `https`, or `http` to a loopback host
    /// (`127.0.0.0/8`, `::1`, `localhost`): a bearer key sent in clear text
    /// is a key given away.
    pub fn new(base_url: &str, api_key: Option<&str>) -> Result<Self, ClientError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = api_key {
            let base = parse_base(base_url)?;
            if base.scheme() == "http" && !is_loopback(&base) {
                return Err(ClientError::InsecureTransport {
                    host: base.host_str().unwrap_or_default().to_owned(),
                });
            }
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ClientError::InvalidApiKey)?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(DEFAULT_TIMEOUT)
            .build()
            .map_err(ClientError::Transport)?;
        Self::with_http_client(base_url, http)
    }

    /// Uses a caller-built `reqwest::Client` (its own timeouts, default
    /// headers carrying the key, a proxy, ...).
    /// The caller's client carries its own key, so the plain-http check of
    /// [`EntitlementClient::new`] is the caller's to make.
    pub fn with_http_client(base_url: &str, http: reqwest::Client) -> Result<Self, ClientError> {
        let base = parse_base(base_url)?;
        Ok(Self {
            http,
            base,
            tokens: None,
        })
    }

    /// Answers [`Self::decide`] from signed tokens (`POST /v1/token`),
    /// verified here against Tollgate's published keys and kept until they
    /// expire, so a repeated question costs no network call. Whenever no
    /// valid token can be had (Tollgate signs none, a token does not
    /// verify, the keys cannot be read) `decide` asks `POST /v1/check`.
    pub fn with_tokens(mut self, options: TokenOptions) -> Self {
        let jwks = self.url(&[".well-known", "jwks.json"]);
        self.tokens = Some(Arc::new(Tokens {
            verifier: TokenVerifier::new(self.http.clone(), jwks, options),
            cache: Mutex::default(),
        }));
        self
    }

    /// Drops every cached answer about `subject` (a customer, or an app
    /// user), so the next question about it asks Tollgate again: call it
    /// when a change notification names the customer. Answers for app users
    /// linked to that customer are not found this way; [`Self::forget_all`]
    /// drops everything.
    pub fn forget(&self, subject: &CustomerRef) {
        if let Some(tokens) = &self.tokens {
            let sub = tollgate_core::token::subject_claim(subject);
            let mut cache = tokens.cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache.retain(|_, c| c.sub != sub);
        }
    }

    /// Drops every cached answer.
    pub fn forget_all(&self) {
        if let Some(tokens) = &self.tokens {
            let mut cache = tokens.cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache.clear();
        }
    }

    /// The verifier [`Self::with_tokens`] set up, to check tokens that
    /// reach the app by other ways (another service forwarding one).
    pub fn token_verifier(&self) -> Option<&TokenVerifier> {
        self.tokens.as_deref().map(|t| &t.verifier)
    }

    /// May this customer (and user) use this product/feature now? Without
    /// [`Self::with_tokens`], exactly [`Self::check`]. With it: a cached,
    /// verified token's decision while it lives; else a fresh token's, once
    /// it verifies and answers this very question; else [`Self::check`]
    /// (unless Tollgate could not be reached at all: that error is returned
    /// at once). Denials are never cached (Tollgate signs none): a customer
    /// who buys is let in at the next request.
    pub async fn decide(&self, request: &CheckRequest) -> Result<Decision, ClientError> {
        let Some(tokens) = &self.tokens else {
            return self.check(request).await;
        };
        let Ok(question) = serde_json::to_string(request) else {
            return self.check(request).await;
        };
        if let Some(decision) = tokens.cached(&question) {
            return Ok(decision);
        }
        match self.verified_token(tokens, request).await {
            Ok(Verified::Allowed { decision, exp, sub }) => {
                let cached = Cached {
                    decision: decision.clone(),
                    exp,
                    sub,
                };
                tokens.keep(question, cached);
                Ok(decision)
            }
            Ok(Verified::Denied(decision)) => Ok(decision),
            // Tollgate unreachable: `/v1/check` would wait out the same
            // timeout again; fail now (closed).
            Err(e @ ClientError::Transport(_)) => Err(e),
            Err(_) => self.check(request).await,
        }
    }

    /// A fresh token for `request`, verified.
    async fn verified_token(
        &self,
        tokens: &Tokens,
        request: &CheckRequest,
    ) -> Result<Verified, ClientError> {
        let answer = self.token(request).await?;
        let Some(token) = answer.token else {
            if answer.decision.allowed {
                return Err(TokenError::Malformed.into());
            }
            return Ok(Verified::Denied(answer.decision));
        };
        let claims = tokens.verifier.verify(&token).await?;
        if !claims.answers(request) {
            return Err(TokenError::OtherQuestion.into());
        }
        if !claims.decision.allowed {
            return Err(TokenError::NotAllowed.into());
        }
        Ok(Verified::Allowed {
            decision: claims.decision,
            exp: claims.exp,
            sub: claims.sub,
        })
    }

    /// `POST /v1/token`: the decision and, when it allows, a signed token
    /// (not verified here; [`TokenVerifier::verify`] does that).
    pub async fn token(&self, request: &CheckRequest) -> Result<TokenAnswer, ClientError> {
        let res = self
            .http
            .post(self.url(&["v1", "token"]))
            .json(request)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        read(res).await
    }

    /// `POST /v1/check`: may this customer (and user) use this product/feature now?
    ///
    /// A denial is an `Ok` [`Decision`] with `allowed: false` and its
    /// [`Reason`]. A product or feature that the deployment's `tollgate.toml`
    /// does not define is such a denial too, with [`Reason::UnknownProduct`]
    /// or [`Reason::UnknownFeature`] ([`Reason::is_undefined_name`]): a bug
    /// in the question, not the customer's state. A reason newer than this
    /// version reads as [`Reason::Unrecognized`], also a denial.
    pub async fn check(&self, request: &CheckRequest) -> Result<Decision, ClientError> {
        let res = self
            .http
            .post(self.url(&["v1", "check"]))
            .json(request)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        read(res).await
    }

    /// `GET /v1/customers/{marketplace}/{id}`: the customer's subscriptions.
    pub async fn customer(
        &self,
        marketplace: Marketplace,
        id: &str,
    ) -> Result<CustomerView, ClientError> {
        let url = self.url(&["v1", "customers", marketplace.as_str(), id]);
        let res = self
            .http
            .get(url)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        read(res).await
    }

    /// `POST /v1/seats/claim`: give `user` a seat (idempotent per user). A
    /// refusal (409) is [`SeatClaim::Refused`] with its reason; a 409 code
    /// that is no [`Reason`] this version knows stays a [`ClientError::Api`].
    pub async fn claim_seat(
        &self,
        subscription: &SubscriptionKey,
        user: &str,
    ) -> Result<SeatClaim, ClientError> {
        let res = self.seat_call("claim", subscription, user).await?;
        if res.status() == StatusCode::CONFLICT {
            return match read::<serde_json::Value>(res).await {
                Err(ClientError::Api {
                    status,
                    code,
                    message,
                    request_id,
                }) => match Reason::ALL.into_iter().find(|r| r.as_str() == code) {
                    Some(reason) => Ok(SeatClaim::Refused { reason, message }),
                    None => Err(ClientError::Api {
                        status,
                        code,
                        message,
                        request_id,
                    }),
                },
                Err(e) => Err(e),
                Ok(v) => Err(ClientError::UnexpectedResponse {
                    status: StatusCode::CONFLICT,
                    detail: format!("409 without an error body: {v}"),
                }),
            };
        }
        read(res).await.map(SeatClaim::Held)
    }

    /// `POST /v1/seats/release`: `Ok(false)` if the user held no seat.
    pub async fn release_seat(
        &self,
        subscription: &SubscriptionKey,
        user: &str,
    ) -> Result<bool, ClientError> {
        let res = self.seat_call("release", subscription, user).await?;
        read::<SeatReleased>(res).await.map(|r| r.released)
    }

    /// `GET /v1/seats/{marketplace}/{subscription_id}`: who holds the seats.
    pub async fn seats(&self, subscription: &SubscriptionKey) -> Result<SeatList, ClientError> {
        let url = self.url(&[
            "v1",
            "seats",
            subscription.marketplace.as_str(),
            &subscription.id,
        ]);
        let res = self
            .http
            .get(url)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        read(res).await
    }

    /// `DELETE /v1/links/{app_user}/{marketplace}/{customer_id}`: stop
    /// `app_user` being entitled through `customer` (scope `seats`).
    /// `Ok(true)` when a link was removed, `Ok(false)` when there was none
    /// (never linked, already removed, or expired) — like
    /// [`Self::release_seat`], removing what is not there is not an error.
    pub async fn remove_link(
        &self,
        app_user: &AppUser,
        customer: &CustomerKey,
    ) -> Result<bool, ClientError> {
        let url = self.url(&[
            "v1",
            "links",
            &app_user.0,
            customer.marketplace.as_str(),
            &customer.id,
        ]);
        let res = self
            .http
            .delete(url)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        match res.status() {
            StatusCode::NO_CONTENT => Ok(true),
            status => match read::<serde_json::Value>(res).await {
                Err(ClientError::Api { code, .. })
                    if status == StatusCode::NOT_FOUND && code == "not_found" =>
                {
                    Ok(false)
                }
                Err(e) => Err(e),
                Ok(v) => Err(ClientError::UnexpectedResponse {
                    status,
                    detail: format!("expected 204 or 404, got a body: {v}"),
                }),
            },
        }
    }

    async fn seat_call(
        &self,
        action: &str,
        subscription: &SubscriptionKey,
        user: &str,
    ) -> Result<reqwest::Response, ClientError> {
        self.http
            .post(self.url(&["v1", "seats", action]))
            .json(&SeatRequest::new(subscription.clone(), user))
            .send()
            .await
            .map_err(ClientError::Transport)
    }

    /// The base URL with `segments` appended, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }
}

/// What a fresh token came to.
enum Verified {
    Allowed {
        decision: Decision,
        exp: i64,
        sub: String,
    },
    Denied(Decision),
}

/// A 2xx body as `T`; anything else as a typed error.
async fn read<T: DeserializeOwned>(res: reqwest::Response) -> Result<T, ClientError> {
    let status = res.status();
    let bytes = res.bytes().await.map_err(ClientError::Transport)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| ClientError::UnexpectedResponse {
            status,
            detail: format!("undocumented JSON: {e}"),
        });
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorDetail,
    }
    #[derive(Deserialize)]
    struct ErrorDetail {
        code: String,
        message: String,
        #[serde(default)]
        request_id: Option<String>,
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(ErrorBody { error }) => Err(ClientError::Api {
            status,
            code: error.code,
            message: error.message,
            request_id: error.request_id,
        }),
        Err(_) => Err(ClientError::UnexpectedResponse {
            status,
            detail: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_a_base_path_and_encode_segments() {
        let c = EntitlementClient::new("https://example.com/tollgate/", None).unwrap();
        assert_eq!(
            c.url(&["v1", "customers", "gcp", "a/b c"]).as_str(),
            "https://example.com/tollgate/v1/customers/gcp/a%2Fb%20c"
        );
        let c = EntitlementClient::new("http://127.0.0.1:9104", None).unwrap();
        assert_eq!(
            c.url(&["v1", "check"]).as_str(),
            "http://127.0.0.1:9104/v1/check"
        );
        // An app user's `:` stays (legal in a segment); `/` and `%` do not.
        assert_eq!(
            c.url(&["v1", "links", "google:a/b%c", "gcp", "acct"])
                .as_str(),
            "http://127.0.0.1:9104/v1/links/google:a%2Fb%25c/gcp/acct"
        );
    }

    #[test]
    fn a_key_goes_over_plain_http_only_to_this_machine() {
        for url in [
            "http://tollgate.internal",
            "http://10.0.0.7:9104",
            "http://localhost.example.com",
            "http://[2001:db8::1]",
        ] {
            assert!(
                matches!(
                    EntitlementClient::new(url, Some("tgk_key")),
                    Err(ClientError::InsecureTransport { .. })
                ),
                "{url}"
            );
            // Without a key there is nothing to give away.
            assert!(EntitlementClient::new(url, None).is_ok(), "{url}");
        }
        for url in [
            "https://tollgate.example.com",
            "http://127.0.0.1:9104",
            "http://127.8.9.10",
            "http://[::1]:9104",
            "http://LOCALHOST:9104",
        ] {
            assert!(
                EntitlementClient::new(url, Some("tgk_key")).is_ok(),
                "{url}"
            );
        }
    }

    #[test]
    fn the_token_cache_drops_answers_at_exp_and_stays_bounded() {
        use std::time::UNIX_EPOCH;
        let at = Arc::new(Mutex::new(1_000u64));
        let clock = Arc::clone(&at);
        let options = TokenOptions::default()
            .max_cached(2)
            .clock(Arc::new(move || {
                UNIX_EPOCH + Duration::from_secs(*clock.lock().unwrap())
            }));
        let c = EntitlementClient::new("http://127.0.0.1:9", None)
            .unwrap()
            .with_tokens(options);
        let t = c.tokens.as_deref().unwrap();
        let d: Decision = serde_json::from_value(serde_json::json!({
            "allowed": true, "reason": "ok", "subscription": null, "status": null,
            "plan": null, "tier": "team", "features": [], "trial_days_left": null,
            "access_until": null, "seats": null
        }))
        .unwrap();
        let keep = |q: &str, sub: &str, exp: i64| {
            t.keep(
                q.into(),
                Cached {
                    decision: d.clone(),
                    exp,
                    sub: sub.into(),
                },
            )
        };
        keep("a", "customer:github:1", 1_010);
        keep("b", "customer:github:1", 1_100);
        assert_eq!(t.cached("a"), Some(d.clone()));
        *at.lock().unwrap() = 1_010;
        assert_eq!(t.cached("a"), None, "dropped at exp");
        // Full: the expired answer goes first.
        keep("c", "customer:github:2", 1_100);
        assert!(t.cached("b").is_some() && t.cached("c").is_some());
        // Full of live answers: one goes, the cache never grows past its bound.
        keep("d", "customer:github:2", 1_100);
        assert_eq!(t.cache.lock().unwrap().len(), 2);
        assert!(t.cached("d").is_some());
        c.forget_all();
        assert!(t.cached("d").is_none());
        // A change notification for customer 2 drops its answers only.
        keep("d", "customer:github:2", 1_100);
        keep("e", "customer:github:3", 1_100);
        c.forget(&CustomerRef::customer(Marketplace::Github, "2"));
        assert!(t.cached("d").is_none());
        assert!(t.cached("e").is_some());
    }

    #[test]
    fn bad_base_urls_and_keys_are_refused() {
        assert!(matches!(
            EntitlementClient::new("ftp://x", None),
            Err(ClientError::InvalidBaseUrl { .. })
        ));
        assert!(matches!(
            EntitlementClient::new("not a url", None),
            Err(ClientError::InvalidBaseUrl { .. })
        ));
        assert!(matches!(
            EntitlementClient::new("https://x", Some("bad\nkey")),
            Err(ClientError::InvalidApiKey)
        ));
    }
}
