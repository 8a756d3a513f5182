//! Who may call the entitlement-check API.
//!
//! 1. **IAM.** In AWS the function URL uses `AWS_IAM` auth: AWS verifies the
//!    caller's SigV4 signature before the function runs and puts the caller
//!    in the request context. Such a request is trusted with every scope. No
//!    header can forge the context: it exists only on Lambda events.
//! 2. **API keys** for apps outside AWS, sent as `Authorization: Bearer <key>`
//!    or `x-api-key: <key>`. Keys are stored hashed, one secret per key:
//!
//!    ```text
//!    "api_key.<name>": "sha256:<64 lowercase hex of SHA-256(key)>:<scopes>"
//!    ```
//!
//!    `<name>` is `[A-Za-z0-9_-]{1,64}`, `<scopes>` a comma-separated subset
//!    of `check` (`POST /v1/check`, `GET /v1/customers/...`) and `seats`
//!    (the `/v1/seats/...` routes, and `claim_seat` in a check). A key is
//!    `tgk_` followed by 43 base64url characters (32 random bytes); a plain
//!    SHA-256 suffices because the key has 256 bits of entropy, so there is
//!    nothing to brute-force. `tollgate api-key new <name> --scopes check,seats`
//!    prints a new key once and the entry to store.
//! 3. **Neither** (no IAM context, no keys configured): refused with 401,
//!    unless `TOLLGATE_ALLOW_UNAUTHENTICATED=1` is set (`make dev` sets it).
//!    The flag is ignored inside Lambda, and whenever API keys are configured.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;
use crate::settings::SetupError;
use crate::web::Request;

use super::Rejection;

/// Secrets whose names start with this hold API key entries.
pub const SECRET_PREFIX: &str = "api_key.";
/// Every generated key starts with this, so secret scanners can spot leaks.
pub const KEY_PREFIX: &str = "tgk_";
/// The environment variable that allows unauthenticated calls in development.
pub const ALLOW_UNAUTHENTICATED_ENV: &str = "TOLLGATE_ALLOW_UNAUTHENTICATED";
/// Longest credential header considered; longer ones are simply invalid.
const MAX_KEY_BYTES: usize = 256;

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
    #[error("expected `sha256:<64 hex digits>:<scopes>`, e.g. `sha256:9f86…:check,seats`")]
    InvalidEntry,
    #[error("the operating system gave no random bytes: {0}")]
    NoRandomness(String),
}

/// One configured API key: its name, the SHA-256 of the key, its scopes.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyEntry {
    pub name: String,
    sha256: [u8; 32],
    pub scopes: Scopes,
}

impl fmt::Debug for ApiKeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyEntry")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
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
        let (hash, scopes) = rest.split_once(':').ok_or(ApiKeyError::InvalidEntry)?;
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(hash, &mut sha256).map_err(|_| ApiKeyError::InvalidEntry)?;
        Ok(Self {
            name,
            sha256,
            scopes: Scopes::parse(scopes)?,
        })
    }

    /// The secret's name: `api_key.<name>`.
    pub fn secret_name(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.name)
    }

    /// The secret's value: `sha256:<hex>:<scopes>`.
    pub fn secret_value(&self) -> String {
        format!("sha256:{}:{}", hex::encode(self.sha256), self.scopes)
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
    };
    Ok(NewApiKey {
        key: Secret::new(key),
        entry,
    })
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

/// Decides who a request comes from; built once at cold start.
#[derive(Debug, Clone)]
pub struct Authenticator {
    keys: Vec<ApiKeyEntry>,
    allow_unauthenticated: bool,
}

impl Authenticator {
    /// `allow_unauthenticated` takes effect only when `keys` is empty.
    pub fn new(keys: Vec<ApiKeyEntry>, allow_unauthenticated: bool) -> Self {
        Self {
            keys,
            allow_unauthenticated,
        }
    }

    /// Every `api_key.<name>` secret; a malformed one fails the cold start
    /// with its name (never its value).
    pub fn from_secrets<'a>(
        secrets: impl IntoIterator<Item = (&'a str, &'a Secret)>,
        allow_unauthenticated: bool,
    ) -> Result<Self, SetupError> {
        let mut keys = Vec::new();
        for (secret_name, value) in secrets {
            let Some(name) = secret_name.strip_prefix(SECRET_PREFIX) else {
                continue;
            };
            let entry = ApiKeyEntry::parse(name, value.expose())
                .map_err(|e| SetupError::Invalid(format!("secret `{secret_name}`: {e}")))?;
            keys.push(entry);
        }
        Ok(Self::new(keys, allow_unauthenticated))
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

    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether requests without credentials are let through (development).
    pub fn allows_unauthenticated(&self) -> bool {
        self.allow_unauthenticated && self.keys.is_empty()
    }

    /// The caller of `req`, or 401 `missing_credentials` / `invalid_api_key`.
    pub fn authenticate(&self, req: &Request) -> Result<Caller, Rejection> {
        if let Some(caller_arn) = iam_caller(req) {
            return Ok(Caller {
                principal: Principal::Iam { caller_arn },
                scopes: Scopes::ALL,
            });
        }
        let Some(presented) = presented_key(req) else {
            if self.allows_unauthenticated() {
                return Ok(Caller {
                    principal: Principal::Unauthenticated,
                    scopes: Scopes::ALL,
                });
            }
            return Err(Rejection::MissingCredentials(if self.keys.is_empty() {
                "this API accepts only IAM-signed requests (no API keys are configured)"
            } else {
                "send `Authorization: Bearer <api key>` (or `x-api-key`), or sign the request with AWS IAM"
            }));
        };
        if presented.len() > MAX_KEY_BYTES {
            return Err(Rejection::InvalidApiKey);
        }
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare against every entry without stopping early, so timing
        // reveals nothing about how much of a hash matched.
        let mut found = None;
        for entry in &self.keys {
            if bool::from(entry.matches(&digest)) {
                found = Some(entry);
            }
        }
        let entry = found.ok_or(Rejection::InvalidApiKey)?;
        Ok(Caller {
            principal: Principal::ApiKey {
                name: entry.name.clone(),
            },
            scopes: entry.scopes,
        })
    }
}

/// `Some(arn)` when the request came through an IAM-authenticated function
/// URL (the Lambda event's request context carries an IAM authorizer).
fn iam_caller(req: &Request) -> Option<Option<String>> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => {
            let iam = ctx.authorizer.as_ref()?.iam.as_ref()?;
            Some(iam.user_arn.clone())
        }
        #[allow(unreachable_patterns)]
        _ => None,
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
    use super::*;
    use crate::web::Body;

    fn req(headers: &[(&str, &str)]) -> Request {
        let mut b = http::Request::builder().uri("/v1/check");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::Empty).unwrap()
    }

    fn auth_with(scopes: &str) -> (String, Authenticator) {
        let new = generate("billing", Scopes::parse(scopes).unwrap()).unwrap();
        let entry = ApiKeyEntry::parse("billing", &new.entry.secret_value()).unwrap();
        (
            new.key.expose().to_owned(),
            Authenticator::new(vec![entry], false),
        )
    }

    #[test]
    fn a_generated_key_round_trips_through_its_secret_entry() {
        let new = generate("ci-app", Scopes::ALL).unwrap();
        assert!(new.key.expose().starts_with(KEY_PREFIX));
        assert_eq!(new.key.expose().len(), KEY_PREFIX.len() + 43);
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
    }

    #[test]
    fn malformed_entries_are_refused() {
        let hash = "ab".repeat(32);
        assert!(ApiKeyEntry::parse("a", &format!("sha256:{hash}:check")).is_ok());
        for bad in [
            format!("md5:{hash}:check"),
            format!("sha256:{hash}"),
            format!("sha256:{}:check", &hash[2..]),
            format!("sha256:{hash}:admin"),
            format!("sha256:{hash}:"),
        ] {
            assert!(ApiKeyEntry::parse("a", &bad).is_err(), "{bad}");
        }
        assert!(matches!(
            ApiKeyEntry::parse("a b", &format!("sha256:{hash}:check")),
            Err(ApiKeyError::InvalidName(_))
        ));
    }

    #[test]
    fn keys_are_accepted_as_bearer_or_x_api_key() {
        let (key, auth) = auth_with("check");
        for h in [
            ("authorization", format!("Bearer {key}")),
            ("authorization", format!("bearer {key}")),
            ("x-api-key", key.clone()),
        ] {
            let caller = auth.authenticate(&req(&[(h.0, &h.1)])).unwrap();
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

    #[test]
    fn missing_or_wrong_keys_are_refused() {
        let (key, auth) = auth_with("check,seats");
        assert!(matches!(
            auth.authenticate(&req(&[])),
            Err(Rejection::MissingCredentials(_))
        ));
        let wrong = format!("Bearer {key}x");
        assert_eq!(
            auth.authenticate(&req(&[("authorization", &wrong)])),
            Err(Rejection::InvalidApiKey)
        );
        let huge = "k".repeat(10_000);
        assert_eq!(
            auth.authenticate(&req(&[("x-api-key", &huge)])),
            Err(Rejection::InvalidApiKey)
        );
    }

    #[test]
    fn without_keys_only_the_development_flag_lets_requests_through() {
        let strict = Authenticator::new(vec![], false);
        assert!(matches!(
            strict.authenticate(&req(&[])),
            Err(Rejection::MissingCredentials(_))
        ));
        let dev = Authenticator::new(vec![], true);
        assert_eq!(
            dev.authenticate(&req(&[])).unwrap().principal,
            Principal::Unauthenticated
        );
        let (_, with_keys) = auth_with("check");
        let with_keys = Authenticator::new(with_keys.keys, true);
        assert!(
            with_keys.authenticate(&req(&[])).is_err(),
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
}
