//! The GitHub sign-in's OAuth `state`: signed rather than stored, and bound
//! to the browser that started the sign-in by a `__Host-` cookie.
//!
//! `GET /github/setup` is reachable by anyone, so it must not cost a store
//! write per hit. The `state` therefore carries what the callback needs,
//! signed: `base64url(payload) "." base64url(HMAC-SHA256)`, the payload being
//! `{"n": nonce, "exp": unix seconds, "uri": redirect URI}`, the MAC keyed by
//! the secret `oauth_state_key` over a label naming this use (so a MAC made
//! for anything else never verifies here). The same random nonce goes into
//! the `__Host-tollgate_oauth` cookie. The callback accepts the state only if
//! the MAC verifies (constant time, current or previous key), it has not
//! expired, and the browser's cookie holds the same nonce (constant time):
//! a `state` lifted from someone else's authorize URL, or a callback URL an
//! attacker makes a victim's browser open (login CSRF), fails the cookie
//! check because a `__Host-` cookie can only be set by this origin over a
//! secure connection.
//!
//! Single use: the browser's cookie is cleared by the callback, and GitHub's
//! `code` works once. A used nonce is also recorded in the store, but only
//! after GitHub accepted the code (an authenticated write: anonymous hits
//! never write), so a copied cookie plus state cannot link a second time
//! with a fresh code inside the ten minutes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::marketplace::signing::{EmptySecret, Tag, hmac_sha256, tags_match};
use crate::secret::{Secret, Secrets};
use crate::settings::SetupError;
use crate::web::{ApiError, NoRandomness, random_token};

/// The key the `state` is signed with.
pub const STATE_KEY_SECRET: &str = "oauth_state_key";
/// The key it was signed with before a rotation, still accepted.
pub const STATE_KEY_PREVIOUS_SECRET: &str = "oauth_state_key_previous";
/// Shortest key accepted: `openssl rand -hex 32` gives 64 characters; a
/// short key could be guessed offline from any issued `state`.
pub const MIN_KEY_LEN: usize = 32;
/// How long a `state` (and its cookie) is good for; GitHub's codes also
/// last 10 minutes.
pub const STATE_TTL: chrono::Duration = chrono::Duration::minutes(10);
/// The cookie's name after the `__Host-` prefix.
pub const COOKIE_NAME: &str = "tollgate_oauth";
/// Longest `state` looked at; ours are about 200 characters.
pub const MAX_STATE_LEN: usize = 1024;
/// Token kind of a used state's record in the store (id: SHA-256 of the nonce).
pub const USED_STATE_KIND: &str = "github_oauth_state_used";
/// Domain separation: what this MAC is for.
const MAC_LABEL: &[u8] = b"tollgate/github-oauth-state/v1\n";
const NONCE_BYTES: usize = 32;

/// The keys `state`s are signed with: the current one signs, both verify.
#[derive(Debug, Clone)]
pub struct StateKeys {
    current: Secret,
    previous: Option<Secret>,
}

impl StateKeys {
    /// `None` when `oauth_state_key` is not set (GitHub sign-in then answers
    /// 503 `not_configured`); an empty or short key is a cold-start error.
    pub fn from_secrets(secrets: &Secrets) -> Result<Option<Self>, SetupError> {
        let Some(current) = secrets.get(STATE_KEY_SECRET) else {
            return Ok(None);
        };
        let previous = secrets.get(STATE_KEY_PREVIOUS_SECRET);
        for (name, key) in [
            (STATE_KEY_SECRET, Some(current)),
            (STATE_KEY_PREVIOUS_SECRET, previous),
        ] {
            let Some(key) = key else { continue };
            if key.expose().is_empty() {
                return Err(EmptySecret {
                    name: name.to_owned(),
                }
                .into());
            }
            if key.expose().len() < MIN_KEY_LEN {
                return Err(SetupError::Invalid(format!(
                    "secret `{name}` is shorter than {MIN_KEY_LEN} characters; generate one with `openssl rand -hex 32`"
                )));
            }
        }
        Ok(Some(Self {
            current: current.clone(),
            previous: previous.cloned(),
        }))
    }

    fn keys(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|k| k.expose().as_bytes())
    }

    fn mac(key: &[u8], payload_b64: &str) -> Tag {
        hmac_sha256(key, &[MAC_LABEL, payload_b64.as_bytes()])
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    /// The nonce the browser's cookie must hold.
    n: String,
    /// Expiry, unix seconds.
    exp: i64,
    /// The redirect URI the authorize step was sent with; the code exchange
    /// must repeat it exactly.
    uri: String,
}

/// A fresh `state` for the authorize URL and the nonce for the cookie.
/// (No `Debug`: both are bearer values for the next ten minutes.)
pub struct IssuedState {
    pub state: String,
    pub nonce: String,
}

/// Signs a new `state` for `redirect_uri`, valid for [`STATE_TTL`] from `now`.
pub fn issue(
    keys: &StateKeys,
    redirect_uri: &str,
    now: DateTime<Utc>,
) -> Result<IssuedState, NoRandomness> {
    let nonce = random_token(NONCE_BYTES)?;
    let payload = Payload {
        n: nonce.clone(),
        exp: (now + STATE_TTL).timestamp(),
        uri: redirect_uri.to_owned(),
    };
    // Serializing three strings and an integer cannot fail.
    let json = serde_json::to_vec(&payload).unwrap_or_default();
    let payload_b64 = URL_SAFE_NO_PAD.encode(json);
    let mac = StateKeys::mac(keys.current.expose().as_bytes(), &payload_b64);
    Ok(IssuedState {
        state: format!("{payload_b64}.{}", URL_SAFE_NO_PAD.encode(mac)),
        nonce,
    })
}

/// A `state` that verified against the browser's cookie.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedState {
    pub nonce: String,
    pub redirect_uri: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for VerifiedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedState")
            .field("nonce", &"***")
            .field("redirect_uri", &self.redirect_uri)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a callback's `state` was refused. Each is the buyer's (or a forger's)
/// problem, answered 400 `invalid_state` with the same page; the variant is
/// for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the `state` is not one Tollgate issues")]
    Malformed,
    #[error("the `state`'s signature does not verify")]
    BadSignature,
    #[error("the `state` has expired")]
    Expired,
    #[error("the browser sent no sign-in cookie with the `state`")]
    NoCookie,
    #[error("the browser's sign-in cookie belongs to another sign-in")]
    CookieMismatch,
    #[error("the `state` was already used")]
    Used,
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        ApiError::bad_request("invalid_state", e.to_string())
    }
}

/// Checks `state` (signature, expiry) and that `cookie` — the browser's
/// `__Host-tollgate_oauth` — holds its nonce. Reads nothing but its inputs.
pub fn verify(
    keys: &StateKeys,
    state: &str,
    cookie: Option<&str>,
    now: DateTime<Utc>,
) -> Result<VerifiedState, StateError> {
    if state.len() > MAX_STATE_LEN {
        return Err(StateError::Malformed);
    }
    let (payload_b64, mac_b64) = state.split_once('.').ok_or(StateError::Malformed)?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac_b64)
        .map_err(|_| StateError::Malformed)?;
    // The MAC is checked before the payload is parsed: nothing a forger
    // wrote is interpreted.
    if !keys
        .keys()
        .any(|key| tags_match(&StateKeys::mac(key, payload_b64), &mac))
    {
        return Err(StateError::BadSignature);
    }
    let json = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| StateError::Malformed)?;
    let payload: Payload = serde_json::from_slice(&json).map_err(|_| StateError::Malformed)?;
    let expires_at = DateTime::from_timestamp(payload.exp, 0).ok_or(StateError::Malformed)?;
    if now >= expires_at {
        return Err(StateError::Expired);
    }
    let cookie = cookie
        .filter(|c| !c.is_empty())
        .ok_or(StateError::NoCookie)?;
    if !bool::from(cookie.as_bytes().ct_eq(payload.n.as_bytes())) {
        return Err(StateError::CookieMismatch);
    }
    Ok(VerifiedState {
        nonce: payload.n,
        redirect_uri: payload.uri,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "https://t.example/github/callback";

    fn keys(current: &str, previous: Option<&str>) -> StateKeys {
        let mut pairs = vec![(STATE_KEY_SECRET, current)];
        pairs.extend(previous.map(|p| (STATE_KEY_PREVIOUS_SECRET, p)));
        StateKeys::from_secrets(&Secrets::from_pairs(pairs))
            .unwrap()
            .unwrap()
    }

    fn key_a() -> StateKeys {
        keys(&"a".repeat(64), None)
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000, 0).unwrap()
    }

    #[test]
    fn a_fresh_state_verifies_with_its_own_cookie_only() {
        let k = key_a();
        let issued = issue(&k, URI, now()).unwrap();
        assert_eq!(issued.nonce.len(), 64, "32 random bytes");
        let ok = verify(&k, &issued.state, Some(&issued.nonce), now()).unwrap();
        assert_eq!(ok.redirect_uri, URI);
        assert_eq!(ok.nonce, issued.nonce);
        assert_eq!(ok.expires_at, now() + STATE_TTL);

        let other = issue(&k, URI, now()).unwrap();
        assert_ne!(other.nonce, issued.nonce);
        assert_eq!(
            verify(&k, &issued.state, Some(&other.nonce), now()),
            Err(StateError::CookieMismatch),
            "another browser's cookie"
        );
        assert_eq!(
            verify(&k, &issued.state, None, now()),
            Err(StateError::NoCookie)
        );
        assert_eq!(
            verify(&k, &issued.state, Some(""), now()),
            Err(StateError::NoCookie)
        );
    }

    #[test]
    fn a_state_expires_after_ten_minutes() {
        let k = key_a();
        let issued = issue(&k, URI, now()).unwrap();
        let just_before = now() + STATE_TTL - chrono::Duration::seconds(1);
        assert!(verify(&k, &issued.state, Some(&issued.nonce), just_before).is_ok());
        assert_eq!(
            verify(&k, &issued.state, Some(&issued.nonce), now() + STATE_TTL),
            Err(StateError::Expired)
        );
    }

    #[test]
    fn a_tampered_or_foreign_state_is_refused_before_its_payload_is_read() {
        let k = key_a();
        let issued = issue(&k, URI, now()).unwrap();
        let (payload, mac) = issued.state.split_once('.').unwrap();
        // A payload with a later expiry and the forger's redirect URI,
        // under the original MAC.
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Payload {
                n: issued.nonce.clone(),
                exp: (now() + chrono::Duration::days(1)).timestamp(),
                uri: "https://evil.example/cb".into(),
            })
            .unwrap(),
        );
        let cookie = Some(issued.nonce.as_str());
        assert_eq!(
            verify(&k, &format!("{forged}.{mac}"), cookie, now()),
            Err(StateError::BadSignature)
        );
        let mut flipped = mac.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = format!("{payload}.{}", String::from_utf8(flipped).unwrap());
        assert_eq!(
            verify(&k, &flipped, cookie, now()),
            Err(StateError::BadSignature)
        );
        let other_key = keys(&"b".repeat(64), None);
        assert_eq!(
            verify(&other_key, &issued.state, cookie, now()),
            Err(StateError::BadSignature),
            "signed with another deployment's key"
        );
        for junk in ["", "forged", "a.b.c", "!!.!!", payload] {
            assert_eq!(
                verify(&k, junk, cookie, now()),
                Err(StateError::Malformed),
                "{junk}"
            );
        }
        let long = format!("{}.{mac}", "A".repeat(MAX_STATE_LEN));
        assert_eq!(verify(&k, &long, cookie, now()), Err(StateError::Malformed));
    }

    #[test]
    fn the_mac_covers_a_label_so_a_bare_hmac_of_the_payload_does_not_verify() {
        let k = key_a();
        let issued = issue(&k, URI, now()).unwrap();
        let (payload, _) = issued.state.split_once('.').unwrap();
        let bare = hmac_sha256("a".repeat(64).as_bytes(), &[payload.as_bytes()]);
        let state = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(bare));
        assert_eq!(
            verify(&k, &state, Some(&issued.nonce), now()),
            Err(StateError::BadSignature)
        );
    }

    #[test]
    fn during_a_rotation_states_signed_with_the_previous_key_still_verify() {
        let old = keys(&"o".repeat(64), None);
        let issued = issue(&old, URI, now()).unwrap();
        let rotated = keys(&"n".repeat(64), Some(&"o".repeat(64)));
        assert!(verify(&rotated, &issued.state, Some(&issued.nonce), now()).is_ok());
        let fresh = issue(&rotated, URI, now()).unwrap();
        assert!(
            verify(
                &keys(&"n".repeat(64), None),
                &fresh.state,
                Some(&fresh.nonce),
                now()
            )
            .is_ok(),
            "new states are signed with the current key"
        );
    }

    #[test]
    fn keys_are_optional_but_never_empty_or_short() {
        assert!(
            StateKeys::from_secrets(&Secrets::from_pairs([]))
                .unwrap()
                .is_none()
        );
        let err = |pairs: Vec<(&str, &str)>| {
            StateKeys::from_secrets(&Secrets::from_pairs(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(err(vec![(STATE_KEY_SECRET, "")]).contains("`oauth_state_key` is empty"));
        let short = "s".repeat(MIN_KEY_LEN - 1);
        assert!(err(vec![(STATE_KEY_SECRET, &short)]).contains("shorter than 32"));
        let long = "l".repeat(MIN_KEY_LEN);
        assert!(
            err(vec![
                (STATE_KEY_SECRET, &long),
                (STATE_KEY_PREVIOUS_SECRET, &short)
            ])
            .contains("`oauth_state_key_previous`")
        );
        // The key never shows in Debug output.
        let k = keys(&long, None);
        assert!(!format!("{k:?}").contains(&long));
    }
}
