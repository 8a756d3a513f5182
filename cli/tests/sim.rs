//! `tollgate sim` (what `make dev` runs beside the functions) starts the
//! GitHub stand-ins, prints their URLs and hands the app credentials over
//! through the secrets file only.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::Tollgate;

/// Status line and headers of a GET, over a plain TCP socket.
fn http_head(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cli-test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split("\r\n\r\n").next().unwrap_or("").to_owned()
}

#[test]
fn sim_serves_github_and_writes_the_app_credentials_to_the_secrets_file() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = common::secrets_file(dir.path());
    std::fs::write(&secrets, r#"{"github_webhook_secret":"keep-me"}"#).unwrap();
    let sim = Tollgate::sim(dir, &[]);
    let web = sim.url("github.com");
    let api = sim.url("api.github.com");
    // The Q2 stand-in too, told to relay signed events to purchase-webhook.
    assert!(sim.url("q2-marketplace").starts_with("http://127.0.0.1:"));
    assert!(
        sim.printed
            .iter()
            .any(|l| l.contains("relays each event to http://127.0.0.1:9101/q2")),
        "{:#?}",
        sim.printed
    );

    let stored = sim.secrets();
    assert_eq!(
        stored["github_webhook_secret"], "keep-me",
        "other secrets kept"
    );
    let client_id = stored["github_client_id"].as_str().unwrap();
    assert!(
        stored["github_app_private_key"]
            .as_str()
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    assert_eq!(stored["github_app_id"], "1");
    let secret = stored["github_client_secret"].as_str().unwrap();
    assert!(
        sim.printed.iter().all(|l| !l.contains(secret)),
        "the client secret is never printed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "secrets file is private");
    }

    let head = http_head(&format!(
        "{web}/login/oauth/authorize?client_id={client_id}&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&state=s"
    ));
    assert!(head.starts_with("HTTP/1.1 302"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("location: http://localhost/cb?code="),
        "{head}"
    );
    let head = http_head(&format!("{api}/user"));
    assert!(head.starts_with("HTTP/1.1 401"), "no token: {head}");
}
