//! Signed entitlement tokens (`POST /v1/token`) and the keys that verify
//! them (`GET /.well-known/jwks.json`).
//!
//! Tokens are JWTs signed with EdDSA over Ed25519: deterministic signatures
//! (no per-signature nonce to get wrong), 32-byte keys that fit a secrets
//! entry on one line, one curve and no parameters to choose, and a verify
//! that every mainstream JWT library (PyJWT, `jose`, `golang-jwt`, Nimbus)
//! and `jsonwebtoken` over aws-lc-rs support. What a token says and how long
//! it lives is decided in the pure `tollgate_core::token`.
//!
//! The signing key is the secret [`TOKEN_KEY_SECRET`]
//! (`ed25519:<base64url of a PKCS#8 document>`, from `tollgate token-key
//! new`); [`TOKEN_KEY_PREVIOUS_SECRET`] holds the key it replaced, still
//! published so tokens it signed verify until they expire. A key's `kid` is
//! its RFC 7638 JWK thumbprint, so it needs no name and cannot disagree with
//! the key. No key: `/v1/token` answers 503 `tokens_not_configured`, the
//! JWKS is empty, everything else works.

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use tollgate_core::token::{DEFAULT_MAX_LIFETIME, MAX_MAX_LIFETIME};
pub use tollgate_core::token::{EntitlementClaims, TokenAnswer, TokenPolicy};

use crate::secret::{Secret, Secrets};
use crate::settings::{Settings, SetupError};
use crate::web::{ApiError, Response, json_response};

/// The current signing key.
pub const TOKEN_KEY_SECRET: &str = "entitlement_token_key";
/// The key before the last rotation: published, never used to sign.
pub const TOKEN_KEY_PREVIOUS_SECRET: &str = "entitlement_token_key_previous";
/// How a key entry starts.
pub const KEY_PREFIX: &str = "ed25519:";
/// `Cache-Control` of the JWKS: caches may keep it this long. A verifier
/// that meets an unknown `kid` fetches again anyway (rate-limited), so a
/// rotation is seen at once by Tollgate's client.
pub const JWKS_MAX_AGE_SECS: u32 = 300;

/// Why a key entry cannot be used. Names the secret, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenKeyError {
    #[error(
        "secret `{0}` is not an Ed25519 signing key: expected `ed25519:<base64url PKCS#8>`, as printed by `tollgate token-key new`"
    )]
    Malformed(String),
    #[error("the system random generator failed while making a key")]
    NoRandomness,
}

impl From<TokenKeyError> for SetupError {
    fn from(e: TokenKeyError) -> Self {
        SetupError::Invalid(e.to_string())
    }
}

/// Why `POST /v1/token` could not sign. Each maps to its HTTP answer below.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No `entitlement_token_key` in the secrets (503 `tokens_not_configured`).
    #[error("this deployment signs no tokens (no `entitlement_token_key` secret); use /v1/check")]
    NotConfigured,
    /// `jsonwebtoken` refused to sign (500 `token_signing_failed`); the
    /// cause is its error kind, which never holds key material.
    #[error("signing the token failed: {0}")]
    Signing(#[source] jsonwebtoken::errors::Error),
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::NotConfigured => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "tokens_not_configured",
                e.to_string(),
            ),
            TokenError::Signing(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "token_signing_failed",
                "signing the token failed",
            ),
        }
    }
}

/// A public key as published in the JWKS (RFC 8037 `OKP`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicJwk {
    pub kty: &'static str,
    pub crv: &'static str,
    /// The 32-byte public key, base64url.
    pub x: String,
    pub kid: String,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
}

impl PublicJwk {
    fn ed25519(public: &[u8]) -> Self {
        let x = URL_SAFE_NO_PAD.encode(public);
        // RFC 7638: SHA-256 over the required members, sorted, no spaces.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
        Self {
            kty: "OKP",
            crv: "Ed25519",
            x,
            kid,
            alg: tollgate_core::token::ALGORITHM,
            use_: "sig",
        }
    }
}

/// `GET /.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwks {
    pub keys: Vec<PublicJwk>,
}

/// A private key read from the secrets: the DER for signing and its public half.
struct ParsedKey {
    pkcs8: Vec<u8>,
    jwk: PublicJwk,
}

fn parse_key(name: &str, secret: &Secret) -> Result<ParsedKey, TokenKeyError> {
    let malformed = || TokenKeyError::Malformed(name.to_owned());
    let encoded = secret
        .expose()
        .trim()
        .strip_prefix(KEY_PREFIX)
        .ok_or_else(malformed)?;
    let pkcs8 = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| malformed())?;
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| malformed())?;
    let jwk = PublicJwk::ed25519(pair.public_key().as_ref());
    Ok(ParsedKey { pkcs8, jwk })
}

/// A fresh signing key as its secrets entry value (`ed25519:...`), for
/// `tollgate token-key new` and tests.
pub fn generate_key() -> Result<Secret, TokenKeyError> {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| TokenKeyError::NoRandomness)?;
    Ok(Secret::new(format!(
        "{KEY_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(doc.as_ref())
    )))
}

/// The `kid` of a key entry (its JWK thumbprint), to print beside a new key.
pub fn key_id(secret: &Secret) -> Result<String, TokenKeyError> {
    Ok(parse_key(TOKEN_KEY_SECRET, secret)?.jwk.kid)
}

/// Signs tokens with the current key; publishes it and the previous one.
pub struct TokenIssuer {
    policy: TokenPolicy,
    key: EncodingKey,
    header: Header,
    jwks: Jwks,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("policy", &self.policy)
            .field("kid", &self.header.kid)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// `None` when `entitlement_token_key` is not set; a malformed entry (or
    /// previous entry) is a cold-start error.
    pub fn from_secrets(
        secrets: &Secrets,
        policy: TokenPolicy,
    ) -> Result<Option<Self>, TokenKeyError> {
        let Some(current) = secrets.get(TOKEN_KEY_SECRET) else {
            return Ok(None);
        };
        let current = parse_key(TOKEN_KEY_SECRET, current)?;
        let previous = secrets
            .get(TOKEN_KEY_PREVIOUS_SECRET)
            .map(|s| parse_key(TOKEN_KEY_PREVIOUS_SECRET, s))
            .transpose()?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(current.jwk.kid.clone());
        let mut keys = vec![current.jwk];
        keys.extend(previous.map(|p| p.jwk).filter(|p| keys.first() != Some(p)));
        Ok(Some(Self {
            policy,
            key: EncodingKey::from_ed_der(&current.pkcs8),
            header,
            jwks: Jwks { keys },
        }))
    }

    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// The `kid` tokens are signed under now.
    pub fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    pub fn sign(&self, claims: &EntitlementClaims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&self.header, claims, &self.key).map_err(TokenError::Signing)
    }
}

/// The policy from `TOLLGATE_TOKEN_ISSUER`, `TOLLGATE_TOKEN_AUDIENCE` and
/// `TOLLGATE_TOKEN_MAX_LIFETIME` (whole seconds, 1 to 3600; default 300).
pub fn policy_from_settings(settings: &Settings) -> Result<TokenPolicy, SetupError> {
    let defaults = TokenPolicy::default();
    let max_lifetime = match settings.token_max_lifetime.as_deref() {
        None => DEFAULT_MAX_LIFETIME,
        Some(text) => {
            let invalid = || {
                SetupError::Invalid(format!(
                    "TOLLGATE_TOKEN_MAX_LIFETIME `{text}`: expected whole seconds from 1 to {}",
                    MAX_MAX_LIFETIME.num_seconds()
                ))
            };
            // Digits only: `parse` would also take a sign.
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            let secs: i64 = text.parse().map_err(|_| invalid())?;
            if secs < 1 || secs > MAX_MAX_LIFETIME.num_seconds() {
                return Err(invalid());
            }
            chrono::Duration::seconds(secs)
        }
    };
    Ok(TokenPolicy {
        issuer: settings.token_issuer.clone().unwrap_or(defaults.issuer),
        audience: settings.token_audience.clone().unwrap_or(defaults.audience),
        max_lifetime,
    })
}

/// The JWKS reply: the issuer's keys, or none; cacheable.
pub fn jwks_response(issuer: Option<&TokenIssuer>) -> Response {
    let empty = Jwks { keys: Vec::new() };
    let jwks = issuer.map_or(&empty, TokenIssuer::jwks);
    let mut res = json_response(StatusCode::OK, jwks);
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECS}")) {
        res.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use tollgate_core::entitlement::{Decision, Reason};

    fn claims() -> EntitlementClaims {
        let decision: Decision = serde_json::from_value(serde_json::json!({
            "allowed": true, "reason": "ok", "subscription": null, "status": null,
            "plan": null, "tier": "team", "features": [], "trial_days_left": null,
            "access_until": null, "seats": null
        }))
        .unwrap();
        EntitlementClaims {
            iss: "tollgate".into(),
            aud: "apps".into(),
            sub: "customer:github:1".into(),
            iat: 1_700_000_000,
            exp: 4_000_000_000,
            product: "ci".into(),
            feature: None,
            user: None,
            decision,
        }
    }

    #[test]
    fn a_signed_token_verifies_under_its_published_key() {
        let key = generate_key().unwrap();
        let secrets = Secrets::from_pairs([(TOKEN_KEY_SECRET, key.expose())]);
        let issuer = TokenIssuer::from_secrets(&secrets, TokenPolicy::default())
            .unwrap()
            .unwrap();
        let token = issuer.sign(&claims()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        let jwk = &issuer.jwks().keys[0];
        assert_eq!(header.kid.as_deref(), Some(jwk.kid.as_str()));
        assert_eq!(key_id(&key).unwrap(), jwk.kid);
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&["apps"]);
        let got = jsonwebtoken::decode::<EntitlementClaims>(
            &token,
            &DecodingKey::from_ed_components(&jwk.x).unwrap(),
            &v,
        )
        .unwrap();
        assert_eq!(got.claims, claims());
        assert_eq!(got.claims.decision.reason, Reason::Ok);
    }

    #[test]
    fn the_previous_key_is_published_but_never_signs() {
        let (new, old) = (generate_key().unwrap(), generate_key().unwrap());
        let secrets = Secrets::from_pairs([
            (TOKEN_KEY_SECRET, new.expose()),
            (TOKEN_KEY_PREVIOUS_SECRET, old.expose()),
        ]);
        let issuer = TokenIssuer::from_secrets(&secrets, TokenPolicy::default())
            .unwrap()
            .unwrap();
        let kids: Vec<_> = issuer.jwks().keys.iter().map(|k| k.kid.clone()).collect();
        assert_eq!(kids, [key_id(&new).unwrap(), key_id(&old).unwrap()]);
        assert_eq!(issuer.kid(), Some(key_id(&new).unwrap().as_str()));
    }

    #[test]
    fn malformed_keys_fail_at_cold_start_without_their_value() {
        for bad in [
            "",
            "ed25519:",
            "ed25519:bm90IGEga2V5",
            "rsa:abc",
            "hunter2-hunter2",
        ] {
            let secrets = Secrets::from_pairs([(TOKEN_KEY_SECRET, bad)]);
            let err = TokenIssuer::from_secrets(&secrets, TokenPolicy::default()).unwrap_err();
            let text = SetupError::from(err).to_string();
            assert!(text.contains(TOKEN_KEY_SECRET), "{text}");
            if bad.len() > 10 {
                assert!(!text.contains(bad), "{text}");
            }
        }
        let good = generate_key().unwrap();
        let secrets = Secrets::from_pairs([
            (TOKEN_KEY_SECRET, good.expose()),
            (TOKEN_KEY_PREVIOUS_SECRET, "nope"),
        ]);
        let err = TokenIssuer::from_secrets(&secrets, TokenPolicy::default()).unwrap_err();
        assert!(err.to_string().contains(TOKEN_KEY_PREVIOUS_SECRET), "{err}");
        assert!(
            TokenIssuer::from_secrets(&Secrets::default(), TokenPolicy::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_policy_reads_its_settings() {
        let policy = |pairs: &[(&str, &str)]| {
            let settings = Settings::from_lookup(|k| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| (*v).to_owned())
            });
            policy_from_settings(&settings)
        };
        assert_eq!(policy(&[]).unwrap(), TokenPolicy::default());
        let p = policy(&[
            ("TOLLGATE_TOKEN_ISSUER", "https://tg.example"),
            ("TOLLGATE_TOKEN_AUDIENCE", "billing"),
            ("TOLLGATE_TOKEN_MAX_LIFETIME", "60"),
        ])
        .unwrap();
        assert_eq!(
            (
                p.issuer.as_str(),
                p.audience.as_str(),
                p.max_lifetime.num_seconds()
            ),
            ("https://tg.example", "billing", 60)
        );
        for bad in ["0", "-5", "+5", "3601", "5m", "1e3"] {
            let err = policy(&[("TOLLGATE_TOKEN_MAX_LIFETIME", bad)]).unwrap_err();
            assert!(
                err.to_string().contains("TOLLGATE_TOKEN_MAX_LIFETIME"),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_jwks_is_cacheable_and_empty_without_a_key() {
        let res = jwks_response(None);
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()[header::CACHE_CONTROL],
            format!("public, max-age={JWKS_MAX_AGE_SECS}")
        );
        let body: serde_json::Value = serde_json::from_slice(res.body().as_ref()).unwrap();
        assert_eq!(body, serde_json::json!({"keys": []}));
    }
}
