//! RSA keys the Google stand-in generates at run time, and the shapes Google
//! publishes them in: a JWK set (`/oauth2/v3/certs`), a map of key id to
//! self-signed X.509 certificate (`/robot/v1/metadata/x509/...`), and the
//! PKCS#8 PEM of a service-account key file. Nothing here is ever written
//! to disk by the stand-in.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Datelike, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::{Value, json};

use super::SimError;
use super::ids::random_hex;

/// A 2048-bit RSA key with the key id Google would publish it under.
#[derive(Clone)]
pub(crate) struct RsaKey {
    /// 40 hex digits, like Google's `kid`s and `private_key_id`s.
    pub kid: String,
    pkcs8_der: Vec<u8>,
    pkcs8_pem: String,
    encoding: EncodingKey,
    /// `RSAPublicKey` (PKCS#1) DER.
    public_der: Vec<u8>,
    /// `SubjectPublicKeyInfo` PEM (`BEGIN PUBLIC KEY`).
    public_pem: String,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl RsaKey {
    pub fn generate() -> Result<Self, SimError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| SimError::KeyGeneration)?;
        let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&key).map_err(|_| SimError::KeyGeneration)?;
        let public = key.public_key();
        let spki =
            AsDer::<PublicKeyX509Der>::as_der(public).map_err(|_| SimError::KeyGeneration)?;
        let pkcs8_pem = pem("PRIVATE KEY", pkcs8.as_ref());
        let encoding =
            EncodingKey::from_rsa_pem(pkcs8_pem.as_bytes()).map_err(|_| SimError::KeyGeneration)?;
        Ok(Self {
            kid: random_hex(20),
            pkcs8_pem,
            encoding,
            pkcs8_der: pkcs8.as_ref().to_vec(),
            public_der: public.as_ref().to_vec(),
            public_pem: pem("PUBLIC KEY", spki.as_ref()),
            n: public.modulus().big_endian_without_leading_zero().to_vec(),
            e: public.exponent().big_endian_without_leading_zero().to_vec(),
        })
    }

    pub fn private_pem(&self) -> &str {
        &self.pkcs8_pem
    }

    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_rsa_der(&self.public_der)
    }

    /// The key as one entry of Google's JWK set (`/oauth2/v3/certs`).
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
        })
    }

    /// A self-signed certificate for this key, PEM, valid from a day before
    /// `now` to `days` after it, with `common_name` as subject and issuer
    /// (Google's robot certificates are self-signed too).
    pub fn self_signed_cert_pem(
        &self,
        common_name: &str,
        now: DateTime<Utc>,
        days: i64,
    ) -> Result<String, SimError> {
        use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair as CertKey};
        let key =
            CertKey::try_from(self.pkcs8_der.as_slice()).map_err(|_| SimError::Certificate)?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|_| SimError::Certificate)?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        let (from, to) = (
            now - chrono::Duration::days(1),
            now + chrono::Duration::days(days),
        );
        params.not_before = rcgen::date_time_ymd(from.year(), from.month() as u8, from.day() as u8);
        params.not_after = rcgen::date_time_ymd(to.year(), to.month() as u8, to.day() as u8);
        let cert = params
            .self_signed(&key)
            .map_err(|_| SimError::Certificate)?;
        Ok(pem("CERTIFICATE", cert.der().as_ref()))
    }
}

/// PEM armour with 64-character lines.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_certifies() {
        let key = RsaKey::generate().unwrap();
        let header = jsonwebtoken::Header {
            kid: Some(key.kid.clone()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256)
        };
        let token = jsonwebtoken::encode(
            &header,
            &json!({"sub": "x", "exp": Utc::now().timestamp() + 60}),
            key.encoding_key(),
        )
        .unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.validate_aud = false;
        jsonwebtoken::decode::<Value>(&token, &key.decoding_key(), &v).unwrap();
        // The same token verifies with the JWK's n/e, the PEM public key and
        // the certificate, so all the published forms name one key.
        let jwk = key.jwk();
        let from_jwk = DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();
        jsonwebtoken::decode::<Value>(&token, &from_jwk, &v).unwrap();
        let from_pem = DecodingKey::from_rsa_pem(key.public_pem().as_bytes()).unwrap();
        jsonwebtoken::decode::<Value>(&token, &from_pem, &v).unwrap();
        let cert = key
            .self_signed_cert_pem("x@example", Utc::now(), 14)
            .unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----\n"));
        let from_cert = DecodingKey::from_rsa_pem(cert.as_bytes()).unwrap();
        jsonwebtoken::decode::<Value>(&token, &from_cert, &v).unwrap();
        // The private key PEM is PKCS#8, as in Google's key files.
        assert!(
            key.private_pem()
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        EncodingKey::from_rsa_pem(key.private_pem().as_bytes()).unwrap();
    }
}
