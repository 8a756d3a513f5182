//! Authentication of Pub/Sub push requests: the OIDC ID token Google puts
//! in `Authorization: Bearer …` when the push subscription has
//! authentication turned on
//! (<https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions>).
//!
//! Checked, in order: a bearer token; header `alg` RS256 and a `kid` known
//! in Google's JWKS (pinned URL, cached); the signature; `iss` is Google's;
//! `aud` is ours; `exp` not passed and `iat` not in the future (a small
//! skew either way; push tokens may be up to an hour old, so age alone is
//! fine); `email` is our push service account and `email_verified` is true —
//! without that last check any Google-signed ID token for our audience
//! would pass.
//!
//! Verified with `jsonwebtoken` (maintained, already linked for GitHub App
//! JWTs, on the one crypto backend the bundle uses, aws-lc) and our own key
//! cache ([`super::keys`]), so the clock is injected and the cache's
//! refetch rule is ours to test. Google's `google-cloud-auth` verifier would
//! bring a second HTTP/auth stack into every function for the same checks.

use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::keys::{KeyCache, SignatureCheck};
use crate::web::ApiError;

/// The two spellings of Google's issuer.
pub const ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// Clock skew tolerated on `exp` and `iat`.
pub const SKEW_SECONDS: i64 = 60;
/// Longest `Authorization` value read (Google's tokens are ~1 KB).
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a push request was not authenticated. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushAuthError {
    /// No push service account or audience configured: nothing can be verified.
    #[error(
        "Pub/Sub push is not configured (set TOLLGATE_GCP_PUSH_AUDIENCE and TOLLGATE_GCP_PUSH_SERVICE_ACCOUNT)"
    )]
    NotConfigured,
    #[error("no `Authorization: Bearer` token")]
    MissingBearer,
    #[error("the bearer token is not a JWT")]
    Malformed,
    #[error("the token is not signed with RS256")]
    UnsupportedAlgorithm,
    #[error("the token names no key id")]
    MissingKeyId,
    #[error("the token's key is not one of Google's")]
    UnknownKey,
    /// Google's keys could not be fetched: a transient failure (503).
    #[error("Google's signing keys are unavailable")]
    KeysUnavailable,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token was not issued by Google")]
    WrongIssuer,
    #[error("the token is for another audience")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// Signed by Google, but for someone else's service account.
    #[error("the token is not for the configured push service account")]
    WrongServiceAccount,
    #[error("the token's email is not verified")]
    EmailNotVerified,
}

impl From<PushAuthError> for ApiError {
    fn from(e: PushAuthError) -> Self {
        use PushAuthError as E;
        let message = e.to_string();
        match e {
            E::NotConfigured => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_configured", message)
            }
            E::KeysUnavailable => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable", message)
            }
            E::WrongServiceAccount | E::EmailNotVerified => {
                ApiError::forbidden("forbidden_principal", message)
            }
            E::MissingBearer => ApiError::unauthorized("missing_token", message),
            E::Malformed
            | E::UnsupportedAlgorithm
            | E::MissingKeyId
            | E::UnknownKey
            | E::BadSignature
            | E::WrongIssuer
            | E::WrongAudience
            | E::Expired
            | E::IssuedInFuture => ApiError::unauthorized("invalid_token", message),
        }
    }
}

/// What a verified push token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPrincipal {
    pub email: String,
    pub subject: String,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    iat: Option<i64>,
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<EmailVerified>,
    #[serde(default)]
    sub: Option<String>,
}

/// `aud` is a string or, in some issuers, an array.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Google sends a boolean; some encoders write `"true"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EmailVerified {
    Bool(bool),
    Text(String),
}

/// Verifies push tokens for one audience and service account.
#[derive(Debug)]
pub struct PushVerifier {
    keys: KeyCache,
    audience: String,
    service_account: String,
}

impl PushVerifier {
    pub fn new(
        keys: KeyCache,
        audience: impl Into<String>,
        service_account: impl Into<String>,
    ) -> Self {
        Self {
            keys,
            audience: audience.into(),
            service_account: service_account.into(),
        }
    }

    pub async fn verify(
        &self,
        headers: &HeaderMap,
        now: DateTime<Utc>,
    ) -> Result<PushPrincipal, PushAuthError> {
        let token = bearer(headers).ok_or(PushAuthError::MissingBearer)?;
        let claims: Claims = self.keys.verify_rs256(token).await.map_err(|e| match e {
            SignatureCheck::Malformed => PushAuthError::Malformed,
            SignatureCheck::UnsupportedAlgorithm => PushAuthError::UnsupportedAlgorithm,
            SignatureCheck::MissingKeyId => PushAuthError::MissingKeyId,
            SignatureCheck::UnknownKey => PushAuthError::UnknownKey,
            SignatureCheck::KeysUnavailable => PushAuthError::KeysUnavailable,
            SignatureCheck::BadSignature => PushAuthError::BadSignature,
        })?;
        if !claims
            .iss
            .as_deref()
            .is_some_and(|iss| ISSUERS.contains(&iss))
        {
            return Err(PushAuthError::WrongIssuer);
        }
        let audience_matches = match &claims.aud {
            Some(Audience::One(aud)) => aud.eq_ignore_ascii_case(&self.audience),
            Some(Audience::Many(auds)) => {
                auds.iter().any(|a| a.eq_ignore_ascii_case(&self.audience))
            }
            None => false,
        };
        if !audience_matches {
            return Err(PushAuthError::WrongAudience);
        }
        let now = now.timestamp();
        if claims.exp.is_none_or(|exp| exp + SKEW_SECONDS <= now) {
            return Err(PushAuthError::Expired);
        }
        if claims.iat.is_some_and(|iat| iat > now + SKEW_SECONDS) {
            return Err(PushAuthError::IssuedInFuture);
        }
        let email = claims.email.unwrap_or_default();
        if !email.eq_ignore_ascii_case(&self.service_account) {
            return Err(PushAuthError::WrongServiceAccount);
        }
        let verified = match claims.email_verified {
            Some(EmailVerified::Bool(b)) => b,
            Some(EmailVerified::Text(t)) => t.eq_ignore_ascii_case("true"),
            None => false,
        };
        if !verified {
            return Err(PushAuthError::EmailNotVerified);
        }
        Ok(PushPrincipal {
            email,
            subject: claims.sub.unwrap_or_default(),
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    if value.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
