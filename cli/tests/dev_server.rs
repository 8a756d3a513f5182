//! `tollgate dev` (what `make dev` runs) starts all four functions on the
//! embedded store and each answers on its printed URL.

mod common;

use common::Tollgate;

#[test]
fn dev_server_serves_every_function() {
    let dev = Tollgate::dev(&[]);
    // The banner prints one line per function, then the `Health:` line.
    let mut urls = Vec::new();
    for line in &dev.printed {
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            if line.contains("Health") {
                break;
            }
            urls.push((
                line.split_whitespace().next().unwrap().to_owned(),
                url.to_owned(),
            ));
        }
    }
    let names: Vec<_> = urls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "purchase-webhook",
            "pubsub-push",
            "oauth-callback",
            "entitlement-check"
        ]
    );
    for (name, url) in &urls {
        let body = http_get(&format!("{url}healthz"));
        assert!(body.contains(r#""status":"ok""#), "{name}: {body}");
        assert!(
            body.contains(name.as_str()),
            "{name} answered as itself: {body}"
        );
    }
    assert!(
        dev.dir.path().join("dev.db").exists(),
        "the embedded store was opened"
    );
}

#[test]
fn a_port_in_use_names_dev_port_and_the_flag() {
    // Hold a port, then ask for it: the dev server says which knob moves it.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["dev", "--no-sim", "--port", &port.to_string()])
        .env("TOLLGATE_CONFIG", common::config_path())
        .env(
            "TOLLGATE_STORE",
            format!("sqlite:{}/dev.db", dir.path().display()),
        )
        .env(
            "TOLLGATE_SECRETS",
            format!("file:{}/secrets.json", dir.path().display()),
        )
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port} is already in use"))
            && err.contains("DEV_PORT=")
            && err.contains("--port"),
        "{err}"
    );
    drop(held);
}

#[tokio::test]
async fn reset_starts_from_a_clean_store_and_keeps_the_secrets() {
    let keep = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}/dev.db", keep.path().display());
    let secrets = format!("file:{}/secrets.json", keep.path().display());
    let env = |cmd: &mut std::process::Command| {
        cmd.env("TOLLGATE_STORE", &store)
            .env("TOLLGATE_SECRETS", &secrets);
    };
    let dev = Tollgate::dev_with(&[], env);
    let out = dev
        .fire_command("github", &["purchased", "--trial"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stdout(&out));
    let webhook_secret = |dir: &std::path::Path| {
        let text = std::fs::read_to_string(dir.join("secrets.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["github_webhook_secret"].as_str().unwrap().to_owned()
    };
    let before = webhook_secret(keep.path());
    drop(dev);

    // Without --reset the store is kept ...
    let dev = Tollgate::dev_with(&[], env);
    assert_eq!(dev.check("github", "2001", None).await["status"], "trial");
    drop(dev);
    // ... with it, every subscription starts over; the secrets stay.
    let dev = Tollgate::dev_with(&["--reset"], env);
    assert!(
        dev.printed
            .iter()
            .any(|l| l.starts_with("Store: ") && l.contains("deleted (--reset)")),
        "{:#?}",
        dev.printed
    );
    let d = dev.check("github", "2001", None).await;
    assert_eq!(d["reason"], "no_subscription", "{d}");
    assert_eq!(webhook_secret(keep.path()), before);
}

/// A minimal HTTP/1.1 GET over a TCP socket, so the test needs no client crate.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}
