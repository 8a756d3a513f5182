//! What the marketplaces that sign with a shared secret (GitHub, Q2) have in
//! common: HMAC-SHA256, and two secrets accepted while one is rotated out.

use crate::secret::Secrets;

/// A configured signing secret is the empty string. Refused at cold start
/// (`tollgate::settings::SetupError` wraps it): an empty key would let
/// anyone sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret `{name}` is empty")]
pub struct EmptySecret {
    /// The secret's name in the secrets source, never its value.
    pub name: String,
}

/// An HMAC-SHA256 tag.
pub type Tag = [u8; TAG_LEN];
/// The length of an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;

/// HMAC-SHA256 keyed by `secret` over `parts`, in order. Compare tags with
/// [`tags_match`] (constant time), never by equality.
///
/// aws-lc-rs rather than the RustCrypto `hmac` crate: it is already linked
/// (rustls, JWTs) and measured faster on the same bytes (`make bench`, its
/// GitHub verify + parse rows), and a webhook's verify + parse is held to the
/// fastest bare HMAC on the machine.
pub fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> Tag {
    HmacKey::new(secret).sign(parts)
}

/// A secret made ready for HMAC-SHA256 once: the key schedule (the padded
/// key, hashed into the inner and outer states) is done when the function
/// starts, so each request only hashes its own bytes.
#[derive(Clone)]
pub struct HmacKey(aws_lc_rs::hmac::Key);

impl HmacKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            secret,
        ))
    }

    /// The tag over `parts`, in order, as one message.
    pub fn sign(&self, parts: &[&[u8]]) -> Tag {
        let mut context = aws_lc_rs::hmac::Context::with_key(&self.0);
        for part in parts {
            context.update(part);
        }
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(context.sign().as_ref());
        tag
    }
}

/// Never shows the key.
impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

/// What a signature check can be keyed with: a raw secret (keyed on each
/// call: tests, the stand-ins) or an [`HmacKey`] prepared once (the
/// functions).
pub trait MacKey {
    fn mac(&self, parts: &[&[u8]]) -> Tag;
}

impl MacKey for [u8] {
    fn mac(&self, parts: &[&[u8]]) -> Tag {
        hmac_sha256(self, parts)
    }
}

impl MacKey for HmacKey {
    fn mac(&self, parts: &[&[u8]]) -> Tag {
        self.sign(parts)
    }
}

/// A tag written as 64 hex digits, either case; `None` for anything else.
/// On every delivery, so by table: the `hex` crate's checked decoder cost
/// about 3 % of a webhook's verify + parse (`make bench`). The digits come
/// from the request, not the secret, so reading them in variable time
/// leaks nothing.
pub fn parse_hex_tag(digits: &str) -> Option<Tag> {
    let digits = digits.as_bytes();
    if digits.len() != 2 * TAG_LEN {
        return None;
    }
    let mut tag = [0; TAG_LEN];
    // Each table entry is the digit's value, or 0x10 for a non-digit; one
    // check at the end instead of a branch per character.
    let mut invalid = 0;
    let (pairs, _) = digits.as_chunks::<2>();
    for (byte, [high, low]) in tag.iter_mut().zip(pairs) {
        let (high, low) = (hex_value(*high), hex_value(*low));
        invalid |= high | low;
        // Disjoint nibbles, so `+` is `|` (and a test tells it from `-`).
        *byte = (high << 4) + (low & 0x0f);
    }
    (invalid & 0x10 == 0).then_some(tag)
}

/// A u8 always indexes the 256-entry table: the compiler drops the check.
fn hex_value(digit: u8) -> u8 {
    HEX_VALUE.get(usize::from(digit)).copied().unwrap_or(0x10)
}

#[allow(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: a bad index fails the build, never a request"
)]
const HEX_VALUE: [u8; 256] = {
    let mut table = [0x10; 256];
    let mut digit = 0;
    while digit < 16 {
        let lower = b"0123456789abcdef"[digit];
        let upper = b"0123456789ABCDEF"[digit];
        table[lower as usize] = digit as u8;
        table[upper as usize] = digit as u8;
        digit += 1;
    }
    table
};

/// Whether `received` is `expected`, compared in constant time (a timing
/// difference would let a forger find a valid tag byte by byte). A length
/// mismatch answers at once: the length is not secret. aws-lc's
/// `CRYPTO_memcmp` rather than `subtle`'s byte-by-byte barriers: the same
/// guarantee, in a fraction of the time on every delivery.
pub fn tags_match(expected: &Tag, received: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(expected, received).is_ok()
}

/// The secrets a request may be signed with: the current one and, during a
/// rotation, the previous one.
#[derive(Clone, Debug)]
pub struct RotatingSecrets(Vec<HmacKey>);

impl RotatingSecrets {
    /// Reads `current` (and `previous` if set). `None` when no secret is
    /// configured; an empty secret is refused, since it would let anyone
    /// sign.
    pub fn from_secrets(
        secrets: &Secrets,
        current: &str,
        previous: &str,
    ) -> Result<Option<Self>, EmptySecret> {
        let Some(first) = secrets.get(current) else {
            return Ok(None);
        };
        let mut all = vec![first.clone()];
        all.extend(secrets.get(previous).cloned());
        for (name, secret) in [current, previous].iter().zip(&all) {
            if secret.expose().is_empty() {
                return Err(EmptySecret {
                    name: (*name).to_owned(),
                });
            }
        }
        Ok(Some(Self(
            all.iter()
                .map(|s| HmacKey::new(s.expose().as_bytes()))
                .collect(),
        )))
    }

    /// The keys, current first.
    pub fn keys(&self) -> impl Iterator<Item = &HmacKey> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test cases 1 and 2 (a 20-byte key; a short key and
    /// "what do ya want for nothing?"), and test case 6 (a 131-byte key,
    /// longer than the block: hashed first).
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        type Case<'a> = (&'a [u8], &'a [&'a [u8]], &'a str);
        let cases: [Case; 3] = [
            (
                &[0x0b; 20],
                &[b"Hi There"],
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"],
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, parts, expected) in cases {
            assert_eq!(hex::encode(hmac_sha256(key, parts)), expected);
        }
    }

    #[test]
    fn tags_match_only_the_same_bytes_and_length() {
        let tag = hmac_sha256(b"k", &[b"body"]);
        assert!(tags_match(&tag, &tag));
        let mut flipped = tag;
        flipped[31] ^= 1;
        assert!(!tags_match(&tag, &flipped));
        flipped = tag;
        flipped[0] ^= 0x80;
        assert!(!tags_match(&tag, &flipped));
        assert!(!tags_match(&tag, &tag[..31]));
        assert!(!tags_match(&tag, &[]));
        let mut longer = tag.to_vec();
        longer.push(0);
        assert!(!tags_match(&tag, &longer));
    }

    #[test]
    fn an_empty_secret_is_refused_and_a_missing_one_is_none() {
        let none = Secrets::from_pairs([]);
        assert!(matches!(
            RotatingSecrets::from_secrets(&none, "a", "b"),
            Ok(None)
        ));
        let empty = Secrets::from_pairs([("a", "s"), ("b", "")]);
        let err = RotatingSecrets::from_secrets(&empty, "a", "b").unwrap_err();
        assert_eq!(err, EmptySecret { name: "b".into() });
        assert!(err.to_string().contains("`b`"), "{err}");
        let both = Secrets::from_pairs([("a", "s1"), ("b", "s2")]);
        let tags: Vec<_> = RotatingSecrets::from_secrets(&both, "a", "b")
            .unwrap()
            .unwrap()
            .keys()
            .map(|key| key.sign(&[b"m"]))
            .collect();
        assert_eq!(
            tags,
            [hmac_sha256(b"s1", &[b"m"]), hmac_sha256(b"s2", &[b"m"])]
        );
    }

    #[test]
    fn a_prepared_key_signs_as_the_raw_secret_and_never_shows_it() {
        let key = HmacKey::new(b"Jefe");
        let message: &[&[u8]] = &[b"what do ya want ", b"for nothing?"];
        assert_eq!(key.sign(message), hmac_sha256(b"Jefe", message));
        assert_eq!(key.mac(message), b"Jefe"[..].mac(message));
        assert_eq!(format!("{key:?}"), "HmacKey(..)");
    }

    #[test]
    fn hex_tags_read_like_the_hex_crate_in_either_case() {
        let tag = hmac_sha256(b"k", &[b"body"]);
        let lower = hex::encode(tag);
        assert_eq!(parse_hex_tag(&lower), Some(tag));
        assert_eq!(parse_hex_tag(&lower.to_uppercase()), Some(tag));
        // Every byte value in every position: accepted exactly when the
        // hex crate accepts it, with the same result.
        for position in 0..lower.len() {
            for byte in 0..=255u8 {
                let mut digits = lower.clone().into_bytes();
                digits[position] = byte;
                let Ok(text) = String::from_utf8(digits) else {
                    continue;
                };
                let mut expected = [0; TAG_LEN];
                let hex_crate = hex::decode_to_slice(&text, &mut expected)
                    .ok()
                    .map(|()| expected);
                assert_eq!(parse_hex_tag(&text), hex_crate, "{text}");
            }
        }
        for wrong_length in [&lower[..62], &lower[..63], "", &format!("{lower}0")] {
            assert_eq!(parse_hex_tag(wrong_length), None);
        }
        // Both digits of one byte wrong at once (each marks the byte bad;
        // together they must not cancel out).
        let both_bad = format!("zz{}", &lower[2..]);
        assert_eq!(parse_hex_tag(&both_bad), None);
        assert_eq!(parse_hex_tag(&"g".repeat(64)), None);
        assert_eq!(parse_hex_tag(&"0".repeat(64)), Some([0; TAG_LEN]));
        assert_eq!(parse_hex_tag(&"f".repeat(64)), Some([0xff; TAG_LEN]));
    }

    #[test]
    fn parts_are_hashed_as_one_message() {
        let whole = hmac_sha256(b"k", &[b"12.body"]);
        let parts = hmac_sha256(b"k", &[b"12", b".", b"body"]);
        assert_eq!(whole, parts);
    }
}
