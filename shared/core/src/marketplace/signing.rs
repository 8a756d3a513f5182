//! What the marketplaces that sign with a shared secret (GitHub, Q2) have in
//! common: HMAC-SHA256, and two secrets accepted while one is rotated out.

use crate::secret::{Secret, Secrets};

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
/// (rustls, JWTs) and measured faster on the same bytes (`make bench`,
/// `webhook/baseline_*`), and a webhook's verify + parse is held to the
/// fastest bare HMAC on the machine.
pub fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> Tag {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    let mut tag = [0; TAG_LEN];
    tag.copy_from_slice(context.sign().as_ref());
    tag
}

/// Whether `received` is `expected`, compared in constant time (a timing
/// difference would let a forger find a valid tag byte by byte). A length
/// mismatch answers at once: the length is not secret.
pub fn tags_match(expected: &Tag, received: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    expected.as_slice().ct_eq(received).into()
}

/// The secrets a request may be signed with: the current one and, during a
/// rotation, the previous one.
#[derive(Clone, Debug)]
pub struct RotatingSecrets(Vec<Secret>);

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
        Ok(Some(Self(all)))
    }

    /// The keys, current first.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(|s| s.expose().as_bytes())
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
        let keys: Vec<_> = RotatingSecrets::from_secrets(&both, "a", "b")
            .unwrap()
            .unwrap()
            .keys()
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(keys, [b"s1".to_vec(), b"s2".to_vec()]);
    }

    #[test]
    fn parts_are_hashed_as_one_message() {
        let whole = hmac_sha256(b"k", &[b"12.body"]);
        let parts = hmac_sha256(b"k", &[b"12", b".", b"body"]);
        assert_eq!(whole, parts);
    }
}
