//! One TLS configuration and one HTTP client stack for every outbound call:
//! DynamoDB (through [`SdkHttpClient`]), GitHub, Google's APIs, token
//! endpoints and key documents, and the secrets extension.
//!
//! Why compiled-in roots: the trust store is Mozilla's root program as
//! shipped by `webpki-roots`, already in the binary as parsed trust anchors.
//! Loading the system store instead means reading and decoding a ~200 kB
//! PEM bundle (or walking a directory of ~300 files) at every cold start,
//! once per client; measured, that was most of the functions' start-up time
//! over a bare hello-world (README "Budgets, measured"). The set is the
//! full public root set, so a marketplace rotating to another public CA
//! keeps working; it is updated with the crate (cargo-deny watches it).
//!
//! Why one stack: the AWS SDK's own HTTP client is a second hyper/rustls
//! client with its own trust-store loading; sending the SDK's requests
//! through the same `reqwest` stack links one client and builds one TLS
//! configuration per process.

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;

mod sdk;

pub use sdk::SdkHttpClient;

/// Why the TLS configuration could not be built. Only a crypto provider
/// without any TLS version would cause it; reported, never panicked on.
#[derive(Debug, thiserror::Error)]
#[error("TLS configuration: {0}")]
pub struct TlsError(#[from] rustls::Error);

/// The process-wide client TLS configuration: aws-lc-rs, TLS 1.2 and 1.3,
/// Mozilla's roots. Built once; each client gets a cheap clone that shares
/// the verifier and the root store.
pub fn tls_config() -> Result<ClientConfig, TlsError> {
    static CONFIG: OnceLock<ClientConfig> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let config = build_tls_config()?;
    Ok(CONFIG.get_or_init(|| config).clone())
}

fn build_tls_config() -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(root_store())
        .with_no_client_auth())
}

/// Mozilla's roots as `TrustAnchor`s borrowed from the binary's read-only
/// data: nothing is read or parsed at start-up.
fn root_store() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// A `reqwest` client builder on the shared TLS configuration. Every
/// outbound client starts here.
pub fn client_builder() -> Result<reqwest::ClientBuilder, TlsError> {
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls_config()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_root(store: &rustls::RootCertStore, common_name: &str) -> bool {
        store.roots.iter().any(|anchor| {
            anchor
                .subject
                .as_ref()
                .windows(common_name.len())
                .any(|w| w == common_name.as_bytes())
        })
    }

    #[test]
    fn the_roots_are_the_full_public_set_and_cover_every_host_called() {
        let store = root_store();
        // The whole public set, not a pinned certificate or two that the next
        // CA rotation would break.
        assert!(store.len() > 100, "{} roots", store.len());
        // DynamoDB and Secrets Manager (Amazon Trust Services), Google's APIs
        // (Google Trust Services and its GlobalSign cross-sign), GitHub
        // (Sectigo / USERTrust and DigiCert).
        for cn in [
            "Amazon Root CA 1",
            "GTS Root R4",
            "GlobalSign",
            "USERTrust ECC Certification Authority",
            "DigiCert Global Root G2",
        ] {
            assert!(has_root(&store, cn), "missing root {cn}");
        }
    }

    #[test]
    fn the_configuration_is_built_once_and_shared() {
        let first = tls_config().unwrap();
        let second = tls_config().unwrap();
        assert!(Arc::ptr_eq(
            first.crypto_provider(),
            second.crypto_provider()
        ));
    }

    #[tokio::test]
    async fn a_client_built_here_refuses_a_certificate_outside_the_roots() {
        // A TLS server presenting a self-signed certificate: the handshake
        // must fail, nothing is trusted beyond Mozilla's roots.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
            acceptor.accept(socket).await.is_ok()
        });
        let client = client_builder().unwrap().build().unwrap();
        let err = client
            .get(format!("https://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        let chain = format!("{err:?}");
        assert!(chain.contains("UnknownIssuer"), "{chain}");
        assert!(
            !server.await.unwrap(),
            "the server saw a completed handshake"
        );
    }
}
