//! GitHub App JWTs: how Tollgate authenticates as the app for the
//! `/marketplace_listing/...` endpoints (reconciliation, entitlement checks
//! against GitHub's truth).
//!
//! Per GitHub's "Generating a JSON Web Token (JWT) for a GitHub App"
//! (<https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app>): RS256
//! signed with the app's private key, `iat` 60 s in the past (clock drift),
//! `exp` at most 10 minutes ahead, `iss` the app id (or, since 2024-05, the
//! client id). Sent as `Authorization: Bearer <jwt>`.

use std::fmt;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::secret::{Secret, Secrets};

/// Secret holding the app's private key (the PEM GitHub lets you download).
pub const PRIVATE_KEY_SECRET: &str = "github_app_private_key";
/// Secret (or plain value) holding the numeric app id; optional.
pub const APP_ID_SECRET: &str = "github_app_id";
/// Secret holding the app's client id, used as `iss` without an app id.
pub const CLIENT_ID_SECRET: &str = "github_client_id";

/// How far back `iat` is set, against clock drift.
const BACKDATE_SECS: i64 = 60;
/// `exp` − now. GitHub refuses more than 10 minutes; stay a minute inside.
const LIFETIME_SECS: i64 = 9 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppJwtError {
    #[error("secret `{0}` is missing")]
    MissingSecret(&'static str),
    /// The key does not parse as an RSA private key (PKCS#1 or PKCS#8 PEM).
    /// The message never contains key material.
    #[error("secret `{PRIVATE_KEY_SECRET}` is not an RSA private key in PEM form")]
    InvalidKey,
    #[error("signing the app JWT failed")]
    Signing,
}

/// The claims GitHub reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Claims {
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// A signed app JWT; valid for a few minutes. Never printed.
#[derive(Clone)]
pub struct AppJwt(Secret);

impl AppJwt {
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for AppJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppJwt(***)")
    }
}

/// Signs app JWTs. Built once at cold start (parsing the PEM is the
/// expensive part); signing is cheap enough to do per request.
#[derive(Clone)]
pub struct AppJwtSigner {
    issuer: String,
    key: EncodingKey,
}

impl fmt::Debug for AppJwtSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppJwtSigner")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl AppJwtSigner {
    /// `issuer` is the app id (`"123456"`) or the client id (`"Iv23li…"`).
    pub fn new(issuer: impl Into<String>, private_key_pem: &Secret) -> Result<Self, AppJwtError> {
        let key = EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes())
            .map_err(|_| AppJwtError::InvalidKey)?;
        Ok(Self {
            issuer: issuer.into(),
            key,
        })
    }

    /// From `github_app_private_key` and `github_app_id` (preferred) or
    /// `github_client_id`.
    pub fn from_secrets(secrets: &Secrets) -> Result<Self, AppJwtError> {
        let key = secrets
            .get(PRIVATE_KEY_SECRET)
            .ok_or(AppJwtError::MissingSecret(PRIVATE_KEY_SECRET))?;
        let issuer = secrets
            .get(APP_ID_SECRET)
            .or_else(|| secrets.get(CLIENT_ID_SECRET))
            .ok_or(AppJwtError::MissingSecret(APP_ID_SECRET))?;
        Self::new(issuer.expose().trim(), key)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The claims of a token issued at `now`.
    pub fn claims_at(&self, now: DateTime<Utc>) -> Claims {
        let now = now.timestamp();
        Claims {
            iat: now - BACKDATE_SECS,
            exp: now + LIFETIME_SECS,
            iss: self.issuer.clone(),
        }
    }

    /// A JWT valid from a minute before `now` to nine minutes after.
    pub fn sign_at(&self, now: DateTime<Utc>) -> Result<AppJwt, AppJwtError> {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &self.claims_at(now),
            &self.key,
        )
        .map_err(|_| AppJwtError::Signing)?;
        Ok(AppJwt(Secret::new(token)))
    }

    /// A JWT valid from now on (the system clock).
    pub fn sign(&self) -> Result<AppJwt, AppJwtError> {
        self.sign_at(Utc::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::KeyPair as _;
    use base64::Engine;
    use chrono::TimeZone;
    use jsonwebtoken::{DecodingKey, Validation};

    /// A fresh RSA key: PEM of the private key in the given label, and the
    /// public key as DER `RSAPublicKey`. Keys are made at test time; none is
    /// ever committed.
    fn key(pkcs1: bool) -> (Secret, Vec<u8>) {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&pair).unwrap();
        let (label, der) = if pkcs1 {
            ("RSA PRIVATE KEY", pkcs1_from_pkcs8(pkcs8.as_ref()))
        } else {
            ("PRIVATE KEY", pkcs8.as_ref().to_vec())
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        );
        (Secret::new(pem), pair.public_key().as_ref().to_vec())
    }

    /// Unwraps the `RSAPrivateKey` (PKCS#1, what GitHub hands out) from a
    /// PKCS#8 `PrivateKeyInfo`: SEQUENCE { INTEGER, SEQUENCE, OCTET STRING }.
    fn pkcs1_from_pkcs8(der: &[u8]) -> Vec<u8> {
        // Reads a DER header at `at`; returns (content start, content length).
        fn tlv(der: &[u8], at: usize) -> (usize, usize) {
            let first = der[at + 1];
            if first < 0x80 {
                return (at + 2, first as usize);
            }
            let n = (first & 0x7f) as usize;
            let len = der[at + 2..at + 2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (at + 2 + n, len)
        }
        let (outer, _) = tlv(der, 0);
        let (v_start, v_len) = tlv(der, outer);
        let alg_at = v_start + v_len;
        let (a_start, a_len) = tlv(der, alg_at);
        let octet_at = a_start + a_len;
        assert_eq!(der[octet_at], 0x04, "OCTET STRING");
        let (k_start, k_len) = tlv(der, octet_at);
        der[k_start..k_start + k_len].to_vec()
    }

    fn decode(token: &AppJwt, public_der: &[u8], now: DateTime<Utc>) -> Claims {
        let mut v = Validation::new(Algorithm::RS256);
        v.set_required_spec_claims(&["exp", "iat", "iss"]);
        // Validate `exp` against the injected `now`, not the wall clock.
        v.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(
            token.expose(),
            &DecodingKey::from_rsa_der(public_der),
            &v,
        )
        .unwrap();
        assert_eq!(data.header.alg, Algorithm::RS256);
        assert!(data.claims.exp > now.timestamp(), "not yet expired");
        data.claims
    }

    #[test]
    fn signs_rs256_with_githubs_claims_and_verifies_with_the_public_key() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        for pkcs1 in [true, false] {
            let (pem, public) = key(pkcs1);
            let signer = AppJwtSigner::new("123456", &pem).unwrap();
            let claims = decode(&signer.sign_at(now).unwrap(), &public, now);
            assert_eq!(claims.iss, "123456");
            assert_eq!(claims.iat, now.timestamp() - 60, "iat is a minute back");
            assert!(
                claims.exp <= now.timestamp() + 600,
                "exp at most 10 min ahead"
            );
            assert!(claims.exp - claims.iat <= 600 + 60);
        }
    }

    #[test]
    fn a_token_signed_by_another_key_does_not_verify() {
        let now = Utc::now();
        let (pem, _) = key(false);
        let (_, other_public) = key(false);
        let token = AppJwtSigner::new("1", &pem).unwrap().sign_at(now).unwrap();
        let v = Validation::new(Algorithm::RS256);
        assert!(
            jsonwebtoken::decode::<Claims>(
                token.expose(),
                &DecodingKey::from_rsa_der(&other_public),
                &v
            )
            .is_err()
        );
    }

    #[test]
    fn issuer_comes_from_the_app_id_else_the_client_id() {
        let (pem, _) = key(false);
        let pem = pem.expose().to_owned();
        let both = Secrets::from_pairs([
            (PRIVATE_KEY_SECRET, pem.as_str()),
            (APP_ID_SECRET, "42"),
            (CLIENT_ID_SECRET, "Iv23liABC"),
        ]);
        assert_eq!(AppJwtSigner::from_secrets(&both).unwrap().issuer(), "42");
        let client_only = Secrets::from_pairs([
            (PRIVATE_KEY_SECRET, pem.as_str()),
            (CLIENT_ID_SECRET, "Iv23liABC"),
        ]);
        assert_eq!(
            AppJwtSigner::from_secrets(&client_only).unwrap().issuer(),
            "Iv23liABC"
        );
        let none = Secrets::from_pairs([(CLIENT_ID_SECRET, "Iv23liABC")]);
        assert_eq!(
            AppJwtSigner::from_secrets(&none).unwrap_err(),
            AppJwtError::MissingSecret(PRIVATE_KEY_SECRET)
        );
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them_and_nothing_prints_secrets() {
        let err = AppJwtSigner::new(
            "1",
            &Secret::new(
                "-----BEGIN RSA PRIVATE KEY-----\nnot-a-key\n-----END RSA PRIVATE KEY-----",
            ),
        )
        .unwrap_err();
        assert_eq!(err, AppJwtError::InvalidKey);
        assert!(!err.to_string().contains("not-a-key"));
        let (pem, _) = key(false);
        let signer = AppJwtSigner::new("7", &pem).unwrap();
        let token = signer.sign().unwrap();
        let shown = format!("{signer:?} {token:?}");
        assert!(
            !shown.contains(token.expose()) && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }
}
