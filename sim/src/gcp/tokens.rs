//! Google's token side: the OAuth2 token endpoint (service-account
//! JWT-bearer grant), the service-account key file, the OIDC JWK set and ID
//! tokens Pub/Sub push requests carry, and the sign-up JWT with the x509
//! certificate map it is verified against.
//!
//! Formats follow Google's documentation:
//! - token endpoint, assertion claims, reply and `invalid_grant` errors:
//!   <https://developers.google.com/identity/protocols/oauth2/service-account>;
//! - push ID tokens (`iss`, `aud`, `email`, `email_verified`, `kid`) and the
//!   JWK set at `https://www.googleapis.com/oauth2/v3/certs`:
//!   <https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions>;
//! - the sign-up JWT (`x-gcp-marketplace-token`, RS256 with `kid`, `iss` the
//!   x509 URL of `cloud-commerce-partner@system.gserviceaccount.com`, 5-minute
//!   lifetime, `sub` the procurement account id):
//!   <https://cloud.google.com/marketplace/docs/partners/integrated-saas/frontend-integration>.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ids::{numeric, random_hex};
use super::keys::RsaKey;
use super::{Fault, GcpSim, Seen, SimError};

/// `grant_type` of the service-account flow.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The one scope the Procurement API takes.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// `iss` of Google-signed ID tokens (Google also uses `accounts.google.com`).
pub const OIDC_ISSUER: &str = "https://accounts.google.com";
/// The service account that signs Marketplace sign-up tokens.
pub const SIGNUP_SIGNER: &str = "cloud-commerce-partner@system.gserviceaccount.com";
/// `iss` of sign-up tokens: Google's real x509 URL for [`SIGNUP_SIGNER`]
/// (the stand-in serves the certificates at [`SIGNUP_CERTS_PATH`]; the
/// issuer stays Google's, so code under test must pin the certificate URL
/// rather than fetch `iss`).
pub const SIGNUP_ISSUER: &str = "https://www.googleapis.com/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com";
/// Longest lifetime Google gives a sign-up token.
pub const SIGNUP_TOKEN_LIFETIME_SECS: i64 = 300;

pub const TOKEN_PATH: &str = "/token";
pub const OIDC_CERTS_PATH: &str = "/oauth2/v3/certs";
pub const SIGNUP_CERTS_PATH: &str =
    "/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com";

/// Lifetime of access tokens (Google answers `expires_in: 3599`).
const ACCESS_TOKEN_SECS: i64 = 3599;
/// Clock skew tolerated on `iat` of an assertion.
const SKEW_SECS: i64 = 60;
/// `Cache-Control` Google sends with its public keys.
const KEYS_CACHE_CONTROL: &str = "public, max-age=21600, must-revalidate, no-transform";

/// A service-account key file, the JSON Google hands out when a key is
/// created (`gcloud iam service-accounts keys create`). The stand-in's
/// `token_uri` is its own token endpoint. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountKey {
    #[serde(rename = "type")]
    pub kind: String,
    pub project_id: String,
    pub private_key_id: String,
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_key: String,
    pub client_email: String,
    pub client_id: String,
    pub auth_uri: String,
    pub token_uri: String,
    pub auth_provider_x509_cert_url: String,
    pub client_x509_cert_url: String,
    pub universe_domain: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// The key file's text (pretty JSON, as Google's downloads are).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Claims of a Google-signed OIDC ID token, as Pub/Sub push sends them
/// (field order as in Google's example).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub aud: String,
    pub azp: String,
    pub email: String,
    pub email_verified: bool,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub sub: String,
}

/// Claims of a Marketplace sign-up JWT (`x-gcp-marketplace-token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignupClaims {
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    pub aud: String,
    /// The procurement account id.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<GoogleClaims>,
}

/// The optional `google` object of a sign-up JWT.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GoogleClaims {
    /// Obfuscated id of the Google user who clicked (may be absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Order ids, sent when the listing allows several orders per account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<String>,
}

/// Push tokens a verifier must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPushToken {
    /// `exp` an hour ago.
    Expired,
    /// `iss` another issuer.
    WrongIssuer,
    /// `aud` not the subscription's audience.
    WrongAudience,
    /// `email` another service account.
    WrongEmail,
    /// `email_verified: false`.
    EmailUnverified,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256, keyed with the published public key's PEM bytes.
    Hs256WithPublicKey,
    /// A `kid` the JWK set does not have.
    UnknownKid,
    /// Signed by another key under the published `kid`.
    BadSignature,
}

impl BadPushToken {
    pub const ALL: [BadPushToken; 9] = [
        BadPushToken::Expired,
        BadPushToken::WrongIssuer,
        BadPushToken::WrongAudience,
        BadPushToken::WrongEmail,
        BadPushToken::EmailUnverified,
        BadPushToken::AlgNone,
        BadPushToken::Hs256WithPublicKey,
        BadPushToken::UnknownKid,
        BadPushToken::BadSignature,
    ];
}

/// Sign-up tokens a verifier must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadSignupToken {
    /// `exp - iat` longer than 300 s (here 600 s, still unexpired).
    TooLong,
    /// `sub` empty.
    EmptySub,
    /// `aud` another domain.
    WrongAudience,
    /// `exp` five minutes ago.
    Expired,
    /// `iss` not the pinned x509 URL.
    WrongIssuer,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256, keyed with the published certificate's PEM bytes.
    Hs256WithCertificate,
    /// A `kid` the certificate map does not have.
    UnknownKid,
    /// Signed by another key under the published `kid`.
    BadSignature,
}

impl BadSignupToken {
    pub const ALL: [BadSignupToken; 9] = [
        BadSignupToken::TooLong,
        BadSignupToken::EmptySub,
        BadSignupToken::WrongAudience,
        BadSignupToken::Expired,
        BadSignupToken::WrongIssuer,
        BadSignupToken::AlgNone,
        BadSignupToken::Hs256WithCertificate,
        BadSignupToken::UnknownKid,
        BadSignupToken::BadSignature,
    ];
}

/// The stand-in's identities: the vendor's service account (whose key the
/// product holds), the push subscription's service account, and Google's
/// own signing keys (the last of each list signs; all are published).
pub(crate) struct Keys {
    pub project_id: String,
    pub sa_email: String,
    pub sa_client_id: String,
    pub sa_key: RsaKey,
    pub push_email: String,
    pub push_unique_id: String,
    pub oidc: Vec<RsaKey>,
    pub signup: Vec<(RsaKey, String)>,
}

impl Keys {
    pub fn generate(project_id: &str) -> Result<Self, SimError> {
        Ok(Self {
            project_id: project_id.to_owned(),
            sa_email: format!("tollgate-procurement@{project_id}.iam.gserviceaccount.com"),
            sa_client_id: numeric(21),
            sa_key: RsaKey::generate()?,
            push_email: format!("marketplace-push@{project_id}.iam.gserviceaccount.com"),
            push_unique_id: numeric(21),
            oidc: vec![RsaKey::generate()?],
            signup: vec![signup_key()?],
        })
    }

    pub fn oidc_current(&self) -> &RsaKey {
        // Never empty: created with one key, rotation only adds.
        &self.oidc[self.oidc.len() - 1]
    }

    pub fn signup_current(&self) -> &(RsaKey, String) {
        &self.signup[self.signup.len() - 1]
    }

    pub fn rotate_oidc(&mut self) -> Result<(), SimError> {
        self.oidc.push(RsaKey::generate()?);
        if self.oidc.len() > 2 {
            self.oidc.remove(0);
        }
        Ok(())
    }

    pub fn rotate_signup(&mut self) -> Result<(), SimError> {
        self.signup.push(signup_key()?);
        if self.signup.len() > 2 {
            self.signup.remove(0);
        }
        Ok(())
    }

    pub fn service_account_key(&self, token_uri: &str) -> ServiceAccountKey {
        ServiceAccountKey {
            kind: "service_account".into(),
            project_id: self.project_id.clone(),
            private_key_id: self.sa_key.kid.clone(),
            private_key: self.sa_key.private_pem().to_owned(),
            client_email: self.sa_email.clone(),
            client_id: self.sa_client_id.clone(),
            auth_uri: "https://accounts.google.com/o/oauth2/auth".into(),
            token_uri: token_uri.to_owned(),
            auth_provider_x509_cert_url: "https://www.googleapis.com/oauth2/v1/certs".into(),
            client_x509_cert_url: format!(
                "https://www.googleapis.com/robot/v1/metadata/x509/{}",
                self.sa_email.replace('@', "%40")
            ),
            universe_domain: "googleapis.com".into(),
        }
    }

    pub fn jwks(&self) -> Value {
        json!({ "keys": self.oidc.iter().rev().map(RsaKey::jwk).collect::<Vec<_>>() })
    }

    pub fn signup_certs(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .signup
            .iter()
            .rev()
            .map(|(k, cert)| (k.kid.clone(), Value::String(cert.clone())))
            .collect();
        Value::Object(map)
    }

    pub fn push_claims(&self, audience: &str, now: DateTime<Utc>) -> IdTokenClaims {
        IdTokenClaims {
            aud: audience.to_owned(),
            azp: self.push_unique_id.clone(),
            email: self.push_email.clone(),
            email_verified: true,
            exp: (now + Duration::hours(1)).timestamp(),
            iat: now.timestamp(),
            iss: OIDC_ISSUER.to_owned(),
            sub: self.push_unique_id.clone(),
        }
    }

    pub fn mint_id_token(&self, claims: &IdTokenClaims) -> String {
        let key = self.oidc_current();
        sign(rs256(&key.kid, true), claims, key.encoding_key())
    }

    pub fn bad_push_token(
        &self,
        audience: &str,
        case: BadPushToken,
        now: DateTime<Utc>,
    ) -> Result<String, SimError> {
        let mut claims = self.push_claims(audience, now);
        let key = self.oidc_current();
        Ok(match case {
            BadPushToken::Expired => {
                claims.iat = (now - Duration::hours(2)).timestamp();
                claims.exp = (now - Duration::hours(1)).timestamp();
                self.mint_id_token(&claims)
            }
            BadPushToken::WrongIssuer => {
                claims.iss = "https://accounts.example.com".into();
                self.mint_id_token(&claims)
            }
            BadPushToken::WrongAudience => {
                claims.aud = format!("{audience}/not-this-one");
                self.mint_id_token(&claims)
            }
            BadPushToken::WrongEmail => {
                claims.email = format!("someone-else@{}.iam.gserviceaccount.com", self.project_id);
                self.mint_id_token(&claims)
            }
            BadPushToken::EmailUnverified => {
                claims.email_verified = false;
                self.mint_id_token(&claims)
            }
            BadPushToken::AlgNone => unsigned(&key.kid, &claims),
            BadPushToken::Hs256WithPublicKey => sign(
                hs256(&key.kid),
                &claims,
                &EncodingKey::from_secret(key.public_pem().as_bytes()),
            ),
            BadPushToken::UnknownKid => {
                sign(rs256(&random_hex(20), true), &claims, key.encoding_key())
            }
            BadPushToken::BadSignature => {
                let other = RsaKey::generate()?;
                sign(rs256(&key.kid, true), &claims, other.encoding_key())
            }
        })
    }

    pub fn mint_signup_token(&self, claims: &SignupClaims) -> String {
        let (key, _) = self.signup_current();
        sign(rs256(&key.kid, false), claims, key.encoding_key())
    }

    pub fn bad_signup_token(
        &self,
        mut claims: SignupClaims,
        case: BadSignupToken,
        now: DateTime<Utc>,
    ) -> Result<String, SimError> {
        let (key, cert) = self.signup_current();
        Ok(match case {
            BadSignupToken::TooLong => {
                claims.iat = now.timestamp();
                claims.exp = claims.iat + 2 * SIGNUP_TOKEN_LIFETIME_SECS;
                self.mint_signup_token(&claims)
            }
            BadSignupToken::EmptySub => {
                claims.sub = String::new();
                self.mint_signup_token(&claims)
            }
            BadSignupToken::WrongAudience => {
                claims.aud = format!("not-{}", claims.aud);
                self.mint_signup_token(&claims)
            }
            BadSignupToken::Expired => {
                claims.iat = (now - Duration::minutes(10)).timestamp();
                claims.exp = (now - Duration::minutes(5)).timestamp();
                self.mint_signup_token(&claims)
            }
            BadSignupToken::WrongIssuer => {
                claims.iss = "https://www.googleapis.com/robot/v1/metadata/x509/someone-else@system.gserviceaccount.com".into();
                self.mint_signup_token(&claims)
            }
            BadSignupToken::AlgNone => unsigned(&key.kid, &claims),
            BadSignupToken::Hs256WithCertificate => sign(
                hs256(&key.kid),
                &claims,
                &EncodingKey::from_secret(cert.as_bytes()),
            ),
            BadSignupToken::UnknownKid => {
                sign(rs256(&random_hex(20), false), &claims, key.encoding_key())
            }
            BadSignupToken::BadSignature => {
                let other = RsaKey::generate()?;
                sign(rs256(&key.kid, false), &claims, other.encoding_key())
            }
        })
    }
}

fn signup_key() -> Result<(RsaKey, String), SimError> {
    let key = RsaKey::generate()?;
    let cert = key.self_signed_cert_pem(SIGNUP_SIGNER, Utc::now(), 14)?;
    Ok((key, cert))
}

fn rs256(kid: &str, typ: bool) -> Header {
    Header {
        kid: Some(kid.to_owned()),
        typ: typ.then(|| "JWT".to_owned()),
        ..Header::new(Algorithm::RS256)
    }
}

fn hs256(kid: &str) -> Header {
    Header {
        kid: Some(kid.to_owned()),
        ..Header::new(Algorithm::HS256)
    }
}

fn sign<T: Serialize>(header: Header, claims: &T, key: &EncodingKey) -> String {
    // Encoding only fails for a key of the wrong family, which the callers
    // above never pass.
    jsonwebtoken::encode(&header, claims, key).unwrap_or_default()
}

/// An `alg: none` token: header and claims, empty signature.
fn unsigned<T: Serialize>(kid: &str, claims: &T) -> String {
    let header = json!({ "alg": "none", "kid": kid, "typ": "JWT" });
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default());
    let claims = serde_json::to_value(claims).unwrap_or(Value::Null);
    format!("{}.{}.", enc(&header), enc(&claims))
}

// ----------------------------------------------------------------- routes --

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut res = (
        status,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    no_store(&mut res);
    res
}

fn no_store(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

const SHORT_LIVED: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";
const BAD_SIGNATURE: &str = "Invalid JWT Signature.";

/// `POST /token`, form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`.
pub(crate) async fn token(State(sim): State<GcpSim>, headers: HeaderMap, body: Bytes) -> Response {
    let res = exchange(&sim, &headers, &body);
    sim.lock().seen.push(Seen {
        method: "POST".into(),
        path: TOKEN_PATH.into(),
        query: None,
        // The form holds the assertion, a credential: never recorded.
        body: None,
        status: res.status().as_u16(),
    });
    res
}

fn exchange(sim: &GcpSim, headers: &HeaderMap, body: &[u8]) -> Response {
    let fault = sim.lock().token_faults.pop_front();
    if let Some(fault) = fault {
        return match fault {
            Fault::Unavailable => oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The service is currently unavailable.",
            ),
            Fault::RateLimited => oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                "Rate Limit Exceeded",
            ),
            Fault::Internal => oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_failure",
                "Backend Error",
            ),
        };
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    let grant_type = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant_type != JWT_BEARER_GRANT {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant_type}"),
        );
    }
    let Some(assertion) = form.get("assertion").filter(|a| !a.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let mut s = sim.lock();
    let token_url = s.url(TOKEN_PATH);
    let keys = &s.keys;
    // Google finds the key by the issuer first, then checks the signature.
    let Some(claims) = unverified_claims(assertion) else {
        return invalid_grant("Invalid JWT: the assertion is not a JWT.");
    };
    if claims.get("iss").and_then(Value::as_str) != Some(keys.sa_email.as_str()) {
        return invalid_grant("Invalid grant: account not found");
    }
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return invalid_grant(BAD_SIGNATURE);
    };
    if header.alg != Algorithm::RS256
        || header
            .kid
            .as_deref()
            .is_some_and(|kid| kid != keys.sa_key.kid)
    {
        return invalid_grant(BAD_SIGNATURE);
    }
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    if jsonwebtoken::decode::<Value>(assertion, &keys.sa_key.decoding_key(), &validation).is_err() {
        return invalid_grant(BAD_SIGNATURE);
    }
    let now = Utc::now().timestamp();
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_i64),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return invalid_grant(SHORT_LIVED);
    };
    if iat > now + SKEW_SECS || exp <= now || exp - iat > 3600 || exp < iat {
        return invalid_grant(SHORT_LIVED);
    }
    if claims.get("aud").and_then(Value::as_str) != Some(token_url.as_str()) {
        return invalid_grant("Invalid JWT: Failed audience check.");
    }
    let scope = claims.get("scope").and_then(Value::as_str).unwrap_or("");
    if scope.trim().is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Empty or missing scope not allowed.",
        );
    }
    if !scope.split(' ').any(|s| s == CLOUD_PLATFORM_SCOPE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let access_token = format!("ya29.c.{}", random_hex(48));
    s.access_tokens.insert(
        access_token.clone(),
        Utc::now() + Duration::seconds(ACCESS_TOKEN_SECS),
    );
    s.access_tokens_issued += 1;
    let mut res = (
        StatusCode::OK,
        axum::Json(json!({
            "access_token": access_token,
            "expires_in": ACCESS_TOKEN_SECS,
            "token_type": "Bearer",
        })),
    )
        .into_response();
    no_store(&mut res);
    res
}

/// The claims of a compact JWT, without checking anything.
fn unverified_claims(jwt: &str) -> Option<serde_json::Map<String, Value>> {
    let mut parts = jwt.split('.');
    let (_, claims, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

fn public_keys(body: Value) -> Response {
    let mut res = (StatusCode::OK, axum::Json(body)).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(KEYS_CACHE_CONTROL),
    );
    res
}

fn record_get(sim: &GcpSim, path: &str) {
    sim.lock().seen.push(Seen {
        method: "GET".into(),
        path: path.into(),
        query: None,
        body: None,
        status: 200,
    });
}

/// `GET /oauth2/v3/certs`: `{"keys":[{kty,alg,use,kid,n,e}]}`.
pub(crate) async fn oidc_certs(State(sim): State<GcpSim>) -> Response {
    record_get(&sim, OIDC_CERTS_PATH);
    let body = sim.lock().keys.jwks();
    public_keys(body)
}

/// `GET /robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com`:
/// `{"<kid>":"-----BEGIN CERTIFICATE-----\n..."}`.
pub(crate) async fn signup_certs(State(sim): State<GcpSim>) -> Response {
    record_get(&sim, SIGNUP_CERTS_PATH);
    let body = sim.lock().keys.signup_certs();
    public_keys(body)
}
