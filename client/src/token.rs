//! Verifying Tollgate's signed entitlement tokens offline.
//!
//! [`TokenVerifier`] checks a token from `POST /v1/token` against the keys
//! Tollgate publishes at `GET /.well-known/jwks.json`: fetched once, kept
//! for [`TokenOptions::jwks_max_age`] (the JWKS's own `max-age`, so a key
//! removed from it stops verifying within that), and fetched again sooner
//! when a token names a `kid` it does not know (a rotation) — never more
//! than once per [`TokenOptions::jwks_refetch_interval`], so tokens with
//! made-up `kid`s cannot make it hammer Tollgate. A token is
//! accepted only if its header says `alg: EdDSA` (anything else — `none`,
//! `HS256` with the public key as a secret, `RS256` — is refused before a
//! key is looked at), its signature verifies under the key its `kid` names,
//! and `iss`, `aud` and `exp` (with [`TokenOptions::leeway`]) hold.
//!
//! [`EntitlementClient::with_tokens`](crate::EntitlementClient::with_tokens)
//! uses it to answer [`EntitlementClient::decide`](crate::EntitlementClient::decide)
//! from a cached token until it expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use url::Url;

pub use tollgate_core::token::{EntitlementClaims, TokenAnswer};

/// A wall clock, injectable for tests.
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What a token must say, and how the verifier behaves.
#[derive(Clone)]
pub struct TokenOptions {
    issuer: String,
    audience: String,
    leeway: Duration,
    jwks_refetch_interval: Duration,
    jwks_max_age: Duration,
    max_cached: usize,
    clock: WallClock,
}

impl std::fmt::Debug for TokenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenOptions")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("jwks_refetch_interval", &self.jwks_refetch_interval)
            .field("jwks_max_age", &self.jwks_max_age)
            .field("max_cached", &self.max_cached)
            .finish_non_exhaustive()
    }
}

impl Default for TokenOptions {
    /// Tollgate's default `iss` and `aud` (`TOLLGATE_TOKEN_ISSUER`,
    /// `TOLLGATE_TOKEN_AUDIENCE` unset), 5 s leeway, keys kept 300 s and
    /// fetched at most every 30 s, 10 000 cached answers, the system clock.
    fn default() -> Self {
        Self {
            issuer: tollgate_core::token::DEFAULT_ISSUER.to_owned(),
            audience: tollgate_core::token::DEFAULT_AUDIENCE.to_owned(),
            leeway: Duration::from_secs(5),
            jwks_refetch_interval: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(300),
            max_cached: 10_000,
            clock: Arc::new(SystemTime::now),
        }
    }
}

impl TokenOptions {
    /// The `iss` tokens must carry (Tollgate's `TOLLGATE_TOKEN_ISSUER`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The `aud` tokens must carry (Tollgate's `TOLLGATE_TOKEN_AUDIENCE`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// How far past `exp` a token is still accepted, for clocks that
    /// disagree a little. Cached answers are dropped at `exp` itself.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The least time between two JWKS fetches caused by unknown `kid`s.
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// How long fetched keys are trusted before they are fetched again.
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    /// How many answers the client keeps (one per distinct question).
    pub fn max_cached(mut self, n: usize) -> Self {
        self.max_cached = n;
        self
    }

    /// The wall clock `exp` is judged by (tests move it).
    pub fn clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    /// Now, in unix seconds.
    pub(crate) fn now(&self) -> i64 {
        match (self.clock)().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }

    pub(crate) fn max_cached_answers(&self) -> usize {
        self.max_cached
    }
}

/// Why a token was not accepted. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("not a JWT")]
    Malformed,
    /// The header names another algorithm than EdDSA (`none`, `HS256`, ...).
    #[error("token algorithm {0} is not accepted (only EdDSA)")]
    WrongAlgorithm(String),
    #[error("the token names no key (`kid`)")]
    MissingKid,
    /// The `kid` is not among Tollgate's published keys, even after a fetch
    /// (or a fetch was not allowed yet).
    #[error("the token's key is not published by Tollgate")]
    UnknownKey,
    #[error("cannot read Tollgate's keys: {0}")]
    JwksUnavailable(String),
    /// Bad signature, wrong `iss` or `aud`, a claim missing or malformed.
    #[error("the token does not verify: {0}")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    #[error("the token expired")]
    Expired,
    /// The claims answer another question (customer, product, feature, user).
    #[error("the token answers another question")]
    OtherQuestion,
    /// The claims do not grant access (Tollgate signs no denials).
    #[error("the token grants nothing")]
    NotAllowed,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    /// When `keys` were fetched (unix seconds).
    fetched_at: Option<i64>,
    /// When the keys were last asked for (unix seconds), successful or not.
    last_fetch: Option<i64>,
}

/// Verifies tokens against one Tollgate deployment's JWKS. Cheap to clone.
#[derive(Clone)]
pub struct TokenVerifier {
    http: reqwest::Client,
    jwks_url: Url,
    options: TokenOptions,
    keys: Arc<Mutex<KeyCache>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("jwks_url", &self.jwks_url.as_str())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct JwksDoc {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct OkpKey {
    kty: String,
    crv: String,
    x: String,
    kid: String,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
}

impl TokenVerifier {
    /// Keys from `jwks_url` (Tollgate's `/.well-known/jwks.json`), fetched with `http`.
    pub fn new(http: reqwest::Client, jwks_url: Url, options: TokenOptions) -> Self {
        Self {
            http,
            jwks_url,
            options,
            keys: Arc::default(),
        }
    }

    pub fn options(&self) -> &TokenOptions {
        &self.options
    }

    /// The claims of `token` if Tollgate signed it, for this issuer and
    /// audience, and it has not expired.
    pub async fn verify(&self, token: &str) -> Result<EntitlementClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::WrongAlgorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(TokenError::MissingKid)?;
        let key = self.key(&kid).await?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[&self.options.issuer]);
        v.set_audience(&[&self.options.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // `exp` is judged below, on the injected clock.
        v.validate_exp = false;
        let data = jsonwebtoken::decode::<EntitlementClaims>(token, &key, &v)
            .map_err(TokenError::Invalid)?;
        let leeway = i64::try_from(self.options.leeway.as_secs()).unwrap_or(i64::MAX);
        if self.options.now() >= data.claims.exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
    }

    /// The key named `kid`: from the kept keys while they are younger than
    /// the maximum age, else (or when `kid` is unknown) from a fresh fetch,
    /// if the last one is old enough.
    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let now = self.options.now();
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        {
            let mut cache = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            let max_age = secs(self.options.jwks_max_age);
            let fresh = cache
                .fetched_at
                .is_some_and(|at| now < at.saturating_add(max_age));
            if let (true, Some(key)) = (fresh, cache.keys.get(kid)) {
                return Ok(key.clone());
            }
            let interval = secs(self.options.jwks_refetch_interval);
            if cache
                .last_fetch
                .is_some_and(|at| now < at.saturating_add(interval))
            {
                return Err(if fresh {
                    TokenError::UnknownKey
                } else {
                    TokenError::JwksUnavailable("the keys expired; fetching again later".into())
                });
            }
            // Claimed before fetching, so concurrent misses fetch once.
            cache.last_fetch = Some(now);
        }
        let keys = self.fetch().await?;
        let mut cache = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        cache.keys = keys;
        cache.fetched_at = Some(now);
        cache.keys.get(kid).cloned().ok_or(TokenError::UnknownKey)
    }

    /// The Ed25519 signing keys of the JWKS; anything else in it is ignored.
    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, TokenError> {
        let unavailable = |e: &dyn std::fmt::Display| TokenError::JwksUnavailable(e.to_string());
        let res = self
            .http
            .get(self.jwks_url.clone())
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        if !res.status().is_success() {
            return Err(unavailable(&res.status()));
        }
        let doc: JwksDoc = res.json().await.map_err(|e| unavailable(&e))?;
        let mut keys = HashMap::new();
        for key in doc.keys {
            let Ok(k) = serde_json::from_value::<OkpKey>(key) else {
                continue;
            };
            let usable = k.kty == "OKP"
                && k.crv == "Ed25519"
                && k.alg.as_deref().is_none_or(|a| a == "EdDSA")
                && k.use_.as_deref().is_none_or(|u| u == "sig");
            if let (true, Ok(decoding)) = (usable, DecodingKey::from_ed_components(&k.x)) {
                keys.insert(k.kid, decoding);
            }
        }
        Ok(keys)
    }
}
