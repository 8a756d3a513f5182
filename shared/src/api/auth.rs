//! Who may call the entitlement-check API.
//!
//! 1. **IAM.** In AWS the function URL uses `AWS_IAM` auth: AWS verifies the
//!    caller's SigV4 signature before the function runs and puts the caller
//!    in the request context. No header can forge the context: it exists
//!    only on Lambda events. What is (and is not) trusted about an event,
//!    and the optional allow-list of principals and their scopes
//!    (`TOLLGATE_IAM_PRINCIPALS`; unset: every scope): [`iam`].
//! 2. **API keys** for apps outside AWS, sent as `Authorization: Bearer <key>`
//!    or `x-api-key: <key>`. Keys are stored hashed, one secret per key:
//!
//!    ```text
//!    "api_key.<name>": "sha256:<64 lowercase hex of SHA-256(key)>:<scopes>[:expires=<RFC 3339>]"
//!    ```
//!
//!    `<name>` is `[A-Za-z0-9_-]{1,64}`, `<scopes>` a comma-separated subset
//!    of `check` (`POST /v1/check`, `GET /v1/customers/...`) and `seats`
//!    (the `/v1/seats/...` routes, and `claim_seat` in a check); past
//!    `expires` the key is refused with 401 `expired_api_key`. A key is
//!    `tgk_` followed by 43 base64url characters (32 random bytes); a plain
//!    SHA-256 suffices because the key has 256 bits of entropy, so there is
//!    nothing to brute-force. Anything presented that is not exactly that
//!    shape is refused (401 `invalid_api_key`) before it is hashed or the
//!    key list consulted. `tollgate api-key new <name> --scopes check,seats
//!    [--expires-in 90d]` prints a new key once and the entry to store. The
//!    list is re-read while the function is warm, so deleting an entry
//!    revokes its key within a bounded time: [`keyring`].
//! 3. **Neither** (no IAM context, no keys configured): refused with 401,
//!    unless `TOLLGATE_ALLOW_UNAUTHENTICATED=1` is set (`make dev` sets it).
//!    The flag is ignored inside Lambda, and whenever API keys are configured.
//!
//! How the URL is deployed (`TOLLGATE_CHECK_AUTH`, [`CheckAuth`]) decides
//! which of these a request may use: an `AWS_IAM` URL only lets IAM callers
//! through, a `NONE` URL never carries an IAM caller.

pub mod iam;
pub mod keyring;

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;
use crate::settings::SetupError;
use crate::web::{ApiError, Request};

use self::iam::IamPrincipals;
use self::keyring::{KeyRing, KeySource, KeysUnavailable, RefreshPolicy};
use super::Rejection;

/// Secrets whose names start with this hold API key entries.
pub const SECRET_PREFIX: &str = "api_key.";
/// Every generated key starts with this, so secret scanners can spot leaks.
pub const KEY_PREFIX: &str = "tgk_";
/// Base64url characters after the prefix: 32 bytes, unpadded.
pub const KEY_BODY_CHARS: usize = 43;
/// The environment variable that allows unauthenticated calls in development.
pub const ALLOW_UNAUTHENTICATED_ENV: &str = "TOLLGATE_ALLOW_UNAUTHENTICATED";

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Entitlement checks and customer lookups.
    Check,
    /// Seat claims, releases and listings.
    Seats,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Check, Scope::Seats];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Check => "check",
            Scope::Seats => "seats",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes {
    check: bool,
    seats: bool,
}

impl Scopes {
    pub const ALL: Scopes = Scopes {
        check: true,
        seats: true,
    };

    pub fn contains(self, scope: Scope) -> bool {
        match scope {
            Scope::Check => self.check,
            Scope::Seats => self.seats,
        }
    }

    fn insert(&mut self, scope: Scope) {
        match scope {
            Scope::Check => self.check = true,
            Scope::Seats => self.seats = true,
        }
    }

    /// Parses `check,seats` (order and spaces don't matter; at least one).
    pub fn parse(text: &str) -> Result<Self, ApiKeyError> {
        let mut scopes = Scopes::default();
        for word in text.split(',').map(str::trim) {
            let scope = Scope::ALL
                .into_iter()
                .find(|s| s.as_str() == word)
                .ok_or_else(|| ApiKeyError::UnknownScope(word.to_owned()))?;
            scopes.insert(scope);
        }
        Ok(scopes)
    }
}

impl fmt::Display for Scopes {
    /// `check,seats`: the form stored in the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Scope::as_str)
            .collect();
        f.write_str(&names.join(","))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API key name `{0}`: use 1 to 64 of A-Z a-z 0-9 _ -")]
    InvalidName(String),
    #[error("unknown scope `{0}` (expected check or seats)")]
    UnknownScope(String),
    #[error(
        "expected `sha256:<64 hex digits>:<scopes>[:expires=<RFC 3339>]`, e.g. `sha256:9f86…:check,seats`"
    )]
    InvalidEntry,
    #[error("`expires=` takes an RFC 3339 instant such as 2027-01-31T00:00:00Z")]
    InvalidExpiry,
    #[error("duration `{0}`: expected a positive number with s, m, h, d or w, e.g. 90d")]
    InvalidDuration(String),
    #[error("the operating system gave no random bytes: {0}")]
    NoRandomness(String),
}

/// One configured API key: its name, the SHA-256 of the key, its scopes
/// and, optionally, when it stops working.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyEntry {
    pub name: String,
    sha256: [u8; 32],
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for ApiKeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyEntry")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl ApiKeyEntry {
    /// Parses the value of secret `api_key.<name>`.
    pub fn parse(name: &str, value: &str) -> Result<Self, ApiKeyError> {
        let name = valid_name(name)?;
        let rest = value
            .trim()
            .strip_prefix("sha256:")
            .ok_or(ApiKeyError::InvalidEntry)?;
        // At most three fields: an RFC 3339 instant has colons of its own.
        let mut fields = rest.splitn(3, ':');
        let (Some(hash), Some(scopes)) = (fields.next(), fields.next()) else {
            return Err(ApiKeyError::InvalidEntry);
        };
        let expires_at = match fields.next() {
            None => None,
            Some(attr) => {
                let at = attr
                    .strip_prefix("expires=")
                    .ok_or(ApiKeyError::InvalidEntry)?;
                let at =
                    DateTime::parse_from_rfc3339(at).map_err(|_| ApiKeyError::InvalidExpiry)?;
                Some(at.with_timezone(&Utc))
            }
        };
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(hash, &mut sha256).map_err(|_| ApiKeyError::InvalidEntry)?;
        Ok(Self {
            name,
            sha256,
            scopes: Scopes::parse(scopes)?,
            expires_at,
        })
    }

    /// The same entry, ending at `at` (or never).
    pub fn with_expiry(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.expires_at = at;
        self
    }

    /// The secret's name: `api_key.<name>`.
    pub fn secret_name(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.name)
    }

    /// The secret's value: `sha256:<hex>:<scopes>[:expires=<RFC 3339>]`.
    pub fn secret_value(&self) -> String {
        let mut value = format!("sha256:{}:{}", hex::encode(self.sha256), self.scopes);
        if let Some(at) = self.expires_at {
            value.push_str(":expires=");
            value.push_str(&at.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        value
    }

    fn matches(&self, digest: &[u8; 32]) -> subtle::Choice {
        self.sha256.ct_eq(digest)
    }
}

fn valid_name(name: &str) -> Result<String, ApiKeyError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(ApiKeyError::InvalidName(name.to_owned()))
    }
}

/// Whether `presented` has exactly the shape [`generate`] gives keys:
/// `tgk_` and 43 base64url characters that decode to 32 bytes (the last
/// character's two spare bits zero). Anything else cannot be a key, so it
/// is refused without hashing it or reading the key list.
pub fn is_key_format(presented: &str) -> bool {
    let Some(body) = presented.strip_prefix(KEY_PREFIX) else {
        return false;
    };
    body.len() == KEY_BODY_CHARS
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD
            .decode(body)
            .is_ok_and(|bytes| bytes.len() == 32)
}

/// `90d`, `12h`, `30m`, `45s`, `2w`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, ApiKeyError> {
    let bad = || ApiKeyError::InvalidDuration(text.to_owned());
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit_secs: i64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    let secs = n
        .checked_mul(unit_secs)
        .filter(|s| *s > 0)
        .ok_or_else(bad)?;
    Duration::try_seconds(secs).ok_or_else(bad)
}

/// A freshly generated key: show `key` once, store `entry`.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key: Secret,
    pub entry: ApiKeyEntry,
}

/// Generates a key from 32 bytes of OS randomness (never a weaker fallback).
pub fn generate(name: &str, scopes: Scopes) -> Result<NewApiKey, ApiKeyError> {
    let name = valid_name(name)?;
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| ApiKeyError::NoRandomness(e.to_string()))?;
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    let entry = ApiKeyEntry {
        name,
        sha256: Sha256::digest(key.as_bytes()).into(),
        scopes,
        expires_at: None,
    };
    Ok(NewApiKey {
        key: Secret::new(key),
        entry,
    })
}

/// Every `api_key.<name>` secret as an entry; a malformed one is an error
/// naming the secret (never its value).
pub fn api_key_entries<'a>(
    secrets: impl IntoIterator<Item = (&'a str, &'a Secret)>,
) -> Result<Vec<ApiKeyEntry>, SetupError> {
    let mut keys = Vec::new();
    for (secret_name, value) in secrets {
        let Some(name) = secret_name.strip_prefix(SECRET_PREFIX) else {
            continue;
        };
        let entry = ApiKeyEntry::parse(name, value.expose())
            .map_err(|e| SetupError::Invalid(format!("secret `{secret_name}`: {e}")))?;
        keys.push(entry);
    }
    Ok(keys)
}

/// How entitlement-check's function URL is deployed (`TOLLGATE_CHECK_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckAuth {
    /// Unset: a local run (dev server, tests); IAM contexts and keys both
    /// accepted, as before the mode existed.
    #[default]
    Local,
    /// `aws_iam`: only requests that passed the URL's IAM auth exist; API
    /// keys are never consulted.
    AwsIam,
    /// `api_key`: a public URL; an event naming an IAM caller cannot have
    /// come through it.
    ApiKey,
}

impl CheckAuth {
    pub fn from_setting(value: Option<&str>) -> Result<Self, SetupError> {
        match value {
            None => Ok(Self::Local),
            Some("aws_iam") => Ok(Self::AwsIam),
            Some("api_key") => Ok(Self::ApiKey),
            Some(other) => Err(SetupError::Invalid(format!(
                "TOLLGATE_CHECK_AUTH `{other}`: expected `aws_iam` or `api_key`"
            ))),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A SigV4-signed request through an `AWS_IAM` function URL.
    Iam { caller_arn: Option<String> },
    /// An app holding the named API key.
    ApiKey { name: String },
    /// Development only: `TOLLGATE_ALLOW_UNAUTHENTICATED=1`, no keys configured.
    Unauthenticated,
}

/// An authenticated caller and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub scopes: Scopes,
}

impl Caller {
    /// 403 `insufficient_scope` unless the caller has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), Rejection> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(Rejection::InsufficientScope(scope))
        }
    }
}

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 401 or 403, with the rejection's code.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// 503 `api_keys_unavailable`: the key list is too old to trust.
    #[error(transparent)]
    KeysUnavailable(#[from] KeysUnavailable),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Rejected(r) => r.into(),
            AuthError::KeysUnavailable(k) => k.into(),
        }
    }
}

/// Decides who a request comes from; built once at cold start.
#[derive(Debug, Clone)]
pub struct Authenticator {
    keys: Arc<KeyRing>,
    allow_unauthenticated: bool,
    mode: CheckAuth,
    iam_principals: Option<IamPrincipals>,
    /// This function's region (`AWS_REGION`), compared with the URL host.
    region: Option<String>,
}

impl Authenticator {
    /// Fixed keys, local mode, no IAM allow-list. `allow_unauthenticated`
    /// takes effect only while there are no keys.
    pub fn new(keys: Vec<ApiKeyEntry>, allow_unauthenticated: bool) -> Self {
        Self {
            keys: Arc::new(KeyRing::fixed(keys)),
            allow_unauthenticated,
            mode: CheckAuth::Local,
            iam_principals: None,
            region: None,
        }
    }

    /// Every `api_key.<name>` secret; a malformed one fails the cold start
    /// with its name (never its value).
    pub fn from_secrets<'a>(
        secrets: impl IntoIterator<Item = (&'a str, &'a Secret)>,
        allow_unauthenticated: bool,
    ) -> Result<Self, SetupError> {
        Ok(Self::new(api_key_entries(secrets)?, allow_unauthenticated))
    }

    /// Keeps the current keys (read at `loaded_at`) and reads them again
    /// from `source` as `policy` says ([`keyring`]).
    pub fn refreshing_from(
        mut self,
        source: Arc<dyn KeySource>,
        loaded_at: DateTime<Utc>,
        policy: RefreshPolicy,
    ) -> Self {
        let keys = self.keys.peek().to_vec();
        self.keys = Arc::new(KeyRing::refreshing(keys, loaded_at, source, policy));
        self
    }

    /// How the URL is deployed; the region the function runs in, if known.
    pub fn with_mode(mut self, mode: CheckAuth, region: Option<String>) -> Self {
        self.mode = mode;
        self.region = region;
        self
    }

    /// The IAM allow-list (`None`: every IAM caller has every scope).
    pub fn with_iam_principals(mut self, principals: Option<IamPrincipals>) -> Self {
        self.iam_principals = principals;
        self
    }

    /// Reads [`ALLOW_UNAUTHENTICATED_ENV`] through `lookup`: `1` or `true`
    /// allow, and only outside Lambda (`AWS_LAMBDA_FUNCTION_NAME` unset).
    pub fn allow_unauthenticated_from(lookup: impl Fn(&str) -> Option<String>) -> bool {
        let flag =
            lookup(ALLOW_UNAUTHENTICATED_ENV).is_some_and(|v| matches!(v.trim(), "1" | "true"));
        if flag && lookup("AWS_LAMBDA_FUNCTION_NAME").is_some() {
            tracing::error!(
                "{ALLOW_UNAUTHENTICATED_ENV} is ignored inside Lambda; use AWS_IAM or API keys"
            );
            return false;
        }
        flag
    }

    /// The key list, for tests that wait on its background refresh.
    pub fn key_ring(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    pub fn has_keys(&self) -> bool {
        !self.keys.peek().is_empty()
    }

    /// Whether requests without credentials are let through (development).
    pub fn allows_unauthenticated(&self) -> bool {
        self.allow_unauthenticated && !self.has_keys()
    }

    /// The caller of `req` at `now`, or why not: 401 `missing_credentials`,
    /// `invalid_api_key`, `expired_api_key`, `untrusted_event`; 403
    /// `principal_not_allowed`; 503 `api_keys_unavailable`.
    pub async fn authenticate(
        &self,
        req: &Request,
        now: DateTime<Utc>,
    ) -> Result<Caller, AuthError> {
        match (self.mode, iam::iam_context(req)) {
            (CheckAuth::ApiKey, Some(_)) => {
                tracing::warn!("refused an event naming an IAM caller on a URL without IAM auth");
                return Err(Rejection::UntrustedEvent(
                    "this function URL has auth NONE, so no request through it names an IAM caller: \
                     the event was not a function URL request",
                )
                .into());
            }
            (CheckAuth::AwsIam, None) => {
                tracing::warn!("refused an event without an IAM caller on an AWS_IAM function URL");
                return Err(Rejection::UntrustedEvent(
                    "this function URL uses AWS_IAM auth, which puts the caller in every request: \
                     an event without one (requestContext.authorizer.iam) did not come through it",
                )
                .into());
            }
            (CheckAuth::AwsIam, Some((ctx, iam))) => {
                if let Err(why) = iam::check_function_url_shape(ctx, iam, self.region.as_deref()) {
                    tracing::warn!(
                        reason = why,
                        "refused an event that is not a function URL request"
                    );
                    return Err(Rejection::UntrustedEvent(why).into());
                }
                return self.iam_caller(iam);
            }
            (CheckAuth::Local, Some((_, iam))) => return self.iam_caller(iam),
            (CheckAuth::Local | CheckAuth::ApiKey, None) => {}
        }
        let Some(presented) = presented_key(req) else {
            if self.allow_unauthenticated && self.keys.current(now).await?.is_empty() {
                return Ok(Caller {
                    principal: Principal::Unauthenticated,
                    scopes: Scopes::ALL,
                });
            }
            return Err(Rejection::MissingCredentials(if self.has_keys() {
                "send `Authorization: Bearer <api key>` (or `x-api-key`), or sign the request with AWS IAM"
            } else {
                "this API accepts only IAM-signed requests (no API keys are configured)"
            })
            .into());
        };
        // The shape first: a string that cannot be a key costs no hash and
        // no look at the key list (which may be a refresh).
        if !is_key_format(presented) {
            return Err(Rejection::InvalidApiKey.into());
        }
        let keys = self.keys.current(now).await?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare against every entry without stopping early, so timing
        // reveals nothing about how much of a hash matched.
        let mut found = None;
        for entry in keys.iter() {
            if bool::from(entry.matches(&digest)) {
                found = Some(entry);
            }
        }
        let entry = found.ok_or(Rejection::InvalidApiKey)?;
        if let Some(at) = entry.expires_at
            && now >= at
        {
            tracing::info!(api_key = %entry.name, expired_at = %at, "expired API key refused");
            return Err(Rejection::ExpiredApiKey(at).into());
        }
        Ok(Caller {
            principal: Principal::ApiKey {
                name: entry.name.clone(),
            },
            scopes: entry.scopes,
        })
    }

    /// An IAM caller and its scopes: every scope without an allow-list,
    /// else its entry's, else 403.
    fn iam_caller(
        &self,
        iam: &lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizerIamDescription,
    ) -> Result<Caller, AuthError> {
        let caller_arn = iam.user_arn.clone();
        let scopes = match &self.iam_principals {
            None => Scopes::ALL,
            Some(list) => match list.scopes_for(caller_arn.as_deref(), iam::caller_account(iam)) {
                Some(scopes) => scopes,
                None => {
                    // An ARN is an identifier, not a secret; operators need it
                    // to extend the list.
                    tracing::warn!(
                        caller = caller_arn.as_deref().unwrap_or("-"),
                        "IAM caller not in {}",
                        iam::PRINCIPALS_ENV
                    );
                    return Err(Rejection::PrincipalNotAllowed.into());
                }
            },
        };
        Ok(Caller {
            principal: Principal::Iam { caller_arn },
            scopes,
        })
    }
}

/// The API key from `Authorization: Bearer <key>` or `x-api-key: <key>`.
fn presented_key(req: &Request) -> Option<&str> {
    let headers = req.headers();
    if let Some(auth) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some((scheme, key)) = auth.trim().split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        return Some(key.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::TimeZone;
    use serde_json::{Value, json};

    use super::*;
    use crate::api::auth::keyring::RETRY_AFTER_FAILURE;
    use crate::web::Body;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0).unwrap()
    }

    fn req(headers: &[(&str, &str)]) -> Request {
        let mut b = http::Request::builder().uri("/v1/check");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::Empty).unwrap()
    }

    fn bearer(key: &str) -> Request {
        req(&[("authorization", &format!("Bearer {key}"))])
    }

    fn auth_with(scopes: &str) -> (String, Authenticator) {
        let new = generate("billing", Scopes::parse(scopes).unwrap()).unwrap();
        let entry = ApiKeyEntry::parse("billing", &new.entry.secret_value()).unwrap();
        (
            new.key.expose().to_owned(),
            Authenticator::new(vec![entry], false),
        )
    }

    fn code(r: Result<Caller, AuthError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(e) => ApiError::from(e).code,
        }
    }

    /// A key source that counts its reads and answers what it is given.
    #[derive(Default)]
    struct Source {
        loads: AtomicUsize,
        next: Mutex<Option<Result<Vec<ApiKeyEntry>, String>>>,
        /// When set, a read waits for this before answering.
        hold: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    }

    impl Source {
        fn answer(&self, r: Result<Vec<ApiKeyEntry>, &str>) {
            *self.next.lock().unwrap() = Some(r.map_err(str::to_owned));
        }
        fn loads(&self) -> usize {
            self.loads.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl KeySource for Source {
        async fn load(&self) -> Result<Vec<ApiKeyEntry>, SetupError> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            let hold = self.hold.lock().unwrap().take();
            if let Some(hold) = hold {
                let _ = hold.await;
            }
            match self.next.lock().unwrap().clone() {
                Some(Ok(keys)) => Ok(keys),
                Some(Err(message)) => Err(SetupError::Secrets {
                    source_name: "aws-sm:test".into(),
                    message,
                }),
                None => Err(SetupError::Invalid("no answer set".into())),
            }
        }
    }

    /// An authenticator whose keys were read at `t0()` from `source`
    /// (TTL 60 s, maximum age 300 s).
    fn refreshing(keys: Vec<ApiKeyEntry>, source: &Arc<Source>) -> Authenticator {
        let source: Arc<dyn KeySource> = source.clone();
        Authenticator::new(keys, false).refreshing_from(source, t0(), RefreshPolicy::default())
    }

    #[test]
    fn a_generated_key_round_trips_through_its_secret_entry() {
        let new = generate("ci-app", Scopes::ALL).unwrap();
        assert!(new.key.expose().starts_with(KEY_PREFIX));
        assert_eq!(new.key.expose().len(), KEY_PREFIX.len() + 43);
        assert!(is_key_format(new.key.expose()));
        assert_eq!(new.entry.secret_name(), "api_key.ci-app");
        let value = new.entry.secret_value();
        assert!(
            value.starts_with("sha256:") && value.ends_with(":check,seats"),
            "{value}"
        );
        assert_eq!(ApiKeyEntry::parse("ci-app", &value).unwrap(), new.entry);
        assert!(
            !format!("{new:?}").contains(new.key.expose()),
            "keys never print"
        );
        let expiring = new.entry.with_expiry(Some(t0()));
        let value = expiring.secret_value();
        assert!(
            value.ends_with(":check,seats:expires=2026-05-10T12:00:00Z"),
            "{value}"
        );
        assert_eq!(ApiKeyEntry::parse("ci-app", &value).unwrap(), expiring);
    }

    #[test]
    fn malformed_entries_are_refused() {
        let hash = "ab".repeat(32);
        assert!(ApiKeyEntry::parse("a", &format!("sha256:{hash}:check")).is_ok());
        let with_offset = ApiKeyEntry::parse(
            "a",
            &format!("sha256:{hash}:check:expires=2026-05-10T14:00:00+02:00"),
        )
        .unwrap();
        assert_eq!(with_offset.expires_at, Some(t0()));
        for bad in [
            format!("md5:{hash}:check"),
            format!("sha256:{hash}"),
            format!("sha256:{}:check", &hash[2..]),
            format!("sha256:{hash}:admin"),
            format!("sha256:{hash}:"),
            format!("sha256:{hash}:check:2026-05-10T12:00:00Z"),
            format!("sha256:{hash}:check:expires=tomorrow"),
            format!("sha256:{hash}:check:expires="),
        ] {
            assert!(ApiKeyEntry::parse("a", &bad).is_err(), "{bad}");
        }
        assert!(matches!(
            ApiKeyEntry::parse("a b", &format!("sha256:{hash}:check")),
            Err(ApiKeyError::InvalidName(_))
        ));
    }

    #[test]
    fn only_strings_of_the_generated_shape_are_keys() {
        let key = generate("a", Scopes::ALL).unwrap().key.expose().to_owned();
        let body = &key[KEY_PREFIX.len()..];
        let mut spare_bits = body.to_owned();
        spare_bits.pop();
        // 'B' (0b000001) sets one of the last character's two unused bits.
        spare_bits.push('B');
        let not_keys = [
            String::new(),
            "tgk_".into(),
            "tgk_guessed".into(),
            body.to_owned(),
            format!("TGK_{body}"),
            format!("tgk_{}", &body[1..]),
            format!("{key}A"),
            format!("tgk_{}+", &body[1..]),
            format!("tgk_{}=", &body[1..]),
            format!("tgk_{}é", &body[2..]),
            format!("tgk_{spare_bits}"),
            "k".repeat(10_000),
        ];
        for s in not_keys {
            assert!(!is_key_format(&s), "{s}");
        }
    }

    #[test]
    fn durations_read_as_the_cli_and_settings_write_them() {
        for (text, secs) in [
            ("90d", 90 * 86_400),
            ("12h", 43_200),
            ("30m", 1_800),
            ("45s", 45),
            ("45", 45),
            ("2w", 1_209_600),
        ] {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::seconds(secs),
                "{text}"
            );
        }
        for bad in [
            "",
            "0d",
            "-1d",
            "1y",
            "d",
            "1.5h",
            "99999999999999999999d",
            "9223372036854775807w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn keys_are_accepted_as_bearer_or_x_api_key() {
        let (key, auth) = auth_with("check");
        for h in [
            ("authorization", format!("Bearer {key}")),
            ("authorization", format!("bearer {key}")),
            ("x-api-key", key.clone()),
        ] {
            let caller = auth.authenticate(&req(&[(h.0, &h.1)]), t0()).await.unwrap();
            assert_eq!(
                caller.principal,
                Principal::ApiKey {
                    name: "billing".into()
                }
            );
            assert!(caller.require(Scope::Check).is_ok());
            assert_eq!(
                caller.require(Scope::Seats),
                Err(Rejection::InsufficientScope(Scope::Seats))
            );
        }
    }

    #[tokio::test]
    async fn missing_or_wrong_keys_are_refused() {
        let (key, auth) = auth_with("check,seats");
        assert_eq!(
            code(auth.authenticate(&req(&[]), t0()).await),
            "missing_credentials"
        );
        let other = generate("x", Scopes::ALL).unwrap();
        for wrong in [
            format!("{key}x"),
            other.key.expose().to_owned(),
            "k".repeat(10_000),
        ] {
            assert_eq!(
                code(auth.authenticate(&bearer(&wrong), t0()).await),
                "invalid_api_key"
            );
        }
    }

    #[tokio::test]
    async fn what_is_not_a_key_is_refused_without_reading_the_key_list() {
        // A list read at t0 and now too old to use, whose source fails: any
        // look at it answers 503, any read counts.
        let source = Arc::new(Source::default());
        source.answer(Err("extension unreachable"));
        let (key, fixed) = auth_with("check");
        let auth = refreshing(fixed.keys.peek().to_vec(), &source);
        let later = t0() + Duration::seconds(301);
        for not_a_key in [
            "tgk_guessed",
            "sk_live_0123456789",
            &format!("{key}x"),
            &"k".repeat(300),
        ] {
            assert_eq!(
                code(auth.authenticate(&bearer(not_a_key), later).await),
                "invalid_api_key",
                "{not_a_key}"
            );
        }
        assert_eq!(
            source.loads(),
            0,
            "no key list read for strings that are not keys"
        );
        // A string of the key's shape is looked up: the list is too old and
        // cannot be read, so the answer is 503, not a guess.
        let err = auth.authenticate(&bearer(&key), later).await.unwrap_err();
        assert_eq!(source.loads(), 1);
        let answer = ApiError::from(err);
        assert_eq!(
            (answer.status.as_u16(), answer.code),
            (503, "api_keys_unavailable")
        );
        assert!(
            !format!("{answer:?}").contains(&key),
            "the key is never in an error"
        );
    }

    #[tokio::test]
    async fn an_expired_key_is_refused_from_its_expiry_on() {
        let new = generate("contractor", Scopes::ALL).unwrap();
        let entry = new.entry.clone().with_expiry(Some(t0()));
        let auth = Authenticator::new(vec![entry], false);
        let key = new.key.expose();
        let before = auth
            .authenticate(&bearer(key), t0() - Duration::seconds(1))
            .await;
        assert!(before.is_ok());
        for at in [t0(), t0() + Duration::days(30)] {
            let err = auth.authenticate(&bearer(key), at).await.unwrap_err();
            assert!(
                matches!(err, AuthError::Rejected(Rejection::ExpiredApiKey(when)) if when == t0())
            );
            let answer = ApiError::from(err);
            assert_eq!(
                (answer.status.as_u16(), answer.code),
                (401, "expired_api_key")
            );
            assert!(
                answer.message.contains("2026-05-10 12:00:00"),
                "{}",
                answer.message
            );
        }
    }

    #[tokio::test]
    async fn a_deleted_entry_stops_working_after_the_ttl_without_the_request_waiting() {
        let keep = generate("keep", Scopes::ALL).unwrap();
        let revoke = generate("revoke", Scopes::ALL).unwrap();
        let source = Arc::new(Source::default());
        let auth = refreshing(vec![keep.entry.clone(), revoke.entry.clone()], &source);
        let revoked = bearer(revoke.key.expose());

        // Within the TTL the list is used as read, nothing is re-read.
        let at = t0() + Duration::seconds(59);
        assert!(auth.authenticate(&revoked, at).await.is_ok());
        assert_eq!(source.loads(), 0);

        // The entry is deleted. Past the TTL the next request starts a
        // refresh and is answered from the list it has, without waiting:
        // the read is held until we let it go, yet the request completes on
        // its first poll.
        source.answer(Ok(vec![keep.entry.clone()]));
        let (release, hold) = tokio::sync::oneshot::channel();
        *source.hold.lock().unwrap() = Some(hold);
        let at = t0() + Duration::seconds(61);
        let fut = auth.authenticate(&revoked, at);
        let mut fut = std::pin::pin!(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(served) = fut.as_mut().poll(&mut cx) else {
            panic!("the request waited for the refresh");
        };
        assert!(served.is_ok(), "served from the list in hand");
        // A second stale request starts no second read.
        assert!(auth.authenticate(&revoked, at).await.is_ok());
        release.send(()).unwrap();
        auth.key_ring().settled().await;
        assert_eq!(source.loads(), 1, "one refresh in flight at a time");

        assert_eq!(
            code(auth.authenticate(&revoked, at).await),
            "invalid_api_key"
        );
        assert_eq!(
            code(auth.authenticate(&bearer(keep.key.expose()), at).await),
            "ok"
        );
    }

    #[tokio::test]
    async fn a_failing_refresh_keeps_the_list_until_the_maximum_age_then_fails_closed() {
        let key = generate("app", Scopes::ALL).unwrap();
        let source = Arc::new(Source::default());
        source.answer(Err("extension unreachable"));
        let auth = refreshing(vec![key.entry.clone()], &source);
        let app = bearer(key.key.expose());

        let at = t0() + Duration::seconds(100);
        assert_eq!(code(auth.authenticate(&app, at).await), "ok");
        auth.key_ring().settled().await;
        assert_eq!(source.loads(), 1);
        // Retried no sooner than RETRY_AFTER_FAILURE, not on every request.
        assert_eq!(
            code(auth.authenticate(&app, at + Duration::seconds(4)).await),
            "ok"
        );
        auth.key_ring().settled().await;
        assert_eq!(source.loads(), 1);
        assert_eq!(
            code(auth.authenticate(&app, at + Duration::seconds(5)).await),
            "ok"
        );
        auth.key_ring().settled().await;
        assert_eq!(source.loads(), 2);

        // Up to the maximum age the last list serves (the read it starts at
        // 299 s fails too); from it on, the list is refused: 503 at once
        // during the back-off, then after a read in the request that fails.
        let edge = t0() + Duration::seconds(299);
        assert_eq!(code(auth.authenticate(&app, edge).await), "ok");
        auth.key_ring().settled().await;
        let loads = source.loads();
        let too_old = t0() + Duration::seconds(300);
        assert_eq!(
            code(auth.authenticate(&app, too_old).await),
            "api_keys_unavailable"
        );
        assert_eq!(source.loads(), loads, "failing fast during the back-off");
        let retry = edge + RETRY_AFTER_FAILURE;
        assert_eq!(
            code(auth.authenticate(&app, retry).await),
            "api_keys_unavailable"
        );
        assert_eq!(source.loads(), loads + 1, "it tried, in the request");
        // Recovering once reads work again.
        source.answer(Ok(vec![key.entry.clone()]));
        let recovered = retry + RETRY_AFTER_FAILURE;
        assert_eq!(code(auth.authenticate(&app, recovered).await), "ok");
        assert_eq!(source.loads(), loads + 2);
        // Fresh again: no read for the next TTL.
        assert_eq!(
            code(
                auth.authenticate(&app, recovered + Duration::seconds(59))
                    .await
            ),
            "ok"
        );
        auth.key_ring().settled().await;
        assert_eq!(source.loads(), loads + 2);
    }

    #[test]
    fn refresh_settings_are_validated() {
        assert_eq!(
            RefreshPolicy::from_settings(None, None).unwrap(),
            RefreshPolicy::default()
        );
        let p = RefreshPolicy::from_settings(Some("30"), Some("2m")).unwrap();
        assert_eq!(
            (p.ttl, p.max_age),
            (Duration::seconds(30), Duration::seconds(120))
        );
        for (ttl, max) in [
            (Some("0"), None),
            (Some("10m"), Some("5m")),
            (Some("soon"), None),
        ] {
            let err = RefreshPolicy::from_settings(ttl, max)
                .unwrap_err()
                .to_string();
            assert!(err.contains("TOLLGATE_API_KEYS_"), "{err}");
        }
    }

    #[tokio::test]
    async fn without_keys_only_the_development_flag_lets_requests_through() {
        let strict = Authenticator::new(vec![], false);
        assert_eq!(
            code(strict.authenticate(&req(&[]), t0()).await),
            "missing_credentials"
        );
        let dev = Authenticator::new(vec![], true);
        assert_eq!(
            dev.authenticate(&req(&[]), t0()).await.unwrap().principal,
            Principal::Unauthenticated
        );
        let (_, with_keys) = auth_with("check");
        let with_keys = Authenticator::new(with_keys.keys.peek().to_vec(), true);
        assert!(
            with_keys.authenticate(&req(&[]), t0()).await.is_err(),
            "configured keys are always required"
        );
    }

    #[test]
    fn the_development_flag_is_ignored_inside_lambda() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(Authenticator::allow_unauthenticated_from(env(&[(
            ALLOW_UNAUTHENTICATED_ENV,
            "1"
        )])));
        assert!(!Authenticator::allow_unauthenticated_from(env(&[(
            ALLOW_UNAUTHENTICATED_ENV,
            "0"
        )])));
        assert!(!Authenticator::allow_unauthenticated_from(env(&[
            (ALLOW_UNAUTHENTICATED_ENV, "1"),
            ("AWS_LAMBDA_FUNCTION_NAME", "entitlement-check"),
        ])));
    }

    #[test]
    fn secrets_other_than_api_keys_are_ignored_and_bad_entries_named() {
        let good = generate("a", Scopes::ALL).unwrap().entry.secret_value();
        let ok = [
            ("github_webhook_secret", Secret::new("x")),
            ("api_key.a", Secret::new(good)),
        ];
        let auth = Authenticator::from_secrets(ok.iter().map(|(k, v)| (*k, v)), false).unwrap();
        assert!(auth.has_keys());
        let bad = [("api_key.b", Secret::new("sha256:zz:check"))];
        let err = Authenticator::from_secrets(bad.iter().map(|(k, v)| (*k, v)), false).unwrap_err();
        assert!(err.to_string().contains("api_key.b"), "{err}");
        assert!(
            !err.to_string().contains("zz"),
            "values stay out of errors: {err}"
        );
    }

    // ---------------------------------------------------------------- IAM --

    const SESSION: &str = "arn:aws:sts::123456789012:assumed-role/acme-ci-app/acme-ci-app";

    /// A function-URL event as Lambda builds it behind an `AWS_IAM` URL.
    fn url_event() -> Value {
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/v1/check", "rawQueryString": "",
            "headers": {"host": "abcdefghij0123456789klmnop.lambda-url.us-east-1.on.aws"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abcdefghij0123456789klmnop",
                "authorizer": {"iam": {
                    "accessKey": "ASIAEXAMPLE", "accountId": "123456789012",
                    "callerId": "AROAEXAMPLE:acme-ci-app", "cognitoIdentity": null,
                    "principalOrgId": null, "userArn": SESSION, "userId": "AROAEXAMPLE:acme-ci-app"
                }},
                "domainName": "abcdefghij0123456789klmnop.lambda-url.us-east-1.on.aws",
                "domainPrefix": "abcdefghij0123456789klmnop",
                "http": {"method": "GET", "path": "/v1/check", "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.7", "userAgent": "app/1.0"},
                "requestId": "2b7d1c6e-5f8a-4c3e-9d1b-0a2f3e4d5c6b", "routeKey": "$default",
                "stage": "$default", "time": "10/May/2026:12:00:00 +0000", "timeEpoch": 1778414400000u64
            },
            "isBase64Encoded": false
        })
    }

    fn from_event(event: &Value) -> Request {
        lambda_http::request::from_str(&event.to_string()).expect("a function URL event")
    }

    fn iam_mode() -> Authenticator {
        Authenticator::new(vec![], false).with_mode(CheckAuth::AwsIam, Some("us-east-1".into()))
    }

    #[tokio::test]
    async fn in_iam_mode_the_allow_list_gives_scopes_and_refuses_the_unlisted() {
        let req = from_event(&url_event());
        // No list: today's behaviour, every scope.
        let caller = iam_mode().authenticate(&req, t0()).await.unwrap();
        assert_eq!(
            (caller.principal, caller.scopes),
            (
                Principal::Iam {
                    caller_arn: Some(SESSION.into())
                },
                Scopes::ALL
            )
        );

        let list =
            |json: &str| iam_mode().with_iam_principals(Some(IamPrincipals::parse(json).unwrap()));
        let role_check_only =
            list(r#"{"arn:aws:iam::123456789012:role/apps/acme-ci-app": "check"}"#);
        let caller = role_check_only.authenticate(&req, t0()).await.unwrap();
        assert!(caller.require(Scope::Check).is_ok());
        assert_eq!(
            caller.require(Scope::Seats),
            Err(Rejection::InsufficientScope(Scope::Seats))
        );
        let account = list(r#"{"123456789012": "check,seats"}"#);
        assert_eq!(
            account.authenticate(&req, t0()).await.unwrap().scopes,
            Scopes::ALL
        );

        for other in [
            r#"{"arn:aws:iam::123456789012:role/other-app": "check"}"#,
            r#"{"210987654321": "check"}"#,
            "{}",
        ] {
            let err = list(other).authenticate(&req, t0()).await.unwrap_err();
            let answer = ApiError::from(err);
            assert_eq!(
                (answer.status.as_u16(), answer.code),
                (403, "principal_not_allowed"),
                "{other}"
            );
        }
        // The list applies in a local run too.
        let local = Authenticator::new(vec![], false)
            .with_iam_principals(Some(IamPrincipals::parse("{}").unwrap()));
        assert_eq!(
            code(local.authenticate(&req, t0()).await),
            "principal_not_allowed"
        );
    }

    #[tokio::test]
    async fn hand_written_events_are_not_taken_for_iam_authenticated_url_requests() {
        let (key, keyed) = auth_with("check,seats");
        let auth = Authenticator::new(keyed.keys.peek().to_vec(), false)
            .with_mode(CheckAuth::AwsIam, Some("us-east-1".into()));
        assert_eq!(
            code(auth.authenticate(&from_event(&url_event()), t0()).await),
            "ok"
        );

        let edit = |f: &dyn Fn(&mut Value)| {
            let mut e = url_event();
            f(&mut e);
            e
        };
        fn ctx(e: &mut Value) -> &mut serde_json::Map<String, Value> {
            e["requestContext"].as_object_mut().unwrap()
        }
        let cases: Vec<(&str, Value)> = vec![
            (
                "no IAM caller",
                edit(&|e| {
                    ctx(e).remove("authorizer");
                }),
            ),
            (
                "no IAM caller, but an API key",
                edit(&|e| {
                    ctx(e).remove("authorizer");
                    e["headers"]["authorization"] = json!(format!("Bearer {key}"));
                }),
            ),
            (
                "an API Gateway host",
                edit(&|e| {
                    ctx(e)["domainName"] =
                        json!("abcdefghij0123456789klmnop.execute-api.us-east-1.amazonaws.com");
                }),
            ),
            (
                "another URL's host",
                edit(&|e| {
                    ctx(e)["domainName"] = json!("zzzz.lambda-url.us-east-1.on.aws");
                }),
            ),
            (
                "another region",
                edit(&|e| {
                    ctx(e)["domainName"] =
                        json!("abcdefghij0123456789klmnop.lambda-url.eu-west-1.on.aws");
                }),
            ),
            (
                "no URL id",
                edit(&|e| {
                    ctx(e).remove("apiId");
                }),
            ),
            (
                "no caller ARN",
                edit(&|e| {
                    ctx(e)["authorizer"]["iam"]
                        .as_object_mut()
                        .unwrap()
                        .remove("userArn");
                }),
            ),
            (
                "account and ARN disagree",
                edit(&|e| {
                    ctx(e)["authorizer"]["iam"]["accountId"] = json!("210987654321");
                }),
            ),
        ];
        for (what, event) in cases {
            let err = auth
                .authenticate(&from_event(&event), t0())
                .await
                .unwrap_err();
            let answer = ApiError::from(err);
            assert_eq!(
                (answer.status.as_u16(), answer.code),
                (401, "untrusted_event"),
                "{what}"
            );
            assert!(
                answer.message.contains("function URL"),
                "{what}: {}",
                answer.message
            );
        }

        // Behind a NONE URL (API keys), an event naming an IAM caller is forged.
        let api_key_mode = Authenticator::new(keyed.keys.peek().to_vec(), false)
            .with_mode(CheckAuth::ApiKey, Some("us-east-1".into()));
        let mut forged = url_event();
        forged["headers"]["authorization"] = json!(format!("Bearer {key}"));
        assert_eq!(
            code(api_key_mode.authenticate(&from_event(&forged), t0()).await),
            "untrusted_event"
        );
        forged["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
        assert_eq!(
            code(api_key_mode.authenticate(&from_event(&forged), t0()).await),
            "ok"
        );
    }

    #[test]
    fn the_deployment_mode_is_read_strictly() {
        assert_eq!(CheckAuth::from_setting(None).unwrap(), CheckAuth::Local);
        assert_eq!(
            CheckAuth::from_setting(Some("aws_iam")).unwrap(),
            CheckAuth::AwsIam
        );
        assert_eq!(
            CheckAuth::from_setting(Some("api_key")).unwrap(),
            CheckAuth::ApiKey
        );
        assert!(CheckAuth::from_setting(Some("AWS-IAM")).is_err());
    }
}
