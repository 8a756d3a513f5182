//! `Tollgate-Signature`: how the Q2 relay (the vendor's marketplace
//! extension) proves a request comes from it.
//!
//! ```text
//! Tollgate-Signature: t=1714572191,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//! ```
//!
//! `v1` is the lowercase hex HMAC-SHA256, keyed by the shared signing
//! secret, of the ASCII decimal `t` (Unix seconds, exactly as written in the
//! header), a `.`, and the exact raw body bytes. Signing the timestamp with
//! the body is what makes the replay window meaningful: a captured request
//! cannot be re-sent with a fresh `t`. A request is accepted within
//! [`TOLERANCE`] of Tollgate's clock either way (too old and too far in the
//! future are both refused). Several `v1` entries may be sent (a relay
//! signing with old and new secret during a rotation); unknown keys are
//! ignored so the scheme can grow. Tags are compared in constant time
//! ([`tags_match`]).
//!
//! Pure, so it lives in the core; its HTTP answer (`impl From<SignatureError>
//! for ApiError`) is in `tollgate::marketplace::q2::signature`.

use chrono::{DateTime, Duration, Utc};

use crate::marketplace::signing::{MacKey, Tag, parse_hex_tag, tags_match};

/// The header the signature travels in (case-insensitive, as every header).
pub const HEADER: &str = "tollgate-signature";

/// How far the signed timestamp may be from Tollgate's clock, either way.
pub const TOLERANCE: Duration = Duration::minutes(5);

/// Length of an HMAC-SHA256 tag in bytes.
const TAG_LEN: usize = 32;
/// More `v1` entries than any rotation needs is a malformed header.
const MAX_TAGS: usize = 4;
/// Unix seconds fit in 19 digits until long after any clock we run on.
const MAX_TIMESTAMP_DIGITS: usize = 19;

/// Why a request's signature was refused. The messages never contain the
/// header value, the body or a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Tollgate-Signature header is missing")]
    Missing,
    #[error(
        "the Tollgate-Signature header is not `t=<unix seconds>,v1=<64 hex digits>` (see Connect Q2 in the README)"
    )]
    Malformed,
    /// The timestamp is outside the window: a replay, or a skewed clock.
    #[error(
        "the signature timestamp is {seconds} s away from Tollgate's clock; at most 300 s either way is accepted"
    )]
    OutsideWindow { seconds: i64 },
    #[error("the signature does not match the timestamp, the body and the signing secret")]
    Mismatch,
}

/// Checks `header` against `body` at `now`, accepting a tag made with any
/// of `secrets` (the current one and, during a rotation, the previous one).
/// No secrets at all means nothing verifies.
pub fn verify_any<'a, K: MacKey + ?Sized + 'a>(
    secrets: impl IntoIterator<Item = &'a K>,
    body: &[u8],
    header: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let parsed = parse_header(header)?;
    let seconds = parsed.timestamp.saturating_sub(now.timestamp());
    if seconds.unsigned_abs() > TOLERANCE.num_seconds().unsigned_abs() {
        return Err(SignatureError::OutsideWindow { seconds });
    }
    for secret in secrets {
        let mac = mac(secret, parsed.timestamp_text, body);
        for tag in &parsed.tags {
            if tags_match(&mac, tag) {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// The header value for `body` signed with `secret` at Unix time `t`. For
/// tests, `tollgate fire q2` and the stand-ins; the Python relay in
/// `examples/q2-extension` does the same.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let t = t.to_string();
    format!("t={t},v1={}", hex::encode(mac(secret, &t, body)))
}

fn mac<K: MacKey + ?Sized>(secret: &K, timestamp: &str, body: &[u8]) -> Tag {
    secret.mac(&[timestamp.as_bytes(), b".", body])
}

struct Parsed<'a> {
    timestamp: i64,
    /// The digits as sent: what was signed.
    timestamp_text: &'a str,
    tags: Vec<[u8; TAG_LEN]>,
}

/// `t=<digits>` exactly once and one to four `v1=<64 hex>`, comma-separated
/// in any order, whitespace around items tolerated, other keys ignored.
fn parse_header(header: Option<&str>) -> Result<Parsed<'_>, SignatureError> {
    let value = header
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut tags = Vec::new();
    for item in value.split(',') {
        let (key, val) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key.trim() {
            "t" => {
                let digits = val.trim();
                let valid = !digits.is_empty()
                    && digits.len() <= MAX_TIMESTAMP_DIGITS
                    && digits.bytes().all(|b| b.is_ascii_digit());
                let t = valid
                    .then(|| digits.parse::<i64>().ok())
                    .flatten()
                    .ok_or(SignatureError::Malformed)?;
                if timestamp.replace((t, digits)).is_some() {
                    return Err(SignatureError::Malformed);
                }
            }
            "v1" => {
                tags.push(parse_hex_tag(val.trim()).ok_or(SignatureError::Malformed)?);
            }
            _ => {}
        }
    }
    let (timestamp, timestamp_text) = timestamp.ok_or(SignatureError::Malformed)?;
    if tags.is_empty() || tags.len() > MAX_TAGS {
        return Err(SignatureError::Malformed);
    }
    Ok(Parsed {
        timestamp,
        timestamp_text,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";
    const BODY: &[u8] = br#"{"event_type":"SUBSCRIPTION_ORDER"}"#;
    const T: i64 = 1_714_572_191;

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    fn verify(header: &str, now: i64) -> Result<(), SignatureError> {
        verify_any([SECRET], BODY, Some(header), at(now))
    }

    #[test]
    fn the_tag_is_hmac_sha256_of_timestamp_dot_body() {
        // Independently: HMAC-SHA256(key, "1714572191." + body).
        use hmac::{Hmac, KeyInit, Mac};
        let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET).unwrap();
        m.update(b"1714572191.");
        m.update(BODY);
        let expected = format!("t={T},v1={}", hex::encode(m.finalize().into_bytes()));
        assert_eq!(sign(SECRET, T, BODY), expected);
        assert_eq!(verify(&expected, T), Ok(()));
    }

    #[test]
    fn the_window_is_five_minutes_either_way() {
        let header = sign(SECRET, T, BODY);
        assert_eq!(verify(&header, T + 300), Ok(()));
        assert_eq!(verify(&header, T - 300), Ok(()));
        assert_eq!(
            verify(&header, T + 301),
            Err(SignatureError::OutsideWindow { seconds: -301 })
        );
        assert_eq!(
            verify(&header, T - 301),
            Err(SignatureError::OutsideWindow { seconds: 301 })
        );
    }

    #[test]
    fn a_changed_body_timestamp_or_secret_is_a_mismatch() {
        let header = sign(SECRET, T, BODY);
        assert_eq!(
            verify_any([SECRET], b"{}", Some(&header), at(T)),
            Err(SignatureError::Mismatch)
        );
        let moved = header.replace(&T.to_string(), &(T + 1).to_string());
        assert_eq!(verify(&moved, T), Err(SignatureError::Mismatch));
        let other: &[u8] = b"another";
        assert_eq!(
            verify_any([other], BODY, Some(&header), at(T)),
            Err(SignatureError::Mismatch)
        );
        let none: [&[u8]; 0] = [];
        assert_eq!(
            verify_any(none, BODY, Some(&header), at(T)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn either_secret_verifies_during_a_rotation_and_either_tag_may_match() {
        let old: &[u8] = b"old";
        let header = sign(old, T, BODY);
        assert_eq!(
            verify_any([SECRET, old], BODY, Some(&header), at(T)),
            Ok(())
        );
        let v1_new = sign(SECRET, T, BODY);
        let both = format!(
            "{}, v1={}",
            sign(b"unknown", T, BODY),
            &v1_new[v1_new.find("v1=").unwrap() + 3..]
        );
        assert_eq!(verify(&both, T), Ok(()));
    }

    #[test]
    fn order_whitespace_case_of_hex_and_unknown_keys_are_tolerated() {
        let header = sign(SECRET, T, BODY);
        let (t, v1) = header.split_once(',').unwrap();
        let shuffled = format!(
            " {} , v0=abc ,{} ",
            v1.to_ascii_uppercase().replace("V1", "v1"),
            t
        );
        assert_eq!(verify(&shuffled, T), Ok(()));
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        assert_eq!(
            verify_any([SECRET], BODY, None, at(T)),
            Err(SignatureError::Missing)
        );
        assert_eq!(verify(" ", T), Err(SignatureError::Missing));
        let tag = "0".repeat(64);
        for bad in [
            format!("v1={tag}"),
            format!("t={T}"),
            format!("t={T},v1={}", &tag[..62]),
            format!("t=-{T},v1={tag}"),
            format!("t=1e9,v1={tag}"),
            format!("t={T},t={T},v1={tag}"),
            format!("t=99999999999999999999,v1={tag}"),
            format!("t={T},v1={tag},v1={tag},v1={tag},v1={tag},v1={tag}"),
            format!("t={T};v1={tag}"),
            "sha256=abc".to_owned(),
        ] {
            assert_eq!(verify(&bad, T), Err(SignatureError::Malformed), "{bad}");
        }
    }

    #[test]
    fn errors_never_echo_the_header() {
        let err = verify("t=1,v1=deadbeef", T).unwrap_err();
        assert!(!err.to_string().contains("deadbeef"));
        let err = verify(&sign(b"x", T, BODY), T).unwrap_err();
        assert!(!err.to_string().contains(&T.to_string()));
    }
}
