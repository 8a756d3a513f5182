//! The sign-up token: the `x-gcp-marketplace-token` form field Google posts
//! to the product's sign-up URL
//! (<https://cloud.google.com/marketplace/docs/partners/integrated-saas/frontend-integration>).
//!
//! An RS256 JWT signed by `cloud-commerce-partner@system.gserviceaccount.com`.
//! Its keys come from that account's **pinned** certificate URL (configured,
//! never the URL in `iss`: a forger controls `iss`). Checked: RS256 and a
//! known `kid`, the signature, `iss` exactly Google's, `aud` the product's
//! domain, `exp` not passed, a lifetime (`exp - iat`) of at most five
//! minutes, and a non-empty `sub` — the procurement account id. Single use
//! is the caller's (the token is consumed in the store).

use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Deserialize;

use super::keys::{KeyCache, SignatureCheck};
use crate::web::ApiError;

/// The issuer Google puts in sign-up tokens.
pub const ISSUER: &str = "https://www.googleapis.com/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com";
/// Longest lifetime accepted (Google issues five-minute tokens).
pub const MAX_LIFETIME_SECONDS: i64 = 300;
const SKEW_SECONDS: i64 = 30;
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a sign-up token was refused. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignupTokenError {
    #[error(
        "Google sign-up is not configured (set TOLLGATE_GCP_SIGNUP_AUDIENCE and TOLLGATE_GCP_PROVIDER_ID)"
    )]
    NotConfigured,
    #[error("no x-gcp-marketplace-token in the form")]
    Missing,
    #[error("the sign-up token is not a JWT")]
    Malformed,
    #[error("the sign-up token is not signed with RS256")]
    UnsupportedAlgorithm,
    #[error("the sign-up token's key is not Google's")]
    UnknownKey,
    #[error("Google's signing certificates are unavailable")]
    KeysUnavailable,
    #[error("the sign-up token's signature does not verify")]
    BadSignature,
    #[error("the sign-up token was not issued by Google Cloud Marketplace")]
    WrongIssuer,
    #[error("the sign-up token is for another product")]
    WrongAudience,
    #[error("the sign-up token has expired; start again from Google Cloud Marketplace")]
    Expired,
    #[error("the sign-up token lives longer than five minutes")]
    TooLongLived,
    #[error("the sign-up token names no account")]
    NoAccount,
    /// The token was already used once (a reload, or a replay).
    #[error("this sign-up link was already used; start again from Google Cloud Marketplace")]
    Replayed,
}

impl From<SignupTokenError> for ApiError {
    fn from(e: SignupTokenError) -> Self {
        use SignupTokenError as E;
        let message = e.to_string();
        match e {
            E::NotConfigured => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_configured", message)
            }
            E::KeysUnavailable => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable", message)
            }
            E::Missing => ApiError::bad_request("missing_token", message),
            E::Replayed => ApiError::bad_request("token_used", message),
            E::Malformed
            | E::UnsupportedAlgorithm
            | E::UnknownKey
            | E::BadSignature
            | E::WrongIssuer
            | E::WrongAudience
            | E::Expired
            | E::TooLongLived
            | E::NoAccount => ApiError::unauthorized("invalid_token", message),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<serde_json::Value>,
    sub: Option<String>,
    iat: Option<i64>,
    exp: Option<i64>,
    #[serde(default)]
    google: Option<GoogleClaims>,
}

#[derive(Debug, Deserialize)]
struct GoogleClaims {
    #[serde(default)]
    user_identity: Option<String>,
}

/// A verified sign-up token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignupToken {
    /// The procurement account id (`sub`).
    pub account_id: String,
    /// Google's id of the user signing up, when the token carries one.
    pub user_identity: Option<String>,
    /// When the token stops being valid (kept as its single-use record's expiry).
    pub expires_at: DateTime<Utc>,
}

/// Verifies sign-up tokens for one product domain.
#[derive(Debug)]
pub struct SignupVerifier {
    keys: KeyCache,
    audience: String,
}

impl SignupVerifier {
    pub fn new(keys: KeyCache, audience: impl Into<String>) -> Self {
        Self {
            keys,
            audience: audience.into(),
        }
    }

    pub async fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<SignupToken, SignupTokenError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(SignupTokenError::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(SignupTokenError::Malformed);
        }
        let claims: Claims = self.keys.verify_rs256(token).await.map_err(|e| match e {
            SignatureCheck::Malformed => SignupTokenError::Malformed,
            SignatureCheck::UnsupportedAlgorithm => SignupTokenError::UnsupportedAlgorithm,
            SignatureCheck::MissingKeyId | SignatureCheck::UnknownKey => {
                SignupTokenError::UnknownKey
            }
            SignatureCheck::KeysUnavailable => SignupTokenError::KeysUnavailable,
            SignatureCheck::BadSignature => SignupTokenError::BadSignature,
        })?;
        if claims.iss.as_deref() != Some(ISSUER) {
            return Err(SignupTokenError::WrongIssuer);
        }
        let audience_matches = match &claims.aud {
            Some(serde_json::Value::String(aud)) => *aud == self.audience,
            Some(serde_json::Value::Array(auds)) => auds
                .iter()
                .any(|a| a.as_str() == Some(self.audience.as_str())),
            _ => false,
        };
        if !audience_matches {
            return Err(SignupTokenError::WrongAudience);
        }
        let (Some(iat), Some(exp)) = (claims.iat, claims.exp) else {
            return Err(SignupTokenError::Malformed);
        };
        // Saturating: the numbers are the token's, and any i64 must give an
        // answer, not an overflow.
        let now_s = now.timestamp();
        if exp.saturating_add(SKEW_SECONDS) <= now_s {
            return Err(SignupTokenError::Expired);
        }
        if exp.saturating_sub(iat) > MAX_LIFETIME_SECONDS
            || iat > now_s.saturating_add(SKEW_SECONDS)
        {
            return Err(SignupTokenError::TooLongLived);
        }
        let account_id = claims.sub.unwrap_or_default().trim().to_owned();
        if account_id.is_empty()
            || account_id.len() > 200
            || !account_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(SignupTokenError::NoAccount);
        }
        Ok(SignupToken {
            account_id,
            user_identity: claims
                .google
                .and_then(|g| g.user_identity)
                .filter(|u| !u.is_empty() && u.len() <= 200),
            expires_at: DateTime::from_timestamp(exp, 0).unwrap_or(now),
        })
    }
}
