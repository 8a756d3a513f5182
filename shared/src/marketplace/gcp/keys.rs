//! Google's public signing keys, fetched from a pinned URL and cached.
//!
//! Two sources, one cache: the OIDC JWKS that signs Pub/Sub push tokens
//! (`{"keys":[{kid,n,e,…}]}`) and the x509 certificates of
//! `cloud-commerce-partner@system.gserviceaccount.com` that sign sign-up
//! tokens (`{"<kid>":"-----BEGIN CERTIFICATE-----…"}`). The URL is fixed at
//! cold start (never taken from a token). Keys are fetched on first use and
//! again for a `kid` the cache does not know — once per such `kid` (a key
//! rotation costs one fetch), and never more than [`MAX_REFETCHES`] times per
//! [`REFETCH_WINDOW`], so a stream of tokens with made-up key ids cannot make
//! the function hammer Google (or itself wait on it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::{Mutex, RwLock};

/// At most this many fetches for unknown key ids per [`REFETCH_WINDOW`].
pub const MAX_REFETCHES: usize = 3;
pub const REFETCH_WINDOW: Duration = Duration::from_secs(60);
/// How many unknown key ids are remembered (each refetches once).
const MAX_TRIED_KIDS: usize = 64;
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Key documents are a few KB; anything far larger is not Google's.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The format of the key document at the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// A JSON Web Key Set (`/oauth2/v3/certs`).
    Jwks,
    /// A JSON object of `kid` → PEM X.509 certificate (`/robot/v1/metadata/x509/…`).
    X509Map,
}

/// Why a key could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The token names a key Google does not (or no longer) publish.
    #[error("unknown signing key")]
    UnknownKey,
    /// Google's key document could not be fetched or read: worth retrying.
    #[error("signing keys unavailable: {0}")]
    Unavailable(String),
}

/// A cache of one URL's keys.
pub struct KeyCache {
    url: String,
    format: KeyFormat,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// Fetch bookkeeping; the lock also makes concurrent misses wait for one
    /// fetch instead of starting one each.
    fetches: Mutex<Fetches>,
}

#[derive(Default)]
struct Fetches {
    /// Whether the document was ever fetched successfully.
    loaded: bool,
    /// Recent fetches for unknown key ids, oldest first.
    recent: std::collections::VecDeque<Instant>,
    /// Unknown key ids that already caused a fetch.
    tried: std::collections::VecDeque<String>,
}

impl Fetches {
    /// Whether an unknown `kid` may cause a fetch now.
    fn may_refetch(&mut self, kid: &str) -> bool {
        if !self.loaded {
            return true;
        }
        while self
            .recent
            .front()
            .is_some_and(|at| at.elapsed() >= REFETCH_WINDOW)
        {
            self.recent.pop_front();
        }
        if self.tried.iter().any(|k| k == kid) || self.recent.len() >= MAX_REFETCHES {
            return false;
        }
        if self.tried.len() >= MAX_TRIED_KIDS {
            self.tried.pop_front();
        }
        self.tried.push_back(kid.to_owned());
        self.recent.push_back(Instant::now());
        true
    }
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache").field("url", &self.url).finish()
    }
}

impl KeyCache {
    pub fn new(url: impl Into<String>, format: KeyFormat, http: reqwest::Client) -> Self {
        Self {
            url: url.into(),
            format,
            http,
            keys: RwLock::new(HashMap::new()),
            fetches: Mutex::new(Fetches::default()),
        }
    }

    /// A cache that already holds `keys` (benchmarks, tests): fetches only
    /// for a key id it does not hold.
    pub fn preloaded(
        url: impl Into<String>,
        format: KeyFormat,
        http: reqwest::Client,
        keys: impl IntoIterator<Item = (String, DecodingKey)>,
    ) -> Self {
        let mut cache = Self::new(url, format, http);
        cache.keys = RwLock::new(keys.into_iter().collect());
        cache.fetches = Mutex::new(Fetches {
            loaded: true,
            ..Fetches::default()
        });
        cache
    }

    /// The key `kid`, fetching the document if the cache has never seen it.
    pub async fn key(&self, kid: &str) -> Result<DecodingKey, KeyError> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(key.clone());
        }
        let mut fetches = self.fetches.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(key.clone());
        }
        if !fetches.may_refetch(kid) {
            return Err(KeyError::UnknownKey);
        }
        let fetched = self.fetch().await?;
        fetches.loaded = true;
        let mut keys = self.keys.write().await;
        *keys = fetched;
        keys.get(kid).cloned().ok_or(KeyError::UnknownKey)
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, KeyError> {
        let unavailable = |what: String| KeyError::Unavailable(what);
        let res = self
            .http
            .get(&self.url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| unavailable(format!("request failed: {}", without_url(&e))))?;
        if !res.status().is_success() {
            return Err(unavailable(format!("answered {}", res.status())));
        }
        // Read while streaming, stopping at the cap: the key URL is
        // fetched on unknown key ids, which a caller chooses.
        let body = crate::outbound::read_capped(res, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| match e {
                crate::outbound::ReadError::TooLarge { cap } => {
                    unavailable(format!("key document larger than {cap} bytes"))
                }
                crate::outbound::ReadError::Transport(e) => {
                    unavailable(format!("body unreadable: {}", without_url(&e)))
                }
            })?;
        let keys = match self.format {
            KeyFormat::Jwks => parse_jwks(&body),
            KeyFormat::X509Map => parse_x509_map(&body),
        }
        .map_err(unavailable)?;
        tracing::info!(url = %self.url, keys = keys.len(), "signing keys fetched");
        Ok(keys)
    }
}

/// Why a token's signature could not be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    Malformed,
    UnsupportedAlgorithm,
    MissingKeyId,
    UnknownKey,
    KeysUnavailable,
    BadSignature,
}

impl KeyCache {
    /// Checks that `token` is an RS256 JWT signed by one of this cache's
    /// keys and returns its claims — signature and algorithm only: every
    /// claim is the caller's to check, against its injected clock, with
    /// errors that say which. `alg: none` and HS256 (even keyed with a
    /// public key) are refused before any key is looked up.
    pub async fn verify_rs256<C: serde::de::DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<C, SignatureCheck> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| SignatureCheck::Malformed)?;
        if header.alg != jsonwebtoken::Algorithm::RS256 {
            return Err(SignatureCheck::UnsupportedAlgorithm);
        }
        let kid = header.kid.ok_or(SignatureCheck::MissingKeyId)?;
        let key = self.key(&kid).await.map_err(|e| match e {
            KeyError::UnknownKey => SignatureCheck::UnknownKey,
            KeyError::Unavailable(why) => {
                tracing::warn!(url = %self.url, reason = %why, "Google's signing keys unavailable");
                SignatureCheck::KeysUnavailable
            }
        })?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<C>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => SignatureCheck::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                    SignatureCheck::UnsupportedAlgorithm
                }
                _ => SignatureCheck::Malformed,
            })
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut shown = e.to_string();
    if let Some(url) = e.url() {
        shown = shown.replace(url.as_str(), "<key url>");
    }
    shown
}

fn parse_jwks(body: &[u8]) -> Result<HashMap<String, DecodingKey>, String> {
    let set: JwkSet = serde_json::from_slice(body)
        .map_err(|e| format!("not a JWK set: {}", tollgate_core::json_error::describe(&e)))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        // Keys of other types are skipped: only RSA verifies RS256.
        if let Ok(key) = DecodingKey::from_jwk(jwk)
            && matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
            )
        {
            keys.insert(kid, key);
        }
    }
    Ok(keys)
}

fn parse_x509_map(body: &[u8]) -> Result<HashMap<String, DecodingKey>, String> {
    let map: HashMap<String, String> = serde_json::from_slice(body).map_err(|e| {
        format!(
            "not a certificate map: {}",
            tollgate_core::json_error::describe(&e)
        )
    })?;
    let mut keys = HashMap::new();
    for (kid, pem) in map {
        if let Some(key) = rsa_key_from_certificate(&pem) {
            keys.insert(kid, key);
        }
    }
    Ok(keys)
}

/// The RSA public key of a PEM X.509 certificate. The certificate itself is
/// only a carrier here: trust comes from the pinned URL it was fetched from.
fn rsa_key_from_certificate(pem: &str) -> Option<DecodingKey> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let der = rustls_pki_types::CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).ok()?;
    let spki = cert.subject_public_key_info();
    let spki_pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(spki.as_ref())
    );
    DecodingKey::from_rsa_pem(spki_pem.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unknown_key_id_refetches_once_within_a_budget() {
        let mut f = Fetches::default();
        assert!(f.may_refetch("first-load"), "the first load always fetches");
        f.loaded = true;
        assert!(f.may_refetch("rotated"));
        assert!(!f.may_refetch("rotated"), "a key id refetches once");
        assert!(f.may_refetch("made-up-1"));
        assert!(f.may_refetch("made-up-2"));
        assert!(
            !f.may_refetch("made-up-3"),
            "no more than {MAX_REFETCHES} fetches per window"
        );
    }

    use crate::outbound::testing::{Body, IN_FLIGHT, serve};

    /// Upper bound only: a capped read ends as soon as the cap is passed.
    const LIMIT: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn an_endless_key_document_stops_at_the_cap() {
        let server = serve(Body::Endless { chunk: 16 * 1024 }, 1).await;
        let cache = KeyCache::new(server.base.clone(), KeyFormat::Jwks, reqwest::Client::new());
        let got = tokio::time::timeout(LIMIT, cache.key("k1"))
            .await
            .expect("the fetch must stop at the cap");
        match got {
            Err(KeyError::Unavailable(why)) => {
                assert_eq!(
                    why,
                    format!("key document larger than {MAX_DOCUMENT_BYTES} bytes")
                );
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        let written = server.finish().await;
        assert!(written < MAX_DOCUMENT_BYTES as u64 + IN_FLIGHT, "{written}");
    }

    #[tokio::test]
    async fn a_key_document_declaring_a_huge_length_is_not_read() {
        let server = serve(
            Body::Declared {
                declared: 1 << 40,
                sent: 1024 * 1024,
            },
            1,
        )
        .await;
        let cache = KeyCache::new(
            server.base.clone(),
            KeyFormat::X509Map,
            reqwest::Client::new(),
        );
        let got = tokio::time::timeout(LIMIT, cache.key("k1")).await.unwrap();
        assert!(
            matches!(&got, Err(KeyError::Unavailable(why)) if why.contains("larger than")),
            "{:?}",
            got.map(|_| ())
        );
    }

    #[test]
    fn unreadable_key_documents_quote_no_value() {
        for body in [
            &br#"{"keys":"hunter2-leak"}"#[..],
            br#"{"keys":[1,"hunter2-leak"]}"#,
        ] {
            let why = parse_jwks(body).map(|_| ()).unwrap_err();
            assert!(!why.contains("hunter2"), "{why}");
            assert!(why.contains("at line 1 column"), "{why}");
        }
        let why = parse_x509_map(br#"{"kid":["hunter2-leak"]}"#)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            why,
            "not a certificate map: invalid type: sequence, expected a string at line 1 column 7"
        );
    }
}
