//! `X-Hub-Signature-256`: GitHub signs every webhook body with HMAC-SHA256,
//! keyed by the secret set on the Marketplace listing's webhook.
//!
//! The MAC is computed over the exact raw body bytes (after the function
//! URL's base64 decoding, before any JSON parsing): re-serializing a parsed
//! body changes bytes (escapes, key order) and breaks the signature, which is
//! a classic webhook bug. The comparison is constant-time
//! ([`tags_match`]). Several secrets may be accepted at once so a
//! secret can be rotated without losing deliveries.
//!
//! Pure, so it lives in the core; its HTTP answer (`impl From<SignatureError>
//! for ApiError`) is in `tollgate::marketplace::github::signature`.

use crate::marketplace::signing::{MacKey, hmac_sha256, parse_hex_tag, tags_match};

/// The header GitHub puts the SHA-256 signature in.
pub const HEADER: &str = "x-hub-signature-256";
/// The legacy SHA-1 header; only looked at to explain why it is refused.
pub const LEGACY_SHA1_HEADER: &str = "x-hub-signature";

/// Length of an HMAC-SHA256 tag in bytes.
const TAG_LEN: usize = 32;

/// Why a delivery's signature was refused. The messages never contain the
/// header value, the body or the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("the signature header is not `sha256=` followed by 64 hex digits")]
    Malformed,
    /// `sha1=` (GitHub's legacy `X-Hub-Signature`) or any other algorithm.
    #[error("only `sha256=` signatures are accepted (X-Hub-Signature-256)")]
    UnsupportedAlgorithm,
    #[error("the signature does not match the body and the configured secret")]
    Mismatch,
}

/// Checks `header` (the `X-Hub-Signature-256` value) against `body` signed
/// with `secret`.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    verify_any([secret], body, header)
}

/// Like [`verify`], accepting a signature made with any of `secrets` (the
/// current secret and, during a rotation, the previous one; raw, or
/// prepared [`crate::marketplace::signing::HmacKey`]s). No secrets at all
/// means nothing verifies.
pub fn verify_any<'a, K: MacKey + ?Sized + 'a>(
    secrets: impl IntoIterator<Item = &'a K>,
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let tag = parse_header(header)?;
    for secret in secrets {
        if tags_match(&secret.mac(&[body]), &tag) {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// The header value GitHub would send for `body` signed with `secret`
/// (`sha256=<lowercase hex>`). For tests and the local simulator.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(secret, &[body])))
}

/// `sha256=<64 hex digits>`, tolerating surrounding whitespace, the
/// algorithm name in any case and upper-case hex.
fn parse_header(header: Option<&str>) -> Result<[u8; TAG_LEN], SignatureError> {
    let value = header
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::Missing)?;
    let (algorithm, hex_tag) = value.split_once('=').ok_or(SignatureError::Malformed)?;
    if !algorithm.trim().eq_ignore_ascii_case("sha256") {
        return Err(SignatureError::UnsupportedAlgorithm);
    }
    parse_hex_tag(hex_tag.trim()).ok_or(SignatureError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's published example ("Validating webhook deliveries").
    const DOCS_SECRET: &[u8] = b"It's a Secret to Everybody";
    const DOCS_BODY: &[u8] = b"Hello, World!";
    const DOCS_HEADER: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_published_test_vector_verifies() {
        assert_eq!(sign(DOCS_SECRET, DOCS_BODY), DOCS_HEADER);
        assert_eq!(verify(DOCS_SECRET, DOCS_BODY, Some(DOCS_HEADER)), Ok(()));
    }

    #[test]
    fn rfc_4231_case_2_verifies_through_the_same_path() {
        let header = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(sign(b"Jefe", b"what do ya want for nothing?"), header);
        assert_eq!(
            verify(b"Jefe", b"what do ya want for nothing?", Some(header)),
            Ok(())
        );
    }

    #[test]
    fn whitespace_algorithm_case_and_upper_case_hex_are_tolerated() {
        let upper = format!(
            "  SHA256={}\n",
            DOCS_HEADER["sha256=".len()..].to_ascii_uppercase()
        );
        assert_eq!(verify(DOCS_SECRET, DOCS_BODY, Some(&upper)), Ok(()));
    }

    #[test]
    fn a_missing_or_empty_header_is_missing() {
        assert_eq!(
            verify(DOCS_SECRET, DOCS_BODY, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(DOCS_SECRET, DOCS_BODY, Some("  ")),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn sha1_and_other_algorithms_are_refused() {
        let sha1 = "sha1=0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            verify(DOCS_SECRET, DOCS_BODY, Some(sha1)),
            Err(SignatureError::UnsupportedAlgorithm)
        );
        let md5 = "md5=0123456789abcdef0123456789abcdef";
        assert_eq!(
            verify(DOCS_SECRET, DOCS_BODY, Some(md5)),
            Err(SignatureError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn malformed_values_are_malformed() {
        let hex64 = &DOCS_HEADER["sha256=".len()..];
        for bad in [
            hex64.to_owned(),                     // no algorithm
            format!("sha256={}", &hex64[..62]),   // too short
            format!("sha256={hex64}00"),          // too long
            format!("sha256={}zz", &hex64[..62]), // not hex
            "sha256=".to_owned(),                 // empty tag
        ] {
            assert_eq!(
                verify(DOCS_SECRET, DOCS_BODY, Some(&bad)),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_wrong_secret_or_a_changed_body_is_a_mismatch() {
        assert_eq!(
            verify(b"another secret", DOCS_BODY, Some(DOCS_HEADER)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(DOCS_SECRET, b"Hello, World?", Some(DOCS_HEADER)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_of_several_secrets_verifies_during_rotation() {
        let secrets: [&[u8]; 2] = [b"new secret", DOCS_SECRET];
        assert_eq!(verify_any(secrets, DOCS_BODY, Some(DOCS_HEADER)), Ok(()));
        let none: [&[u8]; 0] = [];
        assert_eq!(
            verify_any(none, DOCS_BODY, Some(DOCS_HEADER)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn errors_never_echo_the_header() {
        let err = verify(DOCS_SECRET, DOCS_BODY, Some("sha256=deadbeef")).unwrap_err();
        assert!(!err.to_string().contains("deadbeef"));
    }
}
