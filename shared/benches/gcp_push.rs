//! The CPU cost of authenticating a Google Pub/Sub push: verifying its OIDC
//! token (RS256 signature + claims) with the key already cached — what
//! every push pays. The reference, measured in the same run, is a bare
//! `jsonwebtoken::decode` of the same token with the same key (signature
//! only), so the ratio is the cost of Tollgate's claim checks and lookup.

use std::hint::black_box;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use tollgate::marketplace::gcp::keys::{KeyCache, KeyFormat};
use tollgate::marketplace::gcp::push_auth::PushVerifier;

const AUDIENCE: &str = "https://tollgate.example/pubsub";
const ACCOUNT: &str = "push@acme-public.iam.gserviceaccount.com";

fn bench_push_token(c: &mut Criterion) {
    let pair = KeyPair::generate(KeySize::Rsa2048).expect("key");
    let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&pair).expect("pkcs8");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pkcs8.as_ref())
    );
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("PKCS#8 key");
    let decoding =
        DecodingKey::from_rsa_der(aws_lc_rs::signature::KeyPair::public_key(&pair).as_ref());
    let now = Utc::now().timestamp();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let claims = serde_json::json!({
        "iss": "https://accounts.google.com", "aud": AUDIENCE, "email": ACCOUNT,
        "email_verified": true, "sub": "1234567890", "iat": now, "exp": now + 3600,
    });
    let token = jsonwebtoken::encode(&header, &claims, &encoding).expect("token");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    let verifier = PushVerifier::new(
        KeyCache::preloaded(
            "http://127.0.0.1:9/unused",
            KeyFormat::Jwks,
            reqwest::Client::new(),
            [("k1".to_owned(), decoding.clone())],
        ),
        AUDIENCE,
        ACCOUNT,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let at = Utc::now();
    assert!(rt.block_on(verifier.verify(&headers, at)).is_ok());

    let mut bare = Validation::new(Algorithm::RS256);
    bare.validate_aud = false;
    c.bench_function("gcp_push/bare_rs256_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &decoding, &bare)
                .expect("decodes")
        })
    });
    c.bench_function("gcp_push/verify", |b| {
        b.iter(|| {
            rt.block_on(verifier.verify(black_box(&headers), at))
                .expect("verifies")
        })
    });
}

criterion_group!(benches, bench_push_token);
criterion_main!(benches);
