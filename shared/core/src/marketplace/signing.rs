//! What the marketplaces that sign with a shared secret (GitHub, Q2) have in
//! common: HMAC-SHA256, and two secrets accepted while one is rotated out.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

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

/// HMAC-SHA256 keyed by `secret` over `parts`, in order. Compare with
/// [`Mac::verify_slice`] (constant time), never by equality.
#[allow(
    clippy::unreachable,
    reason = "HMAC's key setup has no failing case; the trait's signature has one for other MACs"
)]
pub fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long keys are hashed first), so this
    // constructor cannot fail; `new_from_slice` exists for MACs that can.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    for part in parts {
        mac.update(part);
    }
    mac
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
        let whole = hmac_sha256(b"k", &[b"12.body"]).finalize().into_bytes();
        let parts = hmac_sha256(b"k", &[b"12", b".", b"body"])
            .finalize()
            .into_bytes();
        assert_eq!(whole, parts);
    }
}
