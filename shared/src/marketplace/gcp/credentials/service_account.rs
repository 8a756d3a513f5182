//! A service-account key and the JWT-bearer grant (RFC 7523) that trades
//! an assertion signed with it for an access token, as Google documents it
//! (<https://developers.google.com/identity/protocols/oauth2/service-account#httprest>):
//! RS256, header `kid` = the key's id, claims `iss` = the account's email,
//! `scope`, `aud` = the token endpoint, `iat` = now, `exp` ≤ `iat` + 1 h;
//! POSTed form-encoded as
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`;
//! the reply is `{"access_token", "expires_in", "token_type"}`.
//!
//! **Which endpoint.** The configured `TOLLGATE_GOOGLE_TOKEN_URL` always
//! wins over the key's own `token_uri`: the endpoint is a setting the
//! deployment reviews (Terraform, `make dev`, tests), not something a
//! secret's content may redirect. A key whose `token_uri` differs is still
//! accepted, with a warning at cold start naming both URLs, so a real key
//! pointed at a local stand-in (or the reverse) never goes unnoticed.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::{
    AccessToken, CredentialsError, FetchToken, SCOPE, SERVICE_ACCOUNT_KEY_SECRET, decode,
    describe_json_error, endpoint_url, exchange, http_client,
};
use crate::secret::Secret;

const ENDPOINT: &str = "Google token endpoint";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Assertion lifetime: Google accepts at most one hour.
const ASSERTION_LIFETIME_SECS: i64 = 3600;
/// Used when a token reply omits `expires_in` (Google always sends it):
/// short, so the token is replaced soon rather than trusted long.
const DEFAULT_EXPIRES_IN_SECS: i64 = 300;

/// A service account's JSON key. The private key is parsed once and never
/// printed.
#[derive(Clone)]
pub struct ServiceAccountKey {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    key: EncodingKey,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .finish_non_exhaustive()
    }
}

/// The fields of Google's key file that are used; the rest are ignored.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

impl ServiceAccountKey {
    /// Parses the key JSON held in [`SERVICE_ACCOUNT_KEY_SECRET`]. Errors
    /// give a position or a field name, never key material.
    pub fn from_json(secret: &Secret) -> Result<Self, CredentialsError> {
        let invalid = |message: String| CredentialsError::InvalidConfig {
            source_name: SERVICE_ACCOUNT_KEY_SECRET,
            message,
        };
        let file: KeyFile =
            serde_json::from_str(secret.expose()).map_err(|e| invalid(describe_json_error(&e)))?;
        if let Some(kind) = file.kind.as_deref()
            && kind != "service_account"
        {
            return Err(invalid("`type` is not `service_account`".into()));
        }
        if file.client_email.trim().is_empty() {
            return Err(invalid("`client_email` is empty".into()));
        }
        let key = EncodingKey::from_rsa_pem(file.private_key.as_bytes())
            .map_err(|_| invalid("`private_key` is not an RSA private key in PEM form".into()))?;
        Ok(Self {
            client_email: file.client_email.trim().to_owned(),
            private_key_id: file.private_key_id.filter(|k| !k.is_empty()),
            token_uri: file.token_uri.filter(|u| !u.is_empty()),
            key,
        })
    }

    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    pub fn private_key_id(&self) -> Option<&str> {
        self.private_key_id.as_deref()
    }

    /// The key's own `token_uri` (informational: see the module docs).
    pub fn token_uri(&self) -> Option<&str> {
        self.token_uri.as_deref()
    }

    /// The signed assertion for `audience` (the token endpoint) at `now`.
    pub fn assertion(
        &self,
        audience: &str,
        now: DateTime<Utc>,
    ) -> Result<Secret, CredentialsError> {
        let header = Header {
            kid: self.private_key_id.clone(),
            ..Header::new(Algorithm::RS256)
        };
        let iat = now.timestamp();
        let claims = AssertionClaims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: audience,
            iat,
            exp: iat + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(Secret::new)
            .map_err(|_| CredentialsError::Signing("service-account assertion"))
    }
}

/// The assertion's claims.
#[derive(Debug, Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// Fetches tokens with the JWT-bearer grant.
#[derive(Debug, Clone)]
pub struct JwtBearer {
    key: ServiceAccountKey,
    token_url: String,
    http: reqwest::Client,
}

impl JwtBearer {
    /// `token_url` is `TOLLGATE_GOOGLE_TOKEN_URL`; it is also the
    /// assertion's `aud`.
    pub fn new(key: ServiceAccountKey, token_url: &str) -> Result<Self, CredentialsError> {
        let url = endpoint_url(token_url, "TOLLGATE_GOOGLE_TOKEN_URL")?;
        if let Some(own) = key.token_uri()
            && own.trim_end_matches('/') != url.as_str().trim_end_matches('/')
        {
            tracing::warn!(
                configured = %url,
                key_token_uri = own,
                "the service-account key names another token endpoint; using TOLLGATE_GOOGLE_TOKEN_URL"
            );
        }
        Ok(Self {
            key,
            token_url: token_url.trim().to_owned(),
            http: http_client()?,
        })
    }

    pub fn key(&self) -> &ServiceAccountKey {
        &self.key
    }

    pub fn token_url(&self) -> &str {
        &self.token_url
    }
}

/// The token endpoint's reply.
#[derive(Deserialize)]
pub(super) struct TokenReply {
    pub(super) access_token: String,
    pub(super) expires_in: Option<i64>,
    pub(super) token_type: Option<String>,
}

impl TokenReply {
    /// The token, expiring `expires_in` after `now`.
    pub(super) fn into_token(
        self,
        endpoint: &'static str,
        now: DateTime<Utc>,
    ) -> Result<AccessToken, CredentialsError> {
        let bad = |message: &str| CredentialsError::Decode {
            endpoint,
            message: message.to_owned(),
        };
        if self.access_token.is_empty() {
            return Err(bad("`access_token` is empty"));
        }
        if let Some(kind) = self.token_type.as_deref()
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(bad("`token_type` is not Bearer"));
        }
        let expires_in = self.expires_in.unwrap_or(DEFAULT_EXPIRES_IN_SECS);
        if expires_in <= 0 {
            return Err(bad("`expires_in` is not positive"));
        }
        let expires_at = now + chrono::Duration::seconds(expires_in.min(24 * 3600));
        Ok(AccessToken::new(self.access_token, expires_at))
    }
}

#[async_trait]
impl FetchToken for JwtBearer {
    async fn fetch(&self, now: DateTime<Utc>) -> Result<AccessToken, CredentialsError> {
        let assertion = self.key.assertion(&self.token_url, now)?;
        let req = self.http.post(&self.token_url).form(&[
            ("grant_type", GRANT_TYPE),
            ("assertion", assertion.expose()),
        ]);
        let body = exchange(ENDPOINT, req, &[assertion.expose()]).await?;
        decode::<TokenReply>(ENDPOINT, &body)?.into_token(ENDPOINT, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_keys_are_refused_without_quoting_them() {
        let cases = [
            (
                r#"{"client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nsecretstuff\n-----END PRIVATE KEY-----\n"}"#,
                "`private_key` is not an RSA private key in PEM form",
            ),
            (
                r#"{"private_key":"secretstuff"}"#,
                "`client_email` is missing",
            ),
            (
                r#"{"client_email":"a@b","private_key":secretstuff}"#,
                "invalid JSON (expected value) at line 1 column 37",
            ),
            (
                r#"{"type":"authorized_user","client_email":"a@b","private_key":"secretstuff"}"#,
                "`type` is not `service_account`",
            ),
        ];
        for (json, want) in cases {
            let err = ServiceAccountKey::from_json(&Secret::new(json))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
            assert!(err.contains(SERVICE_ACCOUNT_KEY_SECRET), "{err}");
            assert!(!err.contains("secretstuff"), "{err}");
        }
    }

    #[test]
    fn token_replies_must_be_bearer_tokens_with_a_lifetime() {
        let now = Utc::now();
        let reply = |json: &str| {
            decode::<TokenReply>(ENDPOINT, json.as_bytes())
                .and_then(|r| r.into_token(ENDPOINT, now))
        };
        let t =
            reply(r#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#).unwrap();
        assert_eq!(t.expires_at(), now + chrono::Duration::seconds(3599));
        assert!(reply(r#"{"access_token":"ya29.x","expires_in":0}"#).is_err());
        assert!(reply(r#"{"access_token":"ya29.x","token_type":"mac"}"#).is_err());
        let err = reply(r#"{"access_token":42}"#).unwrap_err().to_string();
        assert!(
            err.ends_with("invalid type: integer, expected a string at line 1 column 18"),
            "{err}"
        );
    }
}
